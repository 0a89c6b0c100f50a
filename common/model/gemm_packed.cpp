// gemm_packed (ops.hpp): C = A B + bias (+ C), B in panels of 32 columns (Panels): weights packed once at
// load, an attention's keys and values packed per call. One micro-kernel computes a block of up to 12 rows
// x 32 columns of C in 24 AVX-512 accumulators over the whole of k: each step loads the 32 values of one
// row of B (two vectors, contiguous in the panel) and broadcasts one value from each of the 12 rows of A. A
// weight panel (32 x k floats, 96 KB at k = 768) stays in L2 while every row block of A streams past it, so
// the weights are read from memory once per call, and unlike OpenBLAS nothing is repacked for them. Bias
// and residual are folded into the accumulators' initial values; the column tail is masked on store
// (panel loads are whole: a packed panel always holds 32 columns). Compiled for AVX-512F by function
// attribute, so a binary built for a baseline -march still carries it and packed_gemm_supported() decides
// at run time. Panel loads are unaligned loads: Eigen's allocator aligns to the widest vector of the
// -march it was built for (16 bytes in a baseline build), and on aligned data they cost the same.
#include <immintrin.h>

#include <algorithm>

#include "common/model/ops.hpp"

namespace ee::model {
namespace {

constexpr int kRows = 12;  // rows of one micro-kernel call: 24 accumulators + 2 weight vectors of 32 zmm

template <int Rows>
__attribute__((target("avx512f"))) void micro_kernel(Eigen::Index k, const float* a, Eigen::Index lda,
                                                     const float* panel, const float* bias, bool accumulate,
                                                     float* c, Eigen::Index ldc, __mmask16 mask0,
                                                     __mmask16 mask1) {
  __m512 lo[Rows], hi[Rows];
  const __m512 bias_lo = bias ? _mm512_maskz_loadu_ps(mask0, bias) : _mm512_setzero_ps();
  const __m512 bias_hi = bias ? _mm512_maskz_loadu_ps(mask1, bias + 16) : _mm512_setzero_ps();
  for (int i = 0; i < Rows; ++i) {
    lo[i] = bias_lo;
    hi[i] = bias_hi;
    if (accumulate) {
      lo[i] = _mm512_add_ps(lo[i], _mm512_maskz_loadu_ps(mask0, c + i * ldc));
      hi[i] = _mm512_add_ps(hi[i], _mm512_maskz_loadu_ps(mask1, c + i * ldc + 16));
    }
  }
  for (Eigen::Index kk = 0; kk < k; ++kk) {
    // The panel's stride is a constant: one more register in this loop (12 row pointers already) and GCC
    // spills all 24 accumulators on every step.
    const __m512 w_lo = _mm512_loadu_ps(panel + kk * kPanel),
                 w_hi = _mm512_loadu_ps(panel + kk * kPanel + 16);
    for (int i = 0; i < Rows; ++i) {
      const __m512 x = _mm512_set1_ps(a[i * lda + kk]);
      lo[i] = _mm512_fmadd_ps(x, w_lo, lo[i]);
      hi[i] = _mm512_fmadd_ps(x, w_hi, hi[i]);
    }
  }
  for (int i = 0; i < Rows; ++i) {
    _mm512_mask_storeu_ps(c + i * ldc, mask0, lo[i]);
    _mm512_mask_storeu_ps(c + i * ldc + 16, mask1, hi[i]);
  }
}

using MicroKernel = void (*)(Eigen::Index, const float*, Eigen::Index, const float*, const float*, bool,
                             float*, Eigen::Index, __mmask16, __mmask16);
constexpr MicroKernel kKernels[kRows + 1] = {
    nullptr,          micro_kernel<1>,  micro_kernel<2>, micro_kernel<3>, micro_kernel<4>,
    micro_kernel<5>,  micro_kernel<6>,  micro_kernel<7>, micro_kernel<8>, micro_kernel<9>,
    micro_kernel<10>, micro_kernel<11>, micro_kernel<12>};

}  // namespace

Panels pack_rows(const float* w, Eigen::Index n, Eigen::Index k, Eigen::Index ldw, float* out) {
  for (Eigen::Index col = 0; col < n; ++col) {
    float* to = out + (col / kPanel) * kPanel * k + col % kPanel;
    for (Eigen::Index kk = 0; kk < k; ++kk) to[kk * kPanel] = w[col * ldw + kk];
  }
  return {out, k};
}

Panels pack_columns(const float* b, Eigen::Index k, Eigen::Index n, Eigen::Index ldb, float* out) {
  for (Eigen::Index col = 0; col < n; col += kPanel) {
    const Eigen::Index width = std::min(kPanel, n - col);
    float* to = out + col * k;
    for (Eigen::Index kk = 0; kk < k; ++kk) std::copy_n(b + kk * ldb + col, width, to + kk * kPanel);
  }
  return {out, k};
}

PackedWeights pack_weights(const float* w, Eigen::Index n, Eigen::Index k) {
  PackedWeights p{n, k, {}};
  p.data.assign(static_cast<size_t>(packed_size(n, k)), 0.0f);
  pack_rows(w, n, k, k, p.data.data());
  return p;
}

bool packed_gemm_supported() {
  static const bool supported = __builtin_cpu_supports("avx512f");
  return supported;
}

void gemm_packed(Eigen::Index m, Eigen::Index c0, Eigen::Index c1, const float* a, Eigen::Index lda,
                 const Panels& b, const float* bias, bool accumulate, float* c, Eigen::Index ldc) {
  for (Eigen::Index col = c0; col < c1; col += kPanel) {
    const Eigen::Index width = std::min(kPanel, c1 - col);
    const __mmask16 mask0 = lane_mask(width), mask1 = lane_mask(width - 16);
    const float* panel = b.data + col * b.k;
    const float* panel_bias = bias ? bias + col : nullptr;
    for (Eigen::Index row = 0; row < m; row += kRows) {
      const auto rows = static_cast<int>(std::min<Eigen::Index>(kRows, m - row));
      kKernels[rows](b.k, a + row * lda, lda, panel, panel_bias, accumulate, c + row * ldc + col, ldc, mask0,
                     mask1);
    }
  }
}

}  // namespace ee::model
