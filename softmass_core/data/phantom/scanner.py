"""Simulated scanner makes ("hospitals") and the per-image operator settings.

Hospital 1 gives the training and validation cohorts, hospital 2 test cohort A
(a mild shift), hospital 3 test cohort B (a stronger shift: lower frequency,
steered compounding, coarse line density, edge enhancement, JPEG, and readers
who draw tighter ROIs).  Nothing here depends on the class of a case.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from softmass_core.errors import SoftmassError


@dataclass(frozen=True)
class Scanner:
    """Fixed properties of one scanner make.  Lengths in mm, frequencies in MHz."""

    name: str
    f0: float  # centre frequency, MHz
    bandwidth: float  # fractional bandwidth
    f_number: float
    focus_frac: float  # focal depth as a fraction of the displayed depth
    looks: int  # spatial-compounding looks (1 = none)
    dynamic_range: float  # dB
    gamma: float  # grey-map exponent
    target_grey: float  # median grey the operator aims at, 0..1
    speckle_reduction: float  # blend weight of a smoothed copy, 0..1
    tgc_slope_error: float  # dB/cm/MHz under- or over-compensation
    noise_db: float  # electronic noise floor relative to fat echo, dB
    near_field: float  # near-field clutter strength
    sim_hw: tuple[int, int]  # simulation grid (rows, cols)
    sector_hw: tuple[int, int]  # displayed image area (rows, cols)
    canvas_hw: tuple[int, int]  # whole screenshot (rows, cols)
    sector_yx: tuple[int, int]  # top-left corner of the image area in the canvas
    jpeg_quality: int | None
    tint: tuple[float, float, float]  # per-channel gain of the grey map
    colour_map: str  # "classic", "warm" or "rb_simple"
    nyquist: float  # cm/s
    wall_filter: float  # cm/s
    colour_gain: float  # 0..1
    blooming: float  # px of extra colour spread at full gain
    flash_rate: float  # fraction of box pixels with flash noise
    steer: float  # |steering angle| of the colour box, rad (sign random)
    colour_bar: str  # "left", "right" or "none"
    ruler_side: str  # "left" or "right"
    text_colour: tuple[int, int, int]
    header: str  # burned-in make/model text
    # Make-specific processing (defaults leave a scanner's images unchanged)
    compound_deg: float = 0.0  # steering half-angle of spatial compounding, degrees (0 = none)
    line_pitch: float = 1.0  # scan-line spacing in simulation px (> 1: coarser lateral sampling)
    edge_enhance: float = 0.0  # gain of the make's edge/detail enhancement (unsharp mask)
    roi_margin: tuple[float, float] = (0.12, 0.6)  # readers' ROI margin, fraction of the lesion size


HOSPITALS: dict[int, Scanner] = {
    1: Scanner(
        name="H1",
        f0=12.0,
        bandwidth=0.65,
        f_number=2.0,
        focus_frac=0.40,
        looks=1,
        dynamic_range=50.0,
        gamma=1.3,
        target_grey=0.27,
        speckle_reduction=0.35,
        tgc_slope_error=0.0,
        noise_db=-62.0,
        near_field=0.3,
        sim_hw=(280, 448),
        sector_hw=(280, 448),
        canvas_hw=(352, 544),
        sector_yx=(44, 40),
        jpeg_quality=None,
        tint=(1.0, 1.0, 1.0),
        colour_map="classic",
        nyquist=8.0,
        wall_filter=1.0,
        colour_gain=0.55,
        blooming=0.8,
        flash_rate=0.002,
        steer=0.0,
        colour_bar="right",
        ruler_side="right",
        text_colour=(220, 220, 220),
        header="SIM-US L12  MSK superficial",
    ),
    2: Scanner(
        name="H2",
        f0=13.5,
        bandwidth=0.70,
        f_number=1.9,
        focus_frac=0.36,
        looks=2,
        dynamic_range=55.0,
        gamma=1.2,
        target_grey=0.30,
        speckle_reduction=0.45,
        tgc_slope_error=0.05,
        noise_db=-66.0,
        near_field=0.2,
        sim_hw=(272, 436),
        sector_hw=(320, 512),
        canvas_hw=(400, 600),
        sector_yx=(52, 64),
        jpeg_quality=None,
        tint=(1.0, 1.0, 1.0),
        colour_map="warm",
        nyquist=6.0,
        wall_filter=0.8,
        colour_gain=0.65,
        blooming=1.1,
        flash_rate=0.003,
        steer=0.2,
        colour_bar="left",
        ruler_side="left",
        text_colour=(255, 255, 160),
        header="Veritas 15L  Small parts",
    ),
    3: Scanner(
        name="H3",
        f0=9.0,
        bandwidth=0.50,
        f_number=2.6,
        focus_frac=0.50,
        looks=3,
        dynamic_range=44.0,
        gamma=1.5,
        target_grey=0.22,
        speckle_reduction=0.0,
        tgc_slope_error=-0.08,
        noise_db=-56.0,
        near_field=0.45,
        sim_hw=(300, 400),
        sector_hw=(300, 400),
        canvas_hw=(360, 480),
        sector_yx=(40, 56),
        jpeg_quality=55,
        tint=(0.97, 1.0, 1.05),
        colour_map="rb_simple",
        nyquist=11.0,
        wall_filter=2.0,
        colour_gain=0.45,
        blooming=0.6,
        flash_rate=0.001,
        steer=0.0,
        colour_bar="none",
        ruler_side="right",
        text_colour=(200, 230, 255),
        header="AX-9 Linear 4-11  Soft tissue",
        # Another make's image processing, and readers who draw tighter boxes
        # (chosen on the hospital-3 re-scan of the validation patients; see README)
        compound_deg=15.0,
        line_pitch=3.0,
        edge_enhance=1.5,
        roi_margin=(0.02, 0.15),
    ),
}


@dataclass(frozen=True)
class Settings:
    """Operator settings of one image: the scanner plus per-image jitter."""

    scanner: Scanner
    gain_db: float  # offset of the median grey, dB
    dynamic_range: float
    tgc_slope_error: float
    focus_frac: float
    nyquist: float
    colour_gain: float
    steer: float  # signed steering angle of the colour box, rad


def get_scanner(hospital: int) -> Scanner:
    """The scanner of hospital 1, 2 or 3 (raises SoftmassError otherwise)."""
    try:
        return HOSPITALS[int(hospital)]
    except (KeyError, TypeError, ValueError):
        raise SoftmassError(f"Unknown simulated hospital {hospital!r}: use one of {sorted(HOSPITALS)}.") from None


def sample_settings(scanner: Scanner, rng: np.random.Generator) -> Settings:
    """Draw the operator's per-image settings (never depends on the class)."""
    steer = scanner.steer * float(rng.choice([-1.0, 1.0])) if scanner.steer > 0 else 0.0
    return Settings(
        scanner=scanner,
        gain_db=float(rng.normal(0.0, 2.0)),
        dynamic_range=scanner.dynamic_range * float(rng.uniform(0.92, 1.08)),
        tgc_slope_error=scanner.tgc_slope_error + float(rng.normal(0.0, 0.04)),
        focus_frac=float(np.clip(scanner.focus_frac + rng.normal(0.0, 0.06), 0.2, 0.8)),
        nyquist=scanner.nyquist * float(rng.uniform(0.8, 1.25)),
        colour_gain=float(np.clip(scanner.colour_gain + rng.normal(0.0, 0.06), 0.2, 0.9)),
        steer=steer,
    )


def with_overrides(scanner: Scanner, **changes: object) -> Scanner:
    """A copy of ``scanner`` with some fields changed (for tests and experiments)."""
    return replace(scanner, **changes)
