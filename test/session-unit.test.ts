// Session logic against a scripted NativeModel (the piece Session talks to): chunking, positions,
// context shift bookkeeping, the full-context error, KV pool exhaustion, abort, telemetry.
// The tokenizer and chat template are the real ones from the default model's GGUF metadata.
import { beforeAll, describe, expect, test } from "bun:test";
import { ChatTemplate, ChatTemplateError } from "../src/chat/index.ts";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { pullModel } from "../src/gguf/pull.ts";
import * as hearth from "../src/index.ts";
import { loadModel, Model, ModelOptionsError, resolveModelOptions } from "../src/model.ts";
import {
  type Batch,
  KvFullError,
  type KvStats,
  type ModelInfo,
  type NativeModel,
} from "../src/native/model-api.ts";
import { SamplerError } from "../src/sampling/index.ts";
import { ContextFullError, SessionStateError } from "../src/session.ts";
import { Tokenizer } from "../src/tokenizer/index.ts";
import { WithoutKvTiers } from "./support/untiered.ts";

const PAGE_TOKENS = 16;

/**
 * A NativeModel that checks every call the way the real one would (contiguous positions per
 * sequence, batch capacity, page accounting) and whose logits make token `next(last)` the
 * greedy choice, so the expected output is known.
 */
class ScriptedNative extends WithoutKvTiers implements NativeModel {
  readonly info: ModelInfo;
  readonly seqs = new Map<number, number[]>();
  readonly decodeSizes: number[] = [];
  readonly shifts: { seq: number; keep: number; drop: number }[] = [];
  private nextSeq = 0;
  private pagesUsed = 0;

  constructor(
    vocabSize: number,
    readonly pagesTotal: number,
    readonly next: (last: number) => number,
  ) {
    super();
    this.info = {
      architecture: "scripted",
      vocabSize,
      contextLength: 1 << 20,
      embeddingLength: 8,
      layerCount: 1,
      headCount: 1,
      headCountKv: 1,
      headDim: 8,
      formats: ["F32"],
      slidingWindow: null,
      pooling: "mean",
    };
  }

  private pagesOf(seq: number): number {
    return Math.ceil((this.seqs.get(seq)?.length ?? 0) / PAGE_TOKENS);
  }
  seqCreate(): number {
    const id = this.nextSeq++;
    this.seqs.set(id, []);
    return id;
  }
  seqFree(seqId: number): void {
    if (!this.seqs.has(seqId)) throw new Error(`seqFree: ${seqId} not open`);
    this.pagesUsed -= this.pagesOf(seqId);
    this.seqs.delete(seqId);
  }
  seqLength(seqId: number): number {
    return this.seqs.get(seqId)?.length ?? -1;
  }
  seqShift(seqId: number, keep: number, drop: number): void {
    const s = this.seqs.get(seqId);
    if (!s || keep + drop > s.length) throw new Error("bad shift");
    const before = this.pagesOf(seqId);
    s.splice(keep, drop);
    this.pagesUsed -= before - this.pagesOf(seqId);
    this.shifts.push({ seq: seqId, keep, drop });
  }
  decode(batch: Batch, out: Float32Array): number {
    expect(batch.length).toBeLessThanOrEqual(batch.capacity);
    // Pages needed first: nothing is written when the pool cannot hold the batch.
    const grow = new Map<number, number>();
    for (let i = 0; i < batch.length; i++) {
      const seq = batch.seqIds[i] as number;
      grow.set(seq, (grow.get(seq) ?? 0) + 1);
    }
    let need = 0;
    for (const [seq, n] of grow) {
      const len = this.seqs.get(seq)?.length ?? 0;
      need += Math.ceil((len + n) / PAGE_TOKENS) - Math.ceil(len / PAGE_TOKENS);
    }
    if (this.pagesUsed + need > this.pagesTotal) throw new KvFullError("scripted pool full");
    this.pagesUsed += need;
    this.decodeSizes.push(batch.length);
    let rows = 0;
    for (let i = 0; i < batch.length; i++) {
      const s = this.seqs.get(batch.seqIds[i] as number);
      if (!s) throw new Error("decode: sequence not open");
      expect(batch.positions[i]).toBe(s.length);
      s.push(batch.tokens[i] as number);
      if (batch.wantLogits[i] === 1) {
        const row = out.subarray(rows * this.info.vocabSize, (rows + 1) * this.info.vocabSize);
        row.fill(0);
        row[this.next(batch.tokens[i] as number)] = 10;
        rows++;
      }
    }
    return rows;
  }
  decodeHidden(): number {
    throw new Error("not scripted: sessions never ask for hidden states");
  }
  kvStats(): KvStats {
    return {
      pageTokens: PAGE_TOKENS,
      pagesTotal: this.pagesTotal,
      pagesFree: this.pagesTotal - this.pagesUsed,
      pageSizeBytes: 1,
    };
  }
  close(): void {}
}

