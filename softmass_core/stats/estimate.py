"""The result types shared by the statistics: :class:`Estimate` and :class:`UndefinedMetricWarning`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for these data (e.g. one class only) and is NaN."""


def _json_float(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval.

    ``value``, ``ci_low`` and ``ci_high`` are floats (NaN when undefined);
    ``method`` names how the interval was computed (e.g. ``"DeLong"``).
    """

    value: float
    ci_low: float
    ci_high: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict ``{"value", "ci_low", "ci_high", "method"}``; NaN -> None."""
        return {
            "value": _json_float(self.value),
            "ci_low": _json_float(self.ci_low),
            "ci_high": _json_float(self.ci_high),
            "method": self.method,
        }
