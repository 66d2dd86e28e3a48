"""Case input, ROI editing, cascade runs and Grad-CAM overlays (Case and Grad-CAM pages).

Everything clinical is done by ``softmass_core``; this module reads widgets,
keeps per-session caches (so moving a slider does not rerun a model) and draws.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st

from softmass_core.data.demo import DEMO_CASE_IDS, demo_case, demo_label
from softmass_core.errors import SoftmassError
from softmass_core.inference.cascade import CascadeResult, CaseImages
from softmass_core.inference.gradcam import CamResult, cams_for_result
from softmass_core.io.images import load_image
from softmass_core.io.roi import Roi
from softmass_core.labels import BENIGN, MALIGNANT, MODALITIES, MODALITY_NAMES, display_name
from softmass_core.report import CaseReport
from softmass_core.weights.weight_set import WeightSet
from ui.canvas import CanvasGeometry, canvas_background, drawn_roi, fit_canvas, roi_to_rect
from ui.common import guarded

#: File types the uploaders accept (load_image sniffs the content; this only filters the dialog).
IMAGE_TYPES = ["png", "jpg", "jpeg", "bmp", "tif", "tiff", "dcm", "dicom"]
#: Widest canvas, in screen pixels: half of a wide page on a 1400 px screen (wider canvases scroll).
CANVAS_MAX_WIDTH = 420
#: Empty canvas around the image on the ROI canvas, in screen pixels: a drag that ends past the
#: image's edge ends here (the canvas stops following a pointer that leaves it) and is clamped to the edge.
CANVAS_MARGIN = 32
#: Widest ROI canvas, margin included: a column of a two-image case on a 1400 px screen is 462 px.
ROI_CANVAS_MAX_WIDTH = 452

SOURCE_DEMO = "Demo case"
SOURCE_UPLOAD = "Upload images"

KEY_RESULTS = "softmass.case.results"  # {result key: CascadeResult}, a few recent runs
KEY_CAMS = "softmass.case.cams"  # {(result key, model id): {modality: CamResult}}
KEY_UPLOADS = "softmass.case.uploads"  # {(sha256, frame): (rgb, info dict)}, decoded uploads
_MAX_RESULTS = 4
_MAX_CAMS = 16
_MAX_UPLOADS = 4

ROI_STYLE = {"stroke": "#ffcc00", "strokeWidth": 2, "fill": "rgba(255, 204, 0, 0.08)"}


@dataclass(frozen=True)
class CaseImage:
    """One image of the case: ``rgb`` (H, W, 3) uint8, a content hash and what is known about the file."""

    modality: str
    rgb: np.ndarray
    digest: str
    info: dict[str, Any]
    default_roi: Roi

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


@dataclass(frozen=True)
class CaseInput:
    """The case on screen: a demo case or uploaded images (never their file names)."""

    case_id: str
    source: str  # "demo" or "upload"
    label: str | None  # the true label when known (demo cases)
    images: dict[str, CaseImage] = field(default_factory=dict)
    caption: str = ""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _trim(cache: dict, limit: int) -> None:
    while len(cache) > limit:
        cache.pop(next(iter(cache)))


# --------------------------------------------------------------------------- case input


@st.cache_data(show_spinner=False)
def _demo_digest(case_id: str) -> str:
    """Content hash of a demo case's images (computed once per process)."""
    case = demo_case(case_id)
    return _digest(case.gray.tobytes() + case.cdfi.tobytes())


