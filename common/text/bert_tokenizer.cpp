#include "common/text/bert_tokenizer.hpp"

#include <algorithm>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

namespace ee::text {
namespace {

TokenizerOptions read_tokenizer_config(const std::filesystem::path& file) {
  TokenizerOptions o;
  std::ifstream in(file);
  if (!in) throw TokenizerError("cannot open " + file.string());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
    if (!j.is_object()) throw TokenizerError(file.string() + ": top level is not a JSON object");
    o.normalizer.lowercase = j.value("do_lower_case", true);
    if (j.contains("strip_accents") && !j["strip_accents"].is_null())
      o.normalizer.strip_accents = j["strip_accents"].get<bool>();
    o.normalizer.tokenize_chinese_chars = j.value("tokenize_chinese_chars", true);
    // HF writes a huge sentinel (1e30) for "no limit"; anything past int range means the default.
    // Below int range the cast would be undefined, so a negative length is refused here.
    const double max_len = j.value("model_max_length", 512.0);
    if (max_len < 0) {
      throw TokenizerError(file.string() + ": model_max_length " + j["model_max_length"].dump() +
                           " is negative");
    }
    o.max_length = max_len > std::numeric_limits<int>::max() ? 512 : static_cast<int>(max_len);
  } catch (const nlohmann::json::exception& e) {
    throw TokenizerError(file.string() + ": " + e.what());
  }
  return o;
}

}  // namespace

BertTokenizer::BertTokenizer(Vocab vocab, TokenizerOptions options)
    : options_(options), basic_(options.normalizer), wordpiece_(std::move(vocab), options.max_word_chars) {
  // Room for [CLS] and [SEP]; pairs need one more, checked by encode_pair.
  if (options_.max_length < 2)
    throw TokenizerError("tokenizer max_length must be at least 2 (for [CLS] and [SEP]), got " +
                         std::to_string(options_.max_length));
}

BertTokenizer BertTokenizer::load(const std::filesystem::path& dir, int max_length) {
  const auto config = dir / "tokenizer_config.json";
  TokenizerOptions options =
      std::filesystem::exists(config) ? read_tokenizer_config(config) : TokenizerOptions{};
  if (max_length > 0) options.max_length = max_length;
  return BertTokenizer(Vocab::load(dir / "vocab.txt"), options);
}

BertTokenizer BertTokenizer::for_model(const std::filesystem::path& dir, const model::Config& config) {
  if (config.architecture != model::Architecture::bert)
    throw TokenizerError(dir.string() + ": model type '" + config.model_type + "' takes no text");
  BertTokenizer t = load(dir);
  const auto vocab_file = (dir / "vocab.txt").string();
  if (t.vocab().size() != config.vocab_size)
    throw TokenizerError(vocab_file + " has " + std::to_string(t.vocab().size()) +
                         " tokens but config.json says vocab_size " + std::to_string(config.vocab_size));
  if (t.vocab().pad_id() != config.pad_token_id)
    throw TokenizerError(vocab_file + ": [PAD] is token " + std::to_string(t.vocab().pad_id()) +
                         " but config.json says pad_token_id " + std::to_string(config.pad_token_id));
  t.options_.max_length = std::min(t.options_.max_length, config.max_position_embeddings);
  if (t.options_.max_length < 2)
    throw TokenizerError(dir.string() + ": max_position_embeddings " +
                         std::to_string(config.max_position_embeddings) +
                         " leaves no room for [CLS] and [SEP]");
  return t;
}

std::vector<int32_t> BertTokenizer::piece_ids(std::string_view text, size_t limit) const {
  std::vector<int32_t> ids;
  basic_.for_each_word(text, [&](const CodePoints& word) {
    wordpiece_.tokenize(word, ids);
    return ids.size() < limit;
  });
  return ids;
}

