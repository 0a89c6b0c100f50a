#pragma once
// The numeric building blocks, as plain structs holding *views* of weights (CTranslate2's layers hold
// references, never copies). Each matches the PyTorch op of the same name in models/train/multiexit.py.
// Two tiers: the reference ops (Linear, LayerNorm, gelu, softmax_rows: Eigen expressions, one op at a time,
// std::erf), which the exit heads, the embeddings and EncoderLayer::forward_reference use; and the fast
// kernels below them (GEMM on raw row-major storage, fused epilogues) that EncoderLayer::forward is built
// from. Tests hold the fast kernels to the reference ones.
#include <cstddef>
#include <cstdint>
#include <new>
#include <string_view>
#include <vector>

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

// Which kernel multiplies activations by weights. packed: our AVX-512 kernel on weights repacked at load
// (below); OpenBLAS packs the weights again on every call and pays a fixed cost that dominates 17-row
// products, so on the engine's small shapes packed is the faster by far (bench/RESULTS.md, ablation). blas:
// OpenBLAS. eigen: Eigen's own GEMM. Where the CPU lacks AVX-512F, packed runs as blas. The attention's
// per-head products follow the same choice: packed runs them on the same kernel (keys and values packed per
// call). bench/RESULTS.md has the ablation. bf16: weights rounded to bfloat16 once, activations on every
// call, fp32 accumulation, on Intel AMX tiles (gemm_bf16): a reduced-precision choice, never the default;
// the attention's products stay fp32 (packed). Where the CPU lacks AMX-BF16, bf16 runs as packed.
enum class Gemm { packed, blas, eigen, bf16 };

// C = A B^T + beta C: A is m x k, B is n x k (a torch.nn.Linear weight), C is m x n.
void gemm_nt(Gemm g, Eigen::Index m, Eigen::Index n, Eigen::Index k, const float* a, Eigen::Index lda,
             const float* b, Eigen::Index ldb, float beta, float* c, Eigen::Index ldc);
// C = A B: A is m x k, B is k x n, C is m x n (overwritten).
void gemm_nn(Gemm g, Eigen::Index m, Eigen::Index n, Eigen::Index k, const float* a, Eigen::Index lda,
             const float* b, Eigen::Index ldb, float* c, Eigen::Index ldc);
// gemm_packed's right-hand operand B (k x n) in panels of kPanel columns, each stored k-major (the kPanel
// values of one row of B contiguous): panel p starts at data + p * kPanel * k. Weights are packed into this
// form once at load (PackedWeights), an attention's keys and values on every call.
constexpr Eigen::Index kPanel = 32;
struct Panels {
  const float* data;
  Eigen::Index k;
};
// The mask of the first n lanes of a 16-float AVX-512 vector (n clamped to [0, 16]): the kernels' column
// and k tails.
constexpr uint16_t lane_mask(Eigen::Index n) {
  return n >= 16 ? uint16_t{0xffff} : n <= 0 ? uint16_t{0} : static_cast<uint16_t>((1u << n) - 1);
}
// Floats a packed n-column B with k rows takes: whole panels.
constexpr Eigen::Index packed_size(Eigen::Index n, Eigen::Index k) {
  return (n + kPanel - 1) / kPanel * kPanel * k;
}
// Packs B = W^T for W [n x k] with row stride ldw (a torch.nn.Linear weight, an attention's keys) into
// `out`, which must hold packed_size(n, k) floats: gemm_packed reads whole panels. Columns past n in the
// last panel are left as they were: whatever they hold never reaches C (stores are masked).
Panels pack_rows(const float* w, Eigen::Index n, Eigen::Index k, Eigen::Index ldw, float* out);
// Packs B [k x n] itself, row stride ldb (an attention's values), the same way and with the same contract.
Panels pack_columns(const float* b, Eigen::Index k, Eigen::Index n, Eigen::Index ldb, float* out);
// A weight W [n x k] (torch.nn.Linear layout) packed once, zero-padded to whole panels.
struct PackedWeights {
  Eigen::Index n = 0, k = 0;
  std::vector<float, Eigen::aligned_allocator<float>> data;
  Panels panels() const { return {data.data(), k}; }
};
PackedWeights pack_weights(const float* w, Eigen::Index n, Eigen::Index k);
// Whether this CPU runs gemm_packed (AVX-512F, checked at run time: the rest of the binary may be built
// for a baseline -march).
bool packed_gemm_supported();
// Columns [c0, c1) of C (m rows, row stride ldc) = A B[:, c0:c1] + bias[c0:c1] (bias may be null), plus
// their previous value if `accumulate` (a residual connection, fused). A is m x k with row stride lda; c0
// is a multiple of kPanel.
void gemm_packed(Eigen::Index m, Eigen::Index c0, Eigen::Index c1, const float* a, Eigen::Index lda,
                 const Panels& b, const float* bias, bool accumulate, float* c, Eigen::Index ldc);
