"""The input check on the pages: the Case page's warning above the verdict, the Cohort page's rates.

The check itself is :mod:`softmass_core.inference.input_check`; this module only shows it.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from softmass_core.inference.input_check import NOT_AVAILABLE, cohort_rates, warning_text

WARNING_ICON = ":material/block:"


def input_check_banner(result: Any) -> bool:
    """Show the input check above the verdict; True when the case is flagged (grey the verdict then)."""
    check = result.input_check
    if check is None or check.out_of_distribution is None:
        st.caption(f"Input check: {NOT_AVAILABLE}. Nothing says whether this image is like the ones it learned.")
        return False
    text = warning_text(check) if check.out_of_distribution else None
    if text:
        st.error(f"**{text}**", icon=WARNING_ICON)
        for m, c in check.flagged.items():
            st.caption(f"Input check, {m} image: {c.reason}.")
        return True
    st.caption(
        "Input check: "
        + "; ".join(f"{m} score {c.score:.1f} within limit {c.threshold:.1f}" for m, c in check.images.items())
        + " (like the images this weight set learned)."
    )
    return False


def greyed_verdict(verdict: str) -> None:
    """The verdict, greyed: the input check flagged the case, so it is not meaningful."""
    st.markdown(f":gray[{verdict} (not meaningful: see the warning above)]")


def show_cohort_rates(ev: Any, ws: Any, shown: list[str]) -> None:
    """Share of cases per cohort that the input check flags (any of a case's images)."""
    rates = cohort_rates(ev.predictions, ws.input_stats is not None)
    st.subheader("Input check")
    if not rates:
        st.caption("This evaluation has no input-check column (made before the check existed): press Evaluate again.")
        return
    rows = [
        {"cohort": c, "flagged": r["n_flagged"], "cases": r["n"], "rate": r["rate"]}
        for c, r in rates.items()
        if c in shown
    ]
    st.dataframe(rows, key="cohort.input_check", column_config={"rate": st.column_config.NumberColumn(format="%.3f")})
    if ws.input_stats is None:
        st.caption(f"{NOT_AVAILABLE.capitalize()}: only unreadable images (blank, tiny, colour) are counted.")
    else:
        st.caption(
            "Cases with an image unlike the images this weight set learned (or unreadable: blank, tiny, colour in "
            "the B-mode slot). The limit flags 5 % of validation images."
        )
