#include "sim/dataset.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <sstream>

#include "common/sched/rng.hpp"

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

Distortion Distortion::parse(const std::string& spec) {
  const auto colon = spec.find(':');
  const auto at = spec.find('@');
  auto fail = [&](const std::string& why) {
    return DatasetError("distortion '" + spec + "': " + why +
                        " (expected noise:S | blur:S | contrast:F, optionally @<first sample>)");
  };
  if (colon == std::string::npos) throw fail("no ':'");
  Distortion d;
  const std::string kind = spec.substr(0, colon);
  if (kind == "noise") {
    d.kind = Kind::noise;
  } else if (kind == "blur") {
    d.kind = Kind::blur;
  } else if (kind == "contrast") {
    d.kind = Kind::contrast;
  } else {
    throw fail("unknown kind '" + kind + "'");
  }
  const std::string amount =
      spec.substr(colon + 1, at == std::string::npos ? std::string::npos : at - colon - 1);
  std::size_t used = 0;
  try {
    d.amount = std::stod(amount, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != amount.size() || !std::isfinite(d.amount) || d.amount < 0)
    throw fail("amount '" + amount + "' is not a number >= 0");
  if (d.kind == Kind::blur && d.amount > 10) throw fail("blur above 10 pixels");
  if (at != std::string::npos) {
    const std::string first = spec.substr(at + 1);
    long v = -1;
    try {
      v = std::stol(first, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != first.size() || v < 0 || v > 1'000'000'000)
      throw fail("first sample '" + first + "' is not a count");
    d.first = static_cast<int>(v);
  }
  return d;
}

std::string Distortion::name() const {
  std::ostringstream out;
  out << (kind == Kind::noise ? "noise" : kind == Kind::blur ? "blur" : "contrast") << ':' << amount;
  return out.str();
}

std::string Distortion::str() const {
  return name() + "@" + std::to_string(first);
}

void distort(ImageDataset& ds, const Distortion& d, std::uint64_t seed) {
  const int rows = ds.rows, cols = ds.cols;
  const std::size_t size = ds.image_size();
  sched::Rng rng(seed);
  std::vector<double> kernel, tmp(size);
  if (d.kind == Distortion::Kind::blur && d.amount > 0) {
    const int radius = static_cast<int>(std::ceil(3 * d.amount));
    for (int i = -radius; i <= radius; ++i) kernel.push_back(std::exp(-0.5 * i * i / (d.amount * d.amount)));
    double sum = 0;
    for (double k : kernel) sum += k;
    for (double& k : kernel) k /= sum;
  }
  auto to_pixel = [](double v) { return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L)); };
  for (int n = std::max(0, d.first); n < ds.count; ++n) {
    uint8_t* px = ds.pixels.data() + static_cast<std::size_t>(n) * size;
    switch (d.kind) {
      case Distortion::Kind::noise:
        for (std::size_t i = 0; i < size; ++i)
          px[i] = to_pixel(px[i] + 255.0 * d.amount * sched::standard_normal(rng));
        break;
      case Distortion::Kind::contrast: {
        double mean = 0;
        for (std::size_t i = 0; i < size; ++i) mean += px[i];
        mean /= static_cast<double>(size);
        for (std::size_t i = 0; i < size; ++i) px[i] = to_pixel(mean + d.amount * (px[i] - mean));
        break;
      }
      case Distortion::Kind::blur: {
        if (kernel.empty()) break;
        const int radius = static_cast<int>(kernel.size() / 2);
        // Separable: rows into tmp, then columns back into the image.
        for (int r = 0; r < rows; ++r)
          for (int c = 0; c < cols; ++c) {
            double v = 0;
            for (int k = -radius; k <= radius; ++k)
              v += kernel[static_cast<std::size_t>(k + radius)] *
                   px[r * cols + std::clamp(c + k, 0, cols - 1)];
            tmp[static_cast<std::size_t>(r * cols + c)] = v;
          }
        for (int r = 0; r < rows; ++r)
          for (int c = 0; c < cols; ++c) {
            double v = 0;
            for (int k = -radius; k <= radius; ++k)
              v += kernel[static_cast<std::size_t>(k + radius)] *
                   tmp[static_cast<std::size_t>(std::clamp(r + k, 0, rows - 1) * cols + c)];
            px[r * cols + c] = to_pixel(v);
          }
        break;
      }
    }
  }
}

}  // namespace ee::sim
