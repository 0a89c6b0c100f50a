#!/usr/bin/python3
"""A BERT-shaped MultiExitBert with random weights, in eesplit's format, plus golden vectors: for speed
benchmarks at shapes no reference model has (BERT-base: hidden 768, 12 heads, FFN 3072, seq 128) and for the
test that holds the C++ engine to PyTorch at those shapes. Nothing here is committed: callers write into a
build directory.

    /usr/bin/python3 models/train/random_model.py --out build/bert-base-1l \\
        --hidden 768 --heads 12 --ffn 3072 --layers 1 --seq 128 --vocab 512

Writes <out>/config.json, model.safetensors (export.write_model: the tensor names of multiexit.bert_tensors)
and golden.safetensors with the same keys export.write_golden uses for models/spam-bert (input.input_ids,
input.token_type_ids, input.lengths, hidden.<depth>, logits.<layer>). Golden samples have different lengths,
so padding and the attention mask are exercised.
"""
import argparse
import os

import torch

import export
import safetensors_io
from multiexit import MultiExitBert


def config(a):
    return {"model_type": "bert", "architectures": ["MultiExitBert"], "vocab_size": a.vocab,
            "hidden_size": a.hidden, "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
            "intermediate_size": a.ffn, "max_position_embeddings": a.seq, "type_vocab_size": 2,
            "hidden_act": "gelu", "layer_norm_eps": 1e-12, "pad_token_id": 0,
            "early_exit": {"exit_layers": list(range(1, a.layers + 1)), "head": "pooler", "labels": ["a", "b"]}}


@torch.no_grad()
def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--ffn", type=int, default=3072)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--seq", type=int, default=128, help="max_position_embeddings and the golden batch's length")
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--golden", type=int, default=3, help="golden samples (0: none)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    torch.manual_seed(a.seed)
    cfg = config(a)
    model = MultiExitBert(cfg).eval()
    # BERT's initialisation (N(0, 0.02), LayerNorm 1/0) but with random LayerNorm affine parameters and
    # biases, so a wrong gamma/beta or bias index cannot pass unnoticed.
    for name, t in model.named_parameters():
        if name.endswith("LayerNorm.weight") or name.endswith("ln1.weight") or name.endswith("ln2.weight"):
            t.copy_(1 + 0.1 * torch.randn_like(t))
        else:
            t.copy_(0.02 * torch.randn_like(t) if name.endswith("weight") else 0.1 * torch.randn_like(t))
    export.write_model(model, cfg, a.out)
    if a.golden:
        ids = torch.randint(1, a.vocab, (a.golden, a.seq))
        types = torch.randint(0, 2, (a.golden, a.seq))
        lengths = torch.tensor([a.seq] + [max(1, a.seq * (k + 1) // (a.golden + 1)) for k in range(a.golden - 1)])
        for b, n in enumerate(lengths.tolist()):
            ids[b, n:] = cfg["pad_token_id"]
            types[b, n:] = 0
        logits, hidden = model(ids, types, lengths, keep_hidden=True)
        golden = {"input.input_ids": ids.int(), "input.token_type_ids": types.int(), "input.lengths": lengths.int()}
        golden.update({f"hidden.{i}": h for i, h in enumerate(hidden)})
        golden.update({f"logits.{i}": l for i, l in logits.items()})
        safetensors_io.save(os.path.join(a.out, "golden.safetensors"), golden)
    print(f"wrote {a.out}: hidden {a.hidden}, {a.heads} heads, FFN {a.ffn}, {a.layers} layer(s), seq {a.seq}")


if __name__ == "__main__":
    main()
