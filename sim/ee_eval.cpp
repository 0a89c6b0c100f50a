// ee-eval: runs a multi-exit model over a labelled dataset and prints per-exit accuracy, the exit
// distribution under one or more exit rules, overall accuracy, mean layers executed, layers saved and
// throughput. Images can be distorted from a given sample on (--distort), a stream whose inputs shift.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/model/multi_exit_model.hpp"
#include "common/model/ops.hpp"
#include "common/sched/trace.hpp"
#include "sim/dataset.hpp"
#include "sim/evaluation.hpp"
#include "sim/text_dataset.hpp"

namespace {

using namespace ee;

// Progress on stderr: a line rewritten in place on a terminal (once a second), else a line every 5 s.
sim::Progress progress_printer(const std::string& what) {
  const bool tty = isatty(STDERR_FILENO) != 0;
  auto last = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  return [what, last, tty](int done, int total) {
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - *last < std::chrono::seconds(tty ? 1 : 5)) return;
    *last = now;
    std::fprintf(stderr, "%s%s: %d/%d samples%s", tty ? "\r" : "", what.c_str(), done, total,
                 tty && done < total ? "" : "\n");
    std::fflush(stderr);
  };
}

double percent(double part, double whole) {
  return whole > 0 ? 100.0 * part / whole : 0.0;
}

nlohmann::json report(const model::MultiExitModel& model, const sim::EvalDataset& data,
                      const sim::AllExits& all, const std::vector<sim::RuleRun>& runs) {
  const auto& layers = model.config().early_exit.exit_layers;
  const int n = data.size(), L = model.num_layers();
  nlohmann::json j = {{"dataset", data.name}, {"samples", n}, {"layers", L}, {"model_hash", model.hash()}};

  std::printf("\nPer-exit accuracy (every exit head on all %d samples)\n  %-6s %9s\n", n, "exit", "accuracy");
  for (size_t k = 0; k < layers.size(); ++k) {
    int correct = 0;
    for (int s = 0; s < n; ++s) correct += all.confidences[s][k].label == data.labels[s];
    const double acc = percent(correct, n);
    j["per_exit_accuracy"][std::to_string(layers[k])] = acc;
    std::printf("  %-6d %8.2f%%\n", layers[k], acc);
  }
  if (!data.groups.empty()) {
    std::map<std::string, std::vector<int>> members;
    for (int s = 0; s < n; ++s) members[data.groups[s]].push_back(s);
    std::printf("  per group:%*s", 3, "");
    for (int layer : layers) std::printf(" exit %-3d", layer);
    std::printf("\n");
    for (const auto& [g, idx] : members) {
      std::printf("  %-12s", g.c_str());
      for (size_t k = 0; k < layers.size(); ++k) {
        int correct = 0;
        for (int s : idx) correct += all.confidences[s][k].label == data.labels[s];
        const double acc = percent(correct, static_cast<double>(idx.size()));
        j["per_group_per_exit_accuracy"][g][std::to_string(layers[k])] = acc;
        std::printf(" %7.2f%%", acc);
      }
      std::printf("  (%zu samples)\n", idx.size());
    }
  }
  const double final_acc = j["per_exit_accuracy"][std::to_string(L)];

  for (const auto& run : runs) {
    std::map<int, std::pair<int, int>> per_exit;  // layer -> (samples, correct)
    long layers_run = 0;
    int correct = 0;
    for (int s = 0; s < n; ++s) {
      const auto& r = run.results[s];
      const bool ok = r.confidence.label == data.labels[s];
      per_exit[r.layer].first++;
      per_exit[r.layer].second += ok;
      correct += ok;
      layers_run += r.layer;
    }
    const double mean_layers = static_cast<double>(layers_run) / n;
    nlohmann::json rj = {{"rule", run.rule.str()},
                         {"batch", run.batch},
                         {"accuracy", percent(correct, n)},
                         {"mean_layers", mean_layers},
                         {"layers_saved", 100.0 * (1.0 - mean_layers / L)},
                         {"samples_per_second", n / run.seconds}};
    std::printf("\nEarly exit with %s (batch %d)\n  %-6s %8s %8s %9s\n", run.rule.str().c_str(), run.batch,
                "exit", "samples", "share", "accuracy");
    for (int layer : layers) {
      const auto [count, ok] = per_exit[layer];
      rj["exits"][std::to_string(layer)] = {{"samples", count}, {"accuracy", percent(ok, count)}};
      std::printf("  %-6d %8d %7.1f%% %8.2f%%\n", layer, count, percent(count, n), percent(ok, count));
    }
    std::printf(
        "  overall accuracy %.2f%% (final exit alone %.2f%%), mean layers %.2f of %d, layers saved %.1f%%, "
        "%.0f samples/s\n",
        percent(correct, n), final_acc, mean_layers, L, 100.0 * (1.0 - mean_layers / L), n / run.seconds);
    if (!data.groups.empty()) {
      std::map<std::string, std::tuple<int, int, long>> groups;  // samples, correct, layers
      for (int s = 0; s < n; ++s) {
        auto& [count, ok, depth] = groups[data.groups[s]];
        count++;
        ok += run.results[s].confidence.label == data.labels[s];
        depth += run.results[s].layer;
      }
      std::printf("  %-12s %8s %9s %12s\n", "group", "samples", "accuracy", "mean layers");
      for (const auto& [g, v] : groups) {
        const auto [count, ok, depth] = v;
        std::printf("  %-12s %8d %8.2f%% %12.2f\n", g.c_str(), count, percent(ok, count),
                    static_cast<double>(depth) / count);
        rj["groups"][g] = {{"samples", count},
                           {"accuracy", percent(ok, count)},
                           {"mean_layers", static_cast<double>(depth) / count}};
      }
    }
    j["rules"].push_back(rj);
  }
  return j;
}

