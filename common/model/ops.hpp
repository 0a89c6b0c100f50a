#pragma once
// The numeric building blocks, as plain structs holding *views* of weights (CTranslate2's layers hold
// references, never copies). Each matches the PyTorch op of the same name in models/train/multiexit.py.
#include "common/model/tensor.hpp"

namespace ee::model {

using ConstRef = Eigen::Ref<const Matrix>;
using Ref = Eigen::Ref<Matrix>;

// y = x W^T + b, W stored [out, in] as in torch.nn.Linear.
struct Linear {
  ConstMatrixMap weight;
  ConstVectorMap bias;
  void operator()(const ConstRef& x, Ref y) const;
  Eigen::Index out_features() const { return weight.rows(); }
};

// Row-wise LayerNorm with biased variance, as torch.nn.LayerNorm. `x` and `y` may be the same matrix.
struct LayerNorm {
  ConstVectorMap weight;
  ConstVectorMap bias;
  float eps;
  void operator()(const ConstRef& x, Ref y) const;
};

// Exact (erf) GELU, in place: torch.nn.functional.gelu's default.
void gelu(Ref x);
// Softmax over each row, in place.
void softmax_rows(Ref x);

}  // namespace ee::model
