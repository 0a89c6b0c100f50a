#include "common/wire/codec.hpp"

#include <fmt/format.h>
#include <zstd.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>

#include "schemas/split_protocol_generated.h"

namespace ee::wire {
namespace {

template <typename E>
constexpr auto raw(E e) {
  return static_cast<std::underlying_type_t<E>>(e);
}

template <typename E>
constexpr int num(E e) {
  return static_cast<int>(e);
}

// Arguments are plain values, so the message is only built when a check fails.
template <typename... Args>
void check(bool ok, const char* field, fmt::format_string<Args...> format, Args&&... args) {
  if (!ok) throw WireError(field, fmt::format(format, std::forward<Args>(args)...));
}

// The C++ enums mirror the schema's value for value; the codec casts between them.
static_assert(static_cast<int>(fb::ExitMeasure::MaxProb) == static_cast<int>(exits::Measure::max_prob) &&
              static_cast<int>(fb::ExitMeasure::Entropy) == static_cast<int>(exits::Measure::entropy) &&
              static_cast<int>(fb::ExitMeasure::Margin) == static_cast<int>(exits::Measure::margin) &&
              static_cast<int>(fb::ExitMeasure::Patience) == static_cast<int>(exits::Measure::patience));
static_assert(raw(fb::Precision::BF16) == raw(Precision::bf16) && raw(fb::Kernel::Amx) == raw(Kernel::amx) &&
              raw(fb::Status::PrecisionMismatch) == raw(Status::precision_mismatch));

// ---- zstd --------------------------------------------------------------------------------------------

struct ZstdFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

// Contexts are reused per thread: creating one costs more than compressing a hidden state.
ZSTD_CCtx* cctx() {
  thread_local std::unique_ptr<ZSTD_CCtx, ZstdFree> ctx(ZSTD_createCCtx());
  if (!ctx) throw std::bad_alloc();
  return ctx.get();
}

ZSTD_DCtx* dctx() {
  thread_local std::unique_ptr<ZSTD_DCtx, ZstdFree> ctx(ZSTD_createDCtx());
  if (!ctx) throw std::bad_alloc();
  return ctx.get();
}

std::vector<std::byte> zstd_compress(std::span<const std::byte> in, int level) {
  std::vector<std::byte> out(ZSTD_compressBound(in.size()));
  const std::size_t n = ZSTD_compressCCtx(cctx(), out.data(), out.size(), in.data(), in.size(), level);
  if (ZSTD_isError(n)) throw WireError("activation.payload", fmt::format("zstd: {}", ZSTD_getErrorName(n)));
  out.resize(n);
  return out;
}

// `raw_size` comes from the checked shape, never from the frame, so a small frame cannot make us allocate
// more than one legitimate hidden state.
std::vector<std::byte> zstd_decompress(std::span<const uint8_t> in, std::size_t raw_size) {
  const unsigned long long declared = ZSTD_getFrameContentSize(in.data(), in.size());
  if (declared == ZSTD_CONTENTSIZE_UNKNOWN || declared == ZSTD_CONTENTSIZE_ERROR)
    throw WireError("activation.payload", "zstd frame header is invalid or declares no content size");
  check(declared == raw_size, "activation.payload", "zstd frame declares {} bytes, the shape needs {}",
        declared, raw_size);
  const std::size_t frame = ZSTD_findFrameCompressedSize(in.data(), in.size());
  check(!ZSTD_isError(frame) && frame == in.size(), "activation.payload",
        "is not exactly one zstd frame ({} bytes)", in.size());
  std::vector<std::byte> out(raw_size);
  const std::size_t n = ZSTD_decompressDCtx(dctx(), out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n)) throw WireError("activation.payload", fmt::format("zstd: {}", ZSTD_getErrorName(n)));
  check(n == raw_size, "activation.payload", "inflates to {} bytes, the shape needs {}", n, raw_size);
  return out;
}

// ---- encode ------------------------------------------------------------------------------------------

Encoded finish(flatbuffers::FlatBufferBuilder& fbb, fb::Message type, flatbuffers::Offset<void> message) {
  fbb.Finish(fb::CreateEnvelope(fbb, type, message), fb::EnvelopeIdentifier());
  return Encoded(fbb.Release());
}

template <typename E, typename F>
std::vector<F> cast_enums(const std::vector<E>& in) {
  std::vector<F> out;
  out.reserve(in.size());
  for (E e : in) out.push_back(static_cast<F>(raw(e)));
  return out;
}

// ---- decode ------------------------------------------------------------------------------------------

bool known(fb::DType d) {
  return d >= fb::DType::MIN && d <= fb::DType::MAX;
}
bool known(fb::Compression c) {
  return c >= fb::Compression::MIN && c <= fb::Compression::MAX;
}
bool known(fb::Status s) {
  return s >= fb::Status::MIN && s <= fb::Status::MAX;
}
bool known(fb::ExitMeasure m) {
  return m >= fb::ExitMeasure::MIN && m <= fb::ExitMeasure::MAX;
}
bool known(fb::Precision p) {
  return p >= fb::Precision::MIN && p <= fb::Precision::MAX;
}
bool known(fb::Kernel k) {
  return k >= fb::Kernel::MIN && k <= fb::Kernel::MAX;
}

std::string text(const flatbuffers::String* s) {
  return s ? s->str() : std::string();
}

Hello decode_hello(const fb::Hello& m) {
  Hello h;
  h.protocol_version = m.protocol_version();
  h.model_id = text(m.model_id());
  h.model_hash = text(m.model_hash());
  parse_sha256_hex(h.model_hash, "hello.model_hash");
  // Capabilities a newer peer adds are skipped, not refused: the intersection is what gets used.
  if (m.dtypes())
    for (fb::DType d : *m.dtypes())
      if (known(d)) h.dtypes.push_back(static_cast<DType>(raw(d)));
  if (m.compressions())
    for (fb::Compression c : *m.compressions())
      if (known(c)) h.compressions.push_back(static_cast<Compression>(raw(c)));
  h.max_frame_bytes = m.max_frame_bytes();
  // Unlike a capability, these describe the peer's arithmetic: one we cannot name is one we cannot match.
  check(known(m.precision()), "hello.precision", "{} is not a known precision", num(m.precision()));
  check(known(m.kernel()), "hello.kernel", "{} is not a known kernel", num(m.kernel()));
  h.precision = static_cast<Precision>(raw(m.precision()));
  h.kernel = static_cast<Kernel>(raw(m.kernel()));
  return h;
}

Result decode_result(const fb::Result& m, const Limits& limits) {
  Result r;
  r.request_id = m.request_id();
  check(known(m.status()), "result.status", "{} is not a known status", num(m.status()));
  r.status = static_cast<Status>(raw(m.status()));
  r.error = text(m.error());
  r.exit_layer = m.exit_layer();
  r.cloud_compute = std::chrono::microseconds(m.cloud_compute_us());
  r.label = m.label();
  r.final_label = m.final_label();
  if (m.probabilities()) r.probabilities.assign(m.probabilities()->begin(), m.probabilities()->end());
  if (r.status != Status::ok) return r;  // a failure carries no answer to check
  check(r.exit_layer >= 1 && r.exit_layer <= limits.num_layers, "result.exit_layer", "{} is outside 1..{}",
        r.exit_layer, limits.num_layers);
  check(r.label >= 0 && r.label < limits.num_labels, "result.label", "{} is outside 0..{}", r.label,
        limits.num_labels - 1);
  check(r.final_label >= -1 && r.final_label < limits.num_labels, "result.final_label",
        "{} is outside -1..{}", r.final_label, limits.num_labels - 1);
  check(r.probabilities.size() == static_cast<std::size_t>(limits.num_labels), "result.probabilities",
        "{} values for {} labels", r.probabilities.size(), limits.num_labels);
  for (std::size_t i = 0; i < r.probabilities.size(); ++i)
    check(std::isfinite(r.probabilities[i]) && r.probabilities[i] >= 0.0f && r.probabilities[i] <= 1.0f,
          "result.probabilities", "[{}] = {} is not in [0, 1]", i, r.probabilities[i]);
  return r;
}

Close decode_close(const fb::Close& m) {
  check(known(m.status()), "close.status", "{} is not a known status", num(m.status()));
  return Close{static_cast<Status>(raw(m.status())), text(m.reason())};
}

// The first element of `data` (elements of T) that fails `good`, or nullopt. The common path is one
// branch-free pass, which vectorises; only a frame that fails is searched again for the position.
template <typename T, typename Good>
std::optional<std::size_t> first_bad(std::span<const std::byte> data, Good good) {
  const std::span<const T> v(reinterpret_cast<const T*>(data.data()), data.size() / sizeof(T));
  bool ok = true;
  for (T x : v) ok &= good(x);
  if (ok) return std::nullopt;
  return static_cast<std::size_t>(std::find_if_not(v.begin(), v.end(), good) - v.begin());
}

// An i8 row dequantizes to q * scale, so bounding the scale bounds the values: 127 * kMaxScale rounds to
// exactly kMaxActivation, and -128, which the encoder never produces, is refused.
constexpr float kMaxScale = kMaxActivation / 127.0f;
static_assert(127.0f * kMaxScale <= kMaxActivation);

// The sample's exit rule and state, checked so that the cloud can carry on with them: a threshold its
// measure can be compared with, and a state that the layers already run can have reached.
exits::ExitDecider decode_exit(const fb::Activation& m, int split_layer, const Limits& limits) {
  check(known(m.exit_measure()), "activation.exit_measure", "{} is not a known measure",
        num(m.exit_measure()));
  exits::ExitDecider d;
  d.rule.measure = static_cast<exits::Measure>(raw(m.exit_measure()));
  d.rule.threshold = m.exit_threshold();
  const double t = d.rule.threshold;
  switch (d.rule.measure) {
    case exits::Measure::max_prob:
    case exits::Measure::margin:
      check(t >= 0.0 && t <= 1.0, "activation.exit_threshold", "{} is not a probability in [0, 1]", t);
      break;
    case exits::Measure::entropy:
      check(t >= 0.0 && std::isfinite(t), "activation.exit_threshold", "{} is not a finite entropy >= 0", t);
      break;
    case exits::Measure::patience:
      // A patience beyond the model's layers can never be met: refused as the mistake it is.
      check(t >= 1.0 && t <= limits.num_layers && t == std::floor(t), "activation.exit_threshold",
            "{} is not a whole number of exits in 1..{}", t, limits.num_layers);
      break;
  }
  d.state.last_label = m.exit_last_label();
  d.state.streak = m.exit_streak();
  check(d.state.last_label >= -1 && d.state.last_label < limits.num_labels, "activation.exit_last_label",
        "{} is outside -1..{}", d.state.last_label, limits.num_labels - 1);
  // A streak counts agreements between exits already passed, so it needs a previous prediction and
  // cannot outgrow the layers run. (It may reach the rule's threshold: an edge can offload a sample that
  // could have left, e.g. for an audit.)
  check(d.state.streak <= split_layer, "activation.exit_streak", "{} exceeds the {} layers run",
        d.state.streak, split_layer);
  check(d.state.streak == 0 || d.state.last_label >= 0, "activation.exit_streak",
        "{} follows no prediction (exit_last_label is -1)", d.state.streak);
  return d;
}

}  // namespace

