"""Case reports (softmass_core.report): JSON keys, PDF/PNG output, no patient identifiers."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from softmass_core.errors import SoftmassError
from softmass_core.inference.cascade import Cascade, CaseImages
from softmass_core.inference.gradcam import cams_for_result, overlay_cam
from softmass_core.io.images import load_image
from softmass_core.io.roi import Roi, draw_roi
from softmass_core.labels import DLM1, display_name, model_name
from softmass_core.report import (
    DISCLAIMER,
    GRADCAM_NOTE,
    GRADCAM_OPACITY,
    ReportImage,
    build_report,
)
from softmass_core.weights.weight_set import WeightSet

PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "PID-0042-XYZ"
IDENTIFIERS = ("Doe", "Jane", PATIENT_ID, "19700101", "St Elsewhere")


def dicom_with_identifiers(rgb_gray: np.ndarray) -> bytes:
    """An 8-bit grey ultrasound DICOM (in memory) carrying patient identifiers."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = UltrasoundImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19700101"
    ds.InstitutionName = "St Elsewhere"
    ds.Modality = "US"
    ds.Rows, ds.Columns = rgb_gray.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(rgb_gray, dtype=np.uint8).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def dicom_bytes(rgb_pair_module):
    return dicom_with_identifiers(rgb_pair_module[0][:, :, 0])


@pytest.fixture(scope="module")
def rgb_pair_module():
    from conftest import synthetic_rgb

    return synthetic_rgb(1), synthetic_rgb(2)


@pytest.fixture(scope="module")
def report_parts(tiny_weights, dicom_bytes, rgb_pair_module):
    ws = WeightSet.load(tiny_weights)
    gray = load_image(dicom_bytes)
    cdfi = rgb_pair_module[1]
    rois = {"gray": Roi(20, 10, 140, 100), "cdfi": Roi(30, 20, 150, 110)}
    result = Cascade(ws).run(
        CaseImages(gray=gray.rgb, cdfi=cdfi, gray_roi=rois["gray"], cdfi_roi=rois["cdfi"]), keep_features=True
    )
    cams = cams_for_result(ws, result, DLM1)
    images = [
        ReportImage(
            "gray",
            gray.rgb,
            result.rois["gray"],
            gray.info.to_dict(),
            {DLM1: cams["gray"].cam_roi},
        ),
        ReportImage(
            "cdfi",
            cdfi,
            result.rois["cdfi"],
            {"format": "PNG"},
            {DLM1: cams["cdfi"].cam_roi},
        ),
    ]
    return result, images


def test_json_has_the_result_image_info_and_disclaimer(report_parts):
    result, images = report_parts
    report = build_report(result, images, case_name="upload-abc123")
    data = json.loads(report.to_json())
    assert {"report", "disclaimer", "generated_at", "software", "case", "diagnosis_display", "result", "images"} <= set(
        data
    )
    assert data["result"] == json.loads(json.dumps(result.to_dict()))
    assert data["result"]["weight_set"] == {"id": "tiny", "version": "0.0.1"}
    assert data["diagnosis_display"] == display_name(result.diagnosis)
    assert data["disclaimer"] == DISCLAIMER and "not for clinical use" in data["disclaimer"]
    assert data["images"]["gray"]["roi"] == "20,10,140,100"
    assert data["images"]["gray"]["file"]["format"] == "DICOM"
    assert data["images"]["gray"]["file"]["modality"] == "US"
    assert (data["images"]["gray"]["width"], data["images"]["gray"]["height"]) == (160, 120)
    assert data["images"]["cdfi"]["gradcam_models"] == [DLM1]


def test_no_patient_identifier_in_any_form(report_parts):
    result, images = report_parts
    report = build_report(result, images, case_name="upload-abc123")
    text = report.to_json()
    pdf = report.to_pdf(compress=False)
    png = report.to_png()
    # The uncompressed PDF does carry the report's text (so the search below means something).
    assert b"Weight set: tiny version 0.0.1" in pdf
    assert "upload-abc123" in text
    for ident in IDENTIFIERS:
        assert ident not in text
        assert ident.encode() not in pdf
        assert ident.encode() not in png


