#pragma once
// A fixed pool for the parallel phases of one encoder layer. A layer is a handful of short phases (a few
// microseconds to a few milliseconds each) separated by joins, so workers spin briefly between phases
// instead of sleeping (a futex wake-up costs about as much as a small phase), then block in
// std::atomic::wait so an idle pool uses no CPU. A phase is cut into size() parts that threads claim from
// a shared counter, the caller included: when a worker is descheduled (a busy machine), the caller takes
// its parts instead of waiting for it, so two threads degrade to the speed of one, not far below it.
// Dispatching allocates nothing: the task is a function pointer plus a context pointer, not a std::function.
#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

namespace ee::model {

class ThreadPool {
 public:
  // `threads` counts the caller: a pool of 2 starts one worker thread.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(i) once for every part i in [0, size()), in parallel, on whichever threads claim them (the
  // caller among them), and returns when all calls have returned. Parts never run concurrently with
  // themselves, so per-part scratch indexed by i is safe. fn must not throw (a worker has nowhere to report
  // it). Not re-entrant.
  template <class F>
  void run(F&& fn) {
    dispatch([](void* ctx, int i) { (*static_cast<std::remove_reference_t<F>*>(ctx))(i); }, &fn);
  }

 private:
  using Task = void (*)(void* ctx, int index);
  void dispatch(Task task, void* ctx);
  void work();
  // Claims and runs parts of the current dispatch until none is left.
  void run_parts();

  alignas(64) std::atomic<unsigned> generation_{0};  // bumped once per dispatch; sleeping workers watch it
  // (dispatch number << 32) | next unclaimed part: one CAS claims a part of exactly one dispatch.
  alignas(64) std::atomic<uint64_t> next_{0};
  alignas(64) std::atomic<int> done_{0};  // parts of the current dispatch that have returned
  Task task_ = nullptr;
  void* ctx_ = nullptr;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace ee::model
