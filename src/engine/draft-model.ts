// A draft model beside the target in the same engine: for each decoding sequence it keeps a KV
// sequence of its own (in the draft model's pool), catches it up with the sequence's tokens and
// proposes the next tokens greedily, batched over the step's sequences, in one native call for
// the whole draft (NativeDrafting.draft); the target verifies them in its step. Each sequence's depth follows its measured
// acceptance and the measured costs of a draft pass and of a verified row against a target step.
import { type Batch, KvFullError, type NativeDrafting, type NativeModel } from "../native/model-api.ts";
import { draftSources } from "../speculative.ts";
import type { OwnedSequence } from "./request.ts";
import type { Sequence } from "./sequence.ts";

/** A sequence's state on the draft model. */
interface DraftSeq {
  seqId: number;
  /** Tokens the draft's KV holds (a prefix of the target's tokens, then drafted tokens). */
  tokens: number[];
  /** Estimated chance that the next drafted token is accepted (moving average over positions). */
  acceptance: number;
  /** Steps in a row it drafted nothing because drafting did not pay (see depthFor). */
  resting: number;
}

/** What a sequence asks of a proposal: its tokens (the last one not yet computed by the target) and a depth. */
export interface DraftAsk {
  kv: OwnedSequence;
  depth: number;
}

export interface DraftModelStats {
  /** Draft decode calls (forward passes of the draft model). */
  passes: number;
  /** Rows those passes ran (catch-up of the context and drafted tokens). */
  rows: number;
  /** Sequences holding a KV sequence on the draft model. */
  sequences: number;
}

/** Weight of one verified position in a sequence's acceptance estimate. */
const ACCEPTANCE_STEP = 0.15;
/** A new sequence's acceptance estimate before anything is measured. */
const ACCEPTANCE_START = 0.7;
/** Weight of one measurement in the draft-pass / target-step cost ratio. */
const COST_STEP = 0.1;
/** Most tokens drafted for a sequence in one step (speculative.maxDraftTokens' bound). */
const MAX_DEPTH = 16;
/** A sequence whose drafts do not pay rests this many steps, then drafts one token to measure again. */
const REST_STEPS = 8;

export class DraftModel {
  private readonly seqs = new Map<OwnedSequence, DraftSeq>();
  private logits = new Float32Array(0);
  private readonly tokensIn: Int32Array;
  private readonly positionsIn: Int32Array;
  private readonly seqIdsIn: Int32Array;
  private readonly wantIn: Uint8Array;
  /** Per drafting sequence: the depth asked, the ids drafted (MAX_DEPTH each) and their count. */
  private readonly depthsIn: Uint8Array;
  private readonly draftOut: Int32Array;
  private readonly countsOut: Int32Array;
  /** ms of one draft pass of one row per sequence (moving average). */
  private passMs = 0;
  /**
   * Decoding target steps as a line, ms = base + perRow x draft rows: moving averages of x, y,
   * x^2 and x*y (a least-squares fit that forgets old steps), so a verified row's cost is measured
   * (it is a small share of a memory-bound step, and nearly a whole step on a busy CPU).
   */
  private fit = { n: 0, x: 0, y: 0, xx: 0, xy: 0 };
  private passes = 0;
  private rows = 0;

  /**
   * `native`: the draft model (same vocabulary as the target, checked at load); `capacityRows`:
   * most rows of one draft call (its maxBatchTokens).
   */
  constructor(
    readonly native: NativeModel & NativeDrafting,
    private readonly capacityRows: number,
  ) {
    if (!Number.isInteger(capacityRows) || capacityRows < 1) throw new RangeError("capacityRows must be ≥ 1");
    this.tokensIn = new Int32Array(capacityRows);
    this.positionsIn = new Int32Array(capacityRows);
    this.seqIdsIn = new Int32Array(capacityRows);
    this.wantIn = new Uint8Array(capacityRows);
    this.depthsIn = new Uint8Array(capacityRows);
    this.draftOut = new Int32Array(capacityRows * MAX_DEPTH);
    this.countsOut = new Int32Array(capacityRows);
  }

  stats(): DraftModelStats {
    return { passes: this.passes, rows: this.rows, sequences: this.seqs.size };
  }

