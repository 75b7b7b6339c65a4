// One step's batch: which rows of which running sequences ride in the next decode call. Decoding
// sequences go first (one row each, plus their drafts), then prompt chunks, within the step's
// token budget; the scheduler decides who runs, this decides what each one puts in the batch.
import type { Batch, NativeModel } from "../native/model-api.ts";
import { type Sequence, shiftSequence } from "./sequence.ts";

/**
 * Prompt rows a step scores at most (echo + logprobs): each is a vocabulary-sized logits row the
 * decode writes out (192 KiB for a 49k vocabulary), so a 512-token prompt scored in one step
 * would grow the logits buffer to ~100 MB; in chunks of 64 it stays near 13 MB.
 */
const MAX_SCORED_ROWS_PER_STEP = 64;

/** What packBatch made: the logits rows the batch wants, or the sequence whose context is full. */
export type Packed = { logitsRows: number } | { contextFull: Sequence };

/**
 * Fills `b` from the running sequences, shortest pending first. Sets each sequence's `taking`,
 * `logitsRow`, `draft` and `promptRows` for this step. A caller's sequence whose context is full
 * shifts first; one that cannot is returned (the batch is then incomplete: pack again without it).
 * `draftFor` gives a decoding sequence's draft tokens for the rows left in the step.
 */
export function packBatch(
  b: Batch,
  running: readonly Sequence[],
  stepTokens: number,
  model: NativeModel,
  draftFor: (s: Sequence, rowsLeft: number) => number[],
): Packed {
  b.length = 0;
  let rows = 0;
  let logitsRows = 0;
  // The step's scored prompt rows go to the oldest scoring requests first, so a long one is
  // never starved by shorter ones arriving after it (the batch itself is filled shortest first).
  const scoreAllot = new Map<Sequence, number>();
  let scoreBudget = MAX_SCORED_ROWS_PER_STEP;
  for (const s of [...running].sort((x, y) => x.order - y.order)) {
    if (s.promptLogprobs === null) continue;
    const unscored = s.req.promptIds.length - 1 - Math.max(s.kv.computed, s.promptLogprobs.length);
    const allot = Math.min(Math.max(0, unscored), scoreBudget);
    scoreAllot.set(s, allot);
    scoreBudget -= allot;
  }
  const pendingOf = (s: Sequence) => s.kv.tokens.length - s.kv.computed;
  const byPending = [...running].sort((x, y) => pendingOf(x) - pendingOf(y) || x.order - y.order);
  for (const s of byPending) {
    s.logitsRow = -1;
    s.taking = 0;
    s.draft = [];
    s.draftModelTokens = 0;
    s.promptRows = null;
    if (s.held) continue;
    const pending = pendingOf(s);
    if (pending > 0 && s.kv.computed >= s.contextTokens && !shiftSequence(model, s))
      return { contextFull: s };
    let take = Math.min(pending, stepTokens - rows);
    if (s.owned) take = Math.min(take, s.contextTokens - s.kv.computed);
    if (s.promptLogprobs !== null) {
      // Rows [firstScored, promptIds.length - 1) are still to be scored: at most its allotment.
      const firstScored = Math.max(s.kv.computed, s.promptLogprobs.length);
      const allot = scoreAllot.get(s) ?? 0;
      const scoring = Math.min(s.kv.computed + take, s.req.promptIds.length - 1) - firstScored;
      if (scoring > allot) take = firstScored - s.kv.computed + allot;
    }
    if (take <= 0) continue;
    s.taking = take;
    for (let k = 0; k < take; k++) {
      const pos = s.kv.computed + k;
      b.tokens[rows] = s.kv.tokens[pos] as number;
      b.positions[rows] = pos;
      b.seqIds[rows] = s.kv.seqId;
      const last = k === take - 1 && take === pending;
      // Row pos scores prompt token pos + 1 (once: a recomputed prompt is not scored again).
      const scores =
        !last &&
        s.promptLogprobs !== null &&
        pos + 1 < s.req.promptIds.length &&
        pos >= s.promptLogprobs.length;
      b.wantLogits[rows] = last || scores ? 1 : 0;
      if (scores) {
        if (s.promptRows === null) s.promptRows = { row: logitsRows, pos, count: 0 };
        s.promptRows.count++;
        logitsRows++;
      }
      if (last) s.logitsRow = logitsRows++;
      rows++;
    }
    if (take !== pending || s.gen.spec.maxTokens === 0) continue;
    s.draft = draftFor(s, stepTokens - rows);
    for (const [k, id] of s.draft.entries()) {
      b.tokens[rows] = id;
      b.positions[rows] = s.kv.tokens.length + k;
      b.seqIds[rows] = s.kv.seqId;
      b.wantLogits[rows] = 1;
      logitsRows++;
      rows++;
    }
    s.taking += s.draft.length;
  }
  b.length = rows;
  return { logitsRows };
}
