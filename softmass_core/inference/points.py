"""A cascade result read again at another DLM-1 operating point, without running a model again.

The Case page runs a case once at the set's balanced point; choosing rule-out
or rule-in re-decides it from the stored per-image probabilities
(:func:`result_at`).  A case that the new point calls benign or
indeterminate needs DLM-2's scores; :func:`needs_dlm2` says when the stored
result lacks them, so the caller runs the case again with ``run_all``.
"""

from __future__ import annotations

from dataclasses import replace

from softmass_core.inference.cascade import Cascade, CascadeResult
from softmass_core.weights import operating


def needs_dlm2(cascade: Cascade, result: CascadeResult) -> bool:
    """True when ``cascade``'s point would run DLM-2 on this case and ``result`` has no DLM-2 scores."""
    if not cascade.weight_set.has_dlm2 or result.sub_scores is not None:
        return False
    return operating.score_interval(result.p_malignant, cascade.interval_halfwidth)[0] < cascade.threshold


def result_at(cascade: Cascade, result: CascadeResult) -> CascadeResult:
    """``result`` decided at ``cascade``'s threshold (its operating point), with its interval and verdict."""
    decision = cascade.decide(result.per_image)
    return replace(
        result,
        threshold=cascade.threshold,
        malignant=decision.malignant,
        sub_scores=decision.sub_scores,
        diagnosis=decision.diagnosis,
        stopped_because=decision.reason,
        **cascade.verdict_fields(decision),
    )
