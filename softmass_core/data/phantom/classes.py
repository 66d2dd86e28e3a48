"""Per-class random parameters of a simulated lesion (proportions from the literature).

A case's appearance is drawn in five groups: ``geometry``, ``echo``,
``internal``, ``posterior`` and ``vascular``.  Each group comes from the
case's own class sampler, except that with probability ``p_swap`` a group is
drawn from a random *other* class (an atypical case: deliberate overlap,
never label noise).  ``difficulty`` in [0, 1] raises ``p_swap`` and shrinks
the continuous parameters toward the pooled mean.  See the design notes, shared/docs/phantom.md 2.3 (outside this repository).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from softmass_core.labels import MALIGNANT, SUBTYPES

#: Every class the generator can draw, malignant first then SM-1..SM-5.
PHANTOM_LABELS: tuple[str, ...] = (MALIGNANT, *SUBTYPES)

LIPOMA, HEMANGIOMA, NEURINOMA, EPIDERMAL_CYST, PILOMATRICOMA = SUBTYPES

GROUPS: tuple[str, ...] = ("geometry", "echo", "internal", "posterior", "vascular")

# Pooled centres that ``difficulty`` shrinks toward (log for sizes and echoes).
_POOLED = {
    "diameter_mm": ("log", 22.5),
    "aspect": ("lin", 0.65),
    "echo": ("log", 0.87),
    "het": ("lin", 0.35),
    "alpha": ("lin", 0.51),
    "edge_shadow": ("lin", 0.36),
}


@dataclass
class LesionParams:
    """Sampled parameters of one lesion; every group is a plain dict (JSON-friendly)."""

    label: str
    geometry: dict = field(default_factory=dict)
    echo: dict = field(default_factory=dict)
    internal: dict = field(default_factory=dict)
    posterior: dict = field(default_factory=dict)
    vascular: dict = field(default_factory=dict)
    swapped: dict = field(default_factory=dict)  # group -> class it was drawn from

    def as_dict(self) -> dict:
        """All groups as one nested dict."""
        return {g: dict(getattr(self, g)) for g in GROUPS} | {"swapped": dict(self.swapped)}


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _pick(rng: np.random.Generator, options: dict[str, float]) -> str:
    names = list(options)
    p = np.array([options[n] for n in names], dtype=float)
    return str(names[int(rng.choice(len(names), p=p / p.sum()))])


def _lognormal(rng: np.random.Generator, median: float, sd: float, lo: float, hi: float) -> float:
    return float(np.clip(median * np.exp(rng.normal(0.0, sd)), lo, hi))


# --------------------------------------------------------------------------- geometry
def _geometry(label: str, rng: np.random.Generator) -> dict:
    g: dict = {
        "tilt": float(rng.normal(0.0, 0.08)),
        "irregular": _u(rng, 0.0, 0.025),
        "micro": 0.0,
        "lobules": 0,
        "fusiform": 0.0,
        "edge_mm": _u(rng, 0.12, 0.25),
        "ill_sectors": 0,
        "ill_edge_mm": 0.0,
        "ruptured": False,
    }
    if label == MALIGNANT:
        g["diameter_mm"] = _lognormal(rng, 40, 0.5, 12, 90)
        g["aspect"] = _u(rng, 0.55, 1.0)
        g["layer"] = _pick(rng, {"fascia": 0.5, "muscle": 0.3, "subcut": 0.2})
        g["tilt"] = float(rng.normal(0.0, 0.12))
        if rng.random() < 0.15:  # smooth "mimic"
            g["irregular"] = _u(rng, 0.01, 0.04)
        else:
            g["irregular"] = _u(rng, 0.06, 0.16)
            g["micro"] = _u(rng, 0.015, 0.05)
            g["lobules"] = int(rng.integers(0, 5))
            g["ill_sectors"] = int(rng.integers(1, 4))
            g["ill_edge_mm"] = _u(rng, 0.8, 2.2)
    elif label == LIPOMA:
        g["diameter_mm"] = _lognormal(rng, 30, 0.45, 8, 90)
        g["aspect"] = _u(rng, 0.28, 0.55)
        g["layer"] = _pick(rng, {"subcut": 0.85, "muscle": 0.15})
        if rng.random() < 0.2:
            g["lobules"] = int(rng.integers(2, 5))
            g["irregular"] = _u(rng, 0.02, 0.06)
        if rng.random() < 0.26:
            g["ill_sectors"] = 1
            g["ill_edge_mm"] = _u(rng, 0.6, 1.5)
    elif label == HEMANGIOMA:
        g["diameter_mm"] = _lognormal(rng, 24, 0.5, 6, 70)
        g["aspect"] = _u(rng, 0.35, 0.8)
        g["layer"] = _pick(rng, {"subcut": 0.5, "muscle": 0.4, "dermis_subcut": 0.1})
        g["irregular"] = _u(rng, 0.04, 0.10)
        g["lobules"] = int(rng.integers(1, 5))
        if rng.random() < 0.45:
            g["ill_sectors"] = int(rng.integers(2, 5))
            g["ill_edge_mm"] = _u(rng, 0.8, 2.0)
    elif label == NEURINOMA:
        g["diameter_mm"] = _lognormal(rng, 20, 0.4, 7, 55)
        g["aspect"] = _u(rng, 0.45, 0.75)
        g["layer"] = _pick(rng, {"deep_subcut": 0.5, "muscle": 0.5})
        g["fusiform"] = _u(rng, 0.3, 0.7) if rng.random() < 0.6 else 0.0
        g["tilt"] = float(rng.normal(0.0, 0.06))
    elif label == EPIDERMAL_CYST:
        g["diameter_mm"] = _lognormal(rng, 17, 0.45, 7, 70)
        g["aspect"] = _u(rng, 0.5, 0.9)
        g["layer"] = "dermis_subcut"
        if rng.random() < 0.19:
            g["lobules"] = int(rng.integers(1, 3))
        if rng.random() < 0.08:
            g["ruptured"] = True
            g["lobules"] = int(rng.integers(2, 5))
            g["irregular"] = _u(rng, 0.05, 0.1)
            g["ill_sectors"] = int(rng.integers(1, 3))
            g["ill_edge_mm"] = _u(rng, 0.6, 1.5)
    elif label == PILOMATRICOMA:
        g["diameter_mm"] = _lognormal(rng, 13, 0.35, 4, 35)
        g["aspect"] = _u(rng, 0.6, 1.0)
        g["layer"] = "dermis_subcut"
    else:  # pragma: no cover - guarded by generate_case
        raise ValueError(label)
    return g


# --------------------------------------------------------------------------- echo
def _echo(label: str, rng: np.random.Generator) -> dict:
    e: dict = {"rim": "none", "rim_strength": 0.0, "het_knots": int(rng.integers(4, 10))}
    if label == MALIGNANT:
        e["echo"] = _u(rng, 0.3, 0.9)
        e["het"] = _u(rng, 0.35, 0.75)
        if rng.random() < 0.55:
            e["rim"], e["rim_strength"] = "irregular_echogenic", _u(rng, 0.8, 2.0)
    elif label == LIPOMA:
        kind = _pick(rng, {"hypo": 0.25, "iso": 0.35, "hyper": 0.40})
        e["echo"] = {"hypo": _u(rng, 0.55, 0.85), "iso": _u(rng, 0.85, 1.15), "hyper": _u(rng, 1.15, 1.8)}[kind]
        e["het"] = _u(rng, 0.1, 0.3)
        if rng.random() < 0.6:
            e["rim"], e["rim_strength"] = "capsule", _u(rng, 0.3, 0.9)
    elif label == HEMANGIOMA:
        e["echo"] = _u(rng, 0.7, 2.0)
        e["het"] = _u(rng, 0.35, 0.7)
        e["het_knots"] = int(rng.integers(6, 14))
    elif label == NEURINOMA:
        e["echo"] = _u(rng, 0.35, 0.8)
        e["het"] = _u(rng, 0.15, 0.45)
        if rng.random() < 0.7:
            e["rim"], e["rim_strength"] = "capsule", _u(rng, 0.8, 2.0)
    elif label == EPIDERMAL_CYST:
        e["echo"] = _u(rng, 0.3, 1.0)
        e["het"] = _u(rng, 0.05, 0.2)
        if rng.random() < 0.67:
            e["rim"], e["rim_strength"] = "hypo_halo", _u(rng, 0.5, 0.9)
    elif label == PILOMATRICOMA:
        e["echo"] = _u(rng, 1.0, 2.2) if rng.random() < 0.8 else _u(rng, 0.4, 0.8)
        e["het"] = _u(rng, 0.3, 0.6)
        if rng.random() < 0.85:
            e["rim"], e["rim_strength"] = "hypo_halo", _u(rng, 0.5, 0.9)
    return e


# --------------------------------------------------------------------------- internal
def _internal(label: str, rng: np.random.Generator) -> dict:
    f: dict = {}
    if label == MALIGNANT:
        if rng.random() < 0.40:
            f["necrosis"] = int(rng.integers(1, 4))
        if rng.random() < 0.08:
            f["calc"], f["calc_count"] = "dots", int(rng.integers(1, 4))
        if rng.random() < 0.6:
            f["stranding"] = _u(rng, 0.4, 1.0)
    elif label == LIPOMA:
        if rng.random() < 0.71:
            f["striations"] = {"spacing_mm": _u(rng, 0.8, 2.2), "strength": _u(rng, 1.0, 3.0)}
    elif label == HEMANGIOMA:
        if rng.random() < 0.75:
            f["spaces"] = {"count": int(rng.integers(8, 41)), "size_mm": _u(rng, 0.6, 2.2)}
        if rng.random() < 0.15:
            f["calc"], f["calc_count"] = "phlebolith", int(rng.integers(1, 4))
    elif label == NEURINOMA:
        if rng.random() < 0.25:
            f["target"] = _u(rng, 0.8, 1.8)
        if rng.random() < 0.25:
            f["cystic"] = int(rng.integers(1, 4))
        if rng.random() < 0.55:
            f["tails"] = _u(rng, 0.6, 1.4)
        if rng.random() < 0.5:
            f["fat_cap"] = _u(rng, 1.0, 2.5)
    elif label == EPIDERMAL_CYST:
        if rng.random() < 0.20:
            f["lines"] = int(rng.integers(2, 7))
        if rng.random() < 0.20:
            f["clefts"] = int(rng.integers(1, 4))
        if rng.random() < 0.08:
            f["onion"] = _u(rng, 0.8, 1.6)
        if rng.random() < 0.12:
            f["punctum"] = True
    elif label == PILOMATRICOMA:
        kind = _pick(rng, {"dots": 0.60, "cluster": 0.25, "complete": 0.15})
        f["calc"] = kind
        f["calc_count"] = int(rng.integers(4, 16)) if kind == "dots" else int(rng.integers(6, 20))
    return f


# --------------------------------------------------------------------------- posterior
def _posterior(label: str, rng: np.random.Generator) -> dict:
    p = {"cap_db": _u(rng, 6.0, 12.0)}
    if label == MALIGNANT:
        p |= {"alpha": _u(rng, 0.5, 0.9), "edge_shadow": _u(rng, 0.0, 0.3)}
    elif label == LIPOMA:
        p |= {"alpha": _u(rng, 0.45, 0.7), "edge_shadow": _u(rng, 0.0, 0.3)}
    elif label == HEMANGIOMA:
        p |= {"alpha": _u(rng, 0.25, 0.55), "edge_shadow": _u(rng, 0.0, 0.3)}
    elif label == NEURINOMA:
        p |= {"alpha": _u(rng, 0.2, 0.5), "edge_shadow": _u(rng, 0.2, 0.7)}
    elif label == EPIDERMAL_CYST:
        alpha = _u(rng, 0.03, 0.25) if rng.random() < 0.92 else _u(rng, 0.45, 0.65)
        p |= {"alpha": alpha, "edge_shadow": _u(rng, 0.5, 1.0)}
    elif label == PILOMATRICOMA:
        p |= {"alpha": _u(rng, 0.6, 1.2), "edge_shadow": _u(rng, 0.1, 0.5)}
    return p


# --------------------------------------------------------------------------- vascular
_VASCULAR = {
    MALIGNANT: ({"chaotic": 0.70, "moderate": 0.20, "minimal": 0.10}, (8.0, 22.0)),
    LIPOMA: ({"none": 0.75, "minimal": 0.25}, (3.0, 8.0)),
    HEMANGIOMA: ({"rich_small": 0.45, "lakes": 0.35, "none": 0.20}, (5.0, 14.0)),
    NEURINOMA: ({"polar_internal": 0.60, "minimal": 0.30, "none": 0.10}, (4.0, 12.0)),
    EPIDERMAL_CYST: ({"none": 0.93, "peripheral_min": 0.07}, (4.0, 10.0)),
    PILOMATRICOMA: (
        {"peripheral": 0.55, "penetrating": 0.15, "none": 0.25, "rich_small": 0.05},
        (4.0, 12.0),
    ),
}


def _vascular(label: str, rng: np.random.Generator) -> dict:
    patterns, (lo, hi) = _VASCULAR[label]
    return {"pattern": _pick(rng, patterns), "speed_cm_s": _u(rng, lo, hi)}


_SAMPLERS: dict[str, Callable[[str, np.random.Generator], dict]] = {
    "geometry": _geometry,
    "echo": _echo,
    "internal": _internal,
    "posterior": _posterior,
    "vascular": _vascular,
}


def _shrink(group: dict, s: float) -> None:
    """Move continuous parameters toward the pooled centre by fraction ``s`` (in place)."""
    for key, (kind, centre) in _POOLED.items():
        if key in group and s > 0:
            v = float(group[key])
            if kind == "log":
                group[key] = float(np.exp(np.log(v) + s * (np.log(centre) - np.log(v))))
            else:
                group[key] = v + s * (centre - v)


def p_swap_for(difficulty: float) -> float:
    """Probability that one feature group is drawn from another class."""
    return 0.05 + 0.35 * float(np.clip(difficulty, 0.0, 1.0))


def sample_lesion(label: str, rng: np.random.Generator, difficulty: float) -> LesionParams:
    """Draw all five groups for a lesion of class ``label``."""
    d = float(np.clip(difficulty, 0.0, 1.0))
    p_swap = p_swap_for(d)
    params = LesionParams(label=label)
    others = [c for c in PHANTOM_LABELS if c != label]
    for group in GROUPS:
        source = label
        if rng.random() < p_swap:
            source = others[int(rng.integers(len(others)))]
            params.swapped[group] = source
        values = _SAMPLERS[group](source, rng)
        _shrink(values, 0.5 * d)
        setattr(params, group, values)
    # A ruptured cyst shows peripheral flow (when its geometry is its own).
    if params.geometry.get("ruptured") and "vascular" not in params.swapped:
        params.vascular["pattern"] = "peripheral_min"
    return params


def sample_age_sex(label: str, rng: np.random.Generator) -> tuple[int, str]:
    """Age in years (5-90) and sex ("M"/"F"), following the paper's Table 1."""
    if label == MALIGNANT:
        age = rng.normal(49.0, 16.0)
    elif label == PILOMATRICOMA:
        age = rng.normal(24.0, 12.0)  # pilomatricoma skews young
    else:
        age = rng.normal(34.0, 9.0)
    sex = "M" if rng.random() < 0.5 else "F"
    return int(np.clip(round(float(age)), 5, 90)), sex
