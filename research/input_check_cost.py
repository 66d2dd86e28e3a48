"""What the input check costs next to the cascade (issue 17: at most 5 %).

    python research/input_check_cost.py --weights /tmp/ood/phantom --cohort data/phantom/cohort.csv

Times, on one case (grayscale + CDFI) of the cohort, warm, median of ``--repeats`` runs:
the cascade with the input check (its set as given) and the same set with the check
removed from the manifest, and the check alone (plausibility + score, from features
the forward pass already made).  Prints the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from softmass_core.cohorts.cohort import read_cohort  # noqa: E402
from softmass_core.inference.cascade import Cascade, CaseImages  # noqa: E402
from softmass_core.inference.input_check import check_images  # noqa: E402
from softmass_core.io.images import load_image  # noqa: E402
from softmass_core.weights.weight_set import WeightSet  # noqa: E402


def median_time(fn, repeats: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--cohort", required=True)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    ws = WeightSet.load(args.weights)
    if ws.input_stats is None:
        raise SystemExit(f"{args.weights} has no input check: fit one first (retune).")
    row = read_cohort(args.cohort).rows[0]
    imgs = {m: load_image(p).rgb for m, p in row.paths.items()}
    case = CaseImages(**imgs, **{f"{m}_roi": row.rois.get(m) for m in imgs})
    with_check = Cascade(ws)
    bare_ws = WeightSet(replace(ws.manifest, input_check=None))
    without = Cascade(bare_ws)
    prepared = with_check.prepare(case)
    result = with_check.run_prepared(prepared)
    feats = {m: with_check.weight_set.input_stats.mean[m] for m in prepared}  # any vector of the right size
    t_with = median_time(lambda: with_check.run_prepared(prepared), args.repeats)
    t_without = median_time(lambda: without.run_prepared(prepared), args.repeats)
    t_check = median_time(lambda: check_images(ws.input_stats, prepared, feats, ws.input_spec), args.repeats)
    print(f"case {row.case_id}: {result.diagnosis}, input check {result.input_check.to_dict()['out_of_distribution']}")
    print(f"cascade with the check {t_with * 1000:.1f} ms, without {t_without * 1000:.1f} ms "
          f"(ratio {t_with / t_without:.3f}); the check alone {t_check * 1000:.2f} ms "
          f"= {t_check / t_without:.1%} of the cascade")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
