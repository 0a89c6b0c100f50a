// GCC 12 flags its own AVX-512 intrinsics, inlined into Eigen's GEMM packing under sanitizers, as
// "used uninitialized" (GCC bug 105593, the false positive the root CMakeLists.txt silences as
// maybe-uninitialized): not a finding in this file, so it is silenced here, for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "common/model/encoder_layer.hpp"

#include <algorithm>
#include <array>
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

// Below this many FLOPs a layer runs on one thread: its joins would cost more than the split saves (the
// 17-token ViT layer, 1.8 MFLOP, is below; docs/ENGINE.md), and its 64-column GEMMs do not split into
// useful pieces.
constexpr double kMinParallelFlops = 4e6;
// Up to this many bytes of weights after the attention, threads inside a layer split its rows, not columns.
constexpr double kRowSplitWeightBytes = 1 << 20;

// [first, last) of part `part` of `parts` equal shares of n, share sizes rounded up to `align` (GEMM
// column slices stay whole SIMD vectors).
std::pair<Eigen::Index, Eigen::Index> share(Eigen::Index n, int part, int parts, Eigen::Index align) {
  const Eigen::Index chunk = ((n + parts - 1) / parts + align - 1) / align * align;
  const Eigen::Index first = std::min(n, part * chunk);
  return {first, std::min(n, first + chunk)};
}

// Q, K and V in one [3H, H] projection, ordered head by head (q_0 k_0 v_0 q_1 ...), written into
// `weight` and `bias` (the layer's own storage, which the returned view points into).
Linear fused_qkv(Matrix& weight, Vector& bias, std::array<const Linear*, 3> parts, int heads,
                 Eigen::Index d) {
  for (int head = 0; head < heads; ++head) {
    for (int i = 0; i < 3; ++i) {
      weight.middleRows((3 * head + i) * d, d) = parts[i]->weight.middleRows(head * d, d);
      bias.segment((3 * head + i) * d, d) = parts[i]->bias.segment(head * d, d);
    }
  }
  return {ConstMatrixMap(weight.data(), weight.rows(), weight.cols()),
          ConstVectorMap(bias.data(), bias.size())};
}

}  // namespace

EncoderLayer::EncoderLayer(const Config& c, WeightLoader& w, int index)
    : heads_(c.num_attention_heads),
      head_dim_(c.head_dim()),
      pre_ln_(c.architecture == Architecture::vit),
      qkv_weight_(3 * c.hidden_size, c.hidden_size),
      qkv_bias_(3 * c.hidden_size),
      query_(linear(w, names_for(c, index).self + "query.", c.hidden_size, c.hidden_size)),
      key_(linear(w, names_for(c, index).self + "key.", c.hidden_size, c.hidden_size)),
      value_(linear(w, names_for(c, index).self + "value.", c.hidden_size, c.hidden_size)),
      qkv_(fused_qkv(qkv_weight_, qkv_bias_, {&query_, &key_, &value_}, heads_, head_dim_)),
      attention_output_(
          linear(w, layer_prefix(c, index) + "attention.output.dense.", c.hidden_size, c.hidden_size)),
      intermediate_(
          linear(w, layer_prefix(c, index) + "intermediate.dense.", c.intermediate_size, c.hidden_size)),
      output_(linear(w, layer_prefix(c, index) + "output.dense.", c.hidden_size, c.intermediate_size)),
      ln1_(layer_norm(w, names_for(c, index).ln1, c.hidden_size, c.layer_norm_eps)),
      ln2_(layer_norm(w, names_for(c, index).ln2, c.hidden_size, c.layer_norm_eps)) {}

EncoderLayer::Projection::Projection(Linear l) : linear(l) {
  if (packed_gemm_supported()) packed = pack_weights(l.weight.data(), l.weight.rows(), l.weight.cols());
}

const PackedBf16& EncoderLayer::Projection::bf16() const {
  std::call_once(bf16_once_, [this] {
    bf16_ = pack_weights_bf16(linear.weight.data(), linear.weight.rows(), linear.weight.cols());
  });
  return bf16_;
}

void EncoderLayer::prepare(Gemm g) const {
  if (g != Gemm::bf16 || !bf16_gemm_supported()) return;
  for (const Projection* p : {&qkv_, &attention_output_, &intermediate_, &output_}) p->bf16();
}

Gemm EncoderLayer::gemm_for(const Workspace& ws) const {
  return effective_gemm(ws.options().gemm);
}

