#include "sim/evaluation.hpp"

#include <algorithm>
#include <chrono>

#include "common/model/workspace.hpp"
#include "sim/dataset.hpp"

namespace ee::sim {

EvalDataset image_eval_dataset(const model::MultiExitModel& model, const std::string& images,
                               const std::string& labels, int limit) {
  return image_eval_dataset(model, std::make_shared<ImageDataset>(load_idx(images, labels)), images, limit);
}

EvalDataset image_eval_dataset(const model::MultiExitModel& model, std::shared_ptr<const ImageDataset> ds,
                               const std::string& images, int limit) {
  const auto& c = model.config();
  if (ds->rows != c.image_size || ds->cols != c.image_size || c.num_channels != 1) {
    throw DatasetError(images + " holds " + std::to_string(ds->rows) + "x" + std::to_string(ds->cols) +
                       " single-channel images; the model takes " + std::to_string(c.num_channels) + "x" +
                       std::to_string(c.image_size) + "x" + std::to_string(c.image_size));
  }
  EvalDataset out;
  out.name = images;
  const int n = limit > 0 ? std::min(limit, ds->count) : ds->count;
  out.labels.assign(ds->labels.begin(), ds->labels.begin() + n);
  out.embed = [ds, &model](int first, int count) {
    const size_t size = ds->image_size();
    return model.embed_images(std::span(ds->pixels).subspan(first * size, count * size), count);
  };
  return out;
}

AllExits evaluate_all_exits(const model::MultiExitModel& model, const EvalDataset& data, int batch,
                            const Progress& progress, const model::ExecOptions& exec) {
  AllExits out;
  out.confidences.resize(data.size());
  model::Workspace ws(exec);
  for (int first = 0; first < data.size(); first += batch) {
    const int n = std::min(batch, data.size() - first);
    model::Hidden h = data.embed(first, n);
    for (int layer : model.config().early_exit.exit_layers) {
      model.run_layers(h, layer, ws);
      const model::Matrix logits = model.exit_logits(h, layer, ws);
      for (int b = 0; b < n; ++b) {
        out.confidences[first + b].push_back(
            exits::confidence(std::span(logits.row(b).data(), logits.cols())));
      }
    }
    if (progress) progress(first + n, data.size());
  }
  return out;
}

RuleRun evaluate_rule(const model::MultiExitModel& model, const EvalDataset& data,
                      const exits::ExitRule& rule, int batch, const Progress& progress,
                      const model::ExecOptions& exec) {
  RuleRun run{rule, batch, {}, 0};
  run.results.resize(data.size());
  model::Workspace ws(exec);
  for (int first = 0; first < data.size(); first += batch) {
    const int n = std::min(batch, data.size() - first);
    const auto start = std::chrono::steady_clock::now();
    runtime::Batch batch(data.embed(first, n), rule, static_cast<uint64_t>(first));
    std::vector<runtime::Answer> answers = runtime::run_with_exits(model, batch, model.num_layers(), ws);
    run.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (runtime::Answer& a : answers) run.results[a.sample.request_id] = std::move(a.exit);
    if (progress) progress(first + n, data.size());
  }
  return run;
}

}  // namespace ee::sim
