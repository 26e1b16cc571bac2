#!/usr/bin/env bash
# The powered pursuit ratio study (issue 16): trains every (seed, model) of one lane.
# Usage: pursuit_ratio_study.sh OUT_DIR LANE NLANES [SEEDS...]
#   STUDY_EXTRA="--set policy.encoder=spiking_conv" ONLY_HSTNN=1 ...: the encoder comparison
#   (the one-set-of-weights HSTNN model only, no per-ratio restorations, no baselines)
# Skips models whose policy file exists (rerun to resume; a killed run restarts its
# run-dir with --resume).  Recipe: the shipped recipe (config/train.yaml) at ~1/8 of its
# data and steps, so that 5 seeds x 4 trainings fit a 2-core afternoon.
set -euo pipefail
OUT=${1:?out dir}; LANE=${2:?lane}; NL=${3:?lanes}; shift 3
SEEDS=("$@")
[ $# -eq 0 ] && SEEDS=(0 1 2 3 4)
RECIPE=(--set bc_episodes=64 --set dagger_iterations=3 --set dagger_episodes=24
        --set restore_iterations=1 --set hstnn.adapt_steps=200 --set hstnn.restore_steps=100
        --set hstnn.checkpoint_every=25 ${STUDY_EXTRA:-})
jobs=()
for s in "${SEEDS[@]}"; do
  if [ -n "${ONLY_HSTNN:-}" ]; then jobs+=("hstnn s$s --seed $s"); continue; fi
  each="0.25 0.5 0.75"; [ "$s" -le 2 ] && each="0 0.25 0.5 0.75 1"
  jobs+=("hstnn s$s --seed $s --restore-each $each")
  for r in 0 1 0.5; do jobs+=("direct_r$r s$s --seed $s --pipeline direct --ratio $r"); done
done
i=0
for j in "${jobs[@]}"; do
  if (( i % NL == LANE )); then
    read -r name seed rest <<<"$j"
    dir="$OUT/$name-$seed"; pol="$dir/policy.safetensors"
    if [ ! -f "$pol" ]; then
      resume=(); [ -d "$dir" ] && resume=(--resume)
      echo "$(date +%T) start $name $seed"
      hsc train --threads 1 --no-progress "${RECIPE[@]}" $rest --run-dir "$dir" --out "$pol" \
        "${resume[@]}" > "$OUT/log_$name-$seed.txt" 2>&1
      echo "$(date +%T) done $name $seed"
    fi
  fi
  i=$((i + 1))
done
