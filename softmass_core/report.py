"""A downloadable case report: PDF, PNG sheet and JSON of one cascade run.

The report holds the images with their ROI boxes, the Grad-CAM overlays, the
probabilities against the operating threshold, the diagnosis, the path the
cascade took, the weight set's id and version and the research-use
disclaimer.  It never holds a patient identifier: image information comes
from :class:`softmass_core.images.ImageInfo` (which carries none) and the case
is named by the caller (the dashboard passes a demo id or a content hash,
never an upload's file name).

Images are RGB ``uint8`` arrays ``(H, W, 3)``; ROIs are original-image pixels.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from softmass_core import __version__
from softmass_core.cascade import CascadeResult
from softmass_core.errors import SoftmassError
from softmass_core.labels import DLM1, MODALITIES, SUBMODEL_IDS, display_name
from softmass_core.roi import Roi

DISCLAIMER = (
    "Research demo, not for clinical use. Not a medical device: the diagnosis below was made by a "
    "research model and must not guide the care of any patient."
)

#: Display names of the image kinds and models.
MODALITY_NAMES: dict[str, str] = {"gray": "Grayscale B-mode", "cdfi": "CDFI"}
MODEL_NAMES: dict[str, str] = {DLM1: "DLM-1", **{sm: f"SM-{i + 1}" for i, sm in enumerate(SUBMODEL_IDS)}}

_ROI_COLOUR = (255, 204, 0)
_PANEL_HEIGHT = 240  # pixels of each image panel on the PNG sheet


def model_name(model_id: str) -> str:
    """``"DLM-1"``, ``"SM-1 (lipoma)"``, ... for a model id."""
    if model_id in SUBMODEL_IDS:
        short = display_name(SUBMODEL_IDS[model_id]).split(" (")[0].lower()
        return f"{MODEL_NAMES[model_id]} ({short})"
    return MODEL_NAMES.get(model_id, model_id)


@dataclass(frozen=True)
class ReportImage:
    """One image of the case for the report.

    ``rgb`` is ``(H, W, 3)`` uint8, ``roi`` the box the models saw (image
    pixels), ``info`` what is known about the file (e.g.
    ``ImageInfo.to_dict()``; must not hold identifiers), ``overlays`` the
    Grad-CAM overlays ``{model_id: (H, W, 3) uint8}`` to show.
    """

    modality: str
    rgb: np.ndarray
    roi: Roi
    info: Mapping[str, Any] = field(default_factory=dict)
    overlays: Mapping[str, np.ndarray] = field(default_factory=dict)


def draw_roi(rgb: np.ndarray, roi: Roi, *, colour: tuple[int, int, int] = _ROI_COLOUR, width: int = 0) -> np.ndarray:
    """A copy of ``rgb`` (H, W, 3) uint8 with ``roi`` outlined (line width scales with the image)."""
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    line = width or max(2, round(max(img.size) / 300))
    draw = ImageDraw.Draw(img)
    draw.rectangle((roi.x0, roi.y0, roi.x1 - 1, roi.y1 - 1), outline=colour, width=line)
    return np.asarray(img)


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
            f"Diagnosis: {display_name(r.diagnosis)}",
            f"DLM-1 P(malignant): {r.p_malignant:.3f} against operating threshold {r.threshold:.3f} "
            f"-> {'malignant' if r.malignant else 'benign'}",
        ]
        for m, p in r.per_image_p_malignant().items():
            lines.append(f"  {MODALITY_NAMES.get(m, m)}: P(malignant) {p:.3f}")
        if r.sub_scores is not None:
            scores = ", ".join(f"{display_name(k)} {v:.3f}" for k, v in r.sub_scores.items())
            lines.append(f"DLM-2 sub-model scores: {scores}")
        lines.append("Models run: " + " -> ".join(MODEL_NAMES.get(m, m) for m in r.models_run))
        lines.append(f"Cascade path: {r.stopped_because}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe report: ``result.to_dict()`` plus image information and provenance."""
        images: dict[str, Any] = {}
        for im in self.images:
            h, w = np.asarray(im.rgb).shape[:2]
            images[im.modality] = {
                "width": int(w),
                "height": int(h),
                "roi": im.roi.as_string(),
                "file": {k: v for k, v in dict(im.info).items() if _is_plain(v)},
                "gradcam_models": list(im.overlays),
            }
        return {
            "report": "softmass case report",
            "disclaimer": self.disclaimer,
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "software": {"softmass": __version__},
            "case": self.case_name,
            "diagnosis_display": display_name(self.result.diagnosis),
            "result": self.result.to_dict(),
            "images": images,
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    # ------------------------------------------------------------------ pictures

    def panels(self) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
        """Per image: ``(title, [(caption, rgb), ...])`` with the ROI drawn on every panel."""
        out = []
        for im in self.images:
            row = [("Image and ROI", draw_roi(im.rgb, im.roi))]
            for model_id, overlay in im.overlays.items():
                row.append((f"Grad-CAM {model_name(model_id)}", draw_roi(overlay, im.roi)))
            out.append((MODALITY_NAMES.get(im.modality, im.modality), row))
        return out

    def to_png(self, *, panel_height: int = _PANEL_HEIGHT) -> bytes:
        """A one-page PNG sheet: text, then one row of panels per image."""
        font = ImageFont.load_default(size=15)
        bold = ImageFont.load_default(size=20)
        pad = 12
        rows = []
        for title, panels in self.panels():
            scaled = []
            for caption, rgb in panels:
                img = Image.fromarray(rgb)
                w = max(1, round(img.width * panel_height / img.height))
                scaled.append((caption, img.resize((w, panel_height), Image.Resampling.BILINEAR)))
            rows.append((title, scaled))
        lines = self.summary_lines()
        text_h = pad + 30 + 26 + 22 * len(lines) + 16
        row_h = panel_height + 50
        width = max(
            900,
            max(pad + sum(im.width + pad for _, im in scaled) for _, scaled in rows),
        )
        sheet = Image.new("RGB", (width, text_h + row_h * len(rows) + pad), "white")
        draw = ImageDraw.Draw(sheet)
        y = pad
        draw.text((pad, y), "softmass case report", fill="black", font=bold)
        y += 30
        draw.text((pad, y), self.disclaimer, fill=(170, 0, 0), font=font)
        y += 26
        for line in lines:
            draw.text((pad, y), line, fill="black", font=font)
            y += 22
        y = text_h
        for title, scaled in rows:
            draw.text((pad, y), title, fill="black", font=bold)
            x = pad
            for caption, im in scaled:
                sheet.paste(im, (x, y + 26))
                draw.text((x, y + 28 + panel_height), caption, fill="black", font=font)
                x += im.width + pad
            y += row_h
        return _png_bytes(sheet)

    def to_pdf(self, *, compress: bool = True) -> bytes:
        """An A4 PDF (fpdf2): disclaimer, text, and the image panels (``compress=False`` for readable streams)."""
        from fpdf import FPDF

        pdf = FPDF(orientation="P", unit="mm", format="A4")
        pdf.set_compression(compress)
        pdf.set_auto_page_break(auto=True, margin=15)
        pdf.set_title("softmass case report")
        pdf.set_creator(f"softmass {__version__}")
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 16)
        pdf.cell(0, 9, "softmass case report", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "B", 10)
        pdf.set_text_color(170, 0, 0)
        pdf.multi_cell(0, 5, _latin1(self.disclaimer), new_x="LMARGIN", new_y="NEXT")
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
        for title, panels in self.panels():
            pdf.ln(3)
            pdf.set_font("Helvetica", "B", 12)
            pdf.cell(0, 7, _latin1(title), new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", "", 8)
            n = len(panels)
            gap = 3.0
            cell_w = (pdf.epw - gap * (n - 1)) / n
            heights = [cell_w * rgb.shape[0] / rgb.shape[1] for _, rgb in panels]
            needed = max(heights) + 6
            if pdf.get_y() + needed > pdf.h - pdf.b_margin:
                pdf.add_page()
            top = pdf.get_y()
            for i, (caption, rgb) in enumerate(panels):
                x = pdf.l_margin + i * (cell_w + gap)
                pdf.image(Image.fromarray(rgb), x=x, y=top, w=cell_w)
                pdf.set_xy(x, top + heights[i] + 0.5)
                pdf.cell(cell_w, 4, _latin1(caption))
            pdf.set_xy(pdf.l_margin, top + max(heights) + 6)
        pdf.ln(2)
        pdf.set_font("Helvetica", "I", 8)
        pdf.multi_cell(0, 4, _latin1(self.disclaimer), new_x="LMARGIN", new_y="NEXT")
        return bytes(pdf.output())


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
