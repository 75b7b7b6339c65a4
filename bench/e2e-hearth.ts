// Child process of bench/e2e.ts: hearth's side of one repetition (pp N, tg N on the native model),
// in its own process so its peak RSS is its own. Prints one JSON line. With --depth D both tests
// run after D tokens already in the context (llama-bench -d D).
//   bun bench/e2e-hearth.ts --pp 512 --tg 128 --threads 2 [--depth D] [--model PATH]
import { statSync } from "node:fs";
import { pullModel } from "../src/gguf/pull.ts";
import { kvPageTokens } from "../src/native/limits.ts";
import { openNativeModel } from "../src/native/model.ts";
import { measureForward } from "./forward.ts";
import { peakRssBytes } from "./lib.ts";

export interface HearthRepResult {
  runtime: "hearth";
  pp: number;
  tg: number;
  threads: number;
  /** Tokens already in the context when pp and tg run. */
  depth: number;
  pp_tps: number[];
  tg_tps: number[];
  peak_rss_mb: number | null;
  model_file_mb: number;
  kv_pool_mb: number;
}

function arg(name: string, fallback: number, min = 1): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < min) throw new Error(`--${name} must be an integer >= ${min}`);
  return v;
}

async function main(): Promise<void> {
  const pp = arg("pp", 512);
  const tg = arg("tg", 128);
  const threads = arg("threads", 2);
  const depth = arg("depth", 0, 0);
  const mi = process.argv.indexOf("--model");
  const path = mi >= 0 ? (process.argv[mi + 1] as string) : await pullModel();
  // The KV pool holds one sequence: the depth and the longer test (pp and tg run one after the other).
  const kvPages = Math.ceil((depth + Math.max(pp, tg)) / kvPageTokens()) + 1;
  const model = openNativeModel(path, { threads, kvPages, maxBatchTokens: pp, maxSequences: 1 });
  try {
    measureForward(model, Math.min(32, pp), Math.min(4, tg), 1); // warm-up, as llama-bench does
    const f = measureForward(model, pp, tg, 1, depth);
    const kv = model.kvStats();
    const rss = peakRssBytes();
    const out: HearthRepResult = {
      runtime: "hearth",
      pp,
      tg,
      threads,
      depth,
      pp_tps: f.pp_tokens_per_s,
      tg_tps: f.tg_tokens_per_s,
      peak_rss_mb: rss === null ? null : rss / 2 ** 20,
      model_file_mb: statSync(path).size / 2 ** 20,
      kv_pool_mb: (kv.pagesTotal * kv.pageSizeBytes) / 2 ** 20,
    };
    console.log(JSON.stringify(out));
  } finally {
    model.close();
  }
}

if (import.meta.main) await main();
