// GCC 12 flags its own AVX-512 intrinsics, inlined into Eigen's GEMM packing under sanitizers, as
// "used uninitialized" (GCC bug 105593, the false positive the root CMakeLists.txt silences as
// maybe-uninitialized): not a finding in this file, so it is silenced here, for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "common/model/ops.hpp"

#include <cblas.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <string>

namespace ee::model {
namespace {

using Stride = Eigen::OuterStride<>;
using ConstStrided = Eigen::Map<const Matrix, 0, Stride>;
using Strided = Eigen::Map<Matrix, 0, Stride>;

blasint blas_int(Eigen::Index v) {
  return static_cast<blasint>(v);
}

// OpenBLAS picks its kernels by CPU model, and a model newer than the library gets its generic SSE3
// ("Prescott") kernels, far below what the CPU can do (docs/ENGINE.md). Said once, on the first product
// that uses OpenBLAS (with AVX-512F the engine uses none).
void check_blas_core() {
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string core = openblas_get_corename();
    const bool modern = core == "Haswell" || core == "Zen" || core == "SkylakeX" || core == "Cooperlake" ||
                        core == "SapphireRapids";
    if (modern || !__builtin_cpu_supports("avx2")) return;
    spdlog::warn(
        "OpenBLAS runs its {} kernels on this AVX2 CPU, several times slower than it could: set "
        "OPENBLAS_CORETYPE={} (docs/ENGINE.md)",
        core, __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell");
  });
}

}  // namespace

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

void LayerNorm::rows(const float* x, Eigen::Index ldx, float* y, Eigen::Index ldy, Eigen::Index first,
                     Eigen::Index last) const {
  const Eigen::Index n = weight.size();
  (*this)(ConstStrided(x + first * ldx, last - first, n, Stride(ldx)),
          Strided(y + first * ldy, last - first, n, Stride(ldy)));
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

Gemm effective_gemm(Gemm requested) {
  Gemm g = requested;
  if (g == Gemm::bf16 && !bf16_gemm_supported()) g = Gemm::packed;
  if (g == Gemm::packed && !packed_gemm_supported()) g = Gemm::blas;
  return g;
}

std::string_view to_string(Gemm g) {
  switch (g) {
    case Gemm::packed:
      return "packed";
    case Gemm::blas:
      return "blas";
    case Gemm::eigen:
      return "eigen";
    case Gemm::bf16:
      return "bf16";
  }
  return "unknown";
}

void gemm_nt(Gemm g, Eigen::Index m, Eigen::Index n, Eigen::Index k, const float* a, Eigen::Index lda,
             const float* b, Eigen::Index ldb, float beta, float* c, Eigen::Index ldc) {
  if (m == 0 || n == 0) return;
  if (g == Gemm::blas) {
    check_blas_core();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blas_int(m), blas_int(n), blas_int(k), 1.0f, a,
                blas_int(lda), b, blas_int(ldb), beta, c, blas_int(ldc));
    return;
  }
  Strided out(c, m, n, Stride(ldc));
  const auto product = ConstStrided(a, m, k, Stride(lda)) * ConstStrided(b, n, k, Stride(ldb)).transpose();
  if (beta == 0.0f) {
    out.noalias() = product;
  } else {
    out *= beta;
    out.noalias() += product;
  }
}

void gemm_nn(Gemm g, Eigen::Index m, Eigen::Index n, Eigen::Index k, const float* a, Eigen::Index lda,
             const float* b, Eigen::Index ldb, float* c, Eigen::Index ldc) {
  if (m == 0 || n == 0) return;
  if (g == Gemm::blas) {
    check_blas_core();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blas_int(m), blas_int(n), blas_int(k), 1.0f, a,
                blas_int(lda), b, blas_int(ldb), 0.0f, c, blas_int(ldc));
    return;
  }
  Strided(c, m, n, Stride(ldc)).noalias() =
      ConstStrided(a, m, k, Stride(lda)) * ConstStrided(b, k, n, Stride(ldb));
}

void blas_single_threaded() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

