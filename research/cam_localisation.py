"""Where the Grad-CAM maps of a DLM-1 sit relative to BUSI's lesion masks.

For every case of a BUSI cohort (default ``validation``): the malignant-class
Grad-CAM of ``dlm1`` as the app computes it (mapped onto the ROI crop the
model saw), the lesion mask (``masks/<class>/<case>_mask.png`` of the staged
BUSI copy, same pixels as the cohort's image) cropped to the same ROI, then
(:mod:`softmass_core.stats.localisation`):

* energy inside: the share of the map's energy inside the lesion;
* pointing game: the map's maximum inside the lesion (``--tolerance`` px, 15 as
  in Zhang et al. 2018, and exactly);
* border share: the map's energy in the outer 10 % band of the ROI, and how
  often the maximum sits there (a uniform map: 0.36 of the energy).

Baselines: a centred Gaussian blob on each ROI and the lesion's share of the
ROI area (what a uniform map scores).  Variants: ``--layers`` lists the
Grad-CAM target stages to try (``stages.-1`` is the shipped one; the last
ConvNeXt stage of a 160 x 160 input is 5 x 5 cells); ``content`` re-scales
each map to 0..1 inside the image content of the letterboxed input (the
padding excluded) instead of over the whole input.

Usage (repository root)::

    python research/cam_localisation.py --weights weights/busi --cohort data/busi/cohort.csv \\
        --masks /work/shared/datasets/busi/masks [--layers stages.-1,stages.-2] [--record]

``--record`` writes the numbers into the weight set's ``manifest.json``
(``cam_localisation``) and rewrites its model card; ``--adopt LAYER`` also
sets DLM-1's ``gradcam_target_layer`` (the maps the app shows); nothing else
changes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from softmass_core.cohorts.cohort import read_cohort  # noqa: E402
from softmass_core.inference.gradcam import compute_cams  # noqa: E402
from softmass_core.inference.occlusion import STRIDE as OCC_STRIDE  # noqa: E402
from softmass_core.inference.occlusion import WINDOW as OCC_WINDOW  # noqa: E402
from softmass_core.inference.occlusion import occlusion_maps  # noqa: E402
from softmass_core.io.images import load_image  # noqa: E402
from softmass_core.io.roi import prepare  # noqa: E402
from softmass_core.stats.localisation import border_share, energy_inside, gaussian_blob, pointing_hit  # noqa: E402
from softmass_core.weights.weight_set import WeightSet  # noqa: E402


def _mask(masks: Path, case_id: str) -> np.ndarray:
    from PIL import Image

    cls = case_id.split("_")[0]
    return np.asarray(Image.open(masks / cls / f"{case_id}_mask.png").convert("L")) > 127


def _content_rescaled(cam_input: np.ndarray, prepared) -> np.ndarray:
    """The CAM re-scaled to 0..1 over the image content only (padding excluded), mapped onto the ROI."""
    from softmass_core.io.roi import cam_to_roi

    x0, y0, x1, y1 = prepared.content_box
    inner = cam_input[y0:y1, x0:x1]
    lo, hi = float(inner.min()), float(inner.max())
    scaled = np.zeros_like(cam_input)
    scaled[y0:y1, x0:x1] = (inner - lo) / (hi - lo) if hi > lo else 0.0
    return np.clip(cam_to_roi(scaled, prepared), 0.0, 1.0)


def _row(name: str, maps: list[np.ndarray], masks: list[np.ndarray], tolerance: float) -> dict:
    e = np.array([energy_inside(h, m) for h, m in zip(maps, masks)])
    hits = [pointing_hit(h, m, tolerance=tolerance) for h, m in zip(maps, masks)]
    exact = [pointing_hit(h, m) for h, m in zip(maps, masks)]
    border = np.array([border_share(h) for h in maps])
    on_edge = []
    for h in maps:
        y, x = np.unravel_index(int(np.argmax(h)), h.shape)
        dy, dx = max(1, round(h.shape[0] * 0.1)), max(1, round(h.shape[1] * 0.1))
        on_edge.append(not (dy <= y < h.shape[0] - dy and dx <= x < h.shape[1] - dx))
    n = len(maps)
    return {
        "name": name,
        "n": n,
        "energy_inside": float(np.nanmean(e)),
        "hits": int(sum(hits)),
        "hit_rate": float(np.mean(hits)),
        "hits_exact": int(sum(exact)),
        "border_energy": float(np.nanmean(border)),
        "max_in_border_band": int(sum(on_edge)),
    }


def measure(
    weights,
    cohort_csv: str,
    masks_dir: str,
    *,
    cohort: str,
    layers: list[str],
    tolerance: float,
    case_ids=None,
    occlusion: bool = False,
) -> dict:
    """The localisation rows for ``weights`` (a folder or a loaded WeightSet) on ``cohort`` (or its ``case_ids``)."""
    ws = weights if isinstance(weights, WeightSet) else WeightSet.load(weights)
    rows = read_cohort(cohort_csv).subset([cohort]).rows
    if case_ids is not None:
        wanted = set(case_ids)
        rows = [r for r in rows if r.case_id in wanted]
    spec = ws.input_spec
    prepared, masks, cases = [], [], []
    for r in rows:
        img = load_image(r.paths["gray"])
        p = prepare(img.rgb, r.rois.get("gray"), spec)
        full = _mask(Path(masks_dir), r.case_id)
        if full.shape != img.rgb.shape[:2]:
            raise SystemExit(f"{r.case_id}: mask {full.shape} does not match the image {img.rgb.shape[:2]}")
        roi = p.roi
        crop = full[roi.y0 : roi.y1, roi.x0 : roi.x1]
        if not crop.any():
            continue
        prepared.append(p)
        masks.append(crop)
        cases.append(r.case_id)
    out_rows = []
    pad_energy = []
    for layer in layers:
        entry = replace(ws.entry("dlm1"), gradcam_target_layer=layer)
        manifest = replace(ws.manifest, models={**ws.manifest.models, "dlm1": entry})
        wsl = ws if layer == ws.entry("dlm1").gradcam_target_layer else WeightSet(manifest)
        cams = [compute_cams(wsl, "dlm1", {"gray": p})["gray"] for p in prepared]
        tag = f"Grad-CAM {layer}" + (" (shipped)" if wsl is ws else "")
        out_rows.append(_row(tag, [c.cam_roi for c in cams], masks, tolerance))
        out_rows.append(
            _row(
                f"Grad-CAM {layer}, scaled over the image content only",
                [_content_rescaled(c.cam_input, p) for c, p in zip(cams, prepared)],
                masks,
                tolerance,
            )
        )
        if wsl is ws:
            for c, p in zip(cams, prepared):
                x0, y0, x1, y1 = p.content_box
                total = float(c.cam_input.sum())
                pad_energy.append((total - float(c.cam_input[y0:y1, x0:x1].sum())) / total if total > 0 else 0.0)
    if occlusion:
        maps = [occlusion_maps(ws, "dlm1", {"gray": p})["gray"].cam_roi for p in prepared]
        out_rows.append(_row(f"Occlusion ({OCC_WINDOW} px window, stride {OCC_STRIDE})", maps, masks, tolerance))
    blobs = [gaussian_blob(*m.shape) for m in masks]
    out_rows.append(_row("centred Gaussian blob (baseline)", blobs, masks, tolerance))
    area = float(np.mean([m.mean() for m in masks]))
    padded = float(np.mean([1 - (p.content_box[2] - p.content_box[0]) * (p.content_box[3] - p.content_box[1])
                            / (spec.width * spec.height) for p in prepared]))  # fmt: skip
    return {
        "description": (
            f"DLM-1's malignant-class maps (Grad-CAM{', occlusion' if occlusion else ''}) on the {len(masks)} BUSI "
            f"'{cohort}' images (of {len(rows)}) whose "
            "lesion mask lies in the ROI, mapped onto the ROI crop the model saw. Energy inside: share of the map's "
            "energy inside the lesion mask (mean over images). Pointing game: the map's maximum inside the lesion "
            f"or within {tolerance:g} px of it. Border: energy in the outer 10% band of the ROI (a uniform map: 0.36)."
        ),
        "cohort": cohort,
        "tolerance_px": tolerance,
        "rows": out_rows,
        "lesion_area_share": area,
        "padded_input_share": padded,
        "shipped_cam_energy_in_padding": float(np.mean(pad_energy)) if pad_energy else None,
        "cases": cases,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="weights/busi")
    ap.add_argument("--cohort", default="data/busi/cohort.csv")
    ap.add_argument("--masks", default="/work/shared/datasets/busi/masks")
    ap.add_argument("--which", default="validation", help="cohort of the CSV to measure")
    ap.add_argument("--layers", default="stages.-1,stages.-2", help="Grad-CAM target stages, comma-separated")
    ap.add_argument("--occlusion", action="store_true", help="add a row for the occlusion map (minutes)")
    ap.add_argument("--tolerance", type=float, default=15.0, help="pointing-game tolerance in image pixels")
    ap.add_argument("--out", help="write the JSON here too")
    ap.add_argument("--note", action="append", default=[], help="a note for the model card (repeatable)")
    ap.add_argument("--record", action="store_true", help="write cam_localisation into the weight set's manifest")
    ap.add_argument("--adopt", metavar="LAYER", help="with --record: also make LAYER dlm1's gradcam_target_layer")
    args = ap.parse_args(argv)
    res = measure(args.weights, args.cohort, args.masks, cohort=args.which,
                  layers=args.layers.split(","), tolerance=args.tolerance, occlusion=args.occlusion)  # fmt: skip
    res["notes"] = list(args.note)
    words = list(argv if argv is not None else sys.argv[1:])
    while "--note" in words:  # the notes are in the card already; the command reproduces the numbers
        i = words.index("--note")
        del words[i : i + 2]
    res["command"] = "python research/cam_localisation.py " + shlex.join(words)
    text = json.dumps({k: v for k, v in res.items() if k != "cases"}, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    if args.record:
        from softmass_core.weights.modelcard import update_manifest

        record = {k: v for k, v in res.items() if k != "cases"}
        record["command"] = record["command"].replace(" --record", "").split(" --adopt")[0]
        if args.adopt:
            record["adopted_layer"] = args.adopt

        def edit(m: dict) -> None:
            m["cam_localisation"] = record
            if args.adopt:
                m["models"]["dlm1"]["gradcam_target_layer"] = args.adopt

        update_manifest(args.weights, edit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
