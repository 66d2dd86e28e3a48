"""Standard JSON from the engine's results: NaN (an undefined metric) is written as null."""

from __future__ import annotations

import math
from typing import Any


def nan_to_none(obj: Any) -> Any:
    """``obj`` with every float NaN (in nested dicts, lists and tuples) replaced by None, for standard JSON."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [nan_to_none(v) for v in obj]
    return obj
