// The edge's KServe v2 codec per request (Google Benchmark): parsing an infer request for one 28x28
// Fashion-MNIST image as JSON (UINT8 integers, FP32 numbers with a fraction) and with the binary tensor
// data extension, and encoding the response in JSON and in binary. "nlohmann_dom" parses the same JSON
// body with nlohmann::json alone: the cost kserve.cpp's scan of the data arrays avoids.
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>
#include <random>

#include "edge/kserve.hpp"

namespace {

using namespace ee::edge;

ModelDescription fmnist() {
  ModelDescription m;
  m.name = "fmnist";
  m.image_size = 28;
  m.labels = {"T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"};
  return m;
}

std::vector<uint8_t> pixels(int n) {
  std::mt19937 rng(5);
  std::vector<uint8_t> p(static_cast<std::size_t>(n) * 784);
  for (uint8_t& v : p) v = static_cast<uint8_t>(rng() % 256);
  return p;
}

// What Python's json.dumps writes for a request of n images.
std::string json_body(int n, bool fp32) {
  std::string data;
  for (uint8_t v : pixels(n)) {
    if (!data.empty()) data += ", ";
    data += std::to_string(v) + (fp32 ? ".5" : "");
    if (fp32 && v == 255) data.resize(data.size() - 2);
  }
  return R"({"id": "1", "inputs": [{"name": "image", "shape": [)" + std::to_string(n) +
         R"(, 1, 28, 28], "datatype": ")" + (fp32 ? "FP32" : "UINT8") + R"(", "data": [)" + data + "]}]}";
}

void parse_json(benchmark::State& state, bool fp32) {
  const ModelDescription model = fmnist();
  const std::string body = json_body(static_cast<int>(state.range(0)), fp32);
  for (auto _ : state) benchmark::DoNotOptimize(parse_infer_request(model, body));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}

void BM_ParseJsonUint8(benchmark::State& state) {
  parse_json(state, false);
}
void BM_ParseJsonFp32(benchmark::State& state) {
  parse_json(state, true);
}

void BM_ParseJsonUint8_nlohmann_dom(benchmark::State& state) {
  const std::string body = json_body(static_cast<int>(state.range(0)), false);
  for (auto _ : state) benchmark::DoNotOptimize(nlohmann::json::parse(body));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}

// As tritonclient.http sends it: binary input, every output asked for in binary.
void BM_ParseBinaryUint8(benchmark::State& state) {
  const ModelDescription model = fmnist();
  const int n = static_cast<int>(state.range(0));
  const auto px = pixels(n);
  const std::string header = R"({"id":"1","inputs":[{"name":"image","shape":[)" + std::to_string(n) +
                             R"(,1,28,28],"datatype":"UINT8","parameters":{"binary_data_size":)" +
                             std::to_string(px.size()) + R"(}}],"parameters":{"binary_data_output":true}})";
  const std::string body = header + std::string(px.begin(), px.end());
  for (auto _ : state) benchmark::DoNotOptimize(parse_infer_request(model, body, header.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}

void encode(benchmark::State& state, bool binary) {
  const ModelDescription model = fmnist();
  const int n = static_cast<int>(state.range(0));
  ResponseFormat format{"fmnist", "1", {}, n};
  for (std::size_t i = 0; i < kNumOutputs; ++i) format.outputs.push_back({static_cast<Output>(i), binary});
  InferResult result;
  for (int b = 0; b < n; ++b)
    result.samples.push_back(
        {b % 10, std::vector<float>(10, 0.0123456f), 4, AnsweredBy::edge, 6, 93.25f, 0, 0});
  for (auto _ : state) benchmark::DoNotOptimize(encode_infer_response(model, format, result));
}

void BM_EncodeJson(benchmark::State& state) {
  encode(state, false);
}
void BM_EncodeBinary(benchmark::State& state) {
  encode(state, true);
}

BENCHMARK(BM_ParseJsonUint8)->Arg(1)->Arg(8);
BENCHMARK(BM_ParseJsonFp32)->Arg(1)->Arg(8);
BENCHMARK(BM_ParseJsonUint8_nlohmann_dom)->Arg(1)->Arg(8);
BENCHMARK(BM_ParseBinaryUint8)->Arg(1)->Arg(8);
BENCHMARK(BM_EncodeJson)->Arg(1)->Arg(8);
BENCHMARK(BM_EncodeBinary)->Arg(1)->Arg(8);

}  // namespace