void EncoderLayer::Projection::columns(Gemm g, Eigen::Index rows, const float* a, Eigen::Index k, float* y,
                                       Eigen::Index n, Eigen::Index c0, Eigen::Index c1,
                                       bool accumulate) const {
  if (g == Gemm::bf16) {
    gemm_bf16(rows, c0, c1, a, k, bf16(), linear.bias.data(), accumulate, y, n);
  } else if (g == Gemm::packed) {
    gemm_packed(rows, c0, c1, a, k, packed.panels(), linear.bias.data(), accumulate, y, n);
  } else {
    gemm_nt(g, rows, c1 - c0, k, a, k, linear.weight.data() + c0 * k, k, accumulate ? 1.0f : 0.0f, y + c0, n);
    add_bias(y, n, rows, linear.bias.data(), c0, c1);
  }
}

EncoderLayer::Slice EncoderLayer::Slice::samples(int first, int last) const {
  const Eigen::Index r0 = static_cast<Eigen::Index>(first) * tokens;
  auto from = [r0](Block b) { return Block{b.data + r0 * b.ld, b.ld}; };
  return {from(x), from(normed), from(qkv), from(context), from(inner), lengths.subspan(first, last - first),
          tokens};
}

void EncoderLayer::forward(Hidden& h, Workspace& ws) const {
  const Eigen::Index rows = h.x.rows(), hidden = h.x.cols(), inner_size = intermediate_.linear.out_features();
  if (rows == 0) return;
  const Slice all{{h.x.data(), hidden},
                  {ws.get(Workspace::normed, rows, hidden).data(), hidden},
                  {ws.get(Workspace::qkv, rows, 3 * hidden).data(), 3 * hidden},
                  {ws.get(Workspace::context, rows, hidden).data(), hidden},
                  {ws.get(Workspace::intermediate, rows, inner_size).data(), inner_size},
                  h.lengths,
                  h.tokens};
  const double flops = 2.0 * static_cast<double>(rows) * hidden * (4 * hidden + 2 * inner_size);
  const int threads = flops >= kMinParallelFlops ? ws.threads() : 1;
  if (threads > 1 && h.batch() >= threads && ws.options().split_samples) {
    // Across samples: each thread runs the whole layer on its share of the batch, with no join inside it.
    ws.run([&](int i) {
      const auto [first, last] = share(h.batch(), i, threads, 1);
      forward_slice(all.samples(static_cast<int>(first), static_cast<int>(last)), ws, 1, i);
    });
  } else {
    forward_slice(all, ws, threads, 0);
  }
}

void EncoderLayer::forward_slice(const Slice& s, Workspace& ws, int threads, int scratch) const {
  const Eigen::Index rows = s.rows(), hidden = s.x.ld, inner_size = s.inner.ld;
  if (rows == 0) return;
  const Gemm g = gemm_for(ws);
  // Runs phase(part, parts) on every thread, or phase(0, 1) on this one; returning is the join.
  auto each = [&](auto&& phase) {
    if (threads > 1) {
      ws.run([&](int i) { phase(i, threads); });
    } else {
      phase(0, 1);
    }
  };
  // Row shares for LayerNorm, column shares for GEMMs: a thread then reads all of A and only its slice of
  // the weights, which dominate the bytes moved at small batch. Column shares are whole weight panels.
  auto norm = [&](const LayerNorm& ln, float* out) {
    each([&](int i, int n) {
      const auto [r0, r1] = share(rows, i, n, 1);
      ln.rows(s.x.data, hidden, out, hidden, r0, r1);
    });
  };
  auto project = [&](const Projection& p, Block a, Block y, bool accumulate) {
    each([&](int i, int n) {
      const auto [c0, c1] = share(y.ld, i, n, kPanel);
      p.columns(g, rows, a.data, a.ld, y.data, y.ld, c0, c1, accumulate);
    });
  };

  if (pre_ln_) norm(ln1_, s.normed.data);
  const Block attention_in = pre_ln_ ? s.normed : s.x;
  // A thread owning heads a..b projects their Q, K, V itself and goes straight on to their attention,
  // unless their columns do not start on a weight panel (3 x head size not a multiple of kPanel, e.g. the
  // ViT's 48): then the projection is its own phase, split by panels.
  const bool fused = threads == 1 || (3 * head_dim_) % kPanel == 0;
  if (!fused) project(qkv_, attention_in, s.qkv, false);
  each([&](int i, int n) {
    const auto [first, last] = share(heads_, i, n, 1);
    attention_heads(s, attention_in.data, ws, first, last, threads > 1 ? i : scratch, fused);
  });
  // The rest of the layer is row-local. On one thread, or when its weights are small enough for every
  // thread to read them all, threads take shares of the rows through all of it: one join instead of five.
  // Large weights (BERT-base: 28 MB) are split by columns instead, phase by phase, so that each thread
  // reads only its share of them.
  if (threads == 1 || 4.0 * hidden * (hidden + 2 * inner_size) <= kRowSplitWeightBytes) {
    each([&](int i, int n) {
      const auto [r0, r1] = share(rows, i, n, 1);
      after_attention(s, g, r0, r1);
    });
    return;
  }
  project(attention_output_, s.context, s.x, true);
  if (pre_ln_) {
    norm(ln2_, s.normed.data);
  } else {
    norm(ln1_, s.x.data);
  }
  const Block ffn_in = pre_ln_ ? s.normed : s.x;
  each([&](int i, int n) {
    const auto [c0, c1] = share(inner_size, i, n, kPanel);
    intermediate_.columns(g, rows, ffn_in.data, hidden, s.inner.data, inner_size, c0, c1, false);
    gelu_columns(s.inner.data, inner_size, rows, c0, c1);
  });
  project(output_, s.inner, s.x, true);
  if (!pre_ln_) norm(ln2_, s.x.data);
}

