"""Helpers of the Reader-study and Grad-CAM pages: who is reading, reading order, the model's result, tables.

A reader identifies with name and PIN (:func:`identify`); the identity is
kept in the session and shared by both pages.  The model's result is
computed only when the page asks for it, and the page asks only after the
store says the reader's blind read is recorded
(:meth:`softmass_core.reader_study.store.ReaderStudyStore.reader_state`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from softmass_core.inference import serving
from softmass_core.inference.cascade import CascadeResult
from softmass_core.inference.gradcam import cams_for_result, overlay_cam
from softmass_core.labels import DLM1, MALIGNANT, SUBTYPES, display_name
from softmass_core.reader_study import cases as study
from softmass_core.reader_study.store import ReaderStudyStore
from ui import common

# Session-state keys.
KEY_READER_ID = "softmass.reader.id"  # the store's id of the reader identified in this session
KEY_NEW_PIN = "softmass.reader.new_pin"  # the PIN drawn at registration, shown until the reader confirms
KEY_ADMIN = "softmass.reader.admin"  # True once the study administrator's passphrase was given

MODE_RETURNING = "I have a PIN"
MODE_NEW = "I am new to this study"

#: Plain-language help for the statistics the results mention.
HELP_CLOPPER_PEARSON = (
    "Clopper-Pearson 95% interval: the range of accuracies that fit what was seen on these few cases. "
    "It is exact (built from the binomial distribution, never narrower than the data allow), so with few "
    "cases it is wide: 10 of 12 correct gives about 52% to 98%."
)
HELP_MCNEMAR = (
    "McNemar's test asks whether the model changed how often a reader was right, using only the cases where "
    "the reader's answer went from wrong to right or from right to wrong (cases right or wrong both times say "
    "nothing about the change). A small p (below 0.05) means so lopsided a change would be unlikely by chance. "
    "With few changed cases the exact binomial version is used."
)

#: Seed of every reader's case order (with the reader's id).
ORDER_SEED = 4
#: The answers a reader can give: malignant, or benign with its subtype.
ANSWERS: tuple[str, ...] = (MALIGNANT, *SUBTYPES)


def answer_name(answer: str) -> str:
    """``"Malignant"`` or ``"Benign: Lipoma"``."""
    return "Malignant" if answer == MALIGNANT else f"Benign: {display_name(answer)}"


def answer_of(malignant: Any, subtype: Any) -> str | None:
    """The answer stored as (malignant, subtype), or None when nothing was recorded."""
    if malignant is None or malignant is pd.NA or (isinstance(malignant, float) and math.isnan(malignant)):
        return None
    return MALIGNANT if bool(malignant) else str(subtype)


def reading_order(reader_id: int, case_ids: Sequence[str], reads: pd.DataFrame | None = None) -> list[str]:
    """The order in which ``reader_id`` reads ``case_ids``.

    Cases the reader already opened come first, in the order the store
    logged (``seq``); the rest follow in a shuffle fixed by the reader's id,
    so every reader gets their own order and keeps it across sessions.
    """
    started: list[str] = []
    if reads is not None and len(reads):
        mine = reads[reads["reader_id"] == reader_id].sort_values("seq")
        started = [c for c in mine["case_id"].astype(str) if c in set(case_ids)]
    rest = [c for c in case_ids if c not in set(started)]
    rng = np.random.default_rng([ORDER_SEED, int(reader_id), zlib.crc32(",".join(case_ids).encode())])
    return started + [rest[i] for i in rng.permutation(len(rest))]


def case_states(reader_id: int, reads: pd.DataFrame) -> dict[str, str]:
    """``{case_id: state}`` of the cases this reader opened (see ``store.STATES``)."""
    mine = reads[reads["reader_id"] == reader_id]
    return dict(zip(mine["case_id"].astype(str), mine["state"].astype(str), strict=True))


@dataclass(frozen=True)
class ModelView:
    """What the reader is shown of the model on a study case: its result and Grad-CAM overlays.

    ``result`` carries no tensors or prepared images (they are for Grad-CAM,
    already drawn into ``heatmaps``: ``{model_id: {modality: (H, W, 3) uint8}}``,
    DLM-1 and the sub-model that named the subtype, if any).
    """

    result: CascadeResult
    heatmaps: dict[str, dict[str, np.ndarray]]


@st.cache_data(max_entries=24, show_spinner="Running the DLM on this case ...")
def model_result(ws_folder: str, ws_tag: str, case_id: str) -> ModelView:
    """The cascade's result on study case ``case_id`` and Grad-CAM overlays, cached per weight set and case.

    ``ws_tag`` (id and version) is part of the key.
    """
    ws = common.get_weight_set(ws_folder)
    case = study.study_case(case_id)
    server = serving.server_for(ws)  # the one worker that serves every session (as on the Case page)
    result = server.run(case.to_case_images(), keep_features=True)
    heatmaps: dict[str, dict[str, np.ndarray]] = {}
    for model_id in [DLM1] + ([result.diagnosing_model] if result.diagnosing_model else []):
        cams = cams_for_result(ws, result, model_id)
        heatmaps[model_id] = {m: overlay_cam(getattr(case, m), cam.cam_roi, cam.roi) for m, cam in cams.items()}
    return ModelView(replace(result, prepared={}, features={}), heatmaps)


#: ``stats.reader_study.reader_study_summary`` as people read it (see :func:`softmass_core.reader_study.cases.summary_table`).
summary_table = study.summary_table


# --------------------------------------------------------------------------- who is reading


def reader_name() -> str:
    """Name of the reader identified in this session ("" when nobody is)."""
    return str(st.session_state.get(common.KEY_READER_NAME, "")) if KEY_READER_ID in st.session_state else ""


def forget_reader() -> None:
    """End this session's identity (and an unconfirmed new PIN with it)."""
    for key in (KEY_READER_ID, KEY_NEW_PIN):
        st.session_state.pop(key, None)


