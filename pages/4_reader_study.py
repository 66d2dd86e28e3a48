"""Reader study: blind read, then DLM-assisted read, per reader and case (the paper's radiologist study)."""

from __future__ import annotations

import io
import warnings

import streamlit as st

from softmass_core import demo
from softmass_core.labels import DLM1, MALIGNANT, MODALITIES, SUBMODEL_IDS, display_name
from softmass_core.metrics import UndefinedMetricWarning
from softmass_core.store import reader_study_summary
from ui import charts, common
from ui import reader_view as view

KEY_READER_ID = "softmass.reader.id"  # the store's id of the reader identified on this page
MODALITY_NAMES = {"gray": "Grayscale B-mode", "cdfi": "Colour Doppler (CDFI)"}

st.title("Reader study")
st.caption(common.DISCLAIMER)
st.markdown(
    "As in the paper's radiologist study: identify yourself, then for each case **read the images alone** and record "
    "your diagnosis (malignant, or benign and its subtype). Only then is the model's result (probabilities and "
    "heatmaps) shown, and you record a **revised diagnosis**. Each case is read once per reader; the order you "
    "read them in is logged. The cases are **simulated** images, not patients."
)

store = common.reader_store()
ws = common.active_weight_set()
ws_tag = f"{ws.id} v{ws.version}"
case_ids = list(demo.DEMO_CASE_IDS)
truth = {c: demo.demo_label(c) for c in case_ids}

# ----------------------------------------------------------------------------- who is reading
reader_id = st.session_state.get(KEY_READER_ID)
if reader_id is None:
    st.subheader("Identify yourself")
    with st.form("reader.identify"):
        name = st.text_input(
            "Name or pseudonym", value=st.session_state.get(common.KEY_READER_NAME, ""), key="reader.name"
        )
        years = st.number_input("Years of experience in ultrasound", 0, 80, 0, step=1, key="reader.years")
        start = st.form_submit_button("Start reading", type="primary")
    if start:
        with common.guarded():
            st.session_state[KEY_READER_ID] = store.register_reader(name, experience_years=int(years))
            st.session_state[common.KEY_READER_NAME] = name.strip()
        st.rerun()
else:
    who, switch = st.columns([4, 1])
    who.markdown(f"Reading as **{st.session_state.get(common.KEY_READER_NAME, '?')}**.")
    if switch.button("Switch reader", key="reader.switch"):
        st.session_state.pop(KEY_READER_ID, None)
        st.rerun()

