#pragma once
// BERT's text normalisation and pre-tokenisation (HuggingFace's BertNormalizer + BertPreTokenizer): raw
// UTF-8 in, words out, each word to be split further by WordPiece.
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/text/unicode.hpp"

namespace ee::text {

struct NormalizerOptions {
  bool lowercase = true;
  // Unset: follows `lowercase`, as HuggingFace's BertNormalizer does.
  std::optional<bool> strip_accents;
  bool tokenize_chinese_chars = true;

  bool strips_accents() const { return strip_accents.value_or(lowercase); }
};

class BasicTokenizer {
 public:
  explicit BasicTokenizer(NormalizerOptions options = {}) : options_(options) {}

  // Calls on_word(word) for each word in order, until on_word returns false. Steps, as in HuggingFace:
  // drop NUL, U+FFFD and control characters (ill-formed UTF-8 decodes to U+FFFD, so it vanishes too);
  // whitespace separates words; CJK ideographs become words of their own; accents are stripped (NFD, then
  // category Mn removed) and then text is lower-cased (HF's order; Google's BERT lower-cases first, which
  // differs only for characters whose lower-case form decomposes differently); every punctuation
  // character is a word of its own.
  //
  // Text is normalised one whitespace-separated chunk at a time. That gives the same words as normalising
  // it whole (every step is local to a chunk) and lets a caller stop early without normalising the rest
  // of a long mail.
  void for_each_word(std::string_view text, const std::function<bool(const CodePoints&)>& on_word) const;
  // Convenience for tests and tools: every word, UTF-8.
  std::vector<std::string> words(std::string_view text) const;

  const NormalizerOptions& options() const { return options_; }

 private:
  CodePoints normalize_chunk(const CodePoints& chunk) const;
  NormalizerOptions options_;
};

}  // namespace ee::text
