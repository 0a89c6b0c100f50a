#!/usr/bin/python3
"""Exports a trained MultiExitViT to the format common/model reads: config.json + model.safetensors, plus
golden.safetensors (PyTorch's hidden states and exit logits for a few test inputs), test_predictions.safetensors
(PyTorch's prediction at every exit for the whole Fashion-MNIST test set) and sample/ (the first 1,000 test
images and labels as IDX, for fast tests).

    /usr/bin/python3 models/train/export_vit.py models/fmnist-vit      # re-export from checkpoint.pt
"""
import json
import os
import sys

import numpy as np
import torch

import idx
import safetensors_io
from multiexit import MultiExitViT, vit_tensors

GOLDEN_SAMPLES = 8
SAMPLE_SIZE = 1000


@torch.no_grad()
def export(model, cfg, out):
    import train_vit  # late import: train_vit imports this module

    model.eval()
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    safetensors_io.save(os.path.join(out, "model.safetensors"), vit_tensors(model), {"format": "pt"})

    test_x, test_y = idx.fashion_mnist("test")
    logits, hidden = model(train_vit.to_input(test_x[:GOLDEN_SAMPLES], cfg), keep_hidden=True)
    golden = {"input.pixels": torch.from_numpy(test_x[:GOLDEN_SAMPLES].copy())}
    golden.update({f"hidden.{i}": h for i, h in enumerate(hidden)})  # hidden.0 = embeddings
    golden.update({f"logits.{i}": l for i, l in logits.items()})
    safetensors_io.save(os.path.join(out, "golden.safetensors"), golden)

    preds, acc = train_vit.evaluate(model, test_x, test_y, cfg)
    safetensors_io.save(os.path.join(out, "test_predictions.safetensors"), {"predictions": preds},
                        {"exit_layers": model.exit_layers, "accuracy": acc})
    os.makedirs(os.path.join(out, "sample"), exist_ok=True)
    idx.write_idx(os.path.join(out, "sample", "t1k-images-idx3-ubyte.gz"), test_x[:SAMPLE_SIZE])
    idx.write_idx(os.path.join(out, "sample", "t1k-labels-idx1-ubyte.gz"), test_y[:SAMPLE_SIZE])
    print(f"exported to {out}; per-exit test accuracy (PyTorch): {acc}")


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fmnist-vit")
    ckpt = torch.load(os.path.join(out, "checkpoint.pt"))
    m = MultiExitViT(ckpt["config"])
    m.load_state_dict(ckpt["state_dict"])
    export(m, ckpt["config"], out)
