#!/usr/bin/env bash
# Issue 16 (b) at full budget: one set of weights vs per-ratio models, from one trained policy.
# From BASE (a policy of the shipped recipe, with the runs whose DAgger rounds it used), six
# fine-tunes of the shipped kind (docs/studies/train_shipped.sh stage 2: 800 restoration
# steps, 4 new DAgger rounds of 100 episodes, event floor, ranges to the edge):
#   one_set   ratio sampling over 0..1 with the sandwich rule (what the shipped file is);
#   r<R>      the ratio fixed at R (no sampling, no sandwich), R in 0 0.25 0.5 0.75 1,
#             its DAgger rounds driven at R.
# Then both on the same worlds (evaluation seeds 80-82 x 16, 20 s; no training or tuning
# run used them): one_set at every ratio, each r<R> at its own ratio; nominal and flicker.
# Usage: hot_swap_full.sh NAME BASE_POLICY OUT DATA_DIR [DATA_DIR ...]
# Two jobs at a time (one per core), each resumable (a rerun skips finished ones).
set -euo pipefail
NAME=${1:?name}; BASE=${2:?base policy}; OUT=${3:?out dir}; shift 3
DATA=("$@")
mkdir -p "$OUT"
FINETUNE=(--config config/train.yaml --pipeline finetune --init "$BASE" --data "${DATA[@]}"
  --set env.train_ranges=to_the_edge --set policy.event_floor=quantile
  --set hstnn.restore_steps=800 --set restore_iterations=4 --set hstnn.restore_lr=0.001
  --threads 1 --no-progress)
RATIOS=(0 0.25 0.5 0.75 1)
train() {  # job -> one fine-tune
  local job=$1 dir="$OUT/$1" extra=()
  [ -f "$dir/policy.safetensors" ] && return 0
  if [ "$job" != one_set ]; then
    extra=(--set "hstnn.restore_ratios=[${job#r}]" --set sandwich=false)
  fi
  local resume=(); [ -d "$dir" ] && resume=(--resume)
  hsc train "${FINETUNE[@]}" "${extra[@]}" --run-dir "$dir" --out "$dir/policy.safetensors" \
    "${resume[@]}" > "$OUT/train_$job.log" 2>&1
}
evaluate() {  # shift -> one sweep of every model on that shift's worlds
  local shift=$1 models=(--model "${NAME}_one_set=$OUT/one_set/policy.safetensors")
  [ -f "$OUT/eval_$shift/sweep.json" ] && return 0
  for r in "${RATIOS[@]}"; do models+=(--model "${NAME}_per_ratio@$r=$OUT/r$r/policy.safetensors"); done
  hsc sweep "${models[@]}" --ratios "${RATIOS[@]}" --shifts "$shift" --seeds 80 81 82 \
    --episodes 16 --threads 1 --no-baselines --out "$OUT/eval_$shift" > "$OUT/eval_$shift.log" 2>&1
}
export -f train evaluate
export OUT NAME
jobs=(one_set)
for r in "${RATIOS[@]}"; do jobs+=("r$r"); done
T0=$(date +%s)
# one_set first: it is the longest (three ratios per batch)
printf '%s\n' "${jobs[@]}" | xargs -P 2 -I{} bash -c "$(declare -p FINETUNE RATIOS); train {}"
T1=$(date +%s)
printf '%s\n' nominal flicker | xargs -P 2 -I{} bash -c "$(declare -p RATIOS); evaluate {}"
T2=$(date +%s)
echo "fine-tunes $((T1 - T0)) s, evaluation $((T2 - T1)) s (two processes)"
