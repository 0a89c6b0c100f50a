// GCC 12 flags its own AVX-512 intrinsics, inlined into Eigen's GEMM packing under sanitizers, as
// "used uninitialized" (GCC bug 105593, the false positive the root CMakeLists.txt silences as
// maybe-uninitialized): not a finding in this file, so it is silenced here, for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "common/model/encoder_layer.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace ee::model {
namespace {

// HuggingFace tensor names: BERT's `attention.self` / `attention.output.LayerNorm` / `output.LayerNorm`,
// ViT's `attention.attention` / `layernorm_before` / `layernorm_after`.
struct LayerNames {
  std::string self, ln1, ln2;
};

std::string layer_prefix(const Config& c, int index) {
  return std::string(c.architecture == Architecture::vit ? "vit" : "bert") + ".encoder.layer." +
         std::to_string(index) + ".";
}

LayerNames names_for(const Config& c, int index) {
  const std::string p = layer_prefix(c, index);
  if (c.architecture == Architecture::vit) {
    return {p + "attention.attention.", p + "layernorm_before.", p + "layernorm_after."};
  }
  return {p + "attention.self.", p + "attention.output.LayerNorm.", p + "output.LayerNorm."};
}

Linear linear(WeightLoader& w, const std::string& name, int64_t out, int64_t in) {
  return {w.get(name + "weight", {out, in}), w.vec(name + "bias", out)};
}

LayerNorm layer_norm(WeightLoader& w, const std::string& name, int64_t size, float eps) {
  return {w.vec(name + "weight", size), w.vec(name + "bias", size), eps};
}

// Below this many FLOPs a layer runs on one thread: a join costs about a microsecond, a 17-token ViT layer
// (~1.8 MFLOP) takes ~30 us in all, and its 64-column GEMMs do not split into useful pieces.
constexpr double kMinParallelFlops = 4e6;

// [first, last) of part `part` of `parts` equal shares of n, share sizes rounded up to `align` (GEMM
// column slices stay whole SIMD vectors).
std::pair<Eigen::Index, Eigen::Index> share(Eigen::Index n, int part, int parts, Eigen::Index align) {
  const Eigen::Index chunk = ((n + parts - 1) / parts + align - 1) / align * align;
  const Eigen::Index first = std::min(n, part * chunk);
  return {first, std::min(n, first + chunk)};
}

}  // namespace

EncoderLayer::EncoderLayer(const Config& c, WeightLoader& w, int index)
    : heads_(c.num_attention_heads),
      head_dim_(c.head_dim()),
      pre_ln_(c.architecture == Architecture::vit),
      qkv_weight_(3 * c.hidden_size, c.hidden_size),
      qkv_bias_(3 * c.hidden_size),
      qkv_{ConstMatrixMap(qkv_weight_.data(), qkv_weight_.rows(), qkv_weight_.cols()),
           ConstVectorMap(qkv_bias_.data(), qkv_bias_.size())},
      query_(linear(w, names_for(c, index).self + "query.", c.hidden_size, c.hidden_size)),
      key_(linear(w, names_for(c, index).self + "key.", c.hidden_size, c.hidden_size)),
      value_(linear(w, names_for(c, index).self + "value.", c.hidden_size, c.hidden_size)),
      attention_output_(linear(w, layer_prefix(c, index) + "attention.output.dense.", c.hidden_size,
                               c.hidden_size)),
      intermediate_(linear(w, layer_prefix(c, index) + "intermediate.dense.", c.intermediate_size,
                           c.hidden_size)),
      output_(linear(w, layer_prefix(c, index) + "output.dense.", c.hidden_size, c.intermediate_size)),
      ln1_(layer_norm(w, names_for(c, index).ln1, c.hidden_size, c.layer_norm_eps)),
      ln2_(layer_norm(w, names_for(c, index).ln2, c.hidden_size, c.layer_norm_eps)) {
  const Eigen::Index d = head_dim_;
  const Linear* parts[] = {&query_, &key_, &value_};
  for (int head = 0; head < heads_; ++head) {
    for (int i = 0; i < 3; ++i) {
      qkv_weight_.middleRows((3 * head + i) * d, d) = parts[i]->weight.middleRows(head * d, d);
      qkv_bias_.segment((3 * head + i) * d, d) = parts[i]->bias.segment(head * d, d);
    }
  }
  if (packed_gemm_supported()) {
    for (auto [l, p] : {std::pair{&qkv_, &packed_qkv_}, std::pair{&attention_output_, &packed_attention_output_},
                        std::pair{&intermediate_, &packed_intermediate_}, std::pair{&output_, &packed_output_}}) {
      *p = pack_weights(l->weight.data(), l->weight.rows(), l->weight.cols());
    }
  }
}