let tokenizer: Tokenizer;
let md: GgufMetadata;
let path: string;
let letters: number[]; // token ids of "a".."z" (single tokens in this vocabulary)

beforeAll(async () => {
  path = await pullModel();
  md = new GgufMetadata(readGguf(path).metadata);
  tokenizer = Tokenizer.fromGguf(md);
  letters = [..."abcdefghijklmnopqrstuvwxyz"].map((c) => {
    const ids = tokenizer.encode(c, { addSpecial: false });
    expect(ids.length).toBe(1);
    return ids[0] as number;
  }, 60_000);
});

/** A model whose greedy continuation of letter X is the next letter (z wraps to a). */
function scriptedModel(
  opts: {
    pages?: number;
    maxBatchTokens?: number;
    contextTokens?: number;
    next?: (last: number) => number;
  } = {},
) {
  const cycle =
    opts.next ??
    ((last: number) => {
      const i = letters.indexOf(last);
      return letters[(i + 1) % letters.length] as number;
    });
  const native = new ScriptedNative(tokenizer.vocabSize, opts.pages ?? 64, cycle);
  const file = readGguf(path);
  const model = new Model({
    path,
    file,
    native,
    tokenizer,
    chatTemplate: ChatTemplate.fromGguf(md, tokenizer),
    options: resolveModelOptions(
      { threads: 1, maxBatchTokens: opts.maxBatchTokens ?? 8, contextTokens: opts.contextTokens ?? 64 },
      { contextLength: 8192 },
    ),
  });
  return { model, native };
}

async function collect(it: AsyncGenerator<string, unknown, void>): Promise<string> {
  let s = "";
  for await (const p of it) s += p;
  return s;
}

