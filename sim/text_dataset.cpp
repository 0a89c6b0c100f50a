#include "sim/text_dataset.hpp"

#include <algorithm>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "common/text/bert_tokenizer.hpp"
#include "sim/dataset.hpp"

namespace ee::sim {

TextDataset load_jsonl(const std::filesystem::path& path, const std::vector<std::string>& label_names,
                       int limit) {
  std::ifstream in(path);
  if (!in) throw DatasetError("cannot open " + path.string());
  TextDataset ds;
  bool any_group = false;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (limit > 0 && static_cast<int>(ds.texts.size()) >= limit) break;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path.string() + ":" + std::to_string(line_no);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw DatasetError(where + ": not valid JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string() || !j.contains("label") ||
        !j["label"].is_string()) {
      throw DatasetError(where + ": needs string fields \"text\" and \"label\"");
    }
    const auto label = j["label"].get<std::string>();
    const auto it = std::find(label_names.begin(), label_names.end(), label);
    if (it == label_names.end())
      throw DatasetError(where + ": label '" + label + "' is not one of the model's labels");
    ds.texts.push_back(j["text"].get<std::string>());
    ds.labels.push_back(static_cast<int>(it - label_names.begin()));
    const bool has_group = j.contains("group") && j["group"].is_string();
    any_group = any_group || has_group;
    ds.groups.push_back(has_group ? j["group"].get<std::string>() : std::string("(none)"));
  }
  if (!any_group) ds.groups.clear();
  return ds;
}

EvalDataset text_eval_dataset(const model::MultiExitModel& model, const std::filesystem::path& model_dir,
                              const std::filesystem::path& jsonl, int limit) {
  const auto tokenizer = text::BertTokenizer::for_model(model_dir, model.config());
  TextDataset ds = load_jsonl(jsonl, model.config().early_exit.labels, limit);
  // Tokenized once up front: every evaluator pass (all exits, each rule) reuses the ids.
  auto encodings = std::make_shared<std::vector<text::Encoding>>();
  encodings->reserve(ds.texts.size());
  for (const auto& t : ds.texts) encodings->push_back(tokenizer.encode(t));
  EvalDataset out;
  out.name = jsonl.string();
  out.labels = std::move(ds.labels);
  out.groups = std::move(ds.groups);
  const int32_t pad = tokenizer.vocab().pad_id();
  out.embed = [encodings, pad, &model](int first, int count) {
    const auto batch = text::BertTokenizer::pad(std::span(*encodings).subspan(first, count), pad);
    return model.embed_tokens(batch);
  };
  return out;
}

}  // namespace ee::sim
