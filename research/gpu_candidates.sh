#!/usr/bin/env bash
# Train candidate `phantom` weight sets side by side on one CUDA GPU, pick the
# one with the highest mean validation AUC (case score, the set's own
# test-time views), and pack it for the trip back.
#
#   OUT=/some/folder BUDGET=300 bash research/gpu_candidates.sh NAME:WxH:SEED [NAME:WxH:SEED ...]
#
# Dry run on a CPU: DEVICE=cpu SCALE=0.05 BUDGET=5 ... with a small WxH.
#
# Timing on one H200 (2026-11-27): three candidates side by side, about 2.3 s
# per pretraining epoch each; scoring a set on validation afterwards takes
# about 20 s (image decoding on the CPU), packing 10 s.  Give the call a limit
# of at least HARD + 25 s per set scored + 30 s, or nothing comes back.
#
# BUDGET is each candidate's pretraining time limit in seconds (the schedule is
# fitted to it after two epochs, see `train --pretrain-time-limit`).  The
# cohort is generated here with the shipped seed; only training and validation
# are needed, so the test cohorts are never generated, scored or looked at.
# Everything but the winning set goes into $OUT/logs.tgz: every candidate's
# manifest, training state (per-epoch history), log, and its validation
# evaluation, plus the generated images' sha256 so the cohort can be compared
# with one generated elsewhere.
set -u
OUT=${OUT:?set OUT to the output folder}
BUDGET=${BUDGET:-300}
HARD=${HARD:-460}  # seconds after which unfinished candidates are stopped
DEVICE=${DEVICE:-cuda}
SCALE=${SCALE:-1}  # < 1 only for a dry run of this script
WORK=${WORK:-runs/gpu}
DATA=${DATA:-data/phantom}
mkdir -p "$WORK"
T0=$(date +%s)
stamp() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$WORK/driver.log"; }

stamp "generating the training and validation cohorts"
python3 -m softmass_core phantom --out "$DATA" --cohorts training,validation --scale "$SCALE" --workers "$(nproc)" \
  >"$WORK/phantom.log" 2>&1 || { stamp "phantom failed"; tail -5 "$WORK/phantom.log"; exit 1; }
(cd "$DATA" && sha256sum cohort.csv && find images -type f | sort | xargs sha256sum) >"$WORK/phantom_sha256.txt"
stamp "cohort ready: $(($(wc -l <"$DATA/cohort.csv") - 1)) cases"

# The starting point: busi 1.x's DLM-1 (convnext_atto), no longer shipped since busi 2.0.0 (an EfficientNet
# ensemble); it is read from the git history unless INIT_FILE names a copy.
INIT_FILE="${INIT_FILE:-$WORK/busi-1.1.0-dlm1.safetensors}"
mkdir -p "$(dirname "$INIT_FILE")"
[ -f "$INIT_FILE" ] || git show 0f983a0:weights/busi/dlm1.safetensors >"$INIT_FILE"

pids=()
for spec in "$@"; do
  IFS=: read -r name size seed <<<"$spec"
  python3 -m softmass_core train --cohort "$DATA/cohort.csv" --out "$WORK/$name/set" --id phantom \
    --version "gpu-$name" --data-kind simulated --models dlm1,sm1,sm2,sm3,sm4,sm5 --arch convnext_atto \
    --size "$size" --resize-mode stretch --init "checkpoint:$INIT_FILE" \
    --pretrain-epochs 160 --pretrain-patience 40 --pretrain-time-limit "$BUDGET" --epochs 3 --patience 2 \
    --lr 2e-3 --finetune-lr 3e-4 --batch-size 32 --seed "$seed" --device "$DEVICE" --no-evaluate \
    --work-dir "$WORK/$name" \
    --description 'Full cascade (DLM-1 + SM-1..SM-5) trained on simulated superficial soft-tissue ultrasound (softmass phantom, hospital 1). Not real patients.' \
    >"$WORK/$name.log" 2>&1 &
  pids+=($!)
  stamp "started $name ($size, seed $seed) as pid $!"
done
while :; do
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  if [ $(($(date +%s) - T0)) -gt "$HARD" ]; then
    stamp "hard limit: stopping unfinished candidates"
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    break
  fi
  sleep 5
done
wait
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv >"$WORK/gpu.txt" 2>&1

stamp "validation scores (cascade on $DEVICE, the set's own views)"
COMPARE=${COMPARE-shipped:-:-}  # COMPARE= (empty) skips scoring weights/phantom
for spec in "$@" $COMPARE; do
  IFS=: read -r name _ _ <<<"$spec"
  set_dir="$WORK/$name/set"
  [ "$name" = shipped ] && set_dir=weights/phantom
  [ -f "$set_dir/manifest.json" ] || { stamp "$name: no weight set"; continue; }
  python3 -m softmass_core evaluate --weights "$set_dir" --cohort "$DATA/cohort.csv" --cohorts validation \
    --device "$DEVICE" --n-boot 200 --quiet --json >"$WORK/$name.val.json" 2>"$WORK/$name.val.err" \
    || stamp "$name: evaluation failed"
done
python3 - "$WORK" "$@" <<'EOF' | tee "$WORK/selection.txt"
import json, sys
from research.ablation import ablation_arm
work, specs = sys.argv[1], sys.argv[2:]
rows = []
for spec in [*specs, "shipped:-:-"]:
    name = spec.split(":")[0]
    try:
        metrics = json.load(open(f"{work}/{name}.val.json"))  # {"cohorts": ...}, as a manifest's "metrics"
    except (OSError, ValueError):
        continue
    aucs = ablation_arm(name, {"metrics": metrics}, ["validation"])["auc"].get("validation")
    if aucs:
        rows.append((sum(aucs.values()) / len(aucs), name, aucs))
for mean, name, aucs in sorted(rows, reverse=True):
    print(f"{name:10s} mean {mean:.4f} " + " ".join(f"{m} {a:.3f}" for m, a in sorted(aucs.items())))
best = [r for r in sorted(rows, reverse=True) if r[1] != "shipped"]
print("WINNER", best[0][1] if best else "none")
EOF
winner=$(awk '/^WINNER/ {print $2}' "$WORK/selection.txt")
if [ -n "$winner" ] && [ "$winner" != none ]; then
  tar -C "$WORK/$winner" -cf - set | split -b 15m - "$OUT/winner.tar.part-"
  stamp "packed $winner"
fi
tar -czf "$OUT/logs.tgz" --exclude='*.safetensors' "$WORK"
stamp "done"
