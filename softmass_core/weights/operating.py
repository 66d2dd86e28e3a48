"""DLM-1's operating points (rule-out, balanced, rule-in), the score's interval and the verdict.

A weight set may record, under ``models.dlm1``:

* ``operating_points = {"rule_out": {...}, "balanced": {...}, "rule_in": {...}}``,
  each ``{"threshold", "sensitivity", "specificity"}`` measured on the
  validation cohort where they were chosen (:func:`choose_operating_points`):
  rule-out is the highest threshold with sensitivity >= 0.95, rule-in the
  lowest with specificity >= 0.95, balanced is Youden's J (the entry's
  ``threshold``).  They are ordered rule_out <= balanced <= rule_in; a rule
  that cannot be met, or that would break the order, is clamped to balanced
  and its ``note`` says so.
* ``interval = {"method", "alpha", "logit_halfwidth", "validation_coverage", "n", ...}``:
  a case's score interval is ``sigmoid(logit p +- logit_halfwidth)``
  (:func:`score_interval`).

Both are optional on read: a set without them offers only "balanced" and a
zero-width interval, and :func:`available_points` says why.  A case is
``indeterminate`` when its interval straddles the chosen threshold
(``lo < t <= hi``, :func:`verdict`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from softmass_core.errors import ManifestError, SoftmassError

POINTS = ("rule_out", "balanced", "rule_in")
POINT_LABELS = {"rule_out": "Rule-out", "balanced": "Balanced", "rule_in": "Rule-in"}
DEFAULT_POINT = "balanced"
TARGET = 0.95
VERDICTS = ("malignant", "benign", "indeterminate")
NO_POINTS = (
    "this weight set records only its balanced threshold (Youden's J); run `python -m softmass_core retune` "
    "on it to add the rule-out and rule-in points"
)
_EPS = 1e-6


# --------------------------------------------------------------------------- choosing on validation


def candidate_thresholds(s: np.ndarray) -> np.ndarray:
    """The lowest score, then every midpoint between consecutive distinct scores (ties never split)."""
    u = np.unique(np.asarray(s, dtype=float))
    return np.concatenate([u[:1], (u[:-1] + u[1:]) / 2])


def sens_spec(y: np.ndarray, s: np.ndarray, t: float) -> tuple[float, float]:
    """Sensitivity and specificity of "malignant when score >= t"."""
    y = np.asarray(y, dtype=int)
    pred = np.asarray(s, dtype=float) >= t
    return float(pred[y == 1].mean()), float((~pred[y == 0]).mean())


def choose_operating_points(y, s, balanced: float, *, target: float = TARGET) -> dict[str, dict[str, Any]]:
    """The three operating points on validation labels ``y`` and DLM-1 case scores ``s``.

    ``balanced`` is the set's Youden threshold.  Candidates are
    :func:`candidate_thresholds`; rule-out is the highest with sensitivity
    >= ``target``, rule-in the lowest with specificity >= ``target``.  A rule
    no candidate meets, or a point on the wrong side of balanced, becomes
    balanced with a ``note`` that says why.
    """
    y = np.asarray(y, dtype=int)
    s = np.asarray(s, dtype=float)
    if len(np.unique(y)) < 2:
        raise SoftmassError("Operating points need both benign and malignant cases in the validation cohort.")
    cands = candidate_thresholds(s)
    stats = [sens_spec(y, s, t) for t in cands]
    out_ok = [t for t, (se, _) in zip(cands, stats) if se >= target]
    in_ok = [t for t, (_, sp) in zip(cands, stats) if sp >= target]
    pct = f"{target:.0%}"
    rules = {
        "rule_out": f"highest threshold with validation sensitivity >= {pct}",
        "balanced": "Youden's J (the set's threshold)",
        "rule_in": f"lowest threshold with validation specificity >= {pct}",
    }
    chosen: dict[str, tuple[float, str]] = {"balanced": (float(balanced), "")}
    if not out_ok:
        chosen["rule_out"] = (float(balanced), f"no threshold reaches sensitivity {pct}; set to balanced")
    elif max(out_ok) > balanced:
        chosen["rule_out"] = (
            float(balanced),
            f"balanced already has sensitivity >= {pct}; the highest such threshold ({max(out_ok):.4f}) lies "
            "above it, so rule-out is set to balanced",
        )
    else:
        chosen["rule_out"] = (float(max(out_ok)), "")
    if not in_ok:
        chosen["rule_in"] = (float(balanced), f"no threshold reaches specificity {pct}; set to balanced")
    elif min(in_ok) < balanced:
        chosen["rule_in"] = (
            float(balanced),
            f"balanced already has specificity >= {pct}; the lowest such threshold ({min(in_ok):.4f}) lies "
            "below it, so rule-in is set to balanced",
        )
    else:
        chosen["rule_in"] = (float(min(in_ok)), "")
    out: dict[str, dict[str, Any]] = {}
    for name in POINTS:
        t, note = chosen[name]
        se, sp = sens_spec(y, s, t)
        out[name] = {"threshold": t, "sensitivity": se, "specificity": sp, "rule": rules[name]}
        if note:
            out[name]["note"] = note
    return out


# --------------------------------------------------------------------------- manifest fields


def _prob(obj: Mapping[str, Any], key: str, where: str) -> float:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 <= float(v) <= 1.0):
        raise ManifestError(f"{where}.{key} must be a number in [0, 1], got {v!r:.40}. Re-run retune on the set.")
    return float(v)


def check_operating_points(dlm1: Mapping[str, Any], where: str) -> None:
    """Validate ``operating_points`` and ``interval`` of a raw DLM-1 entry when present."""
    ops = dlm1.get("operating_points")
    if ops is not None:
        w = f"{where}: models.dlm1.operating_points"
        if not isinstance(ops, Mapping) or set(ops) != set(POINTS):
            raise ManifestError(f"{w} must be an object with exactly {list(POINTS)}. Re-run retune on the set.")
        ts = []
        for name in POINTS:
            if not isinstance(ops[name], Mapping):
                raise ManifestError(f"{w}.{name} must be an object with threshold, sensitivity and specificity.")
            ts.append(_prob(ops[name], "threshold", f"{w}.{name}"))
            _prob(ops[name], "sensitivity", f"{w}.{name}")
            _prob(ops[name], "specificity", f"{w}.{name}")
        if not ts[0] <= ts[1] <= ts[2]:
            raise ManifestError(f"{w}: thresholds must be ordered rule_out <= balanced <= rule_in, got {ts}.")
        if abs(ts[1] - float(dlm1.get("threshold", ts[1]))) > 1e-9:
            raise ManifestError(f"{w}.balanced.threshold {ts[1]} differs from the entry's threshold; re-run retune.")
    iv = dlm1.get("interval")
    if iv is not None:
        w = f"{where}: models.dlm1.interval"
        if not isinstance(iv, Mapping) or not isinstance(iv.get("method"), str):
            raise ManifestError(f"{w} must be an object with a 'method' name. Re-run retune on the set.")
        hw = iv.get("logit_halfwidth")
        if hw is None:
            hw = math.inf  # too few validation cases: the interval is [0, 1]
        if isinstance(hw, bool) or not isinstance(hw, (int, float)) or not (hw >= 0) or math.isnan(hw):
            raise ManifestError(f"{w}.logit_halfwidth must be a number >= 0 (inf: the interval is [0, 1]), got {hw!r}.")
        a = _prob(iv, "alpha", w)
        if not 0 < a < 1:
            raise ManifestError(f"{w}.alpha must lie strictly between 0 and 1, got {a}.")
        _prob(iv, "validation_coverage", w)
        n = iv.get("n")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ManifestError(f"{w}.n must be a positive count of validation cases, got {n!r}.")


def dlm1_raw(manifest) -> Mapping[str, Any]:
    return (manifest.raw.get("models") or {}).get("dlm1") or {}


def available_points(manifest) -> tuple[dict[str, dict[str, Any]], str | None]:
    """``({name: point}, reason)``: the set's operating points, or only balanced and why."""
    ops = dlm1_raw(manifest).get("operating_points")
    if ops:
        return {n: dict(ops[n]) for n in POINTS}, None
    t = manifest.models["dlm1"].threshold
    return {DEFAULT_POINT: {"threshold": float(t), "rule": "Youden's J (the set's threshold)"}}, NO_POINTS


