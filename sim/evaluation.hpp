#pragma once
// Offline evaluation of a multi-exit model over a dataset: every exit on every sample (per-exit accuracy,
// and the raw material for scheduler traces), and real early-exit runs under an exit rule.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/exits/confidence.hpp"
#include "common/model/multi_exit_model.hpp"
#include "common/model/workspace.hpp"
#include "common/runtime/early_exit.hpp"
#include "sim/dataset.hpp"

namespace ee::sim {

// A labelled dataset as the model sees it: `embed(first, count)` turns samples [first, first + count)
// into a hidden state at depth 0 (images and text alike).
struct EvalDataset {
  std::string name;
  std::vector<int> labels;
  std::vector<std::string> groups;  // optional per-sample group (e.g. easy / hard mail); empty if none
  std::function<model::Hidden(int first, int count)> embed;
  int size() const { return static_cast<int>(labels.size()); }
};

// IDX images and labels as the model sees them (checked against the model's image shape). `model` must
// outlive the result; limit > 0 keeps the first `limit` samples.
EvalDataset image_eval_dataset(const model::MultiExitModel& model, const std::string& images,
                               const std::string& labels, int limit = 0);
// The same over images already in memory (e.g. distorted); `name` names them in reports.
EvalDataset image_eval_dataset(const model::MultiExitModel& model, std::shared_ptr<const ImageDataset> images,
                               const std::string& name, int limit = 0);

// Called with (done, total) as samples finish.
using Progress = std::function<void(int done, int total)>;

// confidences[sample][k]: the k-th exit head (config().early_exit.exit_layers[k]) on that sample.
struct AllExits {
  std::vector<std::vector<exits::Confidence>> confidences;
};
// `exec`: threads and GEMM of the Workspace each run uses.
AllExits evaluate_all_exits(const model::MultiExitModel& model, const EvalDataset& data, int batch,
                            const Progress& progress = {}, const model::ExecOptions& exec = {});

struct RuleRun {
  exits::ExitRule rule;
  int batch = 1;
  std::vector<runtime::Exit> results;  // per sample
  double seconds = 0;                  // wall time of embedding + layers + exits
};
RuleRun evaluate_rule(const model::MultiExitModel& model, const EvalDataset& data,
                      const exits::ExitRule& rule, int batch, const Progress& progress = {},
                      const model::ExecOptions& exec = {});

}  // namespace ee::sim
