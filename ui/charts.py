"""Altair chart builders for the dashboard (no Streamlit calls here).

Every builder takes plain data (dicts, arrays, DataFrames), returns an
``alt.Chart`` (or layer) and has a ``*_frame`` twin that returns the
long-form table the chart draws, so tests can check what is shown.

* :func:`roc_chart`: ROC curves, one line per series, the legend carrying
  "AUC 0.912 [0.850, 0.970]" (DeLong 95% CI), with the chance diagonal;
* :func:`calibration_chart`: reliability diagram with the identity line;
* :func:`threshold_chart`: sensitivity / specificity against the threshold;
* :func:`score_bars`: one bar per model score (DLM-1 or the DLM-2 sub-models)
  with the operating threshold;
* :func:`reader_accuracy_chart`: reader-study accuracy before and after the
  model, with Clopper-Pearson 95% CIs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from softmass_core.labels import display_name
from softmass_core.weights.card_data import format_estimate  # noqa: F401 - re-exported for pages and tables

#: The chart takes its container's width (legend and axes included) while
#: ``height`` stays the plot's own; Streamlit's default "fit" would squeeze the
#: legend into the given height.  Show such charts with ``width="stretch"``.
_FIT_X = alt.AutoSizeParams(type="fit-x", contains="padding")

#: Colours of "before" and "after" in the reader-study chart.
_BEFORE_AFTER = {"Blind (images only)": "#9e9e9e", "With the DLM": "#1f77b4"}


# --------------------------------------------------------------------------- ROC


def roc_label(name: str, auc: Mapping[str, Any] | None) -> str:
    """Legend entry of one ROC series: ``"name: AUC 0.912 [0.850, 0.970]"``."""
    return f"{name}: AUC {format_estimate(auc)}"


def roc_frame(curves: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Long table of ROC points: columns series, fpr, tpr, order.

    Each curve is ``{"name": str, "fpr": [...], "tpr": [...], "auc": {"value",
    "ci_low", "ci_high"} | None}``; curves with no points (one class only) are
    left out.  ``series`` is the legend label (:func:`roc_label`).
    """
    frames = []
    for curve in curves:
        fpr = np.asarray(curve.get("fpr") or [], dtype=float)
        tpr = np.asarray(curve.get("tpr") or [], dtype=float)
        if fpr.size == 0 or fpr.size != tpr.size or np.isnan(fpr).any() or np.isnan(tpr).any():
            continue
        frames.append(
            pd.DataFrame(
                {
                    "series": roc_label(str(curve["name"]), curve.get("auc")),
                    "fpr": fpr,
                    "tpr": tpr,
                    "order": np.arange(fpr.size),
                }
            )
        )
    if not frames:
        return pd.DataFrame({"series": pd.Series(dtype=str), "fpr": [], "tpr": [], "order": []})
    return pd.concat(frames, ignore_index=True)


