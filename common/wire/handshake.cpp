#include "common/wire/handshake.hpp"

#include <fmt/format.h>
#include <zstd.h>

#include <algorithm>

#include "common/model/multi_exit_model.hpp"

namespace ee::wire {
namespace {

// An Activation's table, vtable, hash and vector headers take under 200 bytes with every field set; the
// rest is room for fields appended later.
constexpr std::size_t kEnvelopeBytes = 256;

std::string described(const Hello& h) {
  return fmt::format("{} on {}", to_string(h.precision), to_string(h.kernel));
}

}  // namespace

Hello hello_for(const model::MultiExitModel& model, std::string model_id, model::Gemm requested,
                uint32_t max_frame_bytes) {
  Hello h;
  h.model_id = std::move(model_id);
  h.model_hash = model.hash();
  h.dtypes = {DType::f32, DType::f16, DType::i8};
  h.compressions = {Compression::none, Compression::zstd};
  h.max_frame_bytes = max_frame_bytes;
  switch (model::effective_gemm(requested)) {
    case model::Gemm::packed:
      h.kernel = Kernel::packed;
      break;
    case model::Gemm::blas:
      h.kernel = Kernel::blas;
      break;
    case model::Gemm::eigen:
      h.kernel = Kernel::eigen;
      break;
    case model::Gemm::bf16:
      h.precision = Precision::bf16;
      h.kernel = Kernel::amx;
      break;
  }
  return h;
}

std::optional<Close> check_hello(const Hello& edge, const Hello& cloud) {
  if (edge.protocol_version != cloud.protocol_version)
    return Close{Status::version_mismatch, fmt::format("edge speaks protocol version {}, cloud {}",
                                                       edge.protocol_version, cloud.protocol_version)};
  if (parse_sha256_hex(edge.model_hash, "hello.model_hash") !=
      parse_sha256_hex(cloud.model_hash, "hello.model_hash"))
    return Close{Status::model_mismatch,
                 fmt::format("edge has model '{}' ({}), cloud '{}' ({})", edge.model_id, edge.model_hash,
                             cloud.model_id, cloud.model_hash)};
  if (edge.precision != cloud.precision || edge.kernel != cloud.kernel)
    return Close{Status::precision_mismatch,
                 fmt::format("edge runs {}, cloud {}: their answers would not agree bit for bit",
                             described(edge), described(cloud))};
  return std::nullopt;
}

std::size_t min_frame_bytes(const Limits& limits) {
  // f32 compressed by zstd is the largest payload: zstd may grow data it cannot compress.
  return ZSTD_compressBound(payload_bytes(limits.max_tokens, limits.hidden_size, DType::f32)) +
         kEnvelopeBytes;
}

std::size_t negotiated_max_frame(const Hello& a, const Hello& b, const Limits& limits) {
  const std::size_t least = min_frame_bytes(limits);
  for (const Hello* h : {&a, &b})
    if (h->max_frame_bytes < least)
      throw WireError("hello.max_frame_bytes",
                      fmt::format("{} ('{}') is below the {} bytes one hidden state of this model needs",
                                  h->max_frame_bytes, h->model_id, least));
  return std::min(a.max_frame_bytes, b.max_frame_bytes);
}

}  // namespace ee::wire