// Every exit on every sample as a scheduler exit trace (common/sched/trace.hpp): ee-replay's input.
void write_trace(const std::string& path, const model::MultiExitModel& model, const sim::EvalDataset& data,
                 const sim::AllExits& all) {
  sched::ExitTrace trace(model.config().early_exit.exit_layers);
  for (int s = 0; s < data.size(); ++s) {
    sched::TraceSample sample{data.labels[s], data.groups.empty() ? std::string() : data.groups[s], {}};
    for (const auto& c : all.confidences[s])
      sample.exits.push_back({c.label, c.max_prob, c.entropy, c.margin});
    trace.add(std::move(sample));
  }
  trace.save(path);
  std::printf("exit trace of %d samples written to %s\n", data.size(), path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ee-eval: run a multi-exit model over a labelled dataset with early exits and print per-exit "
      "accuracy,\n"
      "the exit distribution, overall accuracy, mean layers executed, layers saved and samples/s."};
  std::string model_dir = "models/fmnist-vit";
  std::string images = (sim::kFashionMnistDir / "t10k-images-idx3-ubyte.gz").string();
  std::string labels = (sim::kFashionMnistDir / "t10k-labels-idx1-ubyte.gz").string();
  std::vector<std::string> rules = {"max_prob:0.9"};
  int batch = 1, limit = 0;
  int threads = 1;
  std::string precision_name = "fp32";
  std::string json_out, text, trace_out, distortion;
  std::uint64_t seed = 0;
  app.add_option("-m,--model", model_dir, "model directory (config.json + model.safetensors)")
      ->capture_default_str();
  app.add_option("--images", images, "IDX images file (gzip or raw)")->capture_default_str();
  app.add_option("--labels", labels, "IDX labels file (gzip or raw)")->capture_default_str();
  app.add_option(
      "--text", text,
      "text models: JSONL file of {\"text\", \"label\", \"group\"} records, tokenized with the model's "
      "vocab.txt (default: <model>/sample/test_sample.jsonl)");
  app.add_option("-r,--rule", rules, "exit rule, repeatable: max_prob:T | entropy:T | margin:T | patience:K")
      ->capture_default_str();
  app.add_option("-b,--batch", batch, "samples per batch; exited samples leave the batch")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("-t,--threads", threads, "threads each layer may use (small layers run on one)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--precision", precision_name,
                 "weight products in fp32, or bf16: weights and activations rounded to bfloat16, fp32 "
                 "accumulation, on AMX tiles (fp32 where the CPU lacks AMX-BF16)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  app.add_option("-n,--limit", limit, "evaluate only the first N samples (0 = all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--json", json_out, "also write the results as JSON to this file");
  app.add_option("--trace", trace_out,
                 "also write every exit on every sample as an exit trace CSV (ee-replay input)");
  app.add_option("--distort", distortion,
                 "images: distort every image from a sample on, noise:S | blur:S | contrast:F [@first], e.g. "
                 "noise:0.3@5000 (the trace's group column says clean or the distortion)");
  app.add_option("--seed", seed, "seed of the --distort noise")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const model::Gemm precision = precision_name == "bf16" ? model::Gemm::bf16 : model::Gemm::packed;
  // What the products will really run in: bf16 falls back to fp32 where the CPU cannot run it.
  const bool bf16 = precision == model::Gemm::bf16 && model::bf16_gemm_supported();

  try {
    std::vector<exits::ExitRule> parsed;
    for (const auto& r : rules) parsed.push_back(exits::ExitRule::parse(r));
    const auto model = model::MultiExitModel::load(model_dir);
    const auto& c = model->config();
    std::printf("model %s: %s, %d layers, hidden %d, exits after %zu layers, hash %.12s\n", model_dir.c_str(),
                c.model_type.c_str(), c.num_hidden_layers, c.hidden_size, c.early_exit.exit_layers.size(),
                model->hash().c_str());
    if (c.architecture == model::Architecture::bert && text.empty())
      text = model_dir + "/sample/test_sample.jsonl";
    if (!distortion.empty() && c.architecture == model::Architecture::bert)
      throw std::runtime_error("--distort applies to image datasets, not to text");
    sim::EvalDataset data;
    if (c.architecture == model::Architecture::bert) {
      data = sim::text_eval_dataset(*model, model_dir, text, limit);
    } else if (distortion.empty()) {
      data = sim::image_eval_dataset(*model, images, labels, limit);
    } else {
      const auto d = sim::Distortion::parse(distortion);
      auto ds = std::make_shared<sim::ImageDataset>(sim::load_idx(images, labels));
      sim::distort(*ds, d, seed);
      data = sim::image_eval_dataset(*model, ds,
                                     images + " (" + d.str() + ", seed " + std::to_string(seed) + ")", limit);
      for (int s = 0; s < data.size(); ++s) data.groups.push_back(s < d.first ? "clean" : d.name());
    }
    std::printf("dataset %s: %d samples\n", data.name.c_str(), data.size());
    if (precision == model::Gemm::bf16) {
      std::printf(
          "precision: bf16 weight products%s\n",
          bf16 ? ""
               : " requested, but this CPU lacks AMX-BF16 (or Linux refused it the tiles): running fp32");
    }
    if (data.size() == 0) throw std::runtime_error("the dataset is empty");

    const sim::AllExits all = sim::evaluate_all_exits(*model, data, 256, progress_printer("all exits"),
                                                      model::ExecOptions{threads, precision});
    if (!trace_out.empty()) write_trace(trace_out, *model, data, all);
    std::vector<sim::RuleRun> runs;
    for (const auto& rule : parsed) {
      runs.push_back(sim::evaluate_rule(*model, data, rule, batch, progress_printer(rule.str()),
                                        model::ExecOptions{threads, precision}));
    }
    nlohmann::json j = report(*model, data, all, runs);
    j["precision"] = bf16 ? "bf16" : "fp32";
    if (!json_out.empty()) {
      std::ofstream(json_out) << j.dump(2) << "\n";
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ee-eval: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
