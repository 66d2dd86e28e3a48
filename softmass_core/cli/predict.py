"""``predict``: the DLM cascade on one case, as text or JSON."""

from __future__ import annotations

import argparse

from softmass_core.cli._helpers import print_json
from softmass_core.errors import SoftmassError
from softmass_core.weights.manifest import FUSION_RULES
from softmass_core.weights.operating import POINTS

HELP = "run the DLM cascade on one case"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="weight-set folder (holds manifest.json)")
    p.add_argument("--gray", help="grayscale B-mode image (PNG, JPEG, BMP, TIFF, DICOM)")
    p.add_argument("--gray-roi", help="x0,y0,x1,y1 in image pixels (default: whole image)")
    p.add_argument("--cdfi", help="colour Doppler image")
    p.add_argument("--cdfi-roi", help="x0,y0,x1,y1 in image pixels (default: whole image)")
    p.add_argument("--fusion", choices=FUSION_RULES, help="override the manifest's fusion rule")
    p.add_argument("--threshold", type=float, help="override DLM-1's operating threshold (not with --operating-point)")
    p.add_argument(
        "--operating-point", choices=POINTS,
        help="DLM-1's operating point from the set (default balanced; rule_out/rule_in need a retuned set)",
    )  # fmt: skip
    p.add_argument("--all", action="store_true", help="run every model whatever DLM-1 says")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from softmass_core.inference.cascade import Cascade, CaseImages
    from softmass_core.inference.input_check import input_check_text
    from softmass_core.io.images import load_image
    from softmass_core.io.roi import parse_roi
    from softmass_core.weights.weight_set import WeightSet

    if not args.gray and not args.cdfi:
        raise SoftmassError("Give --gray IMG and/or --cdfi IMG.")
    ws = WeightSet.load(args.weights)
    if args.threshold is not None and args.operating_point:
        raise SoftmassError("Give --operating-point or --threshold, not both.")
    cascade = Cascade(ws, fusion_rule=args.fusion, threshold=args.threshold, operating_point=args.operating_point)
    gray = load_image(args.gray).rgb if args.gray else None
    cdfi = load_image(args.cdfi).rgb if args.cdfi else None
    case = CaseImages(gray=gray, cdfi=cdfi, gray_roi=parse_roi(args.gray_roi), cdfi_roi=parse_roi(args.cdfi_roi))
    result = cascade.run(case, run_all=args.all)
    out = result.to_dict()
    if args.json:
        print_json(out)
        return 0
    print(f"weight set   {ws.id} {ws.version}")
    for m, p in out["per_image_p_malignant"].items():
        print(f"P(malignant) {m:<5} {p:.3f}")
    print(f"P(malignant) fused {out['p_malignant']:.3f} ({out['fusion_rule']}), threshold {out['threshold']:.3f}")
    if out["sub_scores"]:
        for subtype, s in out["sub_scores"].items():
            print(f"  {subtype:<24} {s:.3f}")
    print(input_check_text(out["input_check"]))
    lo, hi = out["p_malignant_interval"]
    span = f"[{lo:.3f}, {hi:.3f}]" if out["p_malignant_interval_measured"] else "none measured for this set"
    print(f"interval     {span} at operating point {out['operating_point']['name']}")
    print(f"verdict      {out['verdict']}" + (
        f" (subtype if benign: {out['subtype_if_benign']})"
        if out["verdict"] == "indeterminate" and out["subtype_if_benign"] else ""
    ))  # fmt: skip
    print(f"diagnosis    {out['diagnosis']}")
    print(f"path         {out['stopped_because']}")
    return 0
