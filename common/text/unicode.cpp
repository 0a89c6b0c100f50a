#include "common/text/unicode.hpp"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <stdexcept>
#include <string>

namespace ee::text {
namespace {

constexpr char32_t kReplacement = 0xFFFD;

// Length of the UTF-8 sequence a lead byte announces; 0 for a byte that cannot start one.
int sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;  // continuation byte, overlong 2-byte lead (C0, C1) or past U+10FFFF (F5..FF)
}

// Decodes one code point at s[i]; returns the bytes consumed (>= 1) and sets ok=false on ill-formed input.
size_t decode_one(std::string_view s, size_t i, char32_t& out, bool& ok) {
  const auto lead = static_cast<unsigned char>(s[i]);
  const int n = sequence_length(lead);
  ok = false;
  out = kReplacement;
  if (n == 0) return 1;
  if (n == 1) {
    out = lead;
    ok = true;
    return 1;
  }
  char32_t c = lead & (0xFF >> (n + 1));
  size_t k = 1;
  for (; k < static_cast<size_t>(n); ++k) {
    if (i + k >= s.size()) return k;
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return k;
    c = (c << 6) | (b & 0x3F);
  }
  const bool overlong = (n == 3 && c < 0x800) || (n == 4 && c < 0x10000);
  const bool surrogate = c >= 0xD800 && c <= 0xDFFF;
  if (overlong || surrogate || c > 0x10FFFF) return k;
  out = c;
  ok = true;
  return k;
}

std::u16string to_utf16(const CodePoints& s) {
  std::u16string out;
  out.reserve(s.size());
  for (char32_t c : s) {
    if (c < 0x10000) {
      out.push_back(static_cast<char16_t>(c));
    } else {
      c -= 0x10000;
      out.push_back(static_cast<char16_t>(0xD800 + (c >> 10)));
      out.push_back(static_cast<char16_t>(0xDC00 + (c & 0x3FF)));
    }
  }
  return out;
}

void append_utf16(const char16_t* s, int32_t n, CodePoints& out) {
  for (int32_t i = 0; i < n; ++i) {
    const char32_t u = s[i];
    if (u >= 0xD800 && u <= 0xDBFF && i + 1 < n && s[i + 1] >= 0xDC00 && s[i + 1] <= 0xDFFF) {
      out.push_back(0x10000 + ((u - 0xD800) << 10) + (static_cast<char32_t>(s[i + 1]) - 0xDC00));
      ++i;
    } else {
      out.push_back(u);
    }
  }
}

void check(UErrorCode status, const char* what) {
  // Only reachable if ICU's data library is missing or memory runs out: not an input problem.
  if (U_FAILURE(status))
    throw std::runtime_error(std::string("ICU ") + what + " failed: " + u_errorName(status));
}

bool all_ascii(const CodePoints& s) {
  for (char32_t c : s)
    if (c >= 0x80) return false;
  return true;
}

}  // namespace

CodePoints decode_utf8(std::string_view s) {
  CodePoints out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    char32_t c;
    bool ok;
    i += decode_one(s, i, c, ok);
    out.push_back(c);
  }
  return out;
}

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    char32_t c;
    bool ok;
    i += decode_one(s, i, c, ok);
    if (!ok) return false;
  }
  return true;
}

void append_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string encode_utf8(const CodePoints& cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t c : cps) append_utf8(c, out);
  return out;
}

bool is_whitespace(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r' || c == ' ') return true;
  return c >= 0x80 && u_isUWhiteSpace(static_cast<UChar32>(c));
}

bool is_control(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  switch (u_charType(static_cast<UChar32>(c))) {
    case U_CONTROL_CHAR:      // Cc
    case U_FORMAT_CHAR:       // Cf
    case U_PRIVATE_USE_CHAR:  // Co
      return true;
    default:
      return false;
  }
}

bool is_punctuation(char32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
    return true;
  return c >= 0x80 && u_ispunct(static_cast<UChar32>(c));
}

bool is_cjk_ideograph(char32_t c) {
  // HuggingFace's table (normalizers/bert.rs). Google's BERT has 0x2B820-0x2CEAF where HuggingFace has
  // 0x2B920-0x2CEAF: 0x2B820-0x2B91F (CJK Extension E's first 256) is not spaced out here, as in HF.
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool is_nonspacing_mark(char32_t c) {
  return c >= 0x300 && u_charType(static_cast<UChar32>(c)) == U_NON_SPACING_MARK;
}

CodePoints nfd(const CodePoints& s) {
  if (all_ascii(s)) return s;  // ASCII is its own NFD; mail is mostly ASCII
  UErrorCode status = U_ZERO_ERROR;
  const UNormalizer2* norm = unorm2_getNFDInstance(&status);
  check(status, "NFD instance");
  const std::u16string in = to_utf16(s);
  // UAX #15 bounds NFD's growth in UTF-16 at 3x, so one pass normally suffices; on overflow ICU reports the
  // size it needs and the second pass uses it.
  std::u16string out(in.size() * 3 + 4, u'\0');
  int32_t n = 0;
  for (int pass = 0; pass < 2; ++pass) {
    status = U_ZERO_ERROR;
    n = unorm2_normalize(norm, reinterpret_cast<const UChar*>(in.data()), static_cast<int32_t>(in.size()),
                         reinterpret_cast<UChar*>(out.data()), static_cast<int32_t>(out.size()), &status);
    if (status != U_BUFFER_OVERFLOW_ERROR) break;
    out.assign(static_cast<size_t>(n), u'\0');
  }
  check(status, "NFD normalization");
  CodePoints result;
  result.reserve(static_cast<size_t>(n));
  append_utf16(out.data(), n, result);
  return result;
}

CodePoints lowercase(const CodePoints& s) {
  CodePoints out;
  out.reserve(s.size());
  for (char32_t c : s) {
    if (c < 0x80) {
      out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
      continue;
    }
    // One code point at a time, so ICU sees no casing context (HF lowercases char by char).
    const std::u16string one = to_utf16(CodePoints(1, c));
    char16_t buf[8];
    UErrorCode status = U_ZERO_ERROR;
    const int32_t n =
        u_strToLower(reinterpret_cast<UChar*>(buf), 8, reinterpret_cast<const UChar*>(one.data()),
                     static_cast<int32_t>(one.size()), "", &status);
    check(status, "lower-casing");
    append_utf16(buf, n, out);
  }
  return out;
}

}  // namespace ee::text
