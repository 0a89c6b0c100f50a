// Engine speed (Google Benchmark): one encoder layer and the whole model (embeddings, every layer, every
// exit head) of each model directory given, at batch 1 and 32 (BERT-base-shaped: batch 1, layer only), 1
// and 2 threads, and the ablation of the engine's levers: OpenBLAS or Eigen's own GEMM instead of the
// packed kernel, the op-by-op reference layer, OpenBLAS's own threads instead of ours, threads inside the
// layer instead of across samples.
//
//   engine_bench --vit=models/fmnist-vit --bert=build/bench/bench-models/bert-base-1l
//   [--text=models/spam-bert]
//                [--write_outputs=DIR] [--benchmark_...]
//
// Every figure is the mean latency of back-to-back calls over one repetition; run with
// --benchmark_repetitions=N to get the median, p10 and p90 over repetitions (bench/compare.sh does). The
// counter GFLOPS counts the encoder's multiply-adds (QKV, attention, output, FFN) as 2 FLOPs each.
// kernel/... runs the weight-product kernels alone (packed fp32, bf16 AMX) at BERT-base's shapes and 2048^3.
// --write_outputs writes each benchmark input and our outputs, so the peer scripts can check theirs
// against them before timing (bench/peer_torch.py, bench/peer_ort.js).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "common/model/encoder_layer.hpp"
#include "common/model/multi_exit_model.hpp"
#include "common/model/ops.hpp"
#include "common/model/safetensors.hpp"
#include "common/model/workspace.hpp"
#include "sim/dataset.hpp"

