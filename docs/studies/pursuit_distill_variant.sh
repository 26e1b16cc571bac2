#!/usr/bin/env bash
# The in-place-distillation variant of the study's one-set-of-weights model (issue 16):
# the same seed's adapt + select (copied; identical with or without distillation, which
# only changes restoration), then restoration with distill_weight=0.5, then its nominal
# evaluation on the study's worlds.  Usage: pursuit_distill_variant.sh RUNS EVAL [SEEDS]
set -uo pipefail
RUNS=${1:?}; EVAL=${2:?}; shift 2
SEEDS=("$@"); [ $# -eq 0 ] && SEEDS=(0 1 2 3 4)
RECIPE=(--set bc_episodes=64 --set dagger_iterations=3 --set dagger_episodes=24
        --set restore_iterations=1 --set hstnn.adapt_steps=200 --set hstnn.restore_steps=100
        --set hstnn.checkpoint_every=25 --set distill_weight=0.5)
for s in "${SEEDS[@]}"; do
  src="$RUNS/hstnn-s$s"; dst="$RUNS/hstnn_distill-s$s"
  while [ ! -f "$src/policy.safetensors" ]; do sleep 30; done
  if [ ! -f "$dst/policy.safetensors" ]; then
    mkdir -p "$dst"
    cp -r "$src/adapt" "$src/adapt.safetensors" "$src/select.safetensors" "$dst/"
    echo "$(date +%T) start distill s$s"
    hsc train --threads 1 --no-progress "${RECIPE[@]}" --seed "$s" --run-dir "$dst" \
      --out "$dst/policy.safetensors" --resume > "$RUNS/log_hstnn_distill-s$s.txt" 2>&1
  fi
  out="$EVAL/distill-s$s-nominal"
  if [ ! -f "$out/sweep.json" ]; then
    echo "$(date +%T) eval distill s$s"
    hsc sweep --model "hybrid_distill=$dst/policy.safetensors" --seeds $((10 + s)) \
      --shifts nominal --episodes 20 --episode-s 10 --threads 1 --no-baselines --out "$out" \
      > "$EVAL/log_distill-s$s-nominal.txt" 2>&1
  fi
done
echo "$(date +%T) distill variant finished"
