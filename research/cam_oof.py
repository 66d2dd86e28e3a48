"""Grad-CAM localisation out of fold: each cross-validation fold model on the training cases it did not see.

For a ``research/busi_cv.py`` run (``fold<k>.safetensors`` + ``fold<k>.json``), every fold model is packed into a
temporary one-model weight set (the run's architecture, input size and resize mode, the shipped set's
``hflip`` view) and :func:`cam_localisation.measure` scores its Grad-CAM on the fold's held-out ``training`` cases
against BUSI's lesion masks.  The pooled figures are case-weighted means (energy) and sums (hits) over the folds, so
they are exactly what one pass over all out-of-fold cases gives.  ``validation`` and ``test_internal`` are not read:
this is what the busi protocol's round 3 chooses on.

Usage (repository root)::

    python research/cam_oof.py --run runs/busi_cv2/lite0 --resize-mode pad [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cam_localisation import measure  # noqa: E402

from softmass_core.weights.weight_set import WeightSet  # noqa: E402

POOLED_MEANS = ("energy_inside", "border_energy", "hit_rate")
POOLED_SUMS = ("n", "hits", "hits_exact", "max_in_border_band")


def pool(per_fold: list[dict], index: int = 0) -> dict:
    """Case-weighted means and sums over the folds of :func:`measure`'s row ``index`` (0: the shipped layer)."""
    rows = [f["rows"][index] for f in per_fold]
    n = sum(r["n"] for r in rows)
    out = {k: sum(r[k] for r in rows) for k in POOLED_SUMS}
    out.update({k: sum(r[k] * r["n"] for r in rows) / n for k in POOLED_MEANS})
    return out


def occlusion_row(result: dict) -> int | None:
    """Index of the occlusion row in :func:`measure`'s rows, None when it was not measured."""
    return next((i for i, r in enumerate(result["rows"]) if r["name"].startswith("Occlusion")), None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, type=Path, help="a research/busi_cv.py output folder")
    ap.add_argument("--resize-mode", required=True, choices=("pad", "context", "stretch"))
    ap.add_argument("--arch", default="tf_efficientnet_lite0")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--cohort", default="data/busi/cohort.csv")
    ap.add_argument("--masks", default="/work/shared/datasets/busi/masks")
    ap.add_argument("--layer", default="stages.-1")
    ap.add_argument("--occlusion", action="store_true", help="also measure the occlusion map (round 3b)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    summary = json.loads((args.run / "summary.json").read_text())
    per_fold = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(summary["folds"]):
            folder = Path(tmp) / f"fold{k}"
            subprocess.run(
                [sys.executable, "-m", "softmass_core", "pack", "--out", str(folder), "--id", f"fold{k}",
                 "--arch", args.arch, "--input", f"{args.size}x{args.size}", "--mean", "0.5,0.5,0.5",
                 "--std", "0.5,0.5,0.5", "--resize-mode", args.resize_mode, "--data-kind", "breast_ultrasound",
                 "--model", f"dlm1={args.run / f'fold{k}.safetensors'}", "--quiet"],
                check=True,
            )  # fmt: skip
            ws = WeightSet.load(folder)
            ws = WeightSet(replace(ws.manifest, tta=("hflip",)))
            cases = json.loads((args.run / f"fold{k}.json").read_text())["case_ids"]
            res = measure(ws, args.cohort, args.masks, cohort="training", layers=[args.layer], tolerance=15.0,
                          case_ids=cases, occlusion=args.occlusion)  # fmt: skip
            per_fold.append(res)
            print(f"fold {k}: {json.dumps(res['rows'][0])}", file=sys.stderr, flush=True)
    out = {
        "run": str(args.run), "resize_mode": args.resize_mode, "layer": args.layer,
        "pooled": pool(per_fold), "folds": [f["rows"][0] for f in per_fold],
        **({"pooled_occlusion": pool(per_fold, occ), "folds_occlusion": [f["rows"][occ] for f in per_fold]}
           if (occ := occlusion_row(per_fold[0])) is not None else {}),
        "energy_in_padding": [f["shipped_cam_energy_in_padding"] for f in per_fold],
        "command": "python research/cam_oof.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }  # fmt: skip
    print(json.dumps(out, indent=2))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
