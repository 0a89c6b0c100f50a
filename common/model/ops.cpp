#include "common/model/ops.hpp"

#include <cmath>

namespace ee::model {

void Linear::operator()(const ConstRef& x, Ref y) const {
  y.noalias() = x * weight.transpose();
  y.rowwise() += bias;
}

void LayerNorm::operator()(const ConstRef& x, Ref y) const {
  const auto n = static_cast<float>(x.cols());
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    const auto row = x.row(r).array();
    const float mean = row.sum() / n;
    const float var = (row - mean).square().sum() / n;
    const float inv = 1.0f / std::sqrt(var + eps);
    y.row(r) = ((row - mean) * inv * weight.array() + bias.array()).matrix();
  }
}

void gelu(Ref x) {
  x = x.unaryExpr([](float v) { return 0.5f * v * (1.0f + std::erf(v * static_cast<float>(M_SQRT1_2))); });
}

void softmax_rows(Ref x) {
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    auto row = x.row(r).array();
    row = (row - row.maxCoeff()).exp();
    row /= row.sum();
  }
}

}  // namespace ee::model
