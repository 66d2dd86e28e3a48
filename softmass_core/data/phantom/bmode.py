"""B-mode image formation: convolution speckle model, attenuation, TGC, log compression.

The scatterer field ``S = E * [(1 - C) n / sqrt(2) + C]`` (``n`` complex white
Gaussian noise) is filtered by a separable Gaussian IQ point-spread function
whose lateral width grows away from the focus, envelope-detected, attenuated
along each A-line, log-compressed and mapped to grey.  float32 throughout, no
FFTs.  See the design notes, shared/docs/phantom.md 2.2 (outside this repository).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter1d, uniform_filter1d

from softmass_core.data.phantom._noise import smooth_curve
from softmass_core.data.phantom.scanner import Settings
from softmass_core.data.phantom.scene import Scene

SOUND_MM_PER_US = 1.54
_N_BANDS = 6
_LN10_20 = np.float32(np.log(10.0) / 20.0)


@dataclass
class BMode:
    """One B-mode frame on the simulation grid."""

    grey: np.ndarray  # (H, W) float32 in [0, 1]
    att_db: np.ndarray  # (H, W) float32 round-trip attenuation at the imaging frequency, dB
    psf_px: tuple[float, float]  # axial, lateral (at focus) PSF sigma in px


@lru_cache(maxsize=64)
def _gamma_lut(gamma: float) -> np.ndarray:
    return (np.linspace(0.0, 1.0, 1024, dtype=np.float32) ** np.float32(gamma)).astype(np.float32)


def psf_sigmas(settings: Settings, px_mm: float) -> tuple[float, float]:
    """Axial and lateral (at focus) PSF sigmas in pixels."""
    sc = settings.scanner
    lam = SOUND_MM_PER_US / sc.f0
    ax = 0.5 * lam / sc.bandwidth
    lat = 1.1 * sc.f_number * lam
    return max(0.65, ax / px_mm), max(0.8, lat / px_mm)


def form_bmode(scene: Scene, settings: Settings, rng: np.random.Generator) -> BMode:
    """Render the scene as a grey B-mode frame (values 0..1, float32)."""
    sc = settings.scanner
    h, w = scene.shape
    px = scene.px_mm
    sig_ax, sig_lat0 = psf_sigmas(settings, px)
    z_focus = settings.focus_frac * h
    z_r = 0.45 * h
    edges = np.linspace(0, h, _N_BANDS + 1).astype(int)
    centres = 0.5 * (edges[:-1] + edges[1:])
    sig_lat = sig_lat0 * np.sqrt(1.0 + ((centres - z_focus) / z_r) ** 2)

    coh = scene.E * scene.C
    inc = scene.E * (1.0 - scene.C) * np.float32(0.70710678)
    env = np.zeros((h, w), dtype=np.float32)
    noise = None
    for look in range(sc.looks):
        n = rng.standard_normal((2, h, w), dtype=np.float32)
        if look == 0:
            noise = n
        re = inc * n[0] + coh
        im = inc * n[1]
        for arr in (re, im):
            gaussian_filter1d(arr, sig_ax, axis=0, output=arr, truncate=2.5)
            for k in range(_N_BANDS):
                sl = arr[edges[k] : edges[k + 1]]
                gaussian_filter1d(sl, sig_lat[k] * (1.0 + 0.08 * look), axis=1, output=sl, truncate=2.5)
        env += np.sqrt(re * re + im * im)
    env *= np.float32(np.sqrt(4.0 * np.pi * sig_ax * sig_lat0) / sc.looks)

    # ---- attenuation along each A-line (round trip, downshifted frequency)
    f_eff = 0.8 * sc.f0
    k_db = np.float32(2.0 * f_eff * px / 10.0)
    att = np.cumsum(scene.A, axis=0, dtype=np.float32) * k_db
    att_bg_prof = att.mean(axis=1)
    les = scene.lesion
    r0, r1, c0, c1 = les.box
    if r1 > r0 and c1 > c0:
        delta = np.cumsum(scene.A_delta, axis=0, dtype=np.float32) * k_db
        post = np.empty((h - r0, c1 - c0), dtype=np.float32)
        post[: r1 - r0] = delta
        post[r1 - r0 :] = delta[-1]
        np.clip(post, -scene.enhancement_cap_db, 35.0, out=post)
        src = np.zeros_like(post)
        src[: r1 - r0] = scene.edge_src
        fade_px = 8.0 / px  # the shadow fades over ~8 mm
        a = np.float32(np.exp(-1.0 / max(fade_px, 1.0)))
        post += _decay_down(src, 16.0 * (1.0 - a), a)
        gaussian_filter1d(post, sig_lat0 * 1.5, axis=1, output=post, mode="constant")
        if sc.compound_deg > 0:
            att[r0:] += _compound_posterior(post, c0, w, sc.compound_deg)
        else:
            att[r0:, c0:c1] += post
    sig = env * np.exp(-att * _LN10_20)

    # ---- side-lobe clutter floor and electronic noise
    sig += np.float32(0.03) * uniform_filter1d(sig, size=max(3, int(3.0 / px)), axis=1)
    assert noise is not None
    nl = np.float32(10.0 ** (sc.noise_db / 20.0))
    sig += nl * np.abs(noise[0, ::-1, ::-1])
    # near-field clutter (reverberation haze below the skin)
    zmm = (np.arange(h, dtype=np.float32) + 0.5) * px
    nf_rows = min(h, int(4.0 / px) + 1)
    haze = sc.near_field * np.exp(-zmm[:nf_rows] / 1.2)[:, None]
    sig[:nf_rows] += haze * gaussian_filter1d(np.abs(noise[1, :nf_rows]), 3.0, axis=1)

    L = np.log10(sig + np.float32(1e-6)) * np.float32(20.0)
    # ---- TGC: follows the laterally averaged attenuation with limited slope
    step = np.diff(att_bg_prof, prepend=np.float32(0.0))
    step = np.clip(step, 0.0, 1.3 * float(k_db))
    tgc = np.cumsum(step) + (2.0 * f_eff * settings.tgc_slope_error) * zmm / 10.0
    tgc += 1.5 * smooth_curve(rng, h, 4)
    L += tgc.astype(np.float32)[:, None]

    # ---- grey map: operator gain puts the tissue median at the preferred grey
    skin_row = int(np.median(scene.skin_px)) + 2
    ref = float(np.median(L[skin_row::3, ::3]))
    dr = settings.dynamic_range
    lo = ref - dr * sc.target_grey ** (1.0 / sc.gamma) - settings.gain_db
    x = (L - np.float32(lo)) * np.float32(1023.0 / dr)
    np.clip(x, 0.0, 1023.0, out=x)
    grey = _gamma_lut(round(sc.gamma, 3))[x.astype(np.int32)]
    if sc.speckle_reduction > 0:
        sm = gaussian_filter1d(gaussian_filter1d(grey, 1.1, axis=0), 1.1, axis=1)
        grey = grey * np.float32(1.0 - sc.speckle_reduction) + sm * np.float32(sc.speckle_reduction)
    if sc.line_pitch > 1.0:
        grey = _resample_lines(grey, sc.line_pitch)
    if sc.edge_enhance > 0:
        detail = grey - gaussian_filter1d(gaussian_filter1d(grey, 1.6, axis=0), 1.6, axis=1)
        grey = np.clip(grey + np.float32(sc.edge_enhance) * detail, 0.0, 1.0)
    return BMode(grey=grey, att_db=att, psf_px=(sig_ax, sig_lat0))


def _compound_posterior(post: np.ndarray, c0: int, width: int, half_angle_deg: float) -> np.ndarray:
    """Extra attenuation below a lesion (dB) as a steered spatial-compounding scanner shows it.

    Each of three steered frames (-a, 0, +a) sees the shadow or enhancement cast
    along its own beam direction, so it leans sideways with depth; the frames are
    averaged in amplitude.  Shadows and enhancement come out shallower and wider,
    as compounding is known to do to these posterior signs.
    """
    rows, cols = post.shape
    full = np.zeros((rows, width), dtype=np.float32)
    full[:, c0 : c0 + cols] = post
    amp = np.zeros_like(full)
    col_idx = np.arange(width)
    for angle in (-half_angle_deg, 0.0, half_angle_deg):
        lean = np.rint(np.arange(rows) * np.tan(np.radians(angle))).astype(int)
        src = np.clip(col_idx[None, :] - lean[:, None], 0, width - 1)
        amp += np.exp(-np.take_along_axis(full, src, axis=1) * _LN10_20)
    return (-np.log(amp / np.float32(3.0)) / _LN10_20).astype(np.float32)


def _resample_lines(grey: np.ndarray, pitch: float) -> np.ndarray:
    """Keep one scan line every ``pitch`` columns and interpolate between them (scan conversion)."""
    w = grey.shape[1]
    lines = np.arange(0.0, w - 1 + 1e-6, pitch)
    lo = np.floor(lines).astype(int)
    frac = (lines - lo).astype(np.float32)
    hi = np.minimum(lo + 1, w - 1)
    sampled = grey[:, lo] * (1 - frac) + grey[:, hi] * frac
    pos = np.arange(w) / pitch
    j = np.minimum(np.floor(pos).astype(int), len(lines) - 2)
    t = np.clip(pos - j, 0.0, 1.0).astype(np.float32)
    return (sampled[:, j] * (1 - t) + sampled[:, j + 1] * t).astype(np.float32)


def _decay_down(src: np.ndarray, gain: float, a: float) -> np.ndarray:
    """First-order recursive filter down the rows: ``y[r] = gain * src[r] + a * y[r - 1]``, as float32.

    The same numbers as ``scipy.signal.lfilter([gain], [1, -a], src, axis=0)``
    (float64 inside), written out so the generator does not import
    scipy.signal, which alone costs about 1.4 s of the app's cold start.
    """
    x = src.astype(np.float64) * float(gain)
    out = np.empty_like(x)
    prev = np.zeros(x.shape[1:], dtype=np.float64)
    for r in range(x.shape[0]):
        prev = x[r] + float(a) * prev
        out[r] = prev
    return out.astype(np.float32)
