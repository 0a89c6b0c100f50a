#pragma once
// One transformer encoder layer: multi-head self-attention + GELU feed-forward + two LayerNorms, either
// post-LN (BERT: ln1(x + attn(x)), ln2(x + ffn(x))) or pre-LN (ViT: x + attn(ln1(x)), x + ffn(ln2(x))).
#include <mutex>
#include <span>
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
  // ws.threads() threads: split across samples when the batch has a sample for each, inside the layer
  // (heads, weight panels, rows) when it has fewer. With the packed kernel (the default) each output
  // element is computed by the same kernel in the same order either way, so the result does not depend on
  // the thread count; OpenBLAS and Eigen may round differently when the split changes their row counts.
  // Allocates nothing once ws has seen a batch this large.
  void forward(Hidden& h, Workspace& ws) const;
  // The same layer op by op with Eigen expressions, as multiexit.py writes it: the yardstick that tests
  // hold forward() to, and the baseline of the speed ablation. Single-threaded.
  void forward_reference(Hidden& h, Workspace& ws) const;
  // Makes now the weight copies that products with `g` would make on first use (bf16's; the others are
  // made at load), so that no request pays for them or allocates them inside a pool task.
  void prepare(Gemm g) const;

 private:
  // The workspace's choice of GEMM, or the next one this CPU runs: bf16 -> packed -> OpenBLAS.
  Gemm gemm_for(const Workspace& ws) const;
  // A row-major buffer: its first row and its row stride.
  struct Block {
    float* data;
    Eigen::Index ld;
  };
  // What one forward() works on, all of the batch or samples [first, last) of it: the hidden states and the
  // workspace's buffers, each from the slice's first row. Each buffer is dense: its row stride is its width.
  struct Slice {
    Block x, normed, qkv, context, inner;
    std::span<const int> lengths;
    int tokens;
    Eigen::Index rows() const { return static_cast<Eigen::Index>(lengths.size()) * tokens; }
    Slice samples(int first, int last) const;
  };
  // The layer on one slice, its phases split across `threads` threads (joins between them), or with 1 all
  // on the calling thread, which then uses the workspace's scratch number `scratch`.
  void forward_slice(const Slice& s, Workspace& ws, int threads, int scratch) const;
  // Everything after the attention (output projection + residual, LayerNorms, feed-forward) on rows
  // [r0, r1) of the slice, on this thread.
  void after_attention(const Slice& s, Gemm g, Eigen::Index r0, Eigen::Index r1) const;
  // Q, K, V of heads [first, last), then their attention, in the workspace's scratch number `scratch`;
  // `project` false: Q, K, V are already in s.qkv.
  void attention_heads(const Slice& s, const float* in, Workspace& ws, Eigen::Index first, Eigen::Index last,
                       int scratch, bool project) const;
  // A weight product of the fast path, in every form its kernels read: the file's weights (blas, eigen),
  // packed for gemm_packed at load (empty where the CPU cannot run it: a private copy the size of the
  // weights), and rounded and packed for gemm_bf16 on the first bf16 product (half that size more), so a
  // model that only ever runs fp32 carries no bf16 copy. The bf16 copy is a cache filled once under
  // std::call_once, safe from concurrent callers; the model stays logically immutable.
  struct Projection {
    Linear linear;
    PackedWeights packed;
    explicit Projection(Linear l);
    const PackedBf16& bf16() const;
    // Columns [c0, c1) of y (row stride n) = a W^T + b (+ y if accumulate), a with row stride k.
    void columns(Gemm g, Eigen::Index rows, const float* a, Eigen::Index k, float* y, Eigen::Index n,
                 Eigen::Index c0, Eigen::Index c1, bool accumulate) const;

   private:
    mutable std::once_flag bf16_once_;
    mutable PackedBf16 bf16_;
  };
  void attention_reference(const ConstRef& x, const Hidden& h, Workspace& ws, Ref out) const;
  void feed_forward_reference(const ConstRef& x, Workspace& ws, Ref out) const;

  int heads_, head_dim_;
  bool pre_ln_;
  // Q, K and V fused into one [3H, H] projection at load, ordered head by head (q_0 k_0 v_0 q_1 ...): a
  // thread that owns heads a..b computes their Q, K and V with one GEMM over contiguous weight rows and
  // goes straight on to their attention, with no join in between.
  Matrix qkv_weight_;
  Vector qkv_bias_;
  Linear query_, key_, value_;  // the reference path's separate projections
  Projection qkv_, attention_output_, intermediate_, output_;
  LayerNorm ln1_, ln2_;
};

}  // namespace ee::model
