#pragma once
// The one tensor type of the runtime: a row-major float matrix, rows = tokens (of one or more samples),
// columns = features. Weights are read-only Maps into the memory-mapped safetensors file.
#include <Eigen/Core>

namespace ee::model {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vector = Eigen::Matrix<float, 1, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<Matrix>;
using ConstMatrixMap = Eigen::Map<const Matrix>;
using ConstVectorMap = Eigen::Map<const Vector>;

}  // namespace ee::model
