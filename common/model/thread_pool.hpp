#pragma once
// A fixed pool for the parallel phases of one encoder layer. A layer is a handful of short phases (a few
// microseconds to a few milliseconds each) separated by joins, so workers spin briefly between phases
// instead of sleeping (a futex wake-up costs about as much as a small phase), then block in
// std::atomic::wait so an idle pool uses no CPU. A phase is cut into size() parts that threads claim from
// a shared counter, the caller included: when a worker is descheduled (a busy machine), the caller takes
// its parts instead of waiting for it, so two threads degrade to the speed of one, not far below it.
// Dispatching allocates nothing: the task is a function pointer plus a context pointer, not a std::function.
//
// One pool may serve several Workspaces (one per concurrent request) on different threads. It runs one
// dispatch at a time; a run() that finds it busy runs all of its parts on its own thread instead of waiting
// for the pool. Waiting would block a request behind another's phase for no gain: the pool's threads are
// already busy, so spreading the second phase over them as well would only oversubscribe the cores. The
// uncontended path pays one atomic exchange per dispatch.
#include <atomic>
#include <cstdint>
#include <exception>
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
  // themselves, so per-part scratch indexed by i is safe. If parts throw, the others still run and the
  // first exception is rethrown here, after the join. Safe to call from several threads at once (and
  // from inside a part): a call that finds the pool busy runs its parts on the calling thread.
  template <class F>
  void run(F&& fn) {
    struct Context {
      std::remove_reference_t<F>* fn;
      std::atomic_flag failed{};
      std::exception_ptr error{};
    } context{&fn};
    dispatch(
        [](void* ctx, int i) {
          auto& c = *static_cast<Context*>(ctx);
          try {
            (*c.fn)(i);
          } catch (...) {
            // The part's completion (done_) publishes `error` to the caller after the join.
            if (!c.failed.test_and_set(std::memory_order_relaxed)) c.error = std::current_exception();
          }
        },
        &context);
    if (context.error) std::rethrow_exception(context.error);
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
  // Atomic: a worker that a dispatch finished without may still be checking it as the pool is destroyed.
  std::atomic<bool> stop_{false};
  // Held by the dispatch that owns the pool's threads; its acquire and release order one dispatcher's
  // writes to task_, ctx_ and done_ before the next one's.
  std::atomic_flag busy_{};
  std::vector<std::thread> workers_;
};

}  // namespace ee::model
