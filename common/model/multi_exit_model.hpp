#pragma once
// MultiExitModel: one loaded multi-exit encoder (immutable, shared by every request and thread) that can
// embed inputs, run any range of encoder layers on a hidden state and evaluate any exit head. Running
// layers a..b on a Hidden is what makes the split: the edge runs 1..s, the cloud s+1..L.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/model/config.hpp"
#include "common/model/hidden.hpp"
#include "common/model/tensor.hpp"

namespace ee::model {

class SafeTensors;
class EncoderLayer;
class ExitHead;
class Embeddings;
class Workspace;
enum class Gemm;  // ops.hpp

// Token ids for a batch of text inputs, padded to one length (filled by the tokenizer in common/text).
struct TokenBatch {
  int tokens = 0;                       // padded length of every sample
  std::vector<int32_t> input_ids;       // batch * tokens
  std::vector<int32_t> token_type_ids;  // batch * tokens (all 0 for single sentences)
  std::vector<int> lengths;             // real tokens per sample
  int batch() const { return static_cast<int>(lengths.size()); }
};

class MultiExitModel {
 public:
  // Loads <dir>/config.json and <dir>/model.safetensors; throws ModelError naming the bad file/tensor.
  static std::shared_ptr<const MultiExitModel> load(const std::filesystem::path& dir);
  // Builds the model from an opened weights file; throws ModelError on any missing, extra or misshapen
  // tensor.
  MultiExitModel(Config config, std::shared_ptr<const SafeTensors> weights, std::string hash);
  ~MultiExitModel();
  MultiExitModel(const MultiExitModel&) = delete;
  MultiExitModel& operator=(const MultiExitModel&) = delete;

  const Config& config() const { return config_; }
  int num_layers() const { return config_.num_hidden_layers; }
  // SHA-256 (hex) of config.json and model.safetensors: edge and cloud must agree on it.
  const std::string& hash() const { return hash_; }

  // Images: batch * channels * image_size^2 raw uint8 pixels (CHW per sample); normalised with the config's
  // image_mean/std. Returns depth 0.
  Hidden embed_images(std::span<const uint8_t> pixels, int batch) const;
  // Text: word + position + token type embeddings, LayerNorm. Returns depth 0.
  Hidden embed_tokens(const TokenBatch& tokens) const;

  // Applies encoder layers h.depth+1 .. to_layer (1-based) in place; to_layer in [h.depth, num_layers()].
  void run_layers(Hidden& h, int to_layer, Workspace& ws) const;
  // Logits (batch x num_labels) of the exit head after layer `layer` (must be one of the exit layers),
  // computed from h, which must be at depth == layer.
  Matrix exit_logits(const Hidden& h, int layer, Workspace& ws) const;
  bool has_exit(int layer) const;

  // Makes every weight copy that runs with `gemm` need before the first one (today bf16's rounded weights,
  // otherwise made lazily by the first bf16 product): a daemon calls it once after load() so that its
  // first requests neither wait for them nor allocate them. Safe alongside running requests.
  void prepare(Gemm gemm) const;

 private:
  Config config_;
  std::shared_ptr<const SafeTensors> weights_;  // the layers hold views into it
  std::string hash_;
  std::unique_ptr<Embeddings> embeddings_;
  std::vector<std::unique_ptr<EncoderLayer>> layers_;  // layer i (1-based) at [i - 1]
  std::vector<std::unique_ptr<ExitHead>> exits_;       // indexed by layer (1..L); null where no exit
};

}  // namespace ee::model
