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
constexpr auto kSpin = std::chrono::microseconds(200);

// Spins until pred() holds or kSpin has passed; returns pred().
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
  workers_.reserve(threads - 1);
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { work(i); });
}

ThreadPool::~ThreadPool() {
  stop_ = true;
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::dispatch(Task task, void* ctx) {
  if (workers_.empty()) {
    task(ctx, 0);
    return;
  }
  task_ = task;
  ctx_ = ctx;
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);  // publishes task_, ctx_ and pending_
  generation_.notify_all();
  task(ctx, 0);
  // Workers finish within the phase's own time, so spin; yield if one of them was descheduled.
  while (!spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; })) std::this_thread::yield();
}

void ThreadPool::work(int index) {
  unsigned seen = 0;
  for (;;) {
    if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
      generation_.wait(seen, std::memory_order_acquire);
      continue;  // re-check: wait() may return spuriously
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_) return;
    task_(ctx_, index);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace ee::model
