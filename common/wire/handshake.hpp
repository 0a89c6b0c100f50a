#pragma once
// The session's first exchange (schemas/split_protocol.fbs): each side says who it is in a Hello, and the
// cloud refuses a peer it cannot answer bit for bit. Edge and cloud agree to the last bit only on the same
// model, at the same precision and on the same kernel family, so all three are announced and compared; a
// mismatch is refused rather than silently answered with other numbers.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "common/model/ops.hpp"
#include "common/wire/codec.hpp"

namespace ee::model {
class MultiExitModel;
}

namespace ee::wire {

// This side's Hello, as both daemons fill it: the model's hash, every dtype and compression this codec
// decodes, and the precision and kernel that really run `requested` on this CPU (model::effective_gemm).
// model_id is informational (e.g. the model directory's name).
Hello hello_for(const model::MultiExitModel& model, std::string model_id, model::Gemm requested,
                uint32_t max_frame_bytes = kDefaultMaxFrameBytes);

// Why the edge's and the cloud's Hellos cannot make a session, as the Close the cloud sends before hanging
// up: VersionMismatch, ModelMismatch or PrecisionMismatch (precision or kernel differ), checked in that
// order, with a reason an operator can act on ("edge runs bf16 on amx, cloud fp32 on packed"). nullopt
// when they can talk. Either side may check: the arguments say which Hello is whose. Throws WireError
// if a model_hash is not hex (decode has checked a received one).
std::optional<Close> check_hello(const Hello& edge, const Hello& cloud);

// The smallest max_frame_bytes that fits the largest Activation `limits` allows (max_tokens rows of f32,
// scales and envelope included): a peer announcing less could never be sent some hidden state.
std::size_t min_frame_bytes(const Limits& limits);

// The frame limit both sides use after the Hellos: the smaller of the two announced. Throws
// WireError("hello.max_frame_bytes", ...) if either is below min_frame_bytes(limits) (0 included).
std::size_t negotiated_max_frame(const Hello& a, const Hello& b, const Limits& limits);

}  // namespace ee::wire