def _demo_input(prefix: str) -> CaseInput:
    case_id = st.selectbox(
        "Demo case",
        list(DEMO_CASE_IDS),
        format_func=lambda cid: f"{cid} ({display_name(demo_label(cid))})",
        key=f"{prefix}.demo_case",
        help="Simulated cases (hospital 1 of the phantom); the true class is in the name.",
    )
    with st.spinner("Simulating the demo case ..."):
        case = demo_case(case_id)
        digest = _demo_digest(case_id)
    info = {"source": "simulated (phantom)", "hospital": case.hospital}
    images = {
        "gray": CaseImage("gray", case.gray, digest + ":gray", info, case.gray_roi),
        "cdfi": CaseImage("cdfi", case.cdfi, digest + ":cdfi", info, case.cdfi_roi),
    }
    caption = (
        f"Simulated case, true class **{display_name(case.label)}**, hospital {case.hospital}, "
        f"age {case.age}, sex {case.sex}."
    )
    return CaseInput(case_id=case_id, source="demo", label=case.label, images=images, caption=caption)


def _decode_upload(uploaded: Any, frame: int = 0) -> tuple[np.ndarray, dict[str, Any], str]:
    """Decode frame ``frame`` of an ``UploadedFile`` in memory (cached per content hash and frame in the session).

    Returns ``(rgb, info dict, sha256 of the file)``.
    """
    data = uploaded.getvalue()
    digest = _digest(data)
    cache = st.session_state.setdefault(KEY_UPLOADS, {})
    ck = (digest, int(frame))
    if ck not in cache:
        uploaded.seek(0)
        loaded = load_image(uploaded, frame=int(frame))
        cache[ck] = (loaded.rgb, loaded.info.to_dict())
        _trim(cache, _MAX_UPLOADS)
    rgb, info = cache[ck]
    return rgb, info, digest


def _frame_picker(prefix: str, modality: str, digest: str, n_frames: int) -> int:
    """A slider for the frame of a multi-frame file (a DICOM cine, a multi-page TIFF); 0-based frame."""
    shown = st.slider(
        f"Frame (1 to {n_frames})",
        min_value=1,
        max_value=n_frames,
        value=1,
        key=f"{prefix}.frame.{modality}.{digest[:16]}",
        help="This file holds several frames (e.g. a cine loop). The models look at one frame: pick the one "
        "that shows the mass best. The ROI is kept when you change the frame.",
    )
    return int(shown) - 1


def _upload_input(prefix: str) -> CaseInput | None:
    cols = st.columns(2)
    images: dict[str, CaseImage] = {}
    file_digests: list[str] = []
    unreadable = []
    for col, modality in zip(cols, MODALITIES, strict=True):
        with col:
            uploaded = st.file_uploader(
                f"{MODALITY_NAMES[modality]} image",
                type=IMAGE_TYPES,
                key=f"{prefix}.upload.{modality}",
                help="PNG, JPEG, BMP, TIFF or DICOM. Read in memory, never stored.",
            )
            if uploaded is None:
                continue
            with guarded():  # anything unforeseen: one message, no traceback
                try:
                    rgb, info, digest = _decode_upload(uploaded)
                    n_frames = int(info.get("n_frames", 1) or 1)
                    frame = _frame_picker(prefix, modality, digest, n_frames) if n_frames > 1 else 0
                    if frame:
                        rgb, info, digest = _decode_upload(uploaded, frame)
                except SoftmassError as exc:  # this column says why; the other uploader stays usable
                    st.error(str(exc))
                    unreadable.append(MODALITY_NAMES[modality])
                    continue
            h, w = rgb.shape[:2]
            file_digests.append(digest)
            # The frame is part of the image's identity (runs are cached by it), not of the case's (ROIs are kept).
            image_digest = f"{digest}:frame{frame}" if n_frames > 1 else digest
            images[modality] = CaseImage(modality, rgb, image_digest, info, Roi(0, 0, w, h))
    if unreadable:  # never run a case on half of what the user gave
        st.info(f"Replace or remove the {' and the '.join(unreadable)} file above to go on.")
        return None
    if not images:
        st.info("Upload a grayscale B-mode image, a CDFI image or both (one is enough).")
        return None
    case_id = "upload-" + _digest("".join(file_digests).encode())[:12]
    return CaseInput(
        case_id=case_id,
        source="upload",
        label=None,
        images=images,
        caption="Uploaded images (kept in memory for this session only). The ROI starts as the whole image.",
    )


