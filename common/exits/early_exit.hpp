#pragma once
// Batched inference with per-sample exits: a batch runs layer by layer; after each exit head the samples
// whose rule fires leave the batch and the rest continue as a compacted batch (what DeeBERT / PABEE code,
// batch size 1 only, lacks). Stopping before the last layer leaves the undecided samples' hidden states
// ready to offload: the edge runs this up to its split, the cloud continues from there.
#include <optional>
#include <vector>

#include "common/exits/confidence.hpp"
#include "common/model/multi_exit_model.hpp"
#include "common/model/workspace.hpp"

namespace ee::exits {

struct ExitResult {
  int layer = 0;  // the exit that answered
  Confidence confidence;
};

struct EarlyExitRun {
  std::vector<std::optional<ExitResult>> results;  // per input sample; empty where it did not exit
  model::Hidden remaining;                         // samples that did not exit, at depth `to_layer`
  std::vector<int> remaining_index;                // input index of each remaining sample
};

// Runs h from its depth up to `to_layer`. Exit heads at layers in (h.depth, to_layer] are evaluated; at the
// model's last layer every remaining sample is answered.
EarlyExitRun run_with_exits(const model::MultiExitModel& model, model::Hidden h, int to_layer,
                            const ExitRule& rule, model::Workspace& ws);

// Keeps the samples at `keep` (ascending indices into h), in that order.
model::Hidden select_samples(const model::Hidden& h, const std::vector<int>& keep);

}  // namespace ee::exits
