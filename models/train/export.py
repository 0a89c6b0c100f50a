#!/usr/bin/python3
"""Text models in eesplit's format: export of our trained MultiExitBert, and conversion of BERT-family
multi-exit checkpoints (DeeBERT, PABEE, ElasticBERT, plain HF BertForSequenceClassification) to it.

    # model.safetensors or a PyTorch state_dict (or a checkpoint {"state_dict": ...}) + its HF config.json
    # -> eesplit model dir
    /usr/bin/python3 models/train/export.py convert --state-dict model.safetensors --config config.json \\
        --vocab vocab.txt --out models/my-bert [--format auto|eesplit|hf|deebert|pabee|elasticbert]
    # re-export models/spam-bert (or spam3-bert) from its training checkpoint (golden vectors, predictions)
    /usr/bin/python3 models/train/export.py spam-bert

Contract with common/model (C++): the written model.safetensors holds exactly the tensors
multiexit.bert_tensors() names (HF BERT names for the encoder, exits.K.pooler.dense / exits.K.classifier
for the exit after layer K, 1-based), fp32; config.json is HF-style plus the early_exit block. Name mapping
of foreign checkpoints (N: 0-based layer index, L: number of layers):
  encoder, all formats      bert.embeddings.*, bert.encoder.layer.N.*          -> same names
                            (ElasticBERT: elasticbert.* -> bert.*)
  HF BertForSequenceClass.  bert.pooler.dense, classifier                      -> exits.L.pooler.dense, exits.L.classifier
  DeeBERT                   bert.encoder.highway.N.pooler.dense, .classifier    -> exits.(N+1).pooler.dense, .classifier
                            bert.pooler.dense, classifier (the final head)      -> exits.L (highway.(L-1) is dropped:
                                                                                   DeeBERT answers from the final head)
  PABEE                     bert.pooler.dense (one pooler shared by all exits)  -> copied to every exits.K.pooler.dense
                            classifiers.N                                       -> exits.(N+1).classifier
  ElasticBERT               elasticbert.pooler.I.dense, classifiers.I           -> exits.(L-n+I+1).*, n = number of
                                                                                   classifiers (outputs are the last n layers)
  ours (training state)     embeddings.*, layers.N.*, exits.K.*                 -> via MultiExitBert + bert_tensors()
Buffers (position_ids, token_type_ids) and pre-training heads (cls.*) are dropped; any other tensor left
unmapped is an error naming it, so a checkpoint is never converted partially.
"""
import argparse
import json
import os
import re
import shutil
import struct
import sys

import torch
import torch.nn.functional as F

import safetensors_io
import wordpiece
from multiexit import MultiExitBert, bert_tensors, load_bert_tensors

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN_SAMPLES = 4
THRESHOLDS = [0.6, 0.8, 0.9, 0.95, 0.99, 0.999]
_IGNORED = re.compile(r"(^|\.)(position_ids|token_type_ids)$|^cls\.")


# --- conversion of foreign checkpoints -------------------------------------------------------------------

def detect_format(state):
    names = set(state)
    if any(n.startswith("layers.") for n in names):
        return "eesplit"
    if any(n.startswith("elasticbert.") for n in names):
        return "elasticbert"
    if any(".highway." in n for n in names):
        return "deebert"
    if any(n.startswith("classifiers.") for n in names):
        return "pabee"
    if "classifier.weight" in names:
        return "hf"
    raise ValueError("cannot tell the checkpoint format from its tensor names; pass --format")


