// Text-side speed: tokenizer load / encode / decode on the default model's vocabulary, and the
// cost of sampling one 49152-wide logits row per sampler configuration. No peer column: llama.cpp
// does these inside its C++ API, which node-llama-cpp does not expose separately in a comparable way.

import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { pullModel } from "../src/gguf/pull.ts";
import { loadLibrary } from "../src/native/lib.ts";
import { Rng, Sampler, type SamplerOptions } from "../src/sampling/index.ts";
import { Tokenizer } from "../src/tokenizer/index.ts";
import { type BenchOptions, type Cell, runStandalone, type SuiteResult, stats } from "./lib.ts";

function timeMs(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

export async function run(opts: BenchOptions): Promise<SuiteResult> {
  const reps = opts.quick ? 3 : 10;
  // The sampler's native paths (argmax, exp weights) run when libhearth is loaded, as in the
  // engine and the server; load it here so this suite measures the same alone or after others.
  await loadLibrary();
  const md = new GgufMetadata(readGguf(await pullModel()).metadata);
  const corpus: string[] = await Bun.file(`${import.meta.dir}/../test/fixtures/tokenizer-corpus.json`).json();
  const text = corpus.join("\n");

  const loadMs: number[] = [];
  const coldMs: number[] = [];
  let tokenizer: Tokenizer | undefined;
  let ids: number[] = [];
  for (let r = 0; r < reps; r++) {
    loadMs.push(
      timeMs(() => {
        tokenizer = Tokenizer.fromGguf(md);
      }),
    );
    const tok = tokenizer as Tokenizer;
    // Cold: a fresh tokenizer has an empty word cache, so every word goes through BPE merges.
    coldMs.push(
      timeMs(() => {
        ids = tok.encode(text);
      }),
    );
  }
  const tok = tokenizer as Tokenizer;
  const warmMs: number[] = [];
  const decodeMs: number[] = [];
  for (let r = 0; r < reps * 5; r++) {
    warmMs.push(timeMs(() => tok.encode(text)));
    decodeMs.push(timeMs(() => tok.decode(ids)));
  }

  const rng = new Rng(1);
  const vocab = tok.vocabSize;
  const rows = Array.from({ length: 16 }, () => {
    const row = new Float32Array(vocab);
    for (let i = 0; i < vocab; i++) row[i] = (rng.nextFloat() + rng.nextFloat() + rng.nextFloat() - 1.5) * 6;
    return row;
  });
  const history = Array.from({ length: 256 }, () => rng.nextU32() % vocab);
  const configs: [string, SamplerOptions][] = [
    ["greedy", { temperature: 0 }],
    ["default (top-k 40, top-p 0.95, min-p 0.05, T 0.8)", {}],
    ["default + penalties (last 64)", { repeatPenalty: 1.1, presencePenalty: 0.5, frequencyPenalty: 0.5 }],
    ["top-p 0.95 only (no top-k)", { topK: 0, minP: 0 }],
    ["full distribution (T 1, no filters)", { topK: 0, topP: 1, minP: 0, temperature: 1 }],
  ];
  const sampleUs: Record<string, number> = {};
  const tableRows: Array<Record<string, Cell>> = [
    { figure: "tokenizer load (49152 tokens, 48900 merges)", value: stats(loadMs).mean, unit: "ms" },
    {
      figure: `encode cold, ${ids.length} tokens`,
      value: ids.length / (stats(coldMs).mean / 1000),
      unit: "tok/s",
    },
    {
      figure: `encode warm, ${ids.length} tokens`,
      value: ids.length / (stats(warmMs).mean / 1000),
      unit: "tok/s",
    },
    {
      figure: `decode, ${ids.length} tokens`,
      value: ids.length / (stats(decodeMs).mean / 1000),
      unit: "tok/s",
    },
  ];
  for (const [name, options] of configs) {
    const s = new Sampler({ ...options, seed: 1 });
    for (let i = 0; i < 200; i++) s.sample(rows[i % rows.length] as Float32Array, history); // JIT warm-up
    const n = opts.quick ? 64 : 512;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) s.sample(rows[i % rows.length] as Float32Array, history);
    const us = ((performance.now() - t0) * 1000) / n;
    sampleUs[name] = us;
    tableRows.push({ figure: `sample 1 row: ${name}`, value: us, unit: "us" });
  }

  return {
    suite: "text",
    columns: ["figure", "value", "unit"],
    rows: tableRows,
    summary: {
      text_tokenizer_load_ms: stats(loadMs).mean,
      text_encode_cold_tok_per_s: ids.length / (stats(coldMs).mean / 1000),
      text_encode_warm_tok_per_s: ids.length / (stats(warmMs).mean / 1000),
      text_sample_greedy_us: sampleUs.greedy ?? null,
      text_sample_default_us: sampleUs["default (top-k 40, top-p 0.95, min-p 0.05, T 0.8)"] ?? null,
      text_sample_top_p_only_us: sampleUs["top-p 0.95 only (no top-k)"] ?? null,
    },
    notes: [
      `encode text: the ${corpus.length}-string parity corpus joined by newlines (${text.length} chars).`,
    ],
  };
}

if (import.meta.main) await runStandalone(run);
