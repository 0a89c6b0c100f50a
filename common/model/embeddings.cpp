#include "common/model/embeddings.hpp"

#include "common/model/multi_exit_model.hpp"

namespace ee::model {

Embeddings::Embeddings(const Config& c, WeightLoader& w) : config_(c) {
  const int64_t h = c.hidden_size;
  if (c.architecture == Architecture::vit) {
    const int64_t p = c.patch_size, tokens = c.max_tokens();
    const auto kernel = w.get("vit.embeddings.patch_embeddings.projection.weight", {h, c.num_channels, p, p});
    patch_.emplace(Patch{
        ConstMatrixMap(kernel.data(), h, c.num_channels * p * p),
        w.vec("vit.embeddings.patch_embeddings.projection.bias", h),
        ConstVectorMap(w.get("vit.embeddings.cls_token", {1, 1, h}).data(), h),
        ConstMatrixMap(w.get("vit.embeddings.position_embeddings", {1, tokens, h}).data(), tokens, h),
    });
  } else {
    token_.emplace(Token{
        w.get("bert.embeddings.word_embeddings.weight", {c.vocab_size, h}),
        w.get("bert.embeddings.position_embeddings.weight", {c.max_position_embeddings, h}),
        w.get("bert.embeddings.token_type_embeddings.weight", {c.type_vocab_size, h}),
        LayerNorm{w.vec("bert.embeddings.LayerNorm.weight", h), w.vec("bert.embeddings.LayerNorm.bias", h),
                  c.layer_norm_eps},
    });
  }
}

Hidden Embeddings::images(std::span<const uint8_t> pixels, int batch) const {
  if (!patch_) throw ModelError("model '" + config_.model_type + "' takes text, not images");
  const int s = config_.image_size, p = config_.patch_size, ch = config_.num_channels, g = s / p;
  const size_t per_image = static_cast<size_t>(ch) * s * s;
  if (batch < 0 || pixels.size() != per_image * static_cast<size_t>(batch)) {
    throw ModelError("expected " + std::to_string(batch) + " images of " + std::to_string(per_image) +
                     " pixels, got " + std::to_string(pixels.size()) + " pixels");
  }
  // Flatten every patch in (channel, row, col) order, the order of the conv kernel's [ch, p, p] layout.
  Matrix patches(static_cast<Eigen::Index>(batch) * g * g, ch * p * p);
  for (int b = 0; b < batch; ++b) {
    for (int py = 0; py < g; ++py) {
      for (int px = 0; px < g; ++px) {
        float* out = patches.row((b * g + py) * g + px).data();
        for (int c = 0; c < ch; ++c) {
          // Same arithmetic as the PyTorch side: (p / 255 - mean) / std in float.
          const float mean = config_.image_mean[c], std = config_.image_std[c];
          for (int y = 0; y < p; ++y) {
            for (int x = 0; x < p; ++x) {
              const uint8_t v =
                  pixels[b * per_image + (static_cast<size_t>(c) * s + py * p + y) * s + px * p + x];
              *out++ = (static_cast<float>(v) / 255.0f - mean) / std;
            }
          }
        }
      }
    }
  }
  Hidden h;
  h.tokens = g * g + 1;
  h.lengths.assign(batch, h.tokens);
  h.x.resize(static_cast<Eigen::Index>(batch) * h.tokens, config_.hidden_size);
  Matrix projected(patches.rows(), config_.hidden_size);
  Linear{patch_->projection, patch_->bias}(patches, projected);
  for (int b = 0; b < batch; ++b) {
    auto sample = h.sample(b);
    sample.row(0) = patch_->cls + patch_->position.row(0);
    sample.bottomRows(g * g) = projected.middleRows(static_cast<Eigen::Index>(b) * g * g, g * g) +
                               patch_->position.bottomRows(g * g);
  }
  return h;
}

Hidden Embeddings::tokens(const TokenBatch& t) const {
  if (!token_) throw ModelError("model '" + config_.model_type + "' takes images, not text");
  const size_t n = static_cast<size_t>(t.batch()) * t.tokens;
  if (t.tokens <= 0 || t.tokens > config_.max_position_embeddings) {
    throw ModelError("token batch length " + std::to_string(t.tokens) + " is outside 1.." +
                     std::to_string(config_.max_position_embeddings));
  }
  if (t.input_ids.size() != n || t.token_type_ids.size() != n) {
    throw ModelError("token batch needs " + std::to_string(n) + " input_ids and token_type_ids");
  }
  Hidden h;
  h.tokens = t.tokens;
  h.lengths = t.lengths;
  h.x.resize(static_cast<Eigen::Index>(n), config_.hidden_size);
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = t.input_ids[i], type = t.token_type_ids[i];
    if (id < 0 || id >= config_.vocab_size) {
      throw ModelError("token id " + std::to_string(id) + " is outside the vocabulary of " +
                       std::to_string(config_.vocab_size));
    }
    if (type < 0 || type >= config_.type_vocab_size) {
      throw ModelError("token type id " + std::to_string(type) + " is outside 0.." +
                       std::to_string(config_.type_vocab_size - 1));
    }
    h.x.row(static_cast<Eigen::Index>(i)) = token_->word.row(id) +
                                            token_->position.row(static_cast<Eigen::Index>(i % t.tokens)) +
                                            token_->type.row(type);
  }
  for (int len : h.lengths) {
    if (len < 1 || len > t.tokens) {
      throw ModelError("sample length " + std::to_string(len) + " is outside 1.." + std::to_string(t.tokens));
    }
  }
  token_->norm(h.x, h.x);
  return h;
}

}  // namespace ee::model
