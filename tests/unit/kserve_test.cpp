// ee::edge KServe v2 codec: every accepted request form (JSON flat and nested, UINT8 and FP32, every
// shape, BYTES texts, the binary tensor data extension, the ways Triton's client asks for binary outputs),
// every refusal with its status and a message naming the problem, and the exact bytes of the responses.
#include "edge/kserve.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>

#include "common/model/config.hpp"
#include "tests/unit/edge_models.hpp"

namespace ee::edge {
namespace {

using ee::testing::spam_text_model;
using ee::testing::tiny_image_model;
using nlohmann::json;
using ::testing::HasSubstr;

ModelDescription fmnist() {
  ModelDescription m;
  m.name = "fmnist";
  m.kind = ModelKind::image;
  m.image_size = 28;
  m.channels = 1;
  m.labels = {"T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"};
  m.max_batch = 8;
  return m;
}

ModelDescription rgb() {
  ModelDescription m = tiny_image_model();
  m.name = "rgb";
  m.image_size = 4;
  m.channels = 3;
  return m;
}

std::vector<uint8_t> image_pixels(std::size_t n) {
  std::vector<uint8_t> p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>((i * 37 + 11) % 256);
  return p;
}

json image_input(const json& shape, const std::string& datatype, const json& data) {
  return {{"name", "image"}, {"shape", shape}, {"datatype", datatype}, {"data", data}};
}

json request_with(const json& input) {
  return {{"inputs", json::array({input})}};
}

json nested(const std::vector<uint8_t>& flat, const std::vector<std::size_t>& dims, std::size_t depth = 0,
            std::size_t offset = 0) {
  if (depth == dims.size()) return flat[offset];
  std::size_t stride = 1;
  for (std::size_t d = depth + 1; d < dims.size(); ++d) stride *= dims[d];
  json a = json::array();
  for (std::size_t i = 0; i < dims[depth]; ++i)
    a.push_back(nested(flat, dims, depth + 1, offset + i * stride));
  return a;
}

// JSON header + binary data, as the binary tensor data extension lays them out.
struct BinaryBody {
  std::string body;
  std::size_t json_length;
};

BinaryBody with_binary(const json& header, std::string_view binary) {
  BinaryBody b{header.dump(), 0};
  b.json_length = b.body.size();
  b.body += binary;
  return b;
}

std::string bytes_of(const void* p, std::size_t n) {
  return std::string(static_cast<const char*>(p), n);
}

std::string bytes_element(std::string_view s) {
  const uint32_t n = static_cast<uint32_t>(s.size());
  return bytes_of(&n, 4) + std::string(s);
}

// The refusal of `body`: its status and message.
HttpError refusal(const ModelDescription& model, std::string_view body,
                  std::optional<std::size_t> json_length = std::nullopt) {
  try {
    parse_infer_request(model, body, json_length);
  } catch (const HttpError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << body.substr(0, 200);
  return HttpError(0, "");
}

void expect_refused(const ModelDescription& model, const json& body, const std::string& message) {
  const HttpError e = refusal(model, body.dump());
  EXPECT_EQ(e.status(), 400) << body.dump().substr(0, 200);
  EXPECT_THAT(e.what(), HasSubstr(message)) << body.dump().substr(0, 200);
}

// ---- accepted images ----------------------------------------------------------------------------------

TEST(ParseImage, FlatUint8) {
  const auto px = image_pixels(784);
  const InferRequest r =
      parse_infer_request(fmnist(), request_with(image_input({1, 784}, "UINT8", px)).dump());
  EXPECT_EQ(r.batch(), 1);
  EXPECT_EQ(r.pixels, px);
  EXPECT_TRUE(r.texts.empty());
  EXPECT_EQ(r.format.model_name, "fmnist");
  EXPECT_FALSE(r.format.id.has_value());
  EXPECT_FALSE(r.timeout.has_value());
}

TEST(ParseImage, EveryShapeFlatOrNested) {
  const auto px = image_pixels(2 * 784);
  const std::vector<std::vector<std::size_t>> shapes = {{2, 1, 28, 28}, {2, 28, 28}, {2, 784}};
  for (const auto& shape : shapes) {
    for (const bool nest : {false, true}) {
      const json data = nest ? nested(px, shape) : json(px);
      const InferRequest r =
          parse_infer_request(fmnist(), request_with(image_input(shape, "UINT8", data)).dump());
      EXPECT_EQ(r.batch(), 2);
      EXPECT_EQ(r.pixels, px) << json(shape).dump() << (nest ? " nested" : " flat");
    }
  }
}

TEST(ParseImage, Fp32IsRawPixelValuesRoundedToNearest) {
  std::vector<double> data(784, 0.0);
  data[0] = 0.4;
  data[1] = 0.6;
  data[2] = 254.5;
  data[3] = 255;
  data[4] = 1e2;
  data[5] = 17.49;
  const InferRequest r =
      parse_infer_request(fmnist(), request_with(image_input({1, 784}, "FP32", data)).dump());
  EXPECT_EQ(r.pixels[0], 0);
  EXPECT_EQ(r.pixels[1], 1);
  EXPECT_EQ(r.pixels[2], 255);
  EXPECT_EQ(r.pixels[3], 255);
  EXPECT_EQ(r.pixels[4], 100);
  EXPECT_EQ(r.pixels[5], 17);
}

TEST(ParseImage, NumbersInEveryJsonSpelling) {
  // Exponents, a fraction that is integral, -0, whitespace and newlines inside the array.
  std::string values = "0,\n 1e1 , 2.0E0,-0,\t255, 1.5e2";
  for (int i = 6; i < 784; ++i) values += ",3";
  const std::string body =
      R"({"inputs":[{"name":"image","shape":[1,784],"datatype":"UINT8","data":[ )" + values + " ]}]}";
  const InferRequest r = parse_infer_request(fmnist(), body);
  EXPECT_EQ(std::vector<uint8_t>(r.pixels.begin(), r.pixels.begin() + 7),
            (std::vector<uint8_t>{0, 10, 2, 0, 255, 150, 3}));
}

TEST(ParseImage, FieldOrderAndLookalikesDoNotMatter) {
  // data before shape and datatype; a "data" array in the request's parameters and an id full of
  // brackets, quotes and escapes must not be taken for the input's data; an escaped key still names it.
  const auto px = image_pixels(4);
  const std::string data = json(px).dump();
  const std::vector<std::string> bodies = {
      R"({"inputs":[{"data":)" + data + R"(,"datatype":"UINT8","name":"image","shape":[1,4]}]})",
      R"({"id":"a\"[1,2]\\","parameters":{"data":[9,9]},"inputs":[{"name":"image","parameters":{},)"
      R"("shape":[1,2,2],"datatype":"UINT8","data":)" +
          data + "}]}",
      R"({"inputs":[{"name":"image","shape":[1,4],"datatype":"UINT8","\u0064ata":)" + data + "}]}",
      R"({"inputs":[{"name":"image","shape":[1,2,2],"datatype":"UINT8","data":)" +
          nested(px, {1, 2, 2}).dump() + "}]}",
  };
  for (const std::string& body : bodies) {
    const InferRequest r = parse_infer_request(tiny_image_model(), body);
    EXPECT_EQ(r.pixels, px) << body;
  }
  EXPECT_EQ(parse_infer_request(tiny_image_model(), bodies[1]).format.id, "a\"[1,2]\\");
}

TEST(ParseImage, ChannelsAndSizeComeFromTheModel) {
  const auto px = image_pixels(2 * 48);
  for (const std::vector<std::size_t>& shape :
       {std::vector<std::size_t>{2, 3, 4, 4}, std::vector<std::size_t>{2, 48}}) {
    const InferRequest r = parse_infer_request(rgb(), request_with(image_input(shape, "UINT8", px)).dump());
    EXPECT_EQ(r.pixels, px);
  }
  // [N, S, S] is only for one channel.
  expect_refused(rgb(), request_with(image_input({2, 4, 4}, "UINT8", px)), "takes [N,3,4,4], or [N,48]");
}

TEST(ParseImage, BinaryUint8AndFp32) {
  const auto px = image_pixels(2 * 784);
  const json header = {{"inputs",
                        {{{"name", "image"},
                          {"shape", {2, 1, 28, 28}},
                          {"datatype", "UINT8"},
                          {"parameters", {{"binary_data_size", px.size()}}}}}}};
  const BinaryBody b = with_binary(header, bytes_of(px.data(), px.size()));
  EXPECT_EQ(parse_infer_request(fmnist(), b.body, b.json_length).pixels, px);

  std::vector<float> f(px.begin(), px.end());
  f[0] = 3.4f;
  json fheader = header;
  fheader["inputs"][0]["datatype"] = "FP32";
  fheader["inputs"][0]["parameters"]["binary_data_size"] = 4 * f.size();
  const BinaryBody fb = with_binary(fheader, bytes_of(f.data(), 4 * f.size()));
  std::vector<uint8_t> expected = px;
  expected[0] = 3;
  EXPECT_EQ(parse_infer_request(fmnist(), fb.body, fb.json_length).pixels, expected);
}

TEST(ParseImage, AsTritonsPythonClientSendsIt) {
  // tritonclient.http: InferInput.set_data_from_numpy (binary by default) and no outputs named, so the
  // request asks for every output in binary with parameters.binary_data_output.
  const auto px = image_pixels(784);
  const std::string header =
      R"({"id":"17","inputs":[{"name":"image","shape":[1,1,28,28],"datatype":"UINT8",)"
      R"("parameters":{"binary_data_size":784}}],"parameters":{"binary_data_output":true}})";
  const std::string body = header + bytes_of(px.data(), px.size());
  const InferRequest r = parse_infer_request(fmnist(), body, header.size());
  EXPECT_EQ(r.pixels, px);
  EXPECT_EQ(r.format.id, "17");
  ASSERT_EQ(r.format.outputs.size(), kNumOutputs);
  for (const RequestedOutput& o : r.format.outputs) EXPECT_TRUE(o.binary) << output_name(o.output);
}

TEST(ParseImage, IdAndTimeout) {
  json body = request_with(image_input({1, 4}, "UINT8", image_pixels(4)));
  body["id"] = "req-1";
  body["parameters"] = {{"timeout", 25000}, {"priority", 1}};
  const InferRequest r = parse_infer_request(tiny_image_model(), body.dump());
  EXPECT_EQ(r.format.id, "req-1");
  EXPECT_EQ(r.timeout, std::chrono::microseconds(25000));
}

// ---- accepted texts ---------------------------------------------------------------------------------

TEST(ParseText, JsonFlatAndNested) {
  const json flat = {
      {"inputs", {{{"name", "text"}, {"shape", {2}}, {"datatype", "BYTES"}, {"data", {"hello", "wörld"}}}}}};
  InferRequest r = parse_infer_request(spam_text_model(), flat.dump());
  EXPECT_EQ(r.batch(), 2);
  EXPECT_EQ(r.texts, (std::vector<std::string>{"hello", "wörld"}));
  EXPECT_TRUE(r.pixels.empty());

  const json column = {
      {"inputs", {{{"name", "text"}, {"shape", {2, 1}}, {"datatype", "BYTES"}, {"data", {{"a"}, {"b"}}}}}}};
  r = parse_infer_request(spam_text_model(), column.dump());
  EXPECT_EQ(r.texts, (std::vector<std::string>{"a", "b"}));
}

TEST(ParseText, Binary) {
  const std::string binary = bytes_element("win a prize") + bytes_element("see you at 5");
  const json header = {{"inputs",
                        {{{"name", "text"},
                          {"shape", {2}},
                          {"datatype", "BYTES"},
                          {"parameters", {{"binary_data_size", binary.size()}}}}}}};
  const BinaryBody b = with_binary(header, binary);
  EXPECT_EQ(parse_infer_request(spam_text_model(), b.body, b.json_length).texts,
            (std::vector<std::string>{"win a prize", "see you at 5"}));
}

// ---- requested outputs ------------------------------------------------------------------------------

std::vector<RequestedOutput> outputs_of(json body) {
  body["inputs"] = request_with(image_input({1, 4}, "UINT8", image_pixels(4)))["inputs"];
  return parse_infer_request(tiny_image_model(), body.dump()).format.outputs;
}

TEST(ParseOutputs, NoneNamedMeansAllInJson) {
  const auto outputs = outputs_of(json::object());
  ASSERT_EQ(outputs.size(), kNumOutputs);
  const std::vector<std::string> names = {"label", "label_name", "probabilities", "exit_layer", "answered_by",
                                          "split", "edge_us",    "network_us",    "cloud_us"};
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    EXPECT_EQ(output_name(outputs[i].output), names[i]);
    EXPECT_FALSE(outputs[i].binary);
  }
  EXPECT_EQ(outputs_of({{"outputs", json::array()}}).size(), kNumOutputs);
  // Absent optional fields written as null.
  EXPECT_EQ(outputs_of({{"outputs", nullptr}, {"parameters", nullptr}}).size(), kNumOutputs);
}

TEST(ParseOutputs, PerOutputBinaryOverridesTheRequestsDefault) {
  // InferRequestedOutput(name) sends binary_data true unless told otherwise.
  auto outputs = outputs_of({{"outputs",
                              {{{"name", "probabilities"}, {"parameters", {{"binary_data", true}}}},
                               {{"name", "label"}},
                               {{"name", "answered_by"}, {"parameters", {{"binary_data", false}}}}}}});
  ASSERT_EQ(outputs.size(), 3u);
  EXPECT_EQ(outputs[0].output, Output::probabilities);
  EXPECT_TRUE(outputs[0].binary);
  EXPECT_EQ(outputs[1].output, Output::label);
  EXPECT_FALSE(outputs[1].binary);
  EXPECT_FALSE(outputs[2].binary);

  outputs = outputs_of(
      {{"parameters", {{"binary_data_output", true}}},
       {"outputs", {{{"name", "label"}}, {{"name", "split"}, {"parameters", {{"binary_data", false}}}}}}});
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_TRUE(outputs[0].binary);
  EXPECT_FALSE(outputs[1].binary);
}

// ---- refusals ---------------------------------------------------------------------------------------

TEST(Refuse, MalformedJson) {
  for (const std::string body :
       {"", "{", "not json", R"({"inputs":[1,2)", R"({"inputs":[]} x)",
        R"({"inputs":[{"name":"image","shape":[1,4],"datatype":"UINT8","data":[1,2,3,4]}]},)",
        R"({"inputs":[{"name":"image","shape":[1,4],"datatype":"UINT8","data":[1,2,3,4]} "x"]})",
        R"({"inputs":[{"name":"image","shape":[1,4],"datatype":"UINT8","data":[1,2,3,4})"}) {
    const HttpError e = refusal(tiny_image_model(), body);
    EXPECT_EQ(e.status(), 400) << body;
    EXPECT_THAT(e.what(), HasSubstr("malformed JSON")) << body;
  }
  EXPECT_THAT(refusal(tiny_image_model(), "[]").what(), HasSubstr("must be a JSON object"));
}

TEST(Refuse, RequestStructure) {
  const json good = image_input({1, 4}, "UINT8", image_pixels(4));
  expect_refused(tiny_image_model(), json::object(), "no \"inputs\"");
  expect_refused(tiny_image_model(), {{"inputs", good}}, "\"inputs\" must be an array");
  expect_refused(tiny_image_model(), {{"inputs", json::array()}}, "\"inputs\" is empty");
  expect_refused(tiny_image_model(), {{"inputs", {good, good}}},
                 "takes one input, 'image'; the request has 2");
  json renamed = good;
  renamed["name"] = "img";
  expect_refused(tiny_image_model(), request_with(renamed),
                 "unknown input 'img'; model 'tiny' takes 'image'");
  json body = request_with(good);
  body["id"] = 7;
  expect_refused(tiny_image_model(), body, "\"id\" must be a string");
  body = request_with(good);
  body["parameters"] = {{"timeout", -1}};
  expect_refused(tiny_image_model(), body, "\"timeout\" must be a non-negative integer");
  json no_shape = good;
  no_shape.erase("shape");
  expect_refused(tiny_image_model(), request_with(no_shape), "input 'image' has no \"shape\"");
  json no_type = good;
  no_type.erase("datatype");
  expect_refused(tiny_image_model(), request_with(no_type), "input 'image' has no \"datatype\"");
  json no_data = good;
  no_data.erase("data");
  expect_refused(tiny_image_model(), request_with(no_data), "neither \"data\" nor binary_data_size");
  json null_data = good;
  null_data["data"] = nullptr;
  expect_refused(tiny_image_model(), request_with(null_data), "\"data\" must be an array");
}

TEST(Refuse, DatatypeAndShape) {
  const auto px = image_pixels(784);
  expect_refused(fmnist(), request_with(image_input({1, 784}, "INT32", px)),
                 "input 'image' has datatype INT32; model 'fmnist' takes UINT8 or FP32");
  expect_refused(fmnist(), request_with(image_input({1, 1, 28, 27}, "UINT8", px)),
                 "has shape [1,1,28,27]; model 'fmnist' takes [N,1,28,28], [N,28,28], or [N,784]");
  expect_refused(fmnist(), request_with(image_input({784}, "UINT8", px)), "has shape [784]");
  expect_refused(fmnist(), request_with(image_input({1, -784}, "UINT8", px)),
                 "must hold non-negative integers");
  expect_refused(fmnist(), request_with(image_input({1, 784.0}, "UINT8", px)),
                 "must hold non-negative integers");
  expect_refused(fmnist(), request_with(image_input({0, 784}, "UINT8", json::array())), "batch size 0");
  expect_refused(fmnist(), request_with(image_input({9, 784}, "UINT8", image_pixels(9 * 784))),
                 "batch size 9; the limit is 8");
}

TEST(Refuse, ElementCountAndNesting) {
  expect_refused(fmnist(), request_with(image_input({1, 784}, "UINT8", image_pixels(783))),
                 "input 'image' has 783 values; shape [1,784] needs 784");
  expect_refused(fmnist(), request_with(image_input({1, 784}, "UINT8", image_pixels(785))), "785 values");
  // Nested, but not as the shape says.
  expect_refused(fmnist(),
                 request_with(image_input({1, 784}, "UINT8", nested(image_pixels(784), {1, 28, 28}))),
                 "nested as [1,28,28]; its shape is [1,784]");
  expect_refused(tiny_image_model(), request_with(image_input({1, 4}, "UINT8", {{1, 2, 3}, {4}})), "ragged");
  expect_refused(tiny_image_model(), request_with(image_input({1, 4}, "UINT8", {1, {2, 3}, 4})), "ragged");
}

TEST(Refuse, DeepNesting) {
  // Millions of brackets fit the body limit; parsing must stop at the limit rather than build them.
  const std::string deep = std::string(1'000'000, '[') + "1" + std::string(1'000'000, ']');
  const std::string prefix = R"({"inputs":[{"name":"image","shape":[1,4],"datatype":"UINT8",)";
  for (const std::string& body : {prefix + R"("data":)" + deep + "}]}",
                                  prefix + R"("data":[1,2,3,4],"parameters":{"x":)" + deep + "}}]}",
                                  R"({"parameters":{"x":)" + deep + "}}"}) {
    const HttpError e = refusal(tiny_image_model(), body);
    EXPECT_EQ(e.status(), 400);
    EXPECT_THAT(e.what(), HasSubstr("the JSON is nested more than 16 deep"));
  }
  // As deep as a tensor gets, and more, within the limit.
  const std::string nested8 = std::string(8, '[') + "1,2,3,4" + std::string(8, ']');
  EXPECT_THAT(refusal(tiny_image_model(), prefix + R"("data":)" + nested8 + "}]}").what(),
              HasSubstr("nested as [1,1,1,1,1,1,1,4]"));
}

TEST(Refuse, PixelValues) {
  auto with_value = [](const std::string& datatype, const json& v) {
    json data = json(image_pixels(4));
    data[2] = v;
    return request_with(image_input({1, 4}, datatype, data));
  };
  expect_refused(tiny_image_model(), with_value("UINT8", 256),
                 "element 2 is 256; UINT8 values are integers 0..255");
  expect_refused(tiny_image_model(), with_value("UINT8", -1), "element 2 is -1; UINT8");
  expect_refused(tiny_image_model(), with_value("UINT8", 1.5), "element 2 is 1.5; UINT8");
  expect_refused(tiny_image_model(), with_value("UINT8", "7"), "element 2 is \"7\", not a number");
  expect_refused(tiny_image_model(), with_value("UINT8", true), "element 2 is true, not a number");
  expect_refused(tiny_image_model(), with_value("FP32", 255.5),
                 "element 2 is 255.5; FP32 pixels are raw values in [0, 255]");
  expect_refused(tiny_image_model(), with_value("FP32", -0.25), "element 2 is -0.25; FP32");
  expect_refused(tiny_image_model(), with_value("FP32", nullptr), "element 2 is null, not a number");
  expect_refused(tiny_image_model(), with_value("FP32", {{"a", 1}}), "element 2 is an object, not a number");
  expect_refused(tiny_image_model(), with_value("UINT8", std::string(100, 'x')),
                 "element 2 is \"" + std::string(36, 'x') + "..., not a number");
  // A number past a double's range.
  const std::string huge =
      R"({"inputs":[{"name":"image","shape":[1,4],"datatype":"FP32","data":[1,2,1e999,4]}]})";
  const HttpError e = refusal(tiny_image_model(), huge);
  EXPECT_EQ(e.status(), 400);
  EXPECT_THAT(e.what(), HasSubstr("number overflow parsing '1e999'"));
}

TEST(Refuse, NanAndInfInBinaryFp32) {
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
    std::vector<float> f = {1, 2, 3, bad};
    const json header = {{"inputs",
                          {{{"name", "image"},
                            {"shape", {1, 4}},
                            {"datatype", "FP32"},
                            {"parameters", {{"binary_data_size", 16}}}}}}};
    const BinaryBody b = with_binary(header, bytes_of(f.data(), 16));
    const HttpError e = refusal(tiny_image_model(), b.body, b.json_length);
    EXPECT_EQ(e.status(), 400);
    EXPECT_THAT(e.what(), HasSubstr("element 3 is")) << bad;
    EXPECT_THAT(e.what(), HasSubstr("FP32 pixels must be finite")) << bad;
  }
}

TEST(Refuse, BinarySizes) {
  const auto px = image_pixels(4);
  const std::string raw = bytes_of(px.data(), 4);
  const auto header = [](const json& size) {
    return json{{"inputs",
                 {{{"name", "image"},
                   {"shape", {1, 4}},
                   {"datatype", "UINT8"},
                   {"parameters", {{"binary_data_size", size}}}}}}};
  };
  BinaryBody b = with_binary(header(3), raw.substr(0, 3));
  EXPECT_THAT(refusal(tiny_image_model(), b.body, b.json_length).what(),
              HasSubstr("binary_data_size 3; shape [1,4] of UINT8 needs 4"));
  b = with_binary(header(4), raw + "x");
  EXPECT_THAT(refusal(tiny_image_model(), b.body, b.json_length).what(),
              HasSubstr("holds 5 bytes of binary data after its JSON; the inputs declare 4"));
  b = with_binary(header(4), raw.substr(0, 2));
  EXPECT_THAT(refusal(tiny_image_model(), b.body, b.json_length).what(), HasSubstr("holds 2 bytes"));
  b = with_binary(header(-4), raw);
  EXPECT_THAT(refusal(tiny_image_model(), b.body, b.json_length).what(),
              HasSubstr("must be a non-negative integer"));
  // Without the header the whole body is JSON, so binary data declared there has nowhere to be.
  EXPECT_THAT(refusal(tiny_image_model(), header(4).dump()).what(),
              HasSubstr("no Inference-Header-Content-Length"));
  b = with_binary(header(4), raw);
  EXPECT_THAT(refusal(tiny_image_model(), b.body, b.body.size() + 1).what(),
              HasSubstr("but the body is only"));
  // JSON data and bytes after the JSON that no input claims.
  const BinaryBody json_data = with_binary(request_with(image_input({1, 4}, "UINT8", px)), "abcd");
  EXPECT_THAT(refusal(tiny_image_model(), json_data.body, json_data.json_length).what(),
              HasSubstr("the inputs declare 0"));
  json both = header(4);
  both["inputs"][0]["data"] = px;
  b = with_binary(both, raw);
  EXPECT_THAT(refusal(tiny_image_model(), b.body, b.json_length).what(),
              HasSubstr("both \"data\" and binary_data_size"));

  for (const std::string bad : {"", "abc", "-1", "12x", " 12"}) {
    try {
      parse_json_length(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const HttpError& e) {
      EXPECT_EQ(e.status(), 400);
      EXPECT_THAT(e.what(), HasSubstr("Inference-Header-Content-Length"));
    }
  }
  EXPECT_EQ(parse_json_length("1234"), 1234u);
}

TEST(Refuse, Texts) {
  const auto texts = [](const json& data, const json& shape = nullptr, const std::string& type = "BYTES") {
    return json{{"inputs",
                 {{{"name", "text"},
                   {"shape", shape.is_null() ? json{data.size()} : shape},
                   {"datatype", type},
                   {"data", data}}}}};
  };
  expect_refused(spam_text_model(), texts({"fine", ""}), "input 'text' element 1 is an empty text");
  expect_refused(spam_text_model(), texts({std::string(33, 'a')}), "element 0 is 33 bytes; the limit is 32");
  EXPECT_NO_THROW(parse_infer_request(spam_text_model(), texts({std::string(32, 'a')}).dump()));
  expect_refused(spam_text_model(), texts({"a", "b"}, nullptr, "UINT8"),
                 "has datatype UINT8; model 'spam' takes BYTES");
  expect_refused(spam_text_model(), texts({"a", "b"}, {2, 2}),
                 "has shape [2,2]; model 'spam' takes [N] or [N,1]");
  expect_refused(spam_text_model(), texts({"a", "b"}, {3}), "has 2 values; shape [3] needs 3");
  expect_refused(spam_text_model(), texts({1, 2}), "element 0 is 1, not a string");
  expect_refused(spam_text_model(), texts({"a", 2}), "element 1 is 2, not a string");
  expect_refused(spam_text_model(), texts(json::array(), {0}), "batch size 0");
  expect_refused(spam_text_model(), texts(json::array(), {1}), "has 0 values");

  const auto binary_texts = [](const std::string& binary, int n) {
    return with_binary(json{{"inputs",
                             {{{"name", "text"},
                               {"shape", {n}},
                               {"datatype", "BYTES"},
                               {"parameters", {{"binary_data_size", binary.size()}}}}}}},
                       binary);
  };
  BinaryBody b = binary_texts(bytes_element("ok") + bytes_element("\xff\xfe"), 2);
  EXPECT_THAT(refusal(spam_text_model(), b.body, b.json_length).what(),
              HasSubstr("element 1 is not valid UTF-8"));
  b = binary_texts(bytes_element("ok") + bytes_element("abc").substr(0, 5), 2);
  EXPECT_THAT(refusal(spam_text_model(), b.body, b.json_length).what(),
              HasSubstr("element 1's length 3 runs past"));
  b = binary_texts(bytes_element("ok") + "ab", 2);
  EXPECT_THAT(refusal(spam_text_model(), b.body, b.json_length).what(),
              HasSubstr("ends inside element 1's length"));
  b = binary_texts(bytes_element("ok"), 2);
  EXPECT_THAT(refusal(spam_text_model(), b.body, b.json_length).what(),
              HasSubstr("holds 1 elements; shape [2] needs 2"));
  b = binary_texts(bytes_element(""), 1);
  EXPECT_THAT(refusal(spam_text_model(), b.body, b.json_length).what(),
              HasSubstr("element 0 is an empty text"));
}

TEST(Refuse, Outputs) {
  const auto with_outputs = [](const json& outputs) {
    json body = request_with(image_input({1, 4}, "UINT8", image_pixels(4)));
    body["outputs"] = outputs;
    return body;
  };
  expect_refused(tiny_image_model(), with_outputs({{{"name", "logits"}}}),
                 "unknown output 'logits'; model 'tiny' has label, label_name, probabilities, exit_layer, "
                 "answered_by, split, edge_us, network_us, cloud_us");
  expect_refused(tiny_image_model(), with_outputs({{{"name", "label"}}, {{"name", "label"}}}),
                 "output 'label' is requested twice");
  expect_refused(tiny_image_model(),
                 with_outputs({{{"name", "label"}, {"parameters", {{"classification", 3}}}}}),
                 "asks for classification");
  expect_refused(tiny_image_model(),
                 with_outputs({{{"name", "label"}, {"parameters", {{"binary_data", 1}}}}}),
                 "\"binary_data\" must be true or false");
  expect_refused(tiny_image_model(), with_outputs(json::array({"label"})),
                 "each of \"outputs\" must be an object");
  expect_refused(tiny_image_model(), with_outputs("label"), "\"outputs\" must be an array");
  json body = request_with(image_input({1, 4}, "UINT8", image_pixels(4)));
  body["parameters"] = {{"binary_data_output", "yes"}};
  expect_refused(tiny_image_model(), body, "\"binary_data_output\" must be true or false");
}

// ---- responses --------------------------------------------------------------------------------------

InferResult two_samples() {
  InferResult r;
  r.samples.push_back({1, {0.25f, 0.75f}, 2, AnsweredBy::edge, 3, 12.5f, 0, 0});
  r.samples.push_back({0, {0.5f, 0.5f}, 6, AnsweredBy::cloud, 3, 40, 100.25f, 300});
  return r;
}

ResponseFormat all_outputs(bool binary, std::optional<std::string> id = std::nullopt) {
  ResponseFormat f{"tiny", std::move(id), {}, 2};
  for (std::size_t i = 0; i < kNumOutputs; ++i) f.outputs.push_back({static_cast<Output>(i), binary});
  return f;
}

TEST(Encode, JsonResponseExactly) {
  const EncodedBody e = encode_infer_response(tiny_image_model(), all_outputs(false, "req-7"), two_samples());
  EXPECT_FALSE(e.json_length.has_value());
  EXPECT_EQ(e.body, R"({"model_name":"tiny","model_version":"1","id":"req-7","outputs":[)"
                    R"({"name":"label","datatype":"INT64","shape":[2],"data":[1,0]},)"
                    R"({"name":"label_name","datatype":"BYTES","shape":[2],"data":["dog","cat"]},)"
                    R"({"name":"probabilities","datatype":"FP32","shape":[2,2],"data":[0.25,0.75,0.5,0.5]},)"
                    R"({"name":"exit_layer","datatype":"INT32","shape":[2],"data":[2,6]},)"
                    R"({"name":"answered_by","datatype":"BYTES","shape":[2],"data":["edge","cloud"]},)"
                    R"({"name":"split","datatype":"INT32","shape":[2],"data":[3,3]},)"
                    R"({"name":"edge_us","datatype":"FP32","shape":[2],"data":[12.5,40]},)"
                    R"({"name":"network_us","datatype":"FP32","shape":[2],"data":[0,100.25]},)"
                    R"({"name":"cloud_us","datatype":"FP32","shape":[2],"data":[0,300]}]})");
  EXPECT_TRUE(json::accept(e.body));
}

TEST(Encode, FloatsAreShortestRoundTrip) {
  InferResult r;
  r.samples.push_back({0, {0.1f, 0.9f}, 1, AnsweredBy::degraded, 1, 1e-7f, 0, 0});
  ResponseFormat f{"tiny",
                   "a\"b",
                   {{Output::probabilities, false}, {Output::answered_by, false}, {Output::edge_us, false}},
                   1};
  const json doc = json::parse(encode_infer_response(tiny_image_model(), f, r).body);
  EXPECT_EQ(doc["id"], "a\"b");
  EXPECT_EQ(doc["outputs"][0]["data"][0].get<float>(), 0.1f);
  EXPECT_EQ(doc["outputs"][1]["data"][0], "degraded");
  EXPECT_EQ(doc["outputs"][2]["data"][0].get<float>(), 1e-7f);
  EXPECT_THAT(encode_infer_response(tiny_image_model(), f, r).body, HasSubstr("[0.1,0.9]"));
}

TEST(Encode, BinaryResponseLayoutExactly) {
  const ResponseFormat f{"tiny",
                         std::nullopt,
                         {{Output::label, true},
                          {Output::probabilities, false},
                          {Output::answered_by, true},
                          {Output::edge_us, true}},
                         2};
  const EncodedBody e = encode_infer_response(tiny_image_model(), f, two_samples());
  const std::string header =
      R"({"model_name":"tiny","model_version":"1","outputs":[)"
      R"({"name":"label","datatype":"INT64","shape":[2],"parameters":{"binary_data_size":16}},)"
      R"({"name":"probabilities","datatype":"FP32","shape":[2,2],"data":[0.25,0.75,0.5,0.5]},)"
      R"({"name":"answered_by","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":17}},)"
      R"({"name":"edge_us","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]})";
  const std::string binary = std::string("\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16) +
                             std::string("\x04\0\0\0edge\x05\0\0\0cloud", 17) +
                             std::string("\0\0\x48\x41\0\0\x20\x42", 8);  // 12.5f, 40.0f
  ASSERT_TRUE(e.json_length.has_value());
  EXPECT_EQ(*e.json_length, header.size());
  EXPECT_EQ(e.body, header + binary);
}

TEST(Encode, AllBinaryAsTritonsClientReadsIt) {
  const EncodedBody e = encode_infer_response(tiny_image_model(), all_outputs(true), two_samples());
  ASSERT_TRUE(e.json_length.has_value());
  const json doc = json::parse(e.body.substr(0, *e.json_length));
  // InferResult.as_numpy: each output's bytes follow the previous output's binary_data_size.
  std::size_t offset = *e.json_length;
  std::vector<float> probabilities(4);
  for (const json& out : doc["outputs"]) {
    ASSERT_FALSE(out.contains("data"));
    const std::size_t size = out["parameters"]["binary_data_size"];
    if (out["name"] == "probabilities") std::memcpy(probabilities.data(), e.body.data() + offset, size);
    offset += size;
  }
  EXPECT_EQ(offset, e.body.size());
  EXPECT_EQ(probabilities, (std::vector<float>{0.25f, 0.75f, 0.5f, 0.5f}));
}

TEST(Encode, RefusesResultsThatDoNotFitTheRequest) {
  const ResponseFormat f = all_outputs(false);
  InferResult r = two_samples();
  r.samples.pop_back();
  EXPECT_THROW(encode_infer_response(tiny_image_model(), f, r), std::invalid_argument);
  r = two_samples();
  r.samples[1].probabilities.push_back(0);
  EXPECT_THROW(encode_infer_response(tiny_image_model(), f, r), std::invalid_argument);
  r = two_samples();
  r.samples[0].label = 2;
  EXPECT_THROW(encode_infer_response(tiny_image_model(), f, r), std::invalid_argument);
  r = two_samples();
  r.samples[0].probabilities[0] = std::nanf("");
  EXPECT_THROW(encode_infer_response(tiny_image_model(), f, r), std::invalid_argument);
  r = two_samples();
  r.samples[0].cloud_us = std::numeric_limits<float>::infinity();
  EXPECT_THROW(encode_infer_response(tiny_image_model(), f, r), std::invalid_argument);
}

TEST(Encode, ModelMetadataExactly) {
  EXPECT_EQ(encode_model_metadata(tiny_image_model()),
            R"({"name":"tiny","versions":["1"],"platform":"eesplit_safetensors",)"
            R"("inputs":[{"name":"image","datatype":"UINT8","shape":[-1,1,2,2]}],"outputs":[)"
            R"({"name":"label","datatype":"INT64","shape":[-1]},)"
            R"({"name":"label_name","datatype":"BYTES","shape":[-1]},)"
            R"({"name":"probabilities","datatype":"FP32","shape":[-1,2]},)"
            R"({"name":"exit_layer","datatype":"INT32","shape":[-1]},)"
            R"({"name":"answered_by","datatype":"BYTES","shape":[-1]},)"
            R"({"name":"split","datatype":"INT32","shape":[-1]},)"
            R"({"name":"edge_us","datatype":"FP32","shape":[-1]},)"
            R"({"name":"network_us","datatype":"FP32","shape":[-1]},)"
            R"({"name":"cloud_us","datatype":"FP32","shape":[-1]}]})");
  const json text = json::parse(encode_model_metadata(spam_text_model()));
  EXPECT_EQ(text["inputs"], json::parse(R"([{"name":"text","datatype":"BYTES","shape":[-1]}])"));
  EXPECT_EQ(json::parse(encode_model_metadata(rgb()))["inputs"][0]["shape"], json({-1, 3, 4, 4}));
}

TEST(Encode, ServerMetadataAndErrors) {
  EXPECT_EQ(encode_server_metadata("ee-edge", "0.1.0"),
            R"({"name":"ee-edge","version":"0.1.0","extensions":["binary_tensor_data"]})");
  EXPECT_EQ(encode_error("input 'x' has \"bad\" data"), R"({"error":"input 'x' has \"bad\" data"})");
  // A message quoting a client's bytes that are not UTF-8 still makes valid JSON.
  EXPECT_TRUE(json::accept(encode_error("unknown route GET /\xff")));
}

TEST(Describe, FromAModelConfig) {
  model::Config c;
  c.architecture = model::Architecture::vit;
  c.image_size = 28;
  c.num_channels = 1;
  c.early_exit.labels = {"a", "b", "c"};
  ModelDescription d = ModelDescription::from_config("fm", c);
  EXPECT_EQ(d.name, "fm");
  EXPECT_EQ(d.kind, ModelKind::image);
  EXPECT_EQ(d.pixels_per_sample(), 784u);
  EXPECT_EQ(d.num_labels(), 3);
  EXPECT_EQ(d.input_name(), "image");
  c.architecture = model::Architecture::bert;
  d = ModelDescription::from_config("txt", c);
  EXPECT_EQ(d.kind, ModelKind::text);
  EXPECT_EQ(d.input_name(), "text");
}

}  // namespace
}  // namespace ee::edge
