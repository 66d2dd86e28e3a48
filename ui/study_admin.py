"""The reader study's administrator on the Reader-study page: the way in (passphrase) and the results.

Every reader's answers, the accuracy summary with Clopper-Pearson CIs and
McNemar's test (:func:`softmass_core.reader_study.cases.study_results`), the CSV exports
and new PINs are for the administrator only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from softmass_core.reader_study import cases as study
from ui import charts, common
from ui import reader_view as view

if TYPE_CHECKING:
    from softmass_core.reader_study.store import ReaderStudyStore


def admin_view(store: ReaderStudyStore) -> None:
    """The study administrator's results: every reader, the summary, the exports, new PINs."""
    top, leave = st.columns([3, 1], vertical_alignment="center")
    top.subheader("Study administrator: results")
    if leave.button("Lock the results", key="reader.admin_leave"):
        st.session_state.pop(view.KEY_ADMIN, None)
        st.rerun()
    with common.guarded():
        res = study.study_results(store)
    if res.summary.empty or not res.summary["n"].any():
        st.info("No study case has been read blind and with the model yet.")
    else:
        st.caption(
            "Accuracy of each reader before (images only) and after seeing the DLM's result, on the cases they "
            "finished: benign vs malignant on every case, and the benign subtype on the benign cases. Brackets: "
            "Clopper-Pearson 95% CI; McNemar's test compares the paired reads (hover the column headers for what "
            "they mean). Simulated cases: this measures the software, not a clinical benefit.",
            help=f"{view.HELP_CLOPPER_PEARSON}\n\n{view.HELP_MCNEMAR}",
        )
        st.dataframe(
            view.summary_table(res.summary, res.readers),
            hide_index=True,
            column_config={
                "Blind (images only)": st.column_config.TextColumn(help=view.HELP_CLOPPER_PEARSON),
                "With the DLM": st.column_config.TextColumn(help=view.HELP_CLOPPER_PEARSON),
                "McNemar p": st.column_config.TextColumn(help=view.HELP_MCNEMAR),
            },
        )
        st.altair_chart(charts.reader_accuracy_chart(res.summary), width="content")
    if res.legacy_reads:
        st.caption(
            f"{res.legacy_reads} read(s) were made on the demo cases, before the study had cases of its own (the "
            "Case page showed those images with their class). They are kept and in the CSV (case_set "
            f"'{study.LEGACY_SET}'), but not in this summary."
        )
    d1, d2 = st.columns(2)
    d1.download_button(
        "All reads, in order (CSV)",
        res.reads.to_csv(index=False),
        file_name="reader_study_reads.csv",
        mime="text/csv",
        key="reader.dl_reads",
        help="Every reader's reads with the true class (true_label), the model's output and the times.",
    )
    d2.download_button(
        "Accuracy summary (CSV)",
        res.summary.to_csv(index=False),
        file_name="reader_study_summary.csv",
        mime="text/csv",
        key="reader.dl_summary",
    )

    st.markdown("**Readers**")
    readers = res.readers
    st.dataframe(
        readers.rename(
            columns={
                "id": "Id",
                "name": "Name",
                "experience_years": "Experience (years)",
                "registered_at": "Registered (UTC)",
                "has_pin": "Has a PIN",
            }
        ),
        hide_index=True,
    )
    if len(readers):
        st.caption(
            "A reader registered before readers had PINs, or one who lost theirs, needs a new PIN from you: "
            "hand it to them in person. Their earlier PIN stops working."
        )
        p1, p2 = st.columns([3, 1], vertical_alignment="bottom")
        who = p1.selectbox(
            "Reader", readers["id"].tolist(), format_func=dict(zip(readers["id"], readers["name"], strict=True)).get,
            key="reader.admin_pin_reader",
        )  # fmt: skip
        if p2.button("Issue a new PIN", key="reader.admin_issue_pin"):
            with common.guarded():
                pin = store.issue_pin(int(who))
            name = readers.loc[readers["id"] == who, "name"].iloc[0]
            st.success(f"New PIN for **{name}**: **{pin}** (shown only now).")


def admin_gate(passphrase: str | None) -> None:
    """The administrator's way in: a passphrase when one is configured, else the command line."""
    with st.expander("Study administrator"):
        if passphrase is None:
            st.info(
                "The results are available only on the command line: "
                "`python -m softmass_core reader-study --db <the database> --out <folder>` prints the summary and "
                f"writes the CSVs. To see them here, set the environment variable `{study.ADMIN_PASSPHRASE_ENV}` "
                f"(or the Streamlit secret `{study.ADMIN_PASSPHRASE_SECRET}`) before starting the app."
            )
            return
        with st.form("reader.admin"):
            given = st.text_input("Administrator passphrase", type="password", key="reader.admin_passphrase")
            go = st.form_submit_button("Show the results")
        if go:
            if study.passphrase_matches(given, passphrase):
                st.session_state[view.KEY_ADMIN] = True
                view.forget_reader()
                st.rerun()
            st.error("That passphrase is not right. The results stay hidden.")
