"""The input check: is an image unlike the ROIs the weight set learned?

Two parts, per image:

* plain plausibility checks on the ROI itself, each with a reason a person
  can act on: a blank or near-uniform ROI, a ROI smaller than
  :data:`MIN_SIDE` pixels on a side, colour in the grayscale (B-mode) slot;
* a distance from DLM-1's own features: the channel means and standard
  deviations of its first stage, from the same forward pass that scores the
  image (:meth:`Cascade.probabilities` with ``check_features``), scored by
  the Mahalanobis distance to the training ROIs' features of the same
  modality (one Gaussian, Ledoit-Wolf shrunk covariance; Lee et al. 2018).
  Why these features and not the pooled pre-logit ones, the energy score or
  a nearest-neighbour distance: measured in ``research/input_check_eval.py``,
  see docs/experiments.md.

The statistics are data in the weight set: a safetensors file named in the
manifest's ``input_check`` block with its sha256 and a threshold per
modality, chosen so that at most 5 % of validation ROIs are flagged
(:mod:`softmass_core.training.input_stats` fits them).  A set without them
gets ``out_of_distribution = None`` and the reason :data:`NOT_AVAILABLE`:
the check never passes silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from softmass_core.io.roi import Prepared
from softmass_core.labels import MODALITIES
from softmass_core.weights.input_check_file import InputStats, load_stats, parse_entry

__all__ = ["InputStats", "load_stats", "parse_entry"]  # the statistics file, re-exported for callers of the check

NOT_AVAILABLE = "input check not available for this set"
#: A ROI narrower or lower than this (original-image pixels) is refused as too small to read:
#: the smallest ROI side in the shipped sets' cohorts is 28 px (BUSI; 1 % are under 35 px), and a
#: ROI under 24 px holds less than one cell of ConvNeXt's 32-pixel last stage at its original
#: resolution, so the model would read mostly interpolation.
MIN_SIDE = 24
#: Standard deviation (grey levels 0..255) of the ROI's content below which it is "blank".
BLANK_STD = 3.0
#: Share of ROI pixels with chroma (max - min of R, G, B) above :data:`CHROMA_LEVEL`
#: above which a grayscale slot holds a colour picture (CDFI boxes or photographs).
CHROMA_SHARE = 0.05
CHROMA_LEVEL = 40


@dataclass(frozen=True)
class ImageCheck:
    """One image's check: ``score`` and ``threshold`` are None when no score was computed."""

    score: float | None
    threshold: float | None
    out_of_distribution: bool | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "threshold": self.threshold,
            "out_of_distribution": self.out_of_distribution,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class InputCheck:
    """A case's check: flagged when any of its images is; None when the set has no statistics."""

    out_of_distribution: bool | None
    images: dict[str, ImageCheck]

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_of_distribution": self.out_of_distribution,
            "images": {m: c.to_dict() for m, c in self.images.items()},
        }

    @property
    def flagged(self) -> dict[str, ImageCheck]:
        return {m: c for m, c in self.images.items() if c.out_of_distribution}


# --------------------------------------------------------------------------- plausibility


