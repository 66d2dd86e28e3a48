"""Record an ablation in a weight set's manifest and model card.

Each arm is a weight set trained with ``python -m softmass_core train`` (its
manifest holds the measured AUCs and the command that made it).  This script
copies their validation / test AUCs into ``manifest["ablation"]`` of the
target set and rewrites its model card; it trains and evaluates nothing.

    python research/ablation.py --out weights/phantom \\
        --description "..." \\
        --arm "random init, multi-task 40 epochs=runs/abl_scratch/ws" \\
        --arm "BUSI backbone, multi-task 40 epochs (1.0.0)=runs/abl_busi40/ws"
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from softmass_core.weights.card_data import cohort_order, task_auc  # noqa: E402
from softmass_core.weights.modelcard import update_manifest  # noqa: E402


def ablation_arm(name: str, manifest: Mapping[str, Any], cohorts: Sequence[str] | None = None) -> dict[str, Any]:
    """One ablation row from a trained weight set's manifest: AUC per cohort and task, and its command.

    Tasks are ``dlm1`` and the subtype names of DLM-2 where the set has them.
    """
    per_cohort = (manifest.get("metrics") or {}).get("cohorts") or {}
    auc: dict[str, dict[str, float | None]] = {}
    for cohort in cohort_order(list(cohorts or per_cohort)):
        entry = per_cohort.get(cohort)
        if not entry:
            continue
        tasks = (["dlm1"] if entry.get("dlm1") else []) + list(entry.get("dlm2") or {})
        auc[cohort] = {t: (task_auc(entry, t)[0] or {}).get("value") for t in tasks}
    out: dict[str, Any] = {"name": name, "weight_set": f"{manifest.get('id')} {manifest.get('version', '')}".strip()}
    out["auc"] = auc
    reproduce = ((manifest.get("training") or {}).get("reproduce") or "").strip().splitlines()
    if reproduce:
        out["command"] = reproduce[-1]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="weight-set folder whose manifest gets the ablation section")
    ap.add_argument("--arm", action="append", required=True, help="NAME=FOLDER (a trained weight set), in order")
    ap.add_argument("--cohorts", default="validation,test_a,test_b")
    ap.add_argument("--description", default="")
    args = ap.parse_args(argv)
    arms = []
    for spec in args.arm:
        name, sep, folder = spec.rpartition("=")
        if not sep or not name:
            print(f"--arm {spec!r}: write NAME=FOLDER", file=sys.stderr)
            return 2
        path = Path(folder) / "manifest.json"
        if not path.is_file():
            print(f"--arm {name!r}: {path} does not exist", file=sys.stderr)
            return 2
        arms.append(ablation_arm(name, json.loads(path.read_text()), args.cohorts.split(",")))
    section = {"description": args.description, "arms": arms}
    update_manifest(args.out, lambda manifest: manifest.__setitem__("ablation", section))
    print(f"ablation with {len(arms)} arms written to {Path(args.out) / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
