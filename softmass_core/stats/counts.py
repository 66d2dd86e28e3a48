"""The 2 x 2 counts of a binary test: true and false positives and negatives."""

from __future__ import annotations

from typing import Any

import numpy as np

from softmass_core.stats.validation import check_pair, check_threshold


def outcome_counts(y: np.ndarray, predicted: np.ndarray) -> dict[str, int]:
    """``{"tp", "fp", "fn", "tn"}`` of validated bool arrays ``y`` (truth) and ``predicted``, shape ``(n,)``."""
    # The same counts as sklearn.metrics.confusion_matrix (tested), without its input checks, which
    # cost ~30 ms per call and are repeated here for every threshold and bootstrap table.
    tp = int(np.count_nonzero(y & predicted))
    fp = int(np.count_nonzero(~y & predicted))
    fn = int(np.count_nonzero(y & ~predicted))
    tn = int(y.size - tp - fp - fn)
    return {"tp": int(tp), "fp": int(fp), "fn": int(fn), "tn": int(tn)}


def confusion_counts(labels: Any, scores: Any, *, threshold: float = 0.5) -> dict[str, int]:
    """``{"tp", "fp", "fn", "tn"}`` calling a case positive when ``score >= threshold``.

    >>> confusion_counts([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1])
    {'tp': 2, 'fp': 1, 'fn': 0, 'tn': 1}
    """
    y, s = check_pair(labels, scores)
    return outcome_counts(y, s >= check_threshold(threshold))
