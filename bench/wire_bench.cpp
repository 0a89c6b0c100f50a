// Encode/decode throughput of the wire format (Google Benchmark). Throughput is counted in bytes of the
// f32 hidden state (tokens x hidden x 4) per second, so dtypes compare on the same work. Shapes: the
// Fashion-MNIST ViT (17 x 64), a small BERT (128 x 256) and BERT-base at full length (512 x 768). The data
// is synthetic (Gaussian body, per-token magnitudes, an outlier feature): the speed of the quantizers does
// not depend on the values, zstd's does somewhat; bytes on real hidden states come from wire_accuracy.
#include <benchmark/benchmark.h>

#include <random>

#include "common/net/framing.hpp"
#include "common/wire/codec.hpp"

namespace {

using namespace ee;

model::Matrix hidden_state(int tokens, int hidden) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  model::Matrix x(tokens, hidden);
  for (int r = 0; r < tokens; ++r) {
    for (int c = 0; c < hidden; ++c) x(r, c) = normal(rng) * (0.5f + static_cast<float>(r % 4));
    x(r, 0) = 30.0f;
  }
  return x;
}

wire::Limits limits(int tokens, int hidden) {
  return {hidden, tokens, 12, 2, wire::Sha256{}};
}

wire::EncodeOptions options(const benchmark::State& state) {
  return {static_cast<wire::DType>(state.range(2)),
          state.range(3) ? wire::Compression::zstd : wire::Compression::none};
}

void label(benchmark::State& state, std::size_t frame_bytes) {
  const int tokens = static_cast<int>(state.range(0)), hidden = static_cast<int>(state.range(1));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * tokens * hidden * 4);
  state.counters["frame_bytes"] = static_cast<double>(frame_bytes + net::kLengthPrefixBytes);
  state.SetLabel(std::to_string(tokens) + "x" + std::to_string(hidden) + " " +
                 std::string(wire::to_string(options(state).dtype)) + (state.range(3) ? "+zstd" : ""));
}

void BM_Encode(benchmark::State& state) {
  const model::Matrix x = hidden_state(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  const wire::ActivationMeta meta{1, wire::Sha256{}, 3, std::chrono::milliseconds(20), {}, false};
  std::size_t bytes = 0;
  for (auto _ : state) {
    const wire::Encoded e = wire::encode_activation(meta, x, options(state));
    bytes = e.size();
    benchmark::DoNotOptimize(e.span().data());
  }
  label(state, bytes);
}

// Verify + semantic checks + decompression + dequantization into a batch block: all the cloud does.
void BM_Decode(benchmark::State& state) {
  const int tokens = static_cast<int>(state.range(0)), hidden = static_cast<int>(state.range(1));
  const model::Matrix x = hidden_state(tokens, hidden);
  const wire::Encoded e = wire::encode_activation({1, wire::Sha256{}, 3, {}, {}, false}, x, options(state));
  const wire::Limits lim = limits(tokens, hidden);
  model::Matrix block(tokens, hidden);
  for (auto _ : state) {
    const wire::Message m = wire::decode(e.span(), lim);
    std::get<wire::Activation>(m).decode_into(block);
    benchmark::DoNotOptimize(block.data());
  }
  label(state, e.size());
}

void shapes(benchmark::internal::Benchmark* b) {
  for (auto [tokens, hidden] : {std::pair{17, 64}, std::pair{128, 256}, std::pair{512, 768}})
    for (int dtype = 0; dtype < 3; ++dtype)
      for (int zstd = 0; zstd < 2; ++zstd) b->Args({tokens, hidden, dtype, zstd});
  b->ArgNames({"tokens", "hidden", "dtype", "zstd"});
}

BENCHMARK(BM_Encode)->Apply(shapes);
BENCHMARK(BM_Decode)->Apply(shapes);

}  // namespace
