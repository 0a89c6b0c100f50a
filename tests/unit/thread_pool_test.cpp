// ThreadPool and Workspace under concurrency: parts run once each, exceptions from worker threads reach the
// caller, one pool serves several callers at once, and one loaded model answers requests from several
// threads at once (own workspaces, own and shared pools) exactly as it answers them one at a time.
#include "common/model/thread_pool.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/model/multi_exit_model.hpp"
#include "common/model/ops.hpp"
#include "common/model/safetensors.hpp"
#include "common/model/workspace.hpp"

namespace ee::model {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kBound = std::chrono::seconds(10);  // how long a test waits for another thread to get going

// Spins (yielding) until pred() or kBound; returns pred().
template <class Pred>
bool wait_for(Pred pred) {
  const auto until = Clock::now() + kBound;
  while (!pred() && Clock::now() < until) std::this_thread::yield();
  return pred();
}

TEST(ThreadPool, RunsEveryPartOnce) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    std::vector<std::atomic<int>> runs(threads);
    for (int call = 0; call < 100; ++call) pool.run([&](int i) { ++runs[i]; });
    for (int i = 0; i < threads; ++i) EXPECT_EQ(runs[i], 100) << "part " << i << " of " << threads;
  }
}

TEST(ThreadPool, ExceptionOnAWorkerThreadIsRethrownOnTheCaller) {
  ThreadPool pool(2);
  const auto caller = std::this_thread::get_id();
  std::atomic<bool> worker_threw{false};
  std::atomic<int> parts{0};
  try {
    pool.run([&](int) {
      ++parts;
      if (std::this_thread::get_id() != caller) {
        worker_threw = true;
        throw std::runtime_error("from a worker");
      }
      // The caller's part waits for the worker to take the other one, so that a worker is the one to throw.
      wait_for([&] { return worker_threw.load(); });
    });
    FAIL() << "the exception was lost";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "from a worker");
  }
  EXPECT_TRUE(worker_threw);
  EXPECT_EQ(parts, 2) << "the other part still runs";
  std::atomic<int> after{0};
  pool.run([&](int) { ++after; });
  EXPECT_EQ(after, 2) << "the pool is usable after a part threw";
}

TEST(ThreadPool, FirstOfSeveralExceptionsIsRethrown) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.run([](int i) { throw std::out_of_range(std::to_string(i)); }), std::out_of_range);
  std::atomic<int> after{0};
  pool.run([&](int) { ++after; });
  EXPECT_EQ(after, 3);
}

TEST(ThreadPool, ARunThatFindsThePoolBusyRunsItsPartsOnItsOwnThread) {
  ThreadPool pool(2);
  std::atomic<bool> holding{false}, release{false};
  std::thread holder([&] {
    pool.run([&](int) {
      holding = true;
      wait_for([&] { return release.load(); });
    });
  });
  ASSERT_TRUE(wait_for([&] { return holding.load(); }));
  std::array<std::thread::id, 2> ran{};
  pool.run([&](int i) { ran[i] = std::this_thread::get_id(); });
  release = true;
  holder.join();
  EXPECT_EQ(ran[0], std::this_thread::get_id());
  EXPECT_EQ(ran[1], std::this_thread::get_id());
}

TEST(ThreadPool, RunFromInsideAPartDoesNotDeadlock) {
  ThreadPool pool(2);
  std::atomic<int> inner{0};
  pool.run([&](int) { pool.run([&](int) { ++inner; }); });
  EXPECT_EQ(inner, 4);
}

