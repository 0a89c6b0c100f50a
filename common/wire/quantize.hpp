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
// The largest |value| of a hidden state on the wire, in every dtype. A frame's values reach LayerNorm and
// attention, whose sums of products overflow float to inf (then NaN) for finite values near float's range,
// so a receiver must bound them. Binary16's largest finite value is the natural bound: every accepted state
// can be sent in every dtype, and below 2^16, with a hidden size below 2^14, LayerNorm's sum of squares
// stays below 2^46, a projection below 2^30 times the weights' magnitude and an attention score below 2^66
// times its square: all far from float's 2^128 for any sane model. Trained models sit far below it (the
// reference models' hidden states stay under 10; tests/unit/wire_test.cpp checks both).
inline constexpr float kMaxActivation = 65504.0f;

// Bytes of `rows` x `cols` elements of `dtype` (scales not included).
std::size_t payload_bytes(int rows, int cols, DType dtype);

// Writes x as little-endian `dtype` elements into `out` (payload_bytes(x) long) and, for i8, one scale
// per row into `scales` (x.rows() long; empty for the other dtypes). An i8 element then differs from
// its input by at most scale / 2, except that a row whose largest |value| is below float's smallest normal
// (1.2e-38) is sent as zeros with scale 0: its scale's inverse would overflow. Throws WireError naming the
// element for non-finite input or a value beyond +-kMaxActivation.
void quantize(ConstRowsRef x, DType dtype, std::span<std::byte> out, std::span<float> scales);

// The inverse of quantize into out (rows x cols preset). Sizes must match; values are not checked here
// (the codec checks what arrives from the network).
void dequantize(std::span<const std::byte> data, std::span<const float> scales, DType dtype, RowsRef out);

}  // namespace ee::wire
