"""Apply round 3 of the busi protocol (docs/busi-2.0-protocol.md): does ``lite0_context`` replace ``lite0``?

Inputs, all measured out of fold on BUSI ``training`` only:
the two ``research/busi_cv.py`` runs (their ``fold<k>.json`` case scores, same folds) and the two
``research/cam_oof.py`` results (Grad-CAM localisation of each fold model on its held-out cases).

Rule, fixed before the runs: ``lite0_context`` is adopted when (a) its pooled out-of-fold AUC is not lower than
``lite0``'s by more than 0.02 (point estimate of the paired difference) and (b) both its out-of-fold pointing game
and its energy inside the lesion are higher.  Prints the figures and the decision; ``--out`` writes them as JSON.

    python research/busi_round3.py --base runs/busi_cv2/lite0 --candidate runs/busi_cv3/lite0_context \\
        --base-cam runs/busi_cv3/cam_oof_lite0.json --candidate-cam runs/busi_cv3/cam_oof_lite0_context.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from research.busi_select import cohort_labels, paired_on_shared_cases  # noqa: E402

#: Largest drop in out-of-fold AUC (paired point estimate) the candidate may show and still be adopted.
MAX_AUC_DROP = 0.02


def decide(paired: dict, base_cam: dict, cand_cam: dict) -> tuple[bool, list[str]]:
    """``(adopted, reasons)``: ``paired`` is :func:`paired_on_shared_cases` (candidate as ``a``), the cams pooled."""
    drop = -paired["auc_difference"]
    auc_ok = drop <= MAX_AUC_DROP
    b, c = base_cam["pooled"], cand_cam["pooled"]
    hits_ok = c["hits"] > b["hits"]
    energy_ok = c["energy_inside"] > b["energy_inside"]
    reasons = [
        f"(a) AUC {paired['auc_a']:.3f} vs {paired['auc_b']:.3f}: difference {paired['auc_difference']:+.3f} "
        f"[{paired['ci_low']:+.3f}, {paired['ci_high']:+.3f}], p {paired['p_value']:.3f}; "
        f"{'within' if auc_ok else 'beyond'} the allowed drop of {MAX_AUC_DROP}",
        f"(b) pointing game {c['hits']}/{c['n']} vs {b['hits']}/{b['n']}: {'higher' if hits_ok else 'not higher'}",
        f"(b) energy inside {c['energy_inside']:.3f} vs {b['energy_inside']:.3f}: "
        f"{'higher' if energy_ok else 'not higher'}",
    ]
    return auc_ok and hits_ok and energy_ok, reasons


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, type=Path)
    ap.add_argument("--candidate", required=True, type=Path)
    ap.add_argument("--base-cam", required=True, type=Path)
    ap.add_argument("--candidate-cam", required=True, type=Path)
    ap.add_argument("--cohort", default="data/busi/cohort.csv", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    paired = paired_on_shared_cases(args.candidate, args.base, cohort_labels(args.cohort))
    base_cam = json.loads(args.base_cam.read_text())
    cand_cam = json.loads(args.candidate_cam.read_text())
    adopted, reasons = decide(paired, base_cam, cand_cam)
    for r in reasons:
        print(r)
    print(f"decision: {'adopt ' + args.candidate.name if adopted else 'keep ' + args.base.name}")
    if args.out:
        out = {
            "adopted": adopted, "reasons": reasons, "paired_auc": paired,
            "cam_oof": {"base": base_cam["pooled"], "candidate": cand_cam["pooled"]},
            "base_energy_in_padding": base_cam.get("energy_in_padding"),
            "candidate_energy_in_padding": cand_cam.get("energy_in_padding"),
            "command": "python research/busi_round3.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        }  # fmt: skip
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
