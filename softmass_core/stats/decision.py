"""Decision-curve analysis (Vickers & Elkin, Med Decis Making 2006): is acting on the model worth it?

At a threshold probability ``pt`` a case is called positive when its score is
``>= pt``.  The model's net benefit is ``TP/n - FP/n * pt / (1 - pt)``: true
positives found, minus false positives weighted by the odds at which a
clinician would just be indifferent between acting and not.  "Treat all"
calls every case positive (``prevalence - (1 - prevalence) * pt / (1 - pt)``),
"treat none" has net benefit 0.  A model helps at ``pt`` where its curve lies
above both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from softmass_core.errors import MetricsError
from softmass_core.stats.validation import check_pair, show

#: Threshold probabilities of a decision curve: 0.01, 0.02, ..., 0.99.
DECISION_THRESHOLDS: tuple[float, ...] = tuple(round(i / 100, 2) for i in range(1, 100))


def decision_curve(
    labels: Any, scores: Any, thresholds: Sequence[float] = DECISION_THRESHOLDS
) -> list[dict[str, float]]:
    """``[{"threshold", "net_benefit", "treat_all"}, ...]``, one entry per threshold probability in (0, 1).

    ``labels`` (n,) are 0/1 (1 = positive), ``scores`` (n,) the model's
    probabilities.  Defined for a cohort of one class too (prevalence 0 or 1).

    >>> [round(r["net_benefit"], 4) for r in decision_curve([1, 1, 0, 0], [0.9, 0.6, 0.7, 0.1], [0.5])]
    [0.25]
    """
    y, s = check_pair(labels, scores)
    pts = np.asarray(list(thresholds), dtype=np.float64)
    bad = np.flatnonzero(~((pts > 0.0) & (pts < 1.0)))
    if bad.size:
        raise MetricsError(f"Decision-curve thresholds must lie strictly between 0 and 1; got {show(pts[bad[0]])}.")
    n = y.size
    prevalence = float(np.count_nonzero(y)) / n
    out = []
    for pt in pts:
        called = s >= pt
        tp = np.count_nonzero(called & y)
        fp = np.count_nonzero(called & ~y)
        odds = pt / (1.0 - pt)
        out.append(
            {
                "threshold": float(pt),
                "net_benefit": float(tp / n - fp / n * odds),
                "treat_all": float(prevalence - (1.0 - prevalence) * odds),
            }
        )
    return out
