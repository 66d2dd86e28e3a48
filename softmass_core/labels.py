"""Class names shared by every module: one place to look them up."""

from __future__ import annotations

MALIGNANT = "malignant"
BENIGN = "benign"  # a benign case whose subtype is unknown

#: DLM-2 sub-models in the paper's order (SM-1 .. SM-5).
SUBTYPES: tuple[str, ...] = (
    "lipoma",
    "hemangioma",
    "neurinoma",
    "epidermal_cyst",
    "calcifying_epithelioma",
)

#: Every label a cohort CSV may carry.
COHORT_LABELS: tuple[str, ...] = (MALIGNANT, *SUBTYPES, BENIGN)

#: Model ids inside a weight set: DLM-1 then SM-1..SM-5.
DLM1 = "dlm1"
SUBMODEL_IDS: dict[str, str] = {f"sm{i + 1}": name for i, name in enumerate(SUBTYPES)}
MODEL_IDS: tuple[str, ...] = (DLM1, *SUBMODEL_IDS)

DISPLAY_NAMES: dict[str, str] = {
    MALIGNANT: "Malignant",
    BENIGN: "Benign (subtype unknown)",
    "lipoma": "Lipoma",
    "hemangioma": "Hemangioma",
    "neurinoma": "Neurinoma (schwannoma)",
    "epidermal_cyst": "Epidermal cyst",
    "calcifying_epithelioma": "Calcifying epithelioma (pilomatricoma)",
}

#: The two image kinds of a case.
MODALITIES: tuple[str, ...] = ("gray", "cdfi")


def display_name(label: str) -> str:
    """Human-readable name of a label (falls back to the label itself)."""
    return DISPLAY_NAMES.get(label, label)