// Builds Activations; the only code allowed to, so every Activation has passed these checks.
class ActivationDecoder {
 public:
  static Activation decode(const fb::Activation& m, const Limits& limits) {
    Activation a;
    a.request_id_ = m.request_id();
    a.split_layer_ = m.split_layer();
    a.tokens_ = m.tokens();
    a.hidden_ = m.hidden();
    check(m.deadline_us() <= static_cast<uint64_t>(kMaxDeadline.count()), "activation.deadline_us",
          "{} is beyond the {} us allowed", m.deadline_us(), kMaxDeadline.count());
    a.deadline_ = std::chrono::microseconds(m.deadline_us());
    check_hash(m, limits);
    check(a.split_layer_ < limits.num_layers, "activation.split_layer",
          "{} leaves no layer to run (the model has {})", a.split_layer_, limits.num_layers);
    check(a.hidden_ == limits.hidden_size, "activation.hidden", "{} differs from the model's hidden_size {}",
          a.hidden_, limits.hidden_size);
    check(a.tokens_ >= 1 && a.tokens_ <= limits.max_tokens, "activation.tokens", "{} is outside 1..{}",
          a.tokens_, limits.max_tokens);
    check(known(m.dtype()), "activation.dtype", "{} is not a known dtype", num(m.dtype()));
    check(known(m.compression()), "activation.compression", "{} is not a known compression",
          num(m.compression()));
    a.dtype_ = static_cast<DType>(raw(m.dtype()));
    a.compression_ = static_cast<Compression>(raw(m.compression()));
    a.exit_ = decode_exit(m, a.split_layer_, limits);
    a.audit_ = m.audit();
    decode_scales(m, a);
    decode_payload(m, a);
    return a;
  }

