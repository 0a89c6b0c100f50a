// WordPiece tokenizer (common/text): hand-checked cases on a small vocabulary, vocabulary validation, and
// ids that HuggingFace's tokenizer produced (tests/data/text/hf_golden.json, made by make_hf_golden.js).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/text/bert_tokenizer.hpp"
#include "common/text/unicode.hpp"
#include "common/text/vocab.hpp"

namespace ee::text {
namespace {

using Strings = std::vector<std::string>;

// id = index. Small enough to check every expectation by hand.
const Strings kTokens = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",                                          // 0-4
    "hello", "world", "un",    "##aff", "##able",                                          // 5-9
    "!",     ",",     ".",     "[",     "]",      "cl",   "##s", "se", "##p",              // 10-18
    "cafe",  "naive", "the",   "spam",  "##ing",  "free", "$",   "#",  "##1", "1", "win",  // 19-29
    "中",    "国",    "é",     "ß",     "😀",      "a",    "##a", "i",  "·",   "¿", "##é",  // 30-40
};

Vocab small_vocab() {
  return Vocab::from_tokens(kTokens, "test-vocab");
}

BertTokenizer tokenizer(int max_length = 32, bool lowercase = true) {
  TokenizerOptions o;
  o.max_length = max_length;
  o.normalizer.lowercase = lowercase;
  return BertTokenizer(small_vocab(), o);
}

std::vector<int32_t> ids(std::initializer_list<int32_t> v) {
  return v;
}

// --- Unicode primitives -------------------------------------------------------------------------------

TEST(Unicode, DecodesUtf8AndReplacesIllFormedBytes) {
  EXPECT_EQ(decode_utf8("a\xC3\xA9"), (CodePoints{U'a', 0xE9}));
  EXPECT_EQ(decode_utf8("\xF0\x9F\x98\x80"), CodePoints{0x1F600});
  EXPECT_EQ(decode_utf8("\xFF"), CodePoints{0xFFFD});
  EXPECT_EQ(decode_utf8("\xC0\xAF"), (CodePoints{0xFFFD, 0xFFFD}));  // overlong '/'
  EXPECT_EQ(decode_utf8("\xED\xA0\x80")[0], 0xFFFDu);                // encoded surrogate
  EXPECT_EQ(decode_utf8("\xE4\xB8"), CodePoints{0xFFFD});            // truncated
  EXPECT_FALSE(is_valid_utf8("ok\xE4\xB8"));
  EXPECT_TRUE(is_valid_utf8("ok \xE4\xB8\xAD"));
  EXPECT_EQ(encode_utf8(decode_utf8("h\xC3\xA9 \xF0\x9F\x98\x80")), "h\xC3\xA9 \xF0\x9F\x98\x80");
}

TEST(Unicode, ClassifiesLikeBert) {
  EXPECT_TRUE(is_punctuation(U'$'));  // ASCII symbol, punctuation to BERT
  EXPECT_TRUE(is_punctuation(U'`'));
  EXPECT_TRUE(is_punctuation(0x00BF));   // ¿ Po
  EXPECT_TRUE(is_punctuation(0x2014));   // em dash Pd
  EXPECT_TRUE(is_punctuation(0x300C));   // 「 Ps
  EXPECT_FALSE(is_punctuation(0x20AC));  // € is Sc, not ASCII: stays in its word
  EXPECT_FALSE(is_punctuation(U'a'));
  EXPECT_TRUE(is_whitespace(0x3000));  // ideographic space
  EXPECT_TRUE(is_whitespace(0x00A0));
  EXPECT_FALSE(is_whitespace(0x200B));  // zero-width space is Cf
  EXPECT_TRUE(is_control(0x200B));
  EXPECT_TRUE(is_control(0xE000));  // private use: control to HF, not to Google's BERT
  EXPECT_TRUE(is_control(0x0007));
  EXPECT_FALSE(is_control(U'\n'));
  EXPECT_TRUE(is_cjk_ideograph(0x4E2D));
  EXPECT_FALSE(is_cjk_ideograph(0x3042));  // Hiragana is not spaced out
  EXPECT_EQ(nfd(CodePoints{0xE9}), (CodePoints{U'e', 0x301}));
  EXPECT_EQ(lowercase(CodePoints{0x130}), (CodePoints{U'i', 0x307}));        // İ: full mapping
  EXPECT_EQ(lowercase(CodePoints{0x3A3, U'A'}), (CodePoints{0x3C3, U'a'}));  // Σ: no final-sigma context
}

// --- normalisation and pre-tokenisation ----------------------------------------------------------------

TEST(BasicTokenizer, SplitsWhitespaceAndPunctuation) {
  BasicTokenizer t;
  EXPECT_EQ(t.words("  Hello,\tWORLD!!  "), (Strings{"hello", ",", "world", "!", "!"}));
  EXPECT_EQ(t.words("a$b#c"), (Strings{"a", "$", "b", "#", "c"}));
  EXPECT_EQ(t.words(""), Strings{});
  EXPECT_EQ(t.words(" \n\t\r "), Strings{});
}

TEST(BasicTokenizer, StripsAccentsAndLowercases) {
  BasicTokenizer t;
  EXPECT_EQ(t.words("Café NAÏVE"), (Strings{"cafe", "naive"}));
  // Combining acute (U+0301) written separately is removed too.
  EXPECT_EQ(t.words("Cafe\xCC\x81"), Strings{"cafe"});
  BasicTokenizer cased(NormalizerOptions{.lowercase = false, .strip_accents = {}});
  EXPECT_EQ(cased.words("Café"), Strings{"Café"});  // cased BERT keeps accents unless told otherwise
  BasicTokenizer lower_keep(NormalizerOptions{.lowercase = true, .strip_accents = false});
  EXPECT_EQ(lower_keep.words("CAFÉ"), Strings{"café"});
}

TEST(BasicTokenizer, SpacesOutCjkIdeographs) {
  BasicTokenizer t;
  EXPECT_EQ(t.words("ab中国cd"), (Strings{"ab", "中", "国", "cd"}));
  // Kana are not ideographs, so they stay one word; が loses its voicing mark (NFD: か + U+3099, Mn), as in
  // uncased BERT.
  EXPECT_EQ(t.words("ひらがな"), Strings{"ひらかな"});
  BasicTokenizer off(
      NormalizerOptions{.lowercase = true, .strip_accents = {}, .tokenize_chinese_chars = false});
  EXPECT_EQ(off.words("ab中国cd"), Strings{"ab中国cd"});
}

TEST(BasicTokenizer, DropsControlCharactersWithoutSplitting) {
  BasicTokenizer t;
  EXPECT_EQ(t.words("he\x01llo\x7F"), Strings{"hello"});
  EXPECT_EQ(t.words(std::string("he\0llo", 6)), Strings{"hello"});
  EXPECT_EQ(t.words("zero\xE2\x80\x8Bwidth"), Strings{"zerowidth"});  // U+200B is Cf
  EXPECT_EQ(t.words("a\x0B"
                    "b"),
            Strings{"ab"});  // vertical tab: control first, so it joins (as in HF)
  EXPECT_EQ(t.words("a\xC2\xA0"
                    "b"),
            (Strings{"a", "b"}));                         // no-break space separates
  EXPECT_EQ(t.words("bad\xFFutf8"), Strings{"badutf8"});  // ill-formed byte -> U+FFFD -> removed
}

TEST(BasicTokenizer, StopsWhenTheCallerHasEnough) {
  BasicTokenizer t;
  int seen = 0;
  t.for_each_word("one two three four", [&](const CodePoints&) { return ++seen < 2; });
  EXPECT_EQ(seen, 2);
}

// --- WordPiece -----------------------------------------------------------------------------------------

TEST(WordPiece, GreedyLongestMatchFirst) {
  const auto t = tokenizer();
  EXPECT_EQ(t.tokenize("unaffable"), (Strings{"un", "##aff", "##able"}));
  EXPECT_EQ(t.tokenize("spams"), (Strings{"spam", "##s"}));
  EXPECT_EQ(t.tokenize("aaa"), (Strings{"a", "##a", "##a"}));
}

TEST(WordPiece, WholeWordBecomesUnkWhenAPartDoesNotMatch) {
  const auto t = tokenizer();
  EXPECT_EQ(t.tokenize("unaffablex hello"), (Strings{"[UNK]", "hello"}));
  EXPECT_EQ(t.tokenize("#1"), (Strings{"#", "1"}));  // '#' is punctuation, so "##1" is never matched
}

TEST(WordPiece, WordsLongerThanTheLimitAreUnk) {
  const auto t = tokenizer();
  EXPECT_EQ(t.tokenize(std::string(100, 'a')).size(), 100u);       // 100 chars: still split
  EXPECT_EQ(t.tokenize(std::string(101, 'a')), Strings{"[UNK]"});  // HF's limit (Google's is 200)
  // The limit counts code points, not bytes: 100 two-byte characters are still split.
  std::string accents;
  for (int i = 0; i < 100; ++i) accents += "é";
  EXPECT_EQ(tokenizer(32, false).tokenize(accents).size(), 100u);
  EXPECT_EQ(tokenizer(32, false).tokenize(accents + "é"), Strings{"[UNK]"});
}

TEST(WordPiece, UnicodeWords) {
  const auto t = tokenizer();
  EXPECT_EQ(t.tokenize("中国!"), (Strings{"中", "国", "!"}));
  EXPECT_EQ(t.tokenize("😀win"), Strings{"[UNK]"});  // emoji is neither punctuation nor CJK: one word
  EXPECT_EQ(t.tokenize("😀 win"), (Strings{"😀", "win"}));
  EXPECT_EQ(t.tokenize("¿i·"), (Strings{"¿", "i", "·"}));  // ¿ and · are Po
  EXPECT_EQ(tokenizer(32, false).tokenize("é"), Strings{"é"});
  EXPECT_EQ(t.tokenize("É"), Strings{"[UNK]"});  // lower-cased and stripped to "e", not in the vocab
}

// --- framing, truncation, batches ----------------------------------------------------------------------

TEST(BertTokenizer, FramesWithClsAndSep) {
  const auto e = tokenizer().encode("Hello, world!");
  EXPECT_EQ(e.ids, ids({2, 5, 11, 6, 10, 3}));
  EXPECT_EQ(e.type_ids, std::vector<int32_t>(6, 0));
}

TEST(BertTokenizer, EmptyInputIsClsSep) {
  EXPECT_EQ(tokenizer().encode("").ids, ids({2, 3}));
  EXPECT_EQ(tokenizer().encode("\x01\x02 ").ids, ids({2, 3}));
}

TEST(BertTokenizer, LiteralSpecialTokensAreOrdinaryText) {
  EXPECT_EQ(tokenizer().encode("[CLS] [SEP]").ids, ids({2, 13, 15, 16, 14, 13, 17, 18, 14, 3}));
}

TEST(BertTokenizer, TruncatesToMaxLength) {
  const auto e = tokenizer(5).encode("hello world hello world hello");
  EXPECT_EQ(e.ids, ids({2, 5, 6, 5, 3}));
}

TEST(BertTokenizer, PairsHaveTokenTypes) {
  const auto e = tokenizer().encode_pair("hello", "world !");
  EXPECT_EQ(e.ids, ids({2, 5, 3, 6, 10, 3}));
  EXPECT_EQ(e.type_ids, ids({0, 0, 0, 1, 1, 1}));
}

TEST(BertTokenizer, PairTruncationIsLongestFirst) {
  // max_length 9 -> 6 tokens for the texts.
  // Shorter side fits in half: kept whole, the longer gets the rest.
  auto e = tokenizer(9).encode_pair("hello", "win win win win win win win");
  EXPECT_EQ(e.ids, ids({2, 5, 3, 29, 29, 29, 29, 29, 3}));
  // Both longer than half: 3 + 3.
  e = tokenizer(9).encode_pair("hello hello hello hello", "win win win win win");
  EXPECT_EQ(e.ids, ids({2, 5, 5, 5, 3, 29, 29, 29, 3}));
  // Odd budget (max_length 8 -> 5): the longer text gets the extra token, whichever side it is on.
  e = tokenizer(8).encode_pair("hello hello hello hello hello", "win win win win");
  EXPECT_EQ(e.ids, ids({2, 5, 5, 5, 3, 29, 29, 3}));
  e = tokenizer(8).encode_pair("hello hello hello hello", "win win win win win");
  EXPECT_EQ(e.ids, ids({2, 5, 5, 3, 29, 29, 29, 3}));
  // Equal lengths: the second text gets the extra token (no swap in HF's rule).
  e = tokenizer(8).encode_pair("hello hello hello hello", "win win win win");
  EXPECT_EQ(e.ids, ids({2, 5, 5, 3, 29, 29, 29, 3}));
  // HF 0.23 compares lengths after cutting each text off at max_length (8) tokens: 20 and 10 words both
  // count as 8, so the second text gets the extra token although the first is longer.
  std::string twenty, ten;
  for (int i = 0; i < 20; ++i) twenty += "hello ";
  for (int i = 0; i < 10; ++i) ten += "win ";
  e = tokenizer(8).encode_pair(twenty, ten);
  EXPECT_EQ(e.ids, ids({2, 5, 5, 3, 29, 29, 29, 3}));
}

TEST(BertTokenizer, BatchesArePaddedWithLengths) {
  const std::vector<std::string> texts = {"hello world", "", "win"};
  const auto b = tokenizer().encode_batch(texts);
  ASSERT_EQ(b.batch(), 3);
  EXPECT_EQ(b.tokens, 4);
  EXPECT_EQ(b.lengths, (std::vector<int>{4, 2, 3}));
  EXPECT_EQ(b.input_ids, ids({2, 5, 6, 3, 2, 3, 0, 0, 2, 29, 3, 0}));
  EXPECT_EQ(b.token_type_ids, std::vector<int32_t>(12, 0));
  const std::vector<std::pair<std::string, std::string>> pairs = {{"hello", "world"}, {"win", ""}};
  const auto p = tokenizer().encode_pair_batch(pairs);
  EXPECT_EQ(p.tokens, 5);
  EXPECT_EQ(p.input_ids, ids({2, 5, 3, 6, 3, 2, 29, 3, 3, 0}));
  EXPECT_EQ(p.token_type_ids, ids({0, 0, 0, 1, 1, 0, 0, 0, 1, 0}));
}

TEST(BertTokenizer, VeryLongInputStaysBounded) {
  std::string mail;
  for (int i = 0; i < 200000; ++i) mail += "hello ";
  const auto e = tokenizer(128).encode(mail);
  EXPECT_EQ(e.length(), 128);
  EXPECT_EQ(e.ids.back(), 3);
}

// HF gives [CLS] [SEP] for a single text at max_length 2; only a pair needs a third token.
TEST(BertTokenizer, MaxLengthTwoGivesClsSepAndPairsNeedThree) {
  const BertTokenizer two = tokenizer(2);
  EXPECT_EQ(two.encode("hello world").ids, ids({2, 3}));
  EXPECT_EQ(two.encode("").ids, ids({2, 3}));
  try {
    two.encode_pair("hello", "world");
    FAIL() << "a pair encoded at max_length 2";
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("pair needs max_length of at least 3"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(tokenizer(3).encode_pair("hello", "world").ids, ids({2, 3, 3}));
}

TEST(BertTokenizer, RejectsMaxLengthBelowTwo) {
  for (int max_length : {1, 0, -5}) {
    TokenizerOptions o;
    o.max_length = max_length;
    try {
      BertTokenizer(small_vocab(), o);
      ADD_FAILURE() << "max_length " << max_length << " accepted";
    } catch (const TokenizerError& e) {
      EXPECT_NE(std::string(e.what()).find("max_length must be at least 2 (for [CLS] and [SEP]), got " +
                                           std::to_string(max_length)),
                std::string::npos)
          << e.what();
    }
  }
}

// --- vocabulary validation -----------------------------------------------------------------------------

std::string vocab_error(const std::string& text) {
  std::istringstream in(text);
  try {
    Vocab::parse(in, "v.txt");
  } catch (const TokenizerError& e) {
    return e.what();
  }
  return "";
}

TEST(Vocab, ParsesLinesAsIds) {
  std::istringstream in("[PAD]\n[UNK]\r\n[CLS]  \n[SEP]\nhello\n");
  const auto v = Vocab::parse(in, "v.txt");
  EXPECT_EQ(v.size(), 5);
  EXPECT_EQ(v.cls_id(), 2);
  EXPECT_EQ(v.unk_id(), 1);  // CRLF and trailing blanks trimmed, as HF does
  EXPECT_EQ(v.find("hello"), 4);
  EXPECT_EQ(v.token(4), "hello");
  EXPECT_THROW(v.token(5), TokenizerError);
}

TEST(Vocab, RejectsMalformedFilesNamingTheLine) {
  EXPECT_EQ(vocab_error(""), "v.txt: vocabulary is empty");
  EXPECT_EQ(vocab_error("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhi\nhi\n"),
            "v.txt:6: duplicate token 'hi' (first on line 5)");
  EXPECT_EQ(vocab_error("[PAD]\n[UNK]\n\n[CLS]\n[SEP]\n"), "v.txt:3: empty token (token id 2)");
  EXPECT_EQ(vocab_error("[PAD]\n[UNK]\n[SEP]\n"), "v.txt: vocabulary has no [CLS] token");
  EXPECT_EQ(vocab_error("[UNK]\n[CLS]\n[SEP]\n"), "v.txt: vocabulary has no [PAD] token");
  EXPECT_EQ(vocab_error("[PAD]\n[CLS]\n[SEP]\n"), "v.txt: vocabulary has no [UNK] token");
  EXPECT_EQ(vocab_error("[PAD]\n[UNK]\n[CLS]\n[SEP]\nbad\xFF\n"), "v.txt:5: not valid UTF-8");
}

TEST(Vocab, MissingFileIsNamed) {
  try {
    Vocab::load("/nonexistent/vocab.txt");
    FAIL() << "no exception";
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/vocab.txt"), std::string::npos);
  }
}

// --- HuggingFace cross-check ---------------------------------------------------------------------------

// Every case in the golden file: vocabulary, options, text(s) and the ids and type ids HF's tokenizer gave.
TEST(HuggingFaceGolden, MatchesTheRustTokenizer) {
  const std::string dir = std::string(EE_SOURCE_DIR) + "/tests/data/text/";
  std::ifstream in(dir + "hf_golden.json");
  ASSERT_TRUE(in) << "missing " << dir << "hf_golden.json";
  const auto golden = nlohmann::json::parse(in);
  int checked = 0;
  for (const auto& group : golden["groups"]) {
    TokenizerOptions o;
    o.normalizer.lowercase = group["lowercase"].get<bool>();
    o.max_length = group["max_length"].get<int>();
    const BertTokenizer t(Vocab::load(std::string(EE_SOURCE_DIR) + "/" + group["vocab"].get<std::string>()),
                          o);
    for (const auto& c : group["cases"]) {
      const auto text = c["text"].get<std::string>();
      const Encoding e =
          c.contains("pair") ? t.encode_pair(text, c["pair"].get<std::string>()) : t.encode(text);
      EXPECT_EQ(e.ids, c["ids"].get<std::vector<int32_t>>()) << "text: " << c["text"].dump();
      EXPECT_EQ(e.type_ids, c["type_ids"].get<std::vector<int32_t>>()) << "text: " << c["text"].dump();
      ++checked;
    }
  }
  EXPECT_GT(checked, 50);
}

}  // namespace
}  // namespace ee::text
