// The native Llama forward pass on the real default model: KV-cached decoding against full
// recomputation, chunked prefill, batch invariance, a full KV pool, context shift, bad input.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type GgufFile, GgufMetadata, type GgufTensorInfo, readGguf } from "../src/gguf/index.ts";
import { pullModel } from "../src/gguf/pull.ts";
import { NativeError } from "../src/native/lib.ts";
import { createBatch, openNativeModel } from "../src/native/model.ts";
import { type Batch, KvFullError, type NativeModel } from "../src/native/model-api.ts";

// Prompts are written as words and mapped word by word onto vocabulary entries (the BPE
// tokenizer is tested elsewhere; here any real token ids will do).
const PROMPTS = [
  "The capital of France is",
  "Once upon a time there was a little",
  "The best way to learn a new language is to",
  "The first man to walk on the moon was",
  "def main ( ) :",
  "Water boils at a temperature of",
  "My favourite colour is blue because",
  "The three primary colours are red ,",
  "To make a cup of tea you need",
  "Plants make food from sunlight by a process called",
];
const GEN_TOKENS = 64;
/** Largest |logit difference| accepted between two ways of computing the same row. */
const LOGIT_TOL = 1e-3;

let modelPath: string;
let file: GgufFile;
let model: NativeModel;
let vocab: string[];
let vocabSize: number;
let batch: Batch;
let logits: Float32Array;

