// ee::wire: quantization error bounds, codec round trips, and every way a frame from the network can be
// wrong (each must be a WireError naming the field, never a crash).
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zstd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <random>

#include "common/model/multi_exit_model.hpp"
#include "common/model/ops.hpp"
#include "common/model/safetensors.hpp"
#include "common/wire/codec.hpp"
#include "common/wire/handshake.hpp"
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

// A row whose largest |value| is below 127 / FLT_MAX (a subnormal, say) has an infinite inverse scale;
// its zeros would become 0 * inf = NaN, cast to int8_t (undefined behaviour).
TEST(Quantize, I8SendsRowsTooSmallForAScaleAsZeros) {
  Matrix x = hidden_state(3);
  x.row(0).setZero();
  x(0, 1) = 1e-40f;  // subnormal
  x(0, 2) = -3e-41f;
  x.row(2).setZero();
  x(2, 7) = 1e-37f;  // normal, but 127 / 1e-37 overflows float
  std::vector<std::byte> bytes(payload_bytes(3, kHidden, DType::i8));
  std::vector<float> scales(3);
  quantize(x, DType::i8, bytes, scales);
  for (int r : {0, 2}) {
    EXPECT_EQ(scales[static_cast<std::size_t>(r)], 0.0f) << "row " << r;
    for (int c = 0; c < kHidden; ++c)
      EXPECT_EQ(static_cast<int>(bytes[static_cast<std::size_t>(r * kHidden + c)]), 0) << r << "," << c;
  }
  EXPECT_FLOAT_EQ(scales[1], x.row(1).cwiseAbs().maxCoeff() / 127.0f);  // the other rows are untouched
  const Matrix y = decoded_rows(decode_activation(encode_activation(meta(), x, {DType::i8})), 3);
  EXPECT_TRUE(y.row(0).isZero(0));
  EXPECT_TRUE(y.row(2).isZero(0));
  // Just above the overflow the scale works again.
  x.row(2).setZero();
  x(2, 7) = 1e-36f;
  quantize(x, DType::i8, bytes, scales);
  EXPECT_GT(scales[2], 0.0f);
  EXPECT_EQ(static_cast<int8_t>(bytes[2 * kHidden + 7]), 127);
}

TEST(Quantize, RejectsNonFiniteInputNamingTheElement) {
  Matrix x = hidden_state(3);
  x(1, 5) = std::numeric_limits<float>::quiet_NaN();
  for (DType d : {DType::f32, DType::f16, DType::i8})
    expect_wire_error([&] { encode_activation(meta(), x, {d}); }, "hidden[1][5]", "not finite");
}

TEST(Quantize, EveryDtypeRefusesValuesBeyondTheWireBound) {
  Matrix x = hidden_state(3);
  x(2, 0) = -70000.0f;
  for (DType d : {DType::f32, DType::f16, DType::i8})
    expect_wire_error([&] { encode_activation(meta(), x, {d}); }, "hidden[2][0]", "exceeds the wire's bound");
  // The bound itself is sent, and received, in every dtype: the i8 scale at the bound is one a receiver
  // accepts, and dequantizes back to the bound.
  x(2, 0) = -kMaxActivation;
  x(1, 4) = kMaxActivation;
  for (DType d : {DType::f32, DType::f16, DType::i8}) {
    const Matrix y = decoded_rows(decode_activation(encode_activation(meta(), x, {d})), 3);
    EXPECT_EQ(y(2, 0), -kMaxActivation) << to_string(d);
    EXPECT_EQ(y(1, 4), kMaxActivation) << to_string(d);
  }
}

