"""PyTorch definition of eesplit's multi-exit encoders, the reference the C++ runtime is checked against.

Contract with common/model (C++): tensor names, shapes and the order of operations here are exactly
what common/model/weights.cpp and encoder_layer.cpp read and compute. Change one side, change both.
"""
import math

import torch
from torch import nn
import torch.nn.functional as F


class SelfAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.dense = nn.Linear(hidden, hidden)

    def forward(self, x, mask=None):
        b, t, h = x.shape
        d = h // self.heads

        def split(y):
            return y.view(b, t, self.heads, d).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)
        if mask is not None:  # mask: [b, t], 1 = real token, 0 = padding
            scores = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
        ctx = torch.softmax(scores, dim=-1) @ v
        return self.dense(ctx.transpose(1, 2).reshape(b, t, h))


class EncoderLayer(nn.Module):
    """pre_ln=True: ViT (x + attn(ln1(x)), x + ffn(ln2(x))); False: BERT (ln1(x + attn(x)), ln2(x + ffn(x)))."""

    def __init__(self, hidden, heads, ffn, eps, pre_ln):
        super().__init__()
        self.pre_ln = pre_ln
        self.attention = SelfAttention(hidden, heads)
        self.ln1 = nn.LayerNorm(hidden, eps=eps)
        self.intermediate = nn.Linear(hidden, ffn)
        self.output = nn.Linear(ffn, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=eps)

    def ffn(self, x):
        return self.output(F.gelu(self.intermediate(x)))  # exact (erf) GELU

    def forward(self, x, mask=None):
        if self.pre_ln:
            x = x + self.attention(self.ln1(x), mask)
            return x + self.ffn(self.ln2(x))
        x = self.ln1(x + self.attention(x, mask))
        return self.ln2(x + self.ffn(x))


class ExitHead(nn.Module):
    """Classifier on the CLS token. 'layernorm': LN -> linear (ViT). 'pooler': dense -> tanh -> linear (BERT/DeeBERT)."""

    def __init__(self, hidden, labels, eps, kind):
        super().__init__()
        self.kind = kind
        if kind == "layernorm":
            self.norm = nn.LayerNorm(hidden, eps=eps)
        else:
            self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, labels)

    def forward(self, x):
        cls = x[:, 0]
        cls = self.norm(cls) if self.kind == "layernorm" else torch.tanh(self.pooler(cls))
        return self.classifier(cls)