void EncoderLayer::linear_columns(Gemm g, const Linear& l, const PackedWeights& packed, Eigen::Index rows,
                                  const float* a, Eigen::Index k, float* y, Eigen::Index n, Eigen::Index c0,
                                  Eigen::Index c1, bool accumulate) const {
  if (g == Gemm::packed) {
    gemm_packed(rows, c0, c1, a, k, packed, l.bias.data(), accumulate, y, n);
    return;
  }
  gemm_nt(g, rows, c1 - c0, k, a, k, l.weight.data() + c0 * k, k, accumulate ? 1.0f : 0.0f, y + c0, n);
  add_bias(y, n, rows, l.bias.data(), c0, c1);
}

void EncoderLayer::forward(Hidden& h, Workspace& ws) const {
  const Eigen::Index rows = h.x.rows(), hidden = h.x.cols(), inner_size = intermediate_.out_features();
  if (rows == 0) return;
  float* x = h.x.data();
  float* normed = ws.get(Workspace::normed, rows, hidden).data();
  float* qkv = ws.get(Workspace::qkv, rows, 3 * hidden).data();
  const float* context = ws.get(Workspace::context, rows, hidden).data();
  float* inner = ws.get(Workspace::intermediate, rows, inner_size).data();
  const Gemm g = packed_qkv_.data.empty() && ws.options().gemm == Gemm::packed ? Gemm::blas : ws.options().gemm;
  const double flops = 2.0 * static_cast<double>(rows) * hidden * (4 * hidden + 2 * inner_size);
  const bool parallel = ws.threads() > 1 && flops >= kMinParallelFlops;
  // Runs phase(part, parts) on every thread, or once on this one; returning is the join.
  auto each = [&](auto&& phase) {
    if (parallel) {
      ws.run([&](int i) { phase(i, ws.threads()); });
    } else {
      phase(0, 1);
    }
  };
  // Row shares for LayerNorm, column shares for GEMMs: a thread then reads all of A and only its slice of
  // the weights, which dominate the bytes moved at small batch. Column shares are whole weight panels.
  auto norm = [&](const LayerNorm& ln, float* out) {
    each([&](int i, int n) {
      const auto [r0, r1] = share(rows, i, n, 1);
      ln.rows(x, hidden, out, hidden, r0, r1);
    });
  };
  auto project = [&](const Linear& l, const PackedWeights& p, const float* a, Eigen::Index k, float* y,
                     Eigen::Index n, bool accumulate) {
    each([&](int i, int parts) {
      const auto [c0, c1] = share(n, i, parts, kPanel);
      linear_columns(g, l, p, rows, a, k, y, n, c0, c1, accumulate);
    });
  };

  if (pre_ln_) norm(ln1_, normed);
  const float* attention_in = pre_ln_ ? normed : x;
  // A thread owning heads a..b projects their Q, K, V itself and goes straight on to their attention,
  // unless their columns do not start on a weight panel (3 x head size not a multiple of kPanel, e.g. the
  // ViT's 48): then the projection is its own phase, split by panels.
  const bool fused = !parallel || (3 * head_dim_) % kPanel == 0;
  if (!fused) project(qkv_, packed_qkv_, attention_in, hidden, qkv, 3 * hidden, false);
  each([&](int i, int n) { attention_heads(attention_in, h, ws, i, n, fused); });
  project(attention_output_, packed_attention_output_, context, hidden, x, hidden, true);
  if (pre_ln_) {
    norm(ln2_, normed);
  } else {
    norm(ln1_, x);
  }
  const float* ffn_in = pre_ln_ ? normed : x;
  each([&](int i, int n) {
    const auto [c0, c1] = share(inner_size, i, n, kPanel);
    linear_columns(g, intermediate_, packed_intermediate_, rows, ffn_in, hidden, inner, inner_size, c0, c1, false);
    gelu_columns(inner, inner_size, rows, c0, c1);
  });
  project(output_, packed_output_, inner, inner_size, x, hidden, true);
  if (!pre_ln_) norm(ln2_, x);
}