// std::vector's allocator for buffers that AMX tiles read: a tile row is 64 bytes, and one that straddles two
// cache lines costs a second line on every load.
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, size_t) { ::operator delete (p, std::align_val_t{64}); }
  bool operator==(const CacheLineAllocator&) const { return true; }
};
// A weight W [n x k] rounded to bfloat16 (to nearest even) and packed for gemm_bf16's AMX tiles: panels of
// kPanel columns, each k_padded / 2 rows of kPanel pairs (W[c][2i], W[c][2i+1]); k_padded is k rounded up to
// 32 and the padding is zero.
struct PackedBf16 {
  Eigen::Index n = 0, k = 0, k_padded = 0;
  std::vector<uint16_t, CacheLineAllocator<uint16_t>> data;
};
PackedBf16 pack_weights_bf16(const float* w, Eigen::Index n, Eigen::Index k);
// Whether this CPU and OS run gemm_bf16 (AMX-BF16 and AVX512-BF16, and Linux's permission to use AMX tiles,
// asked for on the first call).
bool bf16_gemm_supported();
// gemm_packed's contract with a bf16 W: columns [c0, c1) of C = round(A) round(W)^T + bias (+ C), c0 a
// multiple of kPanel. Allocates only the first time a thread sees a product this large (A's rounded copy).
void gemm_bf16(Eigen::Index m, Eigen::Index c0, Eigen::Index c1, const float* a, Eigen::Index lda,
               const PackedBf16& b, const float* bias, bool accumulate, float* c, Eigen::Index ldc);
// The kernel that really runs when `requested` is asked for on this CPU: bf16 runs as packed without
// AMX-BF16, packed as blas without AVX-512F. What a peer is told (wire::Hello) and what the engine runs.
Gemm effective_gemm(Gemm requested);
std::string_view to_string(Gemm g);  // "packed" | "blas" | "eigen" | "bf16"
// Makes OpenBLAS run every call on the calling thread: the engine splits work across its own pool
// (Workspace), and a second pool spinning on the same cores would fight it. Idempotent, thread-safe.
void blas_single_threaded();

// Columns [c0, c1) of rows [0, rows) of y: y += bias.
void add_bias(float* y, Eigen::Index ldy, Eigen::Index rows, const float* bias, Eigen::Index c0,
              Eigen::Index c1);
// Exact GELU of columns [c0, c1) of rows [0, rows) of y, in place: one pass over data the GEMM has just
// left in cache, with erf_fast so the loop vectorises.
void gelu_columns(float* y, Eigen::Index ldy, Eigen::Index rows, Eigen::Index c0, Eigen::Index c1);
// Softmax of each row of a rows x cols block (row stride ld) of s * scale, in place; the exponentials on
// explicit SIMD packets (Eigen's exp expression peels unaligned elements into scalar libm calls, most of a
// 17-key row), exp_fast for the tail.
void softmax_scaled(float* s, Eigen::Index ld, Eigen::Index rows, Eigen::Index cols, float scale);
// erf to within a few float ulp (a 13/8-degree rational fit on [-4, 4], as Eigen's fast erf), written
// branch-free so the compiler vectorises loops over it; std::erf does not vectorise.
float erf_fast(float x);
// e^x to within a few float ulp for x <= 88 (Cody-Waite reduction, degree-6 polynomial), branch-free.
float exp_fast(float x);

}  // namespace ee::model