TEST(ThreadPool, ManyCallersAtOnceEachGetEveryPartOnce) {
  auto pool = std::make_shared<ThreadPool>(2);
  constexpr int kCallers = 4, kCalls = 300;
  std::atomic<int> wrong{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&] {
      for (int call = 0; call < kCalls; ++call) {
        std::array<int, 2> runs{};  // per call: parts never run twice, so plain ints are safe
        pool->run([&](int i) { ++runs[i]; });
        if (runs[0] != 1 || runs[1] != 1) ++wrong;
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(wrong, 0);
}

TEST(Workspace, SharedPoolSetsTheThreadCount) {
  auto pool = std::make_shared<ThreadPool>(3);
  Workspace a(ExecOptions{}, pool), b(ExecOptions{1, Gemm::packed}, pool), alone(ExecOptions{}, nullptr);
  EXPECT_EQ(a.threads(), 3);
  EXPECT_EQ(b.options().threads, 3);
  EXPECT_EQ(alone.threads(), 1);
  std::atomic<int> parts{0};
  a.run([&](int) { ++parts; });
  b.run([&](int) { ++parts; });
  EXPECT_EQ(parts, 6);
}

// ---- one model, many threads ---------------------------------------------------------------------------

// Every exit's logits and the final hidden state for one batch, run layer by layer as the edge and the
// cloud do.
struct Answers {
  std::vector<Matrix> logits;
  Matrix hidden;
};

Answers answer(const MultiExitModel& model, std::span<const uint8_t> pixels, int batch, Workspace& ws) {
  Answers a;
  Hidden h = model.embed_images(pixels, batch);
  for (int layer = 1; layer <= model.num_layers(); ++layer) {
    model.run_layers(h, layer, ws);
    if (model.has_exit(layer)) a.logits.push_back(model.exit_logits(h, layer, ws));
  }
  a.hidden = h.x;
  return a;
}

bool bitwise_equal(const Matrix& a, const Matrix& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::equal(a.data(), a.data() + a.size(), b.data(),
                    [](float x, float y) { return std::memcmp(&x, &y, sizeof x) == 0; });
}

bool bitwise_equal(const Answers& a, const Answers& b) {
  if (a.logits.size() != b.logits.size() || !bitwise_equal(a.hidden, b.hidden)) return false;
  for (size_t i = 0; i < a.logits.size(); ++i)
    if (!bitwise_equal(a.logits[i], b.logits[i])) return false;
  return true;
}

TEST(ConcurrentRequests, OneModelFromManyThreadsAnswersAsOneThreadDoes) {
  const std::filesystem::path dir = std::filesystem::path(EE_SOURCE_DIR) / "models/fmnist-vit";
  const auto model = MultiExitModel::load(dir);
  const auto golden = SafeTensors::open(dir / "golden.safetensors");
  const std::vector<uint8_t> pixels = golden->copy<uint8_t>("input.pixels", "U8");
  const int batch = static_cast<int>(golden->at("input.pixels").shape[0]);

  // Each request thread's workspace: its own pool or none, or one pool shared by three of them; inside the
  // layer (many joins, so the shared pool is contended) or across samples.
  auto shared_pool = std::make_shared<ThreadPool>(2);
  std::vector<std::unique_ptr<Workspace>> workspaces;
  workspaces.push_back(std::make_unique<Workspace>(ExecOptions{1}));
  workspaces.push_back(std::make_unique<Workspace>(ExecOptions{2, Gemm::packed, true}));
  workspaces.push_back(std::make_unique<Workspace>(ExecOptions{2, Gemm::packed, false}, shared_pool));
  workspaces.push_back(std::make_unique<Workspace>(ExecOptions{2, Gemm::packed, false}, shared_pool));
  workspaces.push_back(std::make_unique<Workspace>(ExecOptions{2, Gemm::packed, true}, shared_pool));

  // The answers of each workspace when it runs alone...
  std::vector<Answers> alone;
  for (auto& ws : workspaces) alone.push_back(answer(*model, pixels, batch, *ws));
  if (packed_gemm_supported()) {
    // ... which with the packed kernel do not depend on the threads at all.
    for (size_t i = 1; i < alone.size(); ++i)
      EXPECT_TRUE(bitwise_equal(alone[i], alone[0])) << "workspace " << i << " alone";
  }

  // ... and the same requests from all of them at once, repeatedly.
  constexpr int kRepeats = 20;
  std::vector<int> mismatches(workspaces.size(), 0);
  std::vector<std::thread> threads;
  for (size_t w = 0; w < workspaces.size(); ++w) {
    threads.emplace_back([&, w] {
      for (int r = 0; r < kRepeats; ++r)
        if (!bitwise_equal(answer(*model, pixels, batch, *workspaces[w]), alone[w])) ++mismatches[w];
    });
  }
  for (auto& t : threads) t.join();
  for (size_t w = 0; w < workspaces.size(); ++w)
    EXPECT_EQ(mismatches[w], 0) << "workspace " << w << ": answers changed under concurrency";
}

}  // namespace
}  // namespace ee::model
