"""The Grad-CAM page's record of grades and its Table 4 summary (Streamlit).

A reader identifies as in the reader study (:mod:`ui.reader_view`), records
the grade the page computed (:meth:`softmass_core.reader_study.store.ReaderStudyStore.record_focus_grade`),
and sees their grades summarised like the paper's Table 4
(:func:`softmass_core.inference.focus.summarise_grades`), per weight set and model.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import streamlit as st

from softmass_core.inference.focus import (
    GRADE_TITLES,
    GRADES,
    FocusComparison,
    summarise_grades,
    summarise_grades_by_model,
)
from softmass_core.labels import DLM1, MODEL_IDS, display_name
from softmass_core.reader_study.store import GradeExistsError
from softmass_core.report import model_name
from ui import reader_view as view
from ui.common import guarded

if TYPE_CHECKING:
    from softmass_core.reader_study.store import ReaderStudyStore

#: The weight set of grades made before grades recorded it.
NOT_RECORDED = ""


def record_grade(
    store: ReaderStudyStore,
    prefix: str,
    case_id: str,
    lesion_type: str,
    model_id: str,
    ws_tag: str,
    comparison: FocusComparison | None,
    shape: str,
) -> None:
    """Who is grading (identify or switch), and the button that records ``comparison``'s grade."""
    reader_id = st.session_state.get(view.KEY_READER_ID)
    if reader_id is None:
        st.markdown("Identify yourself to record grades (the same name and PIN as in the reader study).")
        view.identify(store, prefix)
    else:
        who_col, switch_col = st.columns([4, 1])
        who_col.markdown(f"Recording as **{view.reader_name() or '?'}**.")
        if switch_col.button("Switch reader", key=f"{prefix}.switch"):
            view.forget_reader()
            st.rerun()
        view.show_new_pin(prefix)
    replace = st.checkbox(
        "Replace my earlier grade",
        key=f"{prefix}.replace",
        help="One grade per reader, case and model of a weight set; tick to overwrite yours.",
    )
    missing = "Identify yourself" if reader_id is None else "Draw your area" if comparison is None else None
    if st.button(
        "Record this grade",
        type="primary",
        disabled=missing is not None,
        key=f"{prefix}.record",
        help=f"{missing} first." if missing else f"Records the grade of {model_name(model_id)} of {ws_tag}.",
    ):
        assert comparison is not None and reader_id is not None
        recorded = False
        with guarded():
            try:
                store.record_focus_grade(
                    int(reader_id),
                    case_id,
                    lesion_type=lesion_type,
                    model=model_id,
                    weight_set=ws_tag,
                    grade=comparison.grade,
                    reader_coverage=comparison.reader_coverage,
                    iou=comparison.iou,
                    shape=shape,
                    replace=replace,
                )
                recorded = True
            except GradeExistsError:
                st.error(
                    f"You already graded {model_name(model_id)} of {ws_tag} on this case. To change your grade, tick "
                    "**Replace my earlier grade** and record it again."
                )
        if recorded:
            st.success(f"Recorded: {case_id}, {model_name(model_id)} of {ws_tag}, {GRADE_TITLES[comparison.grade]}.")


def grade_summary(store: ReaderStudyStore, prefix: str, ws_tag: str) -> None:
    """One reader's grades as Table 4 (per weight set, one model or every model), and the CSV downloads."""
    with guarded():
        grades = store.focus_grades()
    if grades.empty:
        st.caption("No grades recorded yet.")
        return
    grades["weight_set"] = grades["weight_set"].fillna(NOT_RECORDED)
    f1, f2, f3 = st.columns(3)
    with f1:
        names = sorted(grades["reader_name"].unique())
        me = view.reader_name()
        who = st.selectbox("Reader", names, index=names.index(me) if me in names else 0, key=f"{prefix}.summary_reader")
    mine = grades[grades["reader_name"] == who]
    with f2:
        sets = sorted(set(mine["weight_set"]), key=lambda t: (t != ws_tag, t == NOT_RECORDED, t))
        set_filter = st.selectbox(
            "Weight set",
            sets,
            format_func=lambda t: t or "not recorded (graded by an older softmass)",
            key=f"{prefix}.summary_set",
            help="DLM-1 of one weight set is another model than DLM-1 of another: each set has its own Table 4.",
        )
    mine = mine[mine["weight_set"] == set_filter]
    with f3:
        models_present = [m for m in MODEL_IDS if m in set(mine["model"])] or [DLM1]
        model_filter = st.selectbox(
            "Model",
            ["all", *models_present],
            format_func=lambda m: "All models (one table each)" if m == "all" else model_name(m),
            key=f"{prefix}.summary_model",
        )
    with guarded():
        if model_filter == "all":
            # One table per model: a case graded for two models is one case in each, never two in one total.
            table = summarise_grades_by_model(zip(mine["model"], mine["lesion_type"], mine["grade"], strict=True))
            shown = table[list(GRADES) + ["n"]].rename(columns=GRADE_TITLES).reset_index()
            shown["model"] = shown["model"].map(model_name)
            shown["lesion_type"] = [display_name(t) if t != "total" else "Total" for t in shown["lesion_type"]]
            shown = shown.rename(columns={"model": "Model", "lesion_type": "Lesion type"})
        else:
            table = summarise_grades(
                zip(*(mine.loc[mine["model"] == model_filter, c] for c in ("lesion_type", "grade")), strict=True)
            )
            shown = table[list(GRADES) + ["n"]].rename(columns=GRADE_TITLES)
            shown.index = [display_name(t) if t != "total" else "Total" for t in shown.index]
    set_name = set_filter or "weight set not recorded"
    st.subheader(f"Table 4 for {who} ({set_name})")
    st.dataframe(shown, width="stretch", hide_index=model_filter == "all")

    d1, d2 = st.columns(2)
    summary_csv = table.reset_index()
    summary_csv.insert(0, "weight_set", set_filter)
    summary_csv.insert(0, "reader_name", who)
    if model_filter != "all":
        summary_csv.insert(2, "model", model_filter)
    d1.download_button(
        "Download this summary (CSV)",
        data=summary_csv.to_csv(index=False).encode(),
        file_name=f"focus-summary-{who}.csv".replace(" ", "_"),
        mime="text/csv",
        key=f"{prefix}.dl_summary",
    )
    buffer = io.StringIO()
    with guarded():
        store.export_csv(buffer, table="focus")
    d2.download_button(
        "Download every grade (CSV)",
        data=buffer.getvalue().encode(),
        file_name="focus-grades.csv",
        mime="text/csv",
        key=f"{prefix}.dl_all",
        help="Every reader's grades, with the weight set and model each grade is of.",
    )