  /**
   * The depth worth drafting for a sequence (0..max): the one that maximizes the tokens a step
   * is expected to produce per unit of time, with each position accepted at the sequence's
   * measured rate and each draft pass costing the measured fraction of a target step. When no
   * depth beats plain decoding it drafts nothing for REST_STEPS steps, then one token to measure.
   */
  depthFor(kv: OwnedSequence, max: number): number {
    if (max <= 0) return 0;
    const st = this.seqs.get(kv);
    const p = Math.min(0.98, Math.max(0.02, st?.acceptance ?? ACCEPTANCE_START));
    const cost = this.costPerDraft();
    let best = 1;
    let bestRate = 0;
    for (let k = 1; k <= max; k++) {
      const expected = (1 - p ** (k + 1)) / (1 - p); // tokens per step: accepted drafts + 1
      const rate = expected / (1 + k * cost);
      if (rate > bestRate) {
        bestRate = rate;
        best = k;
      }
    }
    if (bestRate >= 1 || st === undefined) return best;
    if (st.resting < REST_STEPS) {
      st.resting++;
      return 0;
    }
    st.resting = 0;
    return 1;
  }

  /** A decoding target step of `ms` ran with `draftRows` draft rows: the cost model follows it. */
  noteTargetStep(ms: number, draftRows: number): void {
    const f = this.fit;
    const w = f.n === 0 ? 1 : COST_STEP;
    f.n++;
    f.x += w * (draftRows - f.x);
    f.y += w * (ms - f.y);
    f.xx += w * (draftRows * draftRows - f.xx);
    f.xy += w * (draftRows * ms - f.xy);
  }

  /**
   * What drafting one more token costs, as a fraction of a target step without drafts: a draft
   * pass plus a verified row. Before the steps vary enough to fit, a row is taken to cost a
   * tenth of a step.
   */
  private costPerDraft(): number {
    const f = this.fit;
    if (f.n === 0 || this.passMs === 0) return 0.3;
    const variance = f.xx - f.x * f.x;
    let perRow = variance > 0.25 ? (f.xy - f.x * f.y) / variance : Number.NaN;
    let base = f.y - perRow * f.x;
    if (!(perRow >= 0) || !(base > 0)) {
      base = f.y / (1 + 0.1 * f.x);
      perRow = 0.1 * base;
    }
    return (this.passMs + perRow) / base;
  }

  /**
   * The outcome of verifying a sequence's draft: `proposed` of the draft model's tokens were
   * checked and `accepted` of them matched (a check stops at the first mismatch).
   */
  observe(kv: OwnedSequence, proposed: number, accepted: number): void {
    const st = this.seqs.get(kv);
    if (st === undefined || proposed <= 0) return;
    for (let i = 0; i < proposed; i++)
      st.acceptance += ACCEPTANCE_STEP * ((i < accepted ? 1 : 0) - st.acceptance);
  }

  /**
   * Drafts for the asking sequences in one native call: it catches every sequence's draft KV up
   * with its tokens, then drafts each sequence's tokens greedily (one row per sequence per
   * position, each token fed back as the next row). A sequence whose catch-up does not fit this
   * step's rows catches up part of the way and gets no draft; a full draft pool ends drafting early.
   */
  propose(asks: readonly DraftAsk[]): Map<OwnedSequence, number[]> {
    const out = new Map<OwnedSequence, number[]>();
    const live: { st: DraftSeq; kv: OwnedSequence }[] = [];
    const caught: { st: DraftSeq; tokens: number[] }[] = [];
    let n = 0;
    let maxDepth = 1;
    for (const ask of asks) {
      if (ask.depth <= 0) continue;
      const st = this.stateOf(ask.kv);
      if (st === null) continue;
      const tokens = ask.kv.tokens;
      // Keep the longest prefix the draft KV shares with the tokens, but always recompute the
      // last token: its row gives the first draft.
      let same = 0;
      const limit = Math.min(st.tokens.length, tokens.length - 1);
      while (same < limit && st.tokens[same] === tokens[same]) same++;
      if (st.tokens.length > same) {
        this.native.seqShift(st.seqId, same, st.tokens.length - same);
        st.tokens.length = same;
      }
      const room = this.capacityRows - n;
      const take = Math.min(tokens.length - same, room);
      if (take <= 0) continue;
      for (let k = 0; k < take; k++) {
        this.tokensIn[n] = tokens[same + k] as number;
        this.positionsIn[n] = same + k;
        this.seqIdsIn[n] = st.seqId;
        this.wantIn[n] = 0;
        n++;
      }
      caught.push({ st, tokens: tokens.slice(same, same + take) });
      if (same + take === tokens.length) {
        this.wantIn[n - 1] = 1;
        const depth = Math.min(ask.depth, MAX_DEPTH);
        this.depthsIn[live.length] = depth;
        maxDepth = Math.max(maxDepth, depth);
        live.push({ st, kv: ask.kv });
      }
    }
    if (n === 0) return out;
    if (live.length === 0) {
      // Only catch-up rows (a long context that did not fit in one step's rows): no logits.
      if (!this.decode(n)) return out;
      for (const c of caught) c.st.tokens.push(...c.tokens);
      return out;
    }
    const vocab = this.native.info.vocabSize;
    if (this.logits.length < live.length * vocab) this.logits = new Float32Array(live.length * vocab);
    const started = performance.now();
    let rounds: number;
    try {
      rounds = this.native.draft(this.batchOf(n), this.depthsIn, maxDepth, {
        tokens: this.draftOut,
        counts: this.countsOut,
        logits: this.logits,
      });
    } catch (err) {
      if (err instanceof KvFullError) return out; // a full pool wrote nothing: no drafts this step
      throw err;
    }
    const ms = performance.now() - started;
    this.passes += rounds;
    this.rows += n + live.reduce((r, _, j) => r + Math.max(0, (this.countsOut[j] as number) - 1), 0);
    this.passMs = this.passMs === 0 ? ms / rounds : this.passMs + COST_STEP * (ms / rounds - this.passMs);
    for (const c of caught) c.st.tokens.push(...c.tokens);
    live.forEach((l, j) => {
      const count = this.countsOut[j] as number;
      const drafted = Array.from(this.draftOut.subarray(j * maxDepth, j * maxDepth + count));
      // The drafts fed back are in the draft KV (all but the last, unless drafting stopped early).
      const fed = this.native.seqLength(l.st.seqId) - l.st.tokens.length;
      l.st.tokens.push(...drafted.slice(0, fed));
      out.set(l.kv, drafted);
    });
    return out;
  }

