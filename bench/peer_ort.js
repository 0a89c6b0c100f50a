#!/usr/bin/env node
// ONNX Runtime peer of engine_bench (npm onnxruntime-node, its native CPU library inside the package):
// runs the ONNX files of bench/export_onnx.py on the inputs engine_bench --write_outputs wrote, checks the
// outputs against ours, then times them as engine_bench does (warm-up; `--reps` repetitions, each the mean
// latency of back-to-back calls over >= `--min-time` s; median, p10, p90 over repetitions).
//
//   node bench/peer_ort.js --outputs DIR --onnx ONNX_DIR --threads 1 [--spin 1] vit bert text
//
// Settings: intraOpNumThreads = --threads, interOpNumThreads = 1, sequential execution, all graph
// optimisations; --spin 0 turns off the intra-op pool's spinning (session.intra_op.allow_spinning).
// Also prints "identity": one Identity op, the cost of a call through the Node binding alone.
// EE_ORT_NODE names the package directory (default /opt/eesplit/npm/node_modules/onnxruntime-node).
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(process.env.EE_ORT_NODE || '/opt/eesplit/npm/node_modules/onnxruntime-node');

function args() {
  const a = { threads: 1, spin: 1, reps: 15, minTime: 0.05, tolerance: 1e-4, models: [] };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; ++i) {
    if (v[i] === '--outputs') a.outputs = v[++i];
    else if (v[i] === '--onnx') a.onnx = v[++i];
    else if (v[i] === '--threads') a.threads = Number(v[++i]);
    else if (v[i] === '--spin') a.spin = Number(v[++i]);
    else if (v[i] === '--reps') a.reps = Number(v[++i]);
    else if (v[i] === '--min-time') a.minTime = Number(v[++i]);
    else if (v[i] === '--tolerance') a.tolerance = Number(v[++i]);
    else a.models.push(v[i]);
  }
  if (!a.outputs || !a.onnx || !a.models.length) throw new Error('usage: peer_ort.js --outputs DIR --onnx DIR [--threads N] [--spin 0|1] MODEL...');
  return a;
}

function readF32(file) {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

function relativeError(ours, theirs) {
  let diff = 0, scale = 1e-12;
  for (let i = 0; i < ours.length; ++i) {
    diff = Math.max(diff, Math.abs(ours[i] - theirs[i]));
    scale = Math.max(scale, Math.abs(ours[i]));
  }
  return diff / scale;
}

function percentile(sorted, q) {  // numpy's linear interpolation, as peer_torch.py
  const x = q * (sorted.length - 1), lo = Math.floor(x), hi = Math.ceil(x);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (x - lo);
}

async function measure(run, reps, minTime) {
  const now = () => Number(process.hrtime.bigint()) / 1e9;
  await run();
  const warmEnd = now() + Math.max(0.2, minTime);
  for (let calls = 0; now() < warmEnd || calls < 2; ++calls) await run();
  let t = now();
  await run();
  const n = Math.max(1, Math.floor(minTime / Math.max(1e-7, now() - t)));
  const means = [];
  for (let r = 0; r < reps; ++r) {
    t = now();
    for (let i = 0; i < n; ++i) await run();
    means.push((now() - t) / n);
  }
  means.sort((x, y) => x - y);
  return { median_us: percentile(means, 0.5) * 1e6, p10_us: percentile(means, 0.1) * 1e6,
           p90_us: percentile(means, 0.9) * 1e6, calls_per_rep: n, reps, samples_us: means.map((m) => m * 1e6) };
}

function layerFlops(meta, batch, hidden, inner) {
  const rows = batch * meta.tokens;
  return 2 * rows * hidden * (4 * hidden + 2 * inner) + 4 * batch * meta.tokens * meta.tokens * hidden;
}

async function main() {
  const a = args();
  const options = {
    intraOpNumThreads: a.threads, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: String(a.spin) } } },
  };
  const settings = { intraOpNumThreads: a.threads, allow_spinning: a.spin, ort: ort.env.versions.common };
  const emit = (r) => console.log(JSON.stringify(r));

  const identity = await ort.InferenceSession.create(path.join(a.onnx, 'identity.onnx'), options);
  const x = new ort.Tensor('float32', new Float32Array(64), [1, 64]);
  emit({ peer: 'ort', case: `identity/threads:${a.threads}`, settings, ...(await measure(() => identity.run({ x }), a.reps, a.minTime)) });

  for (const name of a.models) {
    for (const batch of [1, 32]) {
      const stem = path.join(a.outputs, `${name}.b${batch}`);
      const modelFile = path.join(a.onnx, `${name}.model.b${batch}.onnx`);
      if (!fs.existsSync(modelFile)) continue;  // BERT-base: layer at batch 1 only
      const meta = JSON.parse(fs.readFileSync(stem + '.json', 'utf8'));
      const raw = fs.readFileSync(stem + '.input.bin');
      let feeds;
      if (name === 'vit') {
        feeds = { pixels: new ort.Tensor('uint8', new Uint8Array(raw), [batch, raw.length / batch]) };
      } else {
        const ids = new Int32Array(raw.buffer, raw.byteOffset, raw.length / 4);
        feeds = {
          input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [batch, meta.tokens]),
          token_type_ids: new ort.Tensor('int64', new BigInt64Array(ids.length), [batch, meta.tokens]),
          lengths: new ort.Tensor('int64', new BigInt64Array(batch).fill(BigInt(meta.tokens)), [batch]),
        };
      }
      const full = await ort.InferenceSession.create(modelFile, options);
      const layer = await ort.InferenceSession.create(path.join(a.onnx, `${name}.layer.b${batch}.onnx`), options);
      const hiddenSize = meta.hidden;
      const inner = JSON.parse(fs.readFileSync(path.join(a.outputs, `${name}.config.json`), 'utf8')).intermediate_size;
      const layers = JSON.parse(fs.readFileSync(path.join(a.outputs, `${name}.config.json`), 'utf8')).num_hidden_layers;
      // Check against ours: every exit's logits, and layer 1 on our embeddings (hidden0) against our hidden1.
      const logits = (await full.run(feeds)).logits.data;
      const hidden0 = readF32(stem + '.hidden0.bin');
      const hiddenFeeds = { hidden: new ort.Tensor('float32', hidden0, [batch, meta.tokens, hiddenSize]) };
      const out = (await layer.run(hiddenFeeds)).out.data;
      const errors = { hidden1: relativeError(readF32(stem + '.hidden1.bin'), out),
                       logits: relativeError(readF32(stem + '.logits.bin'), logits) };
      if (Math.max(errors.hidden1, errors.logits) > a.tolerance) {
        throw new Error(`${name} batch ${batch}: outputs differ from ours: ${JSON.stringify(errors)}`);
      }
      const flops = layerFlops(meta, batch, hiddenSize, inner);
      const cases = [['layer', () => layer.run(hiddenFeeds), flops]];
      if (hiddenSize < 512) cases.push(['model', () => full.run(feeds), flops * layers]);
      for (const [kind, run, f] of cases) {
        const r = await measure(run, a.reps, a.minTime);
        emit({ ...r, peer: 'ort', case: `${kind}/${name}/batch:${batch}/threads:${a.threads}`, settings,
               check_relative_error: errors, gflops: f / (r.median_us * 1e3) });
      }
    }
  }
}

main().catch((e) => { console.error(`peer_ort: ${e.message}`); process.exit(1); });
