"""Screen composition: image area inside a scanner screenshot, burned-in text, ruler,
colour bar, colour box, optional calipers and JPEG.  Overlays never depend on the class
and stay outside the ROI."""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from softmass_core.data.phantom.doppler import colour_lut
from softmass_core.data.phantom.scanner import Settings

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Mapping:
    """Simulation px (row, col) -> canvas px (y, x): ``y = oy + sy * row``."""

    oy: float
    ox: float
    sy: float
    sx: float

    def point(self, row: float, col: float) -> tuple[float, float]:
        """Canvas (x, y) of a simulation (row, col)."""
        return self.ox + self.sx * col, self.oy + self.sy * row


@lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def make_mapping(settings: Settings, sim_hw: tuple[int, int], shift_px: tuple[int, int] = (0, 0)) -> Mapping:
    """Where the simulation grid lands on the canvas (``shift_px``: frame shift in sim px)."""
    sc = settings.scanner
    sy = sc.sector_hw[0] / sim_hw[0]
    sx = sc.sector_hw[1] / sim_hw[1]
    return Mapping(oy=sc.sector_yx[0] + shift_px[0] * sy, ox=sc.sector_yx[1] + shift_px[1] * sx, sy=sy, sx=sx)


def roi_around(box: tuple[float, float, float, float], settings: Settings, rng: np.random.Generator) -> Box:
    """A randomised hand-drawn ROI (x0, y0, x1, y1; exclusive) around a lesion box in canvas px,
    clipped to the image area.  The margin follows the hospital's readers (``roi_margin``)."""
    sc = settings.scanner
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    m = rng.uniform(*sc.roi_margin, 4) * np.array([bw, bh, bw, bh]) + rng.uniform(6.0, 22.0, 4)
    sy0, sx0 = sc.sector_yx
    sy1, sx1 = sy0 + sc.sector_hw[0], sx0 + sc.sector_hw[1]
    rx0 = int(np.clip(np.floor(x0 - m[0]), sx0, sx1 - 8))
    ry0 = int(np.clip(np.floor(y0 - m[1]), sy0, sy1 - 8))
    rx1 = int(np.clip(np.ceil(x1 + m[2]), rx0 + 8, sx1))
    ry1 = int(np.clip(np.ceil(y1 + m[3]), ry0 + 8, sy1))
    return rx0, ry0, rx1, ry1


def compose(
    frame: np.ndarray,
    settings: Settings,
    rng: np.random.Generator,
    *,
    roi: Box,
    focus_frac: float,
    colour_box: list[tuple[float, float]] | None = None,
    info: str = "",
) -> np.ndarray:
    """Paste a float RGB frame (h, w, 3; 0..1) into the scanner's screen and draw overlays.

    Args:
        frame: the image area on the simulation grid.
        settings: scanner and operator settings (size, tint, colour bar, JPEG).
        rng: random generator for the burned-in text and calipers.
        roi: the case's ROI in canvas px; overlays stay outside it.
        focus_frac: focal depth / displayed depth (for the focus marker).
        colour_box: canvas (x, y) corners of the colour box (CDFI only).
        info: extra text for the header line.

    Returns:
        the screenshot, (canvas_h, canvas_w, 3) uint8.
    """
    sc = settings.scanner
    tint = np.asarray(sc.tint, dtype=np.float32)
    if not np.allclose(tint, 1.0):
        frame = frame * tint
    arr = (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    sh, sw = sc.sector_hw
    if img.size != (sw, sh):
        img = img.resize((sw, sh), Image.Resampling.BILINEAR)
    ch, cw = sc.canvas_hw
    canvas = Image.new("RGB", (cw, ch), (4, 4, 6))
    sy, sx = sc.sector_yx
    canvas.paste(img, (sx, sy))
    d = ImageDraw.Draw(canvas)
    font = _font()
    tc = sc.text_colour
    d.text((6, 4), sc.header, fill=tc, font=font)
    stamp = f"SIM {rng.integers(10**6, 10**7)}  {rng.integers(1, 29):02d}.{rng.integers(1, 13):02d}.20{rng.integers(15, 23)}"
    d.text((6, 18), stamp, fill=tc, font=font)
    gain = int(round(50 + 4 * settings.gain_db))
    d.text((cw - 150, 4), f"G{gain} DR{settings.dynamic_range:.0f} {sc.f0:.0f}MHz {info}", fill=tc, font=font)
    # depth ruler with a fixed number of ticks and the focus marker
    rx = sx + sw + 5 if sc.ruler_side == "right" else sx - 7
    d.line([(rx, sy), (rx, sy + sh - 1)], fill=(150, 150, 150))
    for k in range(6):
        ty = sy + int(round(k * (sh - 1) / 5))
        d.line([(rx, ty), (rx + (4 if sc.ruler_side == "right" else -4), ty)], fill=(190, 190, 190))
    fy = sy + focus_frac * sh
    tri_x = rx + 6 if sc.ruler_side == "right" else rx - 6
    d.polygon([(tri_x, fy), (tri_x + 4, fy - 3), (tri_x + 4, fy + 3)], fill=(230, 230, 120))
    if colour_box is not None:
        d.line([*colour_box, colour_box[0]], fill=(200, 200, 200), width=1)
        _colour_bar(d, settings, canvas.size)
    # occasional caliper crosses left on the screen, always outside the ROI
    if rng.random() < 0.3:
        for _ in range(int(rng.integers(1, 3))):
            for _try in range(10):
                cx = int(rng.integers(sx + 6, sx + sw - 6))
                cy = int(rng.integers(sy + 6, sy + sh - 6))
                if not (roi[0] - 6 <= cx < roi[2] + 6 and roi[1] - 6 <= cy < roi[3] + 6):
                    d.line([(cx - 4, cy), (cx + 4, cy)], fill=(255, 255, 90))
                    d.line([(cx, cy - 4), (cx, cy + 4)], fill=(255, 255, 90))
                    break
    if sc.jpeg_quality is not None:
        buf = io.BytesIO()
        canvas.save(buf, format="JPEG", quality=sc.jpeg_quality)
        buf.seek(0)
        canvas = Image.open(buf).convert("RGB")
    return np.asarray(canvas, dtype=np.uint8).copy()


def _colour_bar(d: ImageDraw.ImageDraw, settings: Settings, size: tuple[int, int]) -> None:
    sc = settings.scanner
    if sc.colour_bar == "none":
        return
    cw, _ = size
    sy, sx = sc.sector_yx
    lut = (colour_lut(sc.colour_map) * 255).astype(np.uint8)
    x = cw - 16 if sc.colour_bar == "right" else 4
    top, height = sy + 14, 80
    for i in range(height):
        c = lut[int(255 - i * 255 / (height - 1))]
        d.line([(x, top + i), (x + 7, top + i)], fill=tuple(int(v) for v in c))
    font = _font()
    tx = x - 22 if sc.colour_bar == "right" else x + 10
    d.text((tx, top - 12), f"{settings.nyquist:.1f}", fill=sc.text_colour, font=font)
    d.text((tx, top + height + 1), f"-{settings.nyquist:.1f}", fill=sc.text_colour, font=font)