// The bound must leave real activations alone: both reference models' hidden states after every layer
// (the PyTorch golden vectors) sit orders of magnitude below it.
TEST(Quantize, ReferenceModelsHiddenStatesAreFarBelowTheBound) {
  for (const char* name : {"fmnist-vit", "spam-bert"}) {
    const auto golden = model::SafeTensors::open(std::filesystem::path(EE_SOURCE_DIR) / "models" / name /
                                                 "golden.safetensors");
    int states = 0;
    for (const auto& [tensor, view] : golden->tensors()) {
      if (tensor.rfind("hidden.", 0) != 0) continue;
      const float amax = golden->f32(tensor, view.shape).cwiseAbs().maxCoeff();
      EXPECT_LT(amax, kMaxActivation / 1000) << name << " " << tensor;
      ++states;
    }
    EXPECT_GE(states, 5) << name;
  }
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

// The rule and the state cross the split for every measure, with and without an audit request.
TEST(Activation, CarriesTheExitRuleStateAndAudit) {
  const exits::ExitRule rules[] = {{exits::Measure::max_prob, 0.8},
                                   {exits::Measure::entropy, 0.3},
                                   {exits::Measure::margin, 0.25},
                                   {exits::Measure::patience, 3}};
  for (const exits::ExitRule& rule : rules)
    for (bool audit : {false, true}) {
      ActivationMeta m = meta(4);
      m.exit = {rule, {7, 3}};
      m.audit = audit;
      const Activation a = decode_activation(encode_activation(m, hidden_state(3), {DType::i8}));
      EXPECT_EQ(a.exit().rule, rule) << rule.str();
      EXPECT_EQ(a.exit().state, (exits::ExitState{7, 3})) << rule.str();
      EXPECT_EQ(a.audit(), audit) << rule.str();
    }
}

TEST(Activation, DefaultsAreExitRuleDefaultsAndAFreshState) {
  const Activation a = decode_activation(encode_activation(meta(), hidden_state(3), {DType::i8}));
  EXPECT_EQ(a.exit().rule, exits::ExitRule{});
  EXPECT_EQ(a.exit().state, exits::ExitState{});
  EXPECT_FALSE(a.audit());
}

TEST(Activation, EncodeRefusesFieldsTheSchemaCannotHold) {
  ActivationMeta m = meta();
  m.exit.state = {1, 70000};
  expect_wire_error([&] { encode_activation(m, hidden_state(2), {}); }, "activation.exit_streak", "70000");
  m.exit.state = {1, -1};
  expect_wire_error([&] { encode_activation(m, hidden_state(2), {}); }, "activation.exit_streak", "-1");
  m = meta();
  m.deadline = kMaxDeadline + std::chrono::microseconds(1);
  expect_wire_error([&] { encode_activation(m, hidden_state(2), {}); }, "activation.deadline_us",
                    "86400000001");
}

TEST(Activation, ZstdDecodesToTheSameValues) {
  const Matrix x = hidden_state(17);
  for (DType dtype : {DType::f32, DType::f16, DType::i8}) {
    const Encoded plain = encode_activation(meta(), x, {dtype});
    const Encoded packed = encode_activation(meta(), x, {dtype, Compression::zstd});
    const Activation a = decode_activation(packed);
    EXPECT_EQ(a.compression(), Compression::zstd);
    EXPECT_EQ(decoded_rows(decode_activation(plain), 17), decoded_rows(a, 17)) << to_string(dtype);
  }
}

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
  expect_wire_error([&] { a.decode_into(narrow); }, "decode_into.out", "block is 5 x 63, needs >= 5 x 64");
  expect_wire_error([&] { a.decode_into(short_block); }, "decode_into.out", "block is 4 x 64");
}

// ---- semantic rejections -----------------------------------------------------------------------------

