"""The Cohort page's inputs and result sections (Streamlit).

The page reads its widgets through :func:`cohort_source`, :func:`pick_cohorts`
and :func:`current_evaluation`, then draws each section of the results with
one call (``show_*``).  Numbers come from the core through the cached helpers
of :mod:`ui.cohort_data`; tables from :mod:`ui.cohort_tables`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from softmass_core.cohorts.calibration import ece_caption
from softmass_core.cohorts.cohort import Cohort
from softmass_core.cohorts.evaluate import Evaluation, evaluation_at, operating_point_at, predictions_at
from softmass_core.data import demo
from softmass_core.labels import DLM1, SUBMODEL_IDS, SUBTYPES, cohort_label, display_name
from softmass_core.weights.weight_set import WeightSet
from ui import charts, common
from ui import cohort_data as data
from ui import cohort_tables as tables

# Session-state keys of the Cohort page.
KEY_CURRENT = "softmass.cohort.current"  # the evaluation shown: {"id", "csv", "cohorts", "folder", ...}
KEY_COMPARE = "softmass.cohort.compare"  # the comparison set's: {"id", "base", "folder"}

SOURCE_DEMO = "Demo cohorts (simulated hospitals 1-3)"
SOURCE_SERVER = "Cohort folder or CSV on the server"
SOURCE_UPLOAD = "Upload a zip (cohort CSV + images)"
SOURCES = (SOURCE_DEMO, SOURCE_SERVER, SOURCE_UPLOAD)
#: Demo cohort sizes, as fractions of the paper's 1051 cases.
DEMO_SCALES = (0.05, 0.1, 0.25, 0.5, 1.0)
PAPER_CASES = 1051

DELONG_HELP = (
    "DeLong's method gives the AUC's 95% confidence interval straight from the scores, without resampling. "
    "The paired DeLong test compares two AUCs measured on the same cases, allowing for the fact that both "
    "models saw the same patients; a small p (say below 0.05) means a difference this large would rarely "
    "arise by chance alone."
)
YOUDEN_HELP = (
    "Youden's J is sensitivity + specificity - 1. The set's operating threshold is the score at which J was "
    "largest on its validation cohort: the point of the ROC curve farthest above the chance line, which counts "
    "a missed malignancy and a false alarm as equally bad. Move the slider to weigh them differently."
)


def ws_label(m) -> str:
    return f"{common.weight_set_label(m)} [{m.id}]"


def default_cohorts(names: list[str], *, is_demo: bool) -> list[str]:
    """Cohorts evaluated unless the user picks others: all, except the demo's training cohort (the shipped
    ``phantom`` set learned those very cases, and they are 59% of the draw)."""
    kept = [n for n in names if n != "training"] if is_demo else list(names)
    return kept or list(names)


def remember(result_id: str, ws: WeightSet, cohort: Cohort, cohorts, *, source: str, folder: str, how: str) -> dict:
    """Make evaluation ``result_id`` the one the page shows; returns its session record."""
    st.session_state[KEY_CURRENT] = {
        "id": result_id,
        "csv": str(cohort.csv_path),
        "cohorts": list(cohorts),
        "demo": source == SOURCE_DEMO,
        "data_kind": ws.manifest.data_kind,
        "views": common.tta_text(ws.manifest.tta),
        "folder": folder,
        "source": how,
    }
    return st.session_state[KEY_CURRENT]


# ----------------------------------------------------------------------------- inputs


def cohort_source(source: str) -> tuple[Path | None, float]:
    """The widgets of ``source``: the cohort CSV they name (None until there is one) and the demo's scale."""
    csv_path: Path | None = None
    scale = demo.DEMO_COHORT_SCALE
    if source == SOURCE_DEMO:
        scale = st.select_slider(
            "Demo cohort size",
            options=DEMO_SCALES,
            value=demo.DEMO_COHORT_SCALE,
            format_func=lambda s: f"{s:g}x the paper (~{round(s * PAPER_CASES)} cases)",
            key="cohort.scale",
        )
        ready = demo.demo_cohort_dir(common.cache_root(), scale=scale) / "cohort.csv"
        if ready.is_file():
            csv_path = ready
        else:
            st.caption(
                "Simulated cases are generated on first use (a progress bar shows how far; the paper-sized "
                f"draw takes a few minutes on a small CPU) and kept under `{common.cache_root()}`, as are the "
                "evaluations, so later visits are instant."
            )
    elif source == SOURCE_SERVER:
        text = st.text_input(
            "Path of a cohort CSV, or of a folder holding cohort.csv",
            key="cohort.path",
            help="A path on the machine that runs this app. Columns: case_id, cohort, label, gray_path/cdfi_path, "
            "gray_roi/cdfi_roi, optional age and sex (see the README).",
        )
        if text.strip():
            with common.guarded():
                csv_path = data.resolve_server_csv(text)
    else:
        upload = st.file_uploader(
            "Cohort zip: one cohort CSV and the images it names (paths relative to the CSV)",
            type=["zip"],
            key="cohort.upload",
            max_upload_size=200,
        )
        if upload is not None:
            with common.guarded():
                csv_path = data.extract_upload(upload.getvalue(), common.cache_root() / "uploads", upload.name)
    return csv_path, scale


