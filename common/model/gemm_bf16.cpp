// gemm_bf16 (ops.hpp): C = A W^T + bias (+ C) on Intel AMX tiles, W rounded to bfloat16 once
// (pack_weights_bf16), A rounded on every call, products accumulated in fp32 inside the tile unit. One step
// multiplies a 32-row block of A by a 32-column panel of W: two A tiles (16 rows x 32 k each) and two W tiles
// (16 pairs of k x 16 columns, AMX's "VNNI" layout: the two k values of a pair side by side) into four fp32
// accumulator tiles, 32 values of k per step over the whole of k. A W panel (k/2 x 128 bytes, 192 KB at k =
// 3072) stays in L2 while the row blocks of A stream past it, as in gemm_packed, and the next panel is
// prefetched into L2 meanwhile, a few lines per step (else each panel's first row block waits on memory). The
// accumulators go through a 4 KB buffer on the stack, where bias and residual are added on the way to C
// (a tile cannot add a vector).
//
// A is rounded into a per-thread buffer (thread_local: every thread of the engine's pool is long-lived, so
// it grows once), zero-padded to whole tiles: k to a multiple of 32, rows to a multiple of 16; a product
// with more rows than fit 1 MB of it runs chunk by chunk, each chunk past every panel. Padding rows
// are computed and dropped: a 17-row product pays for 32, still far ahead of fp32 on this unit.
//
// Compiled for AMX and AVX-512 by function attribute: the rest of the binary may be built for a baseline
// -march, and bf16_gemm_supported() decides at run time (CPUID, then the Linux permission every process
// must ask for before its first tile instruction).
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <vector>

#include "common/model/ops.hpp"

namespace ee::model {
namespace {

constexpr Eigen::Index kTileK = 32;            // bf16 values of k in one tile row (64 bytes)
constexpr Eigen::Index kTileRows = 16;         // rows of an A tile, pairs of k of a W tile
constexpr Eigen::Index kChunkBytes = 1 << 20;  // rounded A per row chunk: half of L2

// Round to nearest even, as torch's float -> bfloat16 conversion and AVX512-BF16's vcvtneps2bf16 (which
// also flushes denormals to zero; the tile multiply ignores denormal inputs either way).
uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN stays NaN
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// LDTILECFG's 64-byte operand: palette 1, eight tiles of 16 rows x 64 bytes (tiles 0-3 accumulate C,
// 4-5 hold A, 6-7 hold W).
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t bytes_per_row[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};

// Rows [0, m) of A (row stride lda) rounded into `out` in tile order: the 16 x 32 tile of row block i
// and k step j (512 values) contiguous at (i * kp / 32 + j) * 512, so that a tile load reads 1 KB in
// sequence. Zero beyond k, and beyond m up to `rows` rows.
__attribute__((target("avx512f,avx512bf16"))) void round_rows(const float* a, Eigen::Index lda,
                                                              Eigen::Index m, Eigen::Index k,
                                                              Eigen::Index rows, Eigen::Index kp,
                                                              uint16_t* out) {
  for (Eigen::Index r = 0; r < rows; ++r) {
    uint16_t* to = out + (r / kTileRows) * kTileRows * kp + (r % kTileRows) * kTileK;
    for (Eigen::Index kk = 0; kk < kp; kk += 16) {
      const __m512 x = _mm512_maskz_loadu_ps(lane_mask(r < m ? k - kk : 0), a + r * lda + kk);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(to + (kk / kTileK) * kTileRows * kTileK + kk % kTileK),
                          reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x)));
    }
  }
}

// C block (rows x width, row stride ldc) = acc (row stride 32) + bias (+ C).
__attribute__((target("avx512f"))) void store_block(const float* acc, Eigen::Index rows, Eigen::Index width,
                                                    const float* bias, bool accumulate, float* c,
                                                    Eigen::Index ldc) {
  for (Eigen::Index half = 0; half < 32; half += 16) {
    if (width <= half) break;
    const __mmask16 mask = lane_mask(width - half);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias + half) : _mm512_setzero_ps();
    for (Eigen::Index r = 0; r < rows; ++r) {
      __m512 v = _mm512_add_ps(_mm512_loadu_ps(acc + r * 32 + half), b);
      if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, c + r * ldc + half));
      _mm512_mask_storeu_ps(c + r * ldc + half, mask, v);
    }
  }
}

