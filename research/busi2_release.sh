#!/usr/bin/env bash
# busi 2.x from the cross-validation fold models (docs/busi-2.0-protocol.md), as it was made:
#   bash research/busi2_release.sh RECIPE_DIR OUT                                  # 2.0.0 (lite0, letterbox)
#   VERSION=2.1.0 RESIZE=context bash research/busi2_release.sh RECIPE_DIR OUT     # 2.1.0 (round 3)
# RECIPE_DIR: research/busi_cv.py's output for the winning recipe (fold0..2.safetensors); OUT: a new folder.
# Needs data/busi/cohort.csv (python -m softmass_core busi-cohort) and BUSI's labels.csv and masks.
set -euo pipefail
RUN="$1"; OUT="$2"
BUSI="${BUSI:-/work/shared/datasets/busi}"
PY="${PY:-.venv/bin/python}"
VERSION="${VERSION:-2.0.0}"
RESIZE="${RESIZE:-pad}"
$PY -m softmass_core pack --out "$OUT" --id busi --version "$VERSION" --data-kind breast_ultrasound \
    --arch tf_efficientnet_lite0 --input 160x160 --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 --resize-mode "$RESIZE" \
    --model "dlm1=$RUN/fold0.safetensors,$RUN/fold1.safetensors,$RUN/fold2.safetensors" --dtype float16 \
    --description "DLM-1 only: an ensemble of three ImageNet-pretrained EfficientNet-Lite0 fold models fine-tuned on public breast ultrasound (BUSI). Not soft-tissue." \
    --quiet
# thresholds, operating points, temperature, interval, input check and image digests, on the mirrored view
$PY -m softmass_core retune --weights "$OUT" --cohort data/busi/cohort.csv --tta hflip --input-check-train training --quiet
$PY research/cam_localisation.py --weights "$OUT" --cohort data/busi/cohort.csv --masks "$BUSI/masks" \
    --layers stages.-1,stages.-2 --out "$OUT.cam.json"
$PY research/roi_margin.py --weights "$OUT" --cohort data/busi/cohort.csv --labels "$BUSI/labels.csv" \
    --out "$OUT.margins.json"