def pick_cohorts(csv_path: Path | None, source: str) -> tuple[Cohort | None, list[str]]:
    """The validated cohort of ``csv_path`` and the cohorts of it the user picks to evaluate."""
    if csv_path is None:
        return None, []
    with common.guarded():
        cohort = data.cohort_from(csv_path)
    chosen = st.multiselect(
        "Cohorts to evaluate",
        cohort.names,
        default=default_cohorts(cohort.names, is_demo=source == SOURCE_DEMO),
        key=f"cohort.names.{csv_path}",
        help="The demo leaves its training cohort out at first: the shipped phantom set learned those cases, so "
        "their figures are optimistic. Add it to see them next to the held-out cohorts."
        if source == SOURCE_DEMO
        else None,
    )
    return cohort, chosen


def current_evaluation(ws: WeightSet, folder: str, cohort: Cohort | None, chosen: list[str], source: str):
    """The session's evaluation record; a stored evaluation of this set and these cohorts becomes it at once."""
    current = st.session_state.get(KEY_CURRENT)
    wanted = (folder, str(cohort.csv_path) if cohort else None, list(chosen))
    if (
        cohort is None
        or not chosen
        or (current is not None and (current["folder"], current["csv"], current["cohorts"]) == wanted)
    ):
        return current
    # Evaluated before (by any session, or before a restart)? Then show it without running a model.
    with common.guarded():
        found = data.find_evaluation(ws, cohort, chosen)
    if found is not None:
        current = remember(found, ws, cohort, chosen, source=source, folder=folder, how="disk")
    return current


def run_evaluation(ws: WeightSet, folder: str, cohort: Cohort | None, chosen: list[str], source: str, scale: float):
    """Evaluate the sidebar's set (generating the demo cohort on first use); returns the new session record."""
    with common.guarded():
        if cohort is None:  # the demo cohort, first use
            bar = st.progress(0.0, text="Generating the simulated cohorts ...")
            csv_path = demo.ensure_demo_cohort(
                common.cache_root(), scale=scale, progress=data.progress_reporter(bar, "Generating simulated cases")
            )
            bar.empty()
            cohort = data.cohort_from(csv_path)
            chosen = default_cohorts(cohort.names, is_demo=True)
        result = data.evaluate_cohort(ws, cohort, chosen, label=ws.id)
        current = remember(result.entry_id, ws, cohort, chosen, source=source, folder=folder, how="run")
        if result.note:
            st.caption(f"Evaluation cache: {result.note}.")
    return current


# ----------------------------------------------------------------------------- results


def show_header(ev: Evaluation, current: dict[str, Any]) -> list[str]:
    """Title, provenance and data note of the results; returns the cohorts the user chose to show."""
    names = list(dict.fromkeys(ev.predictions["cohort"].astype(str)))
    st.subheader(f"{ev.weight_set_id} v{ev.weight_set_version} on {len(ev.predictions)} cases")
    st.caption(
        f"Cohort file `{current['csv']}`; each model scores the {current.get('views', 'image')}; "
        f"fusion of the images: {ev.fusion_rule}."
        + (" Read from the evaluation cache (no model was run)." if current.get("source") == "disk" else "")
    )
    st.warning(tables.data_note(current["data_kind"], demo=current["demo"]), icon=":material/info:")
    return st.multiselect("Cohorts shown", names, default=names, key=f"cohort.shown.{current['id'][:16]}")


