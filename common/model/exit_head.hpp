#pragma once
// The classifier after an encoder layer, reading each sample's CLS (first) token:
// layernorm: LayerNorm -> linear (ViT); pooler: dense -> tanh -> linear (BERT / DeeBERT "highway").
// Tensors: exits.<layer>.{layernorm,pooler.dense,classifier}.{weight,bias}.
#include <optional>

#include "common/model/config.hpp"
#include "common/model/hidden.hpp"
#include "common/model/ops.hpp"
#include "common/model/safetensors.hpp"
#include "common/model/workspace.hpp"

namespace ee::model {

class ExitHead {
 public:
  ExitHead(const Config& config, WeightLoader& weights, int layer);
  // Logits, batch x num_labels.
  Matrix forward(const Hidden& h, Workspace& ws) const;

 private:
  std::optional<LayerNorm> norm_;
  std::optional<Linear> pooler_;
  Linear classifier_;
};

}  // namespace ee::model
