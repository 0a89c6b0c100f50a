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

// A corruption of the inputs switched on part-way through a dataset (the distribution shift I-SplitEE
// studies): every image from `first` on is distorted. Spec "<kind>:<amount>[@<first>]":
//   noise:S     Gaussian noise, standard deviation S of the pixel range (0.3 = 76.5 grey levels)
//   blur:S      Gaussian blur, standard deviation S pixels (kernel radius ceil(3 S), edges clamped)
//   contrast:F  contrast scaled to F of itself around each image's mean grey level (0.3 = 30 %)
// Results are rounded and clamped to 0..255.
struct Distortion {
  enum class Kind { noise, blur, contrast };
  Kind kind = Kind::noise;
  double amount = 0;
  int first = 0;

  static Distortion parse(const std::string& spec);  // throws DatasetError naming the spec
  std::string str() const;                           // the spec back, "noise:0.3@5000"
  std::string name() const;                          // without the start, "noise:0.3"
};

// Distorts ds's images [d.first, count) in place. Noise draws come from the hand-written normal of
// common/sched/rng.hpp seeded with `seed`, image by image in order, so a seed gives the same pixels with any
// standard library.
void distort(ImageDataset& ds, const Distortion& d, std::uint64_t seed);

}  // namespace ee::sim