namespace {

using namespace ee;
namespace fs = std::filesystem;

// Text models run full-length samples of this many tokens (or the model's maximum, if smaller).
constexpr int kTextTokens = 128;

struct Bench {
  std::string name;  // vit | bert | text
  std::shared_ptr<const model::MultiExitModel> model;
  fs::path dir;
  // Layer 1 on its own, built from the same file: the layer benchmarks call it directly.
  std::shared_ptr<const model::SafeTensors> weights;
  std::shared_ptr<const model::EncoderLayer> layer;
};

Bench open_model(const std::string& name, const fs::path& dir) {
  Bench b{name, model::MultiExitModel::load(dir), dir, model::SafeTensors::open(dir / "model.safetensors"),
          nullptr};
  model::WeightLoader loader(*b.weights);
  b.layer = std::make_shared<const model::EncoderLayer>(b.model->config(), loader, 0);
  return b;
}
std::vector<Bench> g_models;

// The benchmark input of `batch` samples: the first test images for image models, seeded random token ids
// at full length for text models.
struct Input {
  std::vector<uint8_t> pixels;
  model::TokenBatch tokens;
};

Input make_input(const Bench& b, int batch) {
  Input in;
  const auto& c = b.model->config();
  if (c.architecture == model::Architecture::vit) {
    const auto ds =
        sim::load_idx(b.dir / "sample/t1k-images-idx3-ubyte.gz", b.dir / "sample/t1k-labels-idx1-ubyte.gz");
    const size_t n = ds.image_size() * batch;
    in.pixels.assign(ds.pixels.begin(), ds.pixels.begin() + static_cast<std::ptrdiff_t>(n));
    return in;
  }
  auto& t = in.tokens;
  t.tokens = std::min(kTextTokens, c.max_position_embeddings);
  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> id(1, c.vocab_size - 1);
  for (int i = 0; i < batch * t.tokens; ++i) t.input_ids.push_back(id(rng));
  t.token_type_ids.assign(t.input_ids.size(), 0);
  t.lengths.assign(batch, t.tokens);
  return in;
}

model::Hidden embed(const Bench& b, const Input& in, int batch) {
  return b.model->config().architecture == model::Architecture::vit ? b.model->embed_images(in.pixels, batch)
                                                                    : b.model->embed_tokens(in.tokens);
}

// Multiply-adds x 2 of one encoder layer over h (padding keys excluded, as the engine skips them).
double layer_flops(const model::Config& c, const model::Hidden& h) {
  const double rows = static_cast<double>(h.x.rows()), hd = c.hidden_size, inner = c.intermediate_size;
  double attention = 0;
  for (int len : h.lengths) attention += 4.0 * h.tokens * len * hd;
  return 2.0 * rows * hd * (4 * hd + 2 * inner) + attention;
}

// How a benchmark runs the engine: the lever under test.
enum class Mode {
  fast,          // EncoderLayer::forward on our pool, packed-weight GEMM
  blas_gemm,     // the same with OpenBLAS (single-threaded, on our pool) for the weight products
  eigen_gemm,    // the same with Eigen's own GEMM
  reference,     // EncoderLayer::forward_reference: Eigen op by op, std::erf
  blas_threads,  // forward on one thread of ours, OpenBLAS's own pool with `threads` threads
  inside_layer,  // threads inside the layer even when the batch could be split across samples
  bf16,          // fast, with weights and activations rounded to bfloat16 on AMX tiles (Gemm::bf16)
};
const char* mode_name(Mode m) {
  switch (m) {
    case Mode::fast:
      return "fast";
    case Mode::blas_gemm:
      return "blas_gemm";
    case Mode::eigen_gemm:
      return "eigen_gemm";
    case Mode::reference:
      return "reference";
    case Mode::blas_threads:
      return "blas_threads";
    case Mode::inside_layer:
      return "inside_layer";
    case Mode::bf16:
      return "bf16";
  }
  return "?";
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}
double p10(const std::vector<double>& v) {
  return percentile(v, 0.10);
}
double p90(const std::vector<double>& v) {
  return percentile(v, 0.90);
}

void add_percentiles(benchmark::internal::Benchmark* b) {
  b->ComputeStatistics("p10", p10)->ComputeStatistics("p90", p90);
}

// One encoder layer (the model's first) on the embedded input, restored before every call so the values
// stay those of real inputs (the copy is part of the time: 0.1 % of it or less).
void layer_bench(benchmark::State& state, const Bench* b, int batch, int threads, Mode mode) {
  const Input in = make_input(*b, batch);
  const model::Hidden start = embed(*b, in, batch);
  const model::Config& c = b->model->config();
  model::ExecOptions opt;
  opt.threads = mode == Mode::blas_threads ? 1 : threads;
  opt.split_samples = mode != Mode::inside_layer;
  opt.gemm = mode == Mode::eigen_gemm                           ? model::Gemm::eigen
             : mode == Mode::bf16                               ? model::Gemm::bf16
             : mode == Mode::fast || mode == Mode::inside_layer ? model::Gemm::packed
                                                                : model::Gemm::blas;
  model::Workspace ws(opt);
  if (mode == Mode::blas_threads) openblas_set_num_threads(threads);
  model::Hidden h = start;
  for (auto _ : state) {
    h.x = start.x;
    if (mode == Mode::reference) {
      b->layer->forward_reference(h, ws);
    } else {
      b->layer->forward(h, ws);
    }
    benchmark::DoNotOptimize(h.x.data());
  }
  if (mode == Mode::blas_threads) openblas_set_num_threads(1);
  state.counters["GFLOPS"] = benchmark::Counter(
      layer_flops(c, start) * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["batch"] = batch;
  state.counters["threads"] = threads;
}

// The whole model as a user runs it with exits evaluated but not acted on: embeddings, every layer, every
// exit head.
void model_bench(benchmark::State& state, const Bench* b, int batch, int threads, model::Gemm gemm) {
  const Input in = make_input(*b, batch);
  model::Workspace ws(model::ExecOptions{threads, gemm});
  const auto& exits = b->model->config().early_exit.exit_layers;
  double flops = 0;
  for (auto _ : state) {
    model::Hidden h = embed(*b, in, batch);
    for (int layer : exits) {
      b->model->run_layers(h, layer, ws);
      benchmark::DoNotOptimize(b->model->exit_logits(h, layer, ws).data());
    }
    if (flops == 0) flops = layer_flops(b->model->config(), h) * b->model->num_layers();
  }
  state.counters["GFLOPS"] =
      benchmark::Counter(flops * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["batch"] = batch;
  state.counters["threads"] = threads;
}

// One weight product y = x W^T + b on the engine's kernels, one thread: the packed fp32 kernel and the
// bf16 AMX kernel at BERT-base's shapes (rows x out x in), and at 2048^3, each kernel's large-product
// yardstick.
void kernel_bench(benchmark::State& state, model::Gemm g, Eigen::Index m, Eigen::Index n, Eigen::Index k) {
  const model::Matrix x = model::Matrix::Random(m, k), w = model::Matrix::Random(n, k);
  const model::Vector bias = model::Vector::Random(n);
  model::Matrix y(m, n);
  const model::PackedWeights packed = model::pack_weights(w.data(), n, k);
  const model::PackedBf16 bf16 = model::pack_weights_bf16(w.data(), n, k);
  for (auto _ : state) {
    if (g == model::Gemm::bf16) {
      model::gemm_bf16(m, 0, n, x.data(), k, bf16, bias.data(), false, y.data(), n);
    } else {
      model::gemm_packed(m, 0, n, x.data(), k, packed.panels(), bias.data(), false, y.data(), n);
    }
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * static_cast<double>(m * n * k * state.iterations()),
                                                benchmark::Counter::kIsRate);
}

void register_kernels() {
  if (!model::packed_gemm_supported()) return;
  for (model::Gemm g : {model::Gemm::packed, model::Gemm::bf16}) {
    if (g == model::Gemm::bf16 && !model::bf16_gemm_supported()) continue;
    for (auto [m, n, k] : {std::array<Eigen::Index, 3>{128, 2304, 768},
                           {128, 3072, 768},
                           {128, 768, 3072},
                           {2048, 2048, 2048}}) {
      const std::string name = std::string("kernel/") + (g == model::Gemm::bf16 ? "bf16/" : "packed/") +
                               std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k);
      add_percentiles(benchmark::RegisterBenchmark(name.c_str(), kernel_bench, g, m, n, k)
                          ->Unit(benchmark::kMicrosecond)
                          ->UseRealTime());
    }
  }
}

void register_all() {
  register_kernels();
  for (const Bench& b : g_models) {
    const bool big = b.model->config().hidden_size >= 512;
    const std::vector<int> batches = big ? std::vector<int>{1} : std::vector<int>{1, 32};
    for (int batch : batches) {
      for (int threads : {1, 2}) {
        for (Mode mode : {Mode::fast, Mode::blas_gemm, Mode::eigen_gemm, Mode::reference, Mode::blas_threads,
                          Mode::inside_layer, Mode::bf16}) {
          if (mode == Mode::bf16 && !model::bf16_gemm_supported()) continue;
          if ((mode == Mode::reference) && threads > 1) continue;  // single-threaded by design
          if ((mode == Mode::blas_threads || mode == Mode::inside_layer) && threads == 1)
            continue;                                                   // == fast
          if (mode == Mode::inside_layer && batch < threads) continue;  // == fast
          const std::string name = "layer/" + b.name + "/batch:" + std::to_string(batch) +
                                   "/threads:" + std::to_string(threads) + "/" + mode_name(mode);
          add_percentiles(benchmark::RegisterBenchmark(name.c_str(), layer_bench, &b, batch, threads, mode)
                              ->Unit(benchmark::kMicrosecond)
                              ->UseRealTime());
        }
        if (big) continue;  // a BERT-base-shaped model is only a layer for us
        const std::string name =
            "model/" + b.name + "/batch:" + std::to_string(batch) + "/threads:" + std::to_string(threads);
        add_percentiles(
            benchmark::RegisterBenchmark(name.c_str(), model_bench, &b, batch, threads, model::Gemm::packed)
                ->Unit(benchmark::kMicrosecond)
                ->UseRealTime());
        if (model::bf16_gemm_supported()) {
          add_percentiles(benchmark::RegisterBenchmark((name + "/bf16").c_str(), model_bench, &b, batch,
                                                       threads, model::Gemm::bf16)
                              ->Unit(benchmark::kMicrosecond)
                              ->UseRealTime());
        }
      }
    }
  }
}

void write_raw(const fs::path& path, const void* data, size_t bytes) {
  std::ofstream(path, std::ios::binary)
      .write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
}

// <dir>/<model>.config.json, <dir>/<model>.b<batch>.{input.bin, hidden0.bin, hidden1.bin, logits.bin, json}:
// the input (uint8 pixels or int32 ids), our hidden state after the embeddings and after layer 1, every
// exit's logits (float32, exits in order), and their shapes.
void write_outputs(const fs::path& dir) {
  fs::create_directories(dir);
  model::Workspace ws;
  for (const Bench& b : g_models) {
    fs::copy_file(b.dir / "config.json", dir / (b.name + ".config.json"),
                  fs::copy_options::overwrite_existing);
    for (int batch : {1, 32}) {
      if (batch > 1 && b.model->config().hidden_size >= 512) continue;  // benchmarked at batch 1 only
      const Input in = make_input(b, batch);
      const std::string stem = b.name + ".b" + std::to_string(batch);
      model::Hidden h = embed(b, in, batch);
      write_raw(dir / (stem + ".hidden0.bin"), h.x.data(), h.x.size() * 4);
      nlohmann::json meta = {{"batch", batch}, {"tokens", h.tokens}, {"hidden", h.x.cols()}};
      if (!in.pixels.empty()) {
        write_raw(dir / (stem + ".input.bin"), in.pixels.data(), in.pixels.size());
      } else {
        write_raw(dir / (stem + ".input.bin"), in.tokens.input_ids.data(), in.tokens.input_ids.size() * 4);
      }
      std::vector<float> logits;
      for (int layer : b.model->config().early_exit.exit_layers) {
        b.model->run_layers(h, layer, ws);
        if (layer == 1) write_raw(dir / (stem + ".hidden1.bin"), h.x.data(), h.x.size() * 4);
        const model::Matrix l = b.model->exit_logits(h, layer, ws);
        logits.insert(logits.end(), l.data(), l.data() + l.size());
        meta["exits"].push_back(layer);
        meta["labels"] = l.cols();
      }
      write_raw(dir / (stem + ".logits.bin"), logits.data(), logits.size() * 4);
      std::ofstream(dir / (stem + ".json")) << meta.dump() << "\n";
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::string outputs;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto eq = arg.find('=');
    const std::string key = arg.substr(0, eq), value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    if (key == "--vit" || key == "--bert" || key == "--text") {
      if (!fs::exists(fs::path(value) / "model.safetensors")) {
        std::fprintf(stderr, "engine_bench: %s: no model.safetensors in '%s', skipped\n", key.c_str(),
                     value.c_str());
        continue;
      }
      g_models.push_back(open_model(key.substr(2), value));
    } else if (key == "--write_outputs") {
      outputs = value;
    } else {
      std::fprintf(stderr, "engine_bench: unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  if (g_models.empty()) {
    std::fprintf(
        stderr,
        "usage: engine_bench --vit=DIR [--bert=DIR] [--text=DIR] [--write_outputs=DIR] [--benchmark_...]\n");
    return 2;
  }
  if (!outputs.empty()) {
    write_outputs(outputs);
    return 0;
  }
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
