"""Colour Doppler (CDFI) frame: vessels as polylines, wall filter, gain, aliasing, colour maps.

Vessels are polylines in mm with a calibre (mm) and a speed (cm/s).  They are
splatted onto the grid inside the colour box, blurred by calibre plus
"blooming", thresholded by colour gain and the wall filter, and the mean axial
velocity is aliased at the Nyquist scale and looked up in the scanner's colour
map.  See the design notes, shared/docs/phantom.md 2.2 (outside this repository).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_filter1d

from softmass_core.data.phantom.bmode import BMode
from softmass_core.data.phantom.scanner import Settings
from softmass_core.data.phantom.scene import Scene, rho_at


@dataclass
class Vessel:
    """A polyline in mm (x, z columns), with calibre (mm) and peak speed (cm/s)."""

    pts: np.ndarray
    calibre: float
    speed: float
    internal: bool = False


@dataclass
class Doppler:
    """The CDFI frame on the simulation grid."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]
    box_px: tuple[float, float, float, float]  # r0, r1, c0, c1 of the colour box (sim px)
    steer: float  # rad; the box is a parallelogram when non-zero
    shift_px: tuple[int, int]  # (rows, cols) shift of this frame relative to the B-mode frame
    colour_fraction_lesion: float  # fraction of lesion pixels shown in colour
    n_vessels: int
    pattern: str
    colour_mask: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))


# ----------------------------------------------------------------------------- colour maps
@lru_cache(maxsize=8)
def colour_lut(name: str) -> np.ndarray:
    """(256, 3) float32 colour map over velocities -V..+V (index 128 = 0; + = toward the probe)."""
    stops = {
        "classic": (
            [(0.0, (0.30, 0.0, 0.0)), (0.6, (0.95, 0.05, 0.0)), (1.0, (1.0, 0.95, 0.35))],
            [(0.0, (0.0, 0.0, 0.35)), (0.6, (0.0, 0.25, 1.0)), (1.0, (0.3, 1.0, 1.0))],
        ),
        "warm": (
            [(0.0, (0.55, 0.05, 0.0)), (0.55, (1.0, 0.42, 0.0)), (1.0, (1.0, 0.92, 0.62))],
            [(0.0, (0.0, 0.12, 0.45)), (0.55, (0.1, 0.55, 1.0)), (1.0, (0.65, 0.92, 1.0))],
        ),
        "rb_simple": (
            [(0.0, (0.45, 0.0, 0.0)), (1.0, (1.0, 0.1, 0.05))],
            [(0.0, (0.0, 0.0, 0.45)), (1.0, (0.05, 0.15, 1.0))],
        ),
    }[name]
    t = np.linspace(0.0, 1.0, 128)
    out = np.zeros((256, 3), dtype=np.float32)
    for sign, st in ((1, stops[0]), (-1, stops[1])):
        pos = [p for p, _ in st]
        cols = np.array([c for _, c in st])
        curve = np.stack([np.interp(t, pos, cols[:, k]) for k in range(3)], axis=1)
        if sign > 0:
            out[128:] = curve
        else:
            out[:128] = curve[::-1]
    return out


# ----------------------------------------------------------------------------- vessels
def _walk(
    rng: np.random.Generator, start: tuple[float, float], heading: float, length: float, tort: float, step: float = 0.3
) -> np.ndarray:
    n = max(2, int(length / step))
    turns = np.cumsum(rng.normal(0.0, tort, n))
    ang = heading + turns
    pts = np.empty((n + 1, 2))
    pts[0] = start
    pts[1:, 0] = start[0] + np.cumsum(np.cos(ang) * step)
    pts[1:, 1] = start[1] + np.cumsum(np.sin(ang) * step)
    return pts


