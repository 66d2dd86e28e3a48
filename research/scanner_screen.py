"""Take hospital 3's shift apart: which of its differences costs a weight set AUC?

The validation patients are re-scanned (``phantom --rescan-hospital``) on
several versions of one simulated hospital: its plain scanner (the make-specific
processing switched off and ROIs drawn with hospital 1's margins), the plain
scanner plus one difference at a time, and the hospital as it ships.  Each
version is scored with the weight set and compared with the first scan by the
paired DeLong test, as ``python -m softmass_core shift`` does.

    python research/scanner_screen.py --weights weights/phantom \\
        --original data/phantom/cohort.csv --out runs/screen_h3

Images go to ``--out/<arm>/``; the table is printed (``--json`` for JSON) and
written to ``--out/screen.json``.  Nothing in the weight set is changed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from softmass_core.errors import SoftmassError  # noqa: E402


def arms(hospital: int) -> list[tuple[str, dict]]:
    """(name, scanner field changes) per arm; the last arm is the hospital as it ships."""
    from softmass_core.data.phantom.scanner import HOSPITALS, Scanner

    shipped = HOSPITALS[hospital]
    default = {f: Scanner.__dataclass_fields__[f].default for f in ("compound_deg", "line_pitch", "edge_enhance")}
    plain = {**default, "looks": 1, "roi_margin": HOSPITALS[1].roi_margin}
    out = [("plain scanner", plain)]
    if shipped.compound_deg > 0:
        out.append(("+ steered compounding", {**plain, "looks": shipped.looks, "compound_deg": shipped.compound_deg}))
    if shipped.line_pitch > 1:
        out.append(("+ coarse line density", {**plain, "line_pitch": shipped.line_pitch}))
    if shipped.edge_enhance > 0:
        out.append(("+ edge enhancement", {**plain, "edge_enhance": shipped.edge_enhance}))
    if shipped.roi_margin != HOSPITALS[1].roi_margin:
        out.append(("+ tighter ROIs", {**plain, "roi_margin": shipped.roi_margin}))
    out.append(("as shipped", {}))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="weight-set folder")
    ap.add_argument("--original", required=True, help="cohort CSV holding the first scans (hospital 1)")
    ap.add_argument("--cohort", default="validation", help="cohort of --original to re-scan")
    ap.add_argument("--hospital", type=int, default=3, help="hospital whose differences are screened")
    ap.add_argument("--seed", type=int, default=2023, help="seed the original cohorts were generated with")
    ap.add_argument("--scale", type=float, default=1.0, help="scale the original cohorts were generated with")
    ap.add_argument("--out", required=True, help="folder for the re-scanned images and screen.json")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except SoftmassError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from softmass_core.cohorts.cohort import read_cohort
    from softmass_core.cohorts.evaluate import predict_cohort
    from softmass_core.cohorts.shift import paired_shift, paired_subset
    from softmass_core.data.phantom import scanner
    from softmass_core.data.phantom.cohorts import generate_cohorts
    from softmass_core.inference.cascade import Cascade
    from softmass_core.weights.weight_set import WeightSet

    shipped = scanner.get_scanner(args.hospital)
    cascade = Cascade(WeightSet.load(args.weights))
    original = read_cohort(args.original).subset([args.cohort])
    out = Path(args.out)
    results = []
    pred_o = None
    try:
        for k, (name, changes) in enumerate(arms(args.hospital)):
            t0 = time.perf_counter()
            scanner.HOSPITALS[args.hospital] = replace(shipped, **changes)
            csv = generate_cohorts(
                out / f"arm{k}",
                seed=args.seed,
                scale=args.scale,
                cohorts=[args.cohort],
                rescan_hospital=args.hospital,
            )
            rescan = read_cohort(csv)
            if pred_o is None:
                pred_o = predict_cohort(cascade, paired_subset(original, rescan))
            rows = paired_shift(pred_o, predict_cohort(cascade, rescan))
            results.append({"arm": name, "changes": dict(changes), "rows": rows})
            print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    finally:
        scanner.HOSPITALS[args.hospital] = shipped
    doc = {"weights": args.weights, "hospital": args.hospital, "cohort": args.cohort, "arms": results}
    (out / "screen.json").write_text(json.dumps(doc, indent=1, default=list))
    if args.json:
        print(json.dumps(doc, indent=1, default=list))
        return 0
    tasks = [r["task"] for r in results[0]["rows"]]
    print(f"AUC change (re-scan on hospital {args.hospital} minus first scan), {args.cohort} patients")
    print(f"{'arm':<24}" + "".join(f"{t[:12]:>13}" for t in tasks))
    for res in results:
        print(f"{res['arm']:<24}" + "".join(f"{r['difference']:>+13.3f}" for r in res["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
