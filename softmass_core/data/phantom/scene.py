"""The acoustic scene of one case: echo amplitude, specular fraction and attenuation maps.

All lengths are in mm unless a name ends in ``_px``.  Row ``i`` of the
simulation grid is depth ``(i + 0.5) * px_mm``, column ``j`` is lateral
position ``(j + 0.5) * px_mm`` (square pixels).  Amplitudes are relative to
subcutaneous fat (= 1).  Attenuation is in dB/cm/MHz.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d

from softmass_core.data.phantom._noise import smooth_curve, smooth_field
from softmass_core.data.phantom.classes import LesionParams

N_ANGLES = 1024
_THETA = np.linspace(-np.pi, np.pi, N_ANGLES, endpoint=False)

ALPHA_DERMIS, ALPHA_FAT, ALPHA_MUSCLE, ALPHA_BONE, ALPHA_FLUID = 0.5, 0.63, 1.0, 15.0, 0.15


def _circ_bump(theta: np.ndarray, centre: float, width: float) -> np.ndarray:
    d = np.angle(np.exp(1j * (theta - centre)))
    return np.exp(-((d / width) ** 2))


@dataclass
class LesionGeom:
    """Shape of the lesion and its maps inside ``box`` (rows r0:r1, cols c0:c1)."""

    cx: float
    cz: float
    a: float  # semi-axis along the long axis, mm
    b: float  # semi-axis across, mm
    tilt: float  # rad, positive = long axis turning downward to the right
    r_table: np.ndarray  # radius multiplier per angle (N_ANGLES,)
    ew_table: np.ndarray  # edge width per angle, mm
    half_w: float = 0.0  # lateral half-extent, mm
    half_h: float = 0.0  # vertical half-extent, mm
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # r0, r1, c0, c1 (sim px, exclusive)
    mask: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    u: np.ndarray | None = None  # along-axis coordinate in the box, mm
    v: np.ndarray | None = None  # across-axis coordinate, mm
    rho: np.ndarray | None = None  # radius / boundary radius (1 on the boundary)
    dist: np.ndarray | None = None  # signed distance to the boundary, mm (+ outside)
    tidx: np.ndarray | None = None  # angle-table index per box pixel
    nx_table: np.ndarray | None = None  # |horizontal component| of the wall normal
    tight_box_mm: tuple[float, float, float, float] = (0, 0, 0, 0)  # x0, z0, x1, z1

    def boundary(self, theta: np.ndarray, scale: float | np.ndarray = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Points (x, z) in mm at angles ``theta`` and radius ``scale`` x boundary."""
        theta = np.asarray(theta, dtype=np.float64)
        idx = (((theta + np.pi) / (2 * np.pi)) * N_ANGLES).astype(np.int64) % N_ANGLES
        r = self.r_table[idx] * scale
        u = self.a * r * np.cos(theta)
        v = self.b * r * np.sin(theta)
        ct, st = np.cos(self.tilt), np.sin(self.tilt)
        return self.cx + u * ct - v * st, self.cz + u * st + v * ct


@dataclass
class Scene:
    """Maps on the simulation grid plus what the renderers need to know."""

    px_mm: float
    depth_mm: float
    E: np.ndarray  # echo amplitude (H, W) float32
    C: np.ndarray  # coherent fraction (H, W) float32
    A: np.ndarray  # background attenuation (H, W) float32, dB/cm/MHz
    A_delta: np.ndarray  # lesion attenuation minus background inside the box
    edge_src: np.ndarray  # lateral edge-shadow source inside the box (dB-ish)
    lesion: LesionGeom
    skin_px: np.ndarray  # skin surface row per column (float)
    dermis_px: np.ndarray
    fascia_px: np.ndarray
    bone_px: np.ndarray | None
    enhancement_cap_db: float
    calc_foci_mm: list[tuple[float, float]] = field(default_factory=list)
    signs: list[str] = field(default_factory=list)
    layer: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        return self.E.shape  # type: ignore[return-value]


