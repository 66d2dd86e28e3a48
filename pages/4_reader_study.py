"""Reader study: blind read, then DLM-assisted read, per reader and case (the paper's radiologist study).

Readers see their own progress only; every reader's answers and the results
are for the study administrator (passphrase, see ``ui.common.study_admin_passphrase``,
or ``python -m softmass_core reader-study`` on the command line).
"""

from __future__ import annotations

import streamlit as st

from softmass_core.io.roi import draw_roi
from softmass_core.labels import DLM1, MALIGNANT, MODALITIES, MODALITY_NAMES, SUBMODEL_IDS, display_name
from softmass_core.reader_study import cases as study
from ui import charts, common
from ui import reader_view as view
from ui import study_admin as admin
from ui.common import require_frame

require_frame()

st.title("Reader study")
st.caption(common.DISCLAIMER)
st.markdown(
    "As in the paper's radiologist study: identify yourself, then for each case **read the images alone** and record "
    "your diagnosis (malignant, or benign and its subtype). Only then is the model's result (probabilities and "
    "heatmaps) shown, and you record a **revised diagnosis**. Each case is read once per reader; the order you "
    "read them in is logged. The cases are **simulated** images of their own (not the Case page's demo cases), "
    "not patients."
)

store = common.reader_store()
case_ids = list(study.STUDY_CASE_IDS)
passphrase = common.study_admin_passphrase()
if st.session_state.get(view.KEY_ADMIN) and passphrase is None:
    st.session_state.pop(view.KEY_ADMIN)  # the passphrase was removed from the configuration


# ----------------------------------------------------------------------------- the administrator
if st.session_state.get(view.KEY_ADMIN):
    admin.admin_view(store)
    st.stop()

# ----------------------------------------------------------------------------- who is reading
reader_id = st.session_state.get(view.KEY_READER_ID)
if reader_id is None:
    st.subheader("Identify yourself")
    view.identify(store, "reader")
    st.divider()
    admin.admin_gate(passphrase)
    st.stop()

who, switch = st.columns([4, 1])
who.markdown(f"Reading as **{view.reader_name() or '?'}**.")
if switch.button("Switch reader", key="reader.switch"):
    view.forget_reader()
    st.rerun()
view.show_new_pin("reader")

# ----------------------------------------------------------------------------- the current case
ws = common.active_weight_set()
ws_tag = f"{ws.id} v{ws.version}"
with common.guarded():
    reads = store.reads(reader_id)
order = view.reading_order(reader_id, case_ids, reads)
states = view.case_states(reader_id, reads)
done = sum(states.get(c) == "complete" for c in order)
pending = [c for c in order if states.get(c) != "complete"]
st.progress(done / len(order), text=f"{done} of {len(order)} cases read")
if not pending:
    st.success("You have read every case. Thank you! The study administrator has the results.")
else:
    case_id = pending[0]
    number = order.index(case_id) + 1
    with common.guarded():
        store.start_case(reader_id, case_id, weight_set=ws_tag)  # logs the order; idempotent
        state = store.reader_state(reader_id, case_id)
        case = study.study_case(case_id)
    # Nothing on screen names the case or its class: the case is "Case <number in this reader's order>".
    st.subheader(f"Case {number} of {len(order)}")
    cols = st.columns(2)
    for col, m in zip(cols, MODALITIES, strict=True):
        col.image(draw_roi(getattr(case, m), getattr(case, f"{m}_roi")), caption=MODALITY_NAMES[m])

    if state == "new":
        st.markdown("**Your diagnosis from the images alone**")
        answer = st.radio(
            "Diagnosis",
            view.ANSWERS,
            index=None,
            format_func=view.answer_name,
            key=f"reader.blind.{reader_id}.{number}",
            horizontal=True,
        )
        if st.button(
            "Record blind diagnosis", type="primary", disabled=answer is None, key=f"reader.blind_go.{number}"
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
        res = shown.result
        st.markdown(f"#### The DLM's result ({ws_tag})")
        learned = common.DATA_KIND_NAMES.get(ws.manifest.data_kind, ws.manifest.data_kind)
        st.caption(f"This weight set learned {learned}; on these simulated cases its output is a demonstration.")
        m1, m2 = st.columns(2)
        m1.metric("P(malignant), DLM-1", f"{res.p_malignant:.3f}")
        m2.metric("Threshold", f"{res.threshold:.3f}")
        st.markdown(f"DLM diagnosis: **{display_name(res.diagnosis)}**")
        st.caption(res.stopped_because)
        if res.sub_scores:
            st.altair_chart(
                charts.score_bars(
                    res.sub_scores,
                    highlight=None if res.malignant else res.diagnosis,
                    title="DLM-2 sub-model scores (benign subtypes)",
                    x_title="Score",
                ),
                width="stretch",
            )
        for model_id, overlays in shown.heatmaps.items():
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
            key=f"reader.assisted.{reader_id}.{number}",
            horizontal=True,
        )
        if st.button("Record revised diagnosis", type="primary", key=f"reader.assisted_go.{number}"):
            with common.guarded():
                store.record_assisted(
                    reader_id,
                    case_id,
                    malignant=revised == MALIGNANT,
                    subtype=None if revised == MALIGNANT else revised,
                    model_p_malignant=float(res.p_malignant),
                    model_diagnosis=res.diagnosis,
                )
            st.rerun()

# ----------------------------------------------------------------------------- the reader's own progress
st.divider()
st.subheader("Your reads")
# As in the paper, readers do not learn whether their answers were right; nobody sees another reader's reads.
st.caption(
    "Only your own answers are listed, without the true classes. Every reader's results are for the study "
    "administrator."
)
mine = view.own_reads_table(reads, order)
if mine.empty:
    st.caption("Nothing recorded yet.")
else:
    st.dataframe(mine, hide_index=True)
