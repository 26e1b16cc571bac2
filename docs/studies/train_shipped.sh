#!/usr/bin/env bash
# The shipped pursuit policy (issue 14), in three stages that each resume when killed:
#  1. the HSTNN recipe of config/train.yaml (adapt + select + restore, 1,200 episodes);
#  2. a fine-tune of stage 1 (the restoration again: 800 steps, 4 new DAgger rounds of
#     100 episodes on top of stage 1's) with the per-frame event floor on
#     (policy.event_floor=quantile) and the training ranges taken up to the held-out
#     shifts (env.train_ranges=to_the_edge);
#  3. the same fine-tune once more, from stage 2, on the episodes of stages 1 and 2.
# Usage: docs/studies/train_shipped.sh [RUN_DIR] [OUT] [HSC_TRAIN_ARGS...]
#   e.g. ... runs/seed1 runs/seed1/policy.safetensors --set seed=1 --threads 1
#   (the extra arguments go to all three calls; STAGE1="--set hstnn.adapt_steps=3200 ..."
#   adds arguments to stage 1 only)
set -euo pipefail
RUN=${1:-runs/shipped}
OUT=${2:-hybrid_snn_control/policies/pursuit_default.safetensors}
EXTRA=("${@:3}")
read -r -a STAGE1_EXTRA <<< "${STAGE1:-}"
resume() { if [ -d "$1" ] && [ -n "$(ls -A "$1")" ]; then echo --resume; fi; }
FINETUNE=(--config config/train.yaml --pipeline finetune
  --set env.train_ranges=to_the_edge --set policy.event_floor=quantile
  --set hstnn.restore_steps=800 --set restore_iterations=4 --set hstnn.restore_lr=0.001)
hsc train --config config/train.yaml "${EXTRA[@]}" "${STAGE1_EXTRA[@]}" --run-dir "$RUN/hstnn" \
  --out "$RUN/hstnn/policy.safetensors" $(resume "$RUN/hstnn")
hsc train "${FINETUNE[@]}" "${EXTRA[@]}" --init "$RUN/hstnn/policy.safetensors" --data "$RUN/hstnn" \
  --run-dir "$RUN/finetune1" --out "$RUN/finetune1/policy.safetensors" \
  $(resume "$RUN/finetune1")
hsc train "${FINETUNE[@]}" "${EXTRA[@]}" --init "$RUN/finetune1/policy.safetensors" \
  --data "$RUN/hstnn" "$RUN/finetune1" \
  --run-dir "$RUN/finetune2" --out "$OUT" $(resume "$RUN/finetune2")
