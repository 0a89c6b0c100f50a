#!/usr/bin/env node
// Writes hf_golden.json: ids and token type ids that HuggingFace's Rust tokenizer (npm `tokenizers`, the
// Node binding with the native library inside) gives for a set of tricky strings, for
// tests/unit/text_test.cpp to compare common/text against. Also writes unicode_vocab.txt, a vocabulary with
// every character of those strings (and of their NFD / lower-case forms) as a word and as a "##" piece, so
// the ids spell out exactly what normalisation and pre-tokenisation did, plus a few whole words to
// exercise longest-match-first.
//
//   npm install --prefix /tmp/hf tokenizers
//   NODE_PATH=/tmp/hf/node_modules node tests/data/text/make_hf_golden.js
//
// The tokenizer is built as HF's bert-base-uncased tokenizer.json is (BertNormalizer, BertPreTokenizer,
// WordPiece with max_input_chars_per_word 100, [CLS] $A [SEP] $B:1 [SEP]:1), except that the special
// tokens are not registered as added tokens: eesplit treats a literal "[CLS]" in text as ordinary text.
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');

const here = __dirname;
const root = path.resolve(here, '..', '..', '..');

const cases = [
  '', ' ', '\t\n\r', 'Hello, World!', 'hello world', 'HELLO   wOrLd  !!!',
  'unaffable', 'unaffable running', 'the spam is free!!!', "don't stop", 'e-mail: a.b@example.com',
  'http://www.example.com/path?x=1&y=2#frag', '$100.00 (50% off) <html> ^_^ `~|', 'a+b=c; x<y>z',
  'Café naïve résumé Ångström', 'CAFÉ', 'Cafe\u0301', 'Straße STRASSE ẞ', 'İstanbul ıi', 'ΣΊΣΥΦΟΣ σς',
  'Ελληνικά', 'Привет, мир!', 'ÀÉÎÕÜ àéîõü', 'ǅ ǈ ǋ ﬁ ﬀ', 'Ⅻ ⅻ ①', 'ｆｕｌｌｗｉｄｔｈ ＡＢＣ！',
  '中文测试', 'ab中国cd', '日本語のテキスト', 'ひらがな カタカナ', '한국어 텍스트', '\u3400\u4DBF\u4DC0',
  '\u{20000}\u{2A6DF}\u{2A6E0}', '\u{2A700}\u{2B73F}\u{2B740}\u{2B81F}', '\u{2B820}\u{2B91F}\u{2B920}\u{2CEAF}',
  '\uF900\uFAFF', '\u{2F800}\u{2FA1F}', '\u3000ideographic\u3000space',
  '😀 emoji 🎉', 'family 👨‍👩‍👧 zwj', 'flag 🇫🇷', 'thumbs 👍🏽', '★☆♥', '€100 £5 ¥3 ₹7',
  'x\u0000y', 'a\u0007b', 'soft\u00ADhyphen', 'zero\u200Bwidth', 'rtl\u200Fmark', 'bom\uFEFFhere',
  'private\uE000use', 'tab\there', 'nbsp\u00A0here', 'nel\u0085here', 'vt\u000Bhere', 'ff\u000Chere',
  'line\u2028sep', 'para\u2029sep', 'fs\u001Cgs\u001D', 'unassigned\u0378x', 'replacement\uFFFDchar',
  '\u{F0000}plane15', 'narrow\u202Fnbsp', 'ogham\u1680space',
  'العربية مَرْحَبًا', 'עִבְרִית', 'हिन्दी', 'ภาษาไทย', 'Tiếng Việt', '¿Qué? ¡Sí!', '«quoted» „low“ ‹single›',
  '— – ‐ … · • ‧', '«»「」『』【】〈〉', '"smart" \'quotes\' “double” ‘single’', '§¶†‡', '°±×÷', 'x²³ ½',
  '[CLS] [SEP] [PAD] [MASK] [UNK]', '[cls]text[sep]', '##ing ##', 'a'.repeat(100), 'a'.repeat(101),
  'é'.repeat(100), 'é'.repeat(101), '😀'.repeat(100) + ' ok', '😀'.repeat(101) + ' ok',
  'word '.repeat(80), 'Subject: WIN $$$ NOW!!!\n\nClick here: http://spam.example/?id=1234',
];

const pairs = [
  ['hello', 'world'], ['', ''], ['short', 'a much longer second sentence with many words in it'],
  ['a much longer first sentence with many words in it', 'short'],
  ['one two three four five six', 'seven eight nine ten eleven twelve'],
  ['one two three four five six seven', 'eight nine ten eleven twelve thirteen'],
  ['one two three four five six', 'seven eight nine ten eleven twelve thirteen'],
  ['a b c d e f g h i j k l m n o p', 'q'], ['q', 'a b c d e f g h i j k l m n o p'],
  ['Café [SEP] naïve', '中文 😀'],
];