# ----------------------------------------------------------------------------- the current case
pending: list[str] = []
if reader_id is not None:
    with common.guarded():
        reads = store.reads(reader_id)
    order = view.reading_order(reader_id, case_ids, reads)
    states = view.case_states(reader_id, reads)
    done = sum(states.get(c) == "complete" for c in order)
    pending = [c for c in order if states.get(c) != "complete"]
    st.progress(done / len(order), text=f"{done} of {len(order)} cases read")
    if not pending:
        st.success("You have read every case. Thank you! Your results are below.")
    else:
        case_id = pending[0]
        with common.guarded():
            seq = store.start_case(reader_id, case_id, weight_set=ws_tag)  # logs the order; idempotent
            state = store.reader_state(reader_id, case_id)
            case = demo.demo_case(case_id)
        # Nothing on screen names the case or its class: the case is "Case <seq>".
        st.subheader(f"Case {seq}")
        cols = st.columns(2)
        for col, m in zip(cols, MODALITIES, strict=True):
            col.image(view.with_roi(getattr(case, m), getattr(case, f"{m}_roi")), caption=MODALITY_NAMES[m])

        if state == "new":
            st.markdown("**Your diagnosis from the images alone**")
            answer = st.radio(
                "Diagnosis",
                view.ANSWERS,
                index=None,
                format_func=view.answer_name,
                key=f"reader.blind.{reader_id}.{seq}",
                horizontal=True,
            )
            if st.button(
                "Record blind diagnosis", type="primary", disabled=answer is None, key=f"reader.blind_go.{seq}"
            ):
                with common.guarded():
                    store.record_blind(
                        reader_id,
                        case_id,
                        malignant=answer == MALIGNANT,
                        subtype=None if answer == MALIGNANT else answer,
                    )
                st.rerun()
            st.caption("The model's result is shown after you record this diagnosis.")
        elif state == "blind_done":
            blind = reads[reads["case_id"] == case_id]
            blind_answer = (
                view.answer_of(blind["blind_malignant"].iloc[0], blind["blind_subtype"].iloc[0]) if len(blind) else None
            )
            if blind_answer is None:  # recorded a moment ago: read it back
                with common.guarded():
                    row = store.reads(reader_id).query("case_id == @case_id").iloc[0]
                blind_answer = view.answer_of(row["blind_malignant"], row["blind_subtype"])
            st.markdown(f"Your blind diagnosis: **{view.answer_name(blind_answer)}** (recorded).")

            with common.guarded():
                shown = view.model_result(str(ws.folder), ws_tag, case_id)
            res = shown["result"]
            st.markdown(f"#### The DLM's result ({ws_tag})")
            learned = common.DATA_KIND_NAMES.get(ws.manifest.data_kind, ws.manifest.data_kind)
            st.caption(f"This weight set learned {learned}; on these simulated cases its output is a demonstration.")
            m1, m2 = st.columns(2)
            m1.metric("P(malignant), DLM-1", f"{res['p_malignant']:.3f}")
            m2.metric("Threshold", f"{res['threshold']:.3f}")
            st.markdown(f"DLM diagnosis: **{display_name(res['diagnosis'])}**")
            st.caption(res["stopped_because"])
            if res["sub_scores"]:
                st.altair_chart(
                    charts.score_bars(
                        res["sub_scores"],
                        highlight=None if res["malignant"] else res["diagnosis"],
                        title="DLM-2 sub-model scores (benign subtypes)",
                        x_title="Score",
                    ),
                    width="stretch",
                )
            for model_id, overlays in shown["heatmaps"].items():
                what = (
                    "DLM-1 (malignant)"
                    if model_id == DLM1
                    else f"SM-{model_id.removeprefix('sm')} ({display_name(SUBMODEL_IDS[model_id])})"
                )
                st.markdown(f"**Grad-CAM heatmap of {what}**: red marks where the model looked most.")
                hcols = st.columns(2)
                for col, m in zip(hcols, MODALITIES, strict=True):
                    if m in overlays:
                        col.image(overlays[m], caption=f"{MODALITY_NAMES[m]}, {what}")

            st.markdown("**Your revised diagnosis, with the model's result**")
            revised = st.radio(
                "Revised diagnosis",
                view.ANSWERS,
                index=view.ANSWERS.index(blind_answer),
                format_func=view.answer_name,
                key=f"reader.assisted.{reader_id}.{seq}",
                horizontal=True,
            )
            if st.button("Record revised diagnosis", type="primary", key=f"reader.assisted_go.{seq}"):
                with common.guarded():
                    store.record_assisted(
                        reader_id,
                        case_id,
                        malignant=revised == MALIGNANT,
                        subtype=None if revised == MALIGNANT else revised,
                        model_p_malignant=float(res["p_malignant"]),
                        model_diagnosis=res["diagnosis"],
                    )
                st.rerun()

# ----------------------------------------------------------------------------- results
st.divider()
st.subheader("Results")
if reader_id is not None and pending:
    # As in the paper, readers do not learn whether their answers were right while they read.
    st.info("The results appear here once you have read every case, so that they cannot hint at the answers.")
    st.stop()
with common.guarded():
    all_reads = store.reads()
    all_reads = all_reads[all_reads["case_id"].isin(case_ids)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        summary = reader_study_summary(all_reads, truth)
    readers = store.readers()
if summary.empty or not summary["n"].any():
    st.info("No case has been read blind and with the model yet.")
else:
    st.caption(
        "Accuracy of each reader before (images only) and after seeing the DLM's result, on the cases they finished: "
        "benign vs malignant on every case, and the benign subtype on the benign cases. Brackets: Clopper-Pearson "
        "95% CI; McNemar's test compares the paired reads. Simulated cases: this measures the software, not a "
        "clinical benefit."
    )
    st.dataframe(view.summary_table(summary, readers), hide_index=True)
    st.altair_chart(charts.reader_accuracy_chart(summary), width="content")
    buf = io.StringIO()
    all_reads.to_csv(buf, index=False)
    d1, d2 = st.columns(2)
    d1.download_button("All reads, in order (CSV)", buf.getvalue(), file_name="reader_study_reads.csv", mime="text/csv")
    d2.download_button(
        "Accuracy summary (CSV)", summary.to_csv(index=False), file_name="reader_study_summary.csv", mime="text/csv"
    )