def resolve_point(manifest, name: str | None) -> tuple[str, float]:
    """``(name, threshold)`` of operating point ``name`` (default balanced) of the set."""
    name = name or DEFAULT_POINT
    if name not in POINTS:
        raise SoftmassError(f"Unknown operating point {name!r}; use one of {', '.join(POINTS)}.")
    if name == DEFAULT_POINT:
        return name, float(manifest.models["dlm1"].threshold)  # the entry's threshold is balanced
    points, reason = available_points(manifest)
    if name not in points:
        raise SoftmassError(f"Operating point {name!r} is not available: {reason}.")
    return name, float(points[name]["threshold"])


def point_text(manifest, name: str) -> str:
    """Where an operating point's threshold came from, in words for tables and CSVs."""
    points, _ = available_points(manifest)
    p = points.get(name, {})
    text = f"{name} operating point ({p.get('rule', 'chosen on validation')})"
    return text + (f"; {p['note']}" if p.get("note") else "")


def interval_info(manifest) -> dict[str, Any] | None:
    iv = dlm1_raw(manifest).get("interval")
    return dict(iv) if iv else None


def interval_halfwidth(manifest) -> float:
    """The logit half-width of the set's interval: 0 without one, inf when recorded as null (too few cases)."""
    iv = interval_info(manifest)
    if iv is None:
        return 0.0
    hw = iv.get("logit_halfwidth")
    return math.inf if hw is None else float(hw)


