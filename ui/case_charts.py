"""Altair charts of one cascade result (the Case page)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from softmass_core.cascade import CascadeResult
from softmass_core.labels import DLM1, SUBMODEL_IDS
from softmass_core.report import MODALITY_NAMES, model_name


def _fused_name(result: CascadeResult) -> str:
    return f"Case ({result.fusion_rule} of images)"


def dlm1_frame(result: CascadeResult) -> pd.DataFrame:
    """Rows ``source, p_malignant``: one per image, then the fused case score."""
    rows = [{"source": MODALITY_NAMES.get(m, m), "p_malignant": p} for m, p in result.per_image_p_malignant().items()]
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
    return (bars + labels + rule).properties(height=40 * len(frame) + 20)


def sub_scores_frame(result: CascadeResult) -> pd.DataFrame:
    """Rows ``model, subtype, source, score`` for the five sub-models, per image and fused (empty if none ran)."""
    rows = []
    for sm_id, subtype in SUBMODEL_IDS.items():
        model = model_name(sm_id)
        for m, probs in result.per_image.items():
            if sm_id in probs:
                rows.append({"model": model, "source": MODALITY_NAMES.get(m, m), "score": probs[sm_id]})
        if result.sub_scores is not None:
            rows.append({"model": model, "source": _fused_name(result), "score": result.sub_scores[subtype]})
    return pd.DataFrame(rows, columns=["model", "source", "score"])


def sub_scores_chart(result: CascadeResult) -> alt.Chart:
    """Grouped horizontal bars of the five sub-model scores, per image and fused."""
    frame = sub_scores_frame(result)
    sources = list(dict.fromkeys(frame["source"]))
    models = list(dict.fromkeys(frame["model"]))
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
                legend=alt.Legend(orient="bottom", labelLimit=300, columns=3),
                scale=alt.Scale(range=["#9ecae9", "#f58518", "#4c78a8"][-len(sources) :]),
            ),
            tooltip=[alt.Tooltip("model:N"), alt.Tooltip("source:N"), alt.Tooltip("score:Q", format=".3f")],
        )
        .properties(height=max(180, 16 * len(frame) + 40))
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
