#!/usr/bin/python3
"""ONNX files for the ONNX Runtime peer, exported with torch.onnx.export from the same model files (via
bench/peer_models.py, so the ONNX graphs compute what peer_torch.py times): per model and batch, the whole
model (<name>.model.b<B>.onnx: raw input -> every exit's logits) and encoder layer 1
(<name>.layer.b<B>.onnx: hidden state -> hidden state); plus identity.onnx, one tiny op, which measures what
a call through onnxruntime-node costs before any model work.

    /usr/bin/python3 bench/export_onnx.py --outputs DIR --out ONNX_DIR vit=models/fmnist-vit bert=...
"""
import argparse
import os

import onnx
import onnx.helper as oh
import torch

import peer_models

OPSET = 17  # LayerNormalization is an ONNX op from 17 on: ORT runs it as one fused kernel


@torch.no_grad()
def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="name=model_dir")
    p.add_argument("--outputs", required=True, help="engine_bench --write_outputs directory (inputs)")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for spec in a.models:
        name, model_dir = spec.split("=", 1)
        model, cfg = peer_models.load(model_dir)
        full, layer = peer_models.FullModel(model, cfg).eval(), peer_models.FirstLayer(model).eval()
        for batch in ([1] if cfg["hidden_size"] >= 512 else [1, 32]):
            inputs, meta = peer_models.case_inputs(a.outputs, name, batch, cfg)
            names = ["pixels"] if cfg["model_type"] == "vit" else ["input_ids", "token_type_ids", "lengths"]
            torch.onnx.export(full, inputs, os.path.join(a.out, f"{name}.model.b{batch}.onnx"), opset_version=OPSET,
                              input_names=names, output_names=["logits"])
            x = torch.zeros(batch, meta["tokens"], cfg["hidden_size"])
            torch.onnx.export(layer, (x,), os.path.join(a.out, f"{name}.layer.b{batch}.onnx"), opset_version=OPSET,
                              input_names=["hidden"], output_names=["out"])
    graph = oh.make_graph([oh.make_node("Identity", ["x"], ["y"])], "identity",
                          [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 64])],
                          [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 64])])
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", OPSET)]), os.path.join(a.out, "identity.onnx"))
    print(f"ONNX files in {a.out}")


if __name__ == "__main__":
    main()
