#pragma once
// A BERT-shaped model with random weights and PyTorch golden vectors, written by
// models/train/random_model.py into the build tree the first time a test asks for it (never committed).
// Needs Debian's python3-torch; EE_PYTHON names the interpreter (default /usr/bin/python3).
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace ee::testing {

// hidden/heads/ffn/layers/seq/vocab as random_model.py's options; returns the model directory.
inline std::filesystem::path random_bert(int hidden, int heads, int ffn, int layers, int seq, int vocab) {
  namespace fs = std::filesystem;
  const std::string tag = std::to_string(hidden) + "-" + std::to_string(heads) + "-" + std::to_string(ffn) +
                          "-" + std::to_string(layers) + "-" + std::to_string(seq) + "-" +
                          std::to_string(vocab);
  const fs::path dir = fs::path(EE_BINARY_DIR) / "test-models" / ("random-bert-" + tag);
  if (fs::exists(dir / "golden.safetensors")) return dir;
  // Written aside and renamed into place, so tests running in parallel never see half a model.
  const fs::path tmp = dir.string() + ".tmp" + std::to_string(getpid());
  const char* python = std::getenv("EE_PYTHON");
  const std::string cmd = std::string(python ? python : "/usr/bin/python3") +
                          " " EE_SOURCE_DIR "/models/train/random_model.py --out '" + tmp.string() +
                          "' --hidden " + std::to_string(hidden) + " --heads " + std::to_string(heads) +
                          " --ffn " + std::to_string(ffn) + " --layers " + std::to_string(layers) +
                          " --seq " + std::to_string(seq) + " --vocab " + std::to_string(vocab) +
                          " > /dev/null";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
  std::error_code ec;
  fs::rename(tmp, dir, ec);
  if (ec) fs::remove_all(tmp);  // another test got there first
  return dir;
}

}  // namespace ee::testing
