#pragma once
// BERT's vocab.txt: one token per line, the line number (0-based) is the token id.
#include <cstdint>
#include <filesystem>
#include <istream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ee::text {

// Any problem with a vocabulary or tokenizer configuration; the message names the file and line at fault.
class TokenizerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Vocab {
 public:
  // Reads vocab.txt. Like HuggingFace, trailing whitespace (and a CR of CRLF files) is trimmed from each
  // line. Unlike HuggingFace, which silently lets a later duplicate overwrite an earlier id, a duplicate
  // token, an empty line, a line that is not UTF-8, an empty file or a missing [CLS]/[SEP]/[UNK]/[PAD] is
  // rejected: each would make ids disagree with the checkpoint the vocabulary belongs to.
  static Vocab load(const std::filesystem::path& path);
  // `source` names the input in error messages.
  static Vocab parse(std::istream& in, const std::string& source);
  static Vocab from_tokens(std::vector<std::string> tokens, const std::string& source = "vocab");

  std::optional<int32_t> find(std::string_view token) const;
  const std::string& token(int32_t id) const;  // throws TokenizerError for an id out of range
  int32_t size() const { return static_cast<int32_t>(tokens_.size()); }

  int32_t cls_id() const { return cls_; }
  int32_t sep_id() const { return sep_; }
  int32_t unk_id() const { return unk_; }
  int32_t pad_id() const { return pad_; }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> ids_;
  int32_t cls_ = -1, sep_ = -1, unk_ = -1, pad_ = -1;
};

}  // namespace ee::text
