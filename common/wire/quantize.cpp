#include "common/wire/quantize.hpp"

#include <fmt/format.h>

#include <bit>
#include <cmath>
#include <limits>
#include <string>

#include "common/wire/error.hpp"

namespace ee::wire {
namespace {

// The wire is little-endian; mapping the bytes in place is only right on a little-endian host.
static_assert(std::endian::native == std::endian::little, "ee::wire assumes a little-endian host");

template <typename T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstMap = Eigen::Map<const RowMajor<T>>;
template <typename T>
using MutMap = Eigen::Map<RowMajor<T>>;

constexpr float kI8Max = 127.0f;  // symmetric: -128 is never produced, so negation cannot overflow

void require_size(std::size_t got, std::size_t want, const char* what) {
  if (got != want) throw WireError(what, fmt::format("{} bytes/elements given, {} needed", got, want));
}

// Reports the first element that fails `bad`, in row/col terms a caller can act on.
template <typename Bad>
[[noreturn]] void throw_at_first(ConstRowsRef x, Bad bad, std::string_view why) {
  for (Eigen::Index r = 0; r < x.rows(); ++r)
    for (Eigen::Index c = 0; c < x.cols(); ++c)
      if (bad(x(r, c)))
        throw WireError(fmt::format("hidden[{}][{}]", r, c), fmt::format("{} {}", x(r, c), why));
  throw WireError("hidden", std::string(why));
}

void quantize_i8(ConstRowsRef x, std::span<std::byte> out, std::span<float> scales) {
  MutMap<int8_t> q(reinterpret_cast<int8_t*>(out.data()), x.rows(), x.cols());
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    const float amax = x.row(r).cwiseAbs().maxCoeff();
    const float inv = kI8Max / amax;
    // An all-zero row, or one so small that the inverse overflows (amax < 127 / FLT_MAX), is sent as zeros
    // with scale 0: an infinite inverse would turn its zeros into 0 * inf = NaN, and casting NaN to int8_t
    // is undefined.
    if (!(inv <= std::numeric_limits<float>::max())) {
      scales[static_cast<std::size_t>(r)] = 0.0f;
      q.row(r).setZero();
      continue;
    }
    scales[static_cast<std::size_t>(r)] = amax / kI8Max;
    q.row(r) = (x.row(r).array() * inv).rint().cwiseMax(-kI8Max).cwiseMin(kI8Max).cast<int8_t>().matrix();
  }
}

}  // namespace

std::size_t element_size(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return 4;
    case DType::f16:
      return 2;
    case DType::i8:
      return 1;
  }
  throw WireError("dtype", fmt::format("{} is not a known dtype", static_cast<int>(dtype)));
}

std::string_view to_string(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "f32";
    case DType::f16:
      return "f16";
    case DType::i8:
      return "i8";
  }
  return "unknown";
}

DType parse_dtype(std::string_view name) {
  for (DType d : {DType::f32, DType::f16, DType::i8})
    if (name == to_string(d)) return d;
  throw WireError("dtype", fmt::format("'{}' is not one of f32, f16, i8", name));
}

std::size_t payload_bytes(int rows, int cols, DType dtype) {
  return static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols) * element_size(dtype);
}

void quantize(ConstRowsRef x, DType dtype, std::span<std::byte> out, std::span<float> scales) {
  require_size(out.size(), payload_bytes(static_cast<int>(x.rows()), static_cast<int>(x.cols()), dtype),
               "quantize.out");
  require_size(scales.size(), dtype == DType::i8 ? static_cast<std::size_t>(x.rows()) : 0, "quantize.scales");
  if (x.size() == 0) return;
  if (!x.allFinite())
    throw_at_first(
        x, [](float v) { return !std::isfinite(v); }, "is not finite");
  if (x.cwiseAbs().maxCoeff() > kMaxActivation)
    throw_at_first(
        x, [](float v) { return std::abs(v) > kMaxActivation; },
        fmt::format("exceeds the wire's bound of +-{} (kMaxActivation)", kMaxActivation));
  switch (dtype) {
    case DType::f32:
      MutMap<float>(reinterpret_cast<float*>(out.data()), x.rows(), x.cols()) = x;
      return;
    case DType::f16:
      MutMap<Eigen::half>(reinterpret_cast<Eigen::half*>(out.data()), x.rows(), x.cols()) =
          x.cast<Eigen::half>();
      return;
    case DType::i8:
      quantize_i8(x, out, scales);
      return;
  }
  throw WireError("dtype", fmt::format("{} is not a known dtype", static_cast<int>(dtype)));
}

void dequantize(std::span<const std::byte> data, std::span<const float> scales, DType dtype, RowsRef out) {
  require_size(data.size(), payload_bytes(static_cast<int>(out.rows()), static_cast<int>(out.cols()), dtype),
               "dequantize.data");
  require_size(scales.size(), dtype == DType::i8 ? static_cast<std::size_t>(out.rows()) : 0,
               "dequantize.scales");
  switch (dtype) {
    case DType::f32:
      out = ConstMap<float>(reinterpret_cast<const float*>(data.data()), out.rows(), out.cols());
      return;
    case DType::f16:
      out = ConstMap<Eigen::half>(reinterpret_cast<const Eigen::half*>(data.data()), out.rows(), out.cols())
                .cast<float>();
      return;
    case DType::i8: {
      const ConstMap<int8_t> q(reinterpret_cast<const int8_t*>(data.data()), out.rows(), out.cols());
      const Eigen::Map<const Eigen::ArrayXf> s(scales.data(), out.rows());
      out.array() = q.cast<float>().array().colwise() * s;
      return;
    }
  }
  throw WireError("dtype", fmt::format("{} is not a known dtype", static_cast<int>(dtype)));
}

}  // namespace ee::wire
