#pragma once
// config.json: HuggingFace-style model hyper-parameters plus eesplit's `early_exit` block.
#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ee::model {

// Any problem with a model's files: the message names the file, field or tensor at fault.
class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Architecture { vit, bert };  // vit: pre-LN encoder + patch embeddings; bert: post-LN + tokens
enum class ExitHeadKind { layernorm, pooler };  // LN -> linear (ViT) | dense -> tanh -> linear (BERT)

struct ExitConfig {
  std::vector<int> exit_layers;  // 1-based, ascending; the last one must be num_hidden_layers
  ExitHeadKind head = ExitHeadKind::layernorm;
  std::vector<std::string> labels;
};

struct Config {
  std::string model_type;  // "vit" | "bert"
  Architecture architecture = Architecture::vit;
  int hidden_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int intermediate_size = 0;
  float layer_norm_eps = 1e-12f;
  std::string hidden_act = "gelu";
  // vit
  int image_size = 0, patch_size = 0, num_channels = 0;
  std::vector<float> image_mean, image_std;
  // bert
  int vocab_size = 0, max_position_embeddings = 0, type_vocab_size = 0, pad_token_id = 0;
  ExitConfig early_exit;

  int head_dim() const { return hidden_size / num_attention_heads; }
  int num_labels() const { return static_cast<int>(early_exit.labels.size()); }
  // Rows of one sample's hidden state at most: patches + CLS (vit) or max_position_embeddings (bert).
  int max_tokens() const;

  static Config parse(const nlohmann::json& j);  // validates; throws ModelError naming the field
  // The text of a config.json; `source` (its path) starts every error message.
  static Config parse(std::string_view text, const std::string& source);
  static Config load(const std::filesystem::path& config_json);
};

}  // namespace ee::model
