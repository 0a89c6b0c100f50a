#pragma once
// Element encodings of a hidden state on the wire: f32, f16, and symmetric int8 with one scale per token
// row. Rows are tokens, so a per-row scale follows the per-token magnitude spread of transformer
// activations, which a single tensor-wide scale would flatten into a few int8 levels for most tokens.
#include <Eigen/Core>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "common/model/tensor.hpp"

namespace ee::wire {

// Values match ee::wire::fb::DType in schemas/split_protocol.fbs.
enum class DType : uint8_t { f32 = 0, f16 = 1, i8 = 2 };

using ConstRowsRef = Eigen::Ref<const model::Matrix>;
using RowsRef = Eigen::Ref<model::Matrix>;

std::size_t element_size(DType dtype);
std::string_view to_string(DType dtype);
DType parse_dtype(std::string_view name);  // "f32" | "f16" | "i8"; throws WireError
// Bytes of `rows` x `cols` elements of `dtype` (scales not included).
std::size_t payload_bytes(int rows, int cols, DType dtype);

// Writes x as little-endian `dtype` elements into `out` (payload_bytes(x) long) and, for i8, one scale
// per row into `scales` (x.rows() long; empty for the other dtypes). An i8 element then differs from
// its input by at most scale / 2. Throws WireError for non-finite input, or values f16 cannot hold.
void quantize(ConstRowsRef x, DType dtype, std::span<std::byte> out, std::span<float> scales);

// The inverse of quantize into out (rows x cols preset). Sizes must match; values are not checked here
// (the codec checks what arrives from the network).
void dequantize(std::span<const std::byte> data, std::span<const float> scales, DType dtype, RowsRef out);

}  // namespace ee::wire
