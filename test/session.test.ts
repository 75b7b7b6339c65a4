// Session API end to end on the real default model: greedy output against a direct native loop,
// seeds, stop strings, abort, telemetry, chat prefix reuse, context shift on and off.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ContextFullError, loadModel, type Model, type Session } from "../src/index.ts";
import { createBatch } from "../src/native/model.ts";

let model: Model;

beforeAll(async () => {
  // Small batches so that every prefill below runs in several chunks.
  model = await loadModel(undefined, { threads: 1, maxBatchTokens: 4, contextTokens: 512, maxSessions: 4 });
}, 120_000);

afterAll(() => model?.close());

async function collect(it: AsyncGenerator<string, unknown, void>): Promise<string> {
  let s = "";
  for await (const p of it) s += p;
  return s;
}

/** Greedy tokens straight from the native model, one token per forward call. */
function nativeGreedy(prompt: number[], n: number): number[] {
  const native = model.native;
  const seq = native.seqCreate();
  const batch = createBatch(1);
  const logits = new Float32Array(native.info.vocabSize);
  const out: number[] = [];
  let pos = 0;
  const step = (tok: number) => {
    batch.length = 1;
    batch.tokens[0] = tok;
    batch.positions[0] = pos++;
    batch.seqIds[0] = seq;
    batch.wantLogits[0] = 1;
    native.decode(batch, logits);
  };
  for (const t of prompt) step(t);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let v = 1; v < logits.length; v++) if ((logits[v] as number) > (logits[best] as number)) best = v;
    out.push(best);
    if (i < n - 1) step(best);
  }
  native.seqFree(seq);
  return out;
}

function withSession<T>(
  opts: Parameters<Model["createSession"]>[0],
  fn: (s: Session) => Promise<T>,
): Promise<T> {
  const s = model.createSession(opts);
  return fn(s).finally(() => s.close());
}

