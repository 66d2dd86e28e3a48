"""Helpers of the Reader-study page: reading order, the model's result for a case, result tables.

The model's result is computed only when the page asks for it, and the page
asks only after the store says the reader's blind read is recorded
(:meth:`softmass_core.store.ReaderStudyStore.reader_state`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image, ImageDraw

from softmass_core import demo
from softmass_core.cascade import Cascade
from softmass_core.gradcam import cams_for_result, overlay_cam
from softmass_core.labels import DLM1, MALIGNANT, SUBTYPES, display_name
from softmass_core.roi import Roi
from ui import common
from ui.charts import TASK_NAMES

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


def with_roi(rgb: np.ndarray, roi: Roi, *, colour: tuple[int, int, int] = (255, 204, 0)) -> np.ndarray:
    """A copy of ``rgb`` (H, W, 3) uint8 with the ROI outlined."""
    im = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    ImageDraw.Draw(im).rectangle([roi.x0, roi.y0, roi.x1 - 1, roi.y1 - 1], outline=colour, width=2)
    return np.asarray(im)


@st.cache_data(max_entries=24, show_spinner="Running the DLM on this case ...")
def model_result(ws_folder: str, ws_tag: str, case_id: str) -> dict[str, Any]:
    """The cascade's result on demo case ``case_id`` and Grad-CAM overlays, cached per weight set and case.

    Returns ``{"result": CascadeResult.to_dict(), "heatmaps": {model_id:
    {modality: (H, W, 3) uint8}}, "sub_model": id of the sub-model that named
    the subtype or None}``.  ``ws_tag`` (id and version) is part of the key.
    """
    ws = common.get_weight_set(ws_folder)
    case = demo.demo_case(case_id)
    cascade = Cascade(ws)
    result = cascade.run(case.to_case_images(), keep_features=True)
    sub_model = cascade.diagnosing_model(result)
    heatmaps: dict[str, dict[str, np.ndarray]] = {}
    for model_id in [DLM1] + ([sub_model] if sub_model else []):
        cams = cams_for_result(ws, result, model_id)
        heatmaps[model_id] = {m: overlay_cam(getattr(case, m), cam.cam_roi, cam.roi) for m, cam in cams.items()}
    return {"result": result.to_dict(), "heatmaps": heatmaps, "sub_model": sub_model}


def _accuracy_cell(k: int, n: int, acc: float, lo: float, hi: float) -> str:
    if not n or math.isnan(acc):
        return "n/a"
    return f"{100 * acc:.1f}% ({k}/{n}) [{100 * lo:.1f}, {100 * hi:.1f}]"


def _p_cell(p: float, method: str) -> str:
    if p is None or math.isnan(p):
        return "n/a"
    text = "<0.001" if p < 0.001 else f"{p:.3f}"
    return f"{text} ({method})" if method else text


def summary_table(summary: pd.DataFrame, readers: pd.DataFrame | None = None) -> pd.DataFrame:
    """``store.reader_study_summary`` as people read it, one row per reader and task.

    Accuracy cells read ``"86.2% (50/58) [74.6, 93.9]"`` (Clopper-Pearson
    95% CI); McNemar's p compares blind and assisted reads of the same cases.
    ``readers`` (``store.readers()``) adds the years of experience.
    """
    years = {} if readers is None else dict(zip(readers["id"], readers["experience_years"], strict=True))
    rows = []
    for r in summary.itertuples(index=False):
        y = years.get(r.reader_id)
        rows.append(
            {
                "Reader": r.reader_name,
                "Experience (years)": "" if y is None or pd.isna(y) else str(int(y)),
                "Task": TASK_NAMES.get(r.task, r.task),
                "Cases": int(r.n),
                "Blind (images only)": _accuracy_cell(
                    r.correct_before, r.n, r.accuracy_before, r.ci_before_low, r.ci_before_high
                ),
                "With the DLM": _accuracy_cell(r.correct_after, r.n, r.accuracy_after, r.ci_after_low, r.ci_after_high),
                "McNemar p": _p_cell(r.mcnemar_p, r.mcnemar_method) if r.n else "n/a",
            }
        )
    return pd.DataFrame(
        rows,
        columns=["Reader", "Experience (years)", "Task", "Cases", "Blind (images only)", "With the DLM", "McNemar p"],
    )
