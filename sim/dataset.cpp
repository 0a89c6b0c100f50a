#include "sim/dataset.hpp"

#include <zlib.h>

#include <memory>

namespace ee::sim {
namespace {

// Whole file through zlib, which reads gzip and plain files alike.
std::vector<uint8_t> read_maybe_gzip(const std::filesystem::path& path) {
  std::unique_ptr<gzFile_s, decltype(&gzclose)> f(gzopen(path.c_str(), "rb"), gzclose);
  if (!f) throw DatasetError("cannot open " + path.string());
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  int n = 0;
  while ((n = gzread(f.get(), buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  if (n < 0) throw DatasetError(path.string() + ": read/decompress error");
  return out;
}

struct Idx {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> bytes;
  size_t data_offset = 0;
};

Idx parse_idx(const std::filesystem::path& path, int expected_dims) {
  Idx idx;
  idx.bytes = read_maybe_gzip(path);
  const auto& b = idx.bytes;
  if (b.size() < 4 || b[0] != 0 || b[1] != 0 || b[2] != 0x08 || b[3] != expected_dims) {
    throw DatasetError(path.string() + ": not an unsigned-byte IDX file with " +
                       std::to_string(expected_dims) + " dimensions");
  }
  idx.data_offset = 4 + 4 * static_cast<size_t>(expected_dims);
  if (b.size() < idx.data_offset) throw DatasetError(path.string() + ": truncated header");
  size_t total = 1;
  for (int d = 0; d < expected_dims; ++d) {
    const uint8_t* p = &b[4 + 4 * d];
    idx.dims.push_back(uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3]);
    total *= idx.dims.back();
  }
  if (b.size() - idx.data_offset != total) {
    throw DatasetError(path.string() + ": header promises " + std::to_string(total) +
                       " bytes of data, file has " + std::to_string(b.size() - idx.data_offset));
  }
  return idx;
}

}  // namespace

ImageDataset load_idx(const std::filesystem::path& images, const std::filesystem::path& labels) {
  const Idx im = parse_idx(images, 3), lb = parse_idx(labels, 1);
  if (im.dims[0] != lb.dims[0]) {
    throw DatasetError(images.string() + " has " + std::to_string(im.dims[0]) + " images but " +
                       labels.string() + " has " + std::to_string(lb.dims[0]) + " labels");
  }
  ImageDataset ds;
  ds.count = static_cast<int>(im.dims[0]);
  ds.rows = static_cast<int>(im.dims[1]);
  ds.cols = static_cast<int>(im.dims[2]);
  ds.pixels.assign(im.bytes.begin() + static_cast<std::ptrdiff_t>(im.data_offset), im.bytes.end());
  ds.labels.assign(lb.bytes.begin() + static_cast<std::ptrdiff_t>(lb.data_offset), lb.bytes.end());
  return ds;
}

}  // namespace ee::sim
