#pragma once
// The numeric building blocks, as plain structs holding *views* of weights (CTranslate2's layers hold
// references, never copies). Each matches the PyTorch op of the same name in models/train/multiexit.py.
// Two tiers: the reference ops (Linear, LayerNorm, gelu, softmax_rows: Eigen expressions, one op at a time,
// std::erf), which the exit heads, the embeddings and EncoderLayer::forward_reference use; and the fast
// kernels below them (GEMM on raw row-major storage, fused epilogues) that EncoderLayer::forward is built
// from. Tests hold the fast kernels to the reference ones.
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
  // Rows [first, last) of x (row stride ldx) into y (row stride ldy); x == y is allowed.
  void rows(const float* x, Eigen::Index ldx, float* y, Eigen::Index ldy, Eigen::Index first,
            Eigen::Index last) const;
};

// Exact (erf) GELU, in place: torch.nn.functional.gelu's default.
void gelu(Ref x);
// Softmax over each row, in place.
void softmax_rows(Ref x);

// --- fast kernels: row-major storage given as pointer + leading dimension (elements between rows) ---

// Which library multiplies matrices. OpenBLAS reaches ~95 % of this machine's SGEMM peak on the layer's
// shapes; Eigen's own GEMM ~60-80 % (bench/RESULTS.md, "Engine speed").
enum class Gemm { blas, eigen };

// C = A B^T + beta C: A is m x k, B is n x k (a torch.nn.Linear weight), C is m x n.
void gemm_nt(Gemm g, Eigen::Index m, Eigen::Index n, Eigen::Index k, const float* a, Eigen::Index lda,
             const float* b, Eigen::Index ldb, float beta, float* c, Eigen::Index ldc);
// C = A B: A is m x k, B is k x n, C is m x n (overwritten).
void gemm_nn(Gemm g, Eigen::Index m, Eigen::Index n, Eigen::Index k, const float* a, Eigen::Index lda,
             const float* b, Eigen::Index ldb, float* c, Eigen::Index ldc);
// Makes OpenBLAS run every call on the calling thread: the engine splits work across its own pool
// (Workspace), and a second pool spinning on the same cores would fight it. Idempotent, thread-safe.
void blas_single_threaded();

// Columns [c0, c1) of rows [0, rows) of y: y += bias.
void add_bias(float* y, Eigen::Index ldy, Eigen::Index rows, const float* bias, Eigen::Index c0, Eigen::Index c1);
// The same, then exact GELU: one pass over data the GEMM just left in cache.
void add_bias_gelu(float* y, Eigen::Index ldy, Eigen::Index rows, const float* bias, Eigen::Index c0,
                   Eigen::Index c1);
// Softmax of each row of a rows x cols block (row stride ld) of s * scale, in place.
void softmax_scaled(float* s, Eigen::Index ld, Eigen::Index rows, Eigen::Index cols, float scale);
// erf to within a few float ulp (a 13/8-degree rational fit on [-4, 4], as Eigen's fast erf), written
// branch-free so the compiler vectorises loops over it; std::erf does not vectorise.
float erf_fast(float x);

}  // namespace ee::model
