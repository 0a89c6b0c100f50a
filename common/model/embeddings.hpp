#pragma once
// Input -> hidden state at depth 0. Images: ViT patch embedding (a stride-p convolution, computed as one
// GEMM over flattened patches) + CLS token + position embeddings. Text: BERT word + position + token-type
// embeddings followed by LayerNorm.
#include <cstdint>
#include <optional>
#include <span>

#include "common/model/config.hpp"
#include "common/model/hidden.hpp"
#include "common/model/ops.hpp"
#include "common/model/safetensors.hpp"

namespace ee::model {

struct TokenBatch;

class Embeddings {
 public:
  Embeddings(const Config& config, WeightLoader& weights);

  Hidden images(std::span<const uint8_t> pixels, int batch) const;
  Hidden tokens(const TokenBatch& batch) const;

 private:
  struct Patch {
    ConstMatrixMap projection;  // [hidden, channels * p * p]: the conv kernel, flattened
    ConstVectorMap bias;
    ConstVectorMap cls;
    ConstMatrixMap position;  // [tokens, hidden]
  };
  struct Token {
    ConstMatrixMap word, position, type;
    LayerNorm norm;
  };

  const Config& config_;
  std::optional<Patch> patch_;
  std::optional<Token> token_;
};

}  // namespace ee::model
