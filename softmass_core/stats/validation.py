"""Input checks shared by the statistics modules (package-internal).

Each check returns the validated value as a numpy array or Python number, or
raises :class:`~softmass_core.errors.MetricsError` with a message that quotes
the bad value and says what to do.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import stats

from softmass_core.errors import MetricsError
from softmass_core.stats.estimate import UndefinedMetricWarning


def show(value: Any) -> str:
    """repr() of a user's value, without numpy's ``np.float64(...)`` wrapper."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _is_number(value: Any) -> bool:
    if value is None:
        return True  # reported as a missing (NaN) score below
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def warn_undefined(message: str) -> None:
    warnings.warn(message, UndefinedMetricWarning, stacklevel=3)


def _as_1d(values: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values)
    except Exception as err:  # ragged nested lists and similar
        raise MetricsError(f"{name} could not be read as an array: {err}") from err
    if arr.ndim != 1:
        raise MetricsError(f"{name} must be a 1-D sequence with one value per case; got an array of shape {arr.shape}.")
    return arr


def as_binary(values: Any, name: str = "labels") -> np.ndarray:
    """Validate 0/1 or bool values; return a bool array of shape (n,)."""
    arr = _as_1d(values, name)
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(float)
        except (TypeError, ValueError):
            bad = next((i, v) for i, v in enumerate(arr.tolist()) if not isinstance(v, (bool, int, float, np.number)))
            raise MetricsError(
                f"{name} must be 0/1 or True/False (1 = positive); found {show(bad[1])} at index {bad[0]}."
            ) from None
    if arr.dtype.kind not in "iuf":
        example = arr[0] if arr.size else None
        raise MetricsError(
            f"{name} must be 0/1 or True/False (1 = positive); got values of type "
            f"{arr.dtype} such as {show(example)}. Convert them first, e.g. "
            f"(labels == 'malignant')."
        )
    if arr.dtype.kind == "f":
        nan_at = np.flatnonzero(np.isnan(arr))
        if nan_at.size:
            raise MetricsError(
                f"{name} contain NaN at index {int(nan_at[0])} "
                f"({nan_at.size} missing in all); drop cases without a "
                f"reference value first."
            )
    bad_at = np.flatnonzero((arr != 0) & (arr != 1))
    if bad_at.size:
        i = int(bad_at[0])
        raise MetricsError(f"{name} must be 0/1 or True/False (1 = positive); found {show(arr[i])} at index {i}.")
    return arr.astype(bool)


def as_scores(values: Any, name: str = "scores") -> np.ndarray:
    """Validate finite numeric scores; return float64 of shape (n,)."""
    arr = _as_1d(values, name)
    if arr.dtype.kind not in "biuf":
        if arr.dtype.kind in "US" and not isinstance(values, np.ndarray):
            arr = np.asarray(values, dtype=object)  # undo numpy's mixed-list coercion to str
        values_list = arr.tolist()
        bad = next(
            ((i, v) for i, v in enumerate(values_list) if isinstance(v, (str, bytes)) or not _is_number(v)),
            None,
        )
        if bad is not None:
            raise MetricsError(f"{name} must be numbers; found {show(bad[1])} at index {bad[0]}.")
        arr = np.array([math.nan if v is None else float(v) for v in values_list], dtype=np.float64)
    arr = arr.astype(np.float64, copy=False)
    bad_at = np.flatnonzero(~np.isfinite(arr))
    if bad_at.size:
        i = int(bad_at[0])
        raise MetricsError(
            f"{name} must be finite numbers; found {show(arr[i])} at index {i} "
            f"({bad_at.size} non-finite in all). Remove or re-score these "
            f"cases before computing metrics."
        )
    return arr


def check_pair(
    labels: Any, other: Any, other_name: str = "scores", *, binary_other: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    y = as_binary(labels, "labels")
    x = as_binary(other, other_name) if binary_other else as_scores(other, other_name)
    if y.shape[0] != x.shape[0]:
        raise MetricsError(
            f"labels and {other_name} must have the same length; got {y.shape[0]} labels and {x.shape[0]} {other_name}."
        )
    if y.shape[0] == 0:
        raise MetricsError("No cases: labels and scores are empty.")
    return y, x


def check_alpha(alpha: float) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise MetricsError(f"alpha must be a number in (0, 1); got {show(alpha)}.") from None
    if not 0.0 < a < 1.0:
        raise MetricsError(f"alpha must be in (0, 1), e.g. 0.05 for 95% CIs; got {show(alpha)}.")
    return a


def check_threshold(threshold: float) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise MetricsError(f"threshold must be a number; got {show(threshold)}.") from None
    if not math.isfinite(t):
        raise MetricsError(f"threshold must be finite; got {show(threshold)}.")
    return t


def check_n_boot(n_boot: int) -> int:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise MetricsError(f"n_boot must be a positive integer, e.g. 2000; got {show(n_boot)}.")
    return int(n_boot)


def check_count(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise MetricsError(f"{name} must be a whole number; got {show(value)}.")
    whole = isinstance(value, (int, np.integer)) or (
        isinstance(value, (float, np.floating)) and float(value).is_integer()
    )
    if not whole:
        raise MetricsError(f"{name} must be a whole number; got {show(value)}.")
    out = int(value)
    if out < 0:
        raise MetricsError(f"{name} must be >= 0; got {show(value)}.")
    return out


def check_k_n(k: Any, n: Any) -> tuple[int, int]:
    k_i, n_i = check_count(k, "k"), check_count(n, "n")
    if k_i > n_i:
        raise MetricsError(f"k must not exceed n; got k={k_i}, n={n_i}.")
    return k_i, n_i


def z_value(alpha: float) -> float:
    return float(stats.norm.ppf(1.0 - alpha / 2.0))


def percentile_ci(samples: np.ndarray, alpha: float) -> tuple[float, float]:
    lo, hi = np.percentile(samples, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)])
    return float(lo), float(hi)