// Every field of an Activation, settable to anything the schema can carry (valid or not).
struct RawActivation {
  std::optional<Sha256> hash = test_hash();
  uint16_t split_layer = 2, tokens = 4, hidden = kHidden;
  uint8_t dtype = 0, compression = 0;
  std::optional<std::vector<float>> scales;
  std::optional<std::vector<uint8_t>> payload = std::vector<uint8_t>(4 * kHidden * 4, 0);
  uint64_t deadline_us = 0;
  uint8_t exit_measure = 0;
  double exit_threshold = 0.9;
  int32_t exit_last_label = -1;
  uint16_t exit_streak = 0;
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
  b.add_deadline_us(r.deadline_us);
  b.add_exit_measure(static_cast<fb::ExitMeasure>(r.exit_measure));
  b.add_exit_threshold(r.exit_threshold);
  b.add_exit_last_label(r.exit_last_label);
  b.add_exit_streak(r.exit_streak);
  const auto act = b.Finish();
  fbb.Finish(fb::CreateEnvelope(fbb, fb::Message::Activation, act.Union()), fb::EnvelopeIdentifier());
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

void expect_rejected(const RawActivation& r, const std::string& field, const std::string& detail = "") {
  const std::vector<uint8_t> frame = build(r);
  expect_wire_error([&] { decode(frame, test_limits()); }, field, detail);
}

void expect_accepted(const RawActivation& r) {
  const std::vector<uint8_t> frame = build(r);
  EXPECT_NO_THROW(decode(frame, test_limits()));
}

TEST(ActivationChecks, TheRawBuilderMakesAValidMessage) {
  const Message m = decode(build(RawActivation{}), test_limits());
  ASSERT_TRUE(std::holds_alternative<Activation>(m));
  EXPECT_EQ(std::get<Activation>(m).tokens(), 4);
}

TEST(ActivationChecks, AFrameWithoutTheExitFieldsGetsTheDefaults) {
  // The builder leaves out fields at their schema default, as a sender that predates them does.
  const std::vector<uint8_t> frame = build(RawActivation{});
  const auto* table = reinterpret_cast<const flatbuffers::Table*>(
      flatbuffers::GetRoot<fb::Envelope>(frame.data())->message_as_Activation());
  EXPECT_FALSE(table->CheckField(fb::Activation::VT_EXIT_THRESHOLD));
  EXPECT_FALSE(table->CheckField(fb::Activation::VT_AUDIT));
  const Activation a = std::get<Activation>(decode(frame, test_limits()));
  EXPECT_EQ(a.exit().rule, exits::ExitRule{});
  EXPECT_EQ(a.exit().state, exits::ExitState{});
  EXPECT_FALSE(a.audit());
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
  expect_rejected(r, "activation.payload", "[10] is not finite");
  r.dtype = 1;
  r.payload = std::vector<uint8_t>(4 * kHidden * 2, 0);
  (*r.payload)[101] = 0x7E;  // f16 NaN 0x7E00 at element 50
  expect_rejected(r, "activation.payload", "[50] is not finite");
}

// Finite but huge values overflow LayerNorm and attention to NaN; they used to be accepted here and fail
// later, far from the wire, as std::invalid_argument from exits::confidence.
TEST(ActivationChecks, RejectsValuesBeyondTheBound) {
  RawActivation r;
  auto put = [&](std::size_t element, float v) { std::memcpy(r.payload->data() + 4 * element, &v, 4); };
  put(7, kMaxActivation);
  put(8, -kMaxActivation);
  expect_accepted(r);
  put(9, std::nextafter(kMaxActivation, 1e30f));
  expect_rejected(r, "activation.payload", "[9] is not finite or exceeds +-65504");
  put(9, -3e38f);
  expect_rejected(r, "activation.payload", "[9]");
}

TEST(ActivationChecks, BoundsI8ValuesThroughTheScale) {
  RawActivation r;
  r.dtype = 2;
  r.payload = std::vector<uint8_t>(4 * kHidden, 127);
  const float at_bound = kMaxActivation / 127.0f;
  r.scales = std::vector<float>{at_bound, 1.0f, 1.0f, 1.0f};
  expect_accepted(r);
  r.scales = std::vector<float>{std::nextafter(at_bound, 1e30f), 1.0f, 1.0f, 1.0f};
  expect_rejected(r, "activation.scales", "[0] = ");
  // -128 * the largest scale would pass the bound; the encoder never writes -128 (symmetric int8).
  r.scales = std::vector<float>(4, 1.0f);
  (*r.payload)[70] = 0x80;
  expect_rejected(r, "activation.payload", "[70] = -128");
}

TEST(ActivationChecks, RejectsADeadlineNoClockCanAdd) {
  RawActivation r;
  r.deadline_us = static_cast<uint64_t>(kMaxDeadline.count());
  expect_accepted(r);
  r.deadline_us = uint64_t{1} << 63;  // would be a negative std::chrono::microseconds
  expect_rejected(r, "activation.deadline_us", "9223372036854775808 is beyond");
}

TEST(ActivationChecks, ChecksTheExitRuleForItsMeasure) {
  RawActivation r;
  r.exit_measure = 4;
  expect_rejected(r, "activation.exit_measure", "4 is not a known measure");
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  struct Case {
    uint8_t measure;
    std::vector<double> good, bad;
  };
  const Case cases[] = {
      {0, {0.0, 0.5, 1.0}, {-0.01, 1.01, nan, inf}},           // max_prob
      {1, {0.0, 0.3, 50.0}, {-0.01, nan, inf}},                // entropy
      {2, {0.0, 0.25, 1.0}, {-1.0, 1.5, nan, -inf}},           // margin
      {3, {1.0, 2.0, kLayers}, {0.0, 1.5, kLayers + 1, nan}},  // patience
  };
  for (const Case& c : cases) {
    r.exit_measure = c.measure;
    for (double t : c.good) {
      r.exit_threshold = t;
      SCOPED_TRACE(::testing::Message() << "measure " << int{c.measure} << " threshold " << t);
      expect_accepted(r);
    }
    for (double t : c.bad) {
      r.exit_threshold = t;
      SCOPED_TRACE(::testing::Message() << "measure " << int{c.measure} << " threshold " << t);
      expect_rejected(r, "activation.exit_threshold");
    }
  }
}

TEST(ActivationChecks, ChecksTheExitState) {
  RawActivation r;  // split_layer 2
  r.exit_last_label = kLabels - 1;
  r.exit_streak = 2;
  expect_accepted(r);
  r.exit_streak = 3;
  expect_rejected(r, "activation.exit_streak", "3 exceeds the 2 layers run");
  r.exit_streak = 1;
  r.exit_last_label = kLabels;
  expect_rejected(r, "activation.exit_last_label", "10 is outside -1..9");
  r.exit_last_label = -2;
  expect_rejected(r, "activation.exit_last_label", "-2");
  r.exit_last_label = -1;
  expect_rejected(r, "activation.exit_streak", "1 follows no prediction");
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

// What a decoded message promises: re-encoded (an Activation as f32, so its values travel unrounded) and
// decoded again it is unchanged, and an Activation's values are bounded with its padding zero.
void expect_checked(const Message& m) {
  const Limits limits = test_limits();
  if (const auto* a = std::get_if<Activation>(&m)) {
    const Matrix block = decoded_rows(*a, kMaxTokens);
    EXPECT_LE(block.cwiseAbs().maxCoeff(), kMaxActivation);
    EXPECT_TRUE(block.bottomRows(kMaxTokens - a->tokens()).isZero(0));
    ActivationMeta meta{a->request_id(), limits.model_hash, a->split_layer(),
                        a->deadline(),   a->exit(),         a->audit()};
    const Activation again =
        decode_activation(encode_activation(meta, block.topRows(a->tokens()), {DType::f32}));
    EXPECT_EQ(again.request_id(), a->request_id());
    EXPECT_EQ(again.split_layer(), a->split_layer());
    EXPECT_EQ(again.deadline(), a->deadline());
    EXPECT_EQ(again.exit().rule, a->exit().rule);
    EXPECT_EQ(again.exit().state, a->exit().state);
    EXPECT_EQ(again.audit(), a->audit());
    EXPECT_EQ(decoded_rows(again, kMaxTokens), block);
  } else if (const auto* h = std::get_if<Hello>(&m)) {
    EXPECT_EQ(std::get<Hello>(decode(encode(*h).span(), limits)), *h);
  } else if (const auto* r = std::get_if<Result>(&m)) {
    EXPECT_EQ(std::get<Result>(decode(encode(*r).span(), limits)), *r);
  } else {
    const Close& c = std::get<Close>(m);
    EXPECT_EQ(std::get<Close>(decode(encode(c).span(), limits)), c);
  }
}

// Flipping any byte of a frame ends one of two ways: a WireError, or a message that passes every check.
// Both happen, and a flipped i8 payload byte, which is a value byte, changes exactly that one value (or
// makes it -128, refused).
TEST(Frame, EverySingleByteCorruptionIsRejectedOrFullyChecked) {
  ActivationMeta m = meta(3);
  m.exit = {{exits::Measure::patience, 2}, {4, 1}};
  m.audit = true;
  const Matrix x = hidden_state(4);
  for (const EncodeOptions options :
       {EncodeOptions{DType::i8}, EncodeOptions{DType::f16, Compression::zstd}}) {
    SCOPED_TRACE(to_string(options.dtype));
    const Encoded e = encode_activation(m, x, options);
    const Matrix original = decoded_rows(decode_activation(e), kMaxTokens);
    const auto* table = flatbuffers::GetRoot<fb::Envelope>(e.span().data())->message_as_Activation();
    const std::size_t payload_at = static_cast<std::size_t>(table->payload()->data() - e.span().data());
    const std::size_t payload_end = payload_at + table->payload()->size();
    std::size_t rejected = 0, accepted = 0;
    for (std::size_t i = 0; i < e.size(); ++i)
      for (const uint8_t flip : {0x01, 0x5A, 0x80}) {
        SCOPED_TRACE(::testing::Message() << "byte " << i << " ^ " << int{flip});
        std::vector<uint8_t> bad(e.span().begin(), e.span().end());
        bad[i] ^= flip;
        std::optional<Message> got;
        try {
          got = decode(bad, test_limits());
        } catch (const WireError& error) {
          ++rejected;
          if (options.dtype == DType::i8 && i >= payload_at && i < payload_end) {
            EXPECT_EQ(static_cast<uint8_t>(bad[i]), 0x80u) << error.what();
          }
          continue;
        }
        ++accepted;
        expect_checked(*got);
        if (options.dtype == DType::i8 && i >= payload_at && i < payload_end) {
          const Matrix now = decoded_rows(std::get<Activation>(*got), kMaxTokens);
          EXPECT_EQ((now.array() != original.array()).count(), 1);
          const auto element = static_cast<Eigen::Index>(i - payload_at);
          EXPECT_NE(now(element / kHidden, element % kHidden),
                    original(element / kHidden, element % kHidden));
        }
      }
    EXPECT_GT(rejected, 0u);
    EXPECT_GT(accepted, options.dtype == DType::i8 ? 3 * (payload_end - payload_at) / 2 : 0u);
  }
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
  h.precision = Precision::bf16;
  h.kernel = Kernel::amx;
  const Message m = decode(encode(h).span(), test_limits());
  const Hello& got = std::get<Hello>(m);
  EXPECT_EQ(got.protocol_version, kProtocolVersion);
  EXPECT_EQ(got.model_id, "fmnist-vit");
  EXPECT_EQ(parse_sha256_hex(got.model_hash), test_hash());
  EXPECT_EQ(got.dtypes, h.dtypes);
  EXPECT_EQ(got.compressions, h.compressions);
  EXPECT_EQ(got.max_frame_bytes, 12345u);
  EXPECT_EQ(got.precision, Precision::bf16);
  EXPECT_EQ(got.kernel, Kernel::amx);
}

TEST(Hello, RejectsAnUnknownPrecisionOrKernel) {
  Hello h;
  h.model_hash = to_hex(test_hash());
  h.precision = static_cast<Precision>(2);
  expect_wire_error([&] { decode(encode(h).span(), test_limits()); }, "hello.precision", "2 is not a known");
  h.precision = Precision::fp32;
  h.kernel = static_cast<Kernel>(9);
  expect_wire_error([&] { decode(encode(h).span(), test_limits()); }, "hello.kernel", "9 is not a known");
}

TEST(Hello, RejectsAMalformedHashAndSkipsUnknownCapabilities) {
  Hello h;
  h.model_hash = "abc";
  expect_wire_error([&] { decode(encode(h).span(), test_limits()); }, "hello.model_hash", "'abc'");
  h.model_hash = std::string(63, 'a') + "g";
  expect_wire_error([&] { decode(encode(h).span(), test_limits()); }, "hello.model_hash");

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
  r.final_label = 4;
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
  EXPECT_EQ(got.final_label, 4);
  EXPECT_EQ(got, good_result());
}

// These were cast to the schema's uint16 and uint32 and sent truncated.
TEST(ResultMessage, EncodeRefusesValuesTheSchemaCannotHold) {
  Result r = good_result();
  r.exit_layer = 65536;
  expect_wire_error([&] { encode(r); }, "result.exit_layer", "65536 is outside 0..65535");
  r.exit_layer = -1;
  expect_wire_error([&] { encode(r); }, "result.exit_layer", "-1");
  r = good_result();
  r.cloud_compute = std::chrono::microseconds(uint64_t{1} << 32);
  expect_wire_error([&] { encode(r); }, "result.cloud_compute_us", "4294967296 is outside 0..4294967295");
  r.cloud_compute = std::chrono::microseconds(-5);
  expect_wire_error([&] { encode(r); }, "result.cloud_compute_us", "-5");
  r.cloud_compute = std::chrono::microseconds(0xFFFFFFFF);
  EXPECT_EQ(std::get<Result>(decode(encode(r).span(), test_limits())).cloud_compute.count(), 0xFFFFFFFF);
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
  r.final_label = kLabels;
  expect_wire_error([&] { decode(encode(r).span(), test_limits()); }, "result.final_label",
                    "10 is outside -1..9");
  r.final_label = -2;
  expect_wire_error([&] { decode(encode(r).span(), test_limits()); }, "result.final_label", "-2");
  r.final_label = -1;
  EXPECT_NO_THROW(decode(encode(r).span(), test_limits()));
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

// ---- handshake ---------------------------------------------------------------------------------------

Hello peer_hello(Precision precision = Precision::fp32, Kernel kernel = Kernel::packed) {
  Hello h;
  h.model_id = "fmnist-vit";
  h.model_hash = to_hex(test_hash());
  h.dtypes = {DType::f32, DType::i8};
  h.compressions = {Compression::zstd};
  h.precision = precision;
  h.kernel = kernel;
  return h;
}

TEST(Handshake, PeersThatMatchTalk) {
  Hello edge = peer_hello();
  for (char& c : edge.model_hash) c = static_cast<char>(std::toupper(c));  // the same hash
  edge.dtypes = {DType::f16};  // capabilities are negotiated, not matched
  EXPECT_EQ(check_hello(edge, peer_hello()), std::nullopt);
  EXPECT_EQ(check_hello(peer_hello(Precision::bf16, Kernel::amx), peer_hello(Precision::bf16, Kernel::amx)),
            std::nullopt);
}

TEST(Handshake, RefusesAnotherVersionModelOrArithmeticInThatOrder) {
  const Hello cloud = peer_hello();
  Hello edge = peer_hello(Precision::bf16, Kernel::amx);
  edge.protocol_version = kProtocolVersion + 1;
  edge.model_id = "spam-bert";
  edge.model_hash = to_hex(test_hash(0x01));
  std::optional<Close> refusal = check_hello(edge, cloud);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->status, Status::version_mismatch);
  EXPECT_EQ(refusal->reason, "edge speaks protocol version 2, cloud 1");

  edge.protocol_version = kProtocolVersion;
  refusal = check_hello(edge, cloud);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->status, Status::model_mismatch);
  EXPECT_EQ(refusal->reason, "edge has model 'spam-bert' (" + to_hex(test_hash(0x01)) +
                                 "), cloud 'fmnist-vit' (" + to_hex(test_hash()) + ")");

  edge.model_hash = cloud.model_hash;
  refusal = check_hello(edge, cloud);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->status, Status::precision_mismatch);
  EXPECT_EQ(refusal->reason,
            "edge runs bf16 on amx, cloud fp32 on packed: their answers would not agree bit for bit");

