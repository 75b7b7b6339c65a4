// What the library gained from sharing the server's engine, on the real default model:
// sessions generating at once share engine steps (and each gets what it gets alone),
// log-probabilities, and predicted outputs.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { loadModel, type Model } from "../src/index.ts";

let model: Model;

beforeAll(async () => {
  model = await loadModel(undefined, { threads: 2, contextTokens: 512, maxSessions: 4 });
}, 120_000);

afterAll(() => model?.close());

async function generateAlone(prompt: string, n: number): Promise<number[]> {
  const s = model.createSession();
  try {
    await s.prefill(prompt);
    const it = s.generate({ maxTokens: n, temperature: 0, ignoreEos: true });
    let r = await it.next();
    while (!r.done) r = await it.next();
    return r.value.tokens;
  } finally {
    s.close();
  }
}

describe("library sessions on one in-process engine", () => {
  test("three sessions generating at once share steps and each gets the tokens it gets alone", async () => {
    const prompts = ["The sky is blue because", "My favourite food is", "Once upon a time"];
    const n = 12;
    const alone = [];
    for (const p of prompts) alone.push(await generateAlone(p, n));
    const sessions = prompts.map(() => model.createSession());
    try {
      await Promise.all(sessions.map((s, i) => s.prefill(prompts[i] as string)));
      const before = model.engine.stats().steps;
      const together = await Promise.all(
        sessions.map(async (s) => {
          const it = s.generate({ maxTokens: n, temperature: 0, ignoreEos: true });
          let r = await it.next();
          while (!r.done) r = await it.next();
          return r.value.tokens;
        }),
      );
      const steps = model.engine.stats().steps - before;
      expect(together).toEqual(alone);
      // Alone, each would take n - 1 steps (the first token comes from the prefill's logits).
      expect(steps).toBeLessThan(prompts.length * (n - 1));
      expect(steps).toBeGreaterThanOrEqual(n - 1);
    } finally {
      for (const s of sessions) s.close();
    }
  }, 120_000);

  test("logprobs: one entry per generated token, the greedy token first among its alternatives", async () => {
    const s = model.createSession();
    try {
      await s.prefill("The capital of France is");
      const it = s.generate({ maxTokens: 6, temperature: 0, ignoreEos: true, logprobs: 3 });
      let r = await it.next();
      while (!r.done) r = await it.next();
      const lp = r.value.logprobs ?? [];
      expect(lp.length).toBe(6);
      for (const [i, e] of lp.entries()) {
        expect(e.id).toBe(r.value.tokens[i] as number);
        expect(e.logprob).toBeLessThanOrEqual(0);
        expect(e.top.length).toBe(3);
        expect(e.top[0]?.id).toBe(e.id);
      }
      expect(() => s.generate({ logprobs: 21 })).not.toThrow(); // checked when it starts
      await expect(s.generate({ logprobs: 21 }).next()).rejects.toThrow(
        /logprobs must be an integer from 0 to 20/,
      );
    } finally {
      s.close();
    }
  }, 120_000);

  test("a prediction drafts the reply: same tokens as without it, drafts accepted", async () => {
    const prompt = "Repeat after me: the quick brown fox jumps over the lazy dog.\nThe quick";
    const plain = await generateAlone(prompt, 10);
    const s = model.createSession();
    try {
      await s.prefill(prompt);
      const predicted = model.decode(plain);
      const it = s.generate({ maxTokens: 10, temperature: 0, ignoreEos: true, prediction: predicted });
      let r = await it.next();
      while (!r.done) r = await it.next();
      expect(r.value.tokens).toEqual(plain);
      expect(r.value.telemetry.acceptedDraftTokens).toBeGreaterThan(0);
    } finally {
      s.close();
    }
  }, 120_000);

  test("a signal reused across many calls keeps no listener of a finished call", async () => {
    const controller = new AbortController();
    const signal = controller.signal;
    let listening = 0;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = ((type: string, fn: EventListener, o?: AddEventListenerOptions) => {
      if (type === "abort") listening++;
      add(type, fn, o);
    }) as typeof signal.addEventListener;
    signal.removeEventListener = ((type: string, fn: EventListener, o?: EventListenerOptions) => {
      if (type === "abort") listening--;
      remove(type, fn, o);
    }) as typeof signal.removeEventListener;
    const s = model.createSession();
    try {
      for (let i = 0; i < 6; i++) {
        await s.prefill(`Turn ${i}:`, { signal });
        const it = s.generate({ maxTokens: 2, temperature: 0, ignoreEos: true, signal });
        let r = await it.next();
        while (!r.done) r = await it.next();
      }
      expect(listening).toBe(0);
    } finally {
      s.close();
    }
  }, 120_000);
});