function charsOf(s) {
  const out = new Set();
  for (const form of [s, s.normalize('NFD'), s.toLowerCase(), s.toLowerCase().normalize('NFD'),
                      s.normalize('NFD').toLowerCase()]) {
    for (const ch of form) out.add(ch);
  }
  return out;
}

function buildUnicodeVocab() {
  const chars = new Set();
  for (const c of cases) for (const ch of charsOf(c)) chars.add(ch);
  for (const [a, b] of pairs) for (const ch of charsOf(a + b)) chars.add(ch);
  const isWs = (ch) => /^\s$/u.test(ch) || ch === '\u0085';
  const sorted = [...chars].filter((ch) => !isWs(ch) && ch.codePointAt(0) >= 0x20 && ch !== '\u007F')
    .sort((x, y) => x.codePointAt(0) - y.codePointAt(0));
  const words = ['hello', 'world', 'un', '##aff', '##able', 'spam', 'free', 'the', '##ing', 'run', '##ning',
    'cafe', 'naive', 'resume', 'cl', '##s', 'se', '##p', 'word', 'one', 'two', 'three', 'short'];
  const vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...words];
  const seen = new Set(vocab);
  for (const ch of sorted) {
    for (const t of [ch, '##' + ch]) if (!seen.has(t)) { seen.add(t); vocab.push(t); }
  }
  return vocab;
}

function bertTokenizer(vocab, lowercase) {
  const v = {};
  vocab.forEach((t, i) => { v[t] = i; });
  const json = {
    version: '1.0', truncation: null, padding: null, added_tokens: [],
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null,
                  lowercase },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
               { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
             { SpecialToken: { id: '[SEP]', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } },
             { SpecialToken: { id: '[SEP]', type_id: 1 } }],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [v['[CLS]']], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [v['[SEP]']], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##',
             max_input_chars_per_word: 100, vocab: v },
  };
  return Tokenizer.fromString(JSON.stringify(json));
}

async function runGroup(vocabPath, vocab, lowercase, maxLength, singles, pairList) {
  const tok = bertTokenizer(vocab, lowercase);
  tok.setTruncation(maxLength, { strategy: 'LongestFirst' });
  const out = { vocab: vocabPath, lowercase, max_length: maxLength, cases: [] };
  for (const text of singles) {
    const e = await tok.encode(text);
    out.cases.push({ text, ids: e.getIds(), type_ids: e.getTypeIds(), tokens: e.getTokens() });
  }
  for (const [a, b] of pairList) {
    const e = await tok.encode(a, b);
    out.cases.push({ text: a, pair: b, ids: e.getIds(), type_ids: e.getTypeIds(), tokens: e.getTokens() });
  }
  return out;
}

async function main() {
  const vocab = buildUnicodeVocab();
  const unicodeVocab = 'tests/data/text/unicode_vocab.txt';
  fs.writeFileSync(path.join(root, unicodeVocab), vocab.join('\n') + '\n');
  const groups = [
    await runGroup(unicodeVocab, vocab, true, 512, cases, pairs),
    await runGroup(unicodeVocab, vocab, false, 512, cases, []),
    await runGroup(unicodeVocab, vocab, true, 12, cases.slice(0, 30), pairs),
    await runGroup(unicodeVocab, vocab, true, 11, [], pairs),
  ];
  // The shipped text model's vocabulary, on mail-like text, when it exists.
  const spamVocab = 'models/spam-bert/vocab.txt';
  const spamSample = path.join(root, 'models/spam-bert/sample/test_sample.jsonl');
  if (fs.existsSync(path.join(root, spamVocab))) {
    const sv = fs.readFileSync(path.join(root, spamVocab), 'utf8').split('\n').filter((l) => l.length);
    const mails = fs.existsSync(spamSample)
      ? fs.readFileSync(spamSample, 'utf8').split('\n').filter((l) => l.length).slice(0, 40)
          .map((l) => JSON.parse(l).text)
      : [];
    groups.push(await runGroup(spamVocab, sv, true, 128, cases.concat(mails), pairs));
  }
  const golden = {
    generator: 'tests/data/text/make_hf_golden.js',
    tokenizers_version: require('tokenizers/package.json').version,
    groups,
  };
  fs.writeFileSync(path.join(here, 'hf_golden.json'), JSON.stringify(golden, null, 1) + '\n');
  console.log(`wrote ${groups.reduce((n, g) => n + g.cases.length, 0)} cases in ${groups.length} groups`);
}

main().catch((e) => { console.error(e); process.exit(1); });