describe("Session on the real model", () => {
  test("chunked prefill + greedy generate gives the same tokens as a one-token-at-a-time native loop", async () => {
    const prompt = "The capital of France is";
    const ids = model.encode(prompt);
    const expected = nativeGreedy(ids, 12);
    await withSession({}, async (s) => {
      const t = await s.prefill(prompt);
      expect(t.promptTokens).toBe(ids.length);
      const it = s.generate({ maxTokens: 12, temperature: 0, ignoreEos: true });
      let text = "";
      let r = await it.next();
      while (!r.done) {
        text += r.value;
        r = await it.next();
      }
      expect(r.value.tokens).toEqual(expected);
      expect(text).toBe(model.decode(expected));
      expect(r.value.text).toBe(text);
    });
  }, 120_000);

  test("telemetry is reported for prefill and generate", async () => {
    await withSession({}, async (s) => {
      const p = await s.prefill("Once upon a time there was a little");
      expect(p.promptTokens).toBeGreaterThan(4);
      expect(p.prefillTokensPerS).toBeGreaterThan(0);
      expect(p.generatedTokens).toBe(0);
      expect(s.lastTelemetry).toEqual(p);
      await collect(s.generate({ maxTokens: 6, temperature: 0, ignoreEos: true }));
      const t = s.lastTelemetry;
      if (t === null) throw new Error("no telemetry");
      expect(t.generatedTokens).toBe(6);
      expect(t.decodeTokens).toBe(5);
      expect(t.promptTokens).toBe(p.promptTokens);
      expect(t.timeToFirstTokenMs).toBeGreaterThanOrEqual(p.prefillMs);
      expect(t.decodeTokensPerS).toBeGreaterThan(0);
      // The total counts the prefill before the call, as the TTFT does: never less than it.
      expect(t.totalMs).toBeGreaterThanOrEqual(t.timeToFirstTokenMs ?? Number.POSITIVE_INFINITY);
      expect(t.finishReason).toBe("length");
      expect(t.contextUsedTokens).toBe(s.length);
    });
  }, 120_000);

  test("the same seed gives the same text; deterministic mode fixes the seed", async () => {
    const run = async (opts: { seed?: number }, deterministic = false) =>
      withSession({ deterministic }, async (s) => {
        await s.prefill("My favourite colour is blue because");
        return collect(s.generate({ maxTokens: 10, temperature: 0.9, topK: 0, topP: 1, minP: 0, ...opts }));
      });
    const a = await run({ seed: 1234 });
    expect(a.length).toBeGreaterThan(0);
    expect(await run({ seed: 1234 })).toBe(a);
    const d = await run({}, true);
    expect(await run({}, true)).toBe(d);
  }, 120_000);

  test("a stop string ends the text right before it", async () => {
    const prompt = "The capital of France is";
    const full = await withSession({}, async (s) => {
      await s.prefill(prompt);
      return collect(s.generate({ maxTokens: 16, temperature: 0, ignoreEos: true }));
    });
    // Stop on the first word of the continuation that comes after some text.
    const words = full.split(/\s+/).filter((w) => w.length > 2);
    const stop = words[1] ?? words[0];
    if (stop === undefined) throw new Error(`no words in ${JSON.stringify(full)}`);
    await withSession({}, async (s) => {
      await s.prefill(prompt);
      const it = s.generate({ maxTokens: 16, temperature: 0, ignoreEos: true, stop: [stop] });
      let r = await it.next();
      while (!r.done) r = await it.next();
      expect(r.value.finishReason).toBe("stop");
      expect(r.value.text).toBe(full.slice(0, full.indexOf(stop)));
    });
  }, 120_000);

  test("json: the reply is one JSON object and ends when it closes; no drafts with it", async () => {
    const reply = await withSession({}, async (s) => {
      const messages = [
        { role: "system" as const, content: "You answer in JSON." },
        { role: "user" as const, content: "Give the name and the capital of France as JSON." },
      ];
      const it = s.chat(messages, { maxTokens: 96, temperature: 0, json: true });
      let r = await it.next();
      let streamed = "";
      while (!r.done) {
        streamed += r.value;
        r = await it.next();
      }
      expect(r.value.finishReason).toBe("stop");
      expect(r.value.text).toBe(streamed);
      return r.value.text;
    });
    const parsed = JSON.parse(reply);
    expect(typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)).toBe(true);
    // With a schema: exactly its keys, of its types.
    const schema = {
      type: "object",
      properties: { city: { type: "string" }, sunny: { type: "boolean" } },
      required: ["city", "sunny"],
      additionalProperties: false,
    };
    const typed = await withSession({}, async (s) => {
      const r = await collect(
        s.chat([{ role: "user", content: "Is it sunny in Paris? Answer in JSON." }], {
          maxTokens: 64,
          temperature: 0,
          json: { schema },
        }),
      );
      return JSON.parse(r) as Record<string, unknown>;
    });
    expect(Object.keys(typed).sort()).toEqual(["city", "sunny"]);
    expect([typeof typed.city, typeof typed.sunny]).toEqual(["string", "boolean"]);
    await withSession({}, async (s) => {
      await s.prefill("Hi");
      await expect(collect(s.generate({ json: { schema: { type: "array" } } }))).rejects.toThrow(/top level/);
      await expect(collect(s.generate({ json: "yes" as never }))).rejects.toThrow(/json must be/);
    });
    await withSession({}, async (s) => {
      await s.prefill("Hi");
      await expect(collect(s.generate({ json: true, speculative: true }))).rejects.toThrow(
        /json and speculative/,
      );
    });
  }, 120_000);

  test("an AbortSignal stops generation; closing the session returns its KV pages", async () => {
    const free = model.kvStats().pagesFree;
    const s = model.createSession();
    await s.prefill("To make a cup of tea you need");
    const ctl = new AbortController();
    let pieces = 0;
    for await (const _ of s.generate({
      maxTokens: 200,
      temperature: 0,
      ignoreEos: true,
      signal: ctl.signal,
    })) {
      if (++pieces === 3) ctl.abort();
    }
    expect(s.lastTelemetry?.finishReason).toBe("abort");
    expect(s.lastTelemetry?.generatedTokens).toBeLessThan(10);
    expect(model.kvStats().pagesFree).toBeLessThan(free);
    s.close();
    expect(model.kvStats().pagesFree).toBe(free);
  }, 120_000);

  test("chat: a second turn reuses the first turn's KV", async () => {
    await withSession({ systemPrompt: "You answer in one short sentence." }, async (s) => {
      const first = await s.ask("What is the capital of France?", { maxTokens: 16, temperature: 0 });
      expect(first.length).toBeGreaterThan(0);
      const t1 = s.lastTelemetry;
      const second = await s.ask("And of Italy?", { maxTokens: 16, temperature: 0 });
      expect(second.length).toBeGreaterThan(0);
      const t2 = s.lastTelemetry;
      expect(t1?.cachedTokens).toBe(0);
      expect(t2?.cachedTokens).toBeGreaterThanOrEqual(t1?.promptTokens ?? Number.POSITIVE_INFINITY);
      expect(s.messages.map((m) => m.role)).toEqual(["system", "user", "assistant", "user", "assistant"]);
    });
  }, 120_000);

  test("a session context larger than the model's KV pool is refused, not shifted at the pool size", () => {
    // contextTokens 512 for 4 sessions: a pool of 128 pages of 16 tokens.
    const pool = model.kvStats();
    expect(pool.pagesTotal * pool.pageTokens).toBe(2048);
    const open = model.openSessions;
    expect(() => model.createSession({ contextTokens: 4096 })).toThrow(
      /contextTokens 4096 is more than the model's KV pool holds \(128 pages of 16 tokens = 2048 tokens.*loadModel\(ref, \{ contextTokens: 4096 \}\)/,
    );
    expect(model.openSessions).toBe(open);
    const s = model.createSession({ contextTokens: 2048 });
    expect(s.contextTokens).toBe(2048);
    s.close();
  });

  test("context shift on: generation continues past the context size", async () => {
    await withSession({ contextTokens: 40, contextShift: { keepTokens: 4, dropTokens: 16 } }, async (s) => {
      await s.prefill("Plants make food from sunlight by a process called");
      const text = await collect(s.generate({ maxTokens: 60, temperature: 0, ignoreEos: true }));
      const t = s.lastTelemetry;
      expect(t?.generatedTokens).toBe(60);
      expect(t?.contextShifts).toBeGreaterThanOrEqual(2);
      expect(t?.droppedTokens).toBe(16 * (t?.contextShifts ?? 0));
      expect(s.length).toBeLessThanOrEqual(40);
      expect(text.length).toBeGreaterThan(0);
      // The KV holds what the session says (the last sampled token is not run yet).
      expect(model.native.seqLength(sessionSeq(s))).toBe(s.length - 1);
    });
  }, 120_000);

  test("context shift off: a clear ContextFullError, and the session stays usable", async () => {
    await withSession({ contextTokens: 24, contextShift: false }, async (s) => {
      await s.prefill("Water boils at a temperature of");
      let text = "";
      const run = async () => {
        for await (const p of s.generate({ maxTokens: 60, temperature: 0, ignoreEos: true })) text += p;
      };
      const err = await run().catch((e) => e);
      expect(err).toBeInstanceOf(ContextFullError);
      expect(String(err.message)).toMatch(
        /context full: the session holds 24 of 24 tokens.*contextShift is off/,
      );
      expect(text.length).toBeGreaterThan(0);
      s.reset();
      await s.prefill("Water boils at");
      expect((await collect(s.generate({ maxTokens: 3, temperature: 0 }))).length).toBeGreaterThan(0);
    });
  }, 120_000);
});

/** The KV sequence id of a session (private; read for the consistency check only). */
function sessionSeq(s: Session): number {
  return (s as unknown as { seqId: number }).seqId;
}
