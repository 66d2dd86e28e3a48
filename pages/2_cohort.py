"""Cohort metrics: run the sidebar's weight set over a cohort and report it like the paper's Tables 1-3 and Fig. 3."""

from __future__ import annotations

import streamlit as st

from ui import cohort_data as data
from ui import cohort_view as view
from ui import common
from ui import operating_view as op_view
from ui.common import require_frame
from ui.input_check_view import show_cohort_rates

require_frame()

st.title("Cohort metrics")
st.caption(common.DISCLAIMER)

manifests, _skipped = common.list_weight_sets(str(common.weights_root()))
if not manifests:
    st.warning(f"No weight set found under `{common.weights_root()}`. Train one (see README) or set SOFTMASS_WEIGHTS.")
    st.stop()
by_folder = {str(m.path.parent): m for m in manifests}
ws_folder = str(common.active_weight_set_dir())
ws = common.active_weight_set()  # the sidebar's set: every page uses it

# ----------------------------------------------------------------------------- inputs
left, right = st.columns([1, 1])
with left:
    st.markdown(
        f"Weight set: **{view.ws_label(by_folder[ws_folder])}**",
        help="The set picked in the sidebar; every page uses it. Change it there.",
    )
    source = st.radio("Cohort", view.SOURCES, key="cohort.source")
with right:
    csv_path, scale = view.cohort_source(source)
cohort, chosen = view.pick_cohorts(csv_path, source)
current = view.current_evaluation(ws, ws_folder, cohort, chosen, source)

can_run = (cohort is not None and bool(chosen)) or (source == view.SOURCE_DEMO and cohort is None)
if st.button("Evaluate", type="primary", disabled=not can_run, key="cohort.run"):
    current = view.run_evaluation(ws, ws_folder, cohort, chosen, source, scale)

if current is not None and current["folder"] != ws_folder:
    st.info(
        f"The sidebar now picks **{view.ws_label(by_folder[ws_folder])}**; the last results were of another set. "
        "Press **Evaluate** to evaluate this one."
    )
    st.stop()
ev = data.evaluation(current["id"]) if current else None
if ev is None:
    st.info("Pick a cohort, then press **Evaluate**.")
    st.stop()
eid = current["id"]

# ----------------------------------------------------------------------------- results
st.divider()
shown = view.show_header(ev, current)
if not shown:
    st.info("Choose at least one cohort to show.")
    st.stop()
view.show_overlap(ev, shown)  # red when a cohort holds images the set was trained or validated on

# Table 2 at the slider's threshold: the metrics are cached per (evaluation, threshold), no model runs.
st.markdown("#### DLM-1: benign vs malignant (as the paper's Table 2)")
threshold, point = op_view.cohort_threshold(ws, ev, eid, view.threshold_slider)
at_threshold = data.dlm1_at_threshold(eid, float(threshold))
view.show_table2(ev, {c: at_threshold[c] for c in shown if c in at_threshold}, threshold, point)
view.show_sweep(eid, shown, threshold)
view.show_decision_curve(eid, shown)
view.show_curves(ev, eid, shown, op_view.roc_marks(ws, ev, shown))
has_t3 = view.show_table3({c: ev.metrics[c] for c in shown if c in ev.metrics})
view.show_table1(ev.predictions[ev.predictions["cohort"].astype(str).isin(shown)])
view.show_notes(ev, shown)
show_cohort_rates(ev, ws, shown)
view.show_comparison(ev, current, shown, manifests, ws_folder)
view.show_downloads(ev, shown, threshold, at_threshold, has_t3, point)
