"""A downloadable case report: PDF, PNG sheet and JSON of one cascade run.

The report holds the images with their ROI boxes, the Grad-CAM overlays, the
probabilities against the operating threshold, the diagnosis, the path the
cascade took, the weight set's id and version and the research-use
disclaimer.

Grad-CAM panels are drawn by the report itself, from the heatmaps, at one
fixed opacity (:data:`GRADCAM_OPACITY`) that every form of the report states
(the PDF and PNG in words, the JSON under ``gradcam``).  The report is read
away from the dashboard and kept: its heatmaps must be visible and drawn the
same way in every report, whatever opacity the on-screen slider was left at
(at 0 the "Grad-CAM" panels would be the plain image).  It never holds a patient identifier: image information comes
from :class:`softmass_core.io.images.ImageInfo` (which carries none) and the case
is named by the caller (the dashboard passes a demo id or a content hash,
never an upload's file name).

Images are RGB ``uint8`` arrays ``(H, W, 3)``; ROIs are original-image pixels.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from softmass_core import __version__
from softmass_core.errors import SoftmassError
from softmass_core.inference.cam_display import with_colorbar
from softmass_core.inference.cascade import CascadeResult
from softmass_core.inference.input_check import report_lines
from softmass_core.io.roi import Roi, draw_roi
from softmass_core.labels import MODALITIES, MODALITY_NAMES, MODEL_NAMES, display_name, model_name

DISCLAIMER = (
    "Research demo, not for clinical use. Not a medical device: the diagnosis in this report was made by a "
    "research model and must not guide the care of any patient."
)

#: Opacity of the heatmap inside the ROI on the report's Grad-CAM panels (0 = image only, 1 = heatmap only).
GRADCAM_OPACITY = 0.5
#: How the report's Grad-CAM panels are drawn, in words (PDF, PNG and JSON say the same).
GRADCAM_NOTE = (
    f"Grad-CAM panels: the heatmap is blended at {GRADCAM_OPACITY:.0%} opacity inside the ROI (yellow box), "
    "whatever the dashboard's opacity slider showed; blue = weak, red = strongest evidence. "
    "DLM-1 explains 'malignant'; a sub-model explains its own subtype."
)
#: Added to the note when the report holds occlusion maps.
OCCLUSION_NOTE = (
    "Occlusion panels: how much hiding a 32 px patch of the model input (mid-grey, stride 16) lowered the score, "
    "averaged over the patches covering each pixel; drawn the same way."
)

_PANEL_HEIGHT = 240  # pixels of each image panel on the PNG sheet


@dataclass(frozen=True)
class ReportImage:
    """One image of the case for the report.

    ``rgb`` is ``(H, W, 3)`` uint8, ``roi`` the box the models saw (image
    pixels, as the cascade resolved it), ``info`` what is known about the file
    (e.g. ``ImageInfo.to_dict()``; must not hold identifiers), ``cams`` the
    Grad-CAM heatmaps to show ``{model_id: (roi.height, roi.width) float in
    [0, 1]}`` (``CamResult.cam_roi``), and ``occlusion`` the occlusion maps
    the user asked for, in the same form.  The report blends them itself at
    :data:`GRADCAM_OPACITY`.
    """

    modality: str
    rgb: np.ndarray
    roi: Roi
    info: Mapping[str, Any] = field(default_factory=dict)
    cams: Mapping[str, np.ndarray] = field(default_factory=dict)
    occlusion: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        want = (self.roi.height, self.roi.width)
        for kind, maps in (("Grad-CAM", self.cams), ("occlusion", self.occlusion)):
            for model_id, cam in maps.items():
                shape = np.shape(cam)
                if shape != want:
                    raise SoftmassError(
                        f"The {model_id} {kind} heatmap has shape {shape}, but the ROI is {want[1]} x {want[0]} "
                        "pixels: pass the heatmap mapped onto the ROI (CamResult.cam_roi), not an overlay image."
                    )

    def overlay(self, model_id: str, *, occlusion: bool = False) -> np.ndarray:
        """``rgb`` with ``model_id``'s heatmap (its occlusion map if asked) blended inside the ROI."""
        from softmass_core.inference.gradcam import overlay_cam

        maps = self.occlusion if occlusion else self.cams
        cam = np.clip(np.asarray(maps[model_id], dtype=np.float32), 0.0, 1.0)
        return overlay_cam(self.rgb, cam, self.roi, alpha=GRADCAM_OPACITY)


def _latin1(text: str) -> str:
    """Text the PDF core fonts can print (anything outside Latin-1 becomes '?')."""
    replacements = {"\u2265": ">=", "\u2264": "<=", "\u2192": "->", "\u2013": "-", "\u2014": "-", "\u2019": "'"}
    for a, b in replacements.items():
        text = text.replace(a, b)
    return text.encode("latin-1", "replace").decode("latin-1")


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


