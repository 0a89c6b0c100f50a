#pragma once
// One transformer encoder layer: multi-head self-attention + GELU feed-forward + two LayerNorms, either
// post-LN (BERT: ln1(x + attn(x)), ln2(x + ffn(x))) or pre-LN (ViT: x + attn(ln1(x)), x + ffn(ln2(x))).
#include <string>

#include "common/model/config.hpp"
#include "common/model/hidden.hpp"
#include "common/model/ops.hpp"
#include "common/model/safetensors.hpp"
#include "common/model/workspace.hpp"

namespace ee::model {

class EncoderLayer {
 public:
  // index is 0-based, as in the tensor names (`<prefix>.encoder.layer.<index>.`).
  EncoderLayer(const Config& config, WeightLoader& weights, int index);
  EncoderLayer(const EncoderLayer&) = delete;
  EncoderLayer& operator=(const EncoderLayer&) = delete;

  // Applies the layer to every sample of h in place (h.depth is the caller's to advance).
  void forward(Hidden& h, Workspace& ws) const;

 private:
  void attention(const ConstRef& x, const Hidden& h, Workspace& ws, Ref out) const;
  void feed_forward(const ConstRef& x, Workspace& ws, Ref out) const;

  int heads_, head_dim_;
  bool pre_ln_;
  // Q, K and V fused into one [3H, H] projection at load: one GEMM instead of three.
  Matrix qkv_weight_;
  Vector qkv_bias_;
  Linear qkv_, attention_output_, intermediate_, output_;
  LayerNorm ln1_, ln2_;
};

}  // namespace ee::model