function encodeWords(text: string): number[] {
  const ids = new Map(vocab.map((t, i) => [t, i]));
  return text.split(" ").map((w, i) => {
    const id = ids.get(i === 0 ? w : `Ġ${w}`) ?? ids.get(w);
    if (id === undefined) throw new Error(`no vocabulary entry for "${w}"`);
    return id;
  });
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if ((row[i] as number) > (row[best] as number)) best = i;
  return best;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

/** Appends `tokens` to `seq` starting at `pos0` in chunks of `chunk`; returns the last row's logits. */
function prefill(m: NativeModel, seq: number, tokens: number[], pos0: number, chunk: number): Float32Array {
  let last = new Float32Array(vocabSize);
  for (let start = 0; start < tokens.length; start += chunk) {
    const end = Math.min(tokens.length, start + chunk);
    batch.length = end - start;
    for (let i = start; i < end; i++) {
      batch.tokens[i - start] = tokens[i] as number;
      batch.positions[i - start] = pos0 + i;
      batch.seqIds[i - start] = seq;
      batch.wantLogits[i - start] = i === end - 1 ? 1 : 0;
    }
    expect(m.decode(batch, logits)).toBe(1);
    last = logits.slice(0, vocabSize);
  }
  return last;
}

/** Greedy decoding with the KV cache: returns the tokens and each step's logits. */
function generateCached(
  m: NativeModel,
  prompt: number[],
  n: number,
): { ids: number[]; rows: Float32Array[] } {
  const seq = m.seqCreate();
  let row = prefill(m, seq, prompt, 0, 512);
  const ids: number[] = [];
  const rows: Float32Array[] = [];
  for (let k = 0; k < n; k++) {
    rows.push(row);
    const next = argmax(row);
    ids.push(next);
    if (k < n - 1) row = prefill(m, seq, [next], prompt.length + k, 1);
  }
  m.seqFree(seq);
  return { ids, rows };
}

beforeAll(async () => {
  modelPath = await pullModel();
  file = readGguf(modelPath);
  vocab = new GgufMetadata(file.metadata).strings("tokenizer.ggml.tokens");
  model = openNativeModel(
    modelPath,
    { threads: 2, kvPages: 256, maxBatchTokens: 512, maxSequences: 8 },
    file,
  );
  vocabSize = model.info.vocabSize;
  batch = createBatch(512);
  logits = new Float32Array(vocabSize * 4);
});

afterAll(() => model?.close());

describe("native llama forward", () => {
  test("the model answers a factual prompt sensibly (greedy)", () => {
    const { ids } = generateCached(model, encodeWords("The capital of France is"), 2);
    expect(vocab[ids[0] as number]).toBe("ĠParis");
  }, 120_000);

  test(`KV-cached greedy decoding equals full recomputation (${PROMPTS.length} prompts x ${GEN_TOKENS} tokens, logits within ${LOGIT_TOL})`, () => {
    let worst = 0;
    for (const text of PROMPTS) {
      const prompt = encodeWords(text);
      const cached = generateCached(model, prompt, GEN_TOKENS);
      // Full recomputation: the whole sequence (prompt + generated tokens) in one fresh
      // batch with no earlier KV, a logits row at every generating position.
      const all = [...prompt, ...cached.ids.slice(0, GEN_TOKENS - 1)];
      const seq = model.seqCreate();
      const full = new Float32Array(vocabSize * GEN_TOKENS);
      batch.length = all.length;
      for (let i = 0; i < all.length; i++) {
        batch.tokens[i] = all[i] as number;
        batch.positions[i] = i;
        batch.seqIds[i] = seq;
        batch.wantLogits[i] = i >= prompt.length - 1 ? 1 : 0;
      }
      expect(model.decode(batch, full)).toBe(GEN_TOKENS);
      model.seqFree(seq);
      const recomputed: number[] = [];
      for (let k = 0; k < GEN_TOKENS; k++) {
        const row = full.subarray(k * vocabSize, (k + 1) * vocabSize);
        worst = Math.max(worst, maxAbsDiff(row, cached.rows[k] as Float32Array));
        recomputed.push(argmax(row));
      }
      expect(recomputed).toEqual(cached.ids);
    }
    expect(worst).toBeLessThanOrEqual(LOGIT_TOL);
    console.log(`cached vs recomputed: max |logit diff| = ${worst}`);
  }, 300_000);

  test("prefill in chunks of any size gives the same logits as one chunk", () => {
    const prompt = encodeWords(PROMPTS.join(" "));
    const seq = model.seqCreate();
    const whole = prefill(model, seq, prompt, 0, prompt.length);
    model.seqFree(seq);
    for (const chunk of [1, 3, 16, 17, 40]) {
      const s = model.seqCreate();
      const row = prefill(model, s, prompt, 0, chunk);
      expect(model.seqLength(s)).toBe(prompt.length);
      model.seqFree(s);
      expect(maxAbsDiff(row, whole)).toBeLessThanOrEqual(LOGIT_TOL);
      expect(argmax(row)).toBe(argmax(whole));
    }
  }, 120_000);

  test("two sequences in one batch give the same logits as each alone", () => {
    const a = encodeWords(PROMPTS[0] as string);
    const b = encodeWords(PROMPTS[1] as string);
    const sa = model.seqCreate();
    const alone_a = prefill(model, sa, a, 0, 512);
    model.seqFree(sa);
    const sb = model.seqCreate();
    const alone_b = prefill(model, sb, b, 0, 512);
    model.seqFree(sb);
    // Interleave the rows of both prompts in one batch.
    const s1 = model.seqCreate();
    const s2 = model.seqCreate();
    const rows: Array<[number, number, number]> = [];
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      if (i < a.length) rows.push([a[i] as number, i, s1]);
      if (i < b.length) rows.push([b[i] as number, i, s2]);
    }
    batch.length = rows.length;
    rows.forEach(([t, p, s], i) => {
      batch.tokens[i] = t;
      batch.positions[i] = p;
      batch.seqIds[i] = s;
      batch.wantLogits[i] = (s === s1 && p === a.length - 1) || (s === s2 && p === b.length - 1) ? 1 : 0;
    });
    expect(model.decode(batch, logits)).toBe(2);
    const firstIsA =
      rows.findIndex(([, p, s]) => s === s1 && p === a.length - 1) <
      rows.findIndex(([, p, s]) => s === s2 && p === b.length - 1);
    const rowA = logits.slice(firstIsA ? 0 : vocabSize, firstIsA ? vocabSize : 2 * vocabSize);
    const rowB = logits.slice(firstIsA ? vocabSize : 0, firstIsA ? 2 * vocabSize : vocabSize);
    expect(maxAbsDiff(rowA, alone_a)).toBeLessThanOrEqual(LOGIT_TOL);
    expect(maxAbsDiff(rowB, alone_b)).toBeLessThanOrEqual(LOGIT_TOL);
    model.seqFree(s1);
    model.seqFree(s2);
  }, 120_000);

  test("a full KV pool throws KvFullError, writes nothing and leaves other sequences intact", () => {
    const m = openNativeModel(
      modelPath,
      { threads: 2, kvPages: 4, maxBatchTokens: 64, maxSequences: 4 },
      file,
    );
    try {
      const prompt = encodeWords(PROMPTS[2] as string);
      const a = m.seqCreate();
      const rowA = prefill(m, a, prompt, 0, 64);
      const statsBefore = m.kvStats();
      const b = m.seqCreate();
      const long = Array.from({ length: 56 }, (_, i) => (prompt[i % prompt.length] as number) + 0);
      expect(() => prefill(m, b, long, 0, 64)).toThrow(KvFullError);
      expect(m.seqLength(b)).toBe(0);
      expect(m.seqLength(a)).toBe(prompt.length);
      expect(m.kvStats()).toEqual(statsBefore);
      // Sequence a continues exactly as it would have without the failed batch.
      const next = argmax(rowA);
      const cont = prefill(m, a, [next], prompt.length, 1);
      const ref = generateCached(model, prompt, 2);
      expect(maxAbsDiff(cont, ref.rows[1] as Float32Array)).toBeLessThanOrEqual(LOGIT_TOL);
    } finally {
      m.close();
    }
  }, 120_000);

  test("context shift keeps the first tokens, drops the next, and generation stays sensible", () => {
    const prompt = encodeWords(PROMPTS.slice(0, 6).join(" "));
    const keep = 4;
    const drop = 16;
    const seq = model.seqCreate();
    prefill(model, seq, prompt, 0, 512);
    const before = model.kvStats().pagesFree;
    model.seqShift(seq, keep, drop);
    expect(model.seqLength(seq)).toBe(prompt.length - drop);
    expect(model.kvStats().pagesFree).toBeGreaterThanOrEqual(before);
    // Continue after the shift at contiguous positions, and compare with a fresh sequence
    // holding the same surviving tokens (whose hidden states never saw the dropped ones).
    const survivors = [...prompt.slice(0, keep), ...prompt.slice(keep + drop)];
    const fresh = model.seqCreate();
    let rowFresh = prefill(model, fresh, survivors, 0, 512);
    let pos = survivors.length;
    let tok = argmax(rowFresh);
    let rowShift = prefill(model, seq, [tok], pos, 1);
    rowFresh = prefill(model, fresh, [tok], pos, 1);
    let agree = 0;
    for (let k = 0; k < 16; k++) {
      if (argmax(rowShift) === argmax(rowFresh)) agree++;
      tok = argmax(rowFresh);
      pos++;
      rowShift = prefill(model, seq, [tok], pos, 1);
      rowFresh = prefill(model, fresh, [tok], pos, 1);
      expect(rowShift.every(Number.isFinite)).toBe(true);
    }
    console.log(`after a shift, next-token agreement with a fresh recompute: ${agree}/16`);
    expect(agree).toBeGreaterThanOrEqual(12);
    model.seqFree(seq);
    model.seqFree(fresh);
  }, 120_000);

  test("bad input gets a clear error and changes nothing", () => {
    const seq = model.seqCreate();
    batch.length = 1;
    batch.tokens[0] = vocabSize; // out of range
    batch.positions[0] = 0;
    batch.seqIds[0] = seq;
    batch.wantLogits[0] = 1;
    expect(() => model.decode(batch, logits)).toThrow(/outside the vocabulary/);
    batch.tokens[0] = 1;
    batch.seqIds[0] = 999;
    expect(() => model.decode(batch, logits)).toThrow(/not open/);
    batch.seqIds[0] = seq;
    expect(() => model.decode(batch, new Float32Array(10))).toThrow(/want logits/);
    batch.length = 2;
    batch.tokens[1] = 1;
    batch.positions[1] = 0; // not after row 0's position
    batch.seqIds[1] = seq;
    expect(() => model.decode(batch, logits)).toThrow(/not after/);
    expect(model.seqLength(seq)).toBe(0);
    expect(() => model.seqShift(seq, 1, 1)).toThrow(NativeError);
    expect(() => model.seqFree(12345)).toThrow(/not open/);
    model.seqFree(seq);
  }, 120_000);

  test("a malformed tensor table or unsupported file is a clear error, not a crash", () => {
    const withTensor = (name: string, patch: Partial<GgufTensorInfo>): GgufFile => {
      const t = file.tensorsByName.get(name) as GgufTensorInfo;
      const tensorsByName = new Map(file.tensorsByName);
      tensorsByName.set(name, { ...t, ...patch });
      return { ...file, tensorsByName };
    };
    const opts = { threads: 1, kvPages: 4, maxBatchTokens: 8, maxSequences: 1 };
    expect(() =>
      openNativeModel(
        modelPath,
        opts,
        withTensor("blk.3.attn_q.weight", { fileOffset: file.fileSizeBytes - 100 }),
      ),
    ).toThrow(/tensor blk.3.attn_q.weight: .*past the end/);
    expect(() =>
      openNativeModel(modelPath, opts, withTensor("blk.0.ffn_up.weight", { dims: [576, 1535] })),
    ).toThrow(/tensor "blk.0.ffn_up.weight" has shape \[576, 1535\], expected \[576, 1536\]/);
    expect(() =>
      openNativeModel(
        modelPath,
        opts,
        withTensor("blk.2.ffn_gate.weight", { typeId: 16, typeName: "IQ2_XXS" }),
      ),
    ).toThrow(/"blk.2.ffn_gate.weight" has type IQ2_XXS, which hearth cannot compute with/);
    const noQ = new Map(file.tensorsByName);
    noQ.delete("blk.7.attn_k.weight");
    expect(() => openNativeModel(modelPath, opts, { ...file, tensorsByName: noQ })).toThrow(
      /missing tensor "blk.7.attn_k.weight"/,
    );
    const otherArch = new Map(file.metadata);
    otherArch.set("general.architecture", "mamba");
    expect(() => openNativeModel(modelPath, opts, { ...file, metadata: otherArch })).toThrow(
      /unsupported architecture "mamba" \(general.architecture\)/,
    );
    expect(() => openNativeModel("/nonexistent/model.gguf", opts, file)).toThrow(/cannot open/);
    expect(() => openNativeModel(modelPath, { ...opts, kvType: "q4" as "f16" })).toThrow(/kvType/);
    expect(() => openNativeModel(modelPath, { ...opts, threads: 0 })).toThrow(/threads/);
  }, 120_000);

  test("logits do not depend on the thread count (1 vs 2 threads, bit-identical)", () => {
    const prompt = encodeWords(PROMPTS[3] as string);
    const one = openNativeModel(
      modelPath,
      { threads: 1, kvPages: 8, maxBatchTokens: 64, maxSequences: 1 },
      file,
    );
    try {
      const seq = one.seqCreate();
      const row1 = prefill(one, seq, prompt, 0, 64);
      const s2 = model.seqCreate();
      const row2 = prefill(model, s2, prompt, 0, 64);
      model.seqFree(s2);
      expect(maxAbsDiff(row1, row2)).toBe(0);
    } finally {
      one.close();
    }
  }, 120_000);

  test("Q8_0 KV: same greedy tokens as F16 KV on most steps, half the page size", () => {
    const q8 = openNativeModel(
      modelPath,
      { threads: 2, kvPages: 16, maxBatchTokens: 64, maxSequences: 1, kvType: "q8_0" },
      file,
    );
    try {
      expect(q8.kvStats().pageSizeBytes).toBeLessThan(model.kvStats().pageSizeBytes * 0.55);
      let agree = 0;
      let total = 0;
      for (const text of PROMPTS.slice(0, 4)) {
        const prompt = encodeWords(text);
        const a = generateCached(model, prompt, 16).ids;
        const b = generateCached(q8, prompt, 16).ids;
        // Count the common prefix: after the first difference the contexts diverge.
        let k = 0;
        while (k < a.length && a[k] === b[k]) k++;
        agree += k;
        total += a.length;
      }
      console.log(`Q8_0 KV greedy prefix agreement with F16 KV: ${agree}/${total} tokens`);
      expect(agree / total).toBeGreaterThanOrEqual(0.5);
    } finally {
      q8.close();
    }
  }, 120_000);
});