def roc_chart(
    curves: Sequence[Mapping[str, Any]],
    *,
    title: str = "ROC curve",
    height: int = 340,
    dashed: Sequence[str] = (),
    scheme: str | None = None,
    marks: Sequence[Mapping[str, Any]] = (),
) -> alt.LayerChart:
    """ROC curves (1 - specificity vs sensitivity) with the chance diagonal.

    ``marks`` (``{"series", "point", "fpr", "tpr", "threshold"}``, e.g. the
    operating points) are drawn as shaped points on the curves.

    ``curves`` as in :func:`roc_frame`, coloured in their order.  Series whose
    name is in ``dashed`` are drawn with a dashed line (e.g. a second weight
    set); ``scheme`` names a Vega colour scheme (``"paired"`` gives
    neighbouring series two shades of one hue).  The chart fills its
    container's width; ``height`` is the plot's.
    """
    data = roc_frame(curves)
    dashed_labels = {roc_label(str(c["name"]), c.get("auc")) for c in curves if c["name"] in set(dashed)}
    data["style"] = np.where(data["series"].isin(dashed_labels), "dashed", "solid")
    order = list(dict.fromkeys(data["series"]))
    diagonal = (
        alt.Chart(pd.DataFrame({"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]}))
        .mark_line(color="#bbbbbb", strokeDash=[4, 4])
        .encode(x="fpr:Q", y="tpr:Q")
    )
    lines = (
        alt.Chart(data)
        .mark_line(strokeWidth=2)
        .encode(
            x=alt.X("fpr:Q", title="1 - specificity", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("tpr:Q", title="Sensitivity", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color(
                "series:N",
                sort=order,
                scale=alt.Scale(scheme=scheme) if scheme else alt.Undefined,
                title=None,
                legend=alt.Legend(orient="bottom", direction="vertical", labelLimit=420),
            ),
            strokeDash=alt.StrokeDash(
                "style:N",
                scale=alt.Scale(domain=["solid", "dashed"], range=[[1, 0], [6, 3]]),
                legend=None,
            ),
            order="order:Q",
            tooltip=[
                alt.Tooltip("series:N", title="Series"),
                alt.Tooltip("fpr:Q", title="1 - specificity", format=".3f"),
                alt.Tooltip("tpr:Q", title="Sensitivity", format=".3f"),
            ],
        )
    )
    layers = diagonal + lines
    if marks:
        layers += (
            alt.Chart(pd.DataFrame(list(marks)))
            .mark_point(size=90, filled=True, color="black")
            .encode(
                x="fpr:Q",
                y="tpr:Q",
                shape=alt.Shape("point:N", title=None, legend=alt.Legend(orient="bottom")),
                tooltip=[
                    alt.Tooltip("series:N", title="Cohort"),
                    alt.Tooltip("point:N", title="Operating point"),
                    alt.Tooltip("threshold:Q", format=".3f"),
                    alt.Tooltip("tpr:Q", title="Sensitivity", format=".3f"),
                    alt.Tooltip("fpr:Q", title="1 - specificity", format=".3f"),
                ],
            )
        )
    return layers.properties(title=title, height=height, autosize=_FIT_X)


# --------------------------------------------------------------------------- calibration


def calibration_frame(curves: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Long table from ``{series: stats.curves.calibration_curve(...)}``: series, mean_predicted, fraction_positive, count."""
    frames = [
        pd.DataFrame(
            {
                "series": name,
                "mean_predicted": np.asarray(c["mean_predicted"], dtype=float),
                "fraction_positive": np.asarray(c["fraction_positive"], dtype=float),
                "count": np.asarray(c["count"], dtype=int),
            }
        )
        for name, c in curves.items()
    ]
    if not frames:
        return pd.DataFrame({"series": [], "mean_predicted": [], "fraction_positive": [], "count": []})
    return pd.concat(frames, ignore_index=True)


def calibration_chart(
    curves: Mapping[str, Mapping[str, Any]], *, title: str = "Calibration", height: int = 340
) -> alt.LayerChart:
    """Reliability diagram: mean predicted probability vs observed fraction positive, per series."""
    data = calibration_frame(curves)
    identity = (
        alt.Chart(pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]}))
        .mark_line(color="#bbbbbb", strokeDash=[4, 4])
        .encode(x="x:Q", y="y:Q")
    )
    base = alt.Chart(data).encode(
        x=alt.X("mean_predicted:Q", title="Mean predicted P(malignant)", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("fraction_positive:Q", title="Observed fraction malignant", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("series:N", title=None, sort=list(curves), legend=alt.Legend(orient="bottom", columns=2)),
    )
    line = base.mark_line(strokeWidth=1.5)
    points = base.mark_circle().encode(
        size=alt.Size("count:Q", title="Cases in bin", legend=None, scale=alt.Scale(range=[30, 300])),
        tooltip=[
            alt.Tooltip("series:N", title="Series"),
            alt.Tooltip("mean_predicted:Q", title="Mean predicted", format=".3f"),
            alt.Tooltip("fraction_positive:Q", title="Observed", format=".3f"),
            alt.Tooltip("count:Q", title="Cases"),
        ],
    )
    return (identity + line + points).properties(title=title, height=height, autosize=_FIT_X)


# --------------------------------------------------------------------------- decision curve


def decision_frame(curve: list[Mapping[str, float]]) -> pd.DataFrame:
    """Long table of one decision curve: threshold, strategy (DLM-1 / treat all / treat none), net benefit."""
    rows = []
    for r in curve:
        rows += [
            {"threshold": r["threshold"], "strategy": "DLM-1", "net_benefit": r["net_benefit"]},
            {"threshold": r["threshold"], "strategy": "Treat all", "net_benefit": r["treat_all"]},
            {"threshold": r["threshold"], "strategy": "Treat none", "net_benefit": 0.0},
        ]
    return pd.DataFrame(rows, columns=["threshold", "strategy", "net_benefit"])


def decision_chart(curve: list[Mapping[str, float]], *, title: str = "", height: int = 260) -> alt.Chart:
    """Net benefit against threshold probability for DLM-1, treat all and treat none (Vickers & Elkin 2006).

    The y axis runs from a little below 0 to the prevalence: treat all falls far below 0 at high thresholds,
    which would otherwise squash the curves that matter.
    """
    data = decision_frame(curve)
    top = max([r["treat_all"] for r in curve[:1]] + [r["net_benefit"] for r in curve] + [0.01])
    floor = -0.2 * top
    data["net_benefit"] = data["net_benefit"].clip(lower=floor)
    return (
        alt.Chart(data)
        .mark_line(strokeWidth=1.5)
        .encode(
            x=alt.X("threshold:Q", title="Threshold probability", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("net_benefit:Q", title="Net benefit", scale=alt.Scale(domain=[floor, top * 1.05])),
            color=alt.Color(
                "strategy:N", title=None, sort=["DLM-1", "Treat all", "Treat none"], legend=alt.Legend(orient="bottom")
            ),
            strokeDash=alt.StrokeDash("strategy:N", legend=None, sort=["DLM-1", "Treat all", "Treat none"]),
            tooltip=[
                alt.Tooltip("strategy:N", title="Strategy"),
                alt.Tooltip("threshold:Q", title="Threshold", format=".2f"),
                alt.Tooltip("net_benefit:Q", title="Net benefit", format=".3f"),
            ],
        )
        .properties(title=title, height=height, autosize=_FIT_X)
    )


# --------------------------------------------------------------------------- threshold


def threshold_frame(sweep: pd.DataFrame) -> pd.DataFrame:
    """Long table from ``metrics.threshold_sweep``: threshold, metric, value (sensitivity and specificity)."""
    keep = sweep[["threshold", "sensitivity", "specificity"]]
    out = keep.melt(id_vars="threshold", var_name="metric", value_name="value").dropna()
    out["metric"] = out["metric"].str.capitalize()
    return out


def threshold_chart(sweep: pd.DataFrame, *, threshold: float, title: str = "", height: int = 200) -> alt.LayerChart:
    """Sensitivity and specificity against the DLM-1 threshold, with a rule at ``threshold``.

    Fills the container's width (legend and axes inside it); ``height`` is the plot's.
    """
    data = threshold_frame(sweep)
    lines = (
        alt.Chart(data)
        .mark_line()
        .encode(
            x=alt.X("threshold:Q", title="Threshold on P(malignant)", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("value:Q", title=None, scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("metric:N", title=None, legend=alt.Legend(orient="bottom")),
        )
    )
    rule = alt.Chart(pd.DataFrame({"threshold": [float(threshold)]})).mark_rule(color="black").encode(x="threshold:Q")
    return (lines + rule).properties(title=title, height=height, autosize=_FIT_X)


# --------------------------------------------------------------------------- scores


def score_frame(scores: Mapping[str, float], *, highlight: str | None = None) -> pd.DataFrame:
    """Table of ``{label: probability}``: label, name (display name), score, chosen."""
    rows = [
        {"label": k, "name": display_name(k), "score": float(v), "chosen": k == highlight} for k, v in scores.items()
    ]
    return pd.DataFrame(rows, columns=["label", "name", "score", "chosen"])


def score_bars(
    scores: Mapping[str, float],
    *,
    threshold: float | None = None,
    highlight: str | None = None,
    title: str = "",
    x_title: str = "Probability",
    height: int | None = None,
) -> alt.LayerChart | alt.Chart:
    """Horizontal bars of model scores in [0, 1] (e.g. DLM-2's five sub-model scores).

    ``highlight`` (a key of ``scores``) is drawn in a stronger colour;
    ``threshold`` adds a vertical rule.  Keys are shown by their display names.
    The chart fills its container's width; ``height`` is the plot's (28 px a bar
    by default).
    """
    data = score_frame(scores, highlight=highlight)
    bars = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("score:Q", title=x_title, scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("name:N", title=None, sort=list(data["name"]), axis=alt.Axis(labelLimit=260)),
            color=alt.condition(alt.datum.chosen, alt.value("#d62728"), alt.value("#7f9fbf")),
            tooltip=[alt.Tooltip("name:N", title="Model"), alt.Tooltip("score:Q", title="Score", format=".3f")],
        )
    )
    text = bars.mark_text(align="left", dx=3).encode(text=alt.Text("score:Q", format=".3f"), color=alt.value("black"))
    chart: alt.LayerChart | alt.Chart = bars + text
    if threshold is not None:
        rule = (
            alt.Chart(pd.DataFrame({"score": [float(threshold)]}))
            .mark_rule(color="black", strokeDash=[4, 3])
            .encode(x="score:Q")
        )
        chart = chart + rule
    return chart.properties(title=title, height=height or max(60, 28 * len(data)), autosize=_FIT_X)


# --------------------------------------------------------------------------- reader study

TASK_NAMES = {"benign_vs_malignant": "Benign vs malignant", "benign_subtype": "Benign subtype"}


def reader_accuracy_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """Long table from ``stats.reader_study.reader_study_summary``: reader, task, when, accuracy, ci_low, ci_high, n.

    Rows with no case (n = 0) are left out.  Accuracies are fractions.
    """
    rows = []
    for rec in summary.itertuples(index=False):
        if not rec.n:
            continue
        reader = f"{rec.reader_name or 'reader ' + str(rec.reader_id)}"
        for when, acc, lo, hi, k in (
            ("Blind (images only)", rec.accuracy_before, rec.ci_before_low, rec.ci_before_high, rec.correct_before),
            ("With the DLM", rec.accuracy_after, rec.ci_after_low, rec.ci_after_high, rec.correct_after),
        ):
            rows.append(
                {
                    "reader": reader,
                    "task": TASK_NAMES.get(rec.task, rec.task),
                    "when": when,
                    "accuracy": float(acc),
                    "ci_low": float(lo),
                    "ci_high": float(hi),
                    "correct": int(k),
                    "n": int(rec.n),
                }
            )
    return pd.DataFrame(rows, columns=["reader", "task", "when", "accuracy", "ci_low", "ci_high", "correct", "n"])


def reader_accuracy_chart(summary: pd.DataFrame, *, height: int | None = None) -> alt.FacetChart | alt.LayerChart:
    """Accuracy before and after the DLM per reader (points with 95% CI bars), one panel per task."""
    data = reader_accuracy_frame(summary)
    n_readers = max(1, data["reader"].nunique())
    colour = alt.Color(
        "when:N",
        title=None,
        scale=alt.Scale(domain=list(_BEFORE_AFTER), range=list(_BEFORE_AFTER.values())),
        legend=alt.Legend(orient="bottom"),
    )
    y = alt.Y("reader:N", title=None)
    offset = alt.YOffset("when:N", sort=list(_BEFORE_AFTER))
    base = alt.Chart(data)
    bars = base.mark_rule(strokeWidth=2).encode(
        # Padding keeps the points at 0% and 100% (and those axis labels) inside each panel.
        x=alt.X(
            "ci_low:Q",
            title="Accuracy (95% CI)",
            scale=alt.Scale(domain=[0, 1], nice=False, padding=12),
            axis=alt.Axis(format="%", values=[0, 0.25, 0.5, 0.75, 1]),
        ),
        x2="ci_high:Q",
        y=y,
        yOffset=offset,
        color=colour,
    )
    points = base.mark_point(filled=True, size=80).encode(
        x="accuracy:Q",
        y=y,
        yOffset=offset,
        color=colour,
        tooltip=[
            alt.Tooltip("reader:N", title="Reader"),
            alt.Tooltip("when:N", title="Read"),
            alt.Tooltip("accuracy:Q", title="Accuracy", format=".1%"),
            alt.Tooltip("correct:Q", title="Correct"),
            alt.Tooltip("n:Q", title="Cases"),
        ],
    )
    layered = (bars + points).properties(height=height or 40 + 45 * n_readers, width=280)
    # The gap between the panels keeps the left one's "100%" clear of the right one's "0%".
    return layered.facet(column=alt.Column("task:N", title=None, sort=list(TASK_NAMES.values())), spacing=48)
