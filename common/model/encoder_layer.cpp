#include "common/model/encoder_layer.hpp"

#include <cmath>

namespace ee::model {
namespace {

// HuggingFace tensor names: BERT's `attention.self` / `attention.output.LayerNorm` / `output.LayerNorm`,
// ViT's `attention.attention` / `layernorm_before` / `layernorm_after`.
struct LayerNames {
  std::string self, ln1, ln2;
};

LayerNames names_for(const Config& c, int index) {
  if (c.architecture == Architecture::vit) {
    const std::string p = "vit.encoder.layer." + std::to_string(index) + ".";
    return {p + "attention.attention.", p + "layernorm_before.", p + "layernorm_after."};
  }
  const std::string p = "bert.encoder.layer." + std::to_string(index) + ".";
  return {p + "attention.self.", p + "attention.output.LayerNorm.", p + "output.LayerNorm."};
}

std::string layer_prefix(const Config& c, int index) {
  return std::string(c.architecture == Architecture::vit ? "vit" : "bert") + ".encoder.layer." +
         std::to_string(index) + ".";
}

Linear linear(WeightLoader& w, const std::string& name, int64_t out, int64_t in) {
  return {w.get(name + "weight", {out, in}), w.vec(name + "bias", out)};
}

LayerNorm layer_norm(WeightLoader& w, const std::string& name, int64_t size, float eps) {
  return {w.vec(name + "weight", size), w.vec(name + "bias", size), eps};
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
      attention_output_(linear(w, layer_prefix(c, index) + "attention.output.dense.", c.hidden_size,
                               c.hidden_size)),
      intermediate_(linear(w, layer_prefix(c, index) + "intermediate.dense.", c.intermediate_size,
                           c.hidden_size)),
      output_(linear(w, layer_prefix(c, index) + "output.dense.", c.hidden_size, c.intermediate_size)),
      ln1_(layer_norm(w, names_for(c, index).ln1, c.hidden_size, c.layer_norm_eps)),
      ln2_(layer_norm(w, names_for(c, index).ln2, c.hidden_size, c.layer_norm_eps)) {
  const int64_t h = c.hidden_size;
  const LayerNames n = names_for(c, index);
  const char* parts[] = {"query.", "key.", "value."};
  for (int i = 0; i < 3; ++i) {
    const Linear part = linear(w, n.self + parts[i], h, h);
    qkv_weight_.middleRows(i * h, h) = part.weight;
    qkv_bias_.segment(i * h, h) = part.bias;
  }
}

void EncoderLayer::forward(Hidden& h, Workspace& ws) const {
  const Eigen::Index rows = h.x.rows(), hidden = h.x.cols();
  MatrixMap branch = ws.get(Workspace::projected, rows, hidden);
  if (pre_ln_) {
    MatrixMap normed = ws.get(Workspace::normed, rows, hidden);
    ln1_(h.x, normed);
    attention(normed, h, ws, branch);
    h.x += branch;
    ln2_(h.x, normed);
    feed_forward(normed, ws, branch);
    h.x += branch;
  } else {
    attention(h.x, h, ws, branch);
    h.x += branch;
    ln1_(h.x, h.x);
    feed_forward(h.x, ws, branch);
    h.x += branch;
    ln2_(h.x, h.x);
  }
}

void EncoderLayer::attention(const ConstRef& x, const Hidden& h, Workspace& ws, Ref out) const {
  const Eigen::Index rows = x.rows(), hidden = x.cols(), t = h.tokens, d = head_dim_;
  MatrixMap qkv = ws.get(Workspace::qkv, rows, 3 * hidden);
  qkv_(x, qkv);
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

void EncoderLayer::feed_forward(const ConstRef& x, Workspace& ws, Ref out) const {
  MatrixMap inner = ws.get(Workspace::intermediate, x.rows(), intermediate_.out_features());
  intermediate_(x, inner);
  gelu(inner);
  output_(inner, out);
}

}  // namespace ee::model
