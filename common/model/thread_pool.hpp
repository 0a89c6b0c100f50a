#pragma once
// A fixed pool for the parallel phases of one encoder layer. A layer is a handful of short phases (a few
// microseconds to a few milliseconds each) separated by joins, so workers spin briefly between phases
// instead of sleeping (a futex wake-up costs about as much as a small phase), then block in
// std::atomic::wait so an idle pool uses no CPU. Dispatching allocates nothing: the task is passed as a
// function pointer plus a context pointer, never as a std::function.
#include <atomic>
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

  // Calls fn(i) once for every i in [0, size()), i = 0 on the calling thread, and returns when all calls
  // have returned. fn must not throw (a worker has nowhere to report it). Not re-entrant.
  template <class F>
  void run(F&& fn) {
    dispatch([](void* ctx, int i) { (*static_cast<std::remove_reference_t<F>*>(ctx))(i); }, &fn);
  }

 private:
  using Task = void (*)(void* ctx, int index);
  void dispatch(Task task, void* ctx);
  void work(int index);

  alignas(64) std::atomic<unsigned> generation_{0};  // bumped once per dispatch; workers watch it
  alignas(64) std::atomic<int> pending_{0};          // workers still running the current task
  Task task_ = nullptr;
  void* ctx_ = nullptr;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace ee::model