float erf_fast(float v) {
  const float x = v < -4.0f ? -4.0f : (v > 4.0f ? 4.0f : v);  // erf is +-1 in float beyond +-4
  const float x2 = x * x;
  float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
  p = x2 * p + -2.10102402082508e-06f;
  p = x2 * p + -5.69250639462346e-05f;
  p = x2 * p + -7.34990630326855e-04f;
  p = x2 * p + -2.95459980854025e-03f;
  p = x2 * p + -1.60960333262415e-02f;
  p = x * p;
  float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
  q = x2 * q + -1.68282697438203e-03f;
  q = x2 * q + -7.37332916720468e-03f;
  q = x2 * q + -1.42647390514189e-02f;
  return p / q;
}

void add_bias(float* y, Eigen::Index ldy, Eigen::Index rows, const float* bias, Eigen::Index c0,
              Eigen::Index c1) {
  for (Eigen::Index r = 0; r < rows; ++r) {
    float* row = y + r * ldy;
    for (Eigen::Index c = c0; c < c1; ++c) row[c] += bias[c];
  }
}

void gelu_columns(float* y, Eigen::Index ldy, Eigen::Index rows, Eigen::Index c0, Eigen::Index c1) {
  const auto inv_sqrt2 = static_cast<float>(M_SQRT1_2);
  for (Eigen::Index r = 0; r < rows; ++r) {
    float* row = y + r * ldy;
    for (Eigen::Index c = c0; c < c1; ++c) row[c] = 0.5f * row[c] * (1.0f + erf_fast(row[c] * inv_sqrt2));
  }
}

float exp_fast(float v) {
  const float x = v < -87.0f ? -87.0f : v;  // e^-87 is near FLT_MIN; lower values only underflow
  // e^x = 2^n e^r, n = round(x / ln 2), |r| <= ln(2) / 2 (ln 2 split in two for an exact n ln 2).
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
}

void softmax_scaled(float* s, Eigen::Index ld, Eigen::Index rows, Eigen::Index cols, float scale) {
  for (Eigen::Index r = 0; r < rows; ++r) {
    float* row = s + r * ld;
    // Explicit packets: GCC does not vectorise a loop over exp_fast, and Eigen's own exp expression peels
    // unaligned elements into scalar calls. The tail (< one packet) is scalar. The maximum too: a scalar
    // running maximum is a chain of dependent max instructions, each waiting for the one before
    // (docs/ENGINE.md, "Vectorised math").
    using Packet = Eigen::internal::packet_traits<float>::type;
    constexpr Eigen::Index lanes = Eigen::internal::packet_traits<float>::size;
    float max = row[0];
    Eigen::Index e = 0;
    if (cols >= lanes) {
      Packet m = Eigen::internal::ploadu<Packet>(row);
      for (e = lanes; e + lanes <= cols; e += lanes)
        m = Eigen::internal::pmax(m, Eigen::internal::ploadu<Packet>(row + e));
      max = Eigen::internal::predux_max(m);
    }
    for (; e < cols; ++e) max = row[e] > max ? row[e] : max;
    const Packet pmax = Eigen::internal::pset1<Packet>(max), pscale = Eigen::internal::pset1<Packet>(scale);
    e = 0;
    for (; e + lanes <= cols; e += lanes) {
      const Packet v = Eigen::internal::ploadu<Packet>(row + e);
      Eigen::internal::pstoreu(
          row + e, Eigen::internal::pexp(Eigen::internal::pmul(Eigen::internal::psub(v, pmax), pscale)));
    }
    for (; e < cols; ++e) row[e] = exp_fast((row[e] - max) * scale);
    // 16 partial sums: a float sum only vectorises when the code itself says the order may change.
    float partial[16] = {};
    Eigen::Index c = 0;
    for (; c + 16 <= cols; c += 16) {
      for (int j = 0; j < 16; ++j) partial[j] += row[c + j];
    }
    float sum = 0.0f;
    for (; c < cols; ++c) sum += row[c];
    for (float v : partial) sum += v;
    const float inv = 1.0f / sum;
    for (c = 0; c < cols; ++c) row[c] *= inv;
  }
}

}  // namespace ee::model
