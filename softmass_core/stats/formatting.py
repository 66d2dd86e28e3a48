"""Numbers as the tables print them: the one p-value formatter of the core, the dashboard and the model cards.

Standard library only, so that presentation modules may import it without
loading the statistics libraries.
"""

from __future__ import annotations

import math


def format_p(p: float | None, test: str = "") -> str:
    """A p-value as tables print it: ``"<0.001"``, else three decimals; ``"n/a"`` when None or NaN.

    ``test`` (e.g. ``"ANOVA"``) is added in brackets.  The one formatter of
    the core's and the dashboard's tables and of the model cards.

    >>> format_p(0.04213), format_p(2e-5, "chi-square"), format_p(float("nan"), "ANOVA")
    ('0.042', '<0.001 (chi-square)', 'n/a (ANOVA)')
    """
    text = "n/a" if p is None or math.isnan(p) else "<0.001" if p < 0.001 else f"{p:.3f}"
    return f"{text} ({test})" if test else text