def logit(p: float) -> float:
    p = min(max(float(p), _EPS), 1 - _EPS)
    return math.log(p / (1 - p))


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def score_interval(p: float, halfwidth: float) -> tuple[float, float]:
    """``(lo, hi)`` = sigmoid(logit p -+ halfwidth), so lo <= p <= hi; halfwidth 0 gives (p, p)."""
    p = float(p)
    if halfwidth <= 0:
        return p, p
    if math.isinf(halfwidth):
        return 0.0, 1.0
    z = logit(p)
    return min(sigmoid(z - halfwidth), p), max(sigmoid(z + halfwidth), p)


def verdict(p: float, interval: tuple[float, float], threshold: float) -> str:
    """``indeterminate`` when the interval straddles the threshold (lo < t <= hi), else the threshold rule."""
    lo, hi = interval
    if lo < threshold <= hi:
        return "indeterminate"
    return "malignant" if p >= threshold else "benign"


def describe_verdict(verdict_: str, point: str, subtype_if_benign: str | None, *, measured: bool = True) -> str:
    """One plain sentence for a clinician (no icons); ``measured`` False: the set has no score range."""
    label = POINT_LABELS.get(point, point).lower()
    if not measured:
        call = "Malignant" if verdict_ == "malignant" else "Benign"
        text = (
            f"{call} at the {label} threshold. This weight set has no measured score range (retune it on a "
            "validation cohort), so how near the call is to changing cannot be said"
        )
        return text + (f"; subtype: {subtype_if_benign}." if subtype_if_benign else ".")
    if verdict_ == "indeterminate":
        text = (
            f"Indeterminate: the score's range crosses the {label} threshold, so small changes in how the "
            "mass is outlined could change the call"
        )
        return text + (f"; subtype if benign: {subtype_if_benign}." if subtype_if_benign else ".")
    if verdict_ == "malignant":
        return f"Malignant at the {label} threshold: the whole score range lies at or above it."
    text = f"Benign at the {label} threshold: the whole score range lies below it"
    return text + (f"; subtype: {subtype_if_benign}." if subtype_if_benign else ".")
