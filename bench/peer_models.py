"""What the peer benchmarks run, built once for both peers: a model directory (config.json +
model.safetensors, the files the C++ engine reads) loaded into models/train/multiexit.py's modules, wrapped
as the two things we time (one encoder layer; the whole model from raw input to every exit's logits), and
the inputs and outputs engine_bench --write_outputs wrote, so each peer is checked against our engine.
"""
import json
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "train"))
import safetensors_io  # noqa: E402
from multiexit import MultiExitBert, MultiExitViT, bert_tensors, vit_tensors  # noqa: E402


def load(model_dir):
    """(module, config) with every tensor of model.safetensors copied in; names and shapes must match."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    model, names = ((MultiExitViT(cfg), vit_tensors) if cfg["model_type"] == "vit"
                    else (MultiExitBert(cfg), bert_tensors))
    tensors = safetensors_io.load(os.path.join(model_dir, "model.safetensors"))
    own = names(model)
    if set(own) != set(tensors):
        raise ValueError(f"{model_dir}: tensor names differ: {sorted(set(own) ^ set(tensors))[:5]}")
    with torch.no_grad():
        for name, param in own.items():
            param.copy_(tensors[name])
    return model.eval(), cfg


class FullModel(nn.Module):
    """Raw input -> logits of every exit, stacked [exits, batch, labels]. Images arrive as uint8 pixels
    [batch, channels * size * size] and are normalised inside, as the engine's embed_images does."""

    def __init__(self, model, cfg):
        super().__init__()
        self.model, self.cfg = model, cfg
        if cfg["model_type"] == "vit":
            c, s = cfg["num_channels"], cfg["image_size"]
            self.register_buffer("mean", torch.tensor(cfg["image_mean"]).view(1, c, 1, 1))
            self.register_buffer("std", torch.tensor(cfg["image_std"]).view(1, c, 1, 1))
            self.shape = (c, s, s)

    def forward(self, *inputs):
        if self.cfg["model_type"] == "vit":
            (pixels,) = inputs
            x = (pixels.view(pixels.shape[0], *self.shape).float() / 255.0 - self.mean) / self.std
            logits, _ = self.model(x)
        else:
            input_ids, token_type_ids, lengths = inputs
            logits, _ = self.model(input_ids, token_type_ids, lengths)
        return torch.stack([logits[i] for i in self.model.exit_layers])


class FirstLayer(nn.Module):
    """Encoder layer 1 on a hidden state [batch, tokens, hidden]; every token is real (no mask), as in
    engine_bench's layer benchmarks."""

    def __init__(self, model):
        super().__init__()
        self.layer = model.layers[0]

    def forward(self, x):
        return self.layer(x)


def case_inputs(outputs_dir, name, batch, cfg):
    """The inputs engine_bench used for model `name` at `batch`, as torch tensors (FullModel's order)."""
    stem = os.path.join(outputs_dir, f"{name}.b{batch}")
    with open(stem + ".json") as f:
        meta = json.load(f)
    raw = open(stem + ".input.bin", "rb").read()
    if cfg["model_type"] == "vit":
        pixels = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8).copy()).view(batch, -1)
        return (pixels,), meta
    ids = torch.from_numpy(np.frombuffer(raw, dtype=np.int32).astype(np.int64)).view(batch, meta["tokens"])
    return (ids, torch.zeros_like(ids), torch.full((batch,), meta["tokens"], dtype=torch.int64)), meta


def our_outputs(outputs_dir, name, batch, meta):
    """(hidden state after layer 1 [batch, tokens, hidden], logits [exits, batch, labels]) of our engine."""
    stem = os.path.join(outputs_dir, f"{name}.b{batch}")
    hidden = np.fromfile(stem + ".hidden1.bin", dtype=np.float32).reshape(batch, meta["tokens"], meta["hidden"])
    logits = np.fromfile(stem + ".logits.bin", dtype=np.float32).reshape(len(meta["exits"]), batch, meta["labels"])
    return hidden, logits


def relative_error(ours, theirs):
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    return float(np.abs(ours - theirs).max() / max(1e-12, np.abs(ours).max()))


def layer_flops(cfg, batch, tokens):
    h, i = cfg["hidden_size"], cfg["intermediate_size"]
    return 2.0 * batch * tokens * h * (4 * h + 2 * i) + 4.0 * batch * tokens * tokens * h
