#include "common/model/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numeric>

#include "common/model/config.hpp"

namespace ee::model {
namespace {

// The header is JSON describing tensors; anything bigger than this is not a model header but a broken file.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

size_t dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2},  {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
      {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"U16", 2},  {"U32", 4}, {"U64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Bytes a tensor of this shape and element size needs; false if that does not fit in int64 (every
// dimension may be plausible on its own while their product wraps).
bool byte_count(const std::vector<int64_t>& shape, size_t elem, int64_t& bytes) {
  bytes = static_cast<int64_t>(elem);
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(bytes, d, &bytes)) return false;
  }
  return true;
}

// The format's rule: __metadata__ maps strings to strings.
void check_metadata(const nlohmann::json& metadata, const std::string& where) {
  if (!metadata.is_object()) {
    throw ModelError(where + "__metadata__ must be an object of strings, got " +
                     std::string(metadata.type_name()));
  }
  for (const auto& [key, value] : metadata.items()) {
    if (!value.is_string()) {
      throw ModelError(where + "__metadata__ '" + key + "' must be a string, got " +
                       std::string(value.type_name()));
    }
  }
}

}  // namespace

int64_t TensorView::numel() const {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

SafeTensors::SafeTensors(std::filesystem::path path) : path_(std::move(path)) {}

SafeTensors::~SafeTensors() {
  if (map_ != nullptr && map_ != MAP_FAILED) munmap(map_, size_);
}

std::shared_ptr<const SafeTensors> SafeTensors::open(const std::filesystem::path& path) {
  std::shared_ptr<SafeTensors> st(new SafeTensors(path));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ModelError("cannot open " + path.string() + ": " + std::strerror(errno));
  struct stat sb {};
  if (fstat(fd, &sb) != 0) {
    ::close(fd);
    throw ModelError("cannot stat " + path.string());
  }
  st->size_ = static_cast<size_t>(sb.st_size);
  if (st->size_ < 8) {
    ::close(fd);
    throw ModelError(path.string() + ": file is " + std::to_string(st->size_) +
                     " bytes, too short for a safetensors header");
  }
  st->map_ = mmap(nullptr, st->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (st->map_ == MAP_FAILED) throw ModelError("cannot mmap " + path.string());
  st->parse_header();
  return st;
}

void SafeTensors::parse_header() {
  const auto* base = static_cast<const std::byte*>(map_);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | std::to_integer<uint64_t>(base[i]);
  const std::string where = path_.string() + ": ";
  if (header_len > kMaxHeaderBytes || header_len > size_ - 8) {
    throw ModelError(where + "header length " + std::to_string(header_len) + " runs past the end of the " +
                     std::to_string(size_) + "-byte file");
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(reinterpret_cast<const char*>(base + 8),
                                   reinterpret_cast<const char*>(base + 8 + header_len));
  } catch (const nlohmann::json::parse_error& e) {
    throw ModelError(where + "header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) throw ModelError(where + "header is not a JSON object");

  const std::byte* data = base + 8 + header_len;
  const uint64_t data_size = size_ - 8 - header_len;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      check_metadata(info, where);
      continue;
    }
    const std::string what = where + "tensor '" + name + "': ";
    TensorView t;
    try {
      t.dtype = info.at("dtype").get<std::string>();
      // get<>() would truncate 2.5 to 2 and wrap -1 to 2^64 - 1: sizes and offsets must be whole numbers.
      const auto& shape = info.at("shape");
      const auto& offset_list = info.at("data_offsets");
      const auto integers = [](const nlohmann::json& list, bool non_negative) {
        return list.is_array() && std::all_of(list.begin(), list.end(), [&](const nlohmann::json& v) {
                 return non_negative ? v.is_number_unsigned() : v.is_number_integer();
               });
      };
      if (!integers(shape, false)) {
        throw ModelError(what + "shape " + shape.dump() + " is not a list of integers");
      }
      if (!integers(offset_list, true)) {
        throw ModelError(what + "data_offsets " + offset_list.dump() + " are not non-negative integers");
      }
      t.shape = shape.get<std::vector<int64_t>>();
      const auto offsets = offset_list.get<std::vector<uint64_t>>();
      if (offsets.size() != 2) throw ModelError(what + "data_offsets must have two entries");
      if (offsets[0] > offsets[1] || offsets[1] > data_size) {
        throw ModelError(what + "data_offsets [" + std::to_string(offsets[0]) + ", " +
                         std::to_string(offsets[1]) + ") out of range of the " + std::to_string(data_size) +
                         "-byte data section");
      }
      const size_t elem = dtype_size(t.dtype);
      if (elem == 0) throw ModelError(what + "unknown dtype '" + t.dtype + "'");
      for (int64_t d : t.shape) {
        if (d < 0 || d > (int64_t{1} << 40)) throw ModelError(what + "bad shape " + shape_str(t.shape));
      }
      int64_t needed = 0;
      if (!byte_count(t.shape, elem, needed)) {
        throw ModelError(what + "shape " + shape_str(t.shape) + " of " + t.dtype +
                         " has more bytes than a 64-bit count holds");
      }
      const uint64_t bytes = offsets[1] - offsets[0];
      if (static_cast<uint64_t>(needed) != bytes) {
        throw ModelError(what + "shape " + shape_str(t.shape) + " of " + t.dtype + " needs " +
                         std::to_string(needed) + " bytes but data_offsets span " + std::to_string(bytes));
      }
      t.data = {data + offsets[0], bytes};
      ranges.emplace_back(offsets[0], offsets[1]);
    } catch (const nlohmann::json::exception& e) {
      throw ModelError(what + "malformed entry: " + e.what());
    }
    if (t.dtype == "F32" && reinterpret_cast<uintptr_t>(t.data.data()) % alignof(float) != 0) {
      auto copy = std::make_unique<float[]>(static_cast<size_t>(t.numel()));
      std::memcpy(copy.get(), t.data.data(), t.data.size());
      t.data = {reinterpret_cast<const std::byte*>(copy.get()), t.data.size()};
      realigned_.push_back(std::move(copy));
    }
    tensors_.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) {
      throw ModelError(where + "tensor data ranges overlap at byte " + std::to_string(ranges[i].first));
    }
  }
}

const TensorView& SafeTensors::at(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) throw ModelError(path_.string() + ": missing tensor '" + name + "'");
  return it->second;
}

