// The continuous-batching scheduler: packing, admission by KV pages, preemption, queue bound and
// cancellation against a scripted NativeModel; batch-invariant seeded sampling on the real model.
import { describe, expect, test } from "bun:test";
import { type EngineEvent, QueueFullError, Scheduler, type StepEvent } from "../src/engine/scheduler.ts";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { pullModel } from "../src/gguf/pull.ts";
import { createBatch, openNativeModel } from "../src/native/model.ts";
import { type Batch, KvFullError, type KvStats, type NativeModel } from "../src/native/model-api.ts";
import { Rng } from "../src/sampling/index.ts";
import { resolveSpeculative } from "../src/speculative.ts";
import { Tokenizer } from "../src/tokenizer/index.ts";
import { WithoutKvTiers } from "./support/untiered.ts";

const VOCAB = 32;
const EOS = 31;

/** A NativeModel whose next token is (last token + 1) mod 30, with a real page count. */
class ScriptedModel extends WithoutKvTiers implements NativeModel {
  readonly info = {
    architecture: "scripted",
    vocabSize: VOCAB,
    contextLength: 4096,
    embeddingLength: 8,
    layerCount: 1,
    headCount: 1,
    headCountKv: 1,
    headDim: 8,
    formats: ["F32"],
    slidingWindow: null,
    pooling: "mean" as const,
  };
  private readonly lengths = new Map<number, number>();
  private nextSeq = 0;
  readonly batches: Array<Array<{ seq: number; pos: number; logits: boolean }>> = [];
  constructor(readonly pagesTotal: number) {
    super();
  }
  private pagesUsed(): number {
    let n = 0;
    for (const len of this.lengths.values()) n += Math.ceil(len / 16);
    return n;
  }
  seqCreate(): number {
    this.lengths.set(this.nextSeq, 0);
    return this.nextSeq++;
  }
  seqFree(seqId: number): void {
    if (!this.lengths.delete(seqId)) throw new Error(`seq ${seqId} not open`);
  }
  seqLength(seqId: number): number {
    return this.lengths.get(seqId) ?? 0;
  }
  seqShift(): void {
    throw new Error("not used");
  }
  decode(batch: Batch, out: Float32Array): number {
    this.advance(batch);
    let r = 0;
    for (let i = 0; i < batch.length; i++) {
      if (batch.wantLogits[i] !== 1) continue;
      const row = out.subarray(r * VOCAB, (r + 1) * VOCAB);
      row.fill(-10);
      row[((batch.tokens[i] as number) + 1) % 30] = 10;
      r++;
    }
    return r;
  }
  /** Hidden state of a row: 1 at index token % 8, plus its position at index 7. */
  decodeHidden(batch: Batch, out: Float32Array): number {
    this.advance(batch);
    let r = 0;
    for (let i = 0; i < batch.length; i++) {
      if (batch.wantLogits[i] !== 1) continue;
      const row = out.subarray(r * 8, (r + 1) * 8);
      row.fill(0);
      row[(batch.tokens[i] as number) % 8] = 1;
      row[7] = (row[7] as number) + (batch.positions[i] as number);
      r++;
    }
    return r;
  }
  private advance(batch: Batch): void {
    const after = new Map(this.lengths);
    const rows: Array<{ seq: number; pos: number; logits: boolean }> = [];
    for (let i = 0; i < batch.length; i++) {
      const seq = batch.seqIds[i] as number;
      const len = after.get(seq);
      if (len === undefined) throw new Error(`seq ${seq} not open`);
      if (batch.positions[i] !== len) throw new Error(`seq ${seq}: position ${batch.positions[i]} != ${len}`);
      after.set(seq, len + 1);
      rows.push({ seq, pos: len, logits: batch.wantLogits[i] === 1 });
    }
    let pages = 0;
    for (const len of after.values()) pages += Math.ceil(len / 16);
    if (pages > this.pagesTotal) throw new KvFullError("scripted pool full");
    for (const [k, v] of after) this.lengths.set(k, v);
    this.batches.push(rows);
  }
  kvStats(): KvStats {
    return {
      pageTokens: 16,
      pagesTotal: this.pagesTotal,
      pagesFree: this.pagesTotal - this.pagesUsed(),
      pageSizeBytes: 1,
    };
  }
  close(): void {}
}

const letters = {
  isEndOfGeneration: (id: number) => id === EOS,
  streamDecoder: () => ({ push: (id: number) => String.fromCharCode(97 + (id % 26)), flush: () => "" }),
};

type Outputs = Map<string, { text: string; done?: StepEvent }>;

function collect(out: Outputs, events: StepEvent[]): void {
  for (const ev of events) {
    const o = out.get(ev.id) ?? { text: "" };
    if (ev.type === "text") o.text += ev.text;
    else o.done = ev;
    if (ev.type === "done") o.text += ev.text;
    out.set(ev.id, o);
  }
}

function run(s: Scheduler, maxSteps = 1000, out: Outputs = new Map()): Outputs {
  for (let i = 0; i < maxSteps && !s.idle; i++) {
    for (const ev of s.step()) {
      const o = out.get(ev.id) ?? { text: "" };
      if (ev.type === "text") o.text += ev.text;
      else o.done = ev;
      if (ev.type === "done") o.text += ev.text;
      out.set(ev.id, o);
    }
  }
  return out;
}

const greedy = { temperature: 0 };

