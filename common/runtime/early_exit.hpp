#pragma once
// Batched inference with per-sample exits: a batch runs layer by layer; after each exit head the samples
// whose own rule fires leave the batch and the rest continue as a compacted batch (what DeeBERT / PABEE
// code, batch size 1 only, lacks). Each sample carries its rule and streak (Sample::exit), so samples with
// different thresholds share a batch, and a sample gets the same answer whether it ran on one machine or
// was split across two. Stopping before the last layer leaves the undecided samples ready to offload.
#include <vector>

#include "common/model/multi_exit_model.hpp"
#include "common/model/workspace.hpp"
#include "common/runtime/batch.hpp"

namespace ee::runtime {

struct Answer {
  Sample sample;
  Exit exit;             // the first exit whose rule fired (the last layer's when none did)
  int final_label = -1;  // audited samples: the last layer's label; -1 otherwise
};

// Runs the next encoder layer on the batch, then that layer's exit head if it has one. Samples that are
// answered leave the batch (appended to `answered`); at the model's last layer every sample is answered.
// An audited sample whose exit fires keeps running, its answer held in Sample::exited, until the last layer.
void step(const model::MultiExitModel& model, Batch& batch, model::Workspace& ws,
          std::vector<Answer>& answered);

// Steps the batch from its depth up to `to_layer`; returns the answered samples in the order they left.
// The batch keeps the rest, at depth `to_layer` (or is empty).
std::vector<Answer> run_with_exits(const model::MultiExitModel& model, Batch& batch, int to_layer,
                                   model::Workspace& ws);

}  // namespace ee::runtime