def threshold_slider(ev: Evaluation, eid: str, on_change=None) -> float:
    key = f"cohort.threshold.{eid[:16]}"
    start = {} if key in st.session_state else {"value": float(ev.threshold)}  # an operating point may set it
    return st.slider(
        "DLM-1 threshold on P(malignant)",
        min_value=0.0,
        max_value=1.0,
        step=0.001,
        format="%.3f",
        key=key,
        help="Cases scoring at or above it are called malignant. The metrics below follow it; the AUC does not.",
        on_change=on_change,
        **start,
    )


def show_table2(ev: Evaluation, dlm1: dict[str, Any], threshold: float, point: str | None = None) -> None:
    """Table 2 at the slider's threshold: recomputed from the kept predictions, no model run."""
    operating_point = operating_point_at(ev, threshold, point)
    st.dataframe(tables.table2(dlm1, operating_point=operating_point), key="cohort.table2")
    st.caption(
        f"Threshold {threshold:.3f}: "
        + (f"the {operating_point}." if threshold == float(ev.threshold) and not point else f"{operating_point}.")
        + " Brackets: 95% CI; AUC DeLong, ACC/sensitivity/specificity Clopper-Pearson, PPV/NPV logit, F1 bootstrap.",
        help=f"**Youden's J.** {YOUDEN_HELP}\n\n**DeLong.** {DELONG_HELP}",
    )


def show_sweep(eid: str, shown: list[str], threshold: float) -> None:
    with st.expander("Sensitivity and specificity across thresholds"):
        sweep_cohort = st.selectbox("Cohort", shown, key="cohort.sweep")
        sweep = data.sweep(eid, sweep_cohort)
        if sweep is not None:
            st.altair_chart(charts.threshold_chart(sweep, threshold=threshold), width="stretch")
        else:
            st.caption("This cohort has only one class; sensitivity and specificity cannot both be shown.")


DECISION_HELP = (
    "Net benefit (Vickers & Elkin 2006) weighs the cancers found against the false alarms at the odds a "
    "clinician would accept: at threshold probability p, one false alarm costs p / (1 - p) of a cancer found. "
    "DLM-1 is worth acting on where its line lies above both 'treat all' (biopsy everyone) and 'treat none'."
)


def show_decision_curve(eid: str, shown: list[str]) -> None:
    """DLM-1's decision curve for one cohort, with treat all and treat none, and the curve as CSV."""
    curves = data.decision_curves(eid)
    with st.expander("Decision curve of DLM-1 (net benefit)") as box:
        cohort = st.selectbox("Cohort", [c for c in shown if c in curves], key="cohort.decision", help=DECISION_HELP)
        if cohort is None:
            st.caption("No cohort with cases to draw a decision curve for.")
            return
        st.altair_chart(charts.decision_chart(curves[cohort], title=f"Decision curve, {cohort}"), width="stretch")
        frame = pd.DataFrame(curves[cohort])
        frame.insert(0, "cohort", cohort)
        box.download_button(
            "Decision curve (CSV)",
            frame.to_csv(index=False).encode(),
            file_name=f"decision_curve_{cohort}.csv",
            mime="text/csv",
            key="cohort.decision.csv",
        )


def show_curves(ev: Evaluation, eid: str, shown: list[str], marks: Sequence[Mapping[str, Any]] = ()) -> None:
    """ROC curves (Fig. 3), one tab per task, next to the calibration of DLM-1."""
    roc_col, cal_col = st.columns(2, gap="large")
    with roc_col:
        st.markdown("#### ROC curves (as the paper's Fig. 3)")
        tasks = [DLM1] + [s for s in SUBTYPES if any(ev.task_roc(c, s) for c in shown)]
        tab_names = ["DLM-1"] + [f"SM-{sm.removeprefix('sm')}" for sm, s in SUBMODEL_IDS.items() if s in tasks]
        for tab, task in zip(st.tabs(tab_names), tasks, strict=True):
            with tab:
                curves = tables.roc_curves(ev, task, cohorts=shown)
                what = "DLM-1, malignant vs benign" if task == DLM1 else f"{display_name(task)} vs other benign"
                if curves:
                    chart = charts.roc_chart(curves, title=f"ROC, {what}", marks=marks if task == DLM1 else ())
                    st.altair_chart(chart, width="stretch")
                else:
                    st.caption(f"{what}: no cohort has both classes, so there is no ROC curve.")
    with cal_col:
        st.markdown("#### Calibration of DLM-1")
        calibration = data.calibration(eid, tuple(shown))
        st.altair_chart(
            charts.calibration_chart(calibration, title="Observed vs predicted P(malignant)"), width="stretch"
        )
        st.caption("Cases binned by predicted P(malignant); points sized by the number of cases in the bin.")
        st.caption(ece_caption(ev.predictions, shown))