/** The real model (2 threads, 8 sequences) and a scheduler over it; the caller closes the model. */
/**
 * A scheduler on the real model (2 threads). `maxRunning` defaults to 8; with `hotPages` the
 * prefix cache is on, its hot tier that many pages (RAM only).
 */
function realScheduler(
  path: string,
  tok: Tokenizer,
  o: {
    kvPages: number;
    stepTokens: number;
    contextTokens: number;
    maxQueued: number;
    maxRunning?: number;
    hotPages?: number;
  },
) {
  const maxRunning = o.maxRunning ?? 8;
  const model = openNativeModel(path, {
    threads: 2,
    kvPages: o.kvPages,
    maxBatchTokens: o.stepTokens,
    maxSequences: maxRunning,
  });
  if (o.hotPages !== undefined)
    model.kvTierOpen?.({ hotBudgetBytes: o.hotPages * model.kvStats().pageSizeBytes });
  const opts = {
    maxRunning,
    maxQueued: o.maxQueued,
    stepTokens: o.stepTokens,
    contextTokens: o.contextTokens,
    prefixCache: o.hotPages !== undefined,
  };
  return { model, s: new Scheduler(model, tok, opts, createBatch(o.stepTokens)) };
}

describe("scheduler (scripted model)", () => {
  test("decode rows come first, prompts fill the rest of the token budget in chunks", () => {
    const m = new ScriptedModel(100);
    const s = new Scheduler(
      m,
      letters,
      { maxRunning: 4, maxQueued: 4, stepTokens: 8, contextTokens: 256 },
      createBatch(8),
    );
    s.submit({ id: "a", promptIds: [0, 1, 2], sampling: greedy, maxTokens: 4, stop: [] });
    const out: Outputs = new Map();
    collect(out, s.step()); // a's whole prompt
    s.submit({
      id: "b",
      promptIds: Array.from({ length: 20 }, (_, i) => i % 30),
      sampling: greedy,
      maxTokens: 2,
      stop: [],
    });
    collect(out, s.step());
    const second = m.batches[1] ?? [];
    expect(second.length).toBe(8);
    expect(second[0]).toEqual({ seq: 0, pos: 3, logits: true }); // a's decode row first
    expect(second.slice(1).every((r) => r.seq === 1 && !r.logits)).toBe(true); // a chunk of b
    run(s, 1000, out);
    expect(out.get("a")?.text).toBe("defg");
    // b's prompt ends with token 19: greedy continues 20, 21.
    expect(out.get("b")?.text).toBe("uv");
    expect(m.kvStats().pagesFree).toBe(100);
  });

  test("finish reasons: length, eos, stop string; usage counts", () => {
    const m = new ScriptedModel(100);
    const s = new Scheduler(
      m,
      letters,
      { maxRunning: 4, maxQueued: 4, stepTokens: 64, contextTokens: 256 },
      createBatch(64),
    );
    s.submit({ id: "len", promptIds: [0], sampling: greedy, maxTokens: 3, stop: [] });
    s.submit({
      id: "eos",
      promptIds: [28],
      sampling: { temperature: 0, logitBias: { 29: -100, 31: 20 } },
      maxTokens: 9,
      stop: [],
    });
    s.submit({ id: "stop", promptIds: [0], sampling: greedy, maxTokens: 10, stop: ["de"] });
    const out = run(s);
    expect(out.get("len")?.text).toBe("bcd");
    expect(out.get("len")?.done).toMatchObject({ finish: "length", promptTokens: 1, completionTokens: 3 });
    expect(out.get("eos")?.done).toMatchObject({ finish: "eos", completionTokens: 1 });
    expect(out.get("stop")?.text).toBe("bc");
    expect(out.get("stop")?.done).toMatchObject({ finish: "stop" });
  });

  test("admission waits for free pages; running out mid-decode preempts the newest and recomputes it", () => {
    // 6 pages of 16 tokens: a 20-token prompt needs 2 pages, so three are admitted; growing to
    // 36 tokens they need 3 pages each and the newest must be preempted.
    const m = new ScriptedModel(6);
    const s = new Scheduler(
      m,
      letters,
      { maxRunning: 8, maxQueued: 8, stepTokens: 64, contextTokens: 96 },
      createBatch(64),
    );
    const prompt = Array.from({ length: 20 }, (_, i) => i % 30);
    for (const id of ["a", "b", "c", "d"])
      s.submit({ id, promptIds: prompt, sampling: greedy, maxTokens: 16, stop: [] });
    const out: Outputs = new Map();
    collect(out, s.step());
    expect(s.stats().running).toBe(3);
    expect(s.stats().queued).toBe(1);
    run(s, 1000, out);
    // Tokens 20..29 then 0..5 (next = last + 1 mod 30), as letters.
    for (const id of ["a", "b", "c", "d"]) {
      expect(out.get(id)?.done).toMatchObject({ finish: "length", completionTokens: 16 });
      expect(out.get(id)?.text).toBe("uvwxyzabcdabcdef");
    }
    expect(s.stats().preemptions).toBeGreaterThan(0);
    expect(m.kvStats().pagesFree).toBe(6);
  });

  test("a full queue refuses with QueueFullError; cancel frees pages at once", () => {
    const m = new ScriptedModel(100);
    const s = new Scheduler(
      m,
      letters,
      { maxRunning: 1, maxQueued: 1, stepTokens: 64, contextTokens: 256 },
      createBatch(64),
    );
    s.submit({ id: "a", promptIds: [0, 1], sampling: greedy, maxTokens: 50, stop: [] });
    s.step();
    s.submit({ id: "b", promptIds: [0], sampling: greedy, maxTokens: 5, stop: [] });
    expect(() => s.submit({ id: "c", promptIds: [0], sampling: greedy, maxTokens: 5, stop: [] })).toThrow(
      QueueFullError,
    );
    for (let i = 0; i < 20; i++) s.step();
    expect(m.kvStats().pagesFree).toBe(98);
    expect(s.cancel("a")).toMatchObject({ type: "done", finish: "abort", completionTokens: 21 });
    expect(m.kvStats().pagesFree).toBe(100);
    expect(s.cancel("a")).toBeNull();
    const out = run(s);
    expect(out.get("b")?.text).toBe("bcdef");
  });

  test("a pool smaller than one context is refused at construction, saying what it needs", () => {
    const make = (pages: number) =>
      new Scheduler(
        new ScriptedModel(pages),
        letters,
        { maxRunning: 2, maxQueued: 2, stepTokens: 8, contextTokens: 100 },
        createBatch(8),
      );
    expect(() => make(6)).toThrow(/holds 6 pages of 16 tokens \(96 tokens\).*at least 7 pages/);
    expect(() => make(7)).not.toThrow();
  });

  test("a prompt that does not fit the context is refused", () => {
    const s = new Scheduler(
      new ScriptedModel(10),
      letters,
      { maxRunning: 1, maxQueued: 1, stepTokens: 8, contextTokens: 8 },
      createBatch(8),
    );
    expect(() =>
      s.submit({ id: "a", promptIds: new Array(8).fill(1), sampling: greedy, maxTokens: 1, stop: [] }),
    ).toThrow(/context holds 8/);
  });
});