 private:
  static void check_hash(const fb::Activation& m, const Limits& limits) {
    if (!m.model_hash()) throw WireError("activation.model_hash", "is missing");
    Sha256 got;
    std::copy(m.model_hash()->bytes()->begin(), m.model_hash()->bytes()->end(), got.begin());
    if (got != limits.model_hash)
      throw WireError("activation.model_hash",
                      fmt::format("{} differs from this model's {}", to_hex(got), to_hex(limits.model_hash)));
  }

  static void decode_scales(const fb::Activation& m, Activation& a) {
    const std::size_t n = m.scales() ? m.scales()->size() : 0;
    const std::size_t want = a.dtype_ == DType::i8 ? static_cast<std::size_t>(a.tokens_) : 0;
    check(n == want, "activation.scales", "{} scales for dtype {} and {} tokens", n, to_string(a.dtype_),
          a.tokens_);
    if (n == 0) return;
    a.scales_.assign(m.scales()->begin(), m.scales()->end());
    // A finite scale can still overflow: 127 * 3e38 is inf (found by the fuzzer).
    for (std::size_t i = 0; i < n; ++i)
      check(a.scales_[i] >= 0.0f && a.scales_[i] <= kMaxScale, "activation.scales",
            "[{}] = {} is not a scale in [0, {}]", i, a.scales_[i], kMaxScale);
  }

