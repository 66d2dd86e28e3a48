"""How a Grad-CAM overlay is shown: a colour bar under it and a caption that says what it explains.

* :func:`with_colorbar` appends the jet scale (:func:`softmass_core.inference.gradcam.colormap_jet`)
  under an overlay, labelled "0" at the left and "max of this map" at the right: the
  CAM is min-max scaled per image (as pytorch-grad-cam scales it), so red means the
  strongest evidence *in this map*, never a high probability.
* :func:`cam_caption` names the class whose score the map explains and the
  model, with that class's probability; below :data:`NEAR_ZERO` it says the map
  shows what little evidence there is for the class.
"""

from __future__ import annotations

import numpy as np

from softmass_core.inference.gradcam import colormap_jet

#: Below this probability of the explained class, the caption says the map shows what little evidence there is.
NEAR_ZERO = 0.05
#: What the right end of the colour bar means.
SCALE_NOTE = "colours scaled per image: red = this map's maximum, not a high probability"


def colorbar(width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8: the jet colours from 0 (left) to 1 (right)."""
    if width < 2 or height < 1:
        raise ValueError(f"A colour bar needs width >= 2 and height >= 1, got {width} x {height}.")
    row = colormap_jet(np.linspace(0.0, 1.0, width))
    return np.repeat(row[None], height, axis=0)


def with_colorbar(overlay: np.ndarray, *, labels: tuple[str, str] = ("0", "max of this map")) -> np.ndarray:
    """``overlay`` (H, W, 3) uint8 with a labelled colour bar appended below it (white margin)."""
    from PIL import Image, ImageDraw, ImageFont

    img = np.asarray(overlay, dtype=np.uint8)
    h, w = img.shape[:2]
    bar_h = max(6, h // 25)
    text_h = max(10, h // 22)
    pad = max(2, bar_h // 3)
    strip = np.full((pad + bar_h + pad + text_h + pad, w, 3), 255, dtype=np.uint8)
    strip[pad : pad + bar_h, pad : w - pad] = colorbar(w - 2 * pad, bar_h)
    pil = Image.fromarray(strip)
    draw = ImageDraw.Draw(pil)
    font = ImageFont.load_default(size=text_h)
    y = pad + bar_h + pad // 2
    draw.text((pad, y), labels[0], fill=(0, 0, 0), font=font)
    right = draw.textlength(labels[1], font=font)
    draw.text((max(pad, w - pad - right), y), labels[1], fill=(0, 0, 0), font=font)
    return np.concatenate([img, np.asarray(pil)], axis=0)


def cam_caption(model_name: str, target_label: str, probability: float | None, *, near_zero: float = NEAR_ZERO) -> str:
    """What a map explains, e.g. "Explains the malignant score of DLM-1 (P = 0.734)"."""
    name = target_label.replace("_", " ")
    text = f"Explains the {name} score of {model_name}"
    if probability is None:
        return text + f"; {SCALE_NOTE}."
    text += f" (P = {probability:.3f})"
    if probability < near_zero:
        return (
            text + f". P is below {near_zero:g}: the map shows where what little evidence there is for {name} lies, "
            f"not a {name} finding; {SCALE_NOTE}."
        )
    return text + f"; {SCALE_NOTE}."
