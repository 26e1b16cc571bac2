#!/usr/bin/env bash
# Evaluation queue of the pursuit ratio study (issue 16); run one copy per core.
# Usage: pursuit_ratio_eval.sh RUNS RUNS_SPK OUT
# Training seed s (0..4) is evaluated on evaluation seed 10+s (worlds no training or
# tuning run touched), 10 s episodes: nominal 20 worlds per seed, flicker and slippery 8.
# A job waits until its policy files exist; jobs are claimed with OUT/<job>.lock.
# SHIFTS="dim noisy_sensor" KINDS=dense ...: other shifts / only some model groups.
set -uo pipefail
RUNS=${1:?}; SPK=${2:?}; OUT=${3:?}
mkdir -p "$OUT"
COMMON=(--episode-s 10 --threads 1)
job_files() {  # kind seed -> the --model arguments (empty if a file is missing)
  local kind=$1 s=$2 args=()
  case $kind in
    dense)
      args=(--model "hybrid=$RUNS/hstnn-s$s/policy.safetensors")
      for r in 0.25 0.5 0.75; do args+=(--model "restored@$r=$RUNS/hstnn-s$s/policy_r$r.safetensors"); done
      args+=(--model "pure_rnn@0=$RUNS/direct_r0-s$s/policy.safetensors"
             --model "pure_snn@1=$RUNS/direct_r1-s$s/policy.safetensors"
             --model "direct_hybrid@0.5=$RUNS/direct_r0.5-s$s/policy.safetensors") ;;
    ends)
      args=(--model "restored@0=$RUNS/hstnn-s$s/policy_r0.safetensors"
            --model "restored@1=$RUNS/hstnn-s$s/policy_r1.safetensors") ;;
    spk) args=(--model "hybrid_spk=$SPK/hstnn-s$s/policy.safetensors") ;;
  esac
  for a in "${args[@]}"; do
    [[ $a == --model ]] && continue
    [ -f "${a#*=}" ] || return 0
  done
  echo "${args[@]}"
}
jobs=()
for shift in ${SHIFTS:-nominal flicker slippery}; do
  for s in 0 1 2 3 4; do
    for kind in ${KINDS:-dense spk ends}; do
      [ "$kind" = ends ] && [ "$s" -gt 2 ] && continue
      jobs+=("$kind $s $shift")
    done
  done
done
while :; do
  left=0
  for j in "${jobs[@]}"; do
    read -r kind s shift <<<"$j"
    name="$kind-s$s-$shift"; dir="$OUT/$name"
    [ -f "$dir/sweep.json" ] && continue
    left=1
    models=$(job_files "$kind" "$s")
    [ -z "$models" ] && continue
    mkdir "$dir.lock" 2>/dev/null || continue
    eps=8; [ "$shift" = nominal ] && eps=20
    base=(); [ "$kind" = dense ] || base=(--no-baselines)
    echo "$(date +%T) start $name"
    # shellcheck disable=SC2086
    hsc sweep $models --seeds $((10 + s)) --shifts "$shift" --episodes $eps "${COMMON[@]}" \
      "${base[@]}" --out "$dir" > "$OUT/log_$name.txt" 2>&1
    rmdir "$dir.lock"
    echo "$(date +%T) done $name"
  done
  [ $left -eq 0 ] && break
  sleep 30
done
