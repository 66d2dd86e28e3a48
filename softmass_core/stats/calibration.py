"""Calibration: expected calibration error and temperature scaling.

* :func:`expected_calibration_error` (ECE): ``sum_k n_k / n * |mean
  predicted_k - fraction positive_k|`` over :data:`ECE_BINS` equal-width
  bins on [0, 1], the bins of :func:`softmass_core.stats.curves.calibration_curve`
  (bin i covers ``[i/10, (i+1)/10)``, the last one includes 1.0).
* Temperature scaling (Guo et al. 2017): one scalar ``T > 0`` per model divides
  the model's logits before the softmax.  In this cascade a case score is not
  one softmax: it is the fusion (mean, max or one modality) of per-image
  probabilities, each the mean over test-time views of a softmax.  ``T``
  therefore applies where the model makes its logits (per image and per
  view, before the softmax, so every probability the app shows, per image or
  per case, comes from the same calibrated model), and it is fitted by
  minimising the negative log-likelihood of the *case score*, the number
  thresholds, metrics and the ECE are computed on.
  :func:`fit_temperature` uses ``scipy.optimize.minimize_scalar`` (bounded,
  on log T).
* :func:`cross_validated_temperature` says whether to keep ``T``: fitted
  on 4/5 of the validation cases and applied to the other 1/5 (stratified
  5-fold), the pooled held-out ECE with ``T`` is compared with the ECE at
  ``T = 1`` on the same cases.  ``T`` is kept only when it lowers that
  held-out ECE; the in-sample ECE (fitted and measured on the same cases)
  is reported next to it, never used to decide.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from softmass_core.errors import MetricsError
from softmass_core.stats.curves import calibration_curve

#: Equal-width bins of every ECE this project reports.
ECE_BINS = 10
#: Search range of the temperature.
T_BOUNDS = (0.05, 20.0)

#: One case: ``{modality: (views, classes) logits}``.
CaseLogits = Mapping[str, np.ndarray]


def expected_calibration_error(labels: Any, scores: Any, *, n_bins: int = ECE_BINS) -> float:
    """ECE of probabilities ``scores`` against 0/1 ``labels`` with ``n_bins`` equal-width bins."""
    curve = calibration_curve(labels, scores, n_bins=n_bins)
    n = curve["count"].sum()
    gap = np.abs(curve["mean_predicted"] - curve["fraction_positive"])
    return float(np.sum(curve["count"] * gap) / n)


def _softmax_positive(logits: np.ndarray, temperature: float, positive_index: int) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e[..., positive_index] / e.sum(axis=-1)


def case_scores(
    cases: Sequence[CaseLogits],
    temperature: float,
    fuse: Callable[[dict[str, float]], float],
    *,
    positive_index: int = 1,
) -> np.ndarray:
    """The cascade's case scores at ``temperature``: softmax(logits / T) per image and view,
    mean over views, then ``fuse`` over the images (e.g. :func:`softmass_core.inference.cascade.fuse`)."""
    if not temperature > 0 or not np.isfinite(temperature):
        raise MetricsError(f"A temperature must be a finite number > 0; got {temperature!r}.")
    out = np.empty(len(cases), dtype=np.float64)
    for i, case in enumerate(cases):
        per_image = {m: float(np.mean(_softmax_positive(lg, temperature, positive_index))) for m, lg in case.items()}
        out[i] = fuse(per_image)
    return out


def _nll(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def fit_temperature(
    labels: Any,
    cases: Sequence[CaseLogits],
    fuse: Callable[[dict[str, float]], float],
    *,
    positive_index: int = 1,
) -> float:
    """The ``T`` in :data:`T_BOUNDS` minimising the NLL of the case scores (``minimize_scalar`` on log T)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(labels, dtype=float)
    if y.shape != (len(cases),):
        raise MetricsError(f"{y.size} labels for {len(cases)} cases.")
    if len(np.unique(y)) < 2:
        raise MetricsError("Temperature scaling needs both classes among the cases.")

    def loss(log_t: float) -> float:
        return _nll(y, case_scores(cases, float(np.exp(log_t)), fuse, positive_index=positive_index))

    res = minimize_scalar(loss, bounds=tuple(np.log(T_BOUNDS)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def cross_validated_temperature(
    labels: Any,
    cases: Sequence[CaseLogits],
    fuse: Callable[[dict[str, float]], float],
    *,
    positive_index: int = 1,
    n_splits: int = 5,
    seed: int = 0,
    n_bins: int = ECE_BINS,
) -> dict[str, Any]:
    """Fit ``T`` on all cases and by stratified ``n_splits``-fold cross-validation.

    Returns ``{"value", "ece_before", "ece_after", "cv_ece_before",
    "cv_ece_after", "cv_temperatures", "kept", "how"}``: ``value`` is fitted
    on every case; ``ece_before``/``ece_after`` are in-sample (T = 1 and T =
    value on the same cases); ``cv_ece_after`` pools each fold's held-out
    scores at the T fitted without it, ``cv_ece_before`` the same cases at
    T = 1.  ``kept`` is ``cv_ece_after < cv_ece_before``.
    """
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(labels, dtype=int)
    t_all = fit_temperature(y, cases, fuse, positive_index=positive_index)
    p1 = case_scores(cases, 1.0, fuse, positive_index=positive_index)
    pt = case_scores(cases, t_all, fuse, positive_index=positive_index)
    k = int(min(n_splits, np.bincount(y, minlength=2).min()))
    if k < 2:
        raise MetricsError(
            f"Cross-validating a temperature needs at least 2 cases of each class; got {np.bincount(y)}."
        )
    held = np.empty_like(p1)
    temps = []
    for train, test in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        t = fit_temperature(y[train], [cases[i] for i in train], fuse, positive_index=positive_index)
        temps.append(t)
        held[test] = case_scores([cases[i] for i in test], t, fuse, positive_index=positive_index)
    cv_before = expected_calibration_error(y, p1, n_bins=n_bins)
    cv_after = expected_calibration_error(y, held, n_bins=n_bins)
    return {
        "value": t_all,
        "ece_before": cv_before,
        "ece_after": expected_calibration_error(y, pt, n_bins=n_bins),
        "cv_ece_before": cv_before,
        "cv_ece_after": cv_after,
        "cv_temperatures": temps,
        "kept": bool(cv_after < cv_before),
        "how": (
            f"one T on the per-image logits (before the softmax, every test-time view), fitted by minimising "
            f"the NLL of the case score on {len(y)} cases (scipy minimize_scalar); ECE with {n_bins} equal-width "
            f"bins; kept only if the {k}-fold cross-validated ECE (T fitted on {k - 1}/{k}, measured on the "
            "held-out fold) is lower than at T = 1"
        ),
    }


def temperature_line(t: Mapping[str, Any]) -> str:
    """One line for a manifest ``temperature`` object (CLI and model card)."""
    if "cv_ece_after" not in t:
        return f"temperature not fitted ({t.get('how', '')})"
    verdict = "kept" if t["kept"] else "not kept (T = 1 applied)"
    return (
        f"temperature T = {t['value']:.3f}, {verdict}: validation ECE {t['ece_before']:.4f} -> {t['ece_after']:.4f} "
        f"in-sample, {t['cv_ece_before']:.4f} -> {t['cv_ece_after']:.4f} cross-validated"
    )