def make_vessels(scene: Scene, pattern: str, speed: float, rng: np.random.Generator) -> list[Vessel]:
    """Vessels of the lesion's vascular ``pattern`` plus background vessels (all classes)."""
    les = scene.lesion
    a, b = les.a, les.b
    size = np.sqrt(a * b)
    out: list[Vessel] = []

    def internal(count: int, lmin: float, lmax: float, tort: float, spd: float, cal: tuple[float, float]) -> None:
        for _ in range(count):
            ang, rad = rng.uniform(-np.pi, np.pi), np.sqrt(rng.uniform(0.0, 0.7))
            sx, sz = les.boundary(np.array([ang]), rad)
            pts = _walk(rng, (float(sx[0]), float(sz[0])), rng.uniform(-np.pi, np.pi), rng.uniform(lmin, lmax), tort)
            keep = rho_at(les, pts[:, 0], pts[:, 1]) < 0.97
            if keep.sum() >= 3:
                out.append(Vessel(pts[keep], rng.uniform(*cal), spd * rng.uniform(0.5, 1.3), True))

    def arc(count: int, span: tuple[float, float], spd: float) -> None:
        for _ in range(count):
            t0 = rng.uniform(-np.pi, np.pi)
            th = t0 + np.linspace(0.0, rng.uniform(*span), 40) * rng.choice([-1, 1])
            sc = rng.uniform(1.03, 1.15) + 0.03 * np.cumsum(rng.normal(0, 0.3, th.size)) / 6
            x, z = les.boundary(th, sc)
            out.append(Vessel(np.stack([x, z], 1), rng.uniform(0.25, 0.6), spd * rng.uniform(0.6, 1.2)))

    def trunk(theta: float, depth_frac: float, branches: int, spd: float, tort: float) -> None:
        ox, oz = les.boundary(np.array([theta]), rng.uniform(1.1, 1.3))
        ix, iz = les.boundary(np.array([theta + rng.normal(0, 0.3)]), depth_frac)
        heading = float(np.arctan2(iz[0] - oz[0], ix[0] - ox[0]))
        length = float(np.hypot(iz[0] - oz[0], ix[0] - ox[0]))
        pts = _walk(rng, (float(ox[0]), float(oz[0])), heading, length, tort)
        out.append(Vessel(pts, rng.uniform(0.4, 0.8), spd))
        for _ in range(branches):
            k = int(rng.integers(pts.shape[0] // 2, pts.shape[0]))
            bp = _walk(rng, tuple(pts[k]), heading + rng.normal(0, 1.0), rng.uniform(0.15, 0.45) * size, tort)
            keep = rho_at(les, bp[:, 0], bp[:, 1]) < 1.0
            if keep.sum() >= 3:
                out.append(Vessel(bp[keep], rng.uniform(0.25, 0.5), spd * rng.uniform(0.5, 0.9), True))

    if pattern == "minimal":
        internal(int(rng.integers(1, 3)), 1.5, 4.5, 0.25, 0.6 * speed, (0.25, 0.45))
    elif pattern == "peripheral_min":
        arc(int(rng.integers(1, 3)), (0.3, 0.8), 0.7 * speed)
    elif pattern == "peripheral":
        arc(int(rng.integers(2, 5)), (0.5, 1.6), speed)
        internal(int(rng.integers(0, 2)), 1.0, 3.0, 0.3, 0.6 * speed, (0.25, 0.4))
    elif pattern == "penetrating":
        trunk(rng.uniform(0.3, np.pi - 0.3), 0.1, int(rng.integers(2, 5)), speed, 0.08)
    elif pattern == "rich_small":
        internal(int(rng.integers(10, 26)), 1.0, 4.0, 0.35, speed, (0.25, 0.45))
    elif pattern == "lakes":
        internal(int(rng.integers(3, 9)), 1.5, 5.0, 0.15, 0.15 * speed, (0.7, 1.6))
    elif pattern == "polar_internal":
        for pole in (0.0, np.pi):
            if rng.random() < 0.8:
                trunk(pole + les.tilt + rng.normal(0, 0.15), 0.3, int(rng.integers(0, 3)), speed, 0.05)
        internal(int(rng.integers(2, 6)), 1.0, 3.5, 0.3, 0.8 * speed, (0.25, 0.45))
    elif pattern == "moderate":
        internal(int(rng.integers(4, 9)), 1.5, 5.0, 0.3, speed, (0.3, 0.55))
        arc(int(rng.integers(1, 3)), (0.4, 1.0), speed)
    elif pattern == "chaotic":
        for _ in range(int(rng.integers(3, 6))):
            trunk(rng.uniform(-np.pi, np.pi), rng.uniform(0.0, 0.3), int(rng.integers(2, 5)), speed, 0.2)
        internal(int(rng.integers(10, 26)), 2.0, 0.6 * size + 2.0, 0.45, speed, (0.3, 0.7))
        arc(int(rng.integers(2, 4)), (0.5, 1.5), speed)

    # background vessels: every class has them
    h, w = scene.shape
    px = scene.px_mm
    if rng.random() < 0.45:
        col = int(rng.integers(0, w))
        z_top, z_bot = scene.dermis_px[col] * px + 0.8, scene.fascia_px[col] * px - 0.8
        if z_bot > z_top:
            z0 = rng.uniform(z_top, z_bot)
            ang = rng.uniform(0.08, 0.4) * rng.choice([-1, 1]) + (np.pi if rng.random() < 0.5 else 0.0)
            pts = _walk(rng, (col * px, z0), ang, rng.uniform(6.0, 20.0), 0.01)
            pts[:, 1] = np.clip(pts[:, 1], z_top, z_bot)
            out.append(Vessel(pts, rng.uniform(0.4, 1.0), rng.uniform(5.0, 15.0)))
    for _ in range(int(rng.integers(0, 4))):
        col = int(rng.integers(0, w))
        zf = scene.fascia_px[col] * px + 1.0
        if zf < h * px - 2:
            z0 = rng.uniform(zf, h * px - 1)
            pts = _walk(rng, (col * px, z0), np.pi / 2 + rng.normal(0, 0.5), rng.uniform(0.8, 2.5), 0.1)
            out.append(Vessel(pts, rng.uniform(0.2, 0.45), rng.uniform(4.0, 12.0)))
    return out


# ----------------------------------------------------------------------------- rendering
def colour_box(scene: Scene, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Colour box (r0, r1, c0, c1) in sim px around the lesion, with an operator's margin."""
    h, w = scene.shape
    px = scene.px_mm
    x0, z0, x1, z1 = scene.lesion.tight_box_mm
    mx = (x1 - x0) * rng.uniform(0.12, 0.45) + 2.0
    mz = (z1 - z0) * rng.uniform(0.12, 0.4) + 1.5
    r0 = max(float(np.median(scene.skin_px)) + 1.0, (z0 - mz) / px)
    r1 = min(h - 1.0, (z1 + mz) / px)
    c0 = max(1.0, (x0 - mx) / px)
    c1 = min(w - 2.0, (x1 + mx) / px)
    return r0, r1, c0, c1


def render_cdfi(
    scene: Scene, bmode: BMode, settings: Settings, pattern: str, speed: float, rng: np.random.Generator
) -> Doppler:
    """The CDFI frame (float RGB on the simulation grid) for vascular ``pattern``."""
    sc = settings.scanner
    h, w = scene.shape
    px = scene.px_mm
    dy, dx = int(rng.integers(-3, 4)), int(rng.integers(-4, 5))
    grey = bmode.grey * np.float32(rng.uniform(0.8, 0.92))
    grey = gaussian_filter1d(grey, 0.8, axis=1)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)

    br0, br1, bc0, bc1 = colour_box(scene, rng)
    steer = settings.steer
    shear = np.tan(steer)  # lateral shift of the box per row
    rows = np.arange(h, dtype=np.float32)[:, None]
    cols = np.arange(w, dtype=np.float32)[None, :]
    # working window covering the (possibly sheared) box
    r0, r1 = int(np.floor(br0)), int(np.ceil(br1)) + 1
    shift_max = abs(shear) * (br1 - br0)
    c0 = max(0, int(np.floor(bc0 - (shift_max if shear < 0 else 0))) - 1)
    c1 = min(w, int(np.ceil(bc1 + (shift_max if shear > 0 else 0))) + 2)
    rr, cc = rows[r0:r1], cols[:, c0:c1]
    off = shear * (rr - br0)
    in_box = (rr >= br0) & (rr <= br1) & (cc >= bc0 + off) & (cc <= bc1 + off)
    wh, ww = r1 - r0, c1 - c0

    vessels = make_vessels(scene, pattern, speed, rng)
    beam = np.array([np.sin(steer), np.cos(steer)])  # (x, z), into the body
    cal_bins = (1.2, 2.2, 3.5, 6.0)  # vessel calibre classes, px
    groups = [[np.zeros((wh, ww), np.float32) for _ in range(2)] for _ in cal_bins]
    for ves in vessels:
        p = ves.pts / px  # (N, 2) in px (x=col, z=row)
        seg = np.diff(p, axis=0)
        seg_len = np.hypot(seg[:, 0], seg[:, 1])
        ok = seg_len > 1e-6
        if not ok.any():
            continue
        seg, seg_len, start = seg[ok], seg_len[ok], p[:-1][ok]
        n_sub = np.maximum(1, np.ceil(seg_len / 0.5).astype(int))
        idx = np.repeat(np.arange(seg.shape[0]), n_sub)
        frac = (np.arange(idx.size) - np.repeat(np.cumsum(n_sub) - n_sub, n_sub)) / np.repeat(n_sub, n_sub)
        pts = start[idx] + seg[idx] * frac[:, None]
        tang = seg[idx] / seg_len[idx, None]
        v_ax = -ves.speed * (tang[:, 0] * beam[0] + tang[:, 1] * beam[1])  # + = toward the probe
        v_ax *= 1.0 + 0.15 * np.sin(np.linspace(0, rng.uniform(1, 3), v_ax.size) + rng.uniform(0, 6))
        ci = np.rint(pts[:, 0]).astype(int) - c0
        ri = np.rint(pts[:, 1]).astype(int) - r0
        keep = (ci >= 0) & (ci < ww) & (ri >= 0) & (ri < wh)
        if not keep.any():
            continue
        flat = ri[keep] * ww + ci[keep]
        g = groups[int(np.argmin([abs(ves.calibre / px - c) for c in cal_bins]))]
        g[0] += np.bincount(flat, minlength=wh * ww).reshape(wh, ww).astype(np.float32)
        g[1] += np.bincount(flat, weights=v_ax[keep], minlength=wh * ww).reshape(wh, ww).astype(np.float32)
    bloom = sc.blooming * settings.colour_gain
    power = np.zeros((wh, ww), np.float32)
    vel = np.zeros((wh, ww), np.float32)
    for cal, (wt, vs) in zip(cal_bins, groups, strict=True):
        if not wt.any():
            continue
        sig = float(np.clip(0.4 * cal + 0.5 * bloom, 0.6, 4.0))
        norm = np.float32(1.25 * sig)  # a line splatted at 2 samples/px peaks at 1
        power += gaussian_filter(wt, sig, truncate=2.5) * norm
        vel += gaussian_filter(vs, sig, truncate=2.5) * norm
    vmean = vel / np.maximum(power, 1e-4)

    # Doppler sensitivity: extra attenuation below shadows and with depth
    att = bmode.att_db[r0:r1, c0:c1]
    excess = np.clip(att - np.median(bmode.att_db[r0:r1], axis=1, keepdims=True), 0.0, None)
    depth_mm = (rr + 0.5) * px
    sens = np.exp(-0.6 * excess * np.float32(np.log(10) / 20)) * np.exp(-depth_mm / 70.0)
    tex = gaussian_filter(rng.standard_normal((wh, ww), dtype=np.float32), 1.0)
    tex = np.exp(1.6 * tex)
    thr = 0.8 - 0.55 * settings.colour_gain
    show = (power * sens * tex > thr) & (np.abs(vmean) > sc.wall_filter) & in_box
    # flash noise
    n_flash = rng.binomial(int(in_box.sum()), sc.flash_rate * settings.colour_gain * 0.5)
    if n_flash:
        fi = rng.integers(0, wh * ww, n_flash)
        fl = np.zeros(wh * ww, bool)
        fl[fi] = True
        fl = fl.reshape(wh, ww) & in_box
        show |= fl
        vmean = np.where(fl, rng.uniform(-1, 1, (wh, ww)).astype(np.float32) * settings.nyquist, vmean)
    V = np.float32(settings.nyquist)
    vdisp = vmean * (0.75 + 0.25 * np.clip(power, 0, 1)) + rng.normal(0, 0.06, (wh, ww)).astype(np.float32) * V
    vdisp = np.clip(vdisp, -1.7 * V, 1.7 * V)
    vdisp = np.mod(vdisp + V, 2 * V) - V  # aliasing
    lut = colour_lut(sc.colour_map)
    li = np.clip(((vdisp / V) * 128 + 128).astype(np.int32), 0, 255)
    col = lut[li]
    win = rgb[r0:r1, c0:c1]
    win[show] = col[show]

    # colour fraction inside the lesion (for metadata and tests)
    lr0, lr1, lc0, lc1 = scene.lesion.box
    les_mask = np.zeros((h, w), bool)
    les_mask[lr0:lr1, lc0:lc1] = scene.lesion.mask > 0.5
    full_show = np.zeros((h, w), bool)
    full_show[r0:r1, c0:c1] = show
    frac = float((full_show & les_mask).sum() / max(1, les_mask.sum()))
    # the colour frame is a different frame: the probe moved by a few pixels
    rgb = np.roll(rgb, (dy, dx), axis=(0, 1))
    return Doppler(
        rgb=rgb,
        box_px=(br0, br1, bc0, bc1),
        steer=steer,
        shift_px=(dy, dx),
        colour_fraction_lesion=frac,
        n_vessels=len(vessels),
        pattern=pattern,
        colour_mask=full_show,
    )