describe("scheduler (scripted model): prompt scoring", () => {
  test("a long scoring request is not starved by shorter ones arriving after it", () => {
    const m = new ScriptedModel(4096);
    const s = new Scheduler(
      m,
      letters,
      { maxRunning: 16, maxQueued: 64, stepTokens: 256, contextTokens: 2048 },
      createBatch(256),
    );
    const prompt = (n: number) => Array.from({ length: n }, (_, i) => i % 30);
    const scoring = (id: string, n: number) => ({
      id,
      promptIds: prompt(n),
      sampling: greedy,
      maxTokens: 0,
      stop: [],
      promptLogprobs: true,
    });
    s.submit(scoring("long", 300));
    let doneAt = -1;
    for (let step = 0; step < 60 && doneAt < 0; step++) {
      // A new, shorter scoring request every step: the batch takes the shortest first, but the
      // scored rows (64 a step) go to the oldest request.
      s.submit(scoring(`short${step}`, 100));
      for (const ev of s.step()) if (ev.id === "long" && ev.type === "done") doneAt = step;
    }
    // 299 rows at 64 a step: the fifth step.
    expect(doneAt).toBe(4);
  });
});

describe("scheduler (scripted model): the stream decoder", () => {
  test("a character the decoder still holds at a length finish is flushed into the text", () => {
    // Like a UTF-8 decoder mid-character: every odd token waits for the next push, flush() gives it out.
    const holding = {
      isEndOfGeneration: (id: number) => id === EOS,
      streamDecoder: () => {
        let held = "";
        return {
          push(id: number): string {
            const c = held + String.fromCharCode(97 + (id % 26));
            if (id % 2 === 1) {
              held = c;
              return "";
            }
            held = "";
            return c;
          },
          flush(): string {
            const c = held;
            held = "";
            return c;
          },
        };
      },
    };
    const s = new Scheduler(
      new ScriptedModel(100),
      holding,
      { maxRunning: 2, maxQueued: 2, stepTokens: 8, contextTokens: 256 },
      createBatch(8),
    );
    // Prompt ends with 2: greedy continues 3 (held), 4, 5 (held) and stops at 3 tokens.
    s.submit({ id: "a", promptIds: [0, 1, 2], sampling: greedy, maxTokens: 3, stop: [] });
    const out = run(s);
    expect(out.get("a")?.done).toMatchObject({ finish: "length", completionTokens: 3 });
    expect(out.get("a")?.text).toBe("def");
  });
});

