#pragma once
// WordPiece: greedy longest-match-first split of one word into vocabulary entries, "##" marking a piece
// that continues a word.
#include <cstdint>
#include <vector>

#include "common/text/unicode.hpp"
#include "common/text/vocab.hpp"

namespace ee::text {

class WordPiece {
 public:
  // HuggingFace's limit: words longer than 100 code points become [UNK] (Google's BERT uses 200).
  static constexpr int kDefaultMaxWordChars = 100;

  explicit WordPiece(Vocab vocab, int max_word_chars = kDefaultMaxWordChars);

  // Appends the ids of `word`'s pieces to `out`; a word that is too long, or has a part no vocabulary
  // entry matches, becomes a single [UNK] (the whole word, not just the unmatched part, as in BERT).
  void tokenize(const CodePoints& word, std::vector<int32_t>& out) const;

  const Vocab& vocab() const { return vocab_; }
  int max_word_chars() const { return max_word_chars_; }

 private:
  Vocab vocab_;
  int max_word_chars_;
};

}  // namespace ee::text
