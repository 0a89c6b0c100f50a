#pragma once
// A batch of hidden states between two encoder layers: what crosses the split.
#include <cassert>
#include <vector>

#include "common/model/tensor.hpp"

namespace ee::model {

struct Hidden {
  // (batch * tokens) x hidden_size; sample b owns rows [b * tokens, (b + 1) * tokens).
  Matrix x;
  // Rows per sample (every sample is padded to the same count).
  int tokens = 0;
  // Real tokens of each sample; rows past it are padding, masked out of attention. size() == batch.
  std::vector<int> lengths;
  // Encoder layers already applied: 0 = embeddings output, L = after the last layer.
  int depth = 0;

  int batch() const { return static_cast<int>(lengths.size()); }
  auto sample(int b) { return x.middleRows(static_cast<Eigen::Index>(b) * tokens, tokens); }
  auto sample(int b) const { return x.middleRows(static_cast<Eigen::Index>(b) * tokens, tokens); }
};

}  // namespace ee::model
