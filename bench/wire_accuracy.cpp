// wire_accuracy: what the wire format costs in bytes and accuracy. Every test sample is offloaded at every
// split layer: the edge runs layers 1..s, each sample's valid rows go through encode -> frame bytes ->
// verify + decode, the decoded samples are stacked into one batch as the cloud would, the cloud runs
// layers s+1..L and answers from the final exit. Accuracy is compared with the model run without the wire.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/model/multi_exit_model.hpp"
#include "common/model/workspace.hpp"
#include "common/net/framing.hpp"
#include "common/runtime/batch.hpp"
#include "common/wire/codec.hpp"
#include "sim/dataset.hpp"
#include "sim/evaluation.hpp"
#include "sim/text_dataset.hpp"

namespace {

using namespace ee;

struct Variant {
  wire::DType dtype;
  wire::Compression compression;
  std::string name() const {
    return std::string(wire::to_string(dtype)) + (compression == wire::Compression::zstd ? "+zstd" : "");
  }
};

// Running mean / std of bytes per offload (Welford).
struct Stats {
  double n = 0, mean = 0, m2 = 0;
  void add(double x) {
    n += 1;
    const double d = x - mean;
    mean += d / n;
    m2 += d * (x - mean);
  }
  double std() const { return n > 1 ? std::sqrt(m2 / (n - 1)) : 0.0; }
};

struct Cell {
  Stats frame_bytes;  // length prefix + FlatBuffers envelope: what crosses the network
  int correct = 0, flipped = 0;
};

std::vector<int> argmax_rows(const model::Matrix& logits) {
  std::vector<int> out(static_cast<size_t>(logits.rows()));
  for (Eigen::Index r = 0; r < logits.rows(); ++r) logits.row(r).maxCoeff(&out[static_cast<size_t>(r)]);
  return out;
}

// Answers of the cloud for every sample of `edge` (at depth s) after it crossed the wire as `v`; adds the
// frame sizes to `cell`.
std::vector<int> offload(const model::MultiExitModel& model, const model::Hidden& edge, const Variant& v,
                         const wire::Limits& limits, int zstd_level, Cell& cell, model::Workspace& ws) {
  std::vector<wire::Activation> received;
  received.reserve(static_cast<size_t>(edge.batch()));
  for (int b = 0; b < edge.batch(); ++b) {
    // Non-zero id and deadline, as the edge sends them (FlatBuffers omits fields left at their default).
    const wire::ActivationMeta meta{static_cast<uint64_t>(b) + 1,
                                    limits.model_hash,
                                    edge.depth,
                                    std::chrono::milliseconds(50),
                                    {},
                                    false};
    const wire::Encoded e = wire::encode_activation(meta, edge.sample(b).topRows(edge.lengths[b]),
                                                    {v.dtype, v.compression, zstd_level});
    cell.frame_bytes.add(static_cast<double>(net::kLengthPrefixBytes + e.size()));
    received.push_back(std::get<wire::Activation>(wire::decode(e.span(), limits)));
  }
  std::vector<const wire::Activation*> requests;
  for (const wire::Activation& a : received) requests.push_back(&a);
  const std::vector<runtime::Sample> samples(received.size());
  runtime::Batch cloud = runtime::Batch::decode(requests, samples);
  model.run_layers(cloud.hidden(), model.num_layers(), ws);
  return argmax_rows(model.exit_logits(cloud.hidden(), model.num_layers(), ws));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Bytes per offload and accuracy change of every wire dtype at every split layer"};
  std::string model_dir = "models/fmnist-vit", images, labels, text, json_out;
  int limit = 0, batch = 500, zstd_level = 1;
  std::vector<int> splits;
  app.add_option("--model", model_dir, "model directory (config.json + model.safetensors)")
      ->capture_default_str();
  app.add_option("--images", images, "idx3 images (default: Debian's Fashion-MNIST test set)");
  app.add_option("--labels", labels, "idx1 labels (default: Debian's Fashion-MNIST test set)");
  app.add_option("--text", text,
                 "text models: JSONL of {\"text\", \"label\"} (default: <model>/sample/test_sample.jsonl)");
  app.add_option("--limit", limit, "first N samples only (0: all)")->capture_default_str();
  app.add_option("--batch", batch, "samples per edge/cloud batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--zstd-level", zstd_level, "zstd level of the +zstd variants")->capture_default_str();
  app.add_option("--splits", splits, "split layers to test (default: 0 .. L-1)");
  app.add_option("--json", json_out, "also write the results as JSON here");
  CLI11_PARSE(app, argc, argv);

  try {
    const auto model = model::MultiExitModel::load(model_dir);
    const model::Config& config = model->config();
    const int L = model->num_layers();
    if (splits.empty())
      for (int s = 0; s < L; ++s) splits.push_back(s);
    // Ascending: each split continues the edge's hidden state from the previous one.
    std::sort(splits.begin(), splits.end());
    splits.erase(std::unique(splits.begin(), splits.end()), splits.end());
    if (splits.front() < 0 || splits.back() >= L)
      throw std::runtime_error("--splits must lie in 0.." + std::to_string(L - 1));
    const sim::EvalDataset data = [&] {
      if (config.architecture == model::Architecture::bert)
        return sim::text_eval_dataset(*model, model_dir,
                                      text.empty() ? model_dir + "/sample/test_sample.jsonl" : text, limit);
      return sim::image_eval_dataset(
          *model, images.empty() ? (sim::kFashionMnistDir / "t10k-images-idx3-ubyte.gz").string() : images,
          labels.empty() ? (sim::kFashionMnistDir / "t10k-labels-idx1-ubyte.gz").string() : labels, limit);
    }();
    const wire::Limits limits = wire::Limits::for_model(config, model->hash());

    std::vector<Variant> variants;
    for (wire::DType d : {wire::DType::f32, wire::DType::f16, wire::DType::i8})
      for (wire::Compression c : {wire::Compression::none, wire::Compression::zstd})
        variants.push_back({d, c});

    // cells[split][variant]
    std::map<int, std::map<std::string, Cell>> cells;
    int reference_correct = 0;
    model::Workspace ws;
    const int n = data.size();
    for (int first = 0; first < n; first += batch) {
      const int count = std::min(batch, n - first);
      const std::vector<int> truth(data.labels.begin() + first, data.labels.begin() + first + count);
      model::Hidden h = data.embed(first, count);
      // The reference: the same model, never serialized.
      model::Hidden full = h;
      model->run_layers(full, L, ws);
      const std::vector<int> reference = argmax_rows(model->exit_logits(full, L, ws));
      for (int i = 0; i < count; ++i) reference_correct += reference[i] == truth[i];

      for (int s : splits) {
        model->run_layers(h, s, ws);  // splits ascend: continue from the previous one
        for (const Variant& v : variants) {
          Cell& cell = cells[s][v.name()];
          const std::vector<int> answer = offload(*model, h, v, limits, zstd_level, cell, ws);
          for (int i = 0; i < count; ++i) {
            cell.correct += answer[i] == truth[i];
            cell.flipped += answer[i] != reference[i];
          }
        }
      }
      std::fprintf(stderr, "\r%d/%d samples", first + count, n);
    }
    std::fprintf(stderr, "\n");

    const double ref_acc = 100.0 * reference_correct / n;
    nlohmann::json j = {{"model", model_dir}, {"model_hash", model->hash()},   {"dataset", data.name},
                        {"samples", n},       {"reference_accuracy", ref_acc}, {"zstd_level", zstd_level}};
    std::printf("model %s (%s), %d samples, final-exit accuracy without the wire %.2f%%\n\n",
                model_dir.c_str(), model->hash().substr(0, 12).c_str(), n, ref_acc);
    std::printf(
        "| split | variant | frame bytes mean | std | vs f32 | accuracy %% | change (pp) | answers changed "
        "|\n");
    std::printf("|---|---|---|---|---|---|---|---|\n");
    for (int s : splits) {
      const double f32_bytes = cells[s]["f32"].frame_bytes.mean;
      for (const Variant& v : variants) {
        const Cell& c = cells[s][v.name()];
        const double acc = 100.0 * c.correct / n;
        std::printf("| %d | %s | %.1f | %.1f | %.2fx | %.2f | %+.2f | %d |\n", s, v.name().c_str(),
                    c.frame_bytes.mean, c.frame_bytes.std(), f32_bytes / c.frame_bytes.mean, acc,
                    acc - ref_acc, c.flipped);
        j["results"].push_back({{"split", s},
                                {"variant", v.name()},
                                {"frame_bytes_mean", c.frame_bytes.mean},
                                {"frame_bytes_std", c.frame_bytes.std()},
                                {"ratio_vs_f32", f32_bytes / c.frame_bytes.mean},
                                {"accuracy", acc},
                                {"accuracy_change_pp", acc - ref_acc},
                                {"answers_changed", c.flipped}});
      }
    }
    if (!json_out.empty()) std::ofstream(json_out) << j.dump(1) << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wire_accuracy: %s\n", e.what());
    return 1;
  }
  return 0;
}
