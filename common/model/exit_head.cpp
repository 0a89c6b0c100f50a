// GCC 12 flags its own AVX-512 intrinsics, inlined into Eigen's kernels under sanitizers, as "used
// uninitialized" (GCC bug 105593, the false positive the root CMakeLists.txt silences as
// maybe-uninitialized): not a finding in this file, so it is silenced here, for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "common/model/exit_head.hpp"

namespace ee::model {

ExitHead::ExitHead(const Config& c, WeightLoader& w, int layer)
    : classifier_{
          w.get("exits." + std::to_string(layer) + ".classifier.weight", {c.num_labels(), c.hidden_size}),
          w.vec("exits." + std::to_string(layer) + ".classifier.bias", c.num_labels())} {
  const std::string p = "exits." + std::to_string(layer) + ".";
  if (c.early_exit.head == ExitHeadKind::layernorm) {
    norm_.emplace(LayerNorm{w.vec(p + "layernorm.weight", c.hidden_size),
                            w.vec(p + "layernorm.bias", c.hidden_size), c.layer_norm_eps});
  } else {
    pooler_.emplace(Linear{w.get(p + "pooler.dense.weight", {c.hidden_size, c.hidden_size}),
                           w.vec(p + "pooler.dense.bias", c.hidden_size)});
  }
}

Matrix ExitHead::forward(const Hidden& h, Workspace& ws) const {
  const Eigen::Index hidden = h.x.cols();
  MatrixMap cls = ws.get(Workspace::cls, h.batch(), hidden);
  for (int b = 0; b < h.batch(); ++b) cls.row(b) = h.x.row(static_cast<Eigen::Index>(b) * h.tokens);
  MatrixMap features = ws.get(Workspace::pooled, h.batch(), hidden);
  Matrix logits(h.batch(), classifier_.out_features());
  // Row by row: Eigen picks another product kernel for one row than for several, and a sample's answer
  // must not depend on the batch it happens to share (the cloud re-batches samples from many edges).
  for (Eigen::Index b = 0; b < h.batch(); ++b) {
    if (norm_) {
      (*norm_)(cls.row(b), features.row(b));
    } else {
      (*pooler_)(cls.row(b), features.row(b));
      features.row(b) = features.row(b).array().tanh().matrix();
    }
    classifier_(features.row(b), logits.row(b));
  }
  return logits;
}

}  // namespace ee::model
