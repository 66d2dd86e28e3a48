"""Synthetic overlay marks for training: calipers, dashed measuring lines and text blocks burned into the image.

Ultrasound machines burn measuring calipers ("+" crosses), dotted lines
and annotation text into exported images.  In BUSI they cover part of the
lesion in about 16% of the images and their presence goes with the label
(lesions that were measured), so a network can learn the marks instead of
the tissue.  :func:`draw_marks` puts such marks on randomly chosen training
images whatever their label, so a mark stops telling the class.  It works
on a batch of images in [0, 1] intensity; the random draws come from a CPU
generator so a seed gives the same marks on any device.
"""

from __future__ import annotations

import torch

#: The kinds of mark, drawn with equal probability.
KINDS = ("cross", "dashes", "text")


def _cross(mask: torch.Tensor, cy: int, cx: int, arm: int, width: int) -> None:
    h, w = mask.shape
    mask[max(0, cy - width // 2) : min(h, cy + width // 2 + 1), max(0, cx - arm) : min(w, cx + arm + 1)] = True
    mask[max(0, cy - arm) : min(h, cy + arm + 1), max(0, cx - width // 2) : min(w, cx + width // 2 + 1)] = True


def _dashes(mask: torch.Tensor, y0: int, x0: int, y1: int, x1: int, step: int) -> None:
    h, w = mask.shape
    n = max(abs(y1 - y0), abs(x1 - x0), 1)
    t = torch.arange(n + 1, dtype=torch.float32) / n
    ys = (y0 + t * (y1 - y0)).round().long().clamp(0, h - 1)
    xs = (x0 + t * (x1 - x0)).round().long().clamp(0, w - 1)
    keep = (torch.arange(n + 1) // step) % 2 == 0
    mask[ys[keep], xs[keep]] = True


def _text(mask: torch.Tensor, y: int, x: int, height: int, chars: int, gen: torch.Generator) -> None:
    h, w = mask.shape
    glyph = max(2, height * 2 // 3)
    for i in range(chars):
        pattern = torch.rand(height, glyph, generator=gen) < 0.45  # a blocky glyph-like blob
        x0 = x + i * (glyph + 1)
        if x0 >= w:
            break
        ys, xs = slice(y, min(h, y + height)), slice(x0, min(w, x0 + glyph))
        mask[ys, xs] |= pattern[: ys.stop - ys.start, : xs.stop - xs.start]


def mark_mask(height: int, width: int, gen: torch.Generator, n_marks: int) -> torch.Tensor:
    """A boolean (height, width) mask of ``n_marks`` random marks."""
    mask = torch.zeros(height, width, dtype=torch.bool)
    side = min(height, width)

    def r(lo: int, hi: int) -> int:
        return int(torch.randint(lo, max(lo + 1, hi), (1,), generator=gen))

    for _ in range(n_marks):
        kind = KINDS[r(0, len(KINDS))]
        if kind == "cross":
            _cross(mask, r(0, height), r(0, width), arm=r(max(2, side // 40), max(3, side // 14)), width=r(1, 3))
        elif kind == "dashes":
            _dashes(mask, r(0, height), r(0, width), r(0, height), r(0, width), step=r(2, 5))
        else:
            _text(
                mask,
                r(0, height),
                r(0, width),
                height=r(max(3, side // 30), max(4, side // 14)),
                chars=r(2, 7),
                gen=gen,
            )
    return mask


def draw_marks(unit: torch.Tensor, p: float, gen: torch.Generator, max_marks: int = 3) -> torch.Tensor:
    """Marks burned into each image of ``unit`` (N, C, H, W, intensities in [0, 1]) with probability ``p``.

    A marked image gets 1 to ``max_marks`` marks, each drawn as a near-white
    value (0.85-1.0) in every channel.  Returns a new tensor; ``unit`` is kept.
    """
    n, _, h, w = unit.shape
    chosen = torch.rand(n, generator=gen) < p
    if not bool(chosen.any()):
        return unit
    out = unit.clone()
    for i in torch.nonzero(chosen).flatten().tolist():
        mask = mark_mask(h, w, gen, int(torch.randint(1, max_marks + 1, (1,), generator=gen)))
        value = float(torch.empty(1).uniform_(0.85, 1.0, generator=gen))
        out[i][:, mask.to(out.device)] = value
    return out
