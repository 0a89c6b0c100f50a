#!/usr/bin/env bash
# One ee-cloud configuration against one ee-load configuration, RUNS times (a fresh worker each run); prints
# throughput, goodput and latency per run. Both processes run on this machine: on 2 cores the worker's I/O
# and batcher threads and the load generator's one thread share them (no pinning).
#   bench/cloud_bench.sh "<ee-cloud flags>" "<ee-load flags>" [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
cloud_flags=$1
load_flags=$2
runs=${3:-3}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bash deploy/gen-certs.sh "$dir" > /dev/null
for _ in $(seq "$runs"); do
  # shellcheck disable=SC2086
  build/default/cloud/ee-cloud --cert "$dir/server.crt" --key "$dir/server.key" --ca "$dir/ca.crt" \
    --listen 127.0.0.1:27443 --ops-listen 127.0.0.1:29100 $cloud_flags > "$dir/cloud.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf 127.0.0.1:29100/readyz > /dev/null && break; sleep 0.1; done
  # shellcheck disable=SC2086
  build/default/sim/ee-load --cloud 127.0.0.1:27443 --cert "$dir/edge-1.crt" --key "$dir/edge-1.key" \
    --ca "$dir/ca.crt" $load_flags --json "$dir/r.json" > /dev/null 2>&1
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); l=j['latency_ms']
print('%.0f req/s  goodput %.0f/s  p50 %.3f  p95 %.3f  p99 %.3f ms' % (j['throughput_rps'], j['goodput_rps'], l['p50'], l['p95'], l['p99']))" "$dir/r.json"
  kill -TERM "$pid"
  wait "$pid"
done