  // Same precision, another kernel family: an edge without AVX-512 runs packed as OpenBLAS.
  refusal = check_hello(peer_hello(Precision::fp32, Kernel::blas), cloud);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->status, Status::precision_mismatch);
  EXPECT_THAT(refusal->reason, HasSubstr("edge runs fp32 on blas, cloud fp32 on packed"));
  // The refusal reaches the edge intact.
  EXPECT_EQ(std::get<Close>(decode(encode(*refusal).span(), test_limits())), *refusal);
}

TEST(Handshake, NegotiatesTheSmallerFrameLimitAboveOneHiddenState) {
  const Limits limits = test_limits();
  const std::size_t least = min_frame_bytes(limits);
  EXPECT_GE(least, payload_bytes(kMaxTokens, kHidden, DType::f32));
  Hello a = peer_hello(), b = peer_hello();
  a.max_frame_bytes = 1 << 20;
  b.max_frame_bytes = static_cast<uint32_t>(least);
  EXPECT_EQ(negotiated_max_frame(a, b, limits), least);
  EXPECT_EQ(negotiated_max_frame(b, a, limits), least);
  b.max_frame_bytes = static_cast<uint32_t>(least - 1);
  expect_wire_error([&] { negotiated_max_frame(a, b, limits); }, "hello.max_frame_bytes",
                    fmt::format("{} ('fmnist-vit') is below the {} bytes", least - 1, least));
  b.max_frame_bytes = 0;
  expect_wire_error([&] { negotiated_max_frame(b, a, limits); }, "hello.max_frame_bytes", "0 ('fmnist-vit')");
}