describe("scheduler (real model)", () => {
  test(
    "with the prefix cache on (a tiny pool, so sequences are preempted) the tokens are those of a cold run",
    async () => {
      const path = await pullModel();
      const tok = Tokenizer.fromGguf(new GgufMetadata(readGguf(path).metadata));
      const system = "You are a helpful assistant who answers in one short sentence. ";
      const questions = [
        "Why is the sky blue?",
        "What is a prime number?",
        "Who wrote Hamlet?",
        "How do birds fly?",
      ];
      const runAll = (prefixCache: boolean) => {
        const model = openNativeModel(path, { threads: 1, kvPages: 14, maxBatchTokens: 64, maxSequences: 4 });
        try {
          if (prefixCache) model.kvTierOpen?.({ hotBudgetBytes: 4 * model.kvStats().pageSizeBytes });
          const s = new Scheduler(
            model,
            tok,
            // The context is what 14 pages hold: the scheduler refuses a pool smaller than one context.
            { maxRunning: 4, maxQueued: 8, stepTokens: 64, contextTokens: 14 * 16, prefixCache },
            createBatch(64),
          );
          for (const [i, q] of questions.entries())
            s.submit({
              id: `q${i}`,
              promptIds: tok.encode(system + q),
              sampling: greedy,
              maxTokens: 40,
              stop: [],
              ignoreEos: true,
            });
          const out: Outputs = new Map();
          const finished: number[] = [];
          for (let k = 0; k < 5000 && !s.idle; k++) {
            const events = s.step();
            collect(out, events);
            for (const ev of events) if (ev.type === "done") finished.push(Number(ev.id.slice(1)));
          }
          // Each question again, one at a time, latest finished first: that one's pages are
          // still in the hot tier (the pool was too tight to keep the others).
          for (const i of finished.reverse()) {
            s.submit({
              id: `again${i}`,
              promptIds: tok.encode(system + (questions[i] as string)),
              sampling: greedy,
              maxTokens: 40,
              stop: [],
              ignoreEos: true,
            });
            run(s, 5000, out);
          }
          return { out, stats: s.stats() };
        } finally {
          model.close();
        }
      };
      const cold = runAll(false);
      const cached = runAll(true);
      expect(cold.stats.kvTier).toBeNull();
      expect(cached.stats.preemptions).toBeGreaterThan(0);
      expect(cached.stats.kvTier?.tokensReused).toBeGreaterThan(0);
      let againCached = 0;
      for (const [i] of questions.entries()) {
        for (const id of [`q${i}`, `again${i}`]) {
          const done = cached.out.get(id)?.done;
          expect(done?.type).toBe("done");
          if (done?.type === "done" && id.startsWith("again")) againCached += done.cachedTokens;
          expect(cached.out.get(id)?.text).toBe(cold.out.get(id)?.text as string);
        }
        expect(cached.out.get(`again${i}`)?.text).toBe(cached.out.get(`q${i}`)?.text as string);
      }
      expect(againCached).toBeGreaterThan(0);
    },
    { timeout: 300_000 },
  );

  test(
    "speculative decoding in the batch gives the text of plain decoding (greedy, seeded, stops, max_tokens, a tight pool, prefix cache)",
    async () => {
      const path = await pullModel();
      const tok = Tokenizer.fromGguf(new GgufMetadata(readGguf(path).metadata));
      // Repetitive prompts, so prompt lookup finds drafts; a few plain ones beside them.
      const prompts = [
        "List the numbers: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6, 7,",
        "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n\ndef mul(a, b):\n",
        "red green blue red green blue red green blue red",
        "Once upon a time",
        "The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is",
        "Hello",
      ];
      const requests = (spec: boolean) =>
        prompts.flatMap((p, i) => [
          {
            id: `g${i}`,
            promptIds: tok.encode(p),
            sampling: greedy,
            maxTokens: 20 + 7 * i,
            stop: i === 2 ? ["blue red green"] : [],
            ignoreEos: true,
            speculative: spec ? resolveSpeculative({ maxDraftTokens: 6 }) : null,
          },
          {
            id: `s${i}`,
            promptIds: tok.encode(p),
            sampling: { temperature: 0.8, topP: 0.95, seed: 100 + i },
            maxTokens: 24,
            stop: [],
            speculative: spec ? resolveSpeculative(true) : null,
          },
        ]);
      const runAll = (spec: boolean, kvPages: number, prefixCache: boolean) => {
        const model = openNativeModel(path, { threads: 2, kvPages, maxBatchTokens: 96, maxSequences: 12 });
        try {
          if (prefixCache) model.kvTierOpen?.({ hotBudgetBytes: 8 * model.kvStats().pageSizeBytes });
          const s = new Scheduler(
            model,
            tok,
            {
              maxRunning: 12,
              maxQueued: 12,
              stepTokens: 96,
              contextTokens: Math.min(512, kvPages * 16),
              prefixCache,
            },
            createBatch(96),
          );
          for (const r of requests(spec)) s.submit(r);
          const out = run(s, 5000);
          const stats = s.stats();
          if (!prefixCache) expect(model.kvStats().pagesFree).toBe(kvPages);
          return { out, stats };
        } finally {
          model.close();
        }
      };
      const plain = runAll(false, 256, false);
      expect(plain.stats.draftTokens).toBe(0);
      for (const [kvPages, prefixCache] of [
        [256, false],
        [12, false],
        [40, true],
      ] as const) {
        const spec = runAll(true, kvPages, prefixCache);
        for (const r of requests(false)) {
          expect(spec.out.get(r.id)?.done?.type).toBe("done");
          expect(spec.out.get(r.id)?.text).toBe(plain.out.get(r.id)?.text as string);
        }
        expect(spec.stats.draftTokens).toBeGreaterThan(0);
        expect(spec.stats.acceptedDraftTokens).toBeGreaterThan(0);
        if (kvPages === 12) expect(spec.stats.preemptions).toBeGreaterThan(0);
        console.log(
          `speculative in the engine (${kvPages} pages${prefixCache ? ", prefix cache" : ""}): ${spec.stats.acceptedDraftTokens}/${spec.stats.draftTokens} drafts accepted, ${spec.stats.steps} steps vs ${plain.stats.steps} plain, ${spec.stats.preemptions} preemptions`,
        );
      }
    },
    { timeout: 300_000 },
  );

  test("requests sharing a prompt sent at once compute it once: the others wait for its pages", async () => {
    const path = await pullModel();
    const tok = Tokenizer.fromGguf(new GgufMetadata(readGguf(path).metadata));
    const prompt = tok.encode(
      `${"You are a careful assistant who answers briefly. ".repeat(5)}Name a fruit.`,
    );
    const runThree = (prefixCache: boolean) => {
      const { model, s } = realScheduler(path, tok, {
        kvPages: 96,
        stepTokens: 256,
        contextTokens: 512,
        maxQueued: 4,
        maxRunning: 4,
        hotPages: prefixCache ? 48 : undefined,
      });
      try {
        for (let i = 0; i < 3; i++)
          s.submit({
            id: `c${i}`,
            promptIds: prompt,
            sampling: { temperature: 0.8, seed: 10 + i },
            maxTokens: 12,
            stop: [],
            ignoreEos: true,
          });
        // A different prompt beside them is not held back.
        s.submit({
          id: "other",
          promptIds: tok.encode("Hello there"),
          sampling: greedy,
          maxTokens: 12,
          stop: [],
        });
        const out = run(s, 200);
        // Once the prompt's pages are cached, two more such requests start together.
        for (const id of ["d0", "d1"])
          s.submit({ id, promptIds: prompt, sampling: greedy, maxTokens: 3, stop: [], ignoreEos: true });
        s.step();
        expect(s.stats().running).toBe(2);
        run(s, 50);
        return out;
      } finally {
        model.close();
      }
    };
    const cold = runThree(false);
    const shared = runThree(true);
    for (const id of ["c0", "c1", "c2", "other"])
      expect(shared.get(id)?.text).toBe(cold.get(id)?.text as string);
    const cached = ["c0", "c1", "c2"].map((id) => {
      const done = shared.get(id)?.done;
      if (done?.type !== "done") throw new Error(`${id} did not finish`);
      return done.cachedTokens;
    });
    expect(prompt.length).toBeGreaterThan(48);
    expect(cached[0]).toBe(0);
    // The others reuse every full page of the prompt and compute only its last partial page.
    for (const c of cached.slice(1)) expect(c).toBe(Math.floor((prompt.length - 1) / 16) * 16);
  }, 120_000);

  test("a held request waits only for the pages it shares, and the queue behind it goes on", async () => {
    const path = await pullModel();
    const tok = Tokenizer.fromGguf(new GgufMetadata(readGguf(path).metadata));
    const { model, s } = realScheduler(path, tok, {
      kvPages: 128,
      stepTokens: 64,
      contextTokens: 1024,
      maxQueued: 4,
      maxRunning: 4,
      hotPages: 96,
    });
    try {
      const system = tok.encode(
        "You are a careful assistant who answers briefly and never guesses. ".repeat(4),
      );
      const long = [...system, ...tok.encode(" Summarise the history of printing in detail. ".repeat(20))];
      const short = [...system, ...tok.encode(" Name a fruit.")];
      const shared = Math.floor(system.length / 16) * 16;
      expect(shared).toBeGreaterThanOrEqual(32);
      const req = (id: string, promptIds: number[]) => ({
        id,
        promptIds,
        sampling: greedy,
        maxTokens: 8,
        stop: [],
        ignoreEos: true,
      });
      s.submit(req("long", long));
      s.submit(req("short", short)); // shares the system prompt, which nobody has computed yet
      s.submit(req("other", tok.encode("Hello there"))); // shares nothing
      const out: Outputs = new Map();
      collect(out, s.step());
      // Step 1: the long prompt's first chunk and the unrelated request; "short" is held.
      expect(s.stats().running).toBe(2);
      expect(s.stats().queued).toBe(1);
      collect(out, s.step());
      // Step 2: the first chunk published the shared pages, so "short" runs (the long prompt, far
      // from done, is not waited for).
      expect(s.stats().running).toBe(3);
      run(s, 200, out);
      const done = out.get("short")?.done;
      if (done?.type !== "done") throw new Error("short did not finish");
      expect(done.cachedTokens).toBeGreaterThanOrEqual(shared);
    } finally {
      model.close();
    }
  }, 120_000);

  test("a speculative sequence whose drafts were rejected still publishes its pages", async () => {
    const path = await pullModel();
    const tok = Tokenizer.fromGguf(new GgufMetadata(readGguf(path).metadata));
    const { model, s } = realScheduler(path, tok, {
      kvPages: 64,
      stepTokens: 64,
      contextTokens: 512,
      maxQueued: 2,
      maxRunning: 2,
      hotPages: 48,
    });
    try {
      const prompt = tok.encode("List the numbers: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6, 7, 8,");
      s.submit({
        id: "spec",
        promptIds: prompt,
        sampling: { temperature: 0.9, seed: 3 },
        maxTokens: 40,
        stop: [],
        ignoreEos: true,
        logprobs: 0,
        speculative: resolveSpeculative(true),
      });
      const ids: number[] = [];
      for (let i = 0; i < 200 && !s.idle; i++)
        for (const ev of s.step())
          if (ev.type !== "error" && ev.type !== "embeddings" && ev.logprobs)
            ids.push(...ev.logprobs.map((l) => l.id));
      const st = s.stats();
      expect(st.draftTokens - st.acceptedDraftTokens).toBeGreaterThan(0); // some drafts were dropped
      s.submit({ id: "next", promptIds: [...prompt, ...ids], sampling: greedy, maxTokens: 1, stop: [] });
      const next = run(s, 100).get("next")?.done;
      if (next?.type !== "done") throw new Error("the follow-up did not finish");
      // Its whole conversation so far comes from the cache (all but the token left to compute).
      expect(next.cachedTokens).toBeGreaterThanOrEqual(prompt.length + ids.length - 16);
    } finally {
      model.close();
    }
  }, 120_000);

  test(
    "speculative vs plain over random request mixes: same text and finish for every request, no page leaked",
    async () => {
      const path = await pullModel();
      const tok = Tokenizer.fromGguf(new GgufMetadata(readGguf(path).metadata));
      const texts = [
        "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5,",
        "red green blue red green blue red green blue",
        "def f(x):\n    return x\n\ndef g(x):\n    return x\n\ndef h(x):\n",
        "Once upon a time",
        "abc abc abc abc abc abc",
      ];
      for (let trial = 0; trial < 6; trial++) {
        const rng = new Rng(4242 + trial);
        const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng.nextFloat() * xs.length)] as T;
        const kvPages = pick([12, 20, 64]);
        const ctx = Math.min(pick([48, 96, 256]), kvPages * 16); // a pool holds at least one context
        const stepTokens = pick([16, 32, 64]);
        const draft = 1 + Math.floor(rng.nextFloat() * 8);
        const reqs = Array.from({ length: 2 + Math.floor(rng.nextFloat() * 6) }, (_, i) => {
          const ids = tok.encode(pick(texts).repeat(1 + Math.floor(rng.nextFloat() * 2))).slice(0, ctx - 2);
          return {
            id: `r${i}`,
            promptIds: ids,
            sampling: rng.nextFloat() < 0.5 ? greedy : { temperature: 0.9, topP: 0.9, seed: trial * 10 + i },
            // Some run into the context limit, which bounds the drafts too.
            maxTokens: rng.nextFloat() < 0.3 ? 1000 : 1 + Math.floor(rng.nextFloat() * 50),
            stop: rng.nextFloat() < 0.3 ? [pick([" red", "3,", "\n\n"])] : [],
            ignoreEos: rng.nextFloat() < 0.5,
          };
        });
        const runOnce = (spec: boolean) => {
          const { model, s } = realScheduler(path, tok, {
            kvPages,
            stepTokens,
            contextTokens: ctx,
            maxQueued: 16,
          });
          try {
            for (const r of reqs)
              s.submit({ ...r, speculative: spec ? resolveSpeculative({ maxDraftTokens: draft }) : null });
            const out = run(s, 20_000);
            expect(model.kvStats().pagesFree).toBe(kvPages);
            return out;
          } finally {
            model.close();
          }
        };
        const plain = runOnce(false);
        const spec = runOnce(true);
        for (const r of reqs) {
          const a = plain.get(r.id)?.done;
          const b = spec.get(r.id)?.done;
          // A request the pool cannot hold fails in both, at a point that depends on the schedule.
          if (a?.type === "error" && b?.type === "error") continue;
          // The done event's own text is the last step's (several tokens with accepted drafts),
          // and only the speculative run verified drafts.
          const drafts = { text: "", draftTokens: 0, acceptedDraftTokens: 0, drafts: null };
          expect({ ...b, ...drafts }).toEqual({ ...(a as EngineEvent), ...drafts });
          expect(spec.get(r.id)?.text).toBe(plain.get(r.id)?.text as string);
          if (a?.type === "done" && b?.type === "done") {
            expect(a.draftTokens).toBe(0);
            expect(b.acceptedDraftTokens).toBeLessThanOrEqual(b.draftTokens);
            // Every accepted draft is a generated token that took no step of its own.
            expect(b.acceptedDraftTokens).toBeLessThan(Math.max(1, b.completionTokens));
          }
        }
      }
    },
    { timeout: 300_000 },
  );

  test(
    "a seeded request gives the same tokens alone and in a batch of 16",
    async () => {
      const path = await pullModel();
      const tok = Tokenizer.fromGguf(new GgufMetadata(readGguf(path).metadata));
      const model = openNativeModel(path, {
        threads: 2,
        kvPages: 256,
        maxBatchTokens: 256,
        maxSequences: 16,
      });
      try {
        const opts = { maxRunning: 16, maxQueued: 16, stepTokens: 256, contextTokens: 1024 };
        const sampling = { temperature: 0.9, topP: 0.95, seed: 1234 };
        const probe = {
          id: "probe",
          promptIds: tok.encode("Once upon a time"),
          sampling,
          maxTokens: 24,
          stop: [],
        };
        const s1 = new Scheduler(model, tok, opts, createBatch(256));
        s1.submit(probe);
        const single = run(s1).get("probe")?.text;
        const s16 = new Scheduler(model, tok, opts, createBatch(256));
        const prompts = [
          "Hello",
          "The weather today",
          "1, 2, 3,",
          "def main():",
          "Paris is",
          "Dear Sir,",
          "Q: why?",
          "Bread",
        ];
        for (let i = 0; i < 15; i++) {
          if (i === 7) s16.submit(probe);
          s16.submit({
            id: `o${i}`,
            promptIds: tok.encode(prompts[i % prompts.length] as string),
            sampling: { temperature: 1, seed: i },
            maxTokens: 10 + i,
            stop: [],
          });
        }
        const batched = run(s16);
        expect(single?.length).toBeGreaterThan(10);
        expect(batched.get("probe")?.text).toBe(single as string);
        expect(model.kvStats().pagesFree).toBe(256);
      } finally {
        model.close();
      }
    },
    { timeout: 300_000 },
  );
});

