// A draft model beside the target in the same engine: for each decoding sequence it keeps a KV
// sequence of its own (in the draft model's pool), catches it up with the sequence's tokens and
// proposes the next tokens greedily, batched over the step's sequences (one decode call per draft
// position); the target verifies them in its step. Each sequence's depth follows its measured
// acceptance and the measured costs of a draft pass and of a verified row against a target step.
import { KvFullError, type NativeModel } from "../native/model-api.ts";
import { argmax } from "../sampling/index.ts";
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
/** A sequence whose drafts do not pay rests this many steps, then drafts one token to measure again. */
const REST_STEPS = 8;

export class DraftModel {
  private readonly seqs = new Map<OwnedSequence, DraftSeq>();
  private logits = new Float32Array(0);
  private readonly tokensIn: Int32Array;
  private readonly positionsIn: Int32Array;
  private readonly seqIdsIn: Int32Array;
  private readonly wantIn: Uint8Array;
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
    readonly native: NativeModel,
    private readonly capacityRows: number,
  ) {
    if (!Number.isInteger(capacityRows) || capacityRows < 1) throw new RangeError("capacityRows must be ≥ 1");
    this.tokensIn = new Int32Array(capacityRows);
    this.positionsIn = new Int32Array(capacityRows);
    this.seqIdsIn = new Int32Array(capacityRows);
    this.wantIn = new Uint8Array(capacityRows);
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
   * Drafts for the asking sequences: one call catches every sequence's draft KV up with its
   * tokens and gives each its first drafted token, then one call per further position drafts the
   * next token of each sequence that wants it. A sequence whose catch-up does not fit this step's
   * rows catches up part of the way and gets no draft; a full draft pool ends drafting early.
   */
  propose(asks: readonly DraftAsk[]): Map<OwnedSequence, number[]> {
    const out = new Map<OwnedSequence, number[]>();
    const live: { st: DraftSeq; ask: DraftAsk; row: number; next: number }[] = [];
    const caught: { st: DraftSeq; tokens: number[] }[] = [];
    let n = 0;
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
      const complete = same + take === tokens.length;
      if (complete) {
        this.wantIn[n - 1] = 1;
        live.push({ st, ask, row: live.length, next: -1 });
        out.set(ask.kv, []);
      }
      // The rows are in the draft KV once the call below succeeds.
      caught.push({ st, tokens: tokens.slice(same, same + take) });
    }
    if (n === 0) return out;
    // A full pool wrote nothing: no drafts this step.
    if (!this.decode(n, live.length, false)) return new Map();
    for (const c of caught) c.st.tokens.push(...c.tokens);
    for (const l of live) {
      l.next = this.argmaxRow(l.row);
      out.get(l.ask.kv)?.push(l.next);
    }
    for (let pos = 1; ; pos++) {
      const going = live.filter((l) => pos < l.ask.depth);
      if (going.length === 0) break;
      going.forEach((l, i) => {
        this.tokensIn[i] = l.next;
        this.positionsIn[i] = l.st.tokens.length;
        this.seqIdsIn[i] = l.st.seqId;
        this.wantIn[i] = 1;
        l.row = i;
      });
      if (!this.decode(going.length, going.length, true)) break;
      for (const l of going) {
        l.st.tokens.push(l.next);
        l.next = this.argmaxRow(l.row);
        out.get(l.ask.kv)?.push(l.next);
      }
      live.length = 0;
      live.push(...going);
    }
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

  /** One draft decode call of `rows` rows with `logitRows` logits rows; false when the pool is full. */
  private decode(rows: number, logitRows: number, timed: boolean): boolean {
    const vocab = this.native.info.vocabSize;
    if (this.logits.length < logitRows * vocab) this.logits = new Float32Array(logitRows * vocab);
    const started = performance.now();
    try {
      this.native.decode(
        {
          capacity: this.capacityRows,
          length: rows,
          tokens: this.tokensIn,
          positions: this.positionsIn,
          seqIds: this.seqIdsIn,
          wantLogits: this.wantIn,
        },
        this.logits,
      );
    } catch (err) {
      if (err instanceof KvFullError) return false;
      throw err;
    }
    const ms = performance.now() - started;
    this.passes++;
    this.rows += rows;
    if (timed) this.passMs = this.passMs === 0 ? ms : this.passMs + COST_STEP * (ms - this.passMs);
    return true;
  }

  private argmaxRow(row: number): number {
    const vocab = this.native.info.vocabSize;
    return argmax(this.logits.subarray(row * vocab, (row + 1) * vocab));
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
