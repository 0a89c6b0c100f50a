#!/usr/bin/python3
"""Trains the Fashion-MNIST multi-exit ViT reference model and exports it to models/fmnist-vit/.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 models/train/train_vit.py [--epochs 15]

Loss: mean of the cross-entropy of every exit (all exits trained jointly). Writes a PyTorch checkpoint
(not committed) and then runs export_vit.export() for config.json, model.safetensors, golden vectors,
PyTorch's per-sample predictions on the full test set, and a small committed test sample.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

import export_vit
import idx
from multiexit import MultiExitViT

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def default_config():
    return {
        "model_type": "vit",
        "architectures": ["MultiExitViT"],
        "hidden_size": 64,
        "num_hidden_layers": 6,
        "num_attention_heads": 4,
        "intermediate_size": 256,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-6,
        "image_size": 28,
        "patch_size": 7,
        "num_channels": 1,
        "image_mean": [0.2860],
        "image_std": [0.3530],
        "early_exit": {"exit_layers": [1, 2, 3, 4, 5, 6], "head": "layernorm", "labels": LABELS},
    }


def to_input(images, cfg):
    """uint8 [n, 28, 28] -> normalised float [n, 1, 28, 28]; the C++ side does (p / 255 - mean) / std too."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).float().unsqueeze(1) / 255.0
    return (x - cfg["image_mean"][0]) / cfg["image_std"][0]


@torch.no_grad()
def evaluate(model, images, labels, cfg, batch=1000):
    model.eval()
    preds = []
    for s in range(0, len(images), batch):
        logits, _ = model(to_input(images[s:s + batch], cfg))
        preds.append(torch.stack([logits[i].argmax(-1) for i in model.exit_layers], dim=1))
    preds = torch.cat(preds).numpy().astype(np.uint8)  # [n, exits]
    acc = (preds == np.asarray(labels)[:, None]).mean(0) * 100
    return preds, [round(float(a), 2) for a in acc]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (use 1 when other jobs share the CPU)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fmnist-vit"))
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    cfg = default_config()
    train_x, train_y = idx.fashion_mnist("train")
    test_x, test_y = idx.fashion_mnist("test")
    xs, ys = to_input(train_x, cfg), torch.from_numpy(train_y.astype(np.int64))

    model = MultiExitViT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    steps = args.epochs * math.ceil(len(xs) / args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.05,
                                                anneal_strategy="cos")
    start = time.time()
    history = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        perm = torch.randperm(len(xs))
        total = 0.0
        for s in range(0, len(xs), args.batch):
            b = perm[s:s + args.batch]
            logits, _ = model(xs[b])
            loss = sum(F.cross_entropy(l, ys[b]) for l in logits.values()) / len(logits)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(b)
        _, acc = evaluate(model, test_x, test_y, cfg)
        history.append({"epoch": epoch, "loss": total / len(xs), "test_accuracy": acc, "seconds": time.time() - start})
        print(f"epoch {epoch}/{args.epochs} loss {total / len(xs):.4f} per-exit test acc {acc} "
              f"({time.time() - start:.0f} s)", flush=True)

    os.makedirs(args.out, exist_ok=True)
    torch.save({"config": cfg, "state_dict": model.state_dict()}, os.path.join(args.out, "checkpoint.pt"))
    log = {"epochs": args.epochs, "batch": args.batch, "lr": args.lr, "seed": args.seed,
           "train_seconds": round(time.time() - start, 1), "threads": args.threads,
           "parameters": sum(p.numel() for p in model.parameters()), "history": history}
    with open(os.path.join(args.out, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    export_vit.export(model, cfg, args.out)


if __name__ == "__main__":
    main()