ConstMatrixMap SafeTensors::f32(const std::string& name, const std::vector<int64_t>& expected) const {
  const TensorView& t = at(name);
  if (t.dtype != "F32") {
    throw ModelError(path_.string() + ": tensor '" + name + "' has dtype " + t.dtype + ", expected F32");
  }
  if (t.shape != expected) {
    throw ModelError(path_.string() + ": tensor '" + name + "' has shape " + shape_str(t.shape) +
                     ", expected " + shape_str(expected));
  }
  const int64_t rows = t.shape.empty() ? 1 : t.shape[0];
  const int64_t cols = rows == 0 ? 0 : t.numel() / rows;
  return {reinterpret_cast<const float*>(t.data.data()), rows, cols};
}

template <typename T>
std::vector<T> SafeTensors::copy(const std::string& name, const std::string& dtype) const {
  const TensorView& t = at(name);
  if (t.dtype != dtype || dtype_size(dtype) != sizeof(T)) {
    throw ModelError(path_.string() + ": tensor '" + name + "' has dtype " + t.dtype + ", expected " + dtype);
  }
  std::vector<T> out(static_cast<size_t>(t.numel()));
  std::memcpy(out.data(), t.data.data(), t.data.size());
  return out;
}

template std::vector<float> SafeTensors::copy<float>(const std::string&, const std::string&) const;
template std::vector<int32_t> SafeTensors::copy<int32_t>(const std::string&, const std::string&) const;
template std::vector<int64_t> SafeTensors::copy<int64_t>(const std::string&, const std::string&) const;
template std::vector<uint8_t> SafeTensors::copy<uint8_t>(const std::string&, const std::string&) const;

ConstMatrixMap WeightLoader::get(const std::string& name, const std::vector<int64_t>& shape) {
  used_.insert(name);
  const ConstMatrixMap m = file_.f32(name, shape);
  // A NaN or Inf weight would only surface much later as a non-finite logit, far from its cause.
  if (!m.allFinite()) {
    const auto* v = m.data();
    const auto at = std::find_if(v, v + m.size(), [](float x) { return !std::isfinite(x); }) - v;
    throw ModelError(file_.path().string() + ": tensor '" + name + "' holds " + std::to_string(v[at]) +
                     " at element " + std::to_string(at));
  }
  return m;
}

ConstVectorMap WeightLoader::vec(const std::string& name, int64_t size) {
  const ConstMatrixMap m = get(name, {size});
  return {m.data(), size};
}

void WeightLoader::check_all_used() const {
  std::string extra;
  for (const auto& [name, t] : file_.tensors()) {
    if (!used_.count(name)) extra += (extra.empty() ? "" : ", ") + name;
  }
  if (!extra.empty()) {
    throw ModelError(file_.path().string() + ": tensors the config does not use (wrong config?): " + extra);
  }
}

}  // namespace ee::model