def case_input(prefix: str) -> CaseInput | None:
    """Pick a demo case or upload images; None until there is at least one image."""
    source = st.radio("Case", [SOURCE_DEMO, SOURCE_UPLOAD], horizontal=True, key=f"{prefix}.source")
    with guarded():
        case = _demo_input(prefix) if source == SOURCE_DEMO else _upload_input(prefix)
    if case is not None:
        st.caption(case.caption)
    return case


def image_facts(image: CaseImage) -> str:
    """One caption line about an image (size, format): never a patient identifier."""
    info = image.info
    parts = [f"{image.width} x {image.height} px"]
    if info.get("format"):
        parts.append(str(info["format"]))
    if info.get("modality"):
        parts.append(f"modality {info['modality']}")
    if info.get("n_frames", 1) and int(info.get("n_frames", 1)) > 1:
        parts.append(f"frame {int(info.get('frame', 0)) + 1} of {info['n_frames']}")
    return ", ".join(parts)


# --------------------------------------------------------------------------- canvas and ROI


def draw_canvas(
    key: str,
    rgb: np.ndarray,
    geometry: CanvasGeometry,
    *,
    objects: list[dict[str, Any]] | None = None,
    drawing_mode: str = "rect",
    stroke: str = "#ffcc00",
    fill: str = "rgba(255, 204, 0, 0.08)",
    on_change: Callable[[], None] | None = None,
) -> dict[str, Any] | None:
    """A drawing canvas over ``rgb``; returns its Fabric JSON, or None when the component is unavailable.

    ``on_change`` is called (before the script reruns) when the user has drawn
    something; ``st.session_state[key]["drawing"]["raw"]`` holds the drawing then.
    """
    try:
        from streamlit_drawable_canvas import st_canvas
    except Exception:  # noqa: BLE001 - the component is optional; the numbers below always work
        st.caption("The drawing canvas is not available here: type the box in pixels below.")
        return None
    try:
        result = st_canvas(
            fill_color=fill,
            stroke_width=2,
            stroke_color=stroke,
            background_image=canvas_background(rgb, geometry),
            width=geometry.canvas_width,
            height=geometry.canvas_height,
            drawing_mode=drawing_mode,
            initial_drawing={"objects": list(objects or [])},
            update_streamlit=True,
            key=key,
            on_change=on_change,
        )
    except Exception as exc:  # noqa: BLE001 - fall back to the number inputs
        st.caption(f"The drawing canvas failed ({type(exc).__name__}); type the box in pixels below.")
        return None
    return result.json_data


_CORNERS = ("x0", "y0", "x1", "y1")
_TITLES = {"x0": "left x0", "y0": "top y0", "x1": "right x1", "y1": "bottom y1"}


@dataclass(frozen=True)
class _RoiKeys:
    """Session-state keys of one image's ROI editor.

    ``value`` holds the ROI ``[x0, y0, x1, y1]``.  The canvas and the number
    inputs are keyed by versions: the canvas gets a new key whenever the ROI
    changes (so it shows just the current box, and a drawing of an older one
    is never read again), the number inputs whenever the ROI changes other
    than by typing.  The script never writes a number input's value: the
    browser reports every input's value with each rerun it asks for, and a
    value the script had written but the browser had not shown yet would come
    back as a "change" and undo the box just drawn (issue 15: redraws lost).
    """

    base: str

    @property
    def value(self) -> str:
        return f"{self.base}.value"

    @property
    def canvas_version(self) -> str:
        return f"{self.base}.canvas_version"

    @property
    def fields_version(self) -> str:
        return f"{self.base}.fields_version"

    def canvas(self) -> str:
        return f"{self.base}.canvas.{st.session_state.get(self.canvas_version, 0)}"

    def field(self, name: str) -> str:
        return f"{self.base}.{name}.{st.session_state.get(self.fields_version, 0)}"


