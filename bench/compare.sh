#!/usr/bin/env bash
# Engine speed against its peers, in one invocation on one machine: builds the benchmarks, generates the
# BERT-base-shaped random layer, writes our outputs for the peers to check, exports the ONNX files, then
# measures the SGEMM peak, our engine (with the lever ablation), PyTorch and ONNX Runtime in each of their
# plausible thread settings, and batched early-exit throughput; writes the "Engine speed" section of
# bench/RESULTS.md (bench/report.py). Run it on a quiet machine (load average < 0.5): it says what it saw.
#
#   bench/compare.sh                 # full run (bench/RESULTS.md says how long it took)
#   EE_BENCH_REPS=5 bench/compare.sh # fewer repetitions (per case, over all rounds)
#   EE_BENCH_ROUNDS=5 ...            # interleave ours and the peers in more rounds (default 3)
#   EE_BENCH_PORTABLE=0 ...          # skip the portable (-march default) build of the ablation
#
# Needs deploy/install-deps.sh (OpenBLAS, python3-torch, python3-onnx, onnxruntime-node in /opt/eesplit/npm).
set -euo pipefail
cd "$(dirname "$0")/.."

build=${EE_BENCH_BUILD:-build/bench}
raw=$build/compare
reps=${EE_BENCH_REPS:-15}
rounds=${EE_BENCH_ROUNDS:-3}
min_time=${EE_BENCH_MIN_TIME:-0.05}
eval_samples=${EE_BENCH_EVAL_SAMPLES:-2000}
py=/usr/bin/python3  # Debian's python3-torch; a pyenv python3 earlier on PATH has no torch
march=$(grep -oP '^EE_MARCH:STRING=\K.*' "$build/CMakeCache.txt" 2>/dev/null || echo native)

# OpenBLAS picks its kernels by CPU model; a model newer than the library gets its generic Prescott (SSE3)
# kernels, far below the machine's SGEMM peak (bench/RESULTS.md, "The machine"). That would make PyTorch (on
# OpenBLAS) and the "% of OpenBLAS peak" columns meaningless, so name the right core.
openblas_core() {
  $py -c "import ctypes; l = ctypes.CDLL('libopenblas.so.0'); l.openblas_get_corename.restype = ctypes.c_char_p; print(l.openblas_get_corename().decode())"
}
openblas_detected=$(openblas_core)
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ "$openblas_detected" = Prescott ]; then
  if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
  [ -n "${OPENBLAS_CORETYPE:-}" ] && echo "compare: OpenBLAS detected $openblas_detected on this CPU; OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE"
fi
openblas_core=$(openblas_core)

echo "compare: building in $build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DEE_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target engine_bench sgemm_peak eigen_blas_gemm ee-eval >/dev/null
if [ "${EE_BENCH_PORTABLE:-1}" = 1 ]; then
  cmake -S . -B "$build-portable" -DCMAKE_BUILD_TYPE=Release -DEE_BUILD_TESTS=OFF -DEE_MARCH= >/dev/null
  cmake --build "$build-portable" -j2 --target engine_bench >/dev/null
fi

rm -rf "$raw" && mkdir -p "$raw"
bert=$build/bench-models/bert-base-1l
[ -f "$bert/model.safetensors" ] || $py models/train/random_model.py --out "$bert" --golden 0
models=(--vit=models/fmnist-vit --bert="$bert")
peer_models=(vit=models/fmnist-vit bert="$bert")
names=(vit bert)
if [ -f models/spam-bert/model.safetensors ]; then
  models+=(--text=models/spam-bert)
  peer_models+=(text=models/spam-bert)
  names+=(text)
else
  echo "compare: models/spam-bert has no model.safetensors yet: the text model is left out"
fi

"$build/bench/engine_bench" "${models[@]}" --write_outputs="$raw/check"
$py bench/export_onnx.py --outputs "$raw/check" --out "$raw/onnx" "${peer_models[@]}" 2>/dev/null

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "compare: load average $load_before (want < 0.5)"

# Rounds: every round measures the peak, our engine and every peer setting with a share of the repetitions,
# so a slow spell of a shared host falls on all of them alike instead of on whichever ran then; the report
# pools each case's repetitions over the rounds.
# Within a round, Google Benchmark runs the repetitions of all our cases in random order: in registration
# order the first mode of each group (ours) ran right after a two-thread case and measured slower than when
# interleaved (docs/ENGINE.md, "Profiling").
reps_per_round=$(((reps + rounds - 1) / rounds))
bench_args=(--benchmark_repetitions="$reps_per_round" --benchmark_min_time="$min_time" --benchmark_format=json
  --benchmark_enable_random_interleaving=true)
