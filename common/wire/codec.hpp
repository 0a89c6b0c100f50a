#pragma once
// Encoding and decoding of the edge <-> cloud messages (schemas/split_protocol.fbs). Decoding never trusts
// the bytes: the FlatBuffers verifier runs first, then every field is checked against the receiver's
// model (Limits) before anything is sized from it, and any failure is a WireError naming the field.
#include <flatbuffers/flatbuffers.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/exits/confidence.hpp"
#include "common/model/config.hpp"
#include "common/model/hidden.hpp"
#include "common/wire/error.hpp"
#include "common/wire/quantize.hpp"

namespace ee::wire {

inline constexpr uint16_t kProtocolVersion = 1;
// The largest frame a side accepts unless it announces another in its Hello (the one such constant of the
// project: ee::net's framing takes its limit from here). Large enough for a BERT-base hidden state
// (512 x 768 f32 = 1.5 MiB) with room for the envelope.
inline constexpr std::size_t kDefaultMaxFrameBytes = 4u << 20;
// The longest deadline an Activation may carry: far beyond any answer worth waiting for, and short enough
// that adding it to any clock's now() cannot overflow.
inline constexpr std::chrono::microseconds kMaxDeadline = std::chrono::hours(24);

// Values match the enums in schemas/split_protocol.fbs.
enum class Compression : uint8_t { none = 0, zstd = 1 };
enum class Status : uint8_t {
  ok = 0,
  bad_request = 1,
  model_mismatch = 2,
  version_mismatch = 3,
  deadline_exceeded = 4,
  overloaded = 5,
  internal = 6,
  shutdown = 7,
  precision_mismatch = 8,
};
// What really runs the weight products on a host (see handshake.hpp): edge and cloud agree bit for bit only
// when both match.
enum class Precision : uint8_t { fp32 = 0, bf16 = 1 };
enum class Kernel : uint8_t { packed = 0, blas = 1, eigen = 2, amx = 3 };
std::string_view to_string(Compression c);
std::string_view to_string(Status s);
std::string_view to_string(Precision p);
std::string_view to_string(Kernel k);

using Sha256 = std::array<uint8_t, 32>;
// 64 hex digits; throws WireError(field, ...) otherwise.
Sha256 parse_sha256_hex(std::string_view hex, const char* field = "model_hash");
std::string to_hex(const Sha256& hash);

// What a receiver accepts; every size in a message is checked against these before it is used.
struct Limits {
  int hidden_size = 0;
  int max_tokens = 0;
  int num_layers = 0;
  int num_labels = 0;
  Sha256 model_hash{};
  std::size_t max_frame_bytes = kDefaultMaxFrameBytes;

  // model_hash_hex: MultiExitModel::hash().
  static Limits for_model(const model::Config& config, std::string_view model_hash_hex) {
    return Limits{config.hidden_size, config.max_tokens(), config.num_hidden_layers, config.num_labels(),
                  parse_sha256_hex(model_hash_hex)};
  }
};

struct Hello {
  uint16_t protocol_version = kProtocolVersion;
  std::string model_id;
  std::string model_hash;  // hex
  std::vector<DType> dtypes;
  std::vector<Compression> compressions;
  uint32_t max_frame_bytes = kDefaultMaxFrameBytes;
  Precision precision = Precision::fp32;
  Kernel kernel = Kernel::packed;
  bool operator==(const Hello&) const = default;
};

struct Result {
  uint64_t request_id = 0;
  Status status = Status::ok;
  std::string error;
  int label = -1;
  std::vector<float> probabilities;
  int exit_layer = 0;
  std::chrono::microseconds cloud_compute{0};
  int final_label = -1;  // the final layer's label when the Activation asked for an audit, else -1
  bool operator==(const Result&) const = default;
};

struct Close {
  Status status = Status::shutdown;
  std::string reason;
  bool operator==(const Close&) const = default;
};

// Everything about an offloaded sample except its hidden state.
struct ActivationMeta {
  uint64_t request_id = 0;
  Sha256 model_hash{};
  int split_layer = 0;
  std::chrono::microseconds deadline{0};  // time left when sent; 0 = none
  exits::ExitDecider exit;                // the sample's rule and its state after split_layer
  bool audit = false;                     // ask the cloud for the final layer's label too
};

struct EncodeOptions {
  DType dtype = DType::i8;
  Compression compression = Compression::none;
  int zstd_level = 1;  // the payload is small and latency-bound: the fastest level compresses about as well
};

// A finished FlatBuffers buffer, ready to be framed: span() is the bytes to send.
class Encoded {
 public:
  explicit Encoded(flatbuffers::DetachedBuffer buffer) : buffer_(std::move(buffer)) {}
  std::span<const uint8_t> span() const { return {buffer_.data(), buffer_.size()}; }
  std::size_t size() const { return buffer_.size(); }
  // A shared copy, the form a FrameChannel queues (it stays alive while it is written).
  std::shared_ptr<const std::vector<uint8_t>> shared() const {
    return std::make_shared<const std::vector<uint8_t>>(span().begin(), span().end());
  }

 private:
  flatbuffers::DetachedBuffer buffer_;
};

// Each encoder throws WireError naming the field whose value the schema's type cannot hold (a uint16
// exit_layer, a uint32 count of microseconds, ...) rather than send it truncated.
Encoded encode(const Hello& hello);
Encoded encode(const Result& result);
Encoded encode(const Close& close);
// Encodes the rows of one sample's hidden state: pass only its valid tokens (rows x hidden_size), each
// value within +-kMaxActivation.
Encoded encode_activation(const ActivationMeta& meta, ConstRowsRef rows, const EncodeOptions& options);

// A decoded, fully checked Activation. It owns its payload (one copy of at most one hidden state), so the
// frame buffer can be reused for the next read while this waits in a batch queue.
class Activation {
 public:
  uint64_t request_id() const { return request_id_; }
  int split_layer() const { return split_layer_; }
  int tokens() const { return tokens_; }
  int hidden() const { return hidden_; }
  DType dtype() const { return dtype_; }
  Compression compression() const { return compression_; }
  std::chrono::microseconds deadline() const { return deadline_; }
  const exits::ExitDecider& exit() const { return exit_; }
  bool audit() const { return audit_; }
  // Bytes the payload occupied in the frame (after compression).
  std::size_t wire_bytes() const { return wire_bytes_; }

  // Dequantizes into the first tokens() rows of `out` and zero-fills the rest (padding). out.cols() must be
  // hidden() and out.rows() >= tokens(); throws WireError("decode_into.out", ...) otherwise. Decoding
  // straight into a batch's row block is what lets the cloud stack requests without another copy.
  void decode_into(RowsRef out) const;

 private:
  friend class ActivationDecoder;  // the only way to make one: through the checks in codec.cpp
  Activation() = default;
  uint64_t request_id_ = 0;
  int split_layer_ = 0, tokens_ = 0, hidden_ = 0;
  DType dtype_ = DType::f32;
  Compression compression_ = Compression::none;
  std::chrono::microseconds deadline_{0};
  exits::ExitDecider exit_;
  bool audit_ = false;
  std::size_t wire_bytes_ = 0;
  std::vector<float> scales_;
  std::vector<std::byte> payload_;  // uncompressed: tokens x hidden elements of dtype
};

using Message = std::variant<Hello, Activation, Result, Close>;

// Verifies one frame and checks every field against `limits`; throws WireError naming the bad field. Every
// decoded activation value lies within +-kMaxActivation.
Message decode(std::span<const uint8_t> frame, const Limits& limits);

}  // namespace ee::wire
