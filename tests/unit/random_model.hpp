#pragma once
// A BERT-shaped model with random weights and PyTorch golden vectors, written by
// models/train/random_model.py into the build tree the first time a test asks for it (never committed).
// Needs Debian's python3-torch (tests skip without it); EE_PYTHON names the interpreter (default
// /usr/bin/python3).
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace ee::testing {

// Why a test that needs a random model skips: the message for GTEST_SKIP() when random_bert() returns {}.
inline constexpr const char* kNoTorch =
    "python3-torch is missing (EE_PYTHON, default /usr/bin/python3, cannot import torch), so the random "
    "model with PyTorch golden vectors cannot be generated";

// hidden/heads/ffn/layers/seq/vocab as random_model.py's options; returns the model directory, or an
// empty path when it is not generated yet and the interpreter cannot import torch (the caller skips).
inline std::filesystem::path random_bert(int hidden, int heads, int ffn, int layers, int seq, int vocab) {
  namespace fs = std::filesystem;
  const std::string tag = std::to_string(hidden) + "-" + std::to_string(heads) + "-" + std::to_string(ffn) +
                          "-" + std::to_string(layers) + "-" + std::to_string(seq) + "-" +
                          std::to_string(vocab);
  const fs::path dir = fs::path(EE_BINARY_DIR) / "test-models" / ("random-bert-" + tag);
  if (fs::exists(dir / "golden.safetensors")) return dir;
  // Written aside and renamed into place, so tests running in parallel never see half a model.
  const fs::path tmp = dir.string() + ".tmp" + std::to_string(getpid());
  const char* env = std::getenv("EE_PYTHON");
  const std::string python = env ? env : "/usr/bin/python3";
  const std::string cmd = python + " " EE_SOURCE_DIR "/models/train/random_model.py --out '" + tmp.string() +
                          "' --hidden " + std::to_string(hidden) + " --heads " + std::to_string(heads) +
                          " --ffn " + std::to_string(ffn) + " --layers " + std::to_string(layers) +
                          " --seq " + std::to_string(seq) + " --vocab " + std::to_string(vocab) +
                          " > /dev/null";
  if (std::system(cmd.c_str()) != 0) {
    if (std::system((python + " -c 'import torch' 2> /dev/null").c_str()) != 0) return {};
    throw std::runtime_error("failed: " + cmd);
  }
  std::error_code ec;
  fs::rename(tmp, dir, ec);
  if (ec) fs::remove_all(tmp);  // another test got there first
  return dir;
}

}  // namespace ee::testing
