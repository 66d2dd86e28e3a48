"""Operating-point chooser, likelihood bar and verdict text (Case and Cohort pages)."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from softmass_core.inference.cascade import CascadeResult
from softmass_core.labels import display_name
from softmass_core.weights import operating
from softmass_core.weights.weight_set import WeightSet

POINT_HELP = (
    "Rule-out: a low threshold with sensitivity >= 95% on validation (few cancers missed; more false alarms). "
    "Balanced: Youden's J. Rule-in: a high threshold with specificity >= 95% on validation (a malignant call is "
    "rarely wrong; more cancers missed)."
)


def point_chooser(ws: WeightSet, key: str, *, extra: tuple[str, ...] = (), on_change=None, scope: str = "") -> str:
    """A horizontal radio of the set's operating points (plus ``extra`` options, e.g. "custom").

    The choice outlives the radio: with ``scope`` (the Case page passes its run's key) each scope gets a radio
    of its own that starts at the last choice.  The Case page draws the radio only once a case has run, so each
    upload hid it, and a radio that came back after being hidden returned to its first option (rule-out).
    """
    points, reason = operating.available_points(ws.manifest)
    names = [*points, *extra]

    def label(name: str) -> str:
        if name in points:
            return f"{operating.POINT_LABELS[name]} ({points[name]['threshold']:.3f})"
        return name.capitalize()

    kept = f"{key}.kept"
    last = st.session_state.get(kept, operating.DEFAULT_POINT)
    widget = f"{key}.{scope}" if scope else key
    if widget in st.session_state and st.session_state[widget] not in names:  # a point the sidebar's new set lacks
        del st.session_state[widget]
    first = names.index(last if last in names else operating.DEFAULT_POINT)
    start = {} if widget in st.session_state else {"index": first}
    choice = st.radio(
        "Operating point",
        names,
        format_func=label,
        horizontal=True,
        key=widget,
        help=POINT_HELP,
        on_change=on_change,
        **start,
    )
    st.session_state[kept] = choice
    if reason:
        st.caption(f"Only the balanced point: {reason}.")
    return str(choice)


def likelihood_frame(result: CascadeResult, ws: WeightSet) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(score, thresholds)``: the case's score with its interval, and each operating point's threshold."""
    lo, hi = result.p_malignant_interval or (result.p_malignant, result.p_malignant)
    score = pd.DataFrame([{"row": "Case", "p": result.p_malignant, "lo": lo, "hi": hi, "verdict": result.verdict}])
    points, _ = operating.available_points(ws.manifest)
    rows = [
        {"point": operating.POINT_LABELS[n], "threshold": float(p["threshold"]), "chosen": n == result.operating_point}
        for n, p in points.items()
    ]
    if result.operating_point not in points:
        rows.append({"point": "Custom", "threshold": result.threshold, "chosen": True})
    return score, pd.DataFrame(rows)


def likelihood_chart(result: CascadeResult, ws: WeightSet) -> alt.LayerChart:
    """P(malignant) as a dot, its interval as a bar, and a rule per operating point (the chosen one solid)."""
    score, thr = likelihood_frame(result, ws)
    x = alt.X("p:Q", scale=alt.Scale(domain=[0, 1]), title="DLM-1 P(malignant), case")
    band = alt.Chart(score).mark_bar(height=14, color="#9ecae9").encode(
        x=alt.X("lo:Q", scale=alt.Scale(domain=[0, 1]), title="DLM-1 P(malignant), case"),
        x2="hi:Q", y=alt.Y("row:N", title=None),
    )  # fmt: skip
    dot = alt.Chart(score).mark_point(filled=True, size=120, color="#1f3b73").encode(
        x=x, y="row:N",
        tooltip=[alt.Tooltip("p:Q", format=".3f", title="P(malignant)"), alt.Tooltip("lo:Q", format=".3f"),
                 alt.Tooltip("hi:Q", format=".3f"), alt.Tooltip("verdict:N")],
    )  # fmt: skip
    rules = (
        alt.Chart(thr)
        .mark_rule(size=2)
        .encode(
            x="threshold:Q",
            color=alt.Color("point:N", title="Threshold", legend=alt.Legend(orient="bottom")),
            strokeDash=alt.condition("datum.chosen", alt.value([1, 0]), alt.value([4, 3])),
            tooltip=[alt.Tooltip("point:N"), alt.Tooltip("threshold:Q", format=".3f")],
        )
    )
    return (band + rules + dot).properties(height=90)


def result_at_point(ws: WeightSet, case, rois, point: str, key: str, result: CascadeResult):
    """``(key, result)`` at operating ``point``: re-decided from the stored scores; the case runs again with
    every model only when the point needs DLM-2 scores the balanced run did not compute."""
    from softmass_core.inference.cascade import Cascade
    from softmass_core.inference.points import needs_dlm2, result_at
    from ui.case_view import run_case

    cascade = Cascade(ws, operating_point=point)
    if needs_dlm2(cascade, result):
        key, result = run_case(ws, case, rois, run_all=True)
    return key, result_at(cascade, result)


def verdict_text(result: CascadeResult, ws: WeightSet) -> str:
    """The verdict in plain words (no icons): indeterminate says which threshold the range crosses; a set
    without a measured range, or whose thresholds no validation cohort chose, says so."""
    subtype = display_name(result.subtype_if_benign) if result.subtype_if_benign else None
    if result.verdict == "malignant":
        subtype = None
    measured = result.p_malignant_interval is not None
    span = "no range measured" if not measured else "range {:.3f}-{:.3f}".format(*result.p_malignant_interval)
    text = operating.describe_verdict(result.verdict, result.operating_point, subtype, measured=measured)
    if ws.entry("dlm1").threshold_method.startswith("unvalidated"):
        text += " Its threshold is an unvalidated 0.5: no validation cohort chose it."
    return (
        f"**Verdict: {result.verdict.capitalize()}** (operating point {result.operating_point}, threshold "
        f"{result.threshold:.3f}; P(malignant) {result.p_malignant:.3f}, {span}). {text}"
    )


def cohort_threshold(ws: WeightSet, ev, eid: str, slider) -> tuple[float, str | None]:
    """``(threshold, point text)`` from the Cohort page's chooser: a set's point, or "custom" (the ``slider``).

    The text is None for balanced and custom (the set's own threshold, or one chosen on the page, say so
    themselves)."""
    points, _ = operating.available_points(ws.manifest)
    point_key, slider_key = f"cohort.point.{eid[:16]}", f"cohort.threshold.{eid[:16]}"

    def chosen() -> None:  # a point moves the slider to its threshold
        name = st.session_state[point_key]
        if name in points:
            st.session_state[slider_key] = round(float(points[name]["threshold"]), 3)

    def moved() -> None:  # moving the slider makes the threshold a custom one
        st.session_state[point_key] = "custom"

    name = point_chooser(ws, point_key, extra=("custom",), on_change=chosen)
    value = float(slider(ev, eid, on_change=moved))
    if name == "custom":
        return value, None
    text = None if name == operating.DEFAULT_POINT else operating.point_text(ws.manifest, name)
    return float(points[name]["threshold"]), text


def roc_marks(ws: WeightSet, ev, shown) -> list[dict]:
    """Each shown cohort's (1 - specificity, sensitivity) at every operating point of the set, for the ROC chart."""
    points, _ = operating.available_points(ws.manifest)
    preds = ev.predictions
    out = []
    for cohort in shown:
        rows = preds[preds["cohort"].astype(str) == cohort]
        y = rows["y_malignant"].to_numpy(dtype=int)
        if len(set(y)) < 2:
            continue
        for name, p in points.items():
            se, sp = operating.sens_spec(y, rows["p_malignant"].to_numpy(dtype=float), float(p["threshold"]))
            label = operating.POINT_LABELS[name]
            out.append({"series": cohort, "point": label, "threshold": float(p["threshold"]), "fpr": 1 - sp, "tpr": se})
    return out
