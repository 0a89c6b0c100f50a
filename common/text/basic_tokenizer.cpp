#include "common/text/basic_tokenizer.hpp"

namespace ee::text {
namespace {

// A word separator in the raw text. Whitespace that is also a control character (U+000B, U+000C, U+0085)
// is removed by HF's clean-up before it splits on whitespace, so it joins its neighbours instead.
bool separates_words(char32_t c) {
  return is_whitespace(c) && !is_control(c);
}

bool removed_by_cleanup(char32_t c) {
  return c == 0 || c == 0xFFFD || is_control(c);
}

}  // namespace

CodePoints BasicTokenizer::normalize_chunk(const CodePoints& chunk) const {
  CodePoints out;
  out.reserve(chunk.size());
  for (char32_t c : chunk) {
    if (removed_by_cleanup(c)) continue;
    if (options_.tokenize_chinese_chars && is_cjk_ideograph(c)) {
      out.push_back(' ');
      out.push_back(c);
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  if (options_.strips_accents()) {
    CodePoints decomposed = nfd(out);
    out.clear();
    for (char32_t c : decomposed)
      if (!is_nonspacing_mark(c)) out.push_back(c);
  }
  if (options_.lowercase) out = lowercase(out);
  return out;
}

void BasicTokenizer::for_each_word(std::string_view text,
                                   const std::function<bool(const CodePoints&)>& on_word) const {
  const CodePoints cps = decode_utf8(text);
  CodePoints chunk, word;
  // Emits the pending word; false when the caller wants no more.
  auto flush = [&]() {
    if (word.empty()) return true;
    const bool more = on_word(word);
    word.clear();
    return more;
  };
  size_t i = 0;
  while (i < cps.size()) {
    while (i < cps.size() && separates_words(cps[i])) ++i;
    chunk.clear();
    while (i < cps.size() && !separates_words(cps[i])) chunk.push_back(cps[i++]);
    for (char32_t c : normalize_chunk(chunk)) {
      if (c == ' ') {  // inserted around CJK ideographs
        if (!flush()) return;
      } else if (is_punctuation(c)) {
        if (!flush()) return;
        word.push_back(c);
        if (!flush()) return;
      } else {
        word.push_back(c);
      }
    }
    if (!flush()) return;
  }
}

std::vector<std::string> BasicTokenizer::words(std::string_view text) const {
  std::vector<std::string> out;
  for_each_word(text, [&](const CodePoints& w) {
    out.push_back(encode_utf8(w));
    return true;
  });
  return out;
}

}  // namespace ee::text
