#pragma once
// Per-request scratch memory and threads (whisper.cpp's whisper_state next to the immutable model): each
// buffer grows to the largest shape it has seen and is then reused, so steady-state layer calls allocate
// nothing. One Workspace per concurrent request; a MultiExitModel is shared by all of them, and so may one
// ThreadPool be (see ThreadPool for what a request gets while another holds the pool's threads).
#include <array>
#include <memory>
#include <utility>
#include <vector>

#include "common/model/ops.hpp"
#include "common/model/tensor.hpp"
#include "common/model/thread_pool.hpp"

namespace ee::model {

struct ExecOptions {
  // Threads one layer may use (the caller's included). Small layers run on one regardless: splitting a
  // 2-MFLOP layer costs more in joins than it saves.
  int threads = 1;
  // Products with weights: our packed AVX-512 kernel (default; OpenBLAS where the CPU lacks AVX-512F),
  // OpenBLAS, or Eigen's own GEMM (the ablation baseline). ops.hpp says why.
  Gemm gemm = Gemm::packed;
  // A batch with a sample for every thread is split across samples (each thread runs the whole layer on
  // its share, no joins inside it); false keeps the threads inside the layer as for smaller batches (the
  // speed ablation's baseline). With the packed kernel results are bit for bit the same either way.
  bool split_samples = true;
};

class Workspace {
 public:
  // Starts a pool of options.threads threads of its own (none for 1).
  explicit Workspace(ExecOptions options = {})
      : Workspace(options, options.threads > 1 ? std::make_shared<ThreadPool>(options.threads) : nullptr) {}
  // Runs on `pool`, which other Workspaces may share; null runs on the calling thread alone. The pool's
  // size is the thread count: options.threads is replaced by it.
  Workspace(ExecOptions options, std::shared_ptr<ThreadPool> pool)
      : options_(options), pool_(std::move(pool)), scratch_(pool_ ? pool_->size() : 1) {
    options_.threads = static_cast<int>(scratch_.size());
    blas_single_threaded();
  }

  enum Slot { normed, qkv, context, projected, intermediate, scores, cls, pooled, kSlots };
  // Per-thread scratch of the attention: one head's scores, its keys and values packed for gemm_packed.
  enum ScratchSlot { head_scores, packed_keys, packed_values, kScratchSlots };

  // A rows x cols view of the slot's buffer; contents are unspecified. Valid until the next get() of the
  // same slot with a larger size. Call from the thread that owns the Workspace, not inside run().
  MatrixMap get(Slot slot, Eigen::Index rows, Eigen::Index cols) { return view(buffers_[slot], rows, cols); }
  // Scratch private to thread `thread` of run(): safe to call from inside it.
  MatrixMap scratch(int thread, ScratchSlot slot, Eigen::Index rows, Eigen::Index cols) {
    return view(scratch_[thread][slot], rows, cols);
  }

  const ExecOptions& options() const { return options_; }
  int threads() const { return pool_ ? pool_->size() : 1; }
  // Calls fn(i) for i in [0, threads()) in parallel, the caller taking part; see ThreadPool::run (the
  // first exception a part throws is rethrown here).
  template <class F>
  void run(F&& fn) {
    if (pool_) {
      pool_->run(fn);
    } else {
      fn(0);
    }
  }

 private:
  // Aligned like Eigen's own matrices: GEMM results then do not depend on where a buffer happens to start,
  // so the edge and the cloud compute bit-identical hidden states.
  using Buffer = std::vector<float, Eigen::aligned_allocator<float>>;
  static MatrixMap view(Buffer& buffer, Eigen::Index rows, Eigen::Index cols) {
    const auto needed = static_cast<size_t>(rows * cols);
    if (buffer.size() < needed) buffer.resize(needed);
    return {buffer.data(), rows, cols};
  }

  ExecOptions options_;
  std::shared_ptr<ThreadPool> pool_;
  std::array<Buffer, kSlots> buffers_;
  std::vector<std::array<Buffer, kScratchSlots>> scratch_;
};

}  // namespace ee::model