def test_pdf_and_png_are_valid(report_parts):
    result, images = report_parts
    report = build_report(result, images, case_name="demo-lipoma-1")
    pdf = report.to_pdf()
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
    png = Image.open(io.BytesIO(report.to_png(panel_height=120)))
    assert png.format == "PNG" and png.mode == "RGB"
    # Two rows of panels of 120 px plus the text block.
    assert png.height > 2 * 120 and png.width >= 900


def test_summary_lines_state_threshold_path_and_weight_set(report_parts):
    result, images = report_parts
    lines = build_report(result, images).summary_lines()
    joined = "\n".join(lines)
    assert f"against operating threshold {result.threshold:.3f}" in joined
    assert "Models run: DLM-1" in joined
    assert result.stopped_because in joined
    assert "tiny version 0.0.1" in joined


def test_draw_roi_outlines_the_box_only():
    rgb = np.zeros((40, 50, 3), np.uint8)
    out = draw_roi(rgb, Roi(10, 5, 30, 25), width=1)
    assert tuple(out[5, 10]) == (255, 204, 0) and tuple(out[24, 29]) == (255, 204, 0)
    assert tuple(out[15, 20]) == (0, 0, 0)  # inside stays untouched
    assert rgb.max() == 0  # the input is not modified


def test_model_names():
    assert model_name("dlm1") == "DLM-1"
    assert model_name("sm1") == "SM-1 (lipoma)"
    assert model_name("sm5").startswith("SM-5 (calcifying epithelioma")


def test_report_needs_an_image(report_parts):
    result, _ = report_parts
    with pytest.raises(SoftmassError):
        build_report(result, [])


# ---------------------------------------------------------------------- Grad-CAM panels, captions, footer


def _four_panel_report(report_parts):
    """The Case page's widest report: the image and three Grad-CAM panels (DLM-1, two sub-models)."""
    result, images = report_parts
    wide = []
    for im in images:
        cam = im.cams[DLM1]
        wide.append(ReportImage(im.modality, im.rgb, im.roi, im.info, {DLM1: cam, "sm1": cam[::-1], "sm5": cam.T.T}))
    return build_report(result, wide, case_name="demo-lipoma-1")


def test_gradcam_panels_show_the_heatmap_at_the_stated_opacity(report_parts):
    result, images = report_parts
    report = build_report(result, images)
    (_, row), _ = report.panels()
    im = images[0]
    caption, panel = row[1]
    assert caption == "Grad-CAM DLM-1"
    # The panel is the report's own blend at GRADCAM_OPACITY (0 would give the plain image back).
    expected = overlay_cam(im.rgb, im.cams[DLM1], im.roi, alpha=GRADCAM_OPACITY)
    inside = (slice(im.roi.y0 + 4, im.roi.y1 - 4), slice(im.roi.x0 + 4, im.roi.x1 - 4))
    assert np.array_equal(panel[inside], expected[inside])
    assert np.abs(panel[inside].astype(int) - im.rgb[inside].astype(int)).mean() > 10
    assert 0 < GRADCAM_OPACITY < 1


def test_opacity_is_recorded_in_json_pdf_and_png(report_parts):
    result, images = report_parts
    report = build_report(result, images)
    data = json.loads(report.to_json())
    assert data["gradcam"]["opacity"] == GRADCAM_OPACITY
    assert data["gradcam"]["colormap"] == "jet" and data["gradcam"]["note"] == GRADCAM_NOTE
    assert f"{GRADCAM_OPACITY:.0%} opacity" in GRADCAM_NOTE
    pdf = report.to_pdf(compress=False)
    assert b"blended at 50% opacity inside the ROI" in pdf
    # The PNG sheet is taller by the note's lines than the same sheet without it would be: check the text block.
    png = Image.open(io.BytesIO(report.to_png(panel_height=120)))
    assert png.height > 2 * 120


