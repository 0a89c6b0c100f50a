"""BERT WordPiece tokenization in Python, the same rules as common/text (C++), for training and export.

Contract with common/text/bert_tokenizer.cpp: both follow HuggingFace's BERT fast tokenizer (clean-up,
CJK spacing, NFD + Mn removal, per-character lower-casing, whitespace/punctuation split, greedy
longest-match WordPiece with "##", words over 100 characters -> [UNK], [CLS] a [SEP] framing, literal
"[CLS]" in text is ordinary text). The C++ side is checked against HF's ids (tests/data/text/); this side
is checked against the C++ one by tests/unit/text_model_test.cpp, which re-tokenizes the golden mails.
Unicode facts come from Python's unicodedata; Unicode-version differences with ICU can only matter for
characters assigned in between, which the SpamAssassin corpus does not contain.
"""
import unicodedata

MAX_WORD_CHARS = 100
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Unicode White_Space (Python's str.isspace also counts U+001C..U+001F, which HF does not).
_WHITE_SPACE = set(range(0x09, 0x0E)) | {0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000} | \
    set(range(0x2000, 0x200B))
_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_whitespace(ch):
    return ord(ch) in _WHITE_SPACE


def is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf", "Co")


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(ch):
    cp = ord(ch)
    return any(a <= cp <= b for a, b in _CJK)


def words(text, lowercase=True, strip_accents=None):
    """Normalised words of `text` (BasicTokenizer::words in C++)."""
    strip = lowercase if strip_accents is None else strip_accents
    out = []
    for chunk in _chunks(text):
        cleaned = []
        for ch in chunk:
            if ch == "\0" or ch == "\ufffd" or is_control(ch):
                continue
            cleaned.append(f" {ch} " if is_cjk(ch) else ch)
        s = "".join(cleaned)
        if strip:
            s = "".join(c for c in unicodedata.normalize("NFD", s) if unicodedata.category(c) != "Mn")
        if lowercase:
            s = "".join(c.lower() for c in s)  # per character: no final-sigma context, as HF
        word = []
        for ch in s:
            if ch == " ":
                _flush(word, out)
            elif is_punctuation(ch):
                _flush(word, out)
                out.append(ch)
            else:
                word.append(ch)
        _flush(word, out)
    return out


def _chunks(text):
    """Splits on whitespace that is not also a control character (those are removed, not separators)."""
    chunk = []
    for ch in text:
        if is_whitespace(ch) and not is_control(ch):
            if chunk:
                yield chunk
                chunk = []
        else:
            chunk.append(ch)
    if chunk:
        yield chunk


def _flush(word, out):
    if word:
        out.append("".join(word))
        word.clear()


def read_vocab(path):
    with open(path, encoding="utf-8") as f:
        tokens = [line.rstrip() for line in f.read().split("\n")]
    if tokens and tokens[-1] == "":
        tokens.pop()
    vocab = {}
    for i, t in enumerate(tokens):
        if not t:
            raise ValueError(f"{path}:{i + 1}: empty token")
        if t in vocab:
            raise ValueError(f"{path}:{i + 1}: duplicate token '{t}' (first on line {vocab[t] + 1})")
        vocab[t] = i
    for s in ("[PAD]", "[UNK]", "[CLS]", "[SEP]"):
        if s not in vocab:
            raise ValueError(f"{path}: vocabulary has no {s} token")
    return vocab


class Tokenizer:
    def __init__(self, vocab, max_length=128, lowercase=True):
        self.vocab = vocab if isinstance(vocab, dict) else read_vocab(vocab)
        self.max_length = max_length
        self.lowercase = lowercase
        self.unk, self.cls, self.sep, self.pad = (self.vocab[t] for t in ("[UNK]", "[CLS]", "[SEP]", "[PAD]"))

    def wordpiece(self, word):
        if len(word) > MAX_WORD_CHARS:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = ("##" if start else "") + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    break
                end -= 1
            if end == start:
                return [self.unk]
            start = end
        return ids

    def encode(self, text):
        """[CLS] pieces [SEP] ids, truncated to max_length."""
        budget = self.max_length - 2
        ids = []
        for w in words(text, self.lowercase):
            ids += self.wordpiece(w)
            if len(ids) >= budget:
                break
        return [self.cls] + ids[:budget] + [self.sep]

    def batch(self, texts):
        """(input_ids [n, t], token_type_ids [n, t], lengths [n]) padded to the longest, as int64 lists."""
        encoded = [self.encode(t) for t in texts]
        t = max(len(e) for e in encoded)
        ids = [e + [self.pad] * (t - len(e)) for e in encoded]
        return ids, [[0] * t for _ in encoded], [len(e) for e in encoded]
