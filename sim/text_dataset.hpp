#pragma once
// Labelled text for the offline tools: JSONL mail/sentence files, tokenized with the model's vocabulary.
#include <filesystem>
#include <string>
#include <vector>

#include "common/model/multi_exit_model.hpp"
#include "sim/evaluation.hpp"

namespace ee::sim {

// One JSON object per line: {"text": ..., "label": <label name>, "group": <optional name>} (what
// models/train/spam_data.py writes).
struct TextDataset {
  std::vector<std::string> texts;
  std::vector<int> labels;          // index into the label names given to load_jsonl
  std::vector<std::string> groups;  // per text; empty when no line names a group
};

// `label_names`: the model's labels (config early_exit.labels). Throws DatasetError naming the file and
// line of a malformed record or an unknown label. limit > 0 stops after that many records.
TextDataset load_jsonl(const std::filesystem::path& path, const std::vector<std::string>& label_names,
                       int limit = 0);

// The dataset as the evaluators see it: texts tokenized once with <model_dir>/vocab.txt (checked against
// the model's config), padded per batch and embedded on demand. `model` must outlive the result.
EvalDataset text_eval_dataset(const model::MultiExitModel& model, const std::filesystem::path& model_dir,
                              const std::filesystem::path& jsonl, int limit = 0);

}  // namespace ee::sim
