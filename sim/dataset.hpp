#pragma once
// Datasets the offline tools replay through the model. IDX (MNIST-style) image files, gzipped or raw.
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace ee::sim {

class DatasetError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ImageDataset {
  int count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols, row-major per image
  std::vector<int> labels;      // count

  size_t image_size() const { return static_cast<size_t>(rows) * cols; }
};

// Where Debian's dataset-fashion-mnist installs the test set.
inline const std::filesystem::path kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Reads an idx3 images file and the matching idx1 labels file; throws DatasetError naming the file and
// what is wrong (bad magic, truncated, count mismatch).
ImageDataset load_idx(const std::filesystem::path& images, const std::filesystem::path& labels);

}  // namespace ee::sim