  static void decode_payload(const fb::Activation& m, Activation& a) {
    const std::size_t want = payload_bytes(a.tokens_, a.hidden_, a.dtype_);
    if (!m.payload()) throw WireError("activation.payload", "is missing");
    const std::span<const uint8_t> bytes(m.payload()->data(), m.payload()->size());
    a.wire_bytes_ = bytes.size();
    if (a.compression_ == Compression::zstd) {
      a.payload_ = zstd_decompress(bytes, want);
    } else {
      check(bytes.size() == want, "activation.payload", "{} bytes, {} x {} {} needs {}", bytes.size(),
            a.tokens_, a.hidden_, to_string(a.dtype_), want);
      const auto view = std::as_bytes(bytes);
      a.payload_.assign(view.begin(), view.end());
    }
    check_values(a);
  }

  // A NaN, an inf or a value that overflows LayerNorm would spread through attention into every token's
  // answer and surface far from here; refuse it at the door (kMaxActivation).
  static void check_values(const Activation& a) {
    std::optional<std::size_t> bad;
    switch (a.dtype_) {
      case DType::f32:  // NaN fails the comparison too
        bad = first_bad<float>(a.payload_, [](float v) { return std::abs(v) <= kMaxActivation; });
        break;
      case DType::f16:  // every finite f16 is within the bound; inf and NaN have all 5 exponent bits set
        bad = first_bad<uint16_t>(a.payload_, [](uint16_t h) { return (h & 0x7C00u) != 0x7C00u; });
        break;
      case DType::i8:
        bad = first_bad<int8_t>(a.payload_, [](int8_t q) { return q != -128; });
        check(!bad, "activation.payload", "[{}] = -128, which symmetric int8 never holds", bad.value_or(0));
        return;
    }
    check(!bad, "activation.payload", "[{}] is not finite or exceeds +-{}", bad.value_or(0), kMaxActivation);
  }
};

std::string_view to_string(Compression c) {
  switch (c) {
    case Compression::none:
      return "none";
    case Compression::zstd:
      return "zstd";
  }
  return "unknown";
}

std::string_view to_string(Status s) {
  switch (s) {
    case Status::ok:
      return "ok";
    case Status::bad_request:
      return "bad_request";
    case Status::model_mismatch:
      return "model_mismatch";
    case Status::version_mismatch:
      return "version_mismatch";
    case Status::deadline_exceeded:
      return "deadline_exceeded";
    case Status::overloaded:
      return "overloaded";
    case Status::internal:
      return "internal";
    case Status::shutdown:
      return "shutdown";
    case Status::precision_mismatch:
      return "precision_mismatch";
  }
  return "unknown";
}

