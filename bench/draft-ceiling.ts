// What a draft model can give on a pair, measured from its parts (for `bun run bench speculative`):
// the draft's per-position agreement with the target (its greedy token equals the target's, on the
// target's own greedy reply: the acceptance a perfect verifier sees), a draft pass's time and a
// target step's time with 1..MAX_K+1 rows, each the median of steps alternated between the two
// models so they see the same load. From them, the speedup of drafting k tokens per step,
//   E(k) / (T(k+1 rows) / T(1) + k * t_draft / T(1)),   E(k) = (1 - p^(k+1)) / (1 - p),
// at its best k (the ceiling for this pair on this machine, before any engine overhead), and the
// same with a perfect draft (p = 1).
import { openModel, readModelFile } from "../src/model-file.ts";
import { createBatch } from "../src/native/model.ts";
import type { DraftingNativeModel } from "../src/native/model-api.ts";
import { argmax } from "../src/sampling/index.ts";

/** Deepest draft the ceiling considers (the bench's DRAFT_MAX). */
const MAX_K = 8;

export interface DraftCeiling {
  /** Share of positions where the draft's greedy token is the target's. */
  agreement: number;
  /** Median ms of one draft pass (one row) and of one target step of 1 row. */
  draftMs: number;
  targetMs: number;
  /** Median ms of a target step of k + 1 rows, k = 0..MAX_K. */
  verifyMs: number[];
  /** Best k and its expected speedup; the same with a perfect draft. */
  bestK: number;
  ceiling: number;
  perfectK: number;
  perfectCeiling: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1] as number;
}

/** The expected speedup of drafting k tokens per step, and the best k, at agreement p. */
export function speedupAt(
  p: number,
  draftRatio: number,
  verifyRatio: readonly number[],
): { k: number; speedup: number } {
  let best = { k: 0, speedup: 1 };
  for (let k = 1; k < verifyRatio.length; k++) {
    let expected = 0;
    for (let i = 0; i <= k; i++) expected += p ** i; // accepted drafts + the target's own token
    const s = expected / ((verifyRatio[k] as number) + k * draftRatio);
    if (s > best.speedup) best = { k, speedup: s };
  }
  return best;
}

/** Measures the parts on `target` and `draft` over `tokens` greedy tokens after `promptIds`. */
export function measureCeiling(
  target: string,
  draft: string,
  promptIds: readonly number[],
  tokens: number,
  threads: number,
): DraftCeiling {
  const ctx = promptIds.length + tokens + MAX_K + 2;
  const opts = {
    threads,
    kvPages: Math.ceil(ctx / 16) + 4,
    maxBatchTokens: Math.max(64, promptIds.length),
    maxSequences: 1,
  };
  const t: DraftingNativeModel = openModel(readModelFile(target), opts);
  const d: DraftingNativeModel = openModel(readModelFile(draft), opts);
  try {
    const vocab = t.info.vocabSize;
    const batch = createBatch(opts.maxBatchTokens);
    const logits = new Float32Array(vocab * (MAX_K + 1));
    const ts = t.seqCreate();
    const ds = d.seqCreate();
    const run = (
      m: DraftingNativeModel,
      seq: number,
      ids: readonly number[],
      pos: number,
      want: "last" | "all",
    ) => {
      batch.length = ids.length;
      ids.forEach((id, i) => {
        batch.tokens[i] = id;
        batch.positions[i] = pos + i;
        batch.seqIds[i] = seq;
        batch.wantLogits[i] = want === "all" || i === ids.length - 1 ? 1 : 0;
      });
      const started = performance.now();
      m.decode(batch, logits);
      return performance.now() - started;
    };
    run(t, ts, promptIds, 0, "last");
    let next = argmax(logits.subarray(0, vocab));
    run(d, ds, promptIds, 0, "last");
    let guess = argmax(logits.subarray(0, vocab));
    const targetMs: number[] = [];
    const draftMs: number[] = [];
    let agreed = 0;
    let pos = promptIds.length;
    // Target and draft step by turns over the target's greedy reply.
    for (let i = 0; i < tokens; i++, pos++) {
      if (guess === next) agreed++;
      const id = next;
      targetMs.push(run(t, ts, [id], pos, "last"));
      next = argmax(logits.subarray(0, vocab));
      draftMs.push(run(d, ds, [id], pos, "last"));
      guess = argmax(logits.subarray(0, vocab));
    }
    // Target steps of k + 1 rows at the reply's end (written, then dropped), k by turns.
    const verify: number[][] = Array.from({ length: MAX_K + 1 }, () => []);
    for (let rep = 0; rep < 12; rep++)
      for (let k = 0; k <= MAX_K; k++) {
        const ids = Array.from({ length: k + 1 }, (_, i) => 300 + i);
        verify[k]?.push(run(t, ts, ids, pos, "all"));
        t.seqShift(ts, pos, k + 1);
      }
    const agreement = agreed / tokens;
    const one = median(targetMs);
    const verifyMs = verify.map(median);
    // Row 0 of the verify series is a plain step at the same length: the ratios use it.
    const base = verifyMs[0] as number;
    const ratios = verifyMs.map((ms) => ms / base);
    const draftRatio = median(draftMs) / one;
    const real = speedupAt(agreement, draftRatio, ratios);
    const perfect = speedupAt(1, draftRatio, ratios);
    return {
      agreement,
      draftMs: median(draftMs),
      targetMs: one,
      verifyMs,
      bestK: real.k,
      ceiling: real.speedup,
      perfectK: perfect.k,
      perfectCeiling: perfect.speedup,
    };
  } finally {
    t.close();
    d.close();
  }
}