describe("session logic over a scripted native model", () => {
  test("prefill is split into chunks of maxBatchTokens with contiguous positions", async () => {
    const { model, native } = scriptedModel({ maxBatchTokens: 8 });
    const s = model.createSession();
    const t = await s.prefill(letters.slice(0, 21));
    expect(native.decodeSizes).toEqual([8, 8, 5]);
    expect(t.promptTokens).toBe(21);
    expect(t.finishReason).toBeNull();
    expect(s.length).toBe(21);
    model.close();
  }, 60_000);

  test("greedy generation streams the scripted continuation and stops at maxTokens", async () => {
    const { model } = scriptedModel();
    const s = model.createSession();
    await s.prefill("a");
    const text = await collect(s.generate({ maxTokens: 5, temperature: 0 }));
    expect(text).toBe("bcdef");
    expect(s.lastTelemetry?.generatedTokens).toBe(5);
    expect(s.lastTelemetry?.finishReason).toBe("length");
    expect(s.lastTelemetry?.promptTokens).toBe(1);
    // Continuing runs the pending last token first, then carries on.
    expect(await collect(s.generate({ maxTokens: 3, temperature: 0 }))).toBe("ghi");
    model.close();
  }, 60_000);

  test("a generation that ends mid UTF-8 character flushes the held bytes (length finish)", async () => {
    // Byte-level BPE: "â" is the token of the lone byte 0xE2, the first of a 3-byte character.
    const lead = tokenizer.tokenId("â");
    expect(lead).toBeDefined();
    const { model } = scriptedModel({ next: () => lead as number });
    const s = model.createSession();
    await s.prefill("a");
    const pieces: string[] = [];
    const gen = s.generate({ maxTokens: 1, temperature: 0 });
    let r = await gen.next();
    while (!r.done) {
      pieces.push(r.value);
      r = await gen.next();
    }
    expect(r.value.finishReason).toBe("length");
    expect(pieces.join("")).toBe("\uFFFD");
    expect(r.value.text).toBe("\uFFFD");
    model.close();
  }, 60_000);

  test("a stop string ends generation and is not emitted", async () => {
    const { model } = scriptedModel();
    const s = model.createSession();
    await s.prefill("a");
    const it = s.generate({ maxTokens: 20, temperature: 0, stop: ["ef"] });
    let text = "";
    let r = await it.next();
    while (!r.done) {
      text += r.value;
      r = await it.next();
    }
    expect(text).toBe("bcd");
    expect(r.value.finishReason).toBe("stop");
    model.close();
  }, 60_000);

  test("context shift: generation runs past the context, keeping the first tokens", async () => {
    const { model, native } = scriptedModel({ contextTokens: 32 });
    const s = model.createSession({ contextShift: { keepTokens: 3, dropTokens: 10 } });
    await s.prefill(letters.slice(0, 20));
    const text = await collect(s.generate({ maxTokens: 60, temperature: 0 }));
    expect(text.length).toBe(60);
    const t = s.lastTelemetry;
    expect(t?.contextShifts).toBeGreaterThan(0);
    expect(t?.droppedTokens).toBe(10 * (t?.contextShifts ?? 0));
    expect(native.shifts.every((x) => x.keep === 3 && x.drop === 10)).toBe(true);
    expect(s.length).toBeLessThanOrEqual(32);
    // The session's history mirrors the KV: the kept first tokens, then the newest.
    const kv = native.seqs.get(0) ?? [];
    expect(s.tokens.slice(0, kv.length)).toEqual(kv);
    expect(kv.slice(0, 3)).toEqual(letters.slice(0, 3));
    model.close();
  }, 60_000);

  test("context shift off: a full context is a ContextFullError, and the session stays usable", async () => {
    const { model } = scriptedModel({ contextTokens: 16 });
    const s = model.createSession({ contextShift: false });
    await s.prefill(letters.slice(0, 10));
    let text = "";
    const run = async () => {
      for await (const p of s.generate({ maxTokens: 40, temperature: 0 })) text += p;
    };
    await expect(run()).rejects.toBeInstanceOf(ContextFullError);
    await expect(run()).rejects.toThrow(
      /context full: the session holds 16 of 16 tokens, 1 more does not fit, and contextShift is off/,
    );
    expect(text.length).toBeGreaterThan(0);
    expect(s.length).toBeLessThanOrEqual(17);
    s.reset();
    await s.prefill("a");
    expect(await collect(s.generate({ maxTokens: 2, temperature: 0 }))).toBe("bc");
    // A prompt longer than the context is refused the same way.
    s.reset();
    await expect(s.prefill(letters.concat(letters))).rejects.toBeInstanceOf(ContextFullError);
    model.close();
  }, 60_000);

  test("prefill longer than the context shifts while prefilling", async () => {
    const { model } = scriptedModel({ contextTokens: 32 });
    const s = model.createSession();
    const t = await s.prefill([...letters, ...letters, ...letters]);
    expect(t.contextShifts).toBeGreaterThan(0);
    expect(s.length).toBeLessThanOrEqual(32);
    expect(await collect(s.generate({ maxTokens: 1, temperature: 0 }))).toBe("a");
    model.close();
  }, 60_000);

  test("a full KV pool shifts this session when it can, else a clear KvFullError", async () => {
    const { model } = scriptedModel({ pages: 4, contextTokens: 256, maxBatchTokens: 16 });
    const a = model.createSession();
    const text = await (async () => {
      await a.prefill(letters.slice(0, 10));
      return collect(a.generate({ maxTokens: 100, temperature: 0 }));
    })();
    expect(text.length).toBe(100);
    expect(a.lastTelemetry?.contextShifts).toBeGreaterThan(0);
    // Now a second session finds no free page and nothing of its own to drop.
    const b = model.createSession();
    await expect(b.prefill(letters)).rejects.toThrow(
      /KV pool is full \(4 pages of 16 tokens, shared by 2 sessions\)/,
    );
    a.close();
    await b.prefill(letters);
    expect(b.length).toBe(26);
    model.close();
  }, 60_000);

  test("close returns the pages; a closed session refuses calls", async () => {
    const { model, native } = scriptedModel();
    const s = model.createSession();
    await s.prefill(letters);
    expect(native.kvStats().pagesFree).toBe(64 - 2);
    s.close();
    expect(native.kvStats().pagesFree).toBe(64);
    expect(model.openSessions).toBe(0);
    await expect(s.prefill("a")).rejects.toBeInstanceOf(SessionStateError);
    expect(() => s.generate()).toThrow(/session is closed/);
    model.close();
  }, 60_000);

  test("abort() and an AbortSignal end generation with finishReason abort", async () => {
    const { model } = scriptedModel();
    const s = model.createSession();
    await s.prefill("a");
    let n = 0;
    const it = s.generate({ maxTokens: 50, temperature: 0, ignoreEos: true });
    let r = await it.next();
    while (!r.done) {
      if (++n === 3) s.abort();
      r = await it.next();
    }
    expect(r.value.finishReason).toBe("abort");
    expect(r.value.tokens.length).toBe(3);
    const ctl = new AbortController();
    ctl.abort();
    const r2 = await collect(s.generate({ maxTokens: 5, signal: ctl.signal }));
    expect(r2).toBe("");
    expect(s.lastTelemetry?.finishReason).toBe("abort");
    // Leaving the loop early still reports the call, and the session goes on.
    let k = 0;
    for await (const _ of s.generate({ maxTokens: 50, temperature: 0 })) if (++k === 2) break;
    expect(s.lastTelemetry?.finishReason).toBe("abort");
    expect(s.lastTelemetry?.generatedTokens).toBe(2);
    // An abort from an earlier call does not carry over.
    expect(await collect(s.generate({ maxTokens: 2, temperature: 0 }))).toHaveLength(2);
    model.close();
  }, 60_000);

  test("one call at a time; generate before any prompt is a clear error", async () => {
    const { model } = scriptedModel();
    const s = model.createSession();
    await expect(collect(s.generate())).rejects.toThrow(/prefill a prompt first/);
    await s.prefill("a");
    const it = s.generate({ maxTokens: 5, temperature: 0 });
    await it.next();
    await expect(s.prefill("b")).rejects.toThrow(/busy/);
    await it.return(undefined as never);
    await s.prefill("b");
    model.close();
  }, 60_000);

  test("bad options and bad token ids are refused before anything runs", async () => {
    const { model } = scriptedModel({ contextTokens: 32 });
    expect(() => model.createSession({ contextShift: { keepTokens: 32 } })).toThrow(/keepTokens/);
    expect(() => model.createSession({ contextShift: { keepTokens: 4, dropTokens: 40 } })).toThrow(/exceed/);
    expect(() => model.createSession({ sampling: { temperature: -1 } })).toThrow(/temperature/);
    const s = model.createSession();
    await expect(s.prefill([1, 2, -3])).rejects.toThrow(/token 2 is -3/);
    await expect(s.prefill([tokenizer.vocabSize])).rejects.toThrow(/not an id/);
    expect(s.length).toBe(0);
    expect(() => resolveModelOptions({ threads: 0 }, { contextLength: 10 })).toThrow(/threads/);
    expect(() => resolveModelOptions({ kvType: "q4" as "f16" }, { contextLength: 10 })).toThrow(/kvType/);
    model.close();
  }, 60_000);

  test("chat reuses the KV prefix of the previous turn", async () => {
    const { model } = scriptedModel({ contextTokens: 512, maxBatchTokens: 64 });
    const s = model.createSession({ systemPrompt: "Be brief." });
    await s.ask("a", { maxTokens: 3, temperature: 0 });
    const first = s.lastTelemetry;
    expect(first?.cachedTokens).toBe(0);
    expect(s.messages.map((m) => m.role)).toEqual(["system", "user", "assistant"]);
    await s.ask("b", { maxTokens: 3, temperature: 0 });
    const second = s.lastTelemetry;
    expect(second?.cachedTokens).toBeGreaterThanOrEqual(first?.promptTokens ?? 0);
    expect(second?.promptTokens).toBeLessThan(second?.cachedTokens ?? 0);
    s.reset();
    expect(s.messages).toEqual([{ role: "system", content: "Be brief." }]);
    model.close();
  }, 60_000);

  test("createSession refuses a contextTokens larger than the KV pool, naming the pool and the fix", () => {
    // 4 pages of 16 tokens: the pool holds 64 tokens.
    const { model } = scriptedModel({ pages: 4, contextTokens: 64 });
    const refuse = () => model.createSession({ contextTokens: 4096 });
    expect(refuse).toThrow(RangeError);
    expect(refuse).toThrow(
      /contextTokens 4096 is more than the model's KV pool holds \(4 pages of 16 tokens = 64 tokens/,
    );
    expect(refuse).toThrow(/loadModel\(ref, \{ contextTokens: 4096 \}\)/);
    expect(model.openSessions).toBe(0);
    // Exactly the pool, or less, is fine.
    model.createSession({ contextTokens: 64 }).close();
    const s = model.createSession({ contextTokens: 32 });
    expect(s.contextTokens).toBe(32);
    model.close();
  }, 60_000);

  test("misspelt option keys are refused, naming the key and the valid ones", async () => {
    const { model } = scriptedModel();
    expect(() => model.createSession({ contextToken: 10 } as never)).toThrow(
      /createSession options: unknown option "contextToken" \(did you mean "contextTokens"\?\); valid options: contextTokens, contextShift, systemPrompt, deterministic, sampling/,
    );
    expect(() => model.createSession({ sampling: { temp: 0 } } as never)).toThrow(
      /createSession sampling: unknown option "temp".*valid options: temperature, topK/,
    );
    expect(() => model.createSession({ contextShift: { keep: 4 } } as never)).toThrow(
      /createSession contextShift: unknown option "keep"; valid options: keepTokens, dropTokens/,
    );
    expect(model.openSessions).toBe(0);
    const s = model.createSession();
    await s.prefill("a");
    expect(() => s.generate({ max_tokens: 5 } as never)).toThrow(
      /generate options: unknown option "max_tokens" \(did you mean "maxTokens"\?\)/,
    );
    expect(() => s.chat([{ role: "user", content: "a" }], { temprature: 0 } as never)).toThrow(
      /chat options: unknown option "temprature" \(did you mean "temperature"\?\)/,
    );
    await expect(s.ask("a", { onTxt: () => {} } as never)).rejects.toThrow(
      /ask options: unknown option "onTxt" \(did you mean "onText"\?\)/,
    );
    expect(s.messages).toEqual([]);
    // Keys present with the value undefined are fine when the key is known (the CLI passes them).
    expect(await collect(s.generate({ maxTokens: 2, temperature: 0, seed: undefined }))).toBe("bc");
    model.close();
  }, 60_000);

  test("loadModel refuses a non-string model and unknown option keys before fetching anything", async () => {
    const numeric = loadModel(42 as unknown as string);
    await expect(numeric).rejects.toBeInstanceOf(TypeError);
    await expect(loadModel(42 as unknown as string)).rejects.toThrow(
      /loadModel: the model must be a string \(a \.gguf path, a known model name \(.*\) or an http\(s\) URL\), got number 42/,
    );
    await expect(loadModel({ path: "x" } as unknown as string)).rejects.toThrow(/must be a string/);
    const typo = loadModel(undefined, { contextToken: 10 } as never);
    await expect(typo).rejects.toBeInstanceOf(ModelOptionsError);
    await expect(loadModel(undefined, { contextToken: 10 } as never)).rejects.toThrow(
      /loadModel options: unknown option "contextToken" \(did you mean "contextTokens"\?\); valid options: threads, contextTokens, kvPages, kvType, maxBatchTokens, maxSessions, deterministic, pull/,
    );
    await expect(loadModel(undefined, 5 as never)).rejects.toThrow(/loadModel options must be an object/);
  }, 60_000);

  test("chat needs at least one message, each with a role the server also accepts", async () => {
    const { model } = scriptedModel({ contextTokens: 512, maxBatchTokens: 64 });
    const s = model.createSession();
    expect(() => s.chat([])).toThrow(ChatTemplateError);
    expect(() => s.chat([])).toThrow(/chat: messages is empty; give at least one message/);
    expect(() =>
      s.chat([
        { role: "user", content: "a" },
        { role: "wizard", content: "b" },
      ]),
    ).toThrow(
      /chat: messages\[1\]\.role is "wizard"; it must be one of system, developer, user, assistant, tool/,
    );
    expect(() => s.chat("hi" as never)).toThrow(/chat: messages must be an array/);
    expect(s.length).toBe(0);
    for (const role of ["system", "developer", "user", "assistant", "tool"]) {
      const messages = [
        { role, content: "x" },
        { role: "user", content: "a" },
      ];
      await collect(s.chat(messages, { maxTokens: 1, temperature: 0 }));
    }
    model.close();
  }, 60_000);

  test("seed, logitBias and maxTokens get the server's rules", async () => {
    const { model } = scriptedModel();
    const vocab = tokenizer.vocabSize;
    const s = model.createSession();
    await s.prefill("a");
    expect(() => s.generate({ seed: 1.5 })).toThrow(SamplerError);
    expect(() => s.generate({ seed: 1.5 })).toThrow(/seed must be an integer in \[-2\^53, 2\^53\], got 1.5/);
    expect(() => s.generate({ seed: 2 ** 53 + 2 })).toThrow(/seed must be an integer/);
    expect(() => s.generate({ logitBias: { 999999: 5 } })).toThrow(
      new RegExp(`logitBias key 999999 is not a token id below the vocabulary size ${vocab}`),
    );
    expect(() => s.generate({ logitBias: { 1: 101 } })).toThrow(
      /logitBias for token 1 must be a number in \[-100, 100\]/,
    );
    expect(() => s.generate({ maxTokens: 0 })).toThrow(RangeError);
    expect(() => s.generate({ maxTokens: 0 })).toThrow(
      /generate: maxTokens must be an integer of at least 1, got 0/,
    );
    expect(() => s.generate({ maxTokens: 2.5 })).toThrow(/maxTokens must be an integer/);
    expect(() => s.chat([{ role: "user", content: "a" }], { maxTokens: -1 })).toThrow(/chat: maxTokens/);
    expect(() => model.createSession({ sampling: { seed: 0.5 } })).toThrow(/seed must be an integer/);
    expect(() => model.createSession({ sampling: { logitBias: { [vocab]: 1 } } })).toThrow(
      /is not a token id below the vocabulary size/,
    );
    expect(model.openSessions).toBe(1);
    // The limits themselves are fine.
    const ok = { seed: 2 ** 53, logitBias: { [vocab - 1]: -100, 0: Number.NEGATIVE_INFINITY }, maxTokens: 1 };
    expect(await collect(s.generate({ ...ok, temperature: 0 }))).toBe("b");
    model.close();
  }, 60_000);

  test("ask with maxTokens 0 is a RangeError and leaves the history as it was", async () => {
    const { model } = scriptedModel({ contextTokens: 512, maxBatchTokens: 64 });
    const s = model.createSession({ systemPrompt: "Be brief." });
    await expect(s.ask("Hi", { maxTokens: 0 })).rejects.toBeInstanceOf(RangeError);
    await expect(s.ask("Hi", { maxTokens: 0 })).rejects.toThrow(
      /ask: maxTokens must be an integer of at least 1/,
    );
    await expect(s.ask("Hi", { seed: 1.5 })).rejects.toThrow(/seed must be an integer/);
    expect(s.messages).toEqual([{ role: "system", content: "Be brief." }]);
    await s.ask("a", { maxTokens: 1, temperature: 0 });
    expect(s.messages.map((m) => m.role)).toEqual(["system", "user", "assistant"]);
    model.close();
  }, 60_000);

  test("a full context with shift off is a ContextFullError the public API exports", async () => {
    expect(hearth.ContextFullError).toBe(ContextFullError);
    const { model } = scriptedModel({ contextTokens: 16 });
    const s = model.createSession({ contextShift: false });
    const err = await s.prefill(letters).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(hearth.ContextFullError);
    expect(err).toBeInstanceOf(Error);
    const full = err as ContextFullError;
    expect(full.name).toBe("ContextFullError");
    expect(full.contextTokens).toBe(16);
    expect(full.usedTokens).toBe(0);
    expect(full.message).toContain(
      "(open the session with a larger contextTokens, enable contextShift, or reset() it)",
    );
    model.close();
  }, 60_000);
});
