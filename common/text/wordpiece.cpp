#include "common/text/wordpiece.hpp"

#include <string>

namespace ee::text {

WordPiece::WordPiece(Vocab vocab, int max_word_chars)
    : vocab_(std::move(vocab)), max_word_chars_(max_word_chars) {
  if (max_word_chars_ < 1)
    throw TokenizerError("WordPiece: max_word_chars must be positive, got " +
                         std::to_string(max_word_chars_));
}

void WordPiece::tokenize(const CodePoints& word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (word.size() > static_cast<size_t>(max_word_chars_)) {
    out.push_back(vocab_.unk_id());
    return;
  }
  // UTF-8 of the word and the byte offset of each code point, so candidates are substrings.
  std::string utf8;
  std::vector<size_t> offset;
  offset.reserve(word.size() + 1);
  for (char32_t c : word) {
    offset.push_back(utf8.size());
    append_utf8(c, utf8);
  }
  offset.push_back(utf8.size());

  const size_t first = out.size();
  std::string candidate;
  for (size_t start = 0; start < word.size();) {
    size_t end = word.size();
    int32_t found = -1;
    for (; end > start; --end) {
      candidate.assign(start > 0 ? "##" : "");
      candidate.append(utf8, offset[start], offset[end] - offset[start]);
      if (const auto id = vocab_.find(candidate)) {
        found = *id;
        break;
      }
    }
    if (found < 0) {
      out.resize(first);
      out.push_back(vocab_.unk_id());
      return;
    }
    out.push_back(found);
    start = end;
  }
}

}  // namespace ee::text