def content_pixels(prepared: Prepared, spec) -> np.ndarray:
    """The ROI content of a prepared input back in 0..255 RGB, ``(h, w, 3)`` float32."""
    x0, y0, x1, y1 = prepared.content_box
    arr = prepared.array[:, y0:y1, x0:x1]
    mean = np.asarray(spec.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(spec.std, dtype=np.float32)[:, None, None]
    return np.transpose((arr * std + mean) * 255.0, (1, 2, 0))


def plausibility(prepared: Prepared, modality: str, spec) -> str | None:
    """Why the ROI cannot be a usable ultrasound ROI of ``modality``, or None when it can.

    A CDFI image without any colour is not refused: an avascular lesion
    shows no flow signal, so no colour is a finding, not a wrong input.
    """
    roi = prepared.roi
    if min(roi.width, roi.height) < MIN_SIDE:
        return (
            f"the ROI is {roi.width} x {roi.height} pixels, smaller than {MIN_SIDE} on a side: "
            "draw it around the whole lesion"
        )
    px = content_pixels(prepared, spec)
    spread = float(px.reshape(-1, 3).std(axis=0).max())  # of the most varied channel: colour contrast is content
    if spread < BLANK_STD:
        return f"the ROI is blank or uniform (grey-level spread {spread:.1f} < {BLANK_STD}): no image content"
    if modality == "gray":
        chroma = px.max(axis=2) - px.min(axis=2)
        share = float((chroma > CHROMA_LEVEL).mean())
        if share > CHROMA_SHARE:
            return (
                f"the grayscale (B-mode) slot holds a colour image ({share:.0%} of ROI pixels coloured): "
                "put colour Doppler images in the CDFI slot"
            )
    return None


# --------------------------------------------------------------------------- checking


def check_images(
    stats: InputStats | None,
    prepared: Mapping[str, Prepared],
    features: Mapping[str, np.ndarray],
    spec,
) -> InputCheck:
    """Check each image: ``features[m]`` is its DLM-1 input-check feature vector (D,)."""
    images: dict[str, ImageCheck] = {}
    for m in MODALITIES:
        if m not in prepared:
            continue
        implausible = plausibility(prepared[m], m, spec)
        if stats is None:
            images[m] = ImageCheck(None, None, True if implausible else None, implausible or NOT_AVAILABLE)
            continue
        if m not in stats.threshold:
            images[m] = ImageCheck(
                None, None, True, implausible or f"this weight set learned no {m} images, so it cannot read one"
            )
            continue
        score = float(stats.score(m, np.asarray(features[m])[None, :])[0])
        limit = stats.threshold[m]
        far = score > limit
        if implausible:
            reason = implausible
        elif far:
            reason = f"unlike the {m} images this weight set learned: score {score:.1f} > limit {limit:.1f}"
        else:
            reason = f"like the {m} images this weight set learned: score {score:.1f} <= limit {limit:.1f}"
        images[m] = ImageCheck(score, limit, bool(far or implausible), reason)
    flags = [c.out_of_distribution for c in images.values()]
    if any(f is True for f in flags):
        ood: bool | None = True
    elif stats is None:
        ood = None
    else:
        ood = False
    return InputCheck(ood, images)


def warning_text(check: InputCheck) -> str | None:
    """The sentence shown above a verdict when the check flags the case, else None."""
    lines = []
    for m, c in check.flagged.items():
        if c.score is not None and c.threshold is not None and c.score > c.threshold:
            lines.append(
                f"This {m} image is unlike the images this weight set learned: score {c.score:.1f}, "
                f"limit {c.threshold:.1f}."
            )
        else:
            lines.append(f"This {m} image cannot be read: {c.reason}.")
    if not lines:
        return None
    return " ".join(lines) + " The result below is not meaningful."


# --------------------------------------------------------------------------- cohorts


def cohort_rates(predictions, available: bool) -> dict[str, dict[str, Any]]:
    """``{cohort: {"n_flagged", "n", "rate"}}`` from a predictions table's ``out_of_distribution`` column.

    A case counts when any of its images is flagged.  Without statistics
    (``available`` False) ``rate`` is None and ``reason`` says the check is not
    available (cases refused by the plausibility checks are still counted).
    """
    out: dict[str, dict[str, Any]] = {}
    if "out_of_distribution" not in predictions:
        return out
    for cohort, df in predictions.groupby("cohort", sort=False):
        flagged = int(sum(v is True or v == 1 for v in df["out_of_distribution"].tolist()))
        entry: dict[str, Any] = {"n_flagged": flagged, "n": len(df), "rate": flagged / len(df) if available else None}
        if not available:
            entry["reason"] = NOT_AVAILABLE
        out[str(cohort)] = entry
    return out


def add_cohort_rates(metrics_json: dict[str, Any], predictions, available: bool) -> dict[str, Any]:
    """``evaluate --json``'s document with ``cohorts.<cohort>.input_check`` added."""
    for cohort, entry in cohort_rates(predictions, available).items():
        if cohort in metrics_json.get("cohorts", {}):
            metrics_json["cohorts"][cohort]["input_check"] = entry
    return metrics_json


def input_check_text(check: dict[str, Any] | None) -> str:
    """Text lines (CLI, report) for an ``input_check`` dict: the warning first when flagged."""
    if not check:
        return f"input check   {NOT_AVAILABLE}"
    lines = []
    if check["out_of_distribution"]:
        lines.append(
            "WARNING      the input is unlike the images this weight set learned: the result is not meaningful"
        )
    for m, c in check["images"].items():
        lines.append(f"input check  {m:<5} {c['reason']}")
    return "\n".join(lines)


def report_lines(check: InputCheck | None) -> list[str]:
    """The report's input-check lines, placed above the diagnosis: the warning first when flagged."""
    if check is None or check.out_of_distribution is None:
        return [f"Input check: {NOT_AVAILABLE}"]
    text = warning_text(check)
    if text:
        return [f"WARNING: {text}", *(f"  Input check, {m}: {c.reason}" for m, c in check.flagged.items())]
    return [
        "Input check: "
        + "; ".join(f"{m} score {c.score:.1f} <= limit {c.threshold:.1f}" for m, c in check.images.items())
    ]
