"""Altair charts of one cascade result (the Case page)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from softmass_core.inference.cascade import CascadeResult
from softmass_core.labels import DLM1, MODALITY_NAMES, SUBMODEL_IDS, model_name

#: Chart sizes in screen pixels: one bar row, and what the axes, their titles and a legend take.
_ROW_PX = 32
_SUB_BAR_PX = 13
_AXES_PX = 64
_LEGEND_ROW_PX = 20


def _fused_name(result: CascadeResult) -> str:
    return f"Case ({result.fusion_rule} of images)"


def _single(result: CascadeResult) -> bool:
    """One image: its scores are the case's, so the charts show it once."""
    return len(result.per_image) == 1


def _source_name(result: CascadeResult, modality: str) -> str:
    name = MODALITY_NAMES.get(modality, modality)
    return f"{name} (the case)" if _single(result) else name


def dlm1_frame(result: CascadeResult) -> pd.DataFrame:
    """Rows ``source, p_malignant``: one per image, then the fused case score (one row for a one-image case)."""
    rows = [{"source": _source_name(result, m), "p_malignant": p} for m, p in result.per_image_p_malignant().items()]
    if not _single(result):
        rows.append({"source": _fused_name(result), "p_malignant": result.p_malignant})
    return pd.DataFrame(rows)


def dlm1_chart(result: CascadeResult) -> alt.LayerChart:
    """Horizontal bars of DLM-1's P(malignant) per image and fused, with the threshold as a red rule."""
    frame = dlm1_frame(result)
    order = list(frame["source"])
    base = alt.Chart(frame).encode(
        y=alt.Y("source:N", sort=order, title=None, axis=alt.Axis(labelLimit=260)),
        x=alt.X("p_malignant:Q", scale=alt.Scale(domain=[0, 1]), title="DLM-1 P(malignant)"),
        tooltip=[alt.Tooltip("source:N"), alt.Tooltip("p_malignant:Q", format=".3f")],
    )
    bars = base.mark_bar(color="#4c78a8")
    labels = base.mark_text(align="left", dx=4).encode(text=alt.Text("p_malignant:Q", format=".3f"))
    rule = (
        alt.Chart(pd.DataFrame({"threshold": [result.threshold]}))
        .mark_rule(color="#d62728", strokeDash=[6, 3], size=2)
        .encode(x="threshold:Q", tooltip=[alt.Tooltip("threshold:Q", format=".3f", title="Operating threshold")])
    )
    # At least two rows' height: one bar alone in a short chart was a sliver.
    return (bars + labels + rule).properties(height=_ROW_PX * max(len(frame), 2) + _AXES_PX)


def sub_scores_frame(result: CascadeResult) -> pd.DataFrame:
    """Rows ``model, source, score`` for the five sub-models, per image and fused (empty if none ran).

    A one-image case has no fused rows: the image's scores are the case's.
    """
    rows = []
    for sm_id, subtype in SUBMODEL_IDS.items():
        model = model_name(sm_id)
        for m, probs in result.per_image.items():
            if sm_id in probs:
                rows.append({"model": model, "source": _source_name(result, m), "score": probs[sm_id]})
        if result.sub_scores is not None and not _single(result):
            rows.append({"model": model, "source": _fused_name(result), "score": result.sub_scores[subtype]})
    return pd.DataFrame(rows, columns=["model", "source", "score"])


def sub_scores_chart(result: CascadeResult) -> alt.Chart:
    """Grouped horizontal bars of the five sub-model scores, per image and fused."""
    frame = sub_scores_frame(result)
    sources = list(dict.fromkeys(frame["source"]))
    models = list(dict.fromkeys(frame["model"]))
    # One legend row per source (a row of three was cut at the column's edge), none for one source.
    legend = alt.Legend(orient="bottom", labelLimit=300, columns=1) if len(sources) > 1 else None
    plot_px = len(models) * (_SUB_BAR_PX * len(sources) + 10)
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("model:N", sort=models, title=None, axis=alt.Axis(labelLimit=260)),
            yOffset=alt.YOffset("source:N", sort=sources),
            x=alt.X("score:Q", scale=alt.Scale(domain=[0, 1]), title="Sub-model score"),
            color=alt.Color(
                "source:N",
                sort=sources,
                title=None,
                legend=legend,
                scale=alt.Scale(range=["#9ecae9", "#f58518", "#4c78a8"][-len(sources) :]),
            ),
            tooltip=[alt.Tooltip("model:N"), alt.Tooltip("source:N"), alt.Tooltip("score:Q", format=".3f")],
        )
        .properties(height=plot_px + _AXES_PX + (_LEGEND_ROW_PX * len(sources) if legend else 0))
    )


def per_image_table(result: CascadeResult) -> pd.DataFrame:
    """One row per image and the fused case: every model's probability (blank where it did not run)."""
    cols = [mid for mid in (DLM1, *SUBMODEL_IDS) if mid in result.models_run]
    names = {mid: model_name(mid) for mid in cols}
    rows = []
    for m, probs in result.per_image.items():
        rows.append({"image": MODALITY_NAMES.get(m, m), **{names[c]: probs.get(c) for c in cols}})
    fused = {names[DLM1]: result.p_malignant}
    if result.sub_scores is not None:
        fused.update({names[sm]: result.sub_scores[st] for sm, st in SUBMODEL_IDS.items() if sm in names})
    rows.append({"image": _fused_name(result), **fused})
    return pd.DataFrame(rows).set_index("image")
