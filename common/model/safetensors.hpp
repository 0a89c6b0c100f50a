#pragma once
// Read-only view of a .safetensors file: 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end)}}, then the raw little-endian tensor bytes.
// The file is memory-mapped; every offset, size and shape is validated at open, so no accessor can read
// outside the file. The Python writer is models/train/safetensors_io.py.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "common/model/tensor.hpp"

namespace ee::model {

struct TensorView {
  std::string dtype;  // "F32", "F16", "I32", "I64", "U8", ...
  std::vector<int64_t> shape;
  std::span<const std::byte> data;
  int64_t numel() const;
};

class SafeTensors {
 public:
  // Throws ModelError naming the file and the tensor or header field at fault.
  static std::shared_ptr<const SafeTensors> open(const std::filesystem::path& path);
  ~SafeTensors();
  SafeTensors(const SafeTensors&) = delete;
  SafeTensors& operator=(const SafeTensors&) = delete;

  const std::filesystem::path& path() const { return path_; }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorView& at(const std::string& name) const;  // throws "missing tensor"
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  // The whole file, for content hashing.
  std::span<const std::byte> bytes() const { return {static_cast<const std::byte*>(map_), size_}; }

  // An F32 tensor viewed as a matrix: rows = shape[0] (1 for scalars), cols = product of the rest.
  // Checks dtype and that the shape equals `expected`.
  ConstMatrixMap f32(const std::string& name, const std::vector<int64_t>& expected) const;
  // Any tensor of the given dtype copied out, checking dtype; T must match the dtype's size.
  template <typename T>
  std::vector<T> copy(const std::string& name, const std::string& dtype) const;

 private:
  explicit SafeTensors(std::filesystem::path path);
  void parse_header();

  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorView> tensors_;
  // F32 tensors that are not 4-byte aligned in the file are copied here, so float loads stay aligned.
  std::vector<std::unique_ptr<float[]>> realigned_;
};

// Hands out a model's tensors during construction and remembers which were taken, so a file with extra
// tensors (a checkpoint for another config) is rejected instead of silently half-used.
class WeightLoader {
 public:
  explicit WeightLoader(const SafeTensors& file) : file_(file) {}
  // Throws ModelError naming the tensor if it is missing, misshapen, not F32, or holds a NaN or Inf.
  ConstMatrixMap get(const std::string& name, const std::vector<int64_t>& shape);
  ConstVectorMap vec(const std::string& name, int64_t size);
  void check_all_used() const;  // throws ModelError listing the unexpected tensors

 private:
  const SafeTensors& file_;
  std::set<std::string> used_;
};

}  // namespace ee::model