std::string_view to_string(Precision p) {
  switch (p) {
    case Precision::fp32:
      return "fp32";
    case Precision::bf16:
      return "bf16";
  }
  return "unknown";
}

std::string_view to_string(Kernel k) {
  switch (k) {
    case Kernel::packed:
      return "packed";
    case Kernel::blas:
      return "blas";
    case Kernel::eigen:
      return "eigen";
    case Kernel::amx:
      return "amx";
  }
  return "unknown";
}

Sha256 parse_sha256_hex(std::string_view hex, const char* field) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const std::string_view shown = hex.substr(0, 80);
  check(hex.size() == 64, field, "'{}' is not 64 hex digits", shown);
  Sha256 out;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    check(hi >= 0 && lo >= 0, field, "'{}' is not 64 hex digits", shown);
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

std::string to_hex(const Sha256& hash) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(64);
  for (uint8_t b : hash) {
    s.push_back(kDigits[b >> 4]);
    s.push_back(kDigits[b & 15]);
  }
  return s;
}

Encoded encode(const Hello& hello) {
  flatbuffers::FlatBufferBuilder fbb(256);
  const auto dtypes = cast_enums<DType, fb::DType>(hello.dtypes);
  const auto compressions = cast_enums<Compression, fb::Compression>(hello.compressions);
  const auto m = fb::CreateHelloDirect(
      fbb, hello.protocol_version, hello.model_id.c_str(), hello.model_hash.c_str(), &dtypes, &compressions,
      hello.max_frame_bytes, static_cast<fb::Precision>(raw(hello.precision)),
      static_cast<fb::Kernel>(raw(hello.kernel)));
  return finish(fbb, fb::Message::Hello, m.Union());
}

Encoded encode(const Result& result) {
  check(result.exit_layer >= 0 && result.exit_layer <= 0xFFFF, "result.exit_layer", "{} is outside 0..65535",
        result.exit_layer);
  const auto compute_us = result.cloud_compute.count();
  check(compute_us >= 0 && compute_us <= 0xFFFFFFFF, "result.cloud_compute_us", "{} is outside 0..{}",
        compute_us, 0xFFFFFFFFu);
  flatbuffers::FlatBufferBuilder fbb(128 + result.error.size() + 4 * result.probabilities.size());
  const auto m = fb::CreateResultDirect(fbb, result.request_id, static_cast<fb::Status>(raw(result.status)),
                                        result.error.empty() ? nullptr : result.error.c_str(), result.label,
                                        &result.probabilities, static_cast<uint16_t>(result.exit_layer),
                                        static_cast<uint32_t>(compute_us), result.final_label);
  return finish(fbb, fb::Message::Result, m.Union());
}

Encoded encode(const Close& close) {
  flatbuffers::FlatBufferBuilder fbb(64 + close.reason.size());
  const auto m = fb::CreateCloseDirect(fbb, static_cast<fb::Status>(raw(close.status)), close.reason.c_str());
  return finish(fbb, fb::Message::Close, m.Union());
}

