#include "common/model/config.hpp"

#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>

namespace ee::model {
namespace {

// nlohmann's get<int>() would wrap 4294967360 to 64 and truncate 64.5 to 64: a config is read as written
// or refused.
int to_int(const nlohmann::json& v, const std::string& name) {
  const std::string what = "config.json: field '" + name + "' ";
  if (!v.is_number_integer()) throw ModelError(what + "has the wrong type: expected an int, got " + v.dump());
  const bool fits = v.is_number_unsigned()
                        ? v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int>::max())
                        : v.get<int64_t>() >= std::numeric_limits<int>::min() &&
                              v.get<int64_t>() <= std::numeric_limits<int>::max();
  if (!fits) throw ModelError(what + "is out of range: expected an int, got " + v.dump());
  return static_cast<int>(v.get<int64_t>());
}

// Likewise a double past float's range would become Inf (or be undefined) as a float.
float to_float(const nlohmann::json& v, const std::string& name) {
  const std::string what = "config.json: field '" + name + "' ";
  if (!v.is_number()) throw ModelError(what + "has the wrong type: expected a number, got " + v.dump());
  if (!(std::abs(v.get<double>()) <= std::numeric_limits<float>::max())) {
    throw ModelError(what + "is out of range: expected a float, got " + v.dump());
  }
  return static_cast<float>(v.get<double>());
}

template <typename T>
T field(const nlohmann::json& j, const char* name) {
  if (!j.contains(name)) throw ModelError(std::string("config.json: missing field '") + name + "'");
  const nlohmann::json& v = j.at(name);
  if constexpr (std::is_same_v<T, int>) {
    return to_int(v, name);
  } else if constexpr (std::is_same_v<T, float>) {
    return to_float(v, name);
  } else if constexpr (std::is_same_v<T, std::vector<int>> || std::is_same_v<T, std::vector<float>>) {
    if (!v.is_array()) {
      throw ModelError(std::string("config.json: field '") + name +
                       "' has the wrong type: expected an array");
    }
    T out;
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string element = std::string(name) + "[" + std::to_string(i) + "]";
      if constexpr (std::is_same_v<T, std::vector<int>>) {
        out.push_back(to_int(v[i], element));
      } else {
        out.push_back(to_float(v[i], element));
      }
    }
    return out;
  } else {
    try {
      return v.get<T>();
    } catch (const nlohmann::json::exception& e) {
      throw ModelError(std::string("config.json: field '") + name + "' has the wrong type: " + e.what());
    }
  }
}

// An optional int field with a default.
int field_or(const nlohmann::json& j, const char* name, int fallback) {
  return j.contains(name) ? to_int(j.at(name), name) : fallback;
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
  if (j.contains("hidden_act")) c.hidden_act = field<std::string>(j, "hidden_act");
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
    // Token and patch-vector counts are ints throughout the runtime (max_tokens(), the patch matrix).
    const int64_t grid = c.image_size / c.patch_size;
    require(grid * grid + 1 <= std::numeric_limits<int>::max() &&
                int64_t{c.num_channels} * c.patch_size * c.patch_size <= std::numeric_limits<int>::max(),
            "image_size " + std::to_string(c.image_size) + ", patch_size " + std::to_string(c.patch_size) +
                " and num_channels " + std::to_string(c.num_channels) +
                " give more patches or pixels than an int holds");
    require(static_cast<int>(c.image_mean.size()) == c.num_channels &&
                static_cast<int>(c.image_std.size()) == c.num_channels,
            "image_mean and image_std need one value per channel");
    for (float s : c.image_std) require(s > 0, "image_std values must be positive");
  } else {
    c.vocab_size = field<int>(j, "vocab_size");
    c.max_position_embeddings = field<int>(j, "max_position_embeddings");
    c.type_vocab_size = field_or(j, "type_vocab_size", 2);
    c.pad_token_id = field_or(j, "pad_token_id", 0);
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

Config Config::parse(std::string_view text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw ModelError(source + ": not valid JSON: " + e.what());
  }
  try {
    return parse(j);
  } catch (const ModelError& e) {
    throw ModelError(source + ": " + e.what());
  }
}

Config Config::load(const std::filesystem::path& config_json) {
  std::ifstream in(config_json, std::ios::binary);
  if (!in) throw ModelError("cannot open " + config_json.string());
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return parse(text, config_json.string());
}

}  // namespace ee::model
