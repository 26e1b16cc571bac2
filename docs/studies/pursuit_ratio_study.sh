#!/usr/bin/env bash
# The powered pursuit ratio study (issue 16): trains every (seed, model) of the study.
# Usage: pursuit_ratio_study.sh OUT_DIR [SEEDS...]   (default seeds 0 1 2 3 4)
# Start it once per core: the copies share one queue (a job is claimed by creating
# OUT_DIR/<job>.lock), skip models whose policy file exists and resume a killed run
# (remove its .lock first).  Recipe: the shipped recipe (config/train.yaml) at ~1/8 of its
# data and steps, so that 5 seeds x 4 trainings fit a 2-core afternoon.
#   STUDY_EXTRA="--set policy.encoder=spiking_conv" ONLY_HSTNN=1 ...: the encoder comparison
#   (the one-set-of-weights HSTNN model only, no per-ratio restorations, no baselines)
set -euo pipefail
OUT=${1:?out dir}; shift
SEEDS=("$@")
[ $# -eq 0 ] && SEEDS=(0 1 2 3 4)
mkdir -p "$OUT"
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
for j in "${jobs[@]}"; do
  read -r name seed rest <<<"$j"
  dir="$OUT/$name-$seed"; pol="$dir/policy.safetensors"
  [ -f "$pol" ] && continue
  mkdir "$dir.lock" 2>/dev/null || continue  # another copy has it
  resume=(); [ -d "$dir" ] && resume=(--resume)
  echo "$(date +%T) start $name $seed"
  hsc train --threads 1 --no-progress "${RECIPE[@]}" $rest --run-dir "$dir" --out "$pol" \
    "${resume[@]}" > "$OUT/log_$name-$seed.txt" 2>&1
  rmdir "$dir.lock"
  echo "$(date +%T) done $name $seed"
done
