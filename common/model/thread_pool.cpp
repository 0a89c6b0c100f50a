#include "common/model/thread_pool.hpp"

#include <chrono>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace ee::model {
namespace {

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// How long a worker spins for the next phase before it sleeps: phases of one layer follow each other
// within microseconds, requests may be milliseconds apart.
constexpr auto kSpin = std::chrono::microseconds(100);
constexpr uint64_t kPartMask = 0xffffffffu;

template <class Pred>
bool spin_until(Pred pred) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() - start > kSpin) return pred();
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads < 1) throw std::invalid_argument("thread count must be >= 1, got " + std::to_string(threads));
  next_.store(static_cast<uint64_t>(threads), std::memory_order_relaxed);  // dispatch 0: nothing to claim
  workers_.reserve(threads - 1);
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { work(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_relaxed);  // published by the generation bump below
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::dispatch(Task task, void* ctx) {
  if (workers_.empty()) {
    task(ctx, 0);
    return;
  }
  if (busy_.test_and_set(std::memory_order_acquire)) {
    for (int i = 0; i < size(); ++i) task(ctx, i);
    return;
  }
  task_ = task;
  ctx_ = ctx;
  done_.store(0, std::memory_order_relaxed);
  // Opens the parts of this dispatch; the release publishes task_, ctx_ and done_ to whoever claims one.
  next_.store(((next_.load(std::memory_order_relaxed) >> 32) + 1) << 32, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  run_parts();
  // Parts still running elsewhere finish within the phase's own time, so spin; yield if one of their
  // threads was descheduled.
  const int parts = size();
  while (!spin_until([&] { return done_.load(std::memory_order_acquire) == parts; }))
    std::this_thread::yield();
  busy_.clear(std::memory_order_release);
}

void ThreadPool::run_parts() {
  const uint64_t parts = static_cast<uint64_t>(size());
  uint64_t cur = next_.load(std::memory_order_acquire);
  while ((cur & kPartMask) < parts) {
    if (!next_.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel, std::memory_order_acquire))
      continue;
    // The part is ours and its dispatch cannot end before done_ counts it, so task_ and ctx_ are its own.
    task_(ctx_, static_cast<int>(cur & kPartMask));
    done_.fetch_add(1, std::memory_order_release);
    cur = next_.load(std::memory_order_acquire);
  }
}

void ThreadPool::work() {
  unsigned seen = 0;
  for (;;) {
    if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
      generation_.wait(seen, std::memory_order_acquire);
      continue;  // re-check: wait() may return spuriously
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_relaxed)) return;
    run_parts();
  }
}

}  // namespace ee::model