def show_table3(metrics_shown: dict[str, Any]) -> bool:
    """Table 3 (DLM-2 one-vs-rest); False when no cohort has DLM-2 results."""
    t3 = tables.table3(metrics_shown)
    if not len(t3):
        return False
    st.markdown("#### DLM-2: benign subtypes, one-vs-rest (as the paper's Table 3)")
    missing = [(c, t, r) for c, t, r in tables.not_computable(metrics_shown) if t != "DLM-1"]
    if missing and len(missing) == len(t3):
        reasons = sorted({r for _, _, r in missing})
        st.info(
            "No sub-model can be measured on these cohorts: " + "; ".join(reasons) + ". "
            "DLM-2 needs benign cases labelled with their subtype (lipoma, hemangioma, ...); "
            "DLM-1 above is measured as usual.",
            icon=":material/info:",
        )
    # Full subtype names, CIs not cut (the table scrolls sideways instead); the reason, when there is one,
    # right after the counts.
    shown_t3 = t3 if t3["Note"].ne("").any() else t3.drop(columns=["Note"])
    first = ["Subtype", "Cohort", "Cases (positive)"] + (["Note"] if "Note" in shown_t3 else [])
    shown_t3 = shown_t3[first + [c for c in shown_t3.columns if c not in first]]
    st.dataframe(
        shown_t3,
        hide_index=True,
        height="content",
        key="cohort.table3",
        column_config={
            "Subtype": st.column_config.TextColumn(width=290, pinned=True),
            "Note": st.column_config.TextColumn(width=380),
            **{name: st.column_config.TextColumn(width=150) for _, name, _ in tables.METRIC_ROWS},
        },
    )
    st.caption(
        "Benign cases of known subtype only; each sub-model at its operating threshold from the weight set's "
        "manifest (Youden's J on validation for the shipped sets). Not computable: the cohort lacks one of the "
        "two classes, so the AUC and at least one of sensitivity and specificity do not exist.",
        help=f"**Youden's J.** {YOUDEN_HELP}",
    )
    return True


def show_table1(preds) -> None:
    """Baseline characteristics (Table 1), when the cases carry age and sex."""
    cases = preds[["cohort", "label", "age", "sex"]]
    if not tables.has_demographics(cases):
        return
    st.markdown("#### Baseline characteristics (as the paper's Table 1)")
    with common.guarded():
        for block, table in tables.baseline_tables(cases).items():
            st.markdown(f"**{block}**")
            st.dataframe(
                table, key=f"cohort.table1.{block}", column_config={"_index": st.column_config.Column(width=340)}
            )
    st.caption("Age: mean ± SD, one-way ANOVA; sex and subtype: n (%), chi-square test.")


def show_notes(ev: Evaluation, shown: list[str]) -> None:
    problems = [(c, w) for c in shown for w in ev.notes(c)]
    if problems:
        with st.expander(f"Notes on undefined metrics ({len(problems)})"):
            st.markdown("\n".join(f"- **{c}**: {w}" for c, w in problems))