Encoding BertTokenizer::encode(std::string_view text) const {
  auto body = piece_ids(text, static_cast<size_t>(options_.max_length - 2));
  body.resize(std::min(body.size(), static_cast<size_t>(options_.max_length - 2)));
  Encoding e;
  e.ids.reserve(body.size() + 2);
  e.ids.push_back(vocab().cls_id());
  e.ids.insert(e.ids.end(), body.begin(), body.end());
  e.ids.push_back(vocab().sep_id());
  e.type_ids.assign(e.ids.size(), 0);
  return e;
}

Encoding BertTokenizer::encode_pair(std::string_view a, std::string_view b) const {
  // HF's tokenizer (checked on `tokenizers` 0.23) stops encoding each text, at a word boundary, once it
  // holds max_length tokens, and only then compares lengths; so "the longer" below means the longer of
  // those cut-off lengths, which decides who gets the odd token when both texts are long.
  if (options_.max_length < 3)
    throw TokenizerError("a pair needs max_length of at least 3 (for [CLS] a [SEP] b [SEP]), got " +
                         std::to_string(options_.max_length));
  const size_t cutoff = static_cast<size_t>(options_.max_length);
  auto first = piece_ids(a, cutoff), second = piece_ids(b, cutoff);
  const size_t budget = static_cast<size_t>(options_.max_length - 3);
  if (first.size() + second.size() > budget) {
    const bool swap = first.size() > second.size();
    size_t n1 = swap ? second.size() : first.size();  // the shorter
    size_t n2 = n1 > budget ? n1 : std::max(n1, budget - n1);
    if (n1 + n2 > budget) {
      n1 = budget / 2;
      n2 = n1 + budget % 2;
    }
    if (swap) std::swap(n1, n2);
    first.resize(std::min(first.size(), n1));
    second.resize(std::min(second.size(), n2));
  }
  Encoding e;
  e.ids.push_back(vocab().cls_id());
  e.ids.insert(e.ids.end(), first.begin(), first.end());
  e.ids.push_back(vocab().sep_id());
  e.type_ids.assign(e.ids.size(), 0);
  e.ids.insert(e.ids.end(), second.begin(), second.end());
  e.ids.push_back(vocab().sep_id());
  e.type_ids.resize(e.ids.size(), 1);
  return e;
}

model::TokenBatch BertTokenizer::pad(std::span<const Encoding> encodings, int32_t pad_id) {
  model::TokenBatch batch;
  for (const auto& e : encodings) batch.tokens = std::max(batch.tokens, e.length());
  const size_t t = static_cast<size_t>(batch.tokens);
  batch.input_ids.assign(encodings.size() * t, pad_id);
  batch.token_type_ids.assign(encodings.size() * t, 0);
  for (size_t b = 0; b < encodings.size(); ++b) {
    std::copy(encodings[b].ids.begin(), encodings[b].ids.end(), batch.input_ids.begin() + b * t);
    std::copy(encodings[b].type_ids.begin(), encodings[b].type_ids.end(),
              batch.token_type_ids.begin() + b * t);
    batch.lengths.push_back(encodings[b].length());
  }
  return batch;
}

model::TokenBatch BertTokenizer::encode_batch(std::span<const std::string> texts) const {
  std::vector<Encoding> encodings;
  encodings.reserve(texts.size());
  for (const auto& t : texts) encodings.push_back(encode(t));
  return pad(encodings, vocab().pad_id());
}

model::TokenBatch BertTokenizer::encode_pair_batch(
    std::span<const std::pair<std::string, std::string>> pairs) const {
  std::vector<Encoding> encodings;
  encodings.reserve(pairs.size());
  for (const auto& [a, b] : pairs) encodings.push_back(encode_pair(a, b));
  return pad(encodings, vocab().pad_id());
}

std::vector<std::string> BertTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> out;
  for (int32_t id : piece_ids(text, std::numeric_limits<size_t>::max())) out.push_back(vocab().token(id));
  return out;
}

}  // namespace ee::text
