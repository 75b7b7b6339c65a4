// Speculative decoding with a draft model: on the real default model with a draft made from it
// (its first 26 of 30 blocks, written with hearth's GGUF writer: same vocabulary, agrees often but
// not always), the text and tokens are exactly plain decoding's, greedy and seeded, alone and with
// sessions generating at once; drafts are really accepted and rejected; a draft model with another
// vocabulary is refused at load.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pullModel } from "../src/gguf/pull.ts";
import { type GenerateOptions, loadModel, type Model } from "../src/index.ts";
import { DraftVocabularyError } from "../src/model-file.ts";
import { combineDrafts, draftSources, resolveSpeculative } from "../src/speculative.ts";
import { writeEarlyExitDraft } from "./support/draft-pair.ts";

describe("combineDrafts and draftSources", () => {
  test("the agreed prefix, then the model's tokens; lookup goes on past a model draft it contains", () => {
    expect(combineDrafts([1, 2, 3], [1, 2, 9, 8], 8)).toEqual({ tokens: [1, 2, 9, 8], modelTokens: 4 });
    expect(combineDrafts([1, 2, 3, 4, 5], [1, 2], 8)).toEqual({ tokens: [1, 2, 3, 4, 5], modelTokens: 2 });
    expect(combineDrafts([1, 2, 3, 4, 5], [1, 2], 3)).toEqual({ tokens: [1, 2, 3], modelTokens: 2 });
    expect(combineDrafts([], [7, 8], 1)).toEqual({ tokens: [7], modelTokens: 1 });
    expect(combineDrafts([4, 5], [], 8)).toEqual({ tokens: [4, 5], modelTokens: 0 });
  });

  test("the default source follows the draft model; model and both need one", () => {
    const auto = resolveSpeculative(true);
    if (auto === null) throw new Error("unreachable");
    expect(draftSources(auto, true)).toEqual({ lookup: true, model: true });
    expect(draftSources(auto, false)).toEqual({ lookup: true, model: false });
    const model = resolveSpeculative({ draft: "model" });
    if (model === null) throw new Error("unreachable");
    expect(draftSources(model, true)).toEqual({ lookup: false, model: true });
    expect(() => draftSources(model, false)).toThrow(/needs a draft model/);
  });
});

const PROMPTS = [
  "Write a short story about a robot who learns to paint.",
  "Explain why the sky is blue in two sentences.",
  "What are three good habits for a programmer?",
  "Describe a sunrise over the sea.",
  "Give me a recipe for pancakes.",
  "Why do cats purr?",
  "Write a haiku about autumn leaves.",
  "What is the difference between a list and a tuple in Python?",
  "Tell me about the history of bread.",
  "How does a bicycle stay upright?",
  "Suggest a name for a bakery and explain it.",
  "What should I pack for a weekend hiking trip?",
];

let dir: string;
let model: Model;
let plain: Model;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "hearth-draft-"));
  const target = await pullModel();
  const draft = join(dir, "draft-26.gguf");
  await writeEarlyExitDraft(target, draft, 26);
  const opts = { contextTokens: 512, maxSessions: 3, maxBatchTokens: 128 };
  model = await loadModel(target, { ...opts, draft });
  plain = await loadModel(target, opts);
}, 180_000);
afterAll(() => {
  model?.close();
  plain?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Out {
  text: string;
  tokens: number[];
  drafts: { modelProposed: number; modelAccepted: number; lookupProposed: number; lookupAccepted: number };
}

async function answer(m: Model, prompt: string, opts: GenerateOptions): Promise<Out> {
  const s = m.createSession();
  try {
    let text = "";
    for await (const piece of s.chat([{ role: "user", content: prompt }], opts)) text += piece;
    const t = s.lastTelemetry;
    if (t === null) throw new Error("no telemetry");
    return { text, tokens: [...s.tokens], drafts: t.drafts };
  } finally {
    s.close();
  }
}

describe("draft model on the real model", () => {
  test("greedy: every prompt gives plain decoding's text and tokens, with drafts accepted and rejected", async () => {
    let proposed = 0;
    let accepted = 0;
    for (const prompt of PROMPTS) {
      const want = await answer(plain, prompt, { maxTokens: 40, temperature: 0 });
      for (const draft of ["model", "both"] as const) {
        const got = await answer(model, prompt, { maxTokens: 40, temperature: 0, speculative: { draft } });
        expect(got.text).toBe(want.text);
        expect(got.tokens).toEqual(want.tokens);
        proposed += got.drafts.modelProposed;
        accepted += got.drafts.modelAccepted;
      }
    }
    console.log(`greedy: the draft model proposed ${proposed} tokens, ${accepted} accepted`);
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(proposed);
  }, 600_000);

  test("seeded sampling: the same text as plain decoding for the same seed", async () => {
    let accepted = 0;
    for (const [i, prompt] of PROMPTS.slice(0, 6).entries()) {
      const opts = { maxTokens: 32, temperature: 0.8, topK: 40, seed: 100 + i };
      const want = await answer(plain, prompt, opts);
      const got = await answer(model, prompt, opts); // drafting is on by default with a draft model
      expect(got.text).toBe(want.text);
      expect(got.tokens).toEqual(want.tokens);
      accepted += got.drafts.modelAccepted;
    }
    expect(accepted).toBeGreaterThan(0);
  }, 600_000);

  test("sessions generating at once share draft passes and still match plain decoding", async () => {
    const prompts = PROMPTS.slice(6, 9);
    const want = await Promise.all(prompts.map((p) => answer(plain, p, { maxTokens: 32, temperature: 0 })));
    const got = await Promise.all(prompts.map((p) => answer(model, p, { maxTokens: 32, temperature: 0 })));
    expect(got.map((g) => g.text)).toEqual(want.map((w) => w.text));
    expect(got.some((g) => g.drafts.modelAccepted > 0)).toBe(true);
    // Closed sessions gave their draft KV back.
    expect(model.engine.stats().draftModel?.sequences).toBe(0);
  }, 600_000);

  test('speculative: false turns the draft model off; draft "model" without a draft model is an error', async () => {
    const off = await answer(model, PROMPTS[0] as string, {
      maxTokens: 8,
      temperature: 0,
      speculative: false,
    });
    expect(off.drafts.modelProposed).toBe(0);
    const s = plain.createSession();
    try {
      await s.prefill("Hello");
      await expect(s.generate({ maxTokens: 4, speculative: { draft: "model" } }).next()).rejects.toThrow(
        /needs a draft model/,
      );
    } finally {
      s.close();
    }
  }, 120_000);

  test("a draft model with another vocabulary is refused at load (Gemma 3 270M for SmolLM2)", async () => {
    const gemma = await pullModel("gemma3-270m");
    const err = await loadModel(undefined, { contextTokens: 256, maxSessions: 1, draft: gemma }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(DraftVocabularyError);
    expect(String(err.message)).toMatch(/vocabulary differs \(tokenizer .* vs .*\)|262144 tokens vs 49152/);
    await expect(loadModel(undefined, { draft: "" })).rejects.toThrow(/draft must be a model reference/);
  }, 180_000);
});