def show_comparison(ev: Evaluation, current: dict[str, Any], shown: list[str], manifests, folder: str) -> None:
    """Compare the sidebar's set (A) with a second weight set (B) on the same cases: ROC overlay, DeLong table."""
    st.markdown("#### Compare with a comparison weight set (paired DeLong test)", help=DELONG_HELP)
    by_folder = {str(m.path.parent): m for m in manifests}
    others = [f for f in by_folder if f != folder]
    if not others:
        st.caption("Only one weight set is installed; add another under the weights folder to compare.")
        return
    other = st.selectbox(
        "Comparison weight set (B)",
        others,
        format_func=lambda f: ws_label(by_folder[f]),
        key="cohort.compare.ws",
        help="Set A is the sidebar's set; B is evaluated on the same cases only for this comparison.",
    )
    if st.button("Evaluate B on the same cohort and compare", key="cohort.compare.run"):
        with common.guarded():
            ws_b = common.get_weight_set(other)
            base = data.cohort_from(Path(current["csv"]))
            result_b = data.evaluate_cohort(ws_b, base, current["cohorts"], label=ws_b.id)
            st.session_state[KEY_COMPARE] = {"id": result_b.entry_id, "base": current["id"], "folder": other}
    compare = st.session_state.get(KEY_COMPARE)
    if not (compare and compare["base"] == current["id"] and compare["folder"] == other):
        return
    ev_b = data.evaluation(compare["id"])
    if ev_b is None:
        return
    name_a, name_b = f"A ({ev.weight_set_id})", f"B ({ev_b.weight_set_id})"
    overlay = []  # A then B for each cohort: one hue per cohort, B dashed
    for c in shown:
        overlay += tables.roc_curves(ev, DLM1, cohorts=[c], prefix="A, ")
        overlay += tables.roc_curves(ev_b, DLM1, cohorts=[c], prefix="B, ")
    dashed = [c["name"] for c in overlay if c["name"].startswith("B, ")]
    st.columns(2)[0].altair_chart(
        charts.roc_chart(overlay, title=f"DLM-1 ROC: {name_a} solid, {name_b} dashed", dashed=dashed, scheme="paired"),
        width="stretch",
    )
    comparisons = data.comparison(current["id"], compare["id"], tuple(shown))
    st.dataframe(tables.delong_table(comparisons, name_a, name_b), hide_index=True, key="cohort.delong")
    st.caption(
        "Both weight sets' P(malignant) on the same cases, joined by case_id; DeLong's paired test.",
        help=DELONG_HELP,
    )


def show_downloads(
    ev: Evaluation, shown: list[str], threshold: float, dlm1_all: dict[str, Any], t3: bool, point: str | None = None
) -> None:
    """Downloads: each states the threshold it used and where that threshold came from."""
    st.markdown("#### Downloads")
    preds = ev.predictions[ev.predictions["cohort"].astype(str).isin(shown)]
    export = evaluation_at(ev, threshold, dlm1_all, shown, point)
    operating_point = export.operating_points[DLM1]
    dlm1 = {c: dlm1_all[c] for c in shown if c in dlm1_all}
    name = f"{ev.weight_set_id}_t{threshold:.3f}"
    row = st.container(horizontal=True)
    row.download_button(
        "Predictions (CSV)",
        predictions_at(preds, threshold, operating_point=operating_point).to_csv(index=False),
        file_name=f"predictions_{name}.csv",
        mime="text/csv",
        key="cohort.dl.predictions",
    )
    row.download_button(
        "Metrics with 95% CIs (CSV)",
        export.metrics_table().to_csv(index=False),
        file_name=f"metrics_{name}.csv",
        mime="text/csv",
        key="cohort.dl.metrics",
    )
    row.download_button(
        "Table 2 (CSV)",
        tables.table2(dlm1, operating_point=operating_point).to_csv(),
        file_name=f"table2_{name}.csv",
        mime="text/csv",
        key="cohort.dl.table2",
    )
    if t3:
        metrics_shown = {c: ev.metrics[c] for c in shown if c in ev.metrics}
        row.download_button(
            "Table 3 (CSV)",
            tables.table3(metrics_shown, operating_points=ev.operating_points).to_csv(index=False),
            file_name=f"table3_{ev.weight_set_id}.csv",
            mime="text/csv",
            key="cohort.dl.table3",
        )


def show_overlap(ev, shown: list[str]) -> None:
    """A red warning for each shown cohort holding images the set was trained or validated on."""
    from softmass_core.cohorts.overlap import overlap_sentence

    if ev.overlap is None:
        st.caption(
            "This weight set records no training or validation images (older sets; `retune` records them), so "
            "whether these cohorts overlap its training data is not known."
        )
        return
    for cohort in shown:
        sentence = overlap_sentence(cohort_label(cohort), ev.overlap.get(cohort) or {})
        if sentence:
            st.error(sentence, icon=":material/report:")