peer=(--outputs "$raw/check" --reps "$reps_per_round" --min-time "$min_time" "${peer_models[@]}")
run_torch() {  # label threads env...
  local label=$1 threads=$2
  shift 2
  env "$@" $py bench/peer_torch.py --threads "$threads" "${peer[@]}" >"$raw/torch.$label.r$round.jsonl"
}
run_torch_bf16() {  # label threads dtype: the peers of our Gemm::bf16 (oneDNN; OpenBLAS is not used)
  OPENBLAS_NUM_THREADS=1 $py bench/peer_torch.py --threads "$2" --dtype "$3" "${peer[@]}" \
    >"$raw/torch_bf16.$1.r$round.jsonl"
}
bench_list=$("$build/bench/engine_bench" "${models[@]}" --benchmark_list_tests)
bf16=0
[[ $bench_list == */bf16* ]] && bf16=1
for round in $(seq 1 "$rounds"); do
  echo "compare: round $round of $rounds: SGEMM peak"
  "$build/bench/sgemm_peak" "${bench_args[@]}" >"$raw/sgemm.r$round.json"
  OPENBLAS_NUM_THREADS=1 "$build/bench/eigen_blas_gemm" "${bench_args[@]}" >"$raw/eigen_blas.r$round.json"

  echo "compare: round $round of $rounds: our engine"
  "$build/bench/engine_bench" "${models[@]}" "${bench_args[@]}" >"$raw/engine.r$round.json"
  if [ -x "$build-portable/bench/engine_bench" ]; then
    "$build-portable/bench/engine_bench" "${models[@]}" "${bench_args[@]}" --benchmark_filter='layer/.*/fast' \
      >"$raw/engine_portable.r$round.json"
  fi

  echo "compare: round $round of $rounds: PyTorch"
  run_torch t1-blas1 1 OPENBLAS_NUM_THREADS=1
  run_torch t1-blas1-passive 1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
  run_torch t2-blas1 2 OPENBLAS_NUM_THREADS=1
  run_torch t2-blas2 2 OPENBLAS_NUM_THREADS=2
  run_torch t2-blas2-passive 2 OPENBLAS_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
  if [ "$bf16" = 1 ]; then
    for threads in 1 2; do
      run_torch_bf16 "t$threads-cast" "$threads" bf16
      run_torch_bf16 "t$threads-autocast" "$threads" bf16-autocast
    done
  fi

  echo "compare: round $round of $rounds: batched early exit"
  for threads in 1 2; do
    for batch in 1 8 32; do
      "$build/sim/ee-eval" -m models/fmnist-vit -n "$eval_samples" -b "$batch" -t "$threads" -r max_prob:0.9 \
        -r max_prob:2 --json "$raw/eval.t$threads.b$batch.r$round.json" >/dev/null 2>&1
      if [ "$bf16" = 1 ]; then
        "$build/sim/ee-eval" -m models/fmnist-vit -n "$eval_samples" -b "$batch" -t "$threads" -r max_prob:0.9 \
          --precision bf16 --json "$raw/evalbf16.t$threads.b$batch.r$round.json" >/dev/null 2>&1
      fi
    done
  done

  echo "compare: round $round of $rounds: ONNX Runtime"
  for threads in 1 2; do
    for spin in 1 0; do
      node bench/peer_ort.js --outputs "$raw/check" --onnx "$raw/onnx" --threads "$threads" --spin "$spin" \
        --reps "$reps_per_round" --min-time "$min_time" "${names[@]}" >"$raw/ort.t$threads-spin$spin.r$round.jsonl"
    done
  done
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# Accuracy of the bf16 weight products, whole test sets: every exit's answer on every sample, fp32 and bf16.
if [ "$bf16" = 1 ]; then
  echo "compare: accuracy at fp32 and bf16"
  spam_test=data/spam-assassin/test.jsonl
  [ -f "$spam_test" ] || $py models/train/spam_data.py >/dev/null 2>&1 || spam_test=models/spam-bert/sample/test_sample.jsonl
  for precision in fp32 bf16; do
    "$build/sim/ee-eval" -m models/fmnist-vit --precision "$precision" -b 32 -r max_prob:0.9 \
      --json "$raw/precision.vit.$precision.json" --trace "$raw/precision.vit.$precision.csv" >/dev/null 2>&1
    if [ -f models/spam-bert/model.safetensors ]; then
      "$build/sim/ee-eval" -m models/spam-bert --text "$spam_test" --precision "$precision" -b 32 -r max_prob:0.9 \
        --json "$raw/precision.text.$precision.json" --trace "$raw/precision.text.$precision.csv" >/dev/null 2>&1
    fi
  done
fi

$py - "$raw/meta.json" <<EOF
import json, subprocess, sys
sh = lambda c: subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
flags = sh("grep -m1 '^flags' /proc/cpuinfo").split()
json.dump({
    "command": "bench/compare.sh (EE_BENCH_REPS=$reps EE_BENCH_ROUNDS=$rounds EE_BENCH_MIN_TIME=$min_time)",
    "date": sh("date -u '+%Y-%m-%d %H:%M UTC'"), "commit": sh("git rev-parse --short HEAD") + (" + local changes" if sh("git status --porcelain -- common bench") else ""),
    "cpu": sh("lscpu | sed -n 's/^Model name: *//p'"), "cores": sh("nproc"),
    "flags": " ".join(f for f in flags if f.startswith("avx") or f in ("fma", "f16c")),
    "openblas": sh("dpkg-query -W -f='\${Version}' libopenblas0-pthread"), "openblas_core": "$openblas_core", "openblas_detected": "$openblas_detected",
    "torch": sh("$py -c 'import torch; print(torch.__version__)'"),
    "ort": sh("node -p \"require('/opt/eesplit/npm/node_modules/onnxruntime-node').env.versions.common\""),
    "gcc": sh("g++ -dumpfullversion"), "march": "$march",
    "load_before": "$load_before", "load_after": "$load_after", "reps": $((reps_per_round * rounds)), "rounds": $rounds, "min_time": $min_time,
    "eval_samples": $eval_samples,
}, open(sys.argv[1], "w"), indent=1)
EOF
$py bench/report.py "$raw" bench/RESULTS.md
echo "compare: done (raw results in $raw); load average before $load_before, after $load_after"