void EncoderLayer::after_attention(const Slice& s, Gemm g, Eigen::Index r0, Eigen::Index r1) const {
  const Eigen::Index m = r1 - r0, hidden = s.x.ld, inner_size = s.inner.ld;
  if (m == 0) return;
  float* x = s.x.data + r0 * hidden;
  float* normed = s.normed.data + r0 * hidden;
  float* inner = s.inner.data + r0 * inner_size;
  attention_output_.columns(g, m, s.context.data + r0 * hidden, hidden, x, hidden, 0, hidden, true);
  if (pre_ln_) {
    ln2_.rows(x, hidden, normed, hidden, 0, m);
  } else {
    ln1_.rows(x, hidden, x, hidden, 0, m);
  }
  intermediate_.columns(g, m, pre_ln_ ? normed : x, hidden, inner, inner_size, 0, inner_size, false);
  gelu_columns(inner, inner_size, m, 0, inner_size);
  output_.columns(g, m, inner, inner_size, x, hidden, 0, hidden, true);
  if (!pre_ln_) ln2_.rows(x, hidden, x, hidden, 0, m);
}

void EncoderLayer::attention_heads(const Slice& s, const float* in, Workspace& ws, Eigen::Index first,
                                   Eigen::Index last, int scratch, bool project) const {
  if (first == last) return;
  const Eigen::Index rows = s.rows(), hidden = s.x.ld, t = s.tokens, d = head_dim_, ld = s.qkv.ld;
  const Gemm g = gemm_for(ws);
  if (project) {
    qkv_.columns(g, rows, in, hidden, s.qkv.data, ld, 3 * d * first, 3 * d * last, false);
  }
  // Each head reads its Q, K and V in place (row stride 3H) and writes its context columns in place.
  // With the packed kernel, keys and values are packed for it first (scratch too).
  const bool packed = g == Gemm::packed || g == Gemm::bf16;  // bf16 is for weights only
  float* scores = ws.scratch(scratch, Workspace::head_scores, t, t).data();
  float* packed_keys =
      packed ? ws.scratch(scratch, Workspace::packed_keys, packed_size(t, d), 1).data() : nullptr;
  float* packed_values =
      packed ? ws.scratch(scratch, Workspace::packed_values, packed_size(d, t), 1).data() : nullptr;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  for (size_t b = 0; b < s.lengths.size(); ++b) {
    const Eigen::Index keys = s.lengths[b];  // padding keys are masked out
    for (Eigen::Index head = first; head < last; ++head) {
      const float *q = s.qkv.data + static_cast<Eigen::Index>(b) * t * ld + 3 * d * head, *k = q + d,
                  *v = q + 2 * d;
      float* out = s.context.data + static_cast<Eigen::Index>(b) * t * hidden + head * d;
      if (packed) {
        gemm_packed(t, 0, keys, q, ld, pack_rows(k, keys, d, ld, packed_keys), nullptr, false, scores, keys);
        softmax_scaled(scores, keys, t, keys, scale);
        gemm_packed(t, 0, d, scores, keys, pack_columns(v, keys, d, ld, packed_values), nullptr, false, out,
                    hidden);
      } else {
        gemm_nt(g, t, keys, d, q, ld, k, ld, 0.0f, scores, keys);
        softmax_scaled(scores, keys, t, keys, scale);
        gemm_nn(g, t, d, keys, scores, keys, v, ld, out, hidden);
      }
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
  attention_output_.linear(context, out);
}

void EncoderLayer::feed_forward_reference(const ConstRef& x, Workspace& ws, Ref out) const {
  MatrixMap inner = ws.get(Workspace::intermediate, x.rows(), intermediate_.linear.out_features());
  intermediate_.linear(x, inner);
  gelu(inner);
  output_.linear(inner, out);
}

}  // namespace ee::model
