// Speculative decoding by prompt lookup: the draft proposer on its own, then on the real model
// the property that matters: the same tokens as plain decoding (greedy and seeded sampling),
// across stop strings, token budgets, aborts and follow-up calls, with drafts really accepted.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type GenerateOptions, loadModel, type Model, type Session } from "../src/index.ts";
import { predictedDraft, proposeDraft, resolveSpeculative } from "../src/speculative.ts";

describe("proposeDraft", () => {
  const spec = resolveSpeculative(true) as NonNullable<ReturnType<typeof resolveSpeculative>>;

  test("copies what followed the latest earlier occurrence of the longest suffix", () => {
    // suffix [7, 8] occurs at 1 (followed by 9, 10, 11) and at 5 (followed by 20, 21)
    const h = [1, 7, 8, 9, 10, 7, 8, 20, 21, 3, 7, 8];
    expect(proposeDraft(h, spec, 4)).toEqual([20, 21, 3, 7]);
    // a longer suffix wins over a more recent shorter one: [9, 7, 8] only occurs early
    const g = [9, 7, 8, 30, 31, 5, 7, 8, 40, 9, 7, 8];
    expect(proposeDraft(g, spec, 2)).toEqual([30, 31]);
  });

  test("respects the limit, the minimum n-gram and an empty context", () => {
    expect(proposeDraft([1, 2, 3, 1, 2], spec, 1)).toEqual([3]);
    expect(proposeDraft([1, 2, 3, 1, 2], spec, 0)).toEqual([]);
    expect(proposeDraft([5, 6, 7, 8], spec, 4)).toEqual([]);
    expect(proposeDraft([4, 9, 4], spec, 4)).toEqual([]); // only a 1-token match: below ngramMin 2
    expect(proposeDraft([4, 9, 4], { ...spec, ngramMin: 1 }, 4)).toEqual([9, 4]);
    expect(proposeDraft([], spec, 4)).toEqual([]);
  });

  test("predictedDraft: the prediction's next tokens while the reply follows it, else the match nearest the reply's position", () => {
    const prompt = [100, 101, 102];
    const predicted = [1, 2, 3, 4, 5, 1, 2, 6, 7];
    // Nothing generated yet: the prediction's beginning.
    expect(predictedDraft(prompt, 0, predicted, spec, 4)).toEqual([1, 2, 3, 4]);
    // The reply so far is the prediction's start: what comes next in it.
    expect(predictedDraft([...prompt, 1, 2], 2, predicted, spec, 3)).toEqual([3, 4, 5]);
    // The reply left the prediction ([1, 9]); its last tokens [9, 1, 2] are not in it, but [1, 2]
    // is, twice: the occurrence nearest the reply's position (5 tokens in) wins, so 6, 7 follow.
    expect(predictedDraft([...prompt, 1, 9, 3, 1, 2], 5, predicted, spec, 4)).toEqual([6, 7]);
    // Near the start, the first occurrence is nearer.
    expect(predictedDraft([...prompt, 9, 1, 2], 3, predicted, spec, 4)).toEqual([3, 4, 5, 1]);
    // No match, an empty prediction, no room.
    expect(predictedDraft([...prompt, 8, 8], 2, predicted, spec, 4)).toEqual([]);
    expect(predictedDraft(prompt, 0, [], spec, 4)).toEqual([]);
    expect(predictedDraft(prompt, 0, predicted, spec, 0)).toEqual([]);
    // The whole prediction produced: nothing left to draft from its beginning.
    expect(predictedDraft([...prompt, ...predicted], predicted.length, predicted, spec, 4)).toEqual([]);
  });

  test("options are validated", () => {
    expect(resolveSpeculative(undefined)).toBeNull();
    expect(resolveSpeculative(false)).toBeNull();
    expect(resolveSpeculative({ maxDraftTokens: 8 })).toEqual({
      maxDraftTokens: 8,
      maxModelDraftTokens: 8,
      ngramMax: 4,
      ngramMin: 2,
      draft: null,
    });
    // Without maxDraftTokens, a draft model drafts deeper than lookup.
    expect(resolveSpeculative({ draft: "both" })).toMatchObject({
      maxDraftTokens: 4,
      maxModelDraftTokens: 8,
    });
    expect(() => resolveSpeculative({ draft: "llm" as never })).toThrow(
      /speculative.draft must be "model", "lookup" or "both", got "llm"/,
    );
    expect(() => resolveSpeculative({ maxDraftTokens: 0 })).toThrow(
      /maxDraftTokens must be an integer in \[1, 16\]/,
    );
    expect(() => resolveSpeculative({ ngramMin: 5, ngramMax: 3 })).toThrow(/ngramMin/);
    expect(() => resolveSpeculative("yes" as never)).toThrow(TypeError);
  });
});

let model: Model;
beforeAll(async () => {
  model = await loadModel(undefined, { threads: 1, maxBatchTokens: 64, contextTokens: 512, maxSessions: 2 });
}, 120_000);
afterAll(() => model?.close());

// Text the reply is likely to repeat, so prompt lookup finds drafts.
const PROMPT =
  "List: red apple, green pear, yellow banana, red apple, green pear, yellow banana, red apple, green pear, yellow banana, red apple, green pear,";