def identify(store: ReaderStudyStore, prefix: str) -> int | None:
    """The id of the reader identified in this session, else the identify forms (and None).

    A returning reader gives name and PIN; a new one gives name and years of
    experience and is shown their PIN.  Nothing stored about a reader changes
    when they identify again.  Errors (wrong PIN, a name already taken) are
    shown as ``st.error`` and stop the page.
    """
    reader_id = st.session_state.get(KEY_READER_ID)
    if reader_id is not None:
        return int(reader_id)
    mode = st.radio("Have you read in this study before?", [MODE_RETURNING, MODE_NEW], horizontal=True,
                    key=f"{prefix}.identify_mode")  # fmt: skip
    if mode == MODE_RETURNING:
        with st.form(f"{prefix}.identify"):
            name = st.text_input("Name or pseudonym", key=f"{prefix}.name", max_chars=200)
            pin = st.text_input(
                "PIN",
                type="password",
                key=f"{prefix}.pin",
                max_chars=16,
                help="The 8 letters and digits shown when you registered (small letters and the dash are fine). "
                "Lost it, or registered before PINs existed? Ask the study administrator for a new one.",
            )
            go = st.form_submit_button("Continue", type="primary")
        if go:
            with common.guarded():
                found = store.identify_reader(name, pin)
            st.session_state[KEY_READER_ID] = found
            st.session_state[common.KEY_READER_NAME] = name.strip()
            st.rerun()
    else:
        with st.form(f"{prefix}.register"):
            name = st.text_input("Name or pseudonym", key=f"{prefix}.new_name", max_chars=200)
            years = st.number_input(
                "Years of experience in ultrasound",
                0,
                80,
                0,
                step=1,
                key=f"{prefix}.years",
                help="Stored once, with your registration.",
            )
            go = st.form_submit_button("Register", type="primary")
        if go:
            with common.guarded():
                reg = store.register_reader(name, experience_years=int(years))
            st.session_state[KEY_READER_ID] = reg.reader_id
            st.session_state[common.KEY_READER_NAME] = name.strip()
            st.session_state[KEY_NEW_PIN] = reg.pin
            st.rerun()
    return None


def show_new_pin(prefix: str) -> None:
    """After registration: the reader's PIN, shown until they confirm they have noted it (it is not stored)."""
    pin = st.session_state.get(KEY_NEW_PIN)
    if not pin:
        return
    st.success(
        f"You are registered. Your PIN is **{pin}**. Write it down now: it is shown only this once. "
        "With your name, it lets you continue on another day or computer; nobody else can read as you."
    )
    if st.button("I have written down my PIN", key=f"{prefix}.pin_noted"):
        st.session_state.pop(KEY_NEW_PIN, None)
        st.rerun()


def own_reads_table(reads: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """This reader's own finished and started cases: Case (its number in their order), blind and revised answers."""
    rows = []
    position = {c: i + 1 for i, c in enumerate(order)}
    for r in reads.itertuples(index=False):
        if r.case_id not in position:
            continue
        blind = answer_of(r.blind_malignant, r.blind_subtype)
        after = answer_of(r.assisted_malignant, r.assisted_subtype)
        rows.append(
            {
                "Case": position[r.case_id],
                "Your diagnosis (images only)": answer_name(blind) if blind else "",
                "Your diagnosis with the DLM": answer_name(after) if after else "",
            }
        )
    frame = pd.DataFrame(rows, columns=["Case", "Your diagnosis (images only)", "Your diagnosis with the DLM"])
    return frame.sort_values("Case").reset_index(drop=True)
