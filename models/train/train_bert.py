#!/usr/bin/python3
"""Trains the SpamAssassin multi-exit BERT reference models and exports them to models/<model>/.

    /usr/bin/python3 models/train/spam_data.py          # data/spam-assassin/ (both tasks) + samples
    /usr/bin/python3 models/train/build_vocab.py        # models/spam-bert/vocab.txt (both models use it)
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 models/train/train_bert.py [--model spam-bert|spam3-bert]

Model: post-LN BERT (word + position + token type embeddings -> LayerNorm; hidden 128, 4 heads, FFN 256,
exact GELU), a pooler exit head (dense -> tanh -> classifier on [CLS]) after every layer, trained from
scratch (AdamW, linear warm-up then cosine decay, dropout 0.1 in training only). The two models (PRESETS):
- spam-bert: Subject + body, ham / spam, 4 layers, at most 128 word pieces with [CLS] and [SEP]; all
  exits trained jointly (loss = the mean of the exits' cross-entropies);
- spam3-bert: the body alone, easy ham / hard ham / spam, 6 layers, at most 64 word pieces; loss =
  the exits' cross-entropies weighted by their layer (PABEE's weighted average, sum_k k CE_k / sum_k k), so
  the shared lower layers serve the deep exits first, each class weighted by n / (3 n_class) so the 190
  hard-ham mails count as much as the 3,100 easy ones.
Writes a checkpoint (not committed), train_log.json, and then export.export_trained() for config.json,
tokenizer_config.json, model.safetensors, golden.safetensors, test_predictions.safetensors and
eval_pytorch.json.
"""
import argparse
import json
import math
import os
import shutil
import time

import torch
import torch.nn.functional as F

import export
import wordpiece
from multiexit import MultiExitBert

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "data", "spam-assassin")
PRESETS = {
    "spam-bert": {"data": DATA, "labels": ["ham", "spam"], "max_length": 128, "layers": 4,
                  "exit_weights": "mean", "epochs": 6},
    "spam3-bert": {"data": os.path.join(DATA, "body3"), "labels": ["easy_ham", "hard_ham", "spam"],
                   "max_length": 64, "layers": 6, "exit_weights": "layer", "balanced": True, "epochs": 5},
}
VOCAB = os.path.join(HERE, "..", "spam-bert", "vocab.txt")


def default_config(vocab_size, preset=PRESETS["spam-bert"]):
    layers = preset["layers"]
    return {
        "model_type": "bert",
        "architectures": ["MultiExitBert"],
        "vocab_size": vocab_size,
        "hidden_size": 128,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "intermediate_size": 256,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": preset["max_length"],
        "type_vocab_size": 2,
        "pad_token_id": 0,
        "early_exit": {"exit_layers": list(range(1, layers + 1)), "head": "pooler", "labels": preset["labels"]},
    }


def read_split(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def encode_all(tokenizer, records, labels):
    """Token ids of every record (unpadded lists) and label indices."""
    return [tokenizer.encode(r["text"]) for r in records], [labels.index(r["label"]) for r in records]


def exit_weights(exit_layers, kind):
    """Loss weight of each exit (the loss divides by their sum): equal ("mean") or its layer ("layer", PABEE)."""
    return [1.0] * len(exit_layers) if kind == "mean" else [float(k) for k in exit_layers]


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
    ap.add_argument("--model", default="spam-bert", choices=sorted(PRESETS), help="which model (PRESETS)")
    ap.add_argument("--data", help="folder of train.jsonl and test.jsonl (default: the model's)")
    ap.add_argument("--out", help="model directory to write (default: models/<model>)")
    ap.add_argument("--epochs", type=int, help="default: the model's")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (2 on the 2-core machine; 1 if sharing it)")
    args = ap.parse_args()
    preset = PRESETS[args.model]
    data = args.data or preset["data"]
    out = args.out or os.path.join(HERE, "..", args.model)
    epochs = args.epochs or preset["epochs"]

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    os.makedirs(out, exist_ok=True)
    if os.path.abspath(VOCAB) != os.path.abspath(os.path.join(out, "vocab.txt")):
        shutil.copyfile(VOCAB, os.path.join(out, "vocab.txt"))
    tok = wordpiece.Tokenizer(os.path.join(out, "vocab.txt"), max_length=preset["max_length"])
    cfg = default_config(len(tok.vocab), preset)
    labels = preset["labels"]
    train, test = read_split(os.path.join(data, "train.jsonl")), read_split(os.path.join(data, "test.jsonl"))
    start = time.time()
    train_x, train_y = encode_all(tok, train, labels)
    test_x, test_y = encode_all(tok, test, labels)
    print(f"tokenized {len(train_x)} + {len(test_x)} mails in {time.time() - start:.0f} s", flush=True)

    model = MultiExitBert(cfg, dropout=0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = epochs * math.ceil(len(train_x) / args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1,
                                                anneal_strategy="cos")
    weights = exit_weights(model.exit_layers, preset["exit_weights"])
    ys = torch.tensor(train_y)
    class_weight = None
    if preset.get("balanced"):  # every class weighs as much in the loss as any other, whatever its size
        counts = torch.bincount(ys, minlength=len(labels)).float()
        class_weight = counts.sum() / (len(labels) * counts)
    start = time.time()
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(train_x)).tolist()
        total = 0.0
        for s in range(0, len(perm), args.batch):
            b = perm[s:s + args.batch]
            ids, types, lengths = to_batch([train_x[i] for i in b], tok.pad)
            logits, _ = model(ids, types, lengths)
            loss = sum(w * F.cross_entropy(logits[k], ys[b], weight=class_weight)
                       for k, w in zip(model.exit_layers, weights)) / sum(weights)
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
        print(f"epoch {epoch}/{epochs} loss {total / len(train_x):.4f} per-exit test acc {acc} "
              f"({time.time() - start:.0f} s)", flush=True)

    torch.save({"config": cfg, "state_dict": model.state_dict()}, os.path.join(out, "checkpoint.pt"))
    log = {"model": args.model, "epochs": epochs, "batch": args.batch, "lr": args.lr, "seed": args.seed,
           "max_length": preset["max_length"], "exit_weights": weights,
           "train_seconds": round(time.time() - start, 1), "threads": args.threads,
           "parameters": sum(p.numel() for p in model.parameters()), "history": history}
    with open(os.path.join(out, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    export.export_trained(model, cfg, out, test, test_x, test_y)


if __name__ == "__main__":
    main()