Encoded encode_activation(const ActivationMeta& meta, ConstRowsRef rows, const EncodeOptions& options) {
  // The schema stores shapes as uint16: refuse what would wrap rather than send a wrong shape.
  check(rows.rows() >= 1 && rows.rows() <= 0xFFFF, "activation.tokens", "{} is outside 1..65535",
        rows.rows());
  check(rows.cols() >= 1 && rows.cols() <= 0xFFFF, "activation.hidden", "{} is outside 1..65535",
        rows.cols());
  check(meta.split_layer >= 0 && meta.split_layer <= 0xFFFF, "activation.split_layer",
        "{} is outside 0..65535", meta.split_layer);
  check(meta.deadline.count() >= 0 && meta.deadline <= kMaxDeadline, "activation.deadline_us",
        "{} is outside 0..{}", meta.deadline.count(), kMaxDeadline.count());
  const exits::ExitState& state = meta.exit.state;
  check(state.streak >= 0 && state.streak <= 0xFFFF, "activation.exit_streak", "{} is outside 0..65535",
        state.streak);
  const int tokens = static_cast<int>(rows.rows()), hidden = static_cast<int>(rows.cols());
  const std::size_t raw_bytes = payload_bytes(tokens, hidden, options.dtype);

  flatbuffers::FlatBufferBuilder fbb(raw_bytes + 4 * static_cast<std::size_t>(tokens) + 128);
  float* scales_ptr = nullptr;
  flatbuffers::Offset<flatbuffers::Vector<float>> scales;
  if (options.dtype == DType::i8) scales = fbb.CreateUninitializedVector(tokens, &scales_ptr);
  const std::span<float> scale_span(scales_ptr, options.dtype == DType::i8 ? tokens : 0);

  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> payload;
  if (options.compression == Compression::zstd) {
    std::vector<std::byte> plain(raw_bytes);
    quantize(rows, options.dtype, plain, scale_span);
    const auto packed = zstd_compress(plain, options.zstd_level);
    payload = fbb.CreateVector(reinterpret_cast<const uint8_t*>(packed.data()), packed.size());
  } else {
    // Quantize straight into the message: no intermediate copy on the common path.
    uint8_t* out = nullptr;
    payload = fbb.CreateUninitializedVector(raw_bytes, &out);
    quantize(rows, options.dtype, std::as_writable_bytes(std::span(out, raw_bytes)), scale_span);
  }

  const fb::Sha256 hash(flatbuffers::span<const uint8_t, 32>(meta.model_hash.data(), 32));
  fb::ActivationBuilder b(fbb);
  b.add_request_id(meta.request_id);
  b.add_deadline_us(static_cast<uint64_t>(meta.deadline.count()));
  b.add_model_hash(&hash);
  b.add_split_layer(static_cast<uint16_t>(meta.split_layer));
  b.add_tokens(static_cast<uint16_t>(tokens));
  b.add_hidden(static_cast<uint16_t>(hidden));
  b.add_dtype(static_cast<fb::DType>(raw(options.dtype)));
  b.add_compression(static_cast<fb::Compression>(raw(options.compression)));
  if (options.dtype == DType::i8) b.add_scales(scales);
  b.add_payload(payload);
  b.add_exit_measure(static_cast<fb::ExitMeasure>(meta.exit.rule.measure));
  b.add_exit_threshold(meta.exit.rule.threshold);
  b.add_exit_last_label(state.last_label);
  b.add_exit_streak(static_cast<uint16_t>(state.streak));
  b.add_audit(meta.audit);
  return finish(fbb, fb::Message::Activation, b.Finish().Union());
}

void Activation::decode_into(RowsRef out) const {
  check(out.cols() == hidden_ && out.rows() >= tokens_, "decode_into.out",
        "block is {} x {}, needs >= {} x {}", out.rows(), out.cols(), tokens_, hidden_);
  dequantize(payload_, scales_, dtype_, out.topRows(tokens_));
  out.bottomRows(out.rows() - tokens_).setZero();
}

Message decode(std::span<const uint8_t> frame, const Limits& limits) {
  check(frame.size() <= limits.max_frame_bytes, "frame", "{} bytes exceeds the limit of {}", frame.size(),
        limits.max_frame_bytes);
  check(frame.size() >= 8 && fb::EnvelopeBufferHasIdentifier(frame.data()), "frame",
        "is not an eesplit message (identifier EESP missing, {} bytes)", frame.size());
  // Depth and table counts are small in this schema; tight bounds make hostile nesting fail fast.
  flatbuffers::Verifier verifier(frame.data(), frame.size(), /*max_depth=*/8, /*max_tables=*/16);
  check(fb::VerifyEnvelopeBuffer(verifier), "frame", "fails FlatBuffers verification ({} bytes)",
        frame.size());
  const fb::Envelope& env = *fb::GetEnvelope(frame.data());
  // The verifier accepts a union whose type is set but whose table is absent (found by the fuzzer).
  if (!env.message())
    throw WireError("envelope.message", fmt::format("type {} has no table", num(env.message_type())));
  switch (env.message_type()) {
    case fb::Message::Hello:
      return decode_hello(*env.message_as_Hello());
    case fb::Message::Activation:
      return ActivationDecoder::decode(*env.message_as_Activation(), limits);
    case fb::Message::Result:
      return decode_result(*env.message_as_Result(), limits);
    case fb::Message::Close:
      return decode_close(*env.message_as_Close());
    case fb::Message::NONE:
      break;
  }
  throw WireError("envelope.message", fmt::format("type {} is empty or unknown", num(env.message_type())));
}

}  // namespace ee::wire
