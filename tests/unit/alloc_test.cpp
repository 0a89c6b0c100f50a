// Steady-state layer calls allocate nothing: this executable replaces the global operator new (the glob in
// tests/CMakeLists.txt builds it alone, so no other test sees the replacement) and counts every
// allocation while the model runs layers on a Workspace that has already seen the batch size.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <new>

#include "common/model/multi_exit_model.hpp"
#include "common/model/ops.hpp"
#include "common/model/safetensors.hpp"
#include "common/model/workspace.hpp"
#include "tests/unit/random_model.hpp"

// The replacements below pair malloc with free themselves; GCC under sanitizers inlines them into
// new/delete expressions and reports free() on a new'd pointer. Not a mismatch here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, std::align_val_t align) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const auto a = static_cast<std::size_t>(align);
  if (void* p = std::aligned_alloc(a, (size + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}

namespace ee::model {
namespace {

// Allocations during `calls` runs of every layer of `model` over `input`, after one warm-up run.
long allocations_per_steady_run(const MultiExitModel& model, const Hidden& input, Workspace& ws, int calls) {
  Hidden h = input;
  model.run_layers(h, model.num_layers(), ws);  // warm-up: the workspace grows to this batch
  long total = 0;
  for (int i = 0; i < calls; ++i) {
    h.x = input.x;  // same size: Eigen reuses the storage
    h.depth = 0;
    const long before = g_allocations.load();
    model.run_layers(h, model.num_layers(), ws);
    total += g_allocations.load() - before;
  }
  return total;
}

TEST(Allocations, CountingAllocatorSeesAllocations) {
  const long before = g_allocations.load();
  auto* v = new std::vector<int>(10);
  delete v;
  EXPECT_GE(g_allocations.load() - before, 2);
}

TEST(Allocations, NonePerLayerInSteadyStateOnTheVit) {
  const std::filesystem::path dir = std::filesystem::path(EE_SOURCE_DIR) / "models/fmnist-vit";
  const auto model = MultiExitModel::load(dir);
  const auto golden = SafeTensors::open(dir / "golden.safetensors");
  std::vector<uint8_t> pixels = golden->copy<uint8_t>("input.pixels", "U8");
  const int golden_batch = static_cast<int>(golden->at("input.pixels").shape[0]);
  const size_t per_image = pixels.size() / golden_batch;
  while (pixels.size() < 32 * per_image)
    pixels.insert(pixels.end(), pixels.begin(), pixels.begin() + per_image);
  for (int threads : {1, 2}) {
    for (int batch : {1, 32}) {
      for (bool split_samples : {true, false}) {  // at batch 32 and 2 threads: across samples, or inside
        Workspace ws(ExecOptions{threads, Gemm::packed, split_samples});
        const Hidden input = model->embed_images(std::span(pixels).first(batch * per_image), batch);
        EXPECT_EQ(allocations_per_steady_run(*model, input, ws, 5), 0)
            << threads << " threads, batch " << batch << (split_samples ? "" : ", inside the layer");
      }
    }
  }
}

TEST(Allocations, NoneForSmallerBatchesWithEveryKernel) {
  const std::filesystem::path dir = ee::testing::random_bert(128, 4, 512, 2, 48, 100);
  if (dir.empty()) GTEST_SKIP() << ee::testing::kNoTorch;
  const auto model = MultiExitModel::load(dir);
  TokenBatch big;
  big.tokens = 48;
  big.input_ids.assign(4 * 48, 7);
  big.token_type_ids.assign(4 * 48, 0);
  big.lengths = {48, 20, 33, 1};
  TokenBatch small = big;
  small.input_ids.resize(48);
  small.token_type_ids.resize(48);
  small.lengths = {30};
  for (const ExecOptions o : {ExecOptions{2, Gemm::packed}, ExecOptions{2, Gemm::blas},
                              ExecOptions{1, Gemm::eigen}, ExecOptions{2, Gemm::bf16}}) {
    Workspace ws(o);
    allocations_per_steady_run(*model, model->embed_tokens(big), ws, 1);
    // A smaller batch after a larger one fits in the buffers already there.
    EXPECT_EQ(allocations_per_steady_run(*model, model->embed_tokens(small), ws, 3), 0) << o.threads;
    EXPECT_EQ(allocations_per_steady_run(*model, model->embed_tokens(big), ws, 3), 0) << o.threads;
  }
}

// Allocations during one run of every layer of `model` over `input` (no warm-up).
long allocations_per_run(const MultiExitModel& model, const Hidden& input, Workspace& ws) {
  Hidden h = input;
  const long before = g_allocations.load();
  model.run_layers(h, model.num_layers(), ws);
  return g_allocations.load() - before;
}

TEST(Allocations, AfterPrepareTheFirstBf16RunMakesNoWeightCopies) {
  if (!bf16_gemm_supported()) GTEST_SKIP() << "no AMX-BF16 on this CPU (or Linux refused it)";
  const std::filesystem::path dir = ee::testing::random_bert(128, 2, 512, 2, 48, 100);
  TokenBatch batch;
  batch.tokens = 48;
  batch.input_ids.assign(2 * 48, 7);
  batch.token_type_ids.assign(2 * 48, 0);
  batch.lengths = {48, 20};
  // One thread, this one, throughout: the rounding buffer of gemm_bf16 is per thread, and a first bf16
  // product on this thread (this warm-up) grows it once for all that follow.
  const ExecOptions bf16{1, Gemm::bf16};
  {
    const auto warm_up = MultiExitModel::load(dir);
    Workspace ws(bf16);
    allocations_per_run(*warm_up, warm_up->embed_tokens(batch), ws);
  }
  const auto prepared = MultiExitModel::load(dir), lazy = MultiExitModel::load(dir);
  prepared->prepare(Gemm::bf16);
  const Hidden input = prepared->embed_tokens(batch);
  Workspace first(bf16), second(bf16), lazy_first(bf16);
  // A fresh workspace's first run allocates its buffers, the same ones for every model of this shape; a
  // prepared model adds nothing to that, an unprepared one its bf16 weights.
  const long prepared_first = allocations_per_run(*prepared, input, first);
  const long workspace_only = allocations_per_run(*prepared, input, second);
  const long lazy_first_run = allocations_per_run(*lazy, input, lazy_first);
  EXPECT_EQ(prepared_first, workspace_only);
  EXPECT_GT(lazy_first_run, workspace_only) << "the test cannot tell a prepared model from a lazy one";
}

}  // namespace
}  // namespace ee::model