describe("scheduler (real model): prompt scoring", () => {
  test("prompt log-probabilities are the same in one step, in 16-token chunks and across preemptions", async () => {
    const path = await pullModel();
    const tok = Tokenizer.fromGguf(new GgufMetadata(readGguf(path).metadata));
    const prompt = tok.encode("The quick brown fox jumps over the lazy dog. ".repeat(8));
    const score = (stepTokens: number, kvPages: number, others: number) => {
      const { model, s } = realScheduler(path, tok, {
        kvPages,
        stepTokens,
        contextTokens: kvPages * 16,
        maxQueued: 8,
      });
      try {
        // Sequences generating beside it (admitted first: the scored one is the newest, preempted first).
        for (let i = 0; i < others; i++)
          s.submit({
            id: `g${i}`,
            promptIds: tok.encode(`Count: ${i}, `),
            sampling: greedy,
            maxTokens: 40,
            stop: [],
            ignoreEos: true,
          });
        s.submit({
          id: "scored",
          promptIds: prompt,
          sampling: greedy,
          maxTokens: 0,
          stop: [],
          logprobs: 2,
          promptLogprobs: true,
        });
        let scores: unknown = null;
        for (let i = 0; i < 2000 && !s.idle; i++)
          for (const ev of s.step())
            if (ev.id === "scored" && (ev.type === "text" || ev.type === "done") && ev.promptLogprobs)
              scores = ev.promptLogprobs;
        return { scores: scores as Array<{ id: number; logprob: number }>, stats: s.stats() };
      } finally {
        model.close();
      }
    };
    const whole = score(128, 64, 0);
    expect(whole.scores.length).toBe(prompt.length - 1);
    expect(whole.scores.map((x) => x.id)).toEqual(prompt.slice(1));
    const chunked = score(16, 64, 3);
    expect(chunked.scores).toEqual(whole.scores);
    // A pool of 8 pages (128 tokens) for a 90-token prompt and three growing sequences: preempted.
    const tight = score(16, 8, 3);
    expect(tight.stats.preemptions).toBeGreaterThan(0);
    expect(tight.scores).toEqual(whole.scores);
    // A 512-token step budget: the ~90 scored rows go 64 per step, so the logits buffer holds at
    // most 64 scored rows + the generating sequences' rows, never the whole prompt's.
    const wide = score(512, 64, 3);
    expect(wide.scores).toEqual(whole.scores);
    const vocab = tok.vocabSize;
    expect(wide.stats.logitsBufferBytes).toBeLessThanOrEqual((64 + 3 + 1) * vocab * 4);
    expect(wide.stats.logitsBufferBytes).toBeGreaterThanOrEqual(64 * vocab * 4);
  }, 120_000);
});