  /** Frees a sequence's draft KV (its request ended, or its session closed). */
  release(kv: OwnedSequence): void {
    const st = this.seqs.get(kv);
    if (st === undefined) return;
    this.seqs.delete(kv);
    this.native.seqFree(st.seqId);
  }

  /** Frees every draft KV sequence. */
  releaseAll(): void {
    for (const kv of [...this.seqs.keys()]) this.release(kv);
  }

  private stateOf(kv: OwnedSequence): DraftSeq | null {
    let st = this.seqs.get(kv);
    if (st !== undefined) return st;
    let seqId: number;
    try {
      seqId = this.native.seqCreate();
    } catch {
      return null; // every draft sequence slot is taken: this one goes without drafts
    }
    st = { seqId, tokens: [], acceptance: ACCEPTANCE_START, resting: 0 };
    this.seqs.set(kv, st);
    return st;
  }

  /** One decode of `rows` catch-up rows without logits; false when the pool is full. */
  private decode(rows: number): boolean {
    try {
      this.native.decode(this.batchOf(rows), this.logits);
    } catch (err) {
      if (err instanceof KvFullError) return false;
      throw err;
    }
    this.passes++;
    this.rows += rows;
    return true;
  }

  private batchOf(rows: number): Batch {
    return {
      capacity: this.capacityRows,
      length: rows,
      tokens: this.tokensIn,
      positions: this.positionsIn,
      seqIds: this.seqIdsIn,
      wantLogits: this.wantIn,
    };
  }
}
/**
 * The draft model's proposals (into `modelDraft`) for the running sequences that decode this step
 * and draft with it, each as deep as its acceptance makes worth it (bounded like any draft: token
 * budget, context).
 */
export function proposeModelDrafts(dm: DraftModel, running: readonly Sequence[]): void {
  const asks: DraftAsk[] = [];
  const asking: Sequence[] = [];
  for (const s of running) {
    s.modelDraft = [];
    const spec = s.gen.spec.speculative;
    if (s.held || !spec || s.gen.spec.maxTokens === 0 || s.kv.seqId < 0) continue;
    if (s.kv.tokens.length - s.kv.computed !== 1 || !draftSources(spec, true).model) continue;
    const max = Math.min(spec.maxModelDraftTokens, s.gen.draftLimit(s.contextTokens - s.kv.tokens.length));
    if (max <= 0) continue;
    asks.push({ kv: s.kv, depth: dm.depthFor(s.kv, max) });
    asking.push(s);
  }
  if (asks.length === 0) return;
  const drafts = dm.propose(asks);
  for (const s of asking) s.modelDraft = drafts.get(s.kv) ?? [];
}