// 16 or 32 rows of A (round_rows' tile order) times one W panel over k_padded: the 16 x 32 or 32 x 32
// product into acc (row stride 32 floats).
template <bool Two>
__attribute__((target("amx-tile,amx-bf16,sse"))) void tile_block(const uint16_t* a, Eigen::Index kp,
                                                                 const uint16_t* panel, float* acc,
                                                                 const char* prefetch,
                                                                 Eigen::Index lines_per_step) {
  _tile_zero(0);
  _tile_zero(1);
  if (Two) {
    _tile_zero(2);
    _tile_zero(3);
  }
  for (Eigen::Index kk = 0; kk < kp; kk += kTileK) {
    const uint16_t* w = panel + kk * kPanel;  // kk/2 pair rows of 2 x 32 values
    for (Eigen::Index line = 0; line < lines_per_step; ++line) {
      _mm_prefetch(prefetch + ((kk / kTileK) * lines_per_step + line) * 64, _MM_HINT_T1);
    }
    _tile_loadd(6, w, 128);
    _tile_loadd(7, w + 32, 128);
    _tile_loadd(4, a + kk * kTileRows, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    if (Two) {
      _tile_loadd(5, a + kTileRows * kp + kk * kTileRows, 64);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, acc, 128);
  _tile_stored(1, acc + 16, 128);
  if (Two) {
    _tile_stored(2, acc + 16 * 32, 128);
    _tile_stored(3, acc + 16 * 32 + 16, 128);
  }
}

__attribute__((target("amx-tile"))) void load_tile_config() {
  static const TileConfig config;
  _tile_loadconfig(&config);
}

bool cpu_has_amx_bf16() {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx = (d & (1u << 22)) && (d & (1u << 24)), avx512f = b & (1u << 16);
  if (!amx || !avx512f || !__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return a & (1u << 5);  // AVX512-BF16, for rounding A
}

// gemm_bf16 on one chunk of rows.
void product(Eigen::Index m, Eigen::Index c0, Eigen::Index c1, const float* a, Eigen::Index lda,
             const PackedBf16& b, const float* bias, bool accumulate, float* c, Eigen::Index ldc) {
  const Eigen::Index kp = b.k_padded, rows = (m + kTileRows - 1) / kTileRows * kTileRows;
  // Sized for the largest chunk at once: any thread of the pool may get any product, so growing to the
  // sizes one thread happened to see would allocate again whenever it gets a larger one.
  thread_local std::vector<uint16_t, CacheLineAllocator<uint16_t>> rounded;
  const auto needed = static_cast<size_t>(std::max(rows * kp, kChunkBytes / 2));
  if (rounded.size() < needed) rounded.resize(needed);
  round_rows(a, lda, m, b.k, rows, kp, rounded.data());
  load_tile_config();
  alignas(64) float acc[32 * 32];
  for (Eigen::Index col = c0; col < c1; col += kPanel) {
    const Eigen::Index width = std::min(kPanel, c1 - col);
    const uint16_t* panel = b.data.data() + col * kp;
    // The next panel is brought into L2 while this one is computed, a share during each row block.
    const Eigen::Index blocks = (m + 2 * kTileRows - 1) / (2 * kTileRows), steps = kp / kTileK;
    const Eigen::Index panel_lines = col + kPanel < c1 ? kPanel * kp * 2 / 64 : 0;
    const Eigen::Index lines_per_step = (panel_lines / blocks + steps - 1) / steps;
    const char* next = reinterpret_cast<const char*>(panel + kPanel * kp);
    for (Eigen::Index row = 0; row < m; row += 2 * kTileRows) {
      const bool two = rows - row > kTileRows;
      const char* prefetch = next + (row / (2 * kTileRows)) * lines_per_step * steps * 64;
      if (two) {
        tile_block<true>(rounded.data() + row * kp, kp, panel, acc, prefetch, lines_per_step);
      } else {
        tile_block<false>(rounded.data() + row * kp, kp, panel, acc, prefetch, lines_per_step);
      }
      store_block(acc, std::min<Eigen::Index>(2 * kTileRows, m - row), width, bias ? bias + col : nullptr,
                  accumulate, c + row * ldc + col, ldc);
    }
  }
}

}  // namespace

PackedBf16 pack_weights_bf16(const float* w, Eigen::Index n, Eigen::Index k) {
  PackedBf16 p{n, k, (k + kTileK - 1) / kTileK * kTileK, {}};
  const Eigen::Index panels = (n + kPanel - 1) / kPanel;
  p.data.assign(static_cast<size_t>(panels * kPanel * p.k_padded), 0);
  for (Eigen::Index col = 0; col < n; ++col) {
    uint16_t* panel = p.data.data() + (col / kPanel) * kPanel * p.k_padded;
    for (Eigen::Index kk = 0; kk < k; ++kk) {
      panel[(kk / 2) * 2 * kPanel + (col % kPanel) * 2 + kk % 2] = to_bf16(w[col * k + kk]);
    }
  }
  return p;
}

bool bf16_gemm_supported() {
  // packed_gemm_supported() also says the OS saves AVX-512 state (the attention stays on that kernel).
  // ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA: Linux refuses tile instructions to a process that has not
  // asked (the grant covers all its threads).
  static const bool supported =
      packed_gemm_supported() && cpu_has_amx_bf16() && syscall(SYS_arch_prctl, 0x1023, 18) == 0;
  return supported;
}

void gemm_bf16(Eigen::Index m, Eigen::Index c0, Eigen::Index c1, const float* a, Eigen::Index lda,
               const PackedBf16& b, const float* bias, bool accumulate, float* c, Eigen::Index ldc) {
  assert(c0 % kPanel == 0 && b.k > 0);
  if (m == 0 || c0 >= c1) return;
  // Row chunks whose rounded A stays in L2 while every W panel passes it (a BERT-base product at batch 1,
  // 128 rows, is one chunk); without them a large batch streamed all of A from memory once per panel.
  const Eigen::Index chunk = std::max<Eigen::Index>(
      2 * kTileRows, kChunkBytes / (2 * b.k_padded) / (2 * kTileRows) * (2 * kTileRows));
  for (Eigen::Index r0 = 0; r0 < m; r0 += chunk) {
    product(std::min(chunk, m - r0), c0, c1, a + r0 * lda, lda, b, bias, accumulate, c + r0 * ldc, ldc);
  }
}

}  // namespace ee::model
