#include "common/model/config.hpp"

#include <fstream>
#include <nlohmann/json.hpp>

namespace ee::model {
namespace {

template <typename T>
T field(const nlohmann::json& j, const char* name) {
  if (!j.contains(name)) throw ModelError(std::string("config.json: missing field '") + name + "'");
  try {
    return j.at(name).get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(std::string("config.json: field '") + name + "' has the wrong type: " + e.what());
  }
}

void require(bool ok, const std::string& what) {
  if (!ok) throw ModelError("config.json: " + what);
}

}  // namespace

int Config::max_tokens() const {
  if (architecture == Architecture::vit) return (image_size / patch_size) * (image_size / patch_size) + 1;
  return max_position_embeddings;
}

Config Config::parse(const nlohmann::json& j) {
  require(j.is_object(), "top level is not a JSON object");
  Config c;
  c.model_type = field<std::string>(j, "model_type");
  if (c.model_type == "vit") {
    c.architecture = Architecture::vit;
  } else if (c.model_type == "bert") {
    c.architecture = Architecture::bert;
  } else {
    throw ModelError("config.json: model_type '" + c.model_type + "' is not supported (vit, bert)");
  }
  c.hidden_size = field<int>(j, "hidden_size");
  c.num_hidden_layers = field<int>(j, "num_hidden_layers");
  c.num_attention_heads = field<int>(j, "num_attention_heads");
  c.intermediate_size = field<int>(j, "intermediate_size");
  c.layer_norm_eps = field<float>(j, "layer_norm_eps");
  c.hidden_act = j.value("hidden_act", std::string("gelu"));
  require(
      c.hidden_size > 0 && c.num_hidden_layers > 0 && c.num_attention_heads > 0 && c.intermediate_size > 0,
      "hidden_size, num_hidden_layers, num_attention_heads and intermediate_size must be positive");
  require(c.hidden_size % c.num_attention_heads == 0, "hidden_size " + std::to_string(c.hidden_size) +
                                                          " is not divisible by num_attention_heads " +
                                                          std::to_string(c.num_attention_heads));
  require(c.layer_norm_eps > 0, "layer_norm_eps must be positive");
  require(c.hidden_act == "gelu", "hidden_act '" + c.hidden_act + "' is not supported (gelu)");

  if (c.architecture == Architecture::vit) {
    c.image_size = field<int>(j, "image_size");
    c.patch_size = field<int>(j, "patch_size");
    c.num_channels = field<int>(j, "num_channels");
    c.image_mean = field<std::vector<float>>(j, "image_mean");
    c.image_std = field<std::vector<float>>(j, "image_std");
    require(c.image_size > 0 && c.patch_size > 0 && c.image_size % c.patch_size == 0,
            "image_size must be a positive multiple of patch_size");
    require(c.num_channels > 0, "num_channels must be positive");
    require(static_cast<int>(c.image_mean.size()) == c.num_channels &&
                static_cast<int>(c.image_std.size()) == c.num_channels,
            "image_mean and image_std need one value per channel");
    for (float s : c.image_std) require(s > 0, "image_std values must be positive");
  } else {
    c.vocab_size = field<int>(j, "vocab_size");
    c.max_position_embeddings = field<int>(j, "max_position_embeddings");
    c.type_vocab_size = j.value("type_vocab_size", 2);
    c.pad_token_id = j.value("pad_token_id", 0);
    require(c.vocab_size > 0 && c.max_position_embeddings > 0 && c.type_vocab_size > 0,
            "vocab_size, max_position_embeddings and type_vocab_size must be positive");
  }

  require(j.contains("early_exit") && j["early_exit"].is_object(), "missing object 'early_exit'");
  const auto& ee = j["early_exit"];
  c.early_exit.exit_layers = field<std::vector<int>>(ee, "exit_layers");
  c.early_exit.labels = field<std::vector<std::string>>(ee, "labels");
  const auto head = field<std::string>(ee, "head");
  if (head == "layernorm") {
    c.early_exit.head = ExitHeadKind::layernorm;
  } else if (head == "pooler") {
    c.early_exit.head = ExitHeadKind::pooler;
  } else {
    throw ModelError("config.json: early_exit.head '" + head + "' is not supported (layernorm, pooler)");
  }
  const auto& layers = c.early_exit.exit_layers;
  require(
      !layers.empty() && layers.back() == c.num_hidden_layers,
      "early_exit.exit_layers must end with the last layer (" + std::to_string(c.num_hidden_layers) + ")");
  for (size_t i = 0; i < layers.size(); ++i) {
    require(layers[i] >= 1 && layers[i] <= c.num_hidden_layers && (i == 0 || layers[i] > layers[i - 1]),
            "early_exit.exit_layers must be ascending layer numbers in 1.." +
                std::to_string(c.num_hidden_layers));
  }
  require(c.early_exit.labels.size() >= 2, "early_exit.labels needs at least two labels");
  return c;
}

Config Config::load(const std::filesystem::path& config_json) {
  std::ifstream in(config_json);
  if (!in) throw ModelError("cannot open " + config_json.string());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw ModelError(config_json.string() + ": not valid JSON: " + e.what());
  }
  try {
    return parse(j);
  } catch (const ModelError& e) {
    throw ModelError(config_json.string() + ": " + e.what());
  }
}

}  // namespace ee::model