@dataclass
class CaseReport:
    """A case report; ``to_dict``/``to_json``/``to_png``/``to_pdf`` give the three forms."""

    result: CascadeResult
    images: Sequence[ReportImage]
    case_name: str = "case"
    disclaimer: str = DISCLAIMER
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if not self.images:
            raise SoftmassError("A report needs at least one image; run the cascade on a case first.")
        for im in self.images:
            if im.modality not in MODALITIES:
                raise SoftmassError(f"Unknown image kind {im.modality!r}; use one of {', '.join(MODALITIES)}.")

    # ------------------------------------------------------------------ text

    def summary_lines(self) -> list[str]:
        """The report's text, one line per item (also used by the PNG and the PDF)."""
        r = self.result
        lines = [
            f"Case: {self.case_name}",
            f"Weight set: {r.weight_set_id} version {r.weight_set_version} (fusion rule: {r.fusion_rule}; "
            f"test-time views: {', '.join(('plain', *r.test_time_views))})",
            *report_lines(r.input_check),
            f"Diagnosis: {display_name(r.diagnosis)}",
            f"DLM-1 P(malignant): {r.p_malignant:.3f} against operating threshold {r.threshold:.3f} "
            f"-> {'malignant' if r.malignant else 'benign'}",
        ]
        span = (
            "not measured for this set"
            if r.p_malignant_interval is None
            else "[{:.3f}, {:.3f}]".format(*r.p_malignant_interval)
        )
        lines.append(
            f"Operating point: {r.operating_point} (threshold {r.threshold:.3f}); P(malignant) range "
            f"{span}; verdict: {r.verdict or ('malignant' if r.malignant else 'benign')}"
            + (f" (subtype if benign: {display_name(r.subtype_if_benign)})"
               if r.verdict == "indeterminate" and r.subtype_if_benign else "")
        )  # fmt: skip
        for m, p in r.per_image_p_malignant().items():
            lines.append(f"  {MODALITY_NAMES.get(m, m)}: P(malignant) {p:.3f}")
        if r.sub_scores is not None:
            scores = ", ".join(f"{display_name(k)} {v:.3f}" for k, v in r.sub_scores.items())
            lines.append(f"DLM-2 sub-model scores: {scores}")
        lines.append("Models run: " + " -> ".join(MODEL_NAMES.get(m, m) for m in r.models_run))
        lines.append(f"Cascade path: {r.stopped_because}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe report: ``result.to_dict()`` plus image information, how Grad-CAM is drawn and provenance."""
        images: dict[str, Any] = {}
        for im in self.images:
            h, w = np.asarray(im.rgb).shape[:2]
            images[im.modality] = {
                "width": int(w),
                "height": int(h),
                "roi": im.roi.as_string(),
                "file": {k: v for k, v in dict(im.info).items() if _is_plain(v)},
                "gradcam_models": list(im.cams),
                "occlusion_models": list(im.occlusion),
            }
        return {
            "report": "softmass case report",
            "disclaimer": self.disclaimer,
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "software": {"softmass": __version__},
            "case": self.case_name,
            "diagnosis_display": display_name(self.result.diagnosis),
            "result": self.result.to_dict(),
            "gradcam": {
                "opacity": GRADCAM_OPACITY,
                "colormap": "jet",
                "drawn": "inside the ROI only",
                "note": self.cam_note(),
            },
            "images": images,
        }

    def cam_note(self) -> str:
        """How the heatmap panels are drawn: :data:`GRADCAM_NOTE`, plus :data:`OCCLUSION_NOTE` when any are shown."""
        return GRADCAM_NOTE + (" " + OCCLUSION_NOTE if any(im.occlusion for im in self.images) else "")

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    # ------------------------------------------------------------------ pictures

    def panels(self) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
        """Per image: ``(title, [(caption, rgb), ...])`` with the ROI drawn on every panel.

        Grad-CAM panels are blended at :data:`GRADCAM_OPACITY` (see :meth:`ReportImage.overlay`), with
        the colour bar under them (:func:`softmass_core.inference.cam_display.with_colorbar`).
        """
        out = []
        for im in self.images:
            row = [("Image and ROI", draw_roi(im.rgb, im.roi))]
            for model_id in im.cams:
                panel = with_colorbar(draw_roi(im.overlay(model_id), im.roi))  # jet scale under the overlay
                row.append((f"Grad-CAM {model_name(model_id)}", panel))
            for model_id in im.occlusion:
                panel = with_colorbar(draw_roi(im.overlay(model_id, occlusion=True), im.roi))
                row.append((f"Occlusion {model_name(model_id)}", panel))
            out.append((MODALITY_NAMES.get(im.modality, im.modality), row))
        return out

    def to_png(self, *, panel_height: int = _PANEL_HEIGHT) -> bytes:
        """A one-page PNG sheet: text, then one row of panels per image (captions wrap to the panel's width)."""
        font = ImageFont.load_default(size=15)
        bold = ImageFont.load_default(size=20)
        pad = 12
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        rows = []
        for title, panels in self.panels():
            scaled = []
            for caption, rgb in panels:
                img = Image.fromarray(rgb)
                w = max(1, round(img.width * panel_height / img.height))
                lines = _wrap(caption, lambda t: probe.textlength(t, font=font), w)
                scaled.append((lines, img.resize((w, panel_height), Image.Resampling.BILINEAR)))
            rows.append((title, scaled))
        width = max(
            900,
            max(pad + sum(im.width + pad for _, im in scaled) for _, scaled in rows),
        )
        text_w = width - 2 * pad
        measure = lambda t: probe.textlength(t, font=font)  # noqa: E731
        head = _wrap(self.disclaimer, measure, text_w)
        lines = [wrapped for line in self.summary_lines() for wrapped in _wrap(line, measure, text_w)]
        note = _wrap(self.cam_note(), measure, text_w)
        text_h = pad + 30 + 20 * len(head) + 6 + 22 * len(lines) + 8 + 20 * len(note) + 12
        row_hs = [panel_height + 34 + 18 * max(len(c) for c, _ in scaled) for _, scaled in rows]
        sheet = Image.new("RGB", (width, text_h + sum(row_hs) + pad), "white")
        draw = ImageDraw.Draw(sheet)
        y = pad
        draw.text((pad, y), "softmass case report", fill="black", font=bold)
        y += 30
        for line in head:
            draw.text((pad, y), line, fill=(170, 0, 0), font=font)
            y += 20
        y += 6
        for line in lines:
            draw.text((pad, y), line, fill="black", font=font)
            y += 22
        y += 8
        for line in note:
            draw.text((pad, y), line, fill=(60, 60, 60), font=font)
            y += 20
        y = text_h
        for (title, scaled), row_h in zip(rows, row_hs, strict=True):
            draw.text((pad, y), title, fill="black", font=bold)
            x = pad
            for caption_lines, im in scaled:
                sheet.paste(im, (x, y + 26))
                for k, line in enumerate(caption_lines):
                    draw.text((x, y + 28 + panel_height + 18 * k), line, fill="black", font=font)
                x += im.width + pad
            y += row_h
        return _png_bytes(sheet)

    def pdf_panel_layout(self, pdf: Any) -> list[PanelRow]:
        """Where :meth:`to_pdf` puts each panel: rows of at most 3 (4 panels as 2 x 2), captions wrapped.

        ``pdf`` is an ``FPDF`` with the page set up; sizes are in its units
        (mm).  Every caption line fits its panel's width.
        """
        pdf.set_font(*_CAPTION_FONT)
        out: list[PanelRow] = []
        for title, panels in self.panels():
            n = len(panels)
            per_row = n if n <= 3 else math.ceil(n / math.ceil(n / 3))  # balanced rows of <= 3
            gap = 3.0
            cell_w = (pdf.epw - gap * (per_row - 1)) / per_row
            for start in range(0, n, per_row):
                chunk = panels[start : start + per_row]
                items = []
                for i, (caption, rgb) in enumerate(chunk):
                    lines = pdf.multi_cell(cell_w, _CAPTION_LINE_H, _latin1(caption), dry_run=True, output="LINES")
                    items.append(
                        PanelItem(
                            caption=caption,
                            caption_lines=[str(line) for line in lines],
                            rgb=rgb,
                            x=pdf.l_margin + i * (cell_w + gap),
                            width=cell_w,
                            height=cell_w * rgb.shape[0] / rgb.shape[1],
                        )
                    )
                out.append(PanelRow(title=title if start == 0 else None, items=items))
        return out

    def to_pdf(self, *, compress: bool = True) -> bytes:
        """An A4 PDF (fpdf2): disclaimer, text, the image panels; the disclaimer and page number on every page.

        ``compress=False`` leaves the page streams readable (for tests).
        """
        from fpdf import FPDF

        disclaimer = _latin1(self.disclaimer)

        class _ReportPDF(FPDF):
            def footer(self) -> None:
                self.set_y(-13)
                self.set_font("Helvetica", "I", 7)
                self.set_text_color(110, 110, 110)
                self.multi_cell(self.epw - 18, 3.2, disclaimer, new_x="RIGHT", new_y="TOP")
                self.set_xy(self.w - self.r_margin - 18, -13)
                self.cell(18, 3.2, f"page {self.page_no()} of {{nb}}", align="R")
                self.set_text_color(0, 0, 0)

        pdf = _ReportPDF(orientation="P", unit="mm", format="A4")
        pdf.set_compression(compress)
        pdf.set_auto_page_break(auto=True, margin=18)
        pdf.set_title("softmass case report")
        pdf.set_creator(f"softmass {__version__}")
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 16)
        pdf.cell(0, 9, "softmass case report", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "B", 10)
        pdf.set_text_color(170, 0, 0)
        pdf.multi_cell(0, 5, disclaimer, new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
        pdf.set_font("Helvetica", "", 9)
        pdf.cell(
            0,
            5,
            _latin1(f"Generated {self.generated_at.isoformat(timespec='seconds')} by softmass {__version__}"),
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.ln(2)
        pdf.set_font("Helvetica", "", 10)
        for line in self.summary_lines():
            pdf.multi_cell(0, 5, _latin1(line), new_x="LMARGIN", new_y="NEXT")
        if any(im.cams or im.occlusion for im in self.images):
            pdf.ln(2)
            pdf.set_font("Helvetica", "", 8.5)
            pdf.set_text_color(60, 60, 60)
            pdf.multi_cell(0, 4, _latin1(self.cam_note()), new_x="LMARGIN", new_y="NEXT")
            pdf.set_text_color(0, 0, 0)
            _colour_bar(pdf)
        for row in self.pdf_panel_layout(pdf):
            caption_h = _CAPTION_LINE_H * max(len(item.caption_lines) for item in row.items)
            needed = max(item.height for item in row.items) + caption_h + 2 + (10 if row.title else 0)
            if pdf.get_y() + needed > pdf.h - pdf.b_margin:
                pdf.add_page()
            if row.title:
                pdf.ln(3)
                pdf.set_font("Helvetica", "B", 12)
                pdf.cell(0, 7, _latin1(row.title), new_x="LMARGIN", new_y="NEXT")
            pdf.set_font(*_CAPTION_FONT)
            top = pdf.get_y()
            for item in row.items:
                pdf.image(Image.fromarray(item.rgb), x=item.x, y=top, w=item.width)
                pdf.set_xy(item.x, top + item.height + 0.5)
                pdf.multi_cell(item.width, _CAPTION_LINE_H, "\n".join(item.caption_lines), new_x="LEFT")
            pdf.set_xy(pdf.l_margin, top + max(item.height for item in row.items) + caption_h + 2)
        return bytes(pdf.output())


@dataclass(frozen=True)
class PanelItem:
    """One image panel of the PDF: its caption (wrapped to ``caption_lines``) and place (mm)."""

    caption: str
    caption_lines: list[str]
    rgb: np.ndarray
    x: float
    width: float
    height: float


@dataclass(frozen=True)
class PanelRow:
    """One row of PDF panels; ``title`` (the image kind) on the first row of each image."""

    title: str | None
    items: list[PanelItem]


_CAPTION_FONT = ("Helvetica", "", 8)
_CAPTION_LINE_H = 3.6


def _colour_bar(pdf: Any) -> None:
    """A small jet colour bar, "weak" to "strongest", under the Grad-CAM note."""
    from softmass_core.inference.gradcam import colormap_jet

    ramp = colormap_jet(np.linspace(0.0, 1.0, 256, dtype=np.float32))
    bar = Image.fromarray(np.repeat(ramp[None, :, :], 8, axis=0))
    y = pdf.get_y() + 1
    pdf.set_font("Helvetica", "", 7.5)
    pdf.set_xy(pdf.l_margin, y)
    pdf.cell(9, 3, "weak")
    pdf.image(bar, x=pdf.l_margin + 9, y=y, w=40, h=3)
    pdf.set_xy(pdf.l_margin + 50, y)
    pdf.cell(20, 3, "strongest")
    pdf.set_xy(pdf.l_margin, y + 4)


def _wrap(text: str, measure: Any, width: float) -> list[str]:
    """``text`` broken at spaces into lines whose ``measure(line)`` is at most ``width`` (a long word stays whole)."""
    body = text.lstrip(" ")
    lines: list[str] = []
    current = text[: len(text) - len(body)]  # a leading indent stays on the first line
    for word in body.split(" "):
        candidate = f"{current} {word}" if current.strip() else current + word
        if current.strip() and measure(candidate) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    lines.append(current)
    return lines


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def build_report(
    result: CascadeResult,
    images: Sequence[ReportImage],
    *,
    case_name: str = "case",
    disclaimer: str = DISCLAIMER,
) -> CaseReport:
    """A :class:`CaseReport` for ``result`` and its images (see the module docstring)."""
    return CaseReport(result=result, images=list(images), case_name=case_name, disclaimer=disclaimer)
