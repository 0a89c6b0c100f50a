#!/usr/bin/python3
"""Trains the SpamAssassin multi-exit BERT reference model and exports it to models/spam-bert/.

    /usr/bin/python3 models/train/spam_data.py          # data/spam-assassin/{train,test}.jsonl + sample
    /usr/bin/python3 models/train/build_vocab.py        # models/spam-bert/vocab.txt
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 models/train/train_bert.py [--epochs 6]

Model: post-LN BERT (word + position + token type embeddings -> LayerNorm; 4 layers, hidden 128, 4 heads,
FFN 256, exact GELU), a pooler exit head (dense -> tanh -> classifier on [CLS]) after every layer, trained
from scratch with the mean of the exits' cross-entropies (AdamW, linear warm-up then cosine decay,
dropout 0.1 in training only). Inputs: the mail's Subject + body (spam_data.py), at most 128 word pieces
with [CLS] and [SEP]. Writes a checkpoint (not committed), train_log.json, and then export.export_trained()
for config.json, tokenizer_config.json, model.safetensors, golden.safetensors and
test_predictions.safetensors.
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn.functional as F

import export
import wordpiece
from multiexit import MultiExitBert

HERE = os.path.dirname(os.path.abspath(__file__))
LABELS = ["ham", "spam"]
MAX_LENGTH = 128


def default_config(vocab_size):
    return {
        "model_type": "bert",
        "architectures": ["MultiExitBert"],
        "vocab_size": vocab_size,
        "hidden_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 256,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": MAX_LENGTH,
        "type_vocab_size": 2,
        "pad_token_id": 0,
        "early_exit": {"exit_layers": [1, 2, 3, 4], "head": "pooler", "labels": LABELS},
    }


def read_split(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def encode_all(tokenizer, records):
    """Token ids of every record (unpadded lists) and label indices."""
    return [tokenizer.encode(r["text"]) for r in records], [LABELS.index(r["label"]) for r in records]


def to_batch(encoded, pad_id):
    t = max(len(e) for e in encoded)
    ids = torch.full((len(encoded), t), pad_id, dtype=torch.long)
    for i, e in enumerate(encoded):
        ids[i, :len(e)] = torch.tensor(e)
    lengths = torch.tensor([len(e) for e in encoded])
    return ids, torch.zeros_like(ids), lengths


@torch.no_grad()
def predict(model, encoded, pad_id, batch=64):
    """[n, exits] softmax probabilities of every exit, in exit-layer order."""
    model.eval()
    out = []
    for s in range(0, len(encoded), batch):
        ids, types, lengths = to_batch(encoded[s:s + batch], pad_id)
        logits, _ = model(ids, types, lengths)
        out.append(torch.stack([F.softmax(logits[i], -1) for i in model.exit_layers], dim=1))
    return torch.cat(out)


def accuracy(probs, labels):
    preds = probs.argmax(-1)
    return [round(float(a) * 100, 2) for a in (preds == torch.tensor(labels)[:, None]).float().mean(0)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "data", "spam-assassin"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "spam-bert"))
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (2 on the 2-core machine; 1 if sharing it)")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    tok = wordpiece.Tokenizer(os.path.join(args.out, "vocab.txt"), max_length=MAX_LENGTH)
    cfg = default_config(len(tok.vocab))
    train, test = read_split(os.path.join(args.data, "train.jsonl")), read_split(os.path.join(args.data, "test.jsonl"))
    start = time.time()
    train_x, train_y = encode_all(tok, train)
    test_x, test_y = encode_all(tok, test)
    print(f"tokenized {len(train_x)} + {len(test_x)} mails in {time.time() - start:.0f} s", flush=True)

    model = MultiExitBert(cfg, dropout=0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * math.ceil(len(train_x) / args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1,
                                                anneal_strategy="cos")
    ys = torch.tensor(train_y)
    start = time.time()
    history = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        perm = torch.randperm(len(train_x)).tolist()
        total = 0.0
        for s in range(0, len(perm), args.batch):
            b = perm[s:s + args.batch]
            ids, types, lengths = to_batch([train_x[i] for i in b], tok.pad)
            logits, _ = model(ids, types, lengths)
            loss = sum(F.cross_entropy(l, ys[b]) for l in logits.values()) / len(logits)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(b)
            if (s // args.batch) % 25 == 0:
                print(f"  epoch {epoch} mail {s}/{len(perm)} loss {float(loss):.4f} ({time.time() - start:.0f} s)", flush=True)
        acc = accuracy(predict(model, test_x, tok.pad), test_y)
        history.append({"epoch": epoch, "loss": round(total / len(train_x), 4), "test_accuracy": acc,
                        "seconds": round(time.time() - start, 1)})
        print(f"epoch {epoch}/{args.epochs} loss {total / len(train_x):.4f} per-exit test acc {acc} "
              f"({time.time() - start:.0f} s)", flush=True)

    os.makedirs(args.out, exist_ok=True)
    torch.save({"config": cfg, "state_dict": model.state_dict()}, os.path.join(args.out, "checkpoint.pt"))
    log = {"epochs": args.epochs, "batch": args.batch, "lr": args.lr, "seed": args.seed, "max_length": MAX_LENGTH,
           "train_seconds": round(time.time() - start, 1), "threads": args.threads,
           "parameters": sum(p.numel() for p in model.parameters()), "history": history}
    with open(os.path.join(args.out, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    export.export_trained(model, cfg, args.out, test, test_x, test_y)


if __name__ == "__main__":
    main()