# ----------------------------------------------------------------------------- shape
def _shape_tables(geo: dict, rng: np.random.Generator, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    th = _THETA
    r = np.ones(N_ANGLES)
    irr = float(geo.get("irregular", 0.0))
    if irr > 0:
        low = np.zeros(N_ANGLES)
        for k in range(2, 9):
            low += rng.normal() / k**0.8 * np.cos(k * th + rng.uniform(0, 2 * np.pi))
        r += irr * low / (low.std() + 1e-9)
    micro = float(geo.get("micro", 0.0))
    if micro > 0:
        hi = np.zeros(N_ANGLES)
        for k in range(9, 61, 2):
            hi += rng.normal() / k * np.cos(k * th + rng.uniform(0, 2 * np.pi))
        env = np.exp(1.2 * np.interp(th, np.linspace(-np.pi, np.pi, 9), rng.normal(size=9)))
        hi = hi / (hi.std() + 1e-9) * env / env.mean()
        r += micro * hi
    for _ in range(int(geo.get("lobules", 0))):
        r += rng.uniform(0.06, 0.18) * _circ_bump(th, rng.uniform(-np.pi, np.pi), rng.uniform(0.25, 0.6))
    fus = float(geo.get("fusiform", 0.0))
    if fus > 0:
        p = 2.0 - 0.9 * fus
        r /= (np.abs(np.cos(th)) ** p + np.abs(np.sin(th)) ** p) ** (1.0 / p)
        r /= r.max()
        r *= 1.0 + 0.5 * (1.0 - r.min())
    r = np.clip(r, 0.55, 1.6)
    ew = np.full(N_ANGLES, float(geo.get("edge_mm", 0.2)))
    for _ in range(int(geo.get("ill_sectors", 0))):
        ew += float(geo["ill_edge_mm"]) * _circ_bump(th, rng.uniform(-np.pi, np.pi), rng.uniform(0.4, 0.9))
    return r.astype(np.float32), ew.astype(np.float32)


def _lesion_maps(les: LesionGeom, px: float, shape: tuple[int, int], halo_mm: float) -> None:
    """Fill ``box`` and the per-pixel maps of ``les`` (in place)."""
    h, w = shape
    x0, x1 = les.cx - les.half_w - halo_mm, les.cx + les.half_w + halo_mm
    z0, z1 = les.cz - les.half_h - halo_mm, les.cz + les.half_h + halo_mm
    r0, r1 = max(0, int(z0 / px)), min(h, int(np.ceil(z1 / px)) + 1)
    c0, c1 = max(0, int(x0 / px)), min(w, int(np.ceil(x1 / px)) + 1)
    les.box = (r0, r1, c0, c1)
    z = ((np.arange(r0, r1, dtype=np.float32) + 0.5) * px - les.cz)[:, None]
    x = ((np.arange(c0, c1, dtype=np.float32) + 0.5) * px - les.cx)[None, :]
    ct, st = np.float32(np.cos(les.tilt)), np.float32(np.sin(les.tilt))
    u = x * ct + z * st
    v = z * ct - x * st
    un, vn = u / np.float32(les.a), v / np.float32(les.b)
    theta = np.arctan2(vn, un)
    tidx = ((theta + np.float32(np.pi)) * np.float32(N_ANGLES / (2 * np.pi))).astype(np.int32)
    np.clip(tidx, 0, N_ANGLES - 1, out=tidx)
    rr = les.r_table[tidx]
    rho_abs = np.sqrt(un * un + vn * vn)
    scale_t = np.sqrt((les.a * np.cos(_THETA)) ** 2 + (les.b * np.sin(_THETA)) ** 2).astype(np.float32)
    dist = (rho_abs - rr) * scale_t[tidx]
    les.mask = (0.5 * (1.0 - np.tanh(dist / les.ew_table[tidx]))).astype(np.float32)
    les.u, les.v, les.rho, les.dist, les.tidx = u, v, rho_abs / rr, dist, tidx
    # Wall normal direction of the (unperturbed) ellipse, rotated by the tilt.
    nu, nv = np.cos(_THETA) / les.a, np.sin(_THETA) / les.b
    norm = np.hypot(nu, nv)
    nx = (nu * np.cos(les.tilt) - nv * np.sin(les.tilt)) / norm
    les.nx_table = np.abs(nx).astype(np.float32)


def _segment_distance(x: np.ndarray, z: np.ndarray, p0: tuple[float, float], p1: tuple[float, float]) -> np.ndarray:
    dx, dz = p1[0] - p0[0], p1[1] - p0[1]
    L2 = dx * dx + dz * dz + 1e-9
    t = np.clip(((x - p0[0]) * dx + (z - p0[1]) * dz) / L2, 0.0, 1.0)
    return np.hypot(x - p0[0] - t * dx, z - p0[1] - t * dz)


# ----------------------------------------------------------------------------- scene
def build_scene(
    params: LesionParams,
    rng: np.random.Generator,
    sim_hw: tuple[int, int],
    *,
    compounding: bool = False,
) -> Scene:
    """Lay out skin, fat, fascia, muscle and the lesion for one case.

    Args:
        params: the lesion's sampled parameters.
        rng: random generator (consumed).
        sim_hw: simulation grid (rows, cols).
        compounding: the scanner compounds looks (weaker edge shadows).

    Returns:
        a :class:`Scene` with float32 maps of shape ``sim_hw``.
    """
    h, w = sim_hw
    geo, echo, internal, post = params.geometry, params.echo, params.internal, params.posterior
    signs: list[str] = []

    # ---- lesion shape (size in mm first; the depth and pixel size follow from it)
    diam = float(geo["diameter_mm"])
    aspect = float(np.clip(geo["aspect"], 0.2, 1.1))
    a = diam / 2.0
    b = a * aspect
    r_tab, ew_tab = _shape_tables(geo, rng, a, b)
    tilt = float(geo.get("tilt", 0.0))
    les = LesionGeom(cx=0.0, cz=0.0, a=a, b=b, tilt=tilt, r_table=r_tab, ew_table=ew_tab)
    bx, bz = les.boundary(_THETA)
    half_w, half_h = float(np.abs(bx).max()), float(np.abs(bz).max())
    # Cap the vertical size so the lesion fits a <= 60 mm depth with room below.
    max_half_h = 21.0
    if half_h > max_half_h:
        k = max_half_h / half_h
        les.a, les.b, a, b = a * k, b * k, a * k, b * k
        half_w, half_h = half_w * k, half_h * k
    les.half_w, les.half_h = half_w, half_h

    # ---- layer thicknesses
    gel = float(rng.uniform(0.5, 2.5)) if rng.random() < 0.15 else 0.0
    t_derm = float(rng.uniform(1.0, 2.6))
    t_fat = float(np.exp(rng.uniform(np.log(3.0), np.log(13.0))))
    skin = 0.15 + gel
    derm_bot = skin + t_derm
    fascia = derm_bot + t_fat
    layer = str(geo.get("layer", "subcut"))
    if layer == "dermis_subcut":
        top = skin + t_derm * float(rng.uniform(0.35, 0.95))
        fascia = max(fascia, top + 2 * half_h + float(rng.uniform(1.0, 5.0)))
    elif layer == "subcut":
        fascia = max(fascia, derm_bot + 2 * half_h + float(rng.uniform(1.5, 7.0)))
        top = derm_bot + float(rng.uniform(0.4, max(0.5, fascia - derm_bot - 2 * half_h - 0.4)))
    elif layer == "deep_subcut":
        fascia = max(fascia, derm_bot + 2 * half_h + float(rng.uniform(1.0, 4.0)))
        top = fascia - 2 * half_h - float(rng.uniform(0.2, 1.2))
    elif layer == "fascia":
        cz = fascia + float(rng.uniform(-0.3, 0.4)) * half_h
        if cz - half_h < derm_bot + 0.6:
            fascia += derm_bot + 0.6 - (cz - half_h)
            cz = derm_bot + 0.6 + half_h
        top = cz - half_h
    else:  # muscle
        top = fascia + float(rng.uniform(0.6, 6.0))
    bottom = top + 2 * half_h
    depth = float(np.clip(bottom + rng.uniform(6.0, 14.0), 20.0, 62.0))
    depth = max(depth, bottom + 4.0)
    px = depth / h
    width = w * px
    les.cz = top + half_h
    les.cx = width * float(rng.uniform(0.38, 0.62))
    les.tight_box_mm = (les.cx - half_w, les.cz - half_h, les.cx + half_w, les.cz + half_h)

    # ---- layer boundaries (rows, float) with smooth wobble and the lesion's mass effect
    xs = (np.arange(w, dtype=np.float32) + 0.5) * px
    skin_mm = skin + 0.08 * smooth_curve(rng, w, 3) + 0.002 * (xs - width / 2) * float(rng.normal())
    derm_mm = skin_mm + t_derm * (1.0 + 0.12 * smooth_curve(rng, w, 5))
    fascia_mm = fascia + float(rng.uniform(0.3, 1.5)) * smooth_curve(rng, w, 4)
    fascia_mm += float(rng.normal(0.0, 0.02)) * (xs - width / 2)
    # lesion vertical profile per column
    tb = np.linspace(-np.pi, 0, 256)
    top_x, top_z = les.boundary(tb)
    bb = np.linspace(0, np.pi, 256)
    bot_x, bot_z = les.boundary(bb)
    inside = (xs > les.cx - half_w) & (xs < les.cx + half_w)
    top_prof = np.full(w, np.inf, dtype=np.float32)
    bot_prof = np.full(w, -np.inf, dtype=np.float32)
    if inside.any():
        o = np.argsort(top_x)
        top_prof[inside] = np.interp(xs[inside], top_x[o], top_z[o])
        o = np.argsort(bot_x)
        bot_prof[inside] = np.interp(xs[inside], bot_x[o], bot_z[o])
    sig = max(1.0, 0.18 * a / px)
    if layer in ("dermis_subcut", "subcut", "deep_subcut"):
        bump = np.where(inside, np.maximum(0.0, bot_prof + 0.5 - fascia_mm), 0.0)
        fascia_mm = fascia_mm + gaussian_filter1d(bump.astype(np.float32), sig, mode="nearest") * 1.3
    if layer in ("subcut", "deep_subcut", "muscle"):
        bump = np.where(inside, np.maximum(0.0, derm_mm + 0.4 - top_prof), 0.0)
        lift = gaussian_filter1d(bump.astype(np.float32), sig, mode="nearest") * 1.3
        derm_mm = np.maximum(skin_mm + 0.6, derm_mm - lift)
    if layer == "muscle":
        bump = np.where(inside, np.maximum(0.0, fascia_mm + 0.4 - top_prof), 0.0)
        fascia_mm = fascia_mm - gaussian_filter1d(bump.astype(np.float32), sig, mode="nearest") * 1.3
        fascia_mm = np.maximum(fascia_mm, derm_mm + 0.8)
    bone_mm = None
    bone_top = max(bottom + 2.5, float(fascia_mm.max()) + 3.0)
    if rng.random() < 0.25 and depth - bone_top > 1.5:
        bone_mm = float(rng.uniform(bone_top, depth - 1.0)) + 0.6 * smooth_curve(rng, w, 3)
        bone_mm += float(rng.normal(0, 0.02)) * (xs - width / 2)
        bone_mm = np.maximum(bone_mm, fascia_mm + 2.0)

    # ---- background maps
    zc = ((np.arange(h, dtype=np.float32) + 0.5) * px)[:, None]
    sk, de, fa = skin_mm[None, :], derm_mm[None, :], fascia_mm[None, :]
    tex = smooth_field(rng, (h, w), (int(depth / 2.5) + 2, int(width / 2.5) + 2))
    # fat: lobules and wavy skin-parallel septa
    spacing = float(rng.uniform(2.2, 4.5))
    warp = smooth_field(rng, (h, w), (int(depth / 5) + 2, int(width / 6) + 2))
    phase = (zc - de) / spacing + 0.6 * warp
    dfrac = np.abs(phase - np.round(phase)) * spacing
    septa_w = max(0.11, 0.55 * px)
    septa = np.clip(1.0 - (dfrac / septa_w) ** 2, 0.0, None)
    breaks = smooth_field(rng, (h, w), (int(depth / 2) + 2, int(width / 3) + 2))
    septa *= np.clip(1.3 * breaks - 0.1, 0.0, 1.0)
    fat_E = np.exp(0.3 * tex) + float(rng.uniform(1.2, 2.6)) * septa
    # muscle: fibrillar perimysium along a tilted axis
    mt = float(rng.normal(0.0, 0.18))
    period = float(rng.uniform(0.7, 1.5))
    mphase = ((zc - fa) * np.float32(np.cos(mt)) - xs[None, :] * np.float32(np.sin(mt))) / period + 0.5 * warp
    mdist = np.abs(mphase - np.round(mphase)) * period
    fib = np.clip(1.0 - (mdist / max(0.12, 0.6 * px)) ** 2, 0.0, None)
    fib *= np.clip(0.5 * breaks + 0.6, 0.0, 1.0)
    musc_E = float(rng.uniform(0.6, 0.9)) * np.exp(0.22 * tex) + float(rng.uniform(1.0, 2.0)) * fib
    derm_E = float(rng.uniform(2.4, 3.8)) * np.exp(0.2 * tex)

    in_fat = zc >= de
    in_musc = zc >= fa
    E = np.where(in_musc, musc_E, np.where(in_fat, fat_E, derm_E)).astype(np.float32)
    E[np.broadcast_to(zc < sk, E.shape)] = 0.02
    A = np.where(in_musc, ALPHA_MUSCLE, np.where(in_fat, ALPHA_FAT, ALPHA_DERMIS)).astype(np.float32)
    A[np.broadcast_to(zc < sk, A.shape)] = 0.01
    C = np.zeros((h, w), dtype=np.float32)

    def add_line(z_line: np.ndarray, width_mm: float, amp: float | np.ndarray, coh: float) -> None:
        lo = max(0, int(np.floor(z_line.min() / px - 4 * width_mm / px - 2)))
        hi = min(h, int(np.ceil(z_line.max() / px + 4 * width_mm / px + 2)))
        if hi <= lo:
            return
        prof = np.exp(-(((zc[lo:hi] - z_line[None, :]) / max(width_mm, 0.5 * px)) ** 2))
        E[lo:hi] += amp * prof
        C[lo:hi] = np.maximum(C[lo:hi], coh * prof)

    add_line(skin_mm, 0.12, float(rng.uniform(3.0, 5.0)), 0.6)  # entry echo
    add_line(derm_mm, 0.15, float(rng.uniform(0.5, 1.5)), 0.1)
    fascia_amp = float(rng.uniform(2.5, 5.0)) * np.clip(1.0 + 0.35 * smooth_curve(rng, w, 6), 0.3, None)
    add_line(fascia_mm, float(rng.uniform(0.15, 0.32)), fascia_amp[None, :], 0.45)
    if bone_mm is not None:
        below = zc > bone_mm[None, :]
        E = np.where(below, 0.15 * E, E)
        A = np.where(below, ALPHA_BONE, A)
        add_line(bone_mm, 0.25, float(rng.uniform(6.0, 10.0)), 0.75)

    # ---- peri-lesional signs painted into the background
    halo = 3.0 + 2.0 * float(ew_tab.max()) + (2.0 if echo.get("rim") == "irregular_echogenic" else 0.0)
    _lesion_maps(les, px, (h, w), halo)
    r0, r1, c0, c1 = les.box
    if "tails" in internal:
        _draw_nerve_tails(E, C, les, zc, xs, px, float(internal["tails"]), rng)
        signs.append("tail_sign")
    if layer == "dermis_subcut" and internal.get("punctum"):
        xp = les.cx + float(rng.uniform(-0.3, 0.3)) * half_w
        zt = les.cz - half_h * 0.8
        band = np.exp(-(((xs - xp) / 0.35) ** 2))[None, :]
        rows = slice(max(0, int(skin / px)), max(0, int(zt / px)))
        E[rows] *= 1.0 - 0.75 * band
        signs.append("punctum")

    Eb = E[r0:r1, c0:c1]
    Ab = A[r0:r1, c0:c1]
    Cb = C[r0:r1, c0:c1]
    m, dist, u, v, rho = les.mask, les.dist, les.u, les.v, les.rho
    outside = dist > 0
    if "fat_cap" in internal:
        cap = np.exp(-(((np.abs(u) - a * 1.02) / (0.35 * a)) ** 2)) * np.exp(-((v / (0.7 * b)) ** 2))
        Eb *= 1.0 + float(internal["fat_cap"]) * cap * outside
        signs.append("split_fat")
    if "stranding" in internal:
        ang = np.zeros(N_ANGLES)
        for k in range(10, 40, 3):
            ang += rng.normal() * np.cos(k * _THETA + rng.uniform(0, 2 * np.pi))
        ang = (ang / ang.std()).astype(np.float32)
        fingers = np.clip(ang[les.tidx] - 0.6, 0.0, 1.5) * np.exp(-np.clip(dist, 0, None) / 2.5)
        oedema = np.exp(-np.clip(dist, 0, None) / 3.0) * outside
        s = float(internal["stranding"])
        Eb *= (1.0 + 0.35 * s * oedema) * (1.0 - 0.45 * s * np.clip(fingers, 0, 1) * outside)
        signs.append("infiltrative_stranding")

    # ---- lesion interior
    bh, bw = Eb.shape
    base = float(echo["echo"])
    het = float(echo["het"])
    kn = int(echo.get("het_knots", 6))
    hf = smooth_field(
        rng, (bh, bw), (max(2, int(kn * (bh * px) / (2 * b + 1e-6))), max(2, int(kn * (bw * px) / (2 * a))))
    )
    E_in = base * np.exp(het * hf)
    A_in = np.full_like(Eb, float(post["alpha"]))
    C_in = np.zeros_like(Eb)

    if "striations" in internal:
        st = internal["striations"]
        sp = float(st["spacing_mm"])
        wf = smooth_field(rng, (bh, bw), (3, 4))
        ph = v / sp + 0.35 * wf
        dd = np.abs(ph - np.round(ph)) * sp
        line = np.clip(1.0 - (dd / max(0.1, 0.55 * px)) ** 2, 0.0, None)
        seg = np.clip(smooth_field(rng, (bh, bw), (max(2, int(bh * px / 1.5)), max(2, int(bw * px / 4)))) + 0.1, 0, 1)
        E_in = E_in + base * float(st["strength"]) * line * seg
        signs.append("striations")
    if "spaces" in internal:
        # venous spaces: small anechoic, mostly skin-parallel tubular channels
        spc = internal["spaces"]
        size = float(spc["size_mm"])
        t = np.zeros_like(Eb)
        for _ in range(int(spc["count"])):
            ang, rad = rng.uniform(-np.pi, np.pi), np.sqrt(rng.uniform(0.0, 0.8))
            su, sv = rad * a * np.cos(ang), rad * b * np.sin(ang)
            ru = size * rng.uniform(0.6, 2.2)
            rv = size * rng.uniform(0.35, 0.8)
            rot = rng.normal(0.0, 0.35)
            rc0 = max(0, int((les.cz - r0 * px + su * np.sin(tilt) + sv * np.cos(tilt)) / px - 2.5 * ru / px))
            rc1 = min(bh, rc0 + int(5 * ru / px) + 2)
            cc0 = max(0, int((les.cx - c0 * px + su * np.cos(tilt) - sv * np.sin(tilt)) / px - 2.5 * ru / px))
            cc1 = min(bw, cc0 + int(5 * ru / px) + 2)
            if rc1 <= rc0 or cc1 <= cc0:
                continue
            uu, vv = u[rc0:rc1, cc0:cc1] - su, v[rc0:rc1, cc0:cc1] - sv
            q = ((uu * np.cos(rot) + vv * np.sin(rot)) / ru) ** 2 + ((vv * np.cos(rot) - uu * np.sin(rot)) / rv) ** 2
            np.maximum(t[rc0:rc1, cc0:cc1], np.clip(2.0 - 2.0 * q, 0.0, 1.0), out=t[rc0:rc1, cc0:cc1])
        t *= rho < 1.0
        E_in = E_in * (1.0 - 0.9 * t) + 0.5 * base * np.clip(1.0 - np.abs(2.0 * t - 1.0), 0, 1)
        A_in = A_in * (1.0 - t) + ALPHA_FLUID * t
        signs.append("honeycomb_spaces")
    if "target" in internal:
        E_in = E_in * (1.0 + (float(internal["target"]) - 0.2) * np.exp(-((rho / 0.5) ** 2)))
        signs.append("target")
    blobs = int(internal.get("necrosis", 0)) + int(internal.get("cystic", 0))
    for _ in range(blobs):
        ang = rng.uniform(-np.pi, np.pi)
        rad = rng.uniform(0.0, 0.55)
        bxm = rad * a * np.cos(ang)
        bzm = rad * b * np.sin(ang)
        sz = rng.uniform(0.12, 0.35) * b
        pert = smooth_field(rng, (bh, bw), (max(2, int(bh * px / 3)), max(2, int(bw * px / 3))))
        dd = np.hypot(u - bxm, (v - bzm) * 1.3) / sz + 0.35 * pert
        t = np.clip(1.6 - dd, 0.0, 1.0)
        E_in = E_in * (1.0 - 0.9 * t)
        A_in = A_in * (1.0 - 0.7 * t) + ALPHA_FLUID * 0.7 * t
    if blobs:
        signs.append("necrosis" if internal.get("necrosis") else "cystic_change")
    if "onion" in internal:
        rings = 0.5 + 0.5 * np.cos(2 * np.pi * rho * float(rng.uniform(3.0, 6.0)))
        E_in = E_in * (1.0 + float(internal["onion"]) * (rings - 0.4) * (rho < 0.95))
        signs.append("onion_rings")
    for key, amp in (("lines", 3.0), ("clefts", -0.85)):
        for _ in range(int(internal.get(key, 0))):
            ang = rng.uniform(-0.7, 0.7) + (np.pi if rng.random() < 0.5 else 0.0)
            L = rng.uniform(0.15, 0.45) * a
            p0 = (rng.uniform(-0.45, 0.45) * a, rng.uniform(-0.45, 0.45) * b)
            p1 = (p0[0] + L * np.cos(ang), p0[1] + L * np.sin(ang) * 0.6)
            dd = _segment_distance(u, v, p0, p1)
            prof = np.exp(-((dd / max(0.12, 0.6 * px)) ** 2)) * (rho < 0.95)
            E_in = E_in * (1.0 + amp * prof) if amp < 0 else E_in + amp * base * prof
        if internal.get(key):
            signs.append("echogenic_lines" if key == "lines" else "dark_clefts")

    # calcific foci (pilomatricoma dots / cluster / complete, phleboliths, sarcoma dots)
    calc = internal.get("calc")
    foci: list[tuple[float, float]] = []
    if calc:
        n = int(internal.get("calc_count", 3))
        if calc == "complete":
            # an echogenic crescent over the upper part with strong attenuation
            thick = rng.uniform(0.12, 0.3)
            arc = np.exp(-(((rho - (0.82 - thick / 2)) / thick) ** 2)) * (v < 0.25 * b)
            arc *= 0.6 + 0.4 * np.clip(smooth_field(rng, (bh, bw), (4, 4)) + 0.8, 0, 1)
            E_in = E_in + float(rng.uniform(5.0, 9.0)) * arc
            C_in = np.maximum(C_in, 0.4 * arc)
            A_in = A_in + float(rng.uniform(5.0, 10.0)) * arc
            for ang in np.linspace(-2.5, -0.6, 4):
                fx, fz = les.boundary(np.array([ang]), 0.8)
                foci.append((float(fx[0]), float(fz[0])))
        else:
            if calc == "cluster":
                cu, cv = rng.uniform(-0.3, 0.3) * a, rng.uniform(-0.3, 0.3) * b
                spread = rng.uniform(0.15, 0.3)
            for _ in range(n):
                if calc == "cluster":
                    fu, fv = cu + rng.normal(0, spread * a), cv + rng.normal(0, spread * b)
                else:
                    ang, rad = rng.uniform(-np.pi, np.pi), np.sqrt(rng.uniform(0.0, 0.6))
                    fu, fv = rad * a * np.cos(ang), rad * b * np.sin(ang)
                rad_mm = rng.uniform(0.15, 0.45) if calc != "phlebolith" else rng.uniform(0.5, 1.2)
                dd2 = ((u - fu) ** 2 + (v - fv) ** 2) / rad_mm**2
                spot = np.exp(-dd2)
                E_in = E_in + float(rng.uniform(6.0, 12.0)) * spot
                C_in = np.maximum(C_in, 0.35 * spot)
                A_in = A_in + float(rng.uniform(1.5, 5.0)) * spot
                ct, stt = np.cos(tilt), np.sin(tilt)
                foci.append((les.cx + fu * ct - fv * stt, les.cz + fu * stt + fv * ct))
        signs.append({"phlebolith": "phleboliths"}.get(calc, f"calcification_{calc}"))

    # rims
    rim = echo.get("rim", "none")
    rs = float(echo.get("rim_strength", 0.0))
    tidx = les.tidx
    if rim == "capsule":
        nz2 = 1.0 - les.nx_table[tidx] ** 2
        cap = np.exp(-((dist / max(0.12, 0.6 * px)) ** 2)) * (0.35 + 0.65 * nz2)
        E_in = E_in + rs * 2.5 * cap
        Eb += rs * 2.5 * cap * (1 - m)
        C_in = np.maximum(C_in, 0.3 * cap)
        signs.append("capsule")
    elif rim == "hypo_halo":
        wh = float(rng.uniform(0.25, 0.7))
        E_in = E_in * (1.0 - rs * np.exp(-(((dist + wh) / wh) ** 2)))
        signs.append("hypoechoic_rim")
    elif rim == "irregular_echogenic":
        th = (0.4 + 1.6 * np.abs(smooth_curve(rng, N_ANGLES, 7))).astype(np.float32)
        rimp = np.exp(-((np.clip(dist, 0, None) / th[tidx]) ** 2)) * outside
        Eb *= 1.0 + rs * rimp
        signs.append("irregular_echogenic_rim")

    # ---- composite
    m1 = 1.0 - m
    Eb[...] = Eb * m1 + E_in * m
    Cb[...] = Cb * m1 + C_in * m
    A_delta = (m * (A_in - Ab)).astype(np.float32)
    # lateral edge shadows: near-vertical walls; compounding weakens them
    es = float(post.get("edge_shadow", 0.0)) * (0.6 if compounding else 1.0)
    ew_src = np.maximum(les.ew_table[tidx], 0.5)
    edge_src = (es * (1.0 / np.cosh(np.clip(dist / ew_src, -10, 10)) ** 2) * les.nx_table[tidx] ** 4).astype(np.float32)
    if es > 0.05:
        signs.append("lateral_edge_shadows")
    cap_db = float(post.get("cap_db", 9.0)) * (0.8 if compounding else 1.0)
    if float(post["alpha"]) < 0.4:
        signs.append("posterior_enhancement")
    if calc and calc != "phlebolith":
        signs.append("posterior_shadow")

    return Scene(
        px_mm=px,
        depth_mm=depth,
        E=E,
        C=C,
        A=A,
        A_delta=A_delta,
        edge_src=edge_src,
        lesion=les,
        skin_px=skin_mm / px,
        dermis_px=derm_mm / px,
        fascia_px=fascia_mm / px,
        bone_px=None if bone_mm is None else bone_mm / px,
        enhancement_cap_db=cap_db,
        calc_foci_mm=foci,
        signs=sorted(set(signs)),
        layer=layer,
    )


def _draw_nerve_tails(
    E: np.ndarray,
    C: np.ndarray,
    les: LesionGeom,
    zc: np.ndarray,
    xs: np.ndarray,
    px: float,
    strength: float,
    rng: np.random.Generator,
) -> None:
    """Entering/exiting nerve along the long axis: hypoechoic core, echogenic epineurium."""
    h, w = E.shape
    slope = np.tan(les.tilt) + rng.normal(0.0, 0.03)
    zn = les.cz + slope * (xs - les.cx) + 0.25 * smooth_curve(rng, w, 4)
    reach = les.half_w + float(rng.uniform(4.0, 25.0))
    along = np.abs(xs - les.cx)
    vis = np.clip((reach - along) / 2.0, 0.0, 1.0)
    rad = float(rng.uniform(0.6, 1.3)) * np.clip(1.0 + 0.6 * np.clip(1 - (along - les.half_w) / 3.0, 0, 1), 1, 1.6)
    lo = max(0, int((zn.min() - 3.0) / px))
    hi = min(h, int((zn.max() + 3.0) / px) + 1)
    dz = np.abs(zc[lo:hi] - zn[None, :]) / rad[None, :]
    core = np.clip(1.2 - dz, 0.0, 1.0) * vis[None, :]
    wall = np.exp(-(((dz - 1.0) * rad[None, :] / 0.15) ** 2)) * vis[None, :]
    E[lo:hi] = E[lo:hi] * (1.0 - 0.55 * strength * core) + 2.0 * strength * wall
    C[lo:hi] = np.maximum(C[lo:hi], 0.3 * wall)


def rho_at(les: LesionGeom, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Normalised radius (1 on the boundary) of points (x, z) in mm."""
    dx, dz = np.asarray(x) - les.cx, np.asarray(z) - les.cz
    ct, st = np.cos(les.tilt), np.sin(les.tilt)
    un = (dx * ct + dz * st) / les.a
    vn = (dz * ct - dx * st) / les.b
    th = np.arctan2(vn, un)
    idx = (((th + np.pi) / (2 * np.pi)) * N_ANGLES).astype(np.int64) % N_ANGLES
    return np.hypot(un, vn) / les.r_table[idx]