describe("Engine (worker)", () => {
  test("a cancelled request's slot is free at once, before the worker answers", async () => {
    const { Engine, EngineBusyError } = await import("../src/engine/index.ts");
    const path = await pullModel();
    const tok = Tokenizer.fromGguf(new GgufMetadata(readGguf(path).metadata));
    const engine = await Engine.start({
      modelPath: path,
      threads: 1,
      parallel: 1,
      maxQueued: 0,
      contextTokens: 256,
      kvPages: 16,
      stepTokens: 64,
      kvType: "f16",
    });
    try {
      const ends = new Map<string, string>();
      const done = (n: number) =>
        new Promise<void>((resolve) => {
          const check = setInterval(() => {
            if (ends.size >= n) {
              clearInterval(check);
              resolve();
            }
          }, 5);
        });
      const req = {
        promptIds: tok.encode("Once upon a time"),
        sampling: { temperature: 0 },
        maxTokens: 200,
        stop: [],
        ignoreEos: true,
      };
      const listen = (ev: { type: string; id: string; finish?: string }) => {
        if (ev.type === "done") ends.set(ev.id, ev.finish ?? "");
        else if (ev.type === "error") ends.set(ev.id, "error");
      };
      const first = engine.submit(req, listen as never);
      // The engine holds one request; a second is refused...
      expect(() => engine.submit(req, listen as never)).toThrow(EngineBusyError);
      // ...until the first is cancelled: then at once, in the same tick, with no worker answer yet.
      engine.cancel(first);
      const second = engine.submit({ ...req, maxTokens: 4 }, listen as never);
      await done(2);
      expect(ends.get(first)).toBe("abort");
      expect(ends.get(second)).toBe("length");
      expect(engine.inFlight).toBe(0);
    } finally {
      await engine.close();
    }
  }, 60_000);
});