def map_names(state, fmt, num_layers):
    """{our name: tensor} and the exit layers, from a foreign state_dict. Raises naming unmapped tensors."""
    out, used = {}, set()

    def take(src, dst):
        out[dst] = state[src]
        used.add(src)

    enc_prefix = "elasticbert." if fmt == "elasticbert" else "bert."
    for name in state:
        if name.startswith(enc_prefix + "embeddings.") or name.startswith(enc_prefix + "encoder.layer."):
            if not _IGNORED.search(name):
                take(name, "bert." + name[len(enc_prefix):])
    L = num_layers
    if fmt == "hf":
        exits = [L]
        _head(state, take, "bert.pooler.dense", "classifier", L)
    elif fmt == "deebert":
        highway = sorted({int(m.group(1)) for n in state for m in [re.match(r"bert\.encoder\.highway\.(\d+)\.", n)] if m})
        exits = [n + 1 for n in highway if n + 1 < L] + [L]
        for n in highway:
            if n + 1 < L:
                _head(state, take, f"bert.encoder.highway.{n}.pooler.dense", f"bert.encoder.highway.{n}.classifier", n + 1)
            else:  # the last layer's highway duplicates the final head, which is what DeeBERT answers with
                used.update(k for k in state if k.startswith(f"bert.encoder.highway.{n}."))
        _head(state, take, "bert.pooler.dense", "classifier", L)
    elif fmt == "pabee":
        heads = sorted({int(m.group(1)) for n in state for m in [re.match(r"classifiers\.(\d+)\.", n)] if m})
        exits = [n + 1 for n in heads]
        for n in heads:
            for p in ("weight", "bias"):
                out[f"exits.{n + 1}.pooler.dense.{p}"] = state[f"bert.pooler.dense.{p}"].clone()
                take(f"classifiers.{n}.{p}", f"exits.{n + 1}.classifier.{p}")
        used.update({"bert.pooler.dense.weight", "bert.pooler.dense.bias"})
    elif fmt == "elasticbert":
        heads = sorted({int(m.group(1)) for n in state for m in [re.match(r"classifiers\.(\d+)\.", n)] if m})
        first = L - len(heads) + 1
        exits = [first + i for i in heads]
        for i in heads:
            _head(state, take, f"elasticbert.pooler.{i}.dense", f"classifiers.{i}", first + i)
    else:
        raise ValueError(f"unknown format '{fmt}'")
    unmapped = sorted(n for n in state if n not in used and not _IGNORED.search(n))
    if unmapped:
        raise ValueError(f"{len(unmapped)} tensors have no place in the {fmt} mapping, e.g. {unmapped[:5]}")
    return out, exits


def _head(state, take, pooler, classifier, layer):
    for p in ("weight", "bias"):
        take(f"{pooler}.{p}", f"exits.{layer}.pooler.dense.{p}")
        take(f"{classifier}.{p}", f"exits.{layer}.classifier.{p}")


def our_config(hf, exit_layers, labels=None):
    """eesplit config.json from an HF BERT config: the fields the C++ reads, plus early_exit."""
    if labels is None:
        id2label = hf.get("id2label")
        n = hf.get("num_labels", len(id2label) if id2label else 2)
        labels = [id2label[str(i)] if id2label and str(i) in id2label else f"LABEL_{i}" for i in range(n)]
    act = hf.get("hidden_act", "gelu")
    if act != "gelu":
        raise ValueError(f"hidden_act '{act}' is not supported (the runtime implements exact GELU)")
    keys = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "max_position_embeddings", "type_vocab_size"]
    cfg = {"model_type": "bert", "architectures": ["MultiExitBert"], **{k: hf[k] for k in keys},
           "hidden_act": act, "layer_norm_eps": hf.get("layer_norm_eps", 1e-12),
           "pad_token_id": hf.get("pad_token_id", 0),
           "early_exit": {"exit_layers": exit_layers, "head": "pooler", "labels": labels}}
    return cfg


def is_safetensors(path):
    """Whether the file starts as a .safetensors does: an 8-byte little-endian header length that fits the
    file, then the JSON header. (torch.save writes a zip archive or a pickle, whose first bytes are not that.)"""
    with open(path, "rb") as f:
        head = f.read(9)
        size = os.fstat(f.fileno()).st_size
    return len(head) == 9 and head[8:] == b"{" and struct.unpack("<Q", head[:8])[0] <= size - 8


def load_state(path):
    """(state_dict, config or None) from a .safetensors file (how HF checkpoints ship today) or a
    torch.save'd state_dict or {"state_dict", "config"} checkpoint."""
    if is_safetensors(path):
        return safetensors_io.load(path), None
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        return obj["state_dict"], obj.get("config")
    return obj, None


