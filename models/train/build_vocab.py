#!/usr/bin/python3
"""Builds a BERT vocab.txt (WordPiece) from the training split of the SpamAssassin data.

    /usr/bin/python3 models/train/build_vocab.py [--train data/spam-assassin/train.jsonl] [--size 4096]

Algorithm (frequency-based WordPiece, the way HuggingFace's WordPieceTrainer builds one — byte-pair
merges over "##"-marked pieces):
1. Words: every training text is normalised and split exactly as at inference (wordpiece.words: BERT
   clean-up, lower-case, accent stripping, punctuation split). Word counts are kept; words seen fewer
   than --min-word-count times are ignored (typos, ids, hashes).
2. Alphabet: every character seen at least --min-char-count times in those words, both as a word start
   ("c") and as a continuation ("##c"); rarer characters are left out, so words holding them become [UNK].
3. Merges: each word is a sequence of pieces (first piece plain, the rest "##"-prefixed). Repeatedly the
   most frequent adjacent pair (weighted by word count; ties broken by the pieces' text, so the result is
   deterministic) is merged into one new piece ("un" + "##aff" -> "unaff", "##aff" + "##able" ->
   "##affable") and added to the vocabulary, until it holds --size entries.
Order of vocab.txt: [PAD] [UNK] [CLS] [SEP] [MASK] (ids 0-4, pad_token_id = 0), then the alphabet by
frequency, then merged pieces in merge order.
"""
import argparse
import collections
import heapq
import json
import os

import wordpiece

HERE = os.path.dirname(os.path.abspath(__file__))


def count_words(texts):
    counts = collections.Counter()
    for t in texts:
        counts.update(wordpiece.words(t))
    return counts


def build(word_counts, size, min_word_count=2, min_char_count=20):
    words = {w: c for w, c in word_counts.items() if c >= min_word_count and len(w) <= wordpiece.MAX_WORD_CHARS}
    char_counts = collections.Counter()
    for w, c in words.items():
        for ch in w:
            char_counts[ch] += c
    alphabet = [ch for ch, c in sorted(char_counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_char_count]
    vocab = list(wordpiece.SPECIALS)
    for ch in alphabet:
        vocab += [ch, "##" + ch]
    known = set(alphabet)
    # Words as piece lists; words with a character outside the alphabet can never be spelled: skip them.
    seqs, freqs = [], []
    for w, c in words.items():
        if all(ch in known for ch in w):
            seqs.append([w[0]] + ["##" + ch for ch in w[1:]])
            freqs.append(c)

    pair_count = collections.Counter()
    where = collections.defaultdict(set)  # pair -> indices of words containing it
    for i, s in enumerate(seqs):
        for a, b in zip(s, s[1:]):
            pair_count[(a, b)] += freqs[i]
            where[(a, b)].add(i)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    in_vocab = set(vocab)
    while len(vocab) < size and heap:
        neg, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -neg or -neg == 0:
            continue  # stale heap entry
        a, b = pair
        merged = a + b[2:]
        if merged not in in_vocab:
            vocab.append(merged)
            in_vocab.add(merged)
        for i in list(where[pair]):
            s = seqs[i]
            for x, y in zip(s, s[1:]):  # remove this word's pairs, re-add after the merge
                _add(pair_count, where, heap, (x, y), -freqs[i], i, touch=False)
            out, k = [], 0
            while k < len(s):
                if k + 1 < len(s) and s[k] == a and s[k + 1] == b:
                    out.append(merged)
                    k += 2
                else:
                    out.append(s[k])
                    k += 1
            seqs[i] = out
            for x, y in zip(out, out[1:]):
                _add(pair_count, where, heap, (x, y), freqs[i], i, touch=True)
        for p in [p for p in where if not where[p]]:
            del where[p]
    return vocab


def _add(pair_count, where, heap, pair, delta, word, touch):
    pair_count[pair] += delta
    if delta < 0:
        where[pair].discard(word)
    else:
        where[pair].add(word)
    if touch:
        heapq.heappush(heap, (-pair_count[pair], pair))
    elif pair_count[pair] > 0:
        heapq.heappush(heap, (-pair_count[pair], pair))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", default=os.path.join(HERE, "..", "..", "data", "spam-assassin", "train.jsonl"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "spam-bert", "vocab.txt"))
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--min-word-count", type=int, default=2)
    ap.add_argument("--min-char-count", type=int, default=20)
    args = ap.parse_args()

    with open(args.train, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    vocab = build(count_words(texts), args.size, args.min_word_count, args.min_char_count)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    tok = wordpiece.Tokenizer({t: i for i, t in enumerate(vocab)}, max_length=10 ** 9)
    pieces = sum(len(tok.encode(t)) - 2 for t in texts[:500])
    unks = sum(tok.encode(t).count(tok.unk) for t in texts[:500])
    print(f"wrote {len(vocab)} tokens to {args.out}; first 500 training mails: {pieces} pieces, "
          f"{unks / max(pieces, 1) * 100:.2f} % [UNK]")


if __name__ == "__main__":
    main()
