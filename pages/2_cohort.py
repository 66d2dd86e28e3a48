"""Cohort metrics: run a weight set over a cohort and report it like the paper's Tables 1-3 and Fig. 3."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import streamlit as st

from softmass_core import demo
from softmass_core.cohort import Cohort, read_cohort
from softmass_core.evaluate import cohort_metrics
from softmass_core.labels import SUBMODEL_IDS, SUBTYPES, display_name
from softmass_core.metrics import UndefinedMetricWarning, calibration_curve, threshold_sweep
from ui import charts, common
from ui import cohort_data as data
from ui import cohort_tables as tables

# Session-state keys of this page.
KEY_CURRENT = "softmass.cohort.current"  # {"key", "csv", "demo", "label"} of the evaluation shown
KEY_COMPARE = "softmass.cohort.compare"  # the same for weight set B

SOURCE_DEMO = "Demo cohorts (simulated hospitals 1-3)"
SOURCE_SERVER = "Cohort folder or CSV on the server"
SOURCE_UPLOAD = "Upload a zip (cohort CSV + images)"
#: Demo cohort sizes, as fractions of the paper's 1051 cases.
DEMO_SCALES = (0.05, 0.1, 0.25, 0.5, 1.0)
PAPER_CASES = 1051


@st.cache_data(max_entries=8, show_spinner="Reading and checking the cohort file ...")
def load_cohort(csv_path: str, mtime_ns: int) -> Cohort:
    """The validated cohort (cached per path and modification time)."""
    return read_cohort(csv_path)


def cohort_from(csv_path: Path) -> Cohort:
    return load_cohort(str(csv_path), Path(csv_path).stat().st_mtime_ns)


def ws_label(m) -> str:
    return f"{common.weight_set_label(m)} [{m.id}]"


st.title("Cohort metrics")
st.caption(common.DISCLAIMER)

manifests, _skipped = common.list_weight_sets(str(common.weights_root()))
if not manifests:
    st.warning(f"No weight set found under `{common.weights_root()}`. Train one (see README) or set SOFTMASS_WEIGHTS.")
    st.stop()
by_folder = {str(m.path.parent): m for m in manifests}
folders = list(by_folder)
active = common.active_weight_set_dir()
default_index = folders.index(str(active)) if active is not None and str(active) in folders else 0

# ----------------------------------------------------------------------------- inputs
left, right = st.columns([1, 1])
with left:
    ws_folder = st.selectbox(
        "Weight set",
        folders,
        index=default_index,
        format_func=lambda f: ws_label(by_folder[f]),
        key="cohort.ws",
        help="Starts at the set picked in the sidebar.",
    )
    source = st.radio("Cohort", (SOURCE_DEMO, SOURCE_SERVER, SOURCE_UPLOAD), key="cohort.source")

csv_path: Path | None = None
scale = 0.25
with right:
    if source == SOURCE_DEMO:
        scale = st.select_slider(
            "Demo cohort size",
            options=DEMO_SCALES,
            value=0.25,
            format_func=lambda s: f"{s:g}x the paper (~{round(s * PAPER_CASES)} cases)",
            key="cohort.scale",
        )
        ready = demo.demo_cohort_dir(common.cache_root(), scale=scale) / "cohort.csv"
        if ready.is_file():
            csv_path = ready
        else:
            st.caption(
                "Simulated cases are generated on first use (a progress bar shows how far) "
                f"and cached under `{common.cache_root()}`."
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

cohort: Cohort | None = None
if csv_path is not None:
    with common.guarded():
        cohort = cohort_from(csv_path)
    chosen = st.multiselect("Cohorts to evaluate", cohort.names, default=cohort.names, key=f"cohort.names.{csv_path}")
else:
    chosen = []

can_run = (cohort is not None and bool(chosen)) or (source == SOURCE_DEMO and cohort is None)
if st.button("Evaluate", type="primary", disabled=not can_run, key="cohort.run"):
    with common.guarded():
        if cohort is None:  # the demo cohort, first use
            bar = st.progress(0.0, text="Generating the simulated cohorts ...")
            csv_path = demo.ensure_demo_cohort(
                common.cache_root(), scale=scale, progress=data.progress_reporter(bar, "Generating simulated cases")
            )
            bar.empty()
            cohort = cohort_from(csv_path)
            chosen = cohort.names
        ws = common.get_weight_set(ws_folder)
        data.cached_evaluate(ws, cohort, chosen, label=ws.id)
        st.session_state[KEY_CURRENT] = {
            "key": data.evaluation_key(ws, cohort, chosen),
            "csv": str(cohort.csv_path),
            "cohorts": list(chosen),
            "demo": source == SOURCE_DEMO,
            "data_kind": ws.manifest.data_kind,
            "views": common.tta_text(ws.manifest.tta),
            "folder": ws_folder,
        }
        st.session_state.pop(KEY_COMPARE, None)

current = st.session_state.get(KEY_CURRENT)
ev = data.cached_evaluation(current["key"]) if current else None
if ev is None:
    st.info("Pick a weight set and a cohort, then press **Evaluate**.")
    st.stop()

# ----------------------------------------------------------------------------- results
st.divider()
preds_all = ev.predictions
names = list(dict.fromkeys(preds_all["cohort"].astype(str)))
st.subheader(f"{ev.weight_set_id} v{ev.weight_set_version} on {len(preds_all)} cases")
st.caption(
    f"Cohort file `{current['csv']}`; each model scores the {current.get('views', 'image')}; "
    f"fusion of the images: {ev.fusion_rule}."
)
st.warning(tables.data_note(current["data_kind"], demo=current["demo"]), icon=":material/info:")

shown = st.multiselect("Cohorts shown", names, default=names, key="cohort.shown")
if not shown:
    st.info("Choose at least one cohort to show.")
    st.stop()
preds = preds_all[preds_all["cohort"].astype(str).isin(shown)]
metrics_shown = {c: ev.metrics[c] for c in shown if c in ev.metrics}

# Table 2 at the slider's threshold: recomputed from the kept predictions, no model run.
st.markdown("#### DLM-1: benign vs malignant (as the paper's Table 2)")
threshold = st.slider(
    "DLM-1 threshold on P(malignant)",
    min_value=0.0,
    max_value=1.0,
    value=float(ev.threshold),
    step=0.001,
    format="%.3f",
    key=f"cohort.threshold.{hash(current['key'])}",
    help="Cases scoring at or above it are called malignant. The metrics below follow it; the AUC does not.",
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UndefinedMetricWarning)
    at_threshold, _ = cohort_metrics(preds, dlm1_threshold=threshold, sub_thresholds=None, n_boot=1000)
dlm1 = {c: at_threshold[c]["dlm1"] for c in shown if c in at_threshold}
st.dataframe(tables.table2(dlm1), key="cohort.table2")
st.caption(
    f"Threshold {threshold:.3f} (the weight set's operating threshold is {ev.threshold:.3f}). "
    "Brackets: 95% CI; AUC DeLong, ACC/sensitivity/specificity Clopper-Pearson, PPV/NPV logit, F1 bootstrap."
)

with st.expander("Sensitivity and specificity across thresholds"):
    sweep_cohort = st.selectbox("Cohort", shown, key="cohort.sweep")
    sub = preds[preds["cohort"].astype(str) == sweep_cohort]
    if sub["y_malignant"].nunique() == 2:
        grid = [i / 100 for i in range(101)]
        sweep = threshold_sweep(sub["y_malignant"].to_numpy(int), sub["p_malignant"].to_numpy(float), grid)
        st.altair_chart(charts.threshold_chart(sweep, threshold=threshold), width="stretch")
    else:
        st.caption("This cohort has only one class; sensitivity and specificity cannot both be shown.")

# ROC curves (Fig. 3) next to the calibration of DLM-1.
roc_col, cal_col = st.columns(2, gap="large")
with roc_col:
    st.markdown("#### ROC curves (as the paper's Fig. 3)")
    tasks = ["dlm1"] + [s for s in SUBTYPES if any((ev.roc.get(c) or {}).get("dlm2", {}).get(s) for c in shown)]
    tab_names = ["DLM-1"] + [f"SM-{sm.removeprefix('sm')}" for sm, s in SUBMODEL_IDS.items() if s in tasks]
    for tab, task in zip(st.tabs(tab_names), tasks, strict=True):
        with tab:
            curves = tables.roc_curves(ev.roc, ev.metrics, task, cohorts=shown)
            what = "DLM-1, malignant vs benign" if task == "dlm1" else f"{display_name(task)} vs other benign"
            if curves:
                st.altair_chart(charts.roc_chart(curves, title=f"ROC, {what}"), width="stretch")
            else:
                st.caption(f"{what}: no cohort has both classes, so there is no ROC curve.")
with cal_col:
    st.markdown("#### Calibration of DLM-1")
    calibration = {}
    for c in shown:
        sub = preds[preds["cohort"].astype(str) == c]
        bins = 10 if len(sub) >= 100 else 5
        y, p = sub["y_malignant"].to_numpy(int), sub["p_malignant"].to_numpy(float)
        calibration[c] = calibration_curve(y, p, n_bins=bins)
    st.altair_chart(charts.calibration_chart(calibration, title="Observed vs predicted P(malignant)"), width="stretch")
    st.caption("Cases binned by predicted P(malignant); points sized by the number of cases in the bin.")

# Table 3.
t3 = tables.table3(metrics_shown)
if len(t3):
    st.markdown("#### DLM-2: benign subtypes, one-vs-rest (as the paper's Table 3)")
    st.dataframe(t3, hide_index=True, height="content", key="cohort.table3")
    st.caption(
        "Benign cases of known subtype only; each sub-model at its operating threshold from the weight set's manifest."
    )

# Table 1.
cases = preds[["cohort", "label", "age", "sex"]]
if tables.has_demographics(cases):
    st.markdown("#### Baseline characteristics (as the paper's Table 1)")
    with common.guarded():
        for block, table in tables.baseline_tables(cases).items():
            st.markdown(f"**{block}**")
            st.dataframe(table, key=f"cohort.table1.{block}")
    st.caption("Age: mean ± SD, one-way ANOVA; sex and subtype: n (%), chi-square test.")

problems = [(c, w) for c in shown for w in (ev.metrics.get(c) or {}).get("warnings", [])]
if problems:
    with st.expander(f"Notes on undefined metrics ({len(problems)})"):
        st.markdown("\n".join(f"- **{c}**: {w}" for c, w in problems))

# Compare two weight sets.
st.markdown("#### Compare with another weight set (paired DeLong test)")
others = [f for f in folders if f != current["folder"]]
if not others:
    st.caption("Only one weight set is installed; add another under the weights folder to compare.")
else:
    other = st.selectbox("Weight set B", others, format_func=lambda f: ws_label(by_folder[f]), key="cohort.compare.ws")
    if st.button("Evaluate B on the same cohort and compare", key="cohort.compare.run"):
        with common.guarded():
            ws_b = common.get_weight_set(other)
            base = cohort_from(Path(current["csv"]))
            data.cached_evaluate(ws_b, base, current["cohorts"], label=ws_b.id)
            st.session_state[KEY_COMPARE] = data.evaluation_key(ws_b, base, current["cohorts"])
    ev_b = data.cached_evaluation(st.session_state[KEY_COMPARE]) if st.session_state.get(KEY_COMPARE) else None
    if ev_b is not None:
        name_a, name_b = f"A ({ev.weight_set_id})", f"B ({ev_b.weight_set_id})"
        paired = tables.paired_predictions(preds, ev_b.predictions)
        overlay = []  # A then B for each cohort: one hue per cohort, B dashed
        for c in shown:
            overlay += tables.roc_curves(ev.roc, ev.metrics, "dlm1", cohorts=[c], prefix="A, ")
            overlay += tables.roc_curves(ev_b.roc, ev_b.metrics, "dlm1", cohorts=[c], prefix="B, ")
        dashed = [c["name"] for c in overlay if c["name"].startswith("B, ")]
        st.columns(2)[0].altair_chart(
            charts.roc_chart(
                overlay, title=f"DLM-1 ROC: {name_a} solid, {name_b} dashed", dashed=dashed, scheme="paired"
            ),
            width="stretch",
        )
        st.dataframe(tables.delong_table(paired, name_a, name_b), hide_index=True, key="cohort.delong")
        st.caption("Both weight sets' P(malignant) on the same cases, joined by case_id; DeLong's paired test.")

# Downloads.
st.markdown("#### Downloads")
merged = {c: dict(ev.metrics[c], dlm1=at_threshold[c]["dlm1"]) for c in shown if c in ev.metrics}
export = dataclasses.replace(ev, metrics=merged, threshold=threshold)
row = st.container(horizontal=True)
row.download_button(
    "Predictions (CSV)",
    preds.to_csv(index=False),
    file_name=f"predictions_{ev.weight_set_id}.csv",
    mime="text/csv",
    key="cohort.dl.predictions",
)
row.download_button(
    "Metrics with 95% CIs (CSV)",
    export.metrics_table().to_csv(index=False),
    file_name=f"metrics_{ev.weight_set_id}_t{threshold:.3f}.csv",
    mime="text/csv",
    key="cohort.dl.metrics",
)
row.download_button(
    "Table 2 (CSV)",
    tables.table2(dlm1).to_csv(),
    file_name=f"table2_{ev.weight_set_id}.csv",
    mime="text/csv",
    key="cohort.dl.table2",
)
if len(t3):
    row.download_button(
        "Table 3 (CSV)",
        t3.to_csv(index=False),
        file_name=f"table3_{ev.weight_set_id}.csv",
        mime="text/csv",
        key="cohort.dl.table3",
    )
