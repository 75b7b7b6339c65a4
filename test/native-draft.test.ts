// Greedy drafting in one native call (hearth_model_draft, the draft model's half of speculative
// decoding) against its twin written here in TypeScript, one decode call and one argmax per
// position, on the real default model: the same drafted tokens and the same KV afterwards, for
// several sequences at once with different depths and catch-up lengths; a full pool ends the
// draft early without damage; bad arguments are clear errors.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { pullModel } from "../src/gguf/pull.ts";
import { createBatch, openNativeModel } from "../src/native/model.ts";
import { type Batch, type DraftingNativeModel, type DraftOut, KvFullError } from "../src/native/model-api.ts";
import { argmax } from "../src/sampling/index.ts";

const MAX_DEPTH = 8;
let model: DraftingNativeModel;
let small: DraftingNativeModel;
let batch: Batch;
let vocab: number;

/** Deterministic token ids spread over the vocabulary. */
function promptTokens(n: number, salt: number): number[] {
  return Array.from({ length: n }, (_, i) => 300 + ((i * 7919 + salt * 104729) % 40000));
}

function fill(rows: { seq: number; token: number; pos: number; want: boolean }[]): Batch {
  batch.length = rows.length;
  rows.forEach((r, i) => {
    batch.tokens[i] = r.token;
    batch.positions[i] = r.pos;
    batch.seqIds[i] = r.seq;
    batch.wantLogits[i] = r.want ? 1 : 0;
  });
  return batch;
}

/** The twin: catch up `tokens` (from position `from`), then `depth` greedy tokens, a decode per position. */
function draftByHand(
  m: DraftingNativeModel,
  seq: number,
  tokens: number[],
  from: number,
  depth: number,
): number[] {
  const logits = new Float32Array(vocab);
  m.decode(
    fill(
      tokens
        .slice(from)
        .map((token, k) => ({ seq, token, pos: from + k, want: from + k === tokens.length - 1 })),
    ),
    logits,
  );
  const out: number[] = [];
  for (let pos = tokens.length; ; pos++) {
    out.push(argmax(logits));
    if (out.length === depth) return out;
    m.decode(fill([{ seq, token: out[out.length - 1] as number, pos, want: true }]), logits);
  }
}

function draftOut(seqs: number): DraftOut {
  return {
    tokens: new Int32Array(seqs * MAX_DEPTH),
    counts: new Int32Array(seqs),
    logits: new Float32Array(seqs * vocab),
  };
}

beforeAll(async () => {
  const path = await pullModel();
  model = openNativeModel(path, { threads: 2, kvPages: 64, maxBatchTokens: 128, maxSequences: 8 });
  small = openNativeModel(path, { threads: 2, kvPages: 4, maxBatchTokens: 128, maxSequences: 2 });
  batch = createBatch(128);
  vocab = model.info.vocabSize;
}, 120_000);

afterAll(() => {
  model?.close();
  small?.close();
});

describe("hearth_model_draft", () => {
  test("equals a decode and an argmax per position, for three sequences at once", () => {
    const asks = [
      { tokens: promptTokens(20, 1), depth: 8, kept: 0 },
      { tokens: promptTokens(9, 2), depth: 1, kept: 0 },
      { tokens: promptTokens(33, 3), depth: 5, kept: 12 },
    ];
    const seqs = asks.map(() => model.seqCreate());
    const twins = asks.map(() => model.seqCreate());
    // The third sequence already holds its first tokens: only the rest is caught up.
    for (const [j, a] of asks.entries()) {
      if (a.kept === 0) continue;
      for (const s of [seqs[j], twins[j]] as number[])
        model.decode(
          fill(a.tokens.slice(0, a.kept).map((token, pos) => ({ seq: s, token, pos, want: false }))),
          new Float32Array(0),
        );
    }
    const rows = asks.flatMap((a, j) =>
      a.tokens.slice(a.kept).map((token, k) => ({
        seq: seqs[j] as number,
        token,
        pos: a.kept + k,
        want: a.kept + k === a.tokens.length - 1,
      })),
    );
    const out = draftOut(asks.length);
    const depths = Uint8Array.from(asks.map((a) => a.depth));
    const rounds = model.draft(fill(rows), depths, MAX_DEPTH, out);
    expect(rounds).toBe(8);
    for (const [j, a] of asks.entries()) {
      const want = draftByHand(model, twins[j] as number, a.tokens, a.kept, a.depth);
      expect(out.counts[j]).toBe(a.depth);
      expect(Array.from(out.tokens.subarray(j * MAX_DEPTH, j * MAX_DEPTH + a.depth))).toEqual(want);
      // Every drafted token but the last was fed back into the draft's KV.
      expect(model.seqLength(seqs[j] as number)).toBe(a.tokens.length + a.depth - 1);
      expect(model.seqLength(seqs[j] as number)).toBe(model.seqLength(twins[j] as number));
    }
    for (const s of [...seqs, ...twins]) model.seqFree(s);
  });

  test("a pool that fills up ends the draft where it stood; the KV holds what was fed", () => {
    // 4 pages of 16 tokens: 60 tokens, then room for 4 fed drafts.
    const pageTokens = small.kvStats().pageTokens;
    const total = small.kvStats().pagesTotal * pageTokens;
    const tokens = promptTokens(total - 4, 4);
    const seq = small.seqCreate();
    const out = draftOut(1);
    const rounds = small.draft(
      fill(tokens.map((token, pos) => ({ seq, token, pos, want: pos === tokens.length - 1 }))),
      Uint8Array.of(8),
      MAX_DEPTH,
      out,
    );
    expect(rounds).toBe(5);
    expect(out.counts[0]).toBe(5);
    expect(small.seqLength(seq)).toBe(total);
    const twin = model.seqCreate();
    expect(Array.from(out.tokens.subarray(0, 5))).toEqual(draftByHand(model, twin, tokens, 0, 5));
    model.seqFree(twin);
    // Nothing fits now: the first decode fails as a full pool, and nothing was written.
    expect(() =>
      small.draft(fill([{ seq, token: 5, pos: total, want: true }]), Uint8Array.of(2), MAX_DEPTH, out),
    ).toThrow(KvFullError);
    expect(small.seqLength(seq)).toBe(total);
    small.seqFree(seq);
  });

  test("bad arguments are clear errors", () => {
    const seq = model.seqCreate();
    const out = draftOut(1);
    const one = fill([{ seq, token: 7, pos: 0, want: true }]);
    expect(() => model.draft(one, Uint8Array.of(0), MAX_DEPTH, out)).toThrow(/depth 0, outside \[1, 8\]/);
    expect(() => model.draft(one, Uint8Array.of(9), MAX_DEPTH, out)).toThrow(/depth 9, outside \[1, 8\]/);
    expect(() =>
      model.draft(one, Uint8Array.of(2), MAX_DEPTH, { ...out, logits: new Float32Array(10) }),
    ).toThrow(/logits for 0 rows/);
    expect(model.seqLength(seq)).toBe(0);
    model.seqFree(seq);
  });
});
