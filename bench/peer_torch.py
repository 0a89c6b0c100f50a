#!/usr/bin/python3
"""PyTorch peer of engine_bench: the same model files, the same layer and whole-model cases, the same
inputs, checked against our engine's outputs before anything is timed.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/peer_torch.py --outputs DIR --threads 1 \\
        vit=models/fmnist-vit bert=build/bert-base-1l [text=models/spam-bert]

With --dtype bf16 or bf16-autocast, the layer cases only, in bfloat16: the peers of our Gemm::bf16,
checked against our fp32 outputs to --bf16-tolerance after the fp32 check. bf16 casts the layer's module
and input to torch.bfloat16 (every op in bf16, the matrix products on oneDNN, on AMX where the CPU has it);
bf16-autocast runs the fp32 module under torch.autocast("cpu", torch.bfloat16) (matrix products in bf16,
LayerNorm and softmax in fp32), entered once around all the calls timed, as a server would: autocast then
casts the weights on the first call only (its cache lives until the context exits).

Prints one JSON object per case: {"peer", "case", "settings", "median_us", "p10_us", "p90_us", ...}.
Thread settings are the caller's to vary (bench/compare.sh tries several): torch.set_num_threads reaches
torch's own kernels, OPENBLAS_NUM_THREADS (environment, read at load) the matrix multiplies, and
OMP_WAIT_POLICY how torch's OpenMP workers wait.
Timing, as engine_bench with --benchmark_repetitions: a warm-up, then `--reps` repetitions, each the mean
latency of back-to-back calls over at least `--min-time` seconds; median, p10 and p90 over repetitions.
"""
import argparse
import contextlib
import copy
import json
import os
import sys
import time

import numpy as np
import torch

import peer_models


def measure(fn, reps, min_time):
    fn()
    warm_end = time.perf_counter() + max(0.2, min_time)
    calls = 0
    while time.perf_counter() < warm_end or calls < 2:
        fn()
        calls += 1
    start = time.perf_counter()
    fn()
    per_call = max(1e-7, time.perf_counter() - start)
    n = max(1, int(min_time / per_call))
    means = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        means.append((time.perf_counter() - start) / n)
    return {"median_us": float(np.median(means)) * 1e6, "p10_us": float(np.percentile(means, 10)) * 1e6,
            "p90_us": float(np.percentile(means, 90)) * 1e6, "calls_per_rep": n, "reps": reps,
            "samples_us": [m * 1e6 for m in means]}


@torch.no_grad()
def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="name=model_dir (names as given to engine_bench)")
    p.add_argument("--outputs", required=True, help="engine_bench --write_outputs directory")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--min-time", type=float, default=0.05)
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.add_argument("--dtype", choices=["fp32", "bf16", "bf16-autocast"], default="fp32")
    p.add_argument("--bf16-tolerance", type=float, default=5e-2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    settings = {"torch.set_num_threads": a.threads,
                **{k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY") if k in os.environ}}
    for spec in a.models:
        name, model_dir = spec.split("=", 1)
        model, cfg = peer_models.load(model_dir)
        full, layer = peer_models.FullModel(model, cfg).eval(), peer_models.FirstLayer(model).eval()
        big = cfg["hidden_size"] >= 512
        for batch in ([1] if big else [1, 32]):
            inputs, meta = peer_models.case_inputs(a.outputs, name, batch, cfg)
            our_hidden, our_logits = peer_models.our_outputs(a.outputs, name, batch, meta)
            _, hidden = (model(*full_inputs_for_hidden(full, inputs), keep_hidden=True))
            errors = {"hidden1": peer_models.relative_error(our_hidden, hidden[1].numpy()),
                      "logits": peer_models.relative_error(our_logits, full(*inputs).numpy())}
            if max(errors.values()) > a.tolerance:
                sys.exit(f"peer_torch: {name} batch {batch}: outputs differ from ours: {errors}")
            x = hidden[0].contiguous()
            cases = [("layer", lambda: layer(x))] + ([] if big else [("model", lambda: full(*inputs))])
            if a.dtype == "bf16":
                cast, x_bf16 = copy.deepcopy(layer).to(torch.bfloat16), x.bfloat16()  # .to() is in place
                cases = [("layer", lambda: cast(x_bf16))]
            elif a.dtype == "bf16-autocast":
                cases = cases[:1]
            for kind, fn in cases:
                with (torch.autocast("cpu", dtype=torch.bfloat16) if a.dtype == "bf16-autocast"
                      else contextlib.nullcontext()):
                    if a.dtype != "fp32":
                        errors["hidden1_bf16"] = peer_models.relative_error(our_hidden, fn().float().numpy())
                        if errors["hidden1_bf16"] > a.bf16_tolerance:
                            sys.exit(f"peer_torch: {name} batch {batch}: bf16 outputs differ from ours: {errors}")
                    r = measure(fn, a.reps, a.min_time)
                flops = peer_models.layer_flops(cfg, batch, meta["tokens"]) * (1 if kind == "layer" else cfg["num_hidden_layers"])
                r.update({"peer": "torch" if a.dtype == "fp32" else "torch-" + a.dtype, "case": f"{kind}/{name}/batch:{batch}/threads:{a.threads}",
                          "settings": settings, "check_relative_error": errors,
                          "gflops": flops / (r["median_us"] * 1e3)})
                print(json.dumps(r), flush=True)


def full_inputs_for_hidden(full, inputs):
    """The module's own inputs (normalised images, or ids/types/lengths) from FullModel's raw inputs."""
    if full.cfg["model_type"] == "vit":
        (pixels,) = inputs
        return ((pixels.view(pixels.shape[0], *full.shape).float() / 255.0 - full.mean) / full.std,)
    return inputs


if __name__ == "__main__":
    main()
