#pragma once
// BertTokenizer: text -> [CLS] tokens [SEP] (or [CLS] a [SEP] b [SEP] for pairs) ids, truncated to a
// maximum length and padded into a model::TokenBatch. Reference behaviour: HuggingFace's BERT fast
// tokenizer (Rust `tokenizers`), checked by tests/unit/text_test.cpp against ids it produced.
//
// One deliberate difference: a literal "[CLS]", "[SEP]", "[PAD]", "[MASK]" or "[UNK]" in the input is
// ordinary text ("[", "cl", "##s", "]"). HF matches such strings as special tokens, which would let an
// untrusted mail forge sequence structure.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/model/multi_exit_model.hpp"
#include "common/text/basic_tokenizer.hpp"
#include "common/text/vocab.hpp"
#include "common/text/wordpiece.hpp"

namespace ee::text {

struct TokenizerOptions {
  NormalizerOptions normalizer;
  // Tokens per sample including [CLS] and [SEP]; longer input is truncated. At least 2 (a single text
  // then gives [CLS] [SEP], as HF does); pairs need 3. HF's fast tokenizer does not refuse less: its
  // `max_length - added tokens` wraps (huggingface/tokenizers pull request #1859), so it does not truncate
  // at all; this tokenizer refuses such a max_length instead.
  int max_length = 512;
  int max_word_chars = WordPiece::kDefaultMaxWordChars;
};

// One tokenized sample, unpadded.
struct Encoding {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;  // 0 for [CLS] a [SEP], 1 for b [SEP]
  int length() const { return static_cast<int>(ids.size()); }
};

class BertTokenizer {
 public:
  BertTokenizer(Vocab vocab, TokenizerOptions options);

  // <dir>/vocab.txt plus, if present, <dir>/tokenizer_config.json (HF keys: do_lower_case, strip_accents,
  // tokenize_chinese_chars, model_max_length). max_length > 0 overrides model_max_length; the default
  // without either is 512.
  static BertTokenizer load(const std::filesystem::path& dir, int max_length = 0);
  // The tokenizer of a text model directory, checked against the model's config: vocab.txt must hold
  // exactly config.vocab_size tokens with [PAD] at pad_token_id, and max_length is capped at
  // max_position_embeddings. Throws TokenizerError naming the mismatch.
  static BertTokenizer for_model(const std::filesystem::path& dir, const model::Config& config);

  Encoding encode(std::string_view text) const;
  // HF's "longest_first" truncation for pairs, as the fast tokenizer does it: with M the length left
  // after the three special tokens, the shorter text is kept whole if it fits in M/2 (the longer gets
  // the rest); otherwise the shorter gets floor(M/2) and the longer ceil(M/2). (The slow Python
  // tokenizer removes one token at a time from the longer side and can end one token different.)
  // Lengths are compared as HF 0.23 does, after cutting each text off at max_length tokens.
  // Throws TokenizerError if max_length is below 3.
  Encoding encode_pair(std::string_view a, std::string_view b) const;

  // Encodes and pads to the longest sample with [PAD] (token type 0); lengths are the real tokens.
  model::TokenBatch encode_batch(std::span<const std::string> texts) const;
  model::TokenBatch encode_pair_batch(std::span<const std::pair<std::string, std::string>> pairs) const;
  static model::TokenBatch pad(std::span<const Encoding> encodings, int32_t pad_id);

  // WordPiece tokens of the text, without special tokens or truncation (for tests and tools).
  std::vector<std::string> tokenize(std::string_view text) const;

  const Vocab& vocab() const { return wordpiece_.vocab(); }
  const TokenizerOptions& options() const { return options_; }

 private:
  // Word-piece ids of `text`, stopping after the word that brings the count to `limit` (so the result
  // may be longer than `limit`; what lies past it would be truncated anyway).
  std::vector<int32_t> piece_ids(std::string_view text, size_t limit) const;

  TokenizerOptions options_;
  BasicTokenizer basic_;
  WordPiece wordpiece_;
};

}  // namespace ee::text
