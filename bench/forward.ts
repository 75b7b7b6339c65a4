// hearth-only forward speed, measured the way llama-bench does: pp512 (one 512-token batch into an
// empty sequence, logits of the last row) and tg128 (128 single-token steps from an empty sequence).
// `bun bench/forward.ts [--quick] [--threads N] [--json]`; bench/e2e.ts sets the peer beside it.
import { pullModel } from "../src/gguf/pull.ts";
import { createBatch, openNativeModel } from "../src/native/model.ts";
import type { NativeModel } from "../src/native/model-api.ts";
import { type BenchOptions, meanSd, peakRssBytes, runStandalone, type SuiteResult, stats } from "./lib.ts";

export interface ForwardFigures {
  pp_tokens_per_s: number[];
  tg_tokens_per_s: number[];
}

/**
 * Runs pp`ppTokens` and tg`tgTokens` `reps` times each, alternating; returns tokens/s per run. With
 * `depth`, both run after `depth` tokens already in the sequence (llama-bench `-d`): the depth is
 * prefilled once, untimed, in chunks of `ppTokens`, and each test's tokens are dropped after it.
 */
export function measureForward(
  model: NativeModel,
  ppTokens: number,
  tgTokens: number,
  reps: number,
  depth = 0,
): ForwardFigures {
  const vocab = model.info.vocabSize;
  const batch = createBatch(ppTokens);
  const logits = new Float32Array(vocab);
  // Deterministic pseudo-random token ids (llama-bench feeds random tokens too).
  let state = 12345;
  const nextToken = () => {
    state = (state * 1103515245 + 12345) >>> 0;
    return state % vocab;
  };
  /** Appends `n` tokens at positions from..from+n-1 to `seq` in one decode (logits of the last). */
  const fill = (seq: number, from: number, n: number) => {
    batch.length = n;
    for (let i = 0; i < n; i++) {
      batch.tokens[i] = nextToken();
      batch.positions[i] = from + i;
      batch.seqIds[i] = seq;
      batch.wantLogits[i] = i === n - 1 ? 1 : 0;
    }
    model.decode(batch, logits);
  };
  const out: ForwardFigures = { pp_tokens_per_s: [], tg_tokens_per_s: [] };
  const seq = model.seqCreate();
  try {
    for (let at = 0; at < depth; at += ppTokens) fill(seq, at, Math.min(ppTokens, depth - at));
    for (let r = 0; r < reps; r++) {
      let t0 = performance.now();
      fill(seq, depth, ppTokens);
      out.pp_tokens_per_s.push(ppTokens / ((performance.now() - t0) / 1000));
      model.seqShift(seq, depth, ppTokens);

      batch.length = 1;
      batch.seqIds[0] = seq;
      batch.wantLogits[0] = 1;
      t0 = performance.now();
      for (let i = 0; i < tgTokens; i++) {
        batch.tokens[0] = nextToken();
        batch.positions[0] = depth + i;
        model.decode(batch, logits);
      }
      out.tg_tokens_per_s.push(tgTokens / ((performance.now() - t0) / 1000));
      model.seqShift(seq, depth, tgTokens);
    }
  } finally {
    model.seqFree(seq);
  }
  return out;
}

export async function run(opts: BenchOptions): Promise<SuiteResult> {
  const path = await pullModel();
  const model = openNativeModel(path, {
    threads: opts.threads,
    kvPages: 64,
    maxBatchTokens: 512,
    maxSequences: 2,
  });
  try {
    measureForward(model, 32, 8, 1); // warm-up: page in the weights, spin up the pool
    const reps = opts.quick ? 1 : 3;
    const f = measureForward(model, 512, 128, reps);
    const pp = stats(f.pp_tokens_per_s);
    const tg = stats(f.tg_tokens_per_s);
    const rss = peakRssBytes();
    return {
      suite: "forward",
      columns: ["model", "threads", "test", "t/s"],
      rows: [
        { model: "SmolLM2-135M Q4_1", threads: opts.threads, test: "pp512", "t/s": meanSd(pp) },
        { model: "SmolLM2-135M Q4_1", threads: opts.threads, test: "tg128", "t/s": meanSd(tg) },
      ],
      summary: {
        hearth_pp512: pp.mean,
        hearth_tg128: tg.mean,
        hearth_peak_rss_mb: rss === null ? null : rss / 2 ** 20,
      },
      notes: [
        `${reps} repetitions, hearth only; peak RSS ${rss === null ? "?" : (rss / 2 ** 20).toFixed(0)} MiB`,
      ],
    };
  } finally {
    model.close();
  }
}

if (import.meta.main) await runStandalone(run);