class PatchEmbeddings(nn.Module):
    def __init__(self, image, patch, channels, hidden):
        super().__init__()
        self.projection = nn.Conv2d(channels, hidden, kernel_size=patch, stride=patch)
        tokens = (image // patch) ** 2 + 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, hidden))
        self.position_embeddings = nn.Parameter(torch.randn(1, tokens, hidden) * 0.02)

    def forward(self, pixels):  # pixels: [b, c, h, w], already normalised
        x = self.projection(pixels).flatten(2).transpose(1, 2)  # [b, patches, hidden], row-major patch order
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return x + self.position_embeddings


class MultiExitViT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.embeddings = PatchEmbeddings(cfg["image_size"], cfg["patch_size"], cfg["num_channels"], h)
        self.layers = nn.ModuleList(
            EncoderLayer(h, cfg["num_attention_heads"], cfg["intermediate_size"], eps, pre_ln=True)
            for _ in range(cfg["num_hidden_layers"]))
        ee = cfg["early_exit"]
        self.exit_layers = ee["exit_layers"]
        self.exits = nn.ModuleDict({str(i): ExitHead(h, len(ee["labels"]), eps, "layernorm") for i in self.exit_layers})

    def forward(self, pixels, keep_hidden=False):
        """Returns ({exit layer: logits}, [hidden after embeddings, after layer 1, ...] if keep_hidden)."""
        x = self.embeddings(pixels)
        hidden = [x] if keep_hidden else None
        logits = {}
        for i, layer in enumerate(self.layers, start=1):
            x = layer(x)
            if keep_hidden:
                hidden.append(x)
            if i in self.exit_layers:
                logits[i] = self.exits[str(i)](x)
        return logits, hidden


def encoder_layer_tensors(prefix, layer):
    """HuggingFace names of one encoder layer -> tensors. BERT: attention.output.LayerNorm is applied after the
    attention residual, output.LayerNorm after the FFN residual; ViT: layernorm_before / layernorm_after."""
    a = layer.attention
    qkv = f"{prefix}.attention.{'attention' if layer.pre_ln else 'self'}"
    out = {f"{qkv}.{part}.{kind}": getattr(getattr(a, part), kind)
           for part in ("query", "key", "value") for kind in ("weight", "bias")}
    out.update({
        f"{prefix}.attention.output.dense.weight": a.dense.weight,
        f"{prefix}.attention.output.dense.bias": a.dense.bias,
        f"{prefix}.intermediate.dense.weight": layer.intermediate.weight,
        f"{prefix}.intermediate.dense.bias": layer.intermediate.bias,
        f"{prefix}.output.dense.weight": layer.output.weight,
        f"{prefix}.output.dense.bias": layer.output.bias,
    })
    ln1, ln2 = (("layernorm_before", "layernorm_after") if layer.pre_ln
                else ("attention.output.LayerNorm", "output.LayerNorm"))
    out.update({f"{prefix}.{ln1}.weight": layer.ln1.weight, f"{prefix}.{ln1}.bias": layer.ln1.bias,
                f"{prefix}.{ln2}.weight": layer.ln2.weight, f"{prefix}.{ln2}.bias": layer.ln2.bias})
    return out


def exit_head_tensors(layer_index, head):
    p = f"exits.{layer_index}"
    out = {f"{p}.classifier.weight": head.classifier.weight, f"{p}.classifier.bias": head.classifier.bias}
    if head.kind == "layernorm":
        out.update({f"{p}.layernorm.weight": head.norm.weight, f"{p}.layernorm.bias": head.norm.bias})
    else:
        out.update({f"{p}.pooler.dense.weight": head.pooler.weight, f"{p}.pooler.dense.bias": head.pooler.bias})
    return out


def _encoder_and_exit_tensors(model, prefix):
    out = {}
    for n, layer in enumerate(model.layers):
        out.update(encoder_layer_tensors(f"{prefix}.encoder.layer.{n}", layer))
    for i in model.exit_layers:
        out.update(exit_head_tensors(i, model.exits[str(i)]))
    return out


def vit_tensors(model):
    e = model.embeddings
    out = {
        "vit.embeddings.cls_token": e.cls_token,
        "vit.embeddings.position_embeddings": e.position_embeddings,
        "vit.embeddings.patch_embeddings.projection.weight": e.projection.weight,
        "vit.embeddings.patch_embeddings.projection.bias": e.projection.bias,
    }
    out.update(_encoder_and_exit_tensors(model, "vit"))
    return out


class TextEmbeddings(nn.Module):
    """BERT: word + position + token type embeddings, then LayerNorm (dropout omitted: inference order)."""

    def __init__(self, vocab, positions, types, hidden, eps):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(positions, hidden)
        self.token_type_embeddings = nn.Embedding(types, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, input_ids, token_type_ids):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(pos)[None] + \
            self.token_type_embeddings(token_type_ids)
        return self.LayerNorm(x)


class MultiExitBert(nn.Module):
    """Post-LN BERT encoder with a pooler-style exit head (dense -> tanh -> classifier on [CLS]) after each
    exit layer. Padding keys are masked with -inf, so padded rows never change real tokens' values."""

    def __init__(self, cfg, dropout=0.0):
        super().__init__()
        h, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.embeddings = TextEmbeddings(cfg["vocab_size"], cfg["max_position_embeddings"],
                                         cfg["type_vocab_size"], h, eps)
        self.layers = nn.ModuleList(
            EncoderLayer(h, cfg["num_attention_heads"], cfg["intermediate_size"], eps, pre_ln=False)
            for _ in range(cfg["num_hidden_layers"]))
        ee = cfg["early_exit"]
        self.exit_layers = ee["exit_layers"]
        self.exits = nn.ModuleDict({str(i): ExitHead(h, len(ee["labels"]), eps, "pooler") for i in self.exit_layers})
        self.dropout = nn.Dropout(dropout)  # training only: after embeddings and every layer
        self.apply(_bert_init)


    def forward(self, input_ids, token_type_ids, lengths, keep_hidden=False):
        """lengths: real tokens per sample. Returns ({exit layer: logits}, [hidden after embeddings, ...])."""
        mask = (torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]).long()
        x = self.dropout(self.embeddings(input_ids, token_type_ids))
        hidden = [x] if keep_hidden else None
        logits = {}
        for i, layer in enumerate(self.layers, start=1):
            x = self.dropout(layer(x, mask))
            if keep_hidden:
                hidden.append(x)
            if i in self.exit_layers:
                logits[i] = self.exits[str(i)](x)
        return logits, hidden


def _bert_init(module):
    """BERT's initialisation (normal, std 0.02; zero biases). With PyTorch's defaults (N(0, 1) embeddings) the
    same 6-epoch run of train_bert.py reached 95.29 % at the last exit instead of 98.59 %."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)


def bert_tensors(model):
    """eesplit's names for a MultiExitBert: HF BERT names for the encoder, exits.K.* for the heads."""
    e = model.embeddings
    out = {
        "bert.embeddings.word_embeddings.weight": e.word_embeddings.weight,
        "bert.embeddings.position_embeddings.weight": e.position_embeddings.weight,
        "bert.embeddings.token_type_embeddings.weight": e.token_type_embeddings.weight,
        "bert.embeddings.LayerNorm.weight": e.LayerNorm.weight,
        "bert.embeddings.LayerNorm.bias": e.LayerNorm.bias,
    }
    out.update(_encoder_and_exit_tensors(model, "bert"))
    return out


def load_bert_tensors(model, tensors):
    """Inverse of bert_tensors: copies a {name: tensor} dict in our format into `model`; every tensor must
    be present with the right shape, and no tensor may be left over."""
    own = bert_tensors(model)
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        raise ValueError(f"tensor names do not match the model: missing {missing[:5]}, unexpected {extra[:5]}")
    with torch.no_grad():
        for name, param in own.items():
            src = tensors[name]
            if tuple(src.shape) != tuple(param.shape):
                raise ValueError(f"{name}: shape {tuple(src.shape)}, model wants {tuple(param.shape)}")
            param.copy_(src.to(param.dtype))
