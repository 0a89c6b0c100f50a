// ee::wire: quantization error bounds, codec round trips, and every way a frame from the network can be
// wrong (each must be a WireError naming the field, never a crash).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zstd.h>

#include <cmath>
#include <cstring>
#include <optional>
#include <random>

#include "common/wire/codec.hpp"
#include "common/wire/quantize.hpp"
#include "schemas/split_protocol_generated.h"

namespace ee::wire {
namespace {

using model::Matrix;
using ::testing::HasSubstr;

constexpr int kHidden = 64;
constexpr int kMaxTokens = 17;
constexpr int kLayers = 6;
constexpr int kLabels = 10;

Sha256 test_hash(uint8_t seed = 0xab) {
  Sha256 h;
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint8_t>(seed + i);
  return h;
}

Limits test_limits() {
  return Limits{kHidden, kMaxTokens, kLayers, kLabels, test_hash()};
}

// Transformer-like rows: Gaussian body, a few large outlier features, magnitudes varying per token.
Matrix hidden_state(int tokens, int hidden = kHidden, unsigned seed = 7) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Matrix x(tokens, hidden);
  for (int r = 0; r < tokens; ++r) {
    const float row_scale = 0.1f + static_cast<float>(r % 5);
    for (int c = 0; c < hidden; ++c) x(r, c) = normal(rng) * row_scale;
    x(r, 3) = 40.0f * row_scale;  // outlier feature
  }
  return x;
}

ActivationMeta meta(int split = 2) {
  ActivationMeta m;
  m.request_id = 0x1122334455667788ull;
  m.model_hash = test_hash();
  m.split_layer = split;
  m.deadline = std::chrono::microseconds(25'000);
  return m;
}

Activation decode_activation(const Encoded& e, const Limits& limits = test_limits()) {
  Message m = decode(e.span(), limits);
  EXPECT_TRUE(std::holds_alternative<Activation>(m));
  return std::get<Activation>(std::move(m));
}

Matrix decoded_rows(const Activation& a, int rows) {
  Matrix out = Matrix::Constant(rows, a.hidden(), 99.0f);
  a.decode_into(out);
  return out;
}

// A WireError whose field is `field` and whose message contains `detail`.
template <typename F>
void expect_wire_error(F&& f, const std::string& field, const std::string& detail = "") {
  try {
    f();
    ADD_FAILURE() << "no WireError; expected one for " << field;
  } catch (const WireError& e) {
    EXPECT_EQ(e.field(), field) << e.what();
    EXPECT_THAT(e.what(), HasSubstr(detail));
  }
}

// ---- quantization ------------------------------------------------------------------------------------

TEST(Quantize, F32IsBitExact) {
  const Matrix x = hidden_state(17);
  const Activation a = decode_activation(encode_activation(meta(), x, {DType::f32}));
  EXPECT_EQ(decoded_rows(a, 17), x);
}

TEST(Quantize, F16ErrorIsWithinHalfAnUlp) {
  const Matrix x = hidden_state(17);
  const Matrix y = decoded_rows(decode_activation(encode_activation(meta(), x, {DType::f16})), 17);
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    const float v = x.data()[i], got = y.data()[i];
    // Round-to-nearest in binary16: relative error <= 2^-11 for normals; subnormals have step 2^-24.
    EXPECT_LE(std::abs(got - v), std::max(std::abs(v) * 0x1p-11f, 0x1p-25f)) << "element " << i;
  }
  EXPECT_NE(y, x);  // it really was rounded
}

TEST(Quantize, I8ErrorIsAtMostHalfTheRowScale) {
  const Matrix x = hidden_state(17);
  const Matrix y = decoded_rows(decode_activation(encode_activation(meta(), x, {DType::i8})), 17);
  for (int r = 0; r < x.rows(); ++r) {
    const float scale = x.row(r).cwiseAbs().maxCoeff() / 127.0f;
    const float worst = (x.row(r) - y.row(r)).cwiseAbs().maxCoeff();
    EXPECT_LE(worst, scale / 2 * (1 + 1e-5f)) << "row " << r;
    EXPECT_GT(worst, 0.0f) << "row " << r;
  }
}

TEST(Quantize, I8KeepsRowMaximaExactAndZeroRowsZero) {
  Matrix x = hidden_state(4);
  x.row(2).setZero();
  std::vector<std::byte> bytes(payload_bytes(4, kHidden, DType::i8));
  std::vector<float> scales(4);
  quantize(x, DType::i8, bytes, scales);
  EXPECT_EQ(scales[2], 0.0f);
  EXPECT_FLOAT_EQ(scales[0], x.row(0).cwiseAbs().maxCoeff() / 127.0f);
  EXPECT_EQ(static_cast<int8_t>(bytes[3]), 127);  // column 3 holds row 0's positive outlier
  Matrix y(4, kHidden);
  dequantize(bytes, scales, DType::i8, y);
  EXPECT_TRUE(y.row(2).isZero(0));
  EXPECT_FLOAT_EQ(y(0, 3), x(0, 3));
}

TEST(Quantize, RejectsNonFiniteInputNamingTheElement) {
  Matrix x = hidden_state(3);
  x(1, 5) = std::numeric_limits<float>::quiet_NaN();
  for (DType d : {DType::f32, DType::f16, DType::i8})
    expect_wire_error([&] { encode_activation(meta(), x, {d}); }, "hidden[1][5]", "not finite");
}

TEST(Quantize, F16RefusesValuesItCannotHold) {
  Matrix x = hidden_state(3);
  x(2, 0) = 70000.0f;
  expect_wire_error([&] { encode_activation(meta(), x, {DType::f16}); }, "hidden[2][0]", "overflows f16");
  EXPECT_NO_THROW(encode_activation(meta(), x, {DType::i8}));
}

TEST(Quantize, ParsesDtypeNames) {
  EXPECT_EQ(parse_dtype("f16"), DType::f16);
  EXPECT_EQ(parse_dtype("i8"), DType::i8);
  expect_wire_error([] { parse_dtype("bf16"); }, "dtype", "bf16");
}

// ---- activation round trips --------------------------------------------------------------------------

class ActivationRoundTrip : public ::testing::TestWithParam<std::tuple<DType, Compression>> {};

TEST_P(ActivationRoundTrip, CarriesMetadataAndShape) {
  const auto [dtype, compression] = GetParam();
  const Matrix x = hidden_state(11);
  const Encoded e = encode_activation(meta(4), x, {dtype, compression});
  const Activation a = decode_activation(e);
  EXPECT_EQ(a.request_id(), 0x1122334455667788ull);
  EXPECT_EQ(a.split_layer(), 4);
  EXPECT_EQ(a.tokens(), 11);
  EXPECT_EQ(a.hidden(), kHidden);
  EXPECT_EQ(a.dtype(), dtype);
  EXPECT_EQ(a.compression(), compression);
  EXPECT_EQ(a.deadline(), std::chrono::microseconds(25'000));
  const std::size_t raw = payload_bytes(11, kHidden, dtype);
  if (compression == Compression::none) {
    EXPECT_EQ(a.wire_bytes(), raw);
  }
  EXPECT_LT(e.size(), a.wire_bytes() + 4 * 11 + 160);  // envelope overhead stays small
}

TEST_P(ActivationRoundTrip, ZstdDecodesToTheSameValues) {
  const auto [dtype, compression] = GetParam();
  const Matrix x = hidden_state(17);
  const Matrix plain = decoded_rows(decode_activation(encode_activation(meta(), x, {dtype})), 17);
  const Matrix packed =
      decoded_rows(decode_activation(encode_activation(meta(), x, {dtype, compression})), 17);
  EXPECT_EQ(plain, packed);
}

TEST_P(ActivationRoundTrip, DecodeIntoZeroFillsPaddingRows) {
  const auto [dtype, compression] = GetParam();
  const Matrix x = hidden_state(5);
  const Matrix y = decoded_rows(decode_activation(encode_activation(meta(), x, {dtype, compression})), 9);
  EXPECT_TRUE(y.bottomRows(4).isZero(0));
  EXPECT_TRUE(y.topRows(5).isApprox(x, 0.02f));
}

INSTANTIATE_TEST_SUITE_P(AllDtypes, ActivationRoundTrip,
                         ::testing::Combine(::testing::Values(DType::f32, DType::f16, DType::i8),
                                            ::testing::Values(Compression::none, Compression::zstd)));

TEST(Activation, I8IsAboutAQuarterOfF32OnTheWire) {
  const Matrix x = hidden_state(17);
  const std::size_t f32 = encode_activation(meta(), x, {DType::f32}).size();
  const std::size_t i8 = encode_activation(meta(), x, {DType::i8}).size();
  EXPECT_EQ(payload_bytes(17, kHidden, DType::f32), 4352u);
  EXPECT_GT(static_cast<double>(f32) / static_cast<double>(i8), 3.4);
}

TEST(Activation, DecodeIntoRejectsABlockOfTheWrongShape) {
  const Activation a = decode_activation(encode_activation(meta(), hidden_state(5), {DType::i8}));
  Matrix narrow(5, kHidden - 1), short_block(4, kHidden);
  EXPECT_THROW(a.decode_into(narrow), std::invalid_argument);
  EXPECT_THROW(a.decode_into(short_block), std::invalid_argument);
}

TEST(Activation, StackBuildsAPaddedBatchAtTheSplitLayer) {
  const Matrix x0 = hidden_state(17, kHidden, 1), x1 = hidden_state(6, kHidden, 2);
  const Encoded e0 = encode_activation(meta(3), x0, {DType::f32});
  const Encoded e1 = encode_activation(meta(3), x1, {DType::f32, Compression::zstd});
  const std::vector<Activation> batch{decode_activation(e0), decode_activation(e1)};
  const model::Hidden h = stack(batch);
  EXPECT_EQ(h.depth, 3);
  EXPECT_EQ(h.tokens, 17);
  EXPECT_EQ(h.lengths, (std::vector<int>{17, 6}));
  ASSERT_EQ(h.x.rows(), 34);
  EXPECT_EQ(Matrix(h.sample(0)), x0);
  EXPECT_EQ(Matrix(h.sample(1).topRows(6)), x1);
  EXPECT_TRUE(h.sample(1).bottomRows(11).isZero(0));
}

TEST(Activation, StackRefusesMixedSplitLayers) {
  const Encoded e0 = encode_activation(meta(2), hidden_state(3), {DType::i8});
  const Encoded e1 = encode_activation(meta(3), hidden_state(3), {DType::i8});
  const std::vector<Activation> batch{decode_activation(e0), decode_activation(e1)};
  expect_wire_error([&] { stack(batch); }, "batch.split_layer", "2 and 3");
  expect_wire_error([&] { stack({}); }, "batch");
}

// ---- semantic rejections -----------------------------------------------------------------------------

// Every field of an Activation, settable to anything the schema can carry (valid or not).
struct RawActivation {
  std::optional<Sha256> hash = test_hash();
  uint16_t split_layer = 2, tokens = 4, hidden = kHidden;
  uint8_t dtype = 0, compression = 0;
  std::optional<std::vector<float>> scales;
  std::optional<std::vector<uint8_t>> payload = std::vector<uint8_t>(4 * kHidden * 4, 0);
};

std::vector<uint8_t> build(const RawActivation& r) {
  flatbuffers::FlatBufferBuilder fbb;
  flatbuffers::Offset<flatbuffers::Vector<float>> scales;
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> payload;
  if (r.scales) scales = fbb.CreateVector(*r.scales);
  if (r.payload) payload = fbb.CreateVector(*r.payload);
  std::optional<fb::Sha256> hash;
  if (r.hash) hash.emplace(flatbuffers::span<const uint8_t, 32>(r.hash->data(), 32));
  fb::ActivationBuilder b(fbb);
  b.add_request_id(1);
  if (hash) b.add_model_hash(&*hash);
  b.add_split_layer(r.split_layer);
  b.add_tokens(r.tokens);
  b.add_hidden(r.hidden);
  b.add_dtype(static_cast<fb::DType>(r.dtype));
  b.add_compression(static_cast<fb::Compression>(r.compression));
  if (r.scales) b.add_scales(scales);
  if (r.payload) b.add_payload(payload);
  const auto act = b.Finish();
  fbb.Finish(fb::CreateEnvelope(fbb, fb::Message::Activation, act.Union()), fb::EnvelopeIdentifier());
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

void expect_rejected(const RawActivation& r, const std::string& field, const std::string& detail = "") {
  const std::vector<uint8_t> frame = build(r);
  expect_wire_error([&] { decode(frame, test_limits()); }, field, detail);
}

TEST(ActivationChecks, TheRawBuilderMakesAValidMessage) {
  const Message m = decode(build(RawActivation{}), test_limits());
  ASSERT_TRUE(std::holds_alternative<Activation>(m));
  EXPECT_EQ(std::get<Activation>(m).tokens(), 4);
}

TEST(ActivationChecks, RejectsAnotherModelsHash) {
  RawActivation r;
  r.hash = test_hash(0x01);
  expect_rejected(r, "activation.model_hash", "differs from this model's abacad");
  r.hash.reset();
  expect_rejected(r, "activation.model_hash", "missing");
}

TEST(ActivationChecks, RejectsAWrongHiddenSize) {
  RawActivation r;
  r.hidden = 65;
  expect_rejected(r, "activation.hidden", "65 differs from the model's hidden_size 64");
}

TEST(ActivationChecks, RejectsTokenCountsOutsideTheModel) {
  RawActivation r;
  r.tokens = 0;
  expect_rejected(r, "activation.tokens", "0 is outside 1..17");
  r.tokens = 18;
  r.payload = std::vector<uint8_t>(18 * kHidden * 4);
  expect_rejected(r, "activation.tokens", "18 is outside 1..17");
}

TEST(ActivationChecks, RejectsASplitLayerWithNothingLeftToRun) {
  RawActivation r;
  r.split_layer = kLayers;
  expect_rejected(r, "activation.split_layer", "6 leaves no layer to run");
  r.split_layer = 0xFFFF;
  expect_rejected(r, "activation.split_layer", "65535");
}

TEST(ActivationChecks, RejectsUnknownDtypeAndCompression) {
  RawActivation r;
  r.dtype = 3;
  expect_rejected(r, "activation.dtype", "3 is not a known dtype");
  r.dtype = 0;
  r.compression = 9;
  expect_rejected(r, "activation.compression", "9");
}

TEST(ActivationChecks, RejectsPayloadSizesThatDisagreeWithTheShape) {
  RawActivation r;
  r.payload = std::vector<uint8_t>(4 * kHidden * 4 - 1);
  expect_rejected(r, "activation.payload", "1023 bytes, 4 x 64 f32 needs 1024");
  r.dtype = 1;  // f16 needs half of the f32 bytes
  r.payload = std::vector<uint8_t>(4 * kHidden * 4);
  expect_rejected(r, "activation.payload", "4 x 64 f16 needs 512");
  r.payload.reset();
  expect_rejected(r, "activation.payload", "missing");
}

TEST(ActivationChecks, RejectsScalesThatDoNotMatchTheDtype) {
  RawActivation r;
  r.scales = std::vector<float>(4, 1.0f);  // f32 carries none
  expect_rejected(r, "activation.scales", "4 scales for dtype f32");
  r.dtype = 2;
  r.payload = std::vector<uint8_t>(4 * kHidden);
  r.scales = std::vector<float>(3, 1.0f);
  expect_rejected(r, "activation.scales", "3 scales for dtype i8 and 4 tokens");
  r.scales.reset();
  expect_rejected(r, "activation.scales", "0 scales");
}

TEST(ActivationChecks, RejectsNonFiniteOrNegativeScales) {
  RawActivation r;
  r.dtype = 2;
  r.payload = std::vector<uint8_t>(4 * kHidden);
  // 1e37 is finite, but 127 * 1e37 is not: it would dequantize to inf (found by the fuzzer).
  for (float bad :
       {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(), -1.0f, 1e37f}) {
    r.scales = std::vector<float>{1.0f, 1.0f, bad, 1.0f};
    expect_rejected(r, "activation.scales", "[2] = ");
  }
}

TEST(ActivationChecks, RejectsNonFiniteValues) {
  RawActivation r;
  const float inf = std::numeric_limits<float>::infinity();
  std::memcpy(r.payload->data() + 40, &inf, 4);
  expect_rejected(r, "activation.payload", "non-finite");
  r.dtype = 1;
  r.payload = std::vector<uint8_t>(4 * kHidden * 2, 0);
  (*r.payload)[101] = 0x7E;  // f16 NaN 0x7E00 at element 50
  expect_rejected(r, "activation.payload", "non-finite");
}

TEST(ActivationChecks, RejectsZstdFramesThatDoNotInflateToTheShape) {
  RawActivation r;
  r.compression = 1;
  // A real zstd frame, but of the wrong size: a small frame must not size our allocation.
  std::vector<uint8_t> big(64 * 1024, 0);
  std::vector<uint8_t> z(ZSTD_compressBound(big.size()));
  z.resize(ZSTD_compress(z.data(), z.size(), big.data(), big.size(), 1));
  r.payload = z;
  expect_rejected(r, "activation.payload", "declares 65536 bytes, the shape needs 1024");
  r.payload = std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 9};
  expect_rejected(r, "activation.payload", "zstd frame header is invalid");
  // Valid header and size, truncated body.
  std::vector<uint8_t> exact(1024, 7);
  z.assign(ZSTD_compressBound(exact.size()), 0);
  z.resize(ZSTD_compress(z.data(), z.size(), exact.data(), exact.size(), 1));
  z.pop_back();
  r.payload = z;
  expect_rejected(r, "activation.payload", "zstd");
}

// ---- frames ------------------------------------------------------------------------------------------

TEST(Frame, RejectsFramesOverTheLimit) {
  const Encoded e = encode_activation(meta(), hidden_state(17), {DType::f32});
  Limits limits = test_limits();
  limits.max_frame_bytes = e.size() - 1;
  expect_wire_error([&] { decode(e.span(), limits); }, "frame", "exceeds the limit");
}

TEST(Frame, EveryTruncationIsRejected) {
  const Encoded e = encode_activation(meta(), hidden_state(6), {DType::i8, Compression::zstd});
  const auto full = e.span();
  for (std::size_t n = 0; n < full.size(); ++n) {
    const std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_THROW(decode(cut, test_limits()), WireError) << "prefix of " << n << " bytes";
  }
}

TEST(Frame, RandomBytesAreRejected) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<std::size_t> length(0, 512);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> junk(length(rng));
    for (auto& b : junk) b = static_cast<uint8_t>(byte(rng));
    if (junk.size() >= 8 && i % 2 == 0) std::memcpy(junk.data() + 4, "EESP", 4);  // get past the identifier
    EXPECT_THROW(decode(junk, test_limits()), WireError) << "sample " << i;
  }
}

TEST(Frame, SingleByteCorruptionNeverCrashes) {
  const Encoded e = encode_activation(meta(), hidden_state(4), {DType::i8});
  std::size_t accepted = 0;
  for (std::size_t i = 0; i < e.size(); ++i) {
    std::vector<uint8_t> bad(e.span().begin(), e.span().end());
    bad[i] ^= 0x5A;
    try {
      const Message m = decode(bad, test_limits());
      if (const auto* a = std::get_if<Activation>(&m)) decoded_rows(*a, a->tokens());
      ++accepted;  // flipped a value byte: still a well-formed message
    } catch (const WireError&) {
    }
  }
  EXPECT_LT(accepted, e.size());
}

TEST(Frame, RejectsForeignIdentifierAndEmptyEnvelope) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(fb::CreateEnvelope(fbb), fb::EnvelopeIdentifier());
  const std::vector<uint8_t> empty(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  expect_wire_error([&] { decode(empty, test_limits()); }, "envelope.message", "type 0");
  std::vector<uint8_t> foreign = empty;
  foreign[4] = 'X';
  expect_wire_error([&] { decode(foreign, test_limits()); }, "frame", "identifier");
}

TEST(Frame, RejectsAUnionTypeWithoutItsTable) {
  // Shape of the first crash the fuzzer found: message_type = Close, message offset absent.
  flatbuffers::FlatBufferBuilder fbb;
  fb::EnvelopeBuilder b(fbb);
  b.add_message_type(fb::Message::Close);
  fbb.Finish(b.Finish(), fb::EnvelopeIdentifier());
  const std::vector<uint8_t> frame(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  expect_wire_error([&] { decode(frame, test_limits()); }, "envelope.message", "type 4 has no table");
}

// ---- control messages --------------------------------------------------------------------------------

TEST(Hello, RoundTrips) {
  Hello h;
  h.model_id = "fmnist-vit";
  h.model_hash = to_hex(test_hash());
  h.dtypes = {DType::f32, DType::i8};
  h.compressions = {Compression::zstd};
  h.max_frame_bytes = 12345;
  const Message m = decode(encode(h).span(), test_limits());
  const Hello& got = std::get<Hello>(m);
  EXPECT_EQ(got.protocol_version, kProtocolVersion);
  EXPECT_EQ(got.model_id, "fmnist-vit");
  EXPECT_EQ(parse_sha256_hex(got.model_hash), test_hash());
  EXPECT_EQ(got.dtypes, h.dtypes);
  EXPECT_EQ(got.compressions, h.compressions);
  EXPECT_EQ(got.max_frame_bytes, 12345u);
}

TEST(Hello, RejectsAMalformedHashAndSkipsUnknownCapabilities) {
  Hello h;
  h.model_hash = "abc";
  expect_wire_error([&] { decode(encode(h).span(), test_limits()); }, "model_hash", "'abc'");
  h.model_hash = std::string(63, 'a') + "g";
  expect_wire_error([&] { decode(encode(h).span(), test_limits()); }, "model_hash");

  flatbuffers::FlatBufferBuilder fbb;
  const std::vector<uint8_t> dtypes{2, 7};
  const auto hello = fb::CreateHelloDirect(fbb, 1, "m", to_hex(test_hash()).c_str(),
                                           reinterpret_cast<const std::vector<fb::DType>*>(&dtypes));
  fbb.Finish(fb::CreateEnvelope(fbb, fb::Message::Hello, hello.Union()), fb::EnvelopeIdentifier());
  const Message m = decode({fbb.GetBufferPointer(), fbb.GetSize()}, test_limits());
  EXPECT_EQ(std::get<Hello>(m).dtypes, std::vector<DType>{DType::i8});
}

TEST(Sha256Hex, RoundTripsAndAcceptsUpperCase) {
  const std::string hex = to_hex(test_hash());
  EXPECT_EQ(hex.substr(0, 6), "abacad");
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(parse_sha256_hex(upper), test_hash());
}

Result good_result() {
  Result r;
  r.request_id = 99;
  r.label = 3;
  r.exit_layer = 6;
  r.probabilities.assign(kLabels, 0.05f);
  r.probabilities[3] = 0.55f;
  r.cloud_compute = std::chrono::microseconds(1234);
  return r;
}

TEST(ResultMessage, RoundTrips) {
  const Message m = decode(encode(good_result()).span(), test_limits());
  const Result& got = std::get<Result>(m);
  EXPECT_EQ(got.request_id, 99u);
  EXPECT_EQ(got.status, Status::ok);
  EXPECT_EQ(got.label, 3);
  EXPECT_EQ(got.exit_layer, 6);
  EXPECT_EQ(got.probabilities, good_result().probabilities);
  EXPECT_EQ(got.cloud_compute, std::chrono::microseconds(1234));
}

TEST(ResultMessage, RejectsAnswersOutsideTheModel) {
  Result r = good_result();
  r.label = kLabels;
  expect_wire_error([&] { decode(encode(r).span(), test_limits()); }, "result.label", "10 is outside 0..9");
  r = good_result();
  r.exit_layer = 7;
  expect_wire_error([&] { decode(encode(r).span(), test_limits()); }, "result.exit_layer",
                    "7 is outside 1..6");
  r = good_result();
  r.probabilities.pop_back();
  expect_wire_error([&] { decode(encode(r).span(), test_limits()); }, "result.probabilities",
                    "9 values for 10");
  r = good_result();
  r.probabilities[4] = std::numeric_limits<float>::quiet_NaN();
  expect_wire_error([&] { decode(encode(r).span(), test_limits()); }, "result.probabilities", "[4] = nan");
}

TEST(ResultMessage, AFailureCarriesItsErrorText) {
  Result r;
  r.request_id = 5;
  r.status = Status::deadline_exceeded;
  r.error = "queue wait 40 ms > deadline 25 ms";
  const Result got = std::get<Result>(decode(encode(r).span(), test_limits()));
  EXPECT_EQ(got.status, Status::deadline_exceeded);
  EXPECT_EQ(got.error, r.error);
  EXPECT_EQ(got.label, -1);
}

TEST(CloseMessage, RoundTripsAndRejectsUnknownStatus) {
  const Close got =
      std::get<Close>(decode(encode(Close{Status::model_mismatch, "hash differs"}).span(), test_limits()));
  EXPECT_EQ(got.status, Status::model_mismatch);
  EXPECT_EQ(got.reason, "hash differs");
  expect_wire_error(
      [&] {
        decode(encode(Close{static_cast<Status>(42), ""}).span(), test_limits());
      },
      "close.status", "42");
}

}  // namespace
}  // namespace ee::wire
