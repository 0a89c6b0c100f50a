#include "common/text/vocab.hpp"

#include <fstream>
#include <limits>

#include "common/text/unicode.hpp"

namespace ee::text {
namespace {

// HF's WordPiece::read_file keeps `line.trim_end()`: Unicode White_Space at the end of a line goes.
std::string trim_end(std::string line) {
  CodePoints cps = decode_utf8(line);
  while (!cps.empty() && is_whitespace(cps.back())) cps.pop_back();
  return encode_utf8(cps);
}

}  // namespace

Vocab Vocab::load(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TokenizerError("cannot open vocabulary " + path.string());
  return parse(in, path.string());
}

Vocab Vocab::parse(std::istream& in, const std::string& source) {
  std::vector<std::string> tokens;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!is_valid_utf8(line))
      throw TokenizerError(source + ":" + std::to_string(line_no) + ": not valid UTF-8");
    tokens.push_back(trim_end(std::move(line)));
  }
  if (in.bad()) throw TokenizerError(source + ": read error");
  return from_tokens(std::move(tokens), source);
}

Vocab Vocab::from_tokens(std::vector<std::string> tokens, const std::string& source) {
  if (tokens.empty()) throw TokenizerError(source + ": vocabulary is empty");
  if (tokens.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    throw TokenizerError(source + ": " + std::to_string(tokens.size()) + " tokens do not fit 32-bit ids");
  Vocab v;
  v.ids_.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string where = source + ":" + std::to_string(i + 1);  // 1-based line numbers for people
    if (tokens[i].empty()) throw TokenizerError(where + ": empty token (token id " + std::to_string(i) + ")");
    const auto [it, inserted] = v.ids_.emplace(tokens[i], static_cast<int32_t>(i));
    if (!inserted)
      throw TokenizerError(where + ": duplicate token '" + tokens[i] + "' (first on line " +
                           std::to_string(it->second + 1) + ")");
  }
  v.tokens_ = std::move(tokens);
  auto special = [&](const char* name) {
    const auto id = v.find(name);
    if (!id) throw TokenizerError(source + ": vocabulary has no " + name + " token");
    return *id;
  };
  v.cls_ = special("[CLS]");
  v.sep_ = special("[SEP]");
  v.unk_ = special("[UNK]");
  v.pad_ = special("[PAD]");
  return v;
}

std::optional<int32_t> Vocab::find(std::string_view token) const {
  const auto it = ids_.find(token);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

const std::string& Vocab::token(int32_t id) const {
  if (id < 0 || id >= size())
    throw TokenizerError("token id " + std::to_string(id) + " is outside the vocabulary (size " +
                         std::to_string(size()) + ")");
  return tokens_[static_cast<size_t>(id)];
}

}  // namespace ee::text