void EncoderLayer::attention_heads(const float* in, const Hidden& h, Workspace& ws, int part, int parts,
                                   bool project) const {
  const Eigen::Index rows = h.x.rows(), hidden = h.x.cols(), t = h.tokens, d = head_dim_, ld = 3 * hidden;
  const auto [first, last] = share(heads_, part, parts, 1);
  if (first == last) return;
  const Gemm g = ws.options().gemm == Gemm::eigen ? Gemm::eigen : Gemm::blas;  // activations on both sides
  float* qkv = ws.get(Workspace::qkv, rows, ld).data();  // no growth here: forward() sized it
  float* context = ws.get(Workspace::context, rows, hidden).data();
  if (project) {
    const Gemm pg = packed_qkv_.data.empty() && ws.options().gemm == Gemm::packed ? Gemm::blas : ws.options().gemm;
    linear_columns(pg, qkv_, packed_qkv_, rows, in, hidden, qkv, ld, 3 * d * first, 3 * d * last, false);
  }
  // Each head reads its Q, K and V in place (row stride 3H) and writes its context columns in place.
  float* scores = ws.scratch(part, t, t).data();
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  for (int b = 0; b < h.batch(); ++b) {
    const Eigen::Index keys = h.lengths[b];  // padding keys are masked out
    for (Eigen::Index head = first; head < last; ++head) {
      const float* q = qkv + b * t * ld + 3 * d * head;
      gemm_nt(g, t, keys, d, q, ld, q + d, ld, 0.0f, scores, keys);
      softmax_scaled(scores, keys, t, keys, scale);
      gemm_nn(g, t, d, keys, scores, keys, q + 2 * d, ld, context + b * t * hidden + head * d, hidden);
    }
  }
}

void EncoderLayer::forward_reference(Hidden& h, Workspace& ws) const {
  const Eigen::Index rows = h.x.rows(), hidden = h.x.cols();
  MatrixMap branch = ws.get(Workspace::projected, rows, hidden);
  if (pre_ln_) {
    MatrixMap normed = ws.get(Workspace::normed, rows, hidden);
    ln1_(h.x, normed);
    attention_reference(normed, h, ws, branch);
    h.x += branch;
    ln2_(h.x, normed);
    feed_forward_reference(normed, ws, branch);
    h.x += branch;
  } else {
    attention_reference(h.x, h, ws, branch);
    h.x += branch;
    ln1_(h.x, h.x);
    feed_forward_reference(h.x, ws, branch);
    h.x += branch;
    ln2_(h.x, h.x);
  }
}

void EncoderLayer::attention_reference(const ConstRef& x, const Hidden& h, Workspace& ws, Ref out) const {
  const Eigen::Index rows = x.rows(), hidden = x.cols(), t = h.tokens, d = head_dim_;
  MatrixMap qkv = ws.get(Workspace::qkv, rows, 3 * hidden);
  query_(x, qkv.leftCols(hidden));
  key_(x, qkv.middleCols(hidden, hidden));
  value_(x, qkv.rightCols(hidden));
  MatrixMap context = ws.get(Workspace::context, rows, hidden);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  for (int b = 0; b < h.batch(); ++b) {
    const Eigen::Index first = b * t, keys = h.lengths[b];  // padding keys are masked out
    for (int head = 0; head < heads_; ++head) {
      const auto q = qkv.block(first, head * d, t, d);
      const auto k = qkv.block(first, hidden + head * d, keys, d);
      const auto v = qkv.block(first, 2 * hidden + head * d, keys, d);
      MatrixMap scores = ws.get(Workspace::scores, t, keys);
      scores.noalias() = (q * k.transpose()) * scale;
      softmax_rows(scores);
      context.block(first, head * d, t, d).noalias() = scores * v;
    }
  }
  attention_output_(context, out);
}

void EncoderLayer::feed_forward_reference(const ConstRef& x, Workspace& ws, Ref out) const {
  MatrixMap inner = ws.get(Workspace::intermediate, x.rows(), intermediate_.out_features());
  intermediate_(x, inner);
  gelu(inner);
  output_(inner, out);
}

}  // namespace ee::model
