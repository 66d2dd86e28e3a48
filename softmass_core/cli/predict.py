"""``predict``: the DLM cascade on one case, as text or JSON."""

from __future__ import annotations

import argparse

from softmass_core.cli._helpers import print_json
from softmass_core.errors import SoftmassError
from softmass_core.weights.manifest import FUSION_RULES

HELP = "run the DLM cascade on one case"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="weight-set folder (holds manifest.json)")
    p.add_argument("--gray", help="grayscale B-mode image (PNG, JPEG, BMP, TIFF, DICOM)")
    p.add_argument("--gray-roi", help="x0,y0,x1,y1 in image pixels (default: whole image)")
    p.add_argument("--cdfi", help="colour Doppler image")
    p.add_argument("--cdfi-roi", help="x0,y0,x1,y1 in image pixels (default: whole image)")
    p.add_argument("--fusion", choices=FUSION_RULES, help="override the manifest's fusion rule")
    p.add_argument("--threshold", type=float, help="override DLM-1's operating threshold")
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
    cascade = Cascade(ws, fusion_rule=args.fusion, threshold=args.threshold)
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
    print(f"diagnosis    {out['diagnosis']}")
    print(f"path         {out['stopped_because']}")
    return 0