def convert(state, hf_config, fmt="auto", labels=None):
    """(model, config) in our format from a state_dict and its config; loading checks every shape."""
    if fmt == "auto":
        fmt = detect_format(state)
    if fmt == "eesplit":
        cfg = hf_config
        model = MultiExitBert(cfg)
        model.load_state_dict(state, strict=True)
        return model.eval(), cfg
    tensors, exits = map_names(state, fmt, hf_config["num_hidden_layers"])
    cfg = our_config(hf_config, exits, labels)
    model = MultiExitBert(cfg)
    load_bert_tensors(model, {k: v.float() for k, v in tensors.items()})
    return model.eval(), cfg


def write_model(model, cfg, out, vocab=None, lowercase=True):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": lowercase, "strip_accents": None, "tokenize_chinese_chars": True,
                   "model_max_length": cfg["max_position_embeddings"]}, f, indent=2)
    safetensors_io.save(os.path.join(out, "model.safetensors"),
                        {k: v.detach().float() for k, v in bert_tensors(model).items()}, {"format": "pt"})
    if vocab and os.path.abspath(vocab) != os.path.abspath(os.path.join(out, "vocab.txt")):
        shutil.copyfile(vocab, os.path.join(out, "vocab.txt"))
    if os.path.exists(os.path.join(out, "vocab.txt")):
        n = len(wordpiece.read_vocab(os.path.join(out, "vocab.txt")))
        if n != cfg["vocab_size"]:
            raise ValueError(f"vocab.txt has {n} tokens, config vocab_size is {cfg['vocab_size']}")


# --- our trained model: golden vectors, predictions, report ----------------------------------------------

def _golden_indices(records, encoded):
    """A few test mails that exercise padding: the shortest ham and spam, a hard ham, full-length ones."""
    order = sorted(range(len(records)), key=lambda i: (len(encoded[i]), records[i]["id"]))
    pick = []
    for want in (lambda r: r["label"] == "ham", lambda r: r["label"] == "spam", lambda r: r["group"] == "hard_ham"):
        found = next((i for i in order if want(records[i]) and i not in pick), None)
        if found is not None:
            pick.append(found)
    for i in reversed(order):
        if len(pick) == GOLDEN_SAMPLES:
            break
        if i not in pick:
            pick.append(i)
    return pick


@torch.no_grad()
def write_golden(model, out, records, encoded, pad_id):
    import train_bert  # late import: train_bert imports this module

    idx = _golden_indices(records, encoded)
    ids, types, lengths = train_bert.to_batch([encoded[i] for i in idx], pad_id)
    logits, hidden = model(ids, types, lengths, keep_hidden=True)
    golden = {"input.input_ids": ids.int(), "input.token_type_ids": types.int(), "input.lengths": lengths.int()}
    golden.update({f"hidden.{i}": h for i, h in enumerate(hidden)})  # hidden.0 = embeddings
    golden.update({f"logits.{i}": l for i, l in logits.items()})
    # The mails themselves, UTF-8 as U8 tensors, so the C++ test can check its tokenizer gives these ids.
    for k, i in enumerate(idx):
        golden[f"input.text.{k}"] = torch.tensor(list(records[i]["text"].encode("utf-8")), dtype=torch.uint8)
    safetensors_io.save(os.path.join(out, "golden.safetensors"), golden,
                        {"ids": json.dumps([records[i]["id"] for i in idx])})


def exit_table(probs, labels, groups, exit_layers):
    """Max-prob early exit at each threshold: accuracy, mean layers run, exit distribution, per group."""
    conf, pred = probs.max(-1)
    labels = torch.tensor(labels)
    rows = []
    for th in THRESHOLDS:
        ok = conf >= th
        ok[:, -1] = True
        first = ok.float().argmax(1)  # first exit whose confidence clears the threshold
        chosen = pred[torch.arange(len(pred)), first]
        layers = torch.tensor(exit_layers)[first].float()
        row = {"threshold": th, "accuracy": round(float((chosen == labels).float().mean()) * 100, 2),
               "mean_layers": round(float(layers.mean()), 3),
               "exits": [int((first == k).sum()) for k in range(len(exit_layers))], "groups": {}}
        for g in sorted(set(groups)):
            m = torch.tensor([x == g for x in groups])
            row["groups"][g] = {"n": int(m.sum()), "accuracy": round(float((chosen[m] == labels[m]).float().mean()) * 100, 2),
                                "mean_layers": round(float(layers[m].mean()), 3)}
        rows.append(row)
    return rows


