#pragma once
// Per-thread scratch memory (whisper.cpp's whisper_state next to the immutable model): each buffer grows to
// the largest shape it has seen and is then reused, so steady-state layer calls allocate nothing.
// One Workspace per thread; a MultiExitModel is shared by all of them.
#include <array>
#include <vector>

#include "common/model/tensor.hpp"

namespace ee::model {

class Workspace {
 public:
  enum Slot { normed, qkv, context, projected, intermediate, scores, cls, pooled, kSlots };

  // A rows x cols view of the slot's buffer; contents are unspecified. Valid until the next get() of the
  // same slot with a larger size.
  MatrixMap get(Slot slot, Eigen::Index rows, Eigen::Index cols) {
    auto& buffer = buffers_[slot];
    const auto needed = static_cast<size_t>(rows * cols);
    if (buffer.size() < needed) buffer.resize(needed);
    return {buffer.data(), rows, cols};
  }

 private:
  // Aligned like Eigen's own matrices: GEMM results then do not depend on where a buffer happens to start,
  // so the edge and the cloud compute bit-identical hidden states.
  std::array<std::vector<float, Eigen::aligned_allocator<float>>, kSlots> buffers_;
};

}  // namespace ee::model