interface Run {
  texts: string[];
  tokens: number[][];
  drafts: number;
  accepted: number;
}

/** Prefills PROMPT in a fresh session and runs each call in turn (a call may stop early after `stopAfter` pieces). */
async function run(
  calls: Array<GenerateOptions & { stopAfter?: number }>,
  speculative: boolean,
): Promise<Run> {
  const s: Session = model.createSession();
  try {
    await s.prefill(PROMPT);
    const r: Run = { texts: [], tokens: [], drafts: 0, accepted: 0 };
    for (const { stopAfter, ...opts } of calls) {
      // stopAfter is this harness's own field: generate refuses keys it does not know.
      const it = s.generate({ ...opts, speculative });
      let text = "";
      let pieces = 0;
      for (;;) {
        if (stopAfter !== undefined && pieces >= stopAfter) {
          await it.return(undefined as never);
          break;
        }
        const next = await it.next();
        if (next.done) break;
        text += next.value;
        pieces++;
      }
      const t = s.lastTelemetry;
      r.texts.push(text);
      r.tokens.push([...s.tokens]);
      r.drafts += t?.draftTokens ?? 0;
      r.accepted += t?.acceptedDraftTokens ?? 0;
    }
    return r;
  } finally {
    s.close();
  }
}

describe("speculative decoding on the real model", () => {
  test("greedy: identical text and tokens to plain decoding, with drafts accepted", async () => {
    const calls = [{ maxTokens: 40, temperature: 0 }];
    const plain = await run(calls, false);
    const spec = await run(calls, true);
    expect(spec.texts).toEqual(plain.texts);
    expect(spec.tokens).toEqual(plain.tokens);
    expect(plain.drafts).toBe(0);
    console.log(`greedy: ${spec.accepted}/${spec.drafts} draft tokens accepted`);
    expect(spec.accepted).toBeGreaterThan(0);
  }, 60_000);

  test("seeded sampling: identical output for the same seed", async () => {
    const calls = [{ maxTokens: 40, temperature: 0.8, topK: 40, seed: 11 }];
    const plain = await run(calls, false);
    const spec = await run(calls, true);
    expect(spec.texts).toEqual(plain.texts);
    expect(spec.tokens).toEqual(plain.tokens);
  }, 60_000);

  test("stop strings, token budgets, an early exit and follow-up calls leave the session as plain decoding does", async () => {
    const calls = [
      { maxTokens: 7, temperature: 0 },
      { maxTokens: 30, temperature: 0, stop: ["banana"] },
      { maxTokens: 30, temperature: 0, stopAfter: 5 },
      { maxTokens: 20, temperature: 0 },
    ];
    const plain = await run(calls, false);
    const spec = await run(calls, true);
    expect(spec.texts).toEqual(plain.texts);
    expect(spec.tokens).toEqual(plain.tokens);
    expect(spec.accepted).toBeGreaterThan(0);
  }, 60_000);

  test("close() mid-generation ends it as abort, and the sequence id's next owner is untouched", async () => {
    for (const how of ["next", "return"] as const) {
      const a = model.createSession();
      await a.prefill(PROMPT);
      const it = a.generate({ maxTokens: 60, temperature: 0, speculative: true });
      for (let k = 0; k < 3; k++) await it.next();
      a.close();
      // B takes the freed sequence slot; A's generator must not touch it any more.
      const b = model.createSession();
      await b.prefill(PROMPT);
      const lengthBefore = b.tokens.length;
      const r = how === "next" ? await it.next() : await it.return(undefined as never);
      expect(r.done).toBe(true);
      if (how === "next") expect((r.value as { finishReason: string }).finishReason).toBe("abort");
      expect(b.tokens.length).toBe(lengthBefore);
      let text = "";
      for await (const p of b.generate({ maxTokens: 8, temperature: 0 })) text += p;
      const c = model.createSession();
      await c.prefill(PROMPT);
      let want = "";
      for await (const p of c.generate({ maxTokens: 8, temperature: 0 })) want += p;
      expect(text).toBe(want);
      b.close();
      c.close();
    }
  }, 60_000);

  test("a long run of accepted drafts still lets timers run (an abort from setTimeout lands)", async () => {
    const s = model.createSession();
    try {
      await s.prefill(PROMPT);
      const controller = new AbortController();
      const it = s.generate({
        maxTokens: 400,
        temperature: 0,
        ignoreEos: true,
        speculative: true,
        signal: controller.signal,
      });
      let r = await it.next();
      // The timer starts once tokens flow (a slow first step on a busy machine once let it fire
      // before any draft was verified); 30 ms later the drafts are running.
      const timer = setTimeout(() => controller.abort(), 30);
      while (!r.done) r = await it.next();
      clearTimeout(timer);
      expect(r.value.finishReason).toBe("abort");
      expect(r.value.tokens.length).toBeLessThan(400);
      expect(r.value.telemetry.acceptedDraftTokens).toBeGreaterThan(0);
    } finally {
      s.close();
    }
  }, 60_000);
});