def test_an_overlay_image_passed_as_a_heatmap_is_refused(report_parts):
    result, images = report_parts
    im = images[0]
    with pytest.raises(SoftmassError, match="CamResult.cam_roi"):
        ReportImage(im.modality, im.rgb, im.roi, im.info, {DLM1: im.rgb})


def test_every_pdf_caption_fits_its_panel(report_parts):
    from fpdf import FPDF

    report = _four_panel_report(report_parts)
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.add_page()
    rows = report.pdf_panel_layout(pdf)
    items = [item for row in rows for item in row.items]
    assert [i.caption for i in items[:4]] == [
        "Image and ROI",
        "Grad-CAM DLM-1",
        "Grad-CAM SM-1 (lipoma)",
        "Grad-CAM SM-5 (calcifying epithelioma)",
    ]
    pdf.set_font("Helvetica", "", 8)
    right_edge = pdf.w - pdf.r_margin
    for item in items:
        assert item.x + item.width <= right_edge + 1e-6
        assert " ".join(item.caption_lines) == item.caption  # wrapped, nothing cut
        for line in item.caption_lines:
            assert pdf.get_string_width(line) <= item.width - 2 * pdf.c_margin + 1e-6, line
    # 4 panels per image are laid out 2 x 2, so the long sub-model name still fits on one line.
    assert [len(row.items) for row in rows] == [2, 2, 2, 2]
    assert all(len(item.caption_lines) == 1 for item in items)


def test_footer_disclaimer_reads_right_on_every_page(report_parts):
    report = _four_panel_report(report_parts)
    assert "below" not in DISCLAIMER and "above" not in DISCLAIMER
    assert "the diagnosis in this report" in DISCLAIMER
    pdf = report.to_pdf(compress=False)
    n_pages = pdf.count(b"/Type /Page\n") or pdf.count(b"/Type /Page\r")
    assert n_pages >= 2  # two images of 4 panels do not fit one page
    for k in range(1, n_pages + 1):  # fpdf2 writes the page total ({nb}) as its own text run
        assert re.search(rb"\(page %d of \)\s*Tj\s*\(%d\)" % (k, n_pages), pdf), k
    # The footer (on every page) plus the heading's copy.
    assert pdf.count(b"must not guide the care of any") == n_pages + 1


def test_an_occlusion_map_the_user_asked_for_is_a_panel_with_its_note_in_every_format(report_parts):
    from softmass_core.report import OCCLUSION_NOTE

    result, images = report_parts
    im = images[0]
    occ = np.zeros((im.roi.height, im.roi.width), np.float32)
    occ[: im.roi.height // 2] = 1.0  # evidence in the top half only
    with_occ = [ReportImage(im.modality, im.rgb, im.roi, im.info, im.cams, {DLM1: occ}), images[1]]
    report = build_report(result, with_occ)
    (_, row), (_, other) = report.panels()
    assert [c for c, _ in row] == ["Image and ROI", "Grad-CAM DLM-1", "Occlusion DLM-1"]
    assert [c for c, _ in other] == ["Image and ROI", "Grad-CAM DLM-1"]  # asked for on the gray image only
    panel = row[2][1]
    expected = overlay_cam(im.rgb, occ, im.roi, alpha=GRADCAM_OPACITY)
    inside = (slice(im.roi.y0 + 4, im.roi.y1 - 4), slice(im.roi.x0 + 4, im.roi.x1 - 4))
    assert np.array_equal(panel[inside], expected[inside])
    data = json.loads(report.to_json())
    assert data["images"]["gray"]["occlusion_models"] == [DLM1] and data["images"]["cdfi"]["occlusion_models"] == []
    assert data["gradcam"]["note"] == GRADCAM_NOTE + " " + OCCLUSION_NOTE
    assert b"Occlusion panels: how much hiding" in report.to_pdf(compress=False)
    assert json.loads(build_report(result, images).to_json())["gradcam"]["note"] == GRADCAM_NOTE
    with pytest.raises(SoftmassError, match="occlusion heatmap has shape"):
        ReportImage(im.modality, im.rgb, im.roi, im.info, {}, {DLM1: im.rgb})
