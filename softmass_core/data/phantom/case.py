"""One simulated case: a grayscale B-mode screenshot and a CDFI screenshot with ROIs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from softmass_core.data.phantom.bmode import form_bmode
from softmass_core.data.phantom.classes import PHANTOM_LABELS, p_swap_for, sample_age_sex, sample_lesion
from softmass_core.data.phantom.display import compose, make_mapping, roi_around
from softmass_core.data.phantom.doppler import render_cdfi
from softmass_core.data.phantom.scanner import get_scanner, sample_settings
from softmass_core.data.phantom.scene import build_scene
from softmass_core.errors import SoftmassError
from softmass_core.io.roi import Roi

#: ``difficulty`` used unless told otherwise: p_swap = 0.12, as prototyped.
DEFAULT_DIFFICULTY = 0.2


@dataclass(frozen=True)
class PhantomCase:
    """A simulated case.  Images are (H, W, 3) uint8; ROIs are :class:`~softmass_core.io.roi.Roi` in image pixels."""

    case_id: str
    label: str
    hospital: int
    gray: np.ndarray
    cdfi: np.ndarray
    gray_roi: Roi
    cdfi_roi: Roi
    age: int
    sex: str
    meta: dict = field(default_factory=dict)


def _check(label: str, difficulty: float) -> None:
    if label not in PHANTOM_LABELS:
        raise SoftmassError(f"Cannot simulate label {label!r}: use one of {', '.join(PHANTOM_LABELS)}.")
    if not (0.0 <= float(difficulty) <= 1.0):
        raise SoftmassError(f"difficulty must lie in [0, 1], got {difficulty!r}.")


def generate_case(
    label: str,
    *,
    hospital: int = 1,
    seed: int = 0,
    difficulty: float = DEFAULT_DIFFICULTY,
    case_id: str | None = None,
    anatomy_hospital: int | None = None,
) -> PhantomCase:
    """Simulate one case of class ``label`` as scanned at ``hospital`` (1, 2 or 3).

    The result depends only on (label, hospital, seed, difficulty, anatomy_hospital).

    ``anatomy_hospital`` re-scans a patient: the lesion, its surroundings, age
    and sex are those the same seed gives at that hospital, while the scanner,
    the operator's settings, the speckle and the screen layout are
    ``hospital``'s.  Left out, it is ``hospital`` (an ordinary case).

    Example:
        >>> case = generate_case("lipoma", hospital=1, seed=3)
        >>> case.gray.shape, case.gray.dtype.name
        ((352, 544, 3), 'uint8')
    """
    _check(label, difficulty)
    scanner = get_scanner(hospital)
    root = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, PHANTOM_LABELS.index(label), int(hospital)])
    r_par, r_scene, r_bmode, r_cdfi, r_disp, r_set = (np.random.default_rng(s) for s in root.spawn(6))
    if anatomy_hospital is not None and int(anatomy_hospital) != int(hospital):
        get_scanner(anatomy_hospital)  # validates the number
        patient = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, PHANTOM_LABELS.index(label), int(anatomy_hospital)])
        r_par, r_scene = (np.random.default_rng(s) for s in patient.spawn(2))

    params = sample_lesion(label, r_par, difficulty)
    age, sex = sample_age_sex(label, r_par)
    settings = sample_settings(scanner, r_set)
    scene = build_scene(params, r_scene, scanner.sim_hw, compounding=scanner.looks > 1)
    bm = form_bmode(scene, settings, r_bmode)
    dop = render_cdfi(
        scene, bm, settings, str(params.vascular["pattern"]), float(params.vascular["speed_cm_s"]), r_cdfi
    )

    px = scene.px_mm
    x0, z0, x1, z1 = scene.lesion.tight_box_mm
    les = scene.lesion
    gray_map = make_mapping(settings, scanner.sim_hw)
    cdfi_map = make_mapping(settings, scanner.sim_hw, dop.shift_px)

    def lesion_box(mp):  # canvas (x0, y0, x1, y1) of the lesion, clipped to the image area
        sy, sx = scanner.sector_yx
        ax, ay = mp.point(z0 / px, x0 / px)
        bx, by = mp.point(z1 / px, x1 / px)
        lim_x, lim_y = sx + scanner.sector_hw[1], sy + scanner.sector_hw[0]
        return (max(ax, sx), max(ay, sy), min(bx, lim_x), min(by, lim_y))

    gbox, cbox = lesion_box(gray_map), lesion_box(cdfi_map)
    gray_roi = roi_around(gbox, settings, r_disp)
    cdfi_roi = roi_around(cbox, settings, r_disp)
    centre_g = gray_map.point(les.cz / px, les.cx / px)
    centre_c = cdfi_map.point(les.cz / px, les.cx / px)

    grey3 = np.repeat(bm.grey[:, :, None], 3, axis=2)
    gray = compose(grey3, settings, r_disp, roi=gray_roi, focus_frac=settings.focus_frac, info="B")
    br0, br1, bc0, bc1 = dop.box_px
    shear = np.tan(dop.steer) * (br1 - br0)
    corners = [
        cdfi_map.point(br0, bc0),
        cdfi_map.point(br0, bc1),
        cdfi_map.point(br1, bc1 + shear),
        cdfi_map.point(br1, bc0 + shear),
    ]
    cdfi = compose(
        dop.rgb, settings, r_disp, roi=cdfi_roi, focus_frac=settings.focus_frac, colour_box=corners, info="CF"
    )

    foci = [gray_map.point(z / px, x / px) for x, z in scene.calc_foci_mm]
    meta = {
        "params": params.as_dict(),
        "signs": list(scene.signs),
        "swapped": dict(params.swapped),
        "difficulty": float(difficulty),
        "p_swap": p_swap_for(difficulty),
        "seed": int(seed),
        "anatomy_hospital": int(hospital if anatomy_hospital is None else anatomy_hospital),
        "layer": scene.layer,
        "depth_mm": round(scene.depth_mm, 3),
        "sim_px_mm": round(px, 5),
        "gray_px_mm": round(px / gray_map.sy, 5),
        "lesion_size_mm": (round(x1 - x0, 2), round(z1 - z0, 2)),
        "lesion_center_gray": (round(centre_g[0], 2), round(centre_g[1], 2)),
        "lesion_box_gray": tuple(round(v, 2) for v in gbox),
        "lesion_center_cdfi": (round(centre_c[0], 2), round(centre_c[1], 2)),
        "lesion_box_cdfi": tuple(round(v, 2) for v in cbox),
        "calc_foci_gray": [(round(x, 2), round(y, 2)) for x, y in foci],
        "vascular_pattern": dop.pattern,
        "n_vessels": dop.n_vessels,
        "colour_fraction_lesion": round(dop.colour_fraction_lesion, 5),
        "colour_box_cdfi": [(round(x, 1), round(y, 1)) for x, y in corners],
        "settings": {
            "gain_db": round(settings.gain_db, 3),
            "dynamic_range": round(settings.dynamic_range, 3),
            "focus_frac": round(settings.focus_frac, 3),
            "nyquist": round(settings.nyquist, 3),
            "colour_gain": round(settings.colour_gain, 3),
            "steer": round(settings.steer, 3),
        },
    }
    cid = case_id if case_id is not None else f"h{hospital}-{label[:4]}-{int(seed) & 0xFFFFFFFF:010d}"
    return PhantomCase(
        case_id=cid,
        label=label,
        hospital=int(hospital),
        gray=gray,
        cdfi=cdfi,
        gray_roi=Roi(*gray_roi),
        cdfi_roi=Roi(*cdfi_roi),
        age=age,
        sex=sex,
        meta=meta,
    )
