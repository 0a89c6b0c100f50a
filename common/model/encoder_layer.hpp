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

  // Applies the layer to every sample of h in place (h.depth is the caller's to advance), on up to
  // ws.threads() threads. Allocates nothing once ws has seen a batch this large.
  void forward(Hidden& h, Workspace& ws) const;
  // The same layer op by op with Eigen expressions, as multiexit.py writes it: the yardstick that tests
  // hold forward() to, and the baseline of the speed ablation. Single-threaded.
  void forward_reference(Hidden& h, Workspace& ws) const;

 private:
  // Phases of forward(); `part` of `parts` is the share of one thread.
  void attention_heads(const float* in, const Hidden& h, Workspace& ws, int part, int parts) const;
  void attention_reference(const ConstRef& x, const Hidden& h, Workspace& ws, Ref out) const;
  void feed_forward_reference(const ConstRef& x, Workspace& ws, Ref out) const;

  int heads_, head_dim_;
  bool pre_ln_;
  // Q, K and V fused into one [3H, H] projection at load, ordered head by head (q_0 k_0 v_0 q_1 ...): a
  // thread that owns heads a..b computes their Q, K and V with one GEMM over contiguous weight rows and
  // goes straight on to their attention, with no join in between.
  Matrix qkv_weight_;
  Vector qkv_bias_;
  Linear query_, key_, value_, attention_output_, intermediate_, output_;
  LayerNorm ln1_, ln2_;
};

}  // namespace ee::model