describe("embeddings on the scheduler (scripted model)", () => {
  const embedScheduler = (m: ScriptedModel, stepTokens: number, embedSequences = 8) =>
    new Scheduler(
      m,
      letters,
      { maxRunning: 2, maxQueued: 4, stepTokens, contextTokens: 256, embedSequences },
      createBatch(stepTokens),
    );
  const vectorsOf = (events: StepEvent[], id: string) => {
    const ev = events.find((e) => e.id === id);
    if (ev?.type !== "embeddings") throw new Error(`no vectors for ${id}: ${JSON.stringify(ev)}`);
    return Array.from({ length: ev.vectors.length / ev.dims }, (_, i) =>
      Array.from(ev.vectors.subarray(i * ev.dims, (i + 1) * ev.dims)),
    );
  };
  const runAll = (s: Scheduler) => {
    const events: StepEvent[] = [];
    for (let i = 0; i < 100 && !s.idle; i++) events.push(...s.step());
    return events;
  };

  test("many inputs share one decode call, each in a sequence of its own, pooled by the mean and normalised", () => {
    const m = new ScriptedModel(100);
    const s = embedScheduler(m, 32);
    s.submitEmbed({ id: "e", inputs: [[1, 2], [3, 3, 3], [4]] });
    const events = s.step();
    expect(m.batches).toHaveLength(1);
    const rows = m.batches[0] ?? [];
    expect(rows.map((r) => r.seq)).toEqual([0, 0, 1, 1, 1, 2]);
    expect(rows.every((r) => r.logits)).toBe(true); // mean pooling reads every row
    const [a, b, c] = vectorsOf(events, "e");
    // Rows: 1 at token % 8, the position at index 7. [1, 2]: (0,1,1,0,0,0,0,1) / sqrt(3).
    const r3 = 1 / Math.sqrt(3);
    expect(a?.map((x) => Math.fround(x))).toEqual([0, r3, r3, 0, 0, 0, 0, r3].map(Math.fround));
    // [3, 3, 3]: (0,0,0,3,0,0,0,0+1+2) / sqrt(18).
    expect(b?.[3]).toBeCloseTo(3 / Math.sqrt(18), 6);
    expect(b?.[7]).toBeCloseTo(3 / Math.sqrt(18), 6);
    expect(c).toEqual([0, 0, 0, 0, 1, 0, 0, 0]);
    expect(m.kvStats().pagesFree).toBe(100); // every sequence freed
    expect(s.idle).toBe(true);
  });

  test("an input longer than the step budget continues over steps; cls and last pool one row", () => {
    for (const pooling of ["mean", "cls", "last"] as const) {
      const m = new ScriptedModel(100);
      Object.assign(m.info, { pooling });
      const s = embedScheduler(m, 4);
      const long = [1, 2, 3, 4, 5, 6, 7, 0, 1, 2];
      s.submitEmbed({ id: "e", inputs: [long, [5]] });
      const events = runAll(s);
      expect(m.batches.map((b) => b.length)).toEqual([4, 4, 3]); // [5] rides in the last step
      const wanted = m.batches.flat().filter((r) => r.logits).length;
      expect(wanted).toBe(pooling === "mean" ? 11 : 2);
      const [v] = vectorsOf(events, "e");
      if (pooling === "cls") expect(v).toEqual([0, 1, 0, 0, 0, 0, 0, 0]);
      if (pooling === "last") expect(v?.[2]).toBeCloseTo(1 / Math.sqrt(1 + 81), 6);
      expect(m.kvStats().pagesFree).toBe(100);
    }
  });

  test("embeddings and generation take turns; generation's tokens do not change", () => {
    const m = new ScriptedModel(100);
    const s = embedScheduler(m, 4);
    s.submit({ id: "g", promptIds: [0, 1], sampling: greedy, maxTokens: 4, stop: [] });
    s.submitEmbed({ id: "e", inputs: [Array.from({ length: 12 }, (_, i) => i % 8)] });
    const out: Outputs = new Map();
    collect(out, runAll(s));
    expect(out.get("g")?.text).toBe("cdef");
    const kinds = m.batches.map((b) => (b.some((r) => r.seq === 0) ? "g" : "e"));
    // The generation arrived first (its prompt), then they alternate while both have work.
    expect(kinds.slice(0, 6)).toEqual(["g", "e", "g", "e", "g", "e"]);
  });

  test("admission by KV pages: inputs wait for pages, one too large for what is free fails alone", () => {
    const m = new ScriptedModel(4); // 64 tokens of KV
    const s = new Scheduler(
      m,
      letters,
      { maxRunning: 2, maxQueued: 4, stepTokens: 64, contextTokens: 64, embedSequences: 8 },
      createBatch(64),
    );
    s.submit({ id: "g", promptIds: [0, 1], sampling: greedy, maxTokens: 20, stop: [] });
    s.step(); // g holds a page from here on
    s.submitEmbed({ id: "a", inputs: [Array(40).fill(1), Array(40).fill(2)] });
    s.submitEmbed({ id: "big", inputs: [Array(64).fill(3)] });
    s.submitEmbed({ id: "c", inputs: [[4]] });
    const events = runAll(s);
    const embedBatches = m.batches.filter((b) => b.every((r) => r.seq !== 0));
    expect(embedBatches.map((b) => b.length)).toEqual([40, 40, 1]); // 3 pages each: one at a time
    expect(vectorsOf(events, "a")).toHaveLength(2);
    expect(events.find((e) => e.id === "big")).toMatchObject({ type: "error", code: "kv_full" });
    expect(vectorsOf(events, "c")).toHaveLength(1);
    expect(events.find((e) => e.id === "g")).toBeDefined();
    expect(m.kvStats().pagesFree).toBe(4);
  });

  test("cancel frees the job's sequences; bad inputs are refused at submit", () => {
    const m = new ScriptedModel(100);
    const s = embedScheduler(m, 4);
    s.submitEmbed({ id: "e", inputs: [Array(10).fill(1), Array(10).fill(2)] });
    s.step();
    expect(m.kvStats().pagesFree).toBeLessThan(100);
    expect(s.cancel("e")).toMatchObject({ type: "error", id: "e" });
    expect(m.kvStats().pagesFree).toBe(100);
    expect(s.idle).toBe(true);
    expect(() => s.submitEmbed({ id: "x", inputs: [] })).toThrow(/1 to 2048 inputs/);
    expect(() => s.submitEmbed({ id: "x", inputs: [[1], []] })).toThrow(/input 1 is empty/);
    expect(() => s.submitEmbed({ id: "x", inputs: [[VOCAB]] })).toThrow(/not a token id below 32/);
    expect(() => s.submitEmbed({ id: "x", inputs: [Array(257).fill(1)] })).toThrow(/the limit is 256/);
    const none = embedScheduler(m, 4, 0);
    expect(() => none.submitEmbed({ id: "x", inputs: [[1]] })).toThrow(/no KV sequences are left/);
  });
});
