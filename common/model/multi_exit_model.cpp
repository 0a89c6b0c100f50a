#include "common/model/multi_exit_model.hpp"

#include <openssl/evp.h>

#include <fstream>
#include <iterator>

#include "common/model/embeddings.hpp"
#include "common/model/encoder_layer.hpp"
#include "common/model/exit_head.hpp"
#include "common/model/safetensors.hpp"
#include "common/model/workspace.hpp"

namespace ee::model {
namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelError("cannot open " + path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string sha256_hex(std::span<const std::byte> a, std::span<const std::byte> b) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), a.data(), a.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), b.data(), b.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), digest, &len) != 1) {
    throw ModelError("SHA-256 of the model files failed");
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

}  // namespace

std::shared_ptr<const MultiExitModel> MultiExitModel::load(const std::filesystem::path& dir) {
  // Parsed from the very bytes that are hashed, so the hash always names the config in use.
  const std::string config_text = read_file(dir / "config.json");
  Config config = Config::parse(config_text, (dir / "config.json").string());
  auto weights = SafeTensors::open(dir / "model.safetensors");
  std::string hash = sha256_hex(std::as_bytes(std::span(config_text)), weights->bytes());
  return std::make_shared<const MultiExitModel>(std::move(config), std::move(weights), std::move(hash));
}

MultiExitModel::MultiExitModel(Config config, std::shared_ptr<const SafeTensors> weights, std::string hash)
    : config_(std::move(config)), weights_(std::move(weights)), hash_(std::move(hash)) {
  WeightLoader loader(*weights_);
  embeddings_ = std::make_unique<Embeddings>(config_, loader);
  for (int i = 0; i < config_.num_hidden_layers; ++i) {
    layers_.push_back(std::make_unique<EncoderLayer>(config_, loader, i));
  }
  exits_.resize(config_.num_hidden_layers + 1);
  for (int layer : config_.early_exit.exit_layers) {
    exits_[layer] = std::make_unique<ExitHead>(config_, loader, layer);
  }
  loader.check_all_used();
}

MultiExitModel::~MultiExitModel() = default;

Hidden MultiExitModel::embed_images(std::span<const uint8_t> pixels, int batch) const {
  return embeddings_->images(pixels, batch);
}

Hidden MultiExitModel::embed_tokens(const TokenBatch& tokens) const {
  return embeddings_->tokens(tokens);
}

bool MultiExitModel::has_exit(int layer) const {
  return layer >= 1 && layer <= num_layers() && exits_[layer] != nullptr;
}

void MultiExitModel::run_layers(Hidden& h, int to_layer, Workspace& ws) const {
  // Daemons build batches from the network: check every size a layer will index with before running one.
  if (h.depth < 0 || to_layer < h.depth || to_layer > num_layers()) {
    throw ModelError("cannot run from depth " + std::to_string(h.depth) + " to layer " +
                     std::to_string(to_layer) + " of a " + std::to_string(num_layers()) + "-layer model");
  }
  if (h.x.cols() != config_.hidden_size || h.tokens <= 0 || h.tokens > config_.max_tokens() ||
      h.x.rows() != static_cast<Eigen::Index>(h.batch()) * h.tokens) {
    throw ModelError("hidden state of " + std::to_string(h.x.rows()) + " x " + std::to_string(h.x.cols()) +
                     " does not match batch " + std::to_string(h.batch()) + " x " + std::to_string(h.tokens) +
                     " tokens (at most " + std::to_string(config_.max_tokens()) + ") x " +
                     std::to_string(config_.hidden_size));
  }
  for (int b = 0; b < h.batch(); ++b) {
    const int length = h.lengths[static_cast<size_t>(b)];
    if (length < 1 || length > h.tokens) {
      throw ModelError("sample " + std::to_string(b) + " has length " + std::to_string(length) +
                       ", outside 1.." + std::to_string(h.tokens));
    }
  }
  for (; h.depth < to_layer; ++h.depth) layers_[h.depth]->forward(h, ws);
}

void MultiExitModel::prepare(Gemm gemm) const {
  for (const auto& layer : layers_) layer->prepare(gemm);
}

Matrix MultiExitModel::exit_logits(const Hidden& h, int layer, Workspace& ws) const {
  if (!has_exit(layer)) throw ModelError("layer " + std::to_string(layer) + " has no exit head");
  if (h.depth != layer) {
    throw ModelError("exit " + std::to_string(layer) + " needs the hidden state after layer " +
                     std::to_string(layer) + ", got depth " + std::to_string(h.depth));
  }
  return exits_[layer]->forward(h, ws);
}

}  // namespace ee::model
