// model.embed on the real default model: unit vectors pooled from the final hidden states, the
// same whatever else is in the step (one-by-one, batched, beside a generating session), similar
// sentences closer than unrelated ones, clear errors, and llama.cpp's llama-embedding (mean
// pooling, L2) within cosine 0.99 when the native build is present.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { binDir } from "../bench/peers/llama.cpp/native.ts";
import { loadModel, type Model } from "../src/index.ts";

let model: Model;

// A small step budget so that a long input spans several steps.
beforeAll(async () => {
  model = await loadModel(undefined, { threads: 2, contextTokens: 512, maxSessions: 2, maxBatchTokens: 64 });
}, 120_000);

afterAll(() => model?.close());

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * (b[i] as number), 0);

const SENTENCES = [
  "The cat sits on the mat.",
  "A cat is sitting on a mat.",
  "Quarterly tax filings are due at the end of April.",
  "How do I bake sourdough bread at home?",
  "What is a simple recipe for homemade sourdough?",
  "The stock market fell sharply after the announcement.",
];
const LONG = Array.from(
  { length: 12 },
  (_, i) => `Line ${i}: the quick brown fox jumps over the lazy dog.`,
).join(" ");

describe("model.embed", () => {
  test("one unit vector of the model's width per text, mean-pooled for a decoder model", async () => {
    expect(model.info.pooling).toBe("mean");
    const v = await model.embed(SENTENCES);
    expect(v).toHaveLength(SENTENCES.length);
    for (const x of v) {
      expect(x).toBeInstanceOf(Float32Array);
      expect(x).toHaveLength(model.info.embeddingLength);
      expect(Math.abs(dot(x, x) - 1)).toBeLessThan(1e-5);
    }
    const one = await model.embed("The cat sits on the mat.");
    expect(one).toBeInstanceOf(Float32Array);
  }, 120_000);

  test("deterministic, and a batch (with an input longer than a step) equals one-by-one bit for bit", async () => {
    const inputs = [...SENTENCES, LONG];
    expect(model.encode(LONG).length).toBeGreaterThan(2 * model.options.maxBatchTokens);
    const batched = await model.embed(inputs);
    const again = await model.embed(inputs);
    const alone = [];
    for (const t of inputs) alone.push(await model.embed(t));
    for (const [i, v] of batched.entries()) {
      expect(Array.from(again[i] as Float32Array)).toEqual(Array.from(v));
      expect(Array.from(alone[i] as Float32Array)).toEqual(Array.from(v));
    }
  }, 120_000);

  test("similar sentences score above unrelated ones", async () => {
    const [cat1, cat2, tax, bread1, bread2, stocks] = (await model.embed(SENTENCES)) as Float32Array[] &
      Float32Array[];
    const c = (a?: Float32Array, b?: Float32Array) => dot(a as Float32Array, b as Float32Array);
    expect(c(cat1, cat2)).toBeGreaterThan(c(cat1, tax));
    expect(c(cat1, cat2)).toBeGreaterThan(c(cat1, stocks));
    expect(c(bread1, bread2)).toBeGreaterThan(c(bread1, tax));
    expect(c(bread1, bread2)).toBeGreaterThan(c(bread1, cat1));
  }, 120_000);

  test("more inputs than one step holds sequences for take several steps and stay in order", async () => {
    const texts = Array.from({ length: 70 }, (_, i) => `Item number ${i} of the list.`);
    const before = model.engine.stats().steps;
    const all = await model.embed(texts);
    expect(all).toHaveLength(70);
    for (const i of [0, 33, 69]) {
      const alone = await model.embed(texts[i] as string);
      expect(Array.from(all[i] as Float32Array)).toEqual(Array.from(alone));
    }
    expect(model.engine.stats().steps).toBe(before); // embedding steps are not generation steps
  }, 120_000);

  test("embeds while a session generates: both finish, the session's tokens are those it gets alone", async () => {
    const run = async () => {
      const s = model.createSession();
      try {
        await s.prefill("Once upon a time");
        const it = s.generate({ maxTokens: 16, temperature: 0, ignoreEos: true });
        let r = await it.next();
        while (!r.done) r = await it.next();
        return r.value.tokens;
      } finally {
        s.close();
      }
    };
    const alone = await run();
    const vAlone = await model.embed(LONG);
    const [together, v] = await Promise.all([run(), model.embed(LONG)]);
    expect(together).toEqual(alone);
    expect(Array.from(v)).toEqual(Array.from(vAlone));
  }, 120_000);

  test("an empty text, no texts, or a text past the context is a RangeError", async () => {
    await expect(model.embed("")).rejects.toThrow(/input 0 is empty/);
    await expect(model.embed(["ok", ""])).rejects.toThrow(/input 1 is empty/);
    await expect(model.embed([])).rejects.toThrow(/1 to 2048 inputs/);
    await expect(model.embed("word ".repeat(600))).rejects.toThrow(/the limit is 512/);
    // The model still answers afterwards.
    expect(await model.embed("still fine")).toHaveLength(model.info.embeddingLength);
  }, 120_000);
});

describe("parity with llama.cpp's llama-embedding", () => {
  const bin = binDir();
  test.skipIf(bin === null)(
    "cosine ≥ 0.99 per sentence (mean pooling, L2)",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "hearth-embd-"));
      const file = join(dir, "prompts.txt");
      writeFileSync(file, SENTENCES.join("\n"));
      const proc = Bun.spawn(
        [
          join(bin as string, "llama-embedding"),
          ...["-m", model.path, "-f", file, "--pooling", "mean", "--embd-normalize", "2"],
          ...["--embd-output-format", "json", "-t", "2", "-c", "512"],
        ],
        { stdout: "pipe", stderr: "pipe" },
      );
      const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
      expect(code).toBe(0);
      const peer = (JSON.parse(out) as { data: { embedding: number[] }[] }).data.map(
        (d) => new Float32Array(d.embedding),
      );
      expect(peer).toHaveLength(SENTENCES.length);
      const ours = await model.embed(SENTENCES);
      for (const [i, p] of peer.entries()) {
        const cos = dot(ours[i] as Float32Array, p) / Math.sqrt(dot(p, p));
        expect(cos).toBeGreaterThanOrEqual(0.99);
        if (process.env.HEARTH_TEST_VERBOSE)
          console.log(`cosine to llama-embedding, sentence ${i}: ${cos.toFixed(6)}`);
      }
    },
    120_000,
  );
});