def _bump(key: str) -> None:
    st.session_state[key] = st.session_state.get(key, 0) + 1


def _set_roi(keys: _RoiKeys, roi: Roi, *, typed: bool = False) -> None:
    """Make ``roi`` the ROI; the canvas shows it, and so do the number inputs unless the user typed it."""
    state = st.session_state
    if state.get(keys.value) == roi.to_list():
        return
    state[keys.value] = roi.to_list()
    _bump(keys.canvas_version)
    if not typed:
        _bump(keys.fields_version)


def _typed_roi(keys: _RoiKeys, widget_keys: dict[str, str]) -> None:
    """A number input changed: the four inputs become the ROI (swapped corners put in order)."""
    x0, y0, x1, y1 = typed = [int(st.session_state[widget_keys[n]]) for n in _CORNERS]
    roi = Roi(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    _set_roi(keys, roi, typed=roi.to_list() == typed)  # the inputs show it already, unless reordered


def _drawn_roi(keys: _RoiKeys, canvas_key: str, geometry: CanvasGeometry) -> None:
    """The canvas sent a drawing: its last box (mapped to image pixels, clamped to the image) becomes the ROI."""
    value = st.session_state.get(canvas_key)
    drawing = value.get("drawing") if isinstance(value, Mapping) else None
    roi = drawn_roi(drawing.get("raw") if isinstance(drawing, Mapping) else None, geometry)
    if roi is not None:
        _set_roi(keys, roi)


def roi_canvas_geometry(width: int, height: int) -> CanvasGeometry:
    """Size and margin of the ROI canvas for a ``width`` x ``height`` image."""
    return fit_canvas(width, height, ROI_CANVAS_MAX_WIDTH - 2 * CANVAS_MARGIN, margin=CANVAS_MARGIN)


def roi_editor(prefix: str, case: CaseInput, image: CaseImage, *, canvas: bool = True) -> Roi:
    """Draw or type the ROI of one image; returns it in original-image pixels.

    The ROI lives in session state (kept across pages and reruns).  A box
    drawn, moved or resized on the canvas is mapped back to image pixels
    (clamped to the image: the canvas has a margin around the image, so a drag
    past the edge ends on the edge) and becomes the ROI; so do typed numbers.
    """
    keys = _RoiKeys(f"{prefix}.roi.{case.case_id}.{image.modality}")
    state = st.session_state
    if keys.value not in state:
        _set_roi(keys, image.default_roi)
    current = Roi(*state[keys.value])

    if canvas:
        geometry = roi_canvas_geometry(image.width, image.height)
        canvas_key = keys.canvas()
        draw_canvas(
            canvas_key,
            image.rgb,
            geometry,
            objects=[roi_to_rect(current, geometry, **ROI_STYLE)],
            drawing_mode="rect",
            on_change=functools.partial(_drawn_roi, keys, canvas_key, geometry),
        )
        st.caption(
            f"{image_facts(image)}. Drag a box on the image (past its edge to reach the edge), or type it "
            "(pixels, right/bottom exclusive). Leave some tissue around the mass on every side, below it too: "
            "the models learned such boxes, and tight boxes lowered their AUC in the project's tests "
            "(README, scanner shift)."
        )
    limits = {"x0": image.width, "y0": image.height, "x1": image.width, "y1": image.height}
    widget_keys = {name: keys.field(name) for name in _CORNERS}
    for col, name, value in zip(st.columns(4), _CORNERS, current.to_list(), strict=True):
        col.number_input(
            _TITLES[name],
            min_value=0,
            max_value=limits[name],
            # The inputs show the ROI (clamped to the image: they cannot hold more).
            value=min(max(int(value), 0), limits[name]),
            step=1,
            key=widget_keys[name],
            on_change=_typed_roi,
            args=(keys, widget_keys),
        )
    st.button(
        "Reset ROI",
        key=f"{keys.base}.reset",
        on_click=_set_roi,
        args=(keys, image.default_roi),
        help="Back to the demo case's box (or the whole uploaded image).",
    )
    return Roi(*state[keys.value])


# --------------------------------------------------------------------------- cascade and CAMs


def result_key(ws: WeightSet, case: CaseInput, rois: dict[str, Roi], run_all: bool = False) -> str:
    """Cache key of a cascade run: weight set, image content, ROIs (and ``run_all``: every model run)."""
    parts = [str(ws.folder), ws.id, ws.version, id(ws)] + (["all"] if run_all else [])
    parts += [[m, case.images[m].digest, rois[m].as_string()] for m in MODALITIES if m in case.images]
    return json.dumps(parts)


def run_case(ws: WeightSet, case: CaseInput, rois: dict[str, Roi], run_all: bool = False) -> tuple[str, CascadeResult]:
    """Run the cascade once per (weight set, images, ROIs) and keep the result in the session."""
    key = result_key(ws, case, rois, run_all)
    cache: dict[str, CascadeResult] = st.session_state.setdefault(KEY_RESULTS, {})
    if key not in cache:
        images = CaseImages(
            gray=case.images["gray"].rgb if "gray" in case.images else None,
            cdfi=case.images["cdfi"].rgb if "cdfi" in case.images else None,
            gray_roi=rois.get("gray"),
            cdfi_roi=rois.get("cdfi"),
        )
        # One worker serves every session in batches (softmass_core.inference.serving); a long queue is shown.
        from softmass_core.inference.serving import server_for

        server = server_for(ws)
        ticket = server.submit(images, keep_features=True, run_all=run_all)
        note = None
        try:
            with st.spinner("Running DLM-1 and, if benign, DLM-2 ..."):
                while not ticket.wait(0.2):
                    ahead = ticket.ahead()
                    if ahead >= server.max_batch:
                        note = note or st.empty()
                        note.info(f"{ahead} cases ahead of you: the models take up to {server.max_batch} at a time.")
                    elif note is not None:
                        note.empty()
        finally:
            ticket.cancel()  # the script was stopped or rerun while waiting: free the place in the queue
        if note is not None:
            note.empty()
        cache[key] = ticket.result()
        _trim(cache, _MAX_RESULTS)
    return key, cache[key]


def case_cams(ws: WeightSet, key: str, result: CascadeResult, model_id: str) -> dict[str, CamResult]:
    """Grad-CAM of ``model_id`` for every image of a run, computed once per session."""
    return session_maps(
        key, model_id, f"Computing Grad-CAM for {model_id.upper()} ...", lambda: cams_for_result(ws, result, model_id)
    )


def session_maps(key: str, tag: str, doing: str, compute: Callable[[], dict[str, CamResult]]) -> dict[str, CamResult]:
    """The maps ``tag`` (a model id, or e.g. ``occlusion:dlm1``) of run ``key``: ``compute()`` once per session,
    under a spinner saying ``doing``; the session keeps the latest few."""
    cache: dict[tuple[str, str], dict[str, CamResult]] = st.session_state.setdefault(KEY_CAMS, {})
    ck = (key, tag)
    if ck not in cache:
        with st.spinner(doing):
            cache[ck] = compute()
        _trim(cache, _MAX_CAMS)
    return cache[ck]


def guarded_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with core errors shown as ``st.error`` (the page stops)."""
    with guarded():
        return fn(*args, **kwargs)


def overlap_picture(rgb: np.ndarray, reader: np.ndarray, model: np.ndarray) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 tinted: reader's area green, model's area red, both yellow."""
    out = rgb.astype(np.float32).copy()
    tint = np.zeros_like(out)
    tint[reader & ~model] = (0, 200, 0)
    tint[model & ~reader] = (230, 0, 0)
    tint[reader & model] = (255, 215, 0)
    any_area = reader | model
    out[any_area] = 0.45 * out[any_area] + 0.55 * tint[any_area]
    return np.clip(out, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- result wording

#: Plain-language help for the words the Case page uses about scoring.
FUSION_HELP = (
    "Fusion rule: how the images' scores become the one case score that is compared with the threshold. "
    "'mean' averages the grayscale and CDFI images' scores; 'max' takes the more suspicious of the two; "
    "'gray' or 'cdfi' uses that image only. The weight set fixes the rule (it was chosen on validation data). "
    "With one image, the case score is that image's score."
)
TTA_HELP = (
    "Test-time views (test-time augmentation): besides the image as it is, a model may also score its "
    "left-right mirror image, and the two scores are averaged; this steadies the score against where the mass "
    "happens to lie. 'One pass per image' means the image is scored once, as it is."
)


def scoring_caption(result: CascadeResult, tta: str) -> str:
    """One sentence on how the case score was made: test-time views and fusion of the images."""
    n = len(result.per_image)
    fused = (
        "the case score is that image's score"
        if n == 1
        else f"the case score is the {result.fusion_rule} of the {n} images' scores"
    )
    return f"Test-time views: {tta}. Fusion rule: {fused}."


def truth_caption(diagnosis: str, label: str) -> str:
    """The model's answer beside the true class of a demo case, and whether they match.

    A set that names no subtype (DLM-1 only, or a benign call without DLM-2)
    says benign or malignant, so it matches on that: ``Model: Benign (subtype
    unknown) | Truth: Lipoma (benign): match``.
    """
    truth = display_name(label)
    if diagnosis in (MALIGNANT, BENIGN) or label == BENIGN:
        hit = (diagnosis == MALIGNANT) == (label == MALIGNANT)
        if label not in (MALIGNANT, BENIGN):
            truth += " (benign)"
        return f"Model: {display_name(diagnosis)} | Truth: {truth}: {'match' if hit else 'no match'}"
    if diagnosis == label:
        return f"Model: {display_name(diagnosis)} | Truth: {truth}: match"
    both_benign = MALIGNANT not in (diagnosis, label)
    return f"Model: {display_name(diagnosis)} | Truth: {truth}: no match{' (both benign)' if both_benign else ''}"


# --------------------------------------------------------------------------- report files

KEY_REPORTS = "softmass.case.reports"  # {(result key, models shown): ReportFiles}
_MAX_REPORTS = 4


@dataclass(frozen=True)
class ReportFiles:
    """The case report's three downloads, as bytes."""

    pdf: bytes
    png: bytes
    json: bytes


def report_files(key: str, models: Sequence[str], build: Callable[[], CaseReport]) -> ReportFiles:
    """The report of run ``key`` with the Grad-CAMs of ``models``: built once, then kept in the session.

    A report carries the time it was made, so building it on every rerun gave
    new bytes, hence a new download address, each time; a browser still
    fetching the old one got a 404 (issue 15, under load).  Kept, the bytes
    and addresses stay the same until the run or the models shown change.
    """
    cache: dict[tuple[str, tuple[str, ...]], ReportFiles] = st.session_state.setdefault(KEY_REPORTS, {})
    rk = (key, tuple(models))
    if rk not in cache:
        with guarded(), st.spinner("Writing the case report ..."):
            report = build()
            cache[rk] = ReportFiles(report.to_pdf(), report.to_png(), report.to_json().encode("utf-8"))
        _trim(cache, _MAX_REPORTS)
    return cache[rk]


def report_downloads(case_id: str, files: ReportFiles) -> None:
    """Three download buttons: PDF, PNG sheet, JSON."""
    d1, d2, d3 = st.columns(3)
    name = f"{case_id}-report"
    d1.download_button("Download PDF", files.pdf, f"{name}.pdf", "application/pdf", key="case.pdf")
    d2.download_button("Download PNG sheet", files.png, f"{name}.png", "image/png", key="case.png")
    d3.download_button("Download JSON", files.json, f"{name}.json", "application/json", key="case.json")