// min_frame_bytes is only a promise if the largest Activation really fits: every row of the model, values
// zstd cannot compress, every field away from its default.
TEST(Handshake, TheMinimumFrameFitsTheLargestActivation) {
  Limits limits = test_limits();
  limits.max_frame_bytes = min_frame_bytes(limits);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> any(-kMaxActivation, kMaxActivation);
  Matrix x(kMaxTokens, kHidden);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = any(rng);
  ActivationMeta m = meta(kLayers - 1);
  m.request_id = ~uint64_t{0};
  m.deadline = kMaxDeadline;
  m.exit = {{exits::Measure::patience, kLayers}, {kLabels - 1, kLayers - 1}};
  m.audit = true;
  for (DType dtype : {DType::f32, DType::f16, DType::i8})
    for (Compression compression : {Compression::none, Compression::zstd}) {
      const Encoded e = encode_activation(m, x, {dtype, compression});
      EXPECT_LE(e.size(), limits.max_frame_bytes) << to_string(dtype) << " " << to_string(compression);
      EXPECT_NO_THROW(decode(e.span(), limits));
    }
}

TEST(Handshake, HelloForTellsWhatReallyRunsOnThisCpu) {
  using model::Gemm;
  const auto model = model::MultiExitModel::load(std::filesystem::path(EE_SOURCE_DIR) / "models/fmnist-vit");
  const Hello packed = hello_for(*model, "fmnist-vit", Gemm::packed);
  EXPECT_EQ(packed.protocol_version, kProtocolVersion);
  EXPECT_EQ(packed.model_id, "fmnist-vit");
  EXPECT_EQ(packed.model_hash, model->hash());
  EXPECT_EQ(packed.dtypes, (std::vector<DType>{DType::f32, DType::f16, DType::i8}));
  EXPECT_EQ(packed.compressions, (std::vector<Compression>{Compression::none, Compression::zstd}));
  EXPECT_EQ(packed.max_frame_bytes, kDefaultMaxFrameBytes);
  EXPECT_EQ(packed.precision, Precision::fp32);
  EXPECT_EQ(packed.kernel, model::packed_gemm_supported() ? Kernel::packed : Kernel::blas);
  EXPECT_EQ(model::effective_gemm(Gemm::packed), model::packed_gemm_supported() ? Gemm::packed : Gemm::blas);
  EXPECT_EQ(hello_for(*model, "m", Gemm::blas).kernel, Kernel::blas);
  EXPECT_EQ(hello_for(*model, "m", Gemm::eigen).kernel, Kernel::eigen);
  EXPECT_EQ(hello_for(*model, "m", Gemm::packed, 1 << 16).max_frame_bytes, 1u << 16);

  const Hello bf16 = hello_for(*model, "fmnist-vit", Gemm::bf16);
  if (model::bf16_gemm_supported()) {
    EXPECT_EQ(model::effective_gemm(Gemm::bf16), Gemm::bf16);
    EXPECT_EQ(bf16.precision, Precision::bf16);
    EXPECT_EQ(bf16.kernel, Kernel::amx);
    ASSERT_TRUE(check_hello(bf16, packed));
    EXPECT_EQ(check_hello(bf16, packed)->status, Status::precision_mismatch);
  } else {  // bf16 runs as packed here, and says so
    EXPECT_EQ(model::effective_gemm(Gemm::bf16), model::effective_gemm(Gemm::packed));
    EXPECT_EQ(bf16, packed);
    EXPECT_EQ(check_hello(bf16, packed), std::nullopt);
  }
  EXPECT_EQ(model::to_string(Gemm::bf16), "bf16");
  EXPECT_EQ(model::to_string(Gemm::blas), "blas");
  const Limits limits = Limits::for_model(model->config(), model->hash());
  EXPECT_EQ(std::get<Hello>(decode(encode(bf16).span(), limits)), bf16);
}