def export_trained(model, cfg, out, test_records, test_encoded, test_labels):
    import train_bert

    model.eval()
    write_model(model, cfg, out)
    pad = cfg["pad_token_id"]
    write_golden(model, out, test_records, test_encoded, pad)
    probs = train_bert.predict(model, test_encoded, pad)
    acc = train_bert.accuracy(probs, test_labels)
    groups = [r["group"] for r in test_records]
    per_group = {g: train_bert.accuracy(probs[[i for i, x in enumerate(groups) if x == g]],
                                        [l for l, x in zip(test_labels, groups) if x == g]) for g in sorted(set(groups))}
    safetensors_io.save(os.path.join(out, "test_predictions.safetensors"),
                        {"predictions": probs.argmax(-1).to(torch.uint8), "probabilities": probs.float()},
                        {"exit_layers": json.dumps(model.exit_layers), "accuracy": json.dumps(acc),
                         "ids": json.dumps([r["id"] for r in test_records]), "labels": json.dumps(cfg["early_exit"]["labels"])})
    report = {"test_mails": len(test_records), "per_exit_accuracy": acc, "per_group_per_exit_accuracy": per_group,
              "thresholds": exit_table(probs, test_labels, groups, model.exit_layers)}
    with open(os.path.join(out, "eval_pytorch.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"exported to {out}; per-exit test accuracy (PyTorch): {acc}")
    for row in report["thresholds"]:
        print(f"  max-prob >= {row['threshold']}: acc {row['accuracy']} %, {row['mean_layers']} layers, "
              f"exits {row['exits']}, groups {row['groups']}")


def reexport(name, out):
    import train_bert

    ckpt = torch.load(os.path.join(out, "checkpoint.pt"))
    model, cfg = convert(ckpt["state_dict"], ckpt["config"], "eesplit")
    tok = wordpiece.Tokenizer(os.path.join(out, "vocab.txt"), max_length=cfg["max_position_embeddings"])
    test = train_bert.read_split(os.path.join(train_bert.PRESETS[name]["data"], "test.jsonl"))
    test_x, test_y = train_bert.encode_all(tok, test, cfg["early_exit"]["labels"])
    export_trained(model, cfg, out, test, test_x, test_y)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="a foreign or our own checkpoint -> eesplit model directory")
    c.add_argument("--state-dict", required=True,
                   help="model.safetensors, or a torch.save'd state_dict or {'state_dict', 'config'}")
    c.add_argument("--config", help="HF config.json of the checkpoint (optional if the checkpoint holds one)")
    c.add_argument("--format", default="auto", choices=["auto", "eesplit", "hf", "deebert", "pabee", "elasticbert"])
    c.add_argument("--labels", nargs="+", help="label names (default: the config's id2label)")
    c.add_argument("--vocab", help="vocab.txt to copy next to the model")
    c.add_argument("--cased", action="store_true", help="the checkpoint's tokenizer does not lower-case")
    c.add_argument("--out", required=True)
    for name in ("spam-bert", "spam3-bert"):
        s = sub.add_parser(name, help=f"re-export models/{name} from its checkpoint.pt")
        s.add_argument("--out", default=os.path.join(HERE, "..", name))
    args = ap.parse_args()

    if args.cmd in ("spam-bert", "spam3-bert"):
        reexport(args.cmd, args.out)
        return
    state, embedded_cfg = load_state(args.state_dict)
    cfg = embedded_cfg
    if args.config:
        with open(args.config) as f:
            cfg = json.load(f)
    if cfg is None:
        sys.exit("export.py: the checkpoint holds no config; pass --config")
    model, ours = convert(state, cfg, args.format, args.labels)
    write_model(model, ours, args.out, args.vocab, lowercase=not args.cased)
    print(f"wrote {args.out}: exits after layers {ours['early_exit']['exit_layers']}, labels {ours['early_exit']['labels']}")


if __name__ == "__main__":
    main()
