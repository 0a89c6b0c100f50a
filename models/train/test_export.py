#!/usr/bin/python3
"""Tests of export.py's checkpoint conversion and of the Python tokenizer.

    cd models/train && /usr/bin/python3 -m unittest test_export -v

A small random MultiExitBert is written out under each foreign naming scheme (HF BertForSequenceClassification,
DeeBERT, PABEE, ElasticBERT) and as our own training state; converting it back must give a model whose exit
logits equal the original's wherever the scheme can express them. Broken checkpoints (a missing or an extra
tensor, a wrong shape) must be refused with the tensor's name. `export.py convert` reads a checkpoint from
model.safetensors and from a torch.save file alike. Without python3-torch only the tokenizer tests run.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import wordpiece

try:
    import torch
except ImportError:  # Debian's python3-torch: the converter needs it, the tokenizer tests do not
    torch = None
NO_TORCH = "python3-torch is missing"
if torch is not None:
    import export
    import safetensors_io
    from multiexit import MultiExitBert, bert_tensors, load_bert_tensors

HERE = os.path.dirname(os.path.abspath(__file__))

HF_CONFIG = {"model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 3,
             "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 24,
             "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu", "pad_token_id": 0,
             "id2label": {"0": "ham", "1": "spam"}, "num_labels": 2}


def our_config(exit_layers=(1, 2, 3)):
    return export.our_config(HF_CONFIG, list(exit_layers))


def random_model(exit_layers=(1, 2, 3), seed=0):
    torch.manual_seed(seed)
    m = MultiExitBert(our_config(exit_layers)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # LayerNorm weights away from 1, biases away from 0
    return m


def encoder_names(model, prefix="bert."):
    return {prefix + k[len("bert."):]: v.detach().clone() for k, v in bert_tensors(model).items()
            if not k.startswith("exits.")}


def head(model, k):
    e = model.exits[str(k)]
    return e.pooler.weight, e.pooler.bias, e.classifier.weight, e.classifier.bias


def inputs():
    torch.manual_seed(1)
    ids = torch.randint(5, 50, (3, 10))
    lengths = torch.tensor([10, 6, 2])
    ids[1, 6:] = 0
    ids[2, 2:] = 0
    return ids, torch.zeros_like(ids), lengths


def logits(model):
    with torch.no_grad():
        out, _ = model(*inputs())
    return out


def hf_state(model):
    """The model as HF BertForSequenceClassification names it (its final exit only)."""
    state = encoder_names(model)
    pw, pb, cw, cb = head(model, 3)
    state.update({"bert.pooler.dense.weight": pw, "bert.pooler.dense.bias": pb, "classifier.weight": cw,
                  "classifier.bias": cb, "bert.embeddings.position_ids": torch.arange(24)[None]})
    return state


@unittest.skipIf(torch is None, NO_TORCH)
class ConvertTest(unittest.TestCase):
    def assert_same_exits(self, a, b, layers):
        la, lb = logits(a), logits(b)
        for k in layers:
            torch.testing.assert_close(la[k], lb[k], rtol=0, atol=0)

    def test_own_training_state(self):
        m = random_model()
        conv, cfg = export.convert(m.state_dict(), our_config(), "eesplit")
        self.assertEqual(cfg["early_exit"]["exit_layers"], [1, 2, 3])
        self.assert_same_exits(m, conv, [1, 2, 3])

    def test_hf_sequence_classification(self):
        m = random_model()
        state = hf_state(m)
        self.assertEqual(export.detect_format(state), "hf")
        conv, cfg = export.convert(state, HF_CONFIG)
        self.assertEqual(cfg["early_exit"]["exit_layers"], [3])
        self.assertEqual(cfg["early_exit"]["labels"], ["ham", "spam"])
        self.assert_same_exits(m, conv, [3])

    def test_deebert(self):
        m = random_model()
        state = encoder_names(m)
        for n in range(3):  # DeeBERT has a highway after every layer, the last one unused at inference
            pw, pb, cw, cb = head(m, n + 1) if n < 2 else (torch.zeros(16, 16), torch.zeros(16), torch.zeros(2, 16), torch.zeros(2))
            state.update({f"bert.encoder.highway.{n}.pooler.dense.weight": pw,
                          f"bert.encoder.highway.{n}.pooler.dense.bias": pb,
                          f"bert.encoder.highway.{n}.classifier.weight": cw,
                          f"bert.encoder.highway.{n}.classifier.bias": cb})
        pw, pb, cw, cb = head(m, 3)
        state.update({"bert.pooler.dense.weight": pw, "bert.pooler.dense.bias": pb, "classifier.weight": cw,
                      "classifier.bias": cb})
        self.assertEqual(export.detect_format(state), "deebert")
        conv, cfg = export.convert(state, HF_CONFIG)
        self.assertEqual(cfg["early_exit"]["exit_layers"], [1, 2, 3])
        self.assert_same_exits(m, conv, [1, 2, 3])

    def test_pabee_shares_one_pooler(self):
        m = random_model()
        pw, pb, _, _ = head(m, 3)
        with torch.no_grad():  # PABEE: every exit uses the same pooler
            for k in (1, 2):
                m.exits[str(k)].pooler.weight.copy_(pw)
                m.exits[str(k)].pooler.bias.copy_(pb)
        state = encoder_names(m)
        state.update({"bert.pooler.dense.weight": pw, "bert.pooler.dense.bias": pb})
        for n in range(3):
            _, _, cw, cb = head(m, n + 1)
            state.update({f"classifiers.{n}.weight": cw, f"classifiers.{n}.bias": cb})
        self.assertEqual(export.detect_format(state), "pabee")
        conv, cfg = export.convert(state, HF_CONFIG)
        self.assertEqual(cfg["early_exit"]["exit_layers"], [1, 2, 3])
        self.assert_same_exits(m, conv, [1, 2, 3])

    def test_elasticbert_exits_are_the_last_layers(self):
        m = random_model(exit_layers=(2, 3))
        state = encoder_names(m, prefix="elasticbert.")
        for i, k in enumerate((2, 3)):
            pw, pb, cw, cb = head(m, k)
            state.update({f"elasticbert.pooler.{i}.dense.weight": pw, f"elasticbert.pooler.{i}.dense.bias": pb,
                          f"classifiers.{i}.weight": cw, f"classifiers.{i}.bias": cb})
        self.assertEqual(export.detect_format(state), "elasticbert")
        conv, cfg = export.convert(state, HF_CONFIG)
        self.assertEqual(cfg["early_exit"]["exit_layers"], [2, 3])
        self.assert_same_exits(m, conv, [2, 3])

    def test_refuses_unmapped_missing_and_misshapen_tensors(self):
        m = random_model()
        base = encoder_names(m)
        pw, pb, cw, cb = head(m, 3)
        base.update({"bert.pooler.dense.weight": pw, "bert.pooler.dense.bias": pb, "classifier.weight": cw,
                     "classifier.bias": cb})
        extra = dict(base, **{"bert.encoder.adapter.weight": torch.zeros(3)})
        with self.assertRaisesRegex(ValueError, "bert.encoder.adapter.weight"):
            export.convert(extra, HF_CONFIG, "hf")
        missing = {k: v for k, v in base.items() if k != "bert.encoder.layer.1.output.dense.weight"}
        with self.assertRaisesRegex(ValueError, "bert.encoder.layer.1.output.dense.weight"):
            export.convert(missing, HF_CONFIG, "hf")
        bad = dict(base, **{"classifier.weight": torch.zeros(3, 16)})
        with self.assertRaisesRegex(ValueError, "exits.3.classifier.weight"):
            export.convert(bad, HF_CONFIG, "hf")

    def test_written_model_round_trips(self):
        m = random_model()
        cfg = our_config()
        with tempfile.TemporaryDirectory() as d:
            export.write_model(m, cfg, d)
            tensors = safetensors_io.load(os.path.join(d, "model.safetensors"))
            self.assertEqual(set(tensors), set(bert_tensors(m)))
            with open(os.path.join(d, "config.json")) as f:
                self.assertEqual(json.load(f), cfg)
            back = MultiExitBert(cfg).eval()
            from multiexit import load_bert_tensors
            load_bert_tensors(back, tensors)
            self.assert_same_exits(m, back, [1, 2, 3])

    def test_convert_reads_safetensors_and_torch_save_alike(self):
        """HF checkpoints ship as model.safetensors today, older ones as torch.save'd pytorch_model.bin:
        `export.py convert` on either file of the same weights writes the same model."""
        m = random_model()
        state = hf_state(m)
        with tempfile.TemporaryDirectory() as d:
            torch.save(state, os.path.join(d, "pytorch_model.bin"))
            safetensors_io.save(os.path.join(d, "model.safetensors"), state)
            self.assertTrue(export.is_safetensors(os.path.join(d, "model.safetensors")))
            self.assertFalse(export.is_safetensors(os.path.join(d, "pytorch_model.bin")))
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(HF_CONFIG, f)
            written = {}
            for ckpt in ("pytorch_model.bin", "model.safetensors"):
                out = os.path.join(d, "out-" + ckpt)
                subprocess.run([sys.executable, os.path.join(HERE, "export.py"), "convert", "--state-dict",
                                os.path.join(d, ckpt), "--config", os.path.join(d, "config.json"), "--out", out],
                               check=True, capture_output=True)
                written[ckpt] = {}
                for name in sorted(os.listdir(out)):
                    with open(os.path.join(out, name), "rb") as f:
                        written[ckpt][name] = f.read()
            self.assertIn("model.safetensors", written["model.safetensors"])
            self.assertEqual(written["pytorch_model.bin"], written["model.safetensors"])
            cfg = json.loads(written["model.safetensors"]["config.json"])
            back = MultiExitBert(cfg).eval()
            load_bert_tensors(back, safetensors_io.load(os.path.join(d, "out-model.safetensors", "model.safetensors")))
            self.assert_same_exits(m, back, [3])

    def test_reads_bfloat16_tensors(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bf16.safetensors")
            x = torch.tensor([[1.5, -2.0], [0.0078125, 3e38]], dtype=torch.bfloat16)
            header = json.dumps({"x": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}}).encode()
            with open(path, "wb") as f:
                f.write(len(header).to_bytes(8, "little") + header + x.view(torch.int16).numpy().tobytes())
            state, cfg = export.load_state(path)
            self.assertIsNone(cfg)
            self.assertEqual(state["x"].dtype, torch.bfloat16)
            self.assertTrue(torch.equal(state["x"], x))


class TokenizerTest(unittest.TestCase):
    def test_matches_huggingface_golden_ids(self):
        """The C++ tokenizer is checked against these ids too, so Python and C++ agree through HF."""
        root = os.path.join(HERE, "..", "..")
        with open(os.path.join(root, "tests", "data", "text", "hf_golden.json"), encoding="utf-8") as f:
            golden = json.load(f)
        n = 0
        for group in golden["groups"]:
            tok = wordpiece.Tokenizer(os.path.join(root, group["vocab"]), group["max_length"], group["lowercase"])
            for case in group["cases"]:
                if "pair" not in case:
                    self.assertEqual(tok.encode(case["text"]), case["ids"], case["text"])
                    n += 1
        self.assertGreater(n, 100)

    def test_rejects_malformed_vocab(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "vocab.txt")
            with open(p, "w") as f:
                f.write("[PAD]\n[UNK]\n[CLS]\n[SEP]\nx\nx\n")
            with self.assertRaisesRegex(ValueError, "vocab.txt:6: duplicate token 'x'"):
                wordpiece.read_vocab(p)


if __name__ == "__main__":
    unittest.main()
