#!/usr/bin/env bash
# Alternating runs of two or more engine_bench builds (say, one per commit), for deciding between versions
# of the engine on a noisy machine: each round runs every build once on the same cases, so a slow spell of
# the host falls on all of them; prints the minimum and median per case, build and round. Compare across
# several rounds, never one run each (docs/ENGINE.md, "Profiling").
#
#   bench/ab.sh FILTER ROUNDS BUILD...
#   bench/ab.sh 'layer/text/batch:1/threads:2/fast' 4 /tmp/a/engine_bench build/default/bench/engine_bench
#
# Models: models/fmnist-vit, models/spam-bert, and the BERT-base layer compare.sh generates (if present).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then
  sed -n '2,8p' "$0" >&2
  exit 2
fi
filter=$1 rounds=$2
shift 2
models=(--vit=models/fmnist-vit --text=models/spam-bert)
bert=build/bench/bench-models/bert-base-1l
[ -f "$bert/model.safetensors" ] && models+=(--bert="$bert")
for round in $(seq 1 "$rounds"); do
  for build in "$@"; do
    "$build" "${models[@]}" --benchmark_filter="$filter" --benchmark_repetitions=6 --benchmark_min_time=0.1 \
      --benchmark_format=json 2>/dev/null | /usr/bin/python3 -c "
import json, sys
runs = json.load(sys.stdin)['benchmarks']
for name in dict.fromkeys(b['run_name'] for b in runs):
    t = sorted(b['real_time'] for b in runs if b.get('run_type') == 'iteration' and b['run_name'] == name)
    print(f'round $round  $build  {name}: min {t[0]:.1f} median {t[len(t) // 2]:.1f} {runs[0][\"time_unit\"]}')
"
  done
done
