"""Class, model, image and cohort names shared by every module, and how each is shown to people."""

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

#: Display names of the image kinds.
MODALITY_NAMES: dict[str, str] = {"gray": "Grayscale B-mode", "cdfi": "CDFI"}
#: Display names of the models of a weight set.
MODEL_NAMES: dict[str, str] = {DLM1: "DLM-1", **{sm: f"SM-{i + 1}" for i, sm in enumerate(SUBMODEL_IDS)}}

#: How each cohort of a weight set's metrics is named for people.
COHORT_NAMES: dict[str, str] = {
    "validation": "validation",
    "test_internal": "internal test",
    "test_a": "external test A",
    "test_b": "external test B",
    "training": "training (optimistic)",
}

#: How each manifest ``data_kind`` is named for people.
DATA_KIND_NAMES: dict[str, str] = {
    "simulated": "simulated images",
    "breast_ultrasound": "breast ultrasound",
    "soft_tissue_ultrasound": "soft-tissue ultrasound",
    "test": "test weights",
}


def display_name(label: str) -> str:
    """Human-readable name of a label (falls back to the label itself)."""
    return DISPLAY_NAMES.get(label, label)


def model_name(model_id: str) -> str:
    """``"DLM-1"``, ``"SM-1 (lipoma)"``, ... for a model id."""
    if model_id in SUBMODEL_IDS:
        short = display_name(SUBMODEL_IDS[model_id]).split(" (")[0].lower()
        return f"{MODEL_NAMES[model_id]} ({short})"
    return MODEL_NAMES.get(model_id, model_id)


def cohort_label(name: str) -> str:
    """``"external test A"`` for ``test_a``, ``"training (optimistic)"`` for ``training``; others as given."""
    return COHORT_NAMES.get(name, name)