// ---- frozen wire bytes -------------------------------------------------------------------------------

// tests/data/wire/ holds one frame per message kind as this codec wrote it (README.md there says how to
// write them again). Decoding them checks that today's code still reads yesterday's bytes field by field;
// re-encoding the same inputs checks that today's encoder still writes those bytes, so a reordered,
// retyped or re-defaulted field fails here rather than between an old edge and a new cloud.
const std::filesystem::path kGoldenDir = std::filesystem::path(EE_SOURCE_DIR) / "tests/data/wire";
// zstd's output may change between library versions while staying decodable; the zstd frame's bytes are
// compared only under the version that wrote them.
constexpr unsigned kGoldenZstdVersion = 10504;

// Rows every dtype carries exactly: multiples of a power of two small enough for f16, and each row holds
// +-127 of them, so its i8 scale is that power of two.
Matrix golden_rows() {
  Matrix x(2, kHidden);
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < kHidden; ++c)
      x(r, c) = static_cast<float>((c * 37 + r * 11) % 255 - 127) * (r == 0 ? 0.25f : 0.5f);
  x(0, 0) = 127 * 0.25f;
  x(1, 1) = -127 * 0.5f;
  return x;
}

ActivationMeta golden_meta(exits::ExitRule rule, exits::ExitState state) {
  ActivationMeta m;
  m.request_id = 0x0102030405060708ull;
  m.model_hash = test_hash();
  m.split_layer = 3;
  m.deadline = std::chrono::microseconds(25'000);
  m.exit = {rule, state};
  m.audit = true;
  return m;
}

struct GoldenActivation {
  const char* name;
  EncodeOptions options;
  exits::ExitRule rule;
  exits::ExitState state;
};
const GoldenActivation kGoldenActivations[] = {
    {"activation_f32", {DType::f32}, {exits::Measure::patience, 2}, {1, 2}},
    {"activation_f16", {DType::f16}, {exits::Measure::entropy, 0.25}, {2, 0}},
    {"activation_i8", {DType::i8}, {exits::Measure::margin, 0.5}, {0, 1}},
    {"activation_i8_zstd", {DType::i8, Compression::zstd}, {exits::Measure::max_prob, 0.75}, {-1, 0}},
};

Hello golden_hello() {
  return Hello{kProtocolVersion,
               "golden",
               to_hex(test_hash()),
               {DType::f32, DType::f16, DType::i8},
               {Compression::none, Compression::zstd},
               1u << 20,
               Precision::bf16,
               Kernel::amx};
}

Result golden_result() {
  return Result{99,
                Status::ok,
                "",
                2,
                {0.125f, 0.5f, 0.125f, 0.25f, 0, 0, 0, 0, 0, 0},
                5,
                std::chrono::microseconds(1234),
                3};
}

Result golden_failure() {
  return Result{100, Status::overloaded, "queue full", -1, {}, 0, std::chrono::microseconds(7), -1};
}

Close golden_close() {
  return Close{Status::precision_mismatch, "edge runs bf16 on amx, cloud fp32 on packed"};
}

// What today's encoder makes of every golden input, by file name.
std::vector<std::pair<std::string, Encoded>> golden_frames() {
  std::vector<std::pair<std::string, Encoded>> frames;
  for (const GoldenActivation& g : kGoldenActivations)
    frames.emplace_back(g.name, encode_activation(golden_meta(g.rule, g.state), golden_rows(), g.options));
  frames.emplace_back("hello", encode(golden_hello()));
  frames.emplace_back("result", encode(golden_result()));
  frames.emplace_back("result_failure", encode(golden_failure()));
  frames.emplace_back("close", encode(golden_close()));
  return frames;
}

std::vector<uint8_t> read_golden(const std::string& name) {
  std::ifstream in(kGoldenDir / (name + ".eesp"), std::ios::binary);
  EXPECT_TRUE(in) << "missing " << (kGoldenDir / (name + ".eesp"));
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// EE_WRITE_GOLDEN=1 rewrites the files from today's encoder instead (then review the diff: a golden frame
// changes only when a field is appended, and then every old file must still decode).
TEST(GoldenFrames, TodaysEncoderWritesTheSameBytes) {
  const char* write = std::getenv("EE_WRITE_GOLDEN");
  for (const auto& [name, encoded] : golden_frames()) {
    if (write && std::string(write) == "1") {
      std::filesystem::create_directories(kGoldenDir);
      std::ofstream(kGoldenDir / (name + ".eesp"), std::ios::binary)
          .write(reinterpret_cast<const char*>(encoded.span().data()),
                 static_cast<std::streamsize>(encoded.size()));
      continue;
    }
    if (name.find("zstd") != std::string::npos && ZSTD_versionNumber() != kGoldenZstdVersion) {
      std::cout << name << ": bytes not compared (libzstd " << ZSTD_versionNumber() << " wrote "
                << kGoldenZstdVersion << "); decoded by GoldenFrames.DecodeFieldByField\n";
      continue;
    }
    const std::vector<uint8_t> golden = read_golden(name);
    EXPECT_EQ(std::vector<uint8_t>(encoded.span().begin(), encoded.span().end()), golden) << name;
  }
}

TEST(GoldenFrames, DecodeFieldByField) {
  for (const GoldenActivation& g : kGoldenActivations) {
    SCOPED_TRACE(g.name);
    const Activation a = std::get<Activation>(decode(read_golden(g.name), test_limits()));
    EXPECT_EQ(a.request_id(), 0x0102030405060708ull);
    EXPECT_EQ(a.split_layer(), 3);
    EXPECT_EQ(a.tokens(), 2);
    EXPECT_EQ(a.hidden(), kHidden);
    EXPECT_EQ(a.dtype(), g.options.dtype);
    EXPECT_EQ(a.compression(), g.options.compression);
    EXPECT_EQ(a.deadline(), std::chrono::microseconds(25'000));
    EXPECT_EQ(a.exit().rule, g.rule);
    EXPECT_EQ(a.exit().state, g.state);
    EXPECT_TRUE(a.audit());
    EXPECT_EQ(decoded_rows(a, 2), golden_rows());
  }
  const Hello h = std::get<Hello>(decode(read_golden("hello"), test_limits()));
  EXPECT_EQ(h.protocol_version, 1);
  EXPECT_EQ(h.model_id, "golden");
  EXPECT_EQ(h.model_hash, to_hex(test_hash()));
  EXPECT_EQ(h.dtypes, (std::vector<DType>{DType::f32, DType::f16, DType::i8}));
  EXPECT_EQ(h.compressions, (std::vector<Compression>{Compression::none, Compression::zstd}));
  EXPECT_EQ(h.max_frame_bytes, 1u << 20);
  EXPECT_EQ(h.precision, Precision::bf16);
  EXPECT_EQ(h.kernel, Kernel::amx);

  const Result r = std::get<Result>(decode(read_golden("result"), test_limits()));
  EXPECT_EQ(r.request_id, 99u);
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.label, 2);
  EXPECT_EQ(r.probabilities, (std::vector<float>{0.125f, 0.5f, 0.125f, 0.25f, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(r.exit_layer, 5);
  EXPECT_EQ(r.cloud_compute, std::chrono::microseconds(1234));
  EXPECT_EQ(r.final_label, 3);

  const Result f = std::get<Result>(decode(read_golden("result_failure"), test_limits()));
  EXPECT_EQ(f.request_id, 100u);
  EXPECT_EQ(f.status, Status::overloaded);
  EXPECT_EQ(f.error, "queue full");
  EXPECT_EQ(f.label, -1);
  EXPECT_TRUE(f.probabilities.empty());
  EXPECT_EQ(f.exit_layer, 0);
  EXPECT_EQ(f.cloud_compute, std::chrono::microseconds(7));
  EXPECT_EQ(f.final_label, -1);

  const Close c = std::get<Close>(decode(read_golden("close"), test_limits()));
  EXPECT_EQ(c.status, Status::precision_mismatch);
  EXPECT_EQ(c.reason, "edge runs bf16 on amx, cloud fp32 on packed");
}

}  // namespace
}  // namespace ee::wire
