"""How often a shipped weight set's input check flags cases of each kind, end to end through the cascade.

Counts the cases the set calls "unlike the training data" (any image flagged,
plausibility checks included) in: cohorts of another domain, fresh
in-distribution cases (a seed the set never saw), and non-ultrasound pictures
put in the grayscale and in the CDFI slot.  The pictures are
``input_check_eval.pictures()``.

    python research/input_check_flags.py --weights weights/phantom \\
        --set busi=data/busi/cohort.csv:validation,test_internal --set fresh=/tmp/fresh/cohort.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from input_check_eval import pictures  # noqa: E402

from softmass_core.cohorts.cohort import read_cohort  # noqa: E402
from softmass_core.inference.cascade import Cascade, CaseImages  # noqa: E402
from softmass_core.io.images import load_image  # noqa: E402
from softmass_core.weights.weight_set import WeightSet  # noqa: E402


def flagged(cascade: Cascade, cases: list[CaseImages]) -> int:
    n = 0
    for i in range(0, len(cases), 16):
        batch = [cascade.prepare(c) for c in cases[i : i + 16]]
        n += sum(bool(r.input_check and r.input_check.out_of_distribution) for r in cascade.run_batch(batch))
    return n


def cohort_cases(spec: str) -> list[CaseImages]:
    csv, _, names = spec.partition(":")
    cohort = read_cohort(csv).subset([c for c in names.split(",") if c] or None)
    out = []
    for row in cohort.rows:
        imgs = {m: load_image(p).rgb for m, p in row.paths.items()}
        out.append(CaseImages(gray=imgs.get("gray"), cdfi=imgs.get("cdfi"),
                              gray_roi=row.rois.get("gray"), cdfi_roi=row.rois.get("cdfi")))  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--set", action="append", default=[], help="NAME=CSV[:cohort,cohort]")
    args = ap.parse_args()
    cascade = Cascade(WeightSet.load(args.weights))
    rows = []
    for item in args.set:
        name, _, spec = item.partition("=")
        cases = cohort_cases(spec)
        rows.append((name, flagged(cascade, cases), len(cases)))
    pics = list(pictures().values())
    rows.append(("pictures as B-mode", flagged(cascade, [CaseImages(gray=p) for p in pics]), len(pics)))
    rows.append(("pictures as CDFI", flagged(cascade, [CaseImages(cdfi=p) for p in pics]), len(pics)))
    print(f"| cases ({WeightSet.load(args.weights).id}) | flagged | n | share |\n|---|---|---|---|")
    for name, k, n in rows:
        print(f"| {name} | {k} | {n} | {k / n:.1%} |")


if __name__ == "__main__":
    main()
