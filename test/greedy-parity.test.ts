// Greedy output parity with llama.cpp: hearth's tokenizer + native forward, argmax decoding of the
// 10 raw prompts in test/fixtures/greedy.json (written by bench/peers/make-fixtures.ts from
// node-llama-cpp); the first 32 tokens must be identical on at least 8 of the 10 prompts. The report
// also covers every candidate prompt the fixture's selection chose from, against both of llama.cpp's
// attention paths, not only the prompts it kept.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { pullModel } from "../src/gguf/pull.ts";
import { createBatch, openNativeModel } from "../src/native/model.ts";
import type { Batch, NativeModel } from "../src/native/model-api.ts";
import { Tokenizer } from "../src/tokenizer/index.ts";

interface GreedyFixture {
  peer: string;
  model: string;
  tokens: number;
  prompts: Array<{ prompt: string; promptIds: number[]; ids: number[]; text: string }>;
  /** Every candidate prompt, with llama.cpp's answer with plain attention (ids) and flash attention. */
  candidates: Array<{ prompt: string; promptIds: number[]; ids: number[]; idsFlash: number[] }>;
}

const fixture: GreedyFixture = await Bun.file(`${import.meta.dir}/fixtures/greedy.json`).json();
const REQUIRED_IDENTICAL = 8;
/**
 * Candidates on which hearth's 32 tokens equal one of llama.cpp's two answers (18 of 30 when the
 * candidates were recorded, 2026-12-07; llama.cpp's own two paths agreed on 10 of 30).
 */
const REQUIRED_CANDIDATES_MATCHED = 15;

let model: NativeModel;
let tokenizer: Tokenizer;
let batch: Batch;
let logits: Float32Array;

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if ((row[i] as number) > (row[best] as number)) best = i;
  return best;
}

/** Tokens before the first difference (the whole length when one is a prefix of the other). */
function agreeing(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/** Greedy decoding of `n` tokens after `prompt` in a fresh sequence; stops after an end-of-generation token. */
function greedy(prompt: number[], n: number): number[] {
  const vocab = model.info.vocabSize;
  const seq = model.seqCreate();
  try {
    batch.length = prompt.length;
    for (let i = 0; i < prompt.length; i++) {
      batch.tokens[i] = prompt[i] as number;
      batch.positions[i] = i;
      batch.seqIds[i] = seq;
      batch.wantLogits[i] = i === prompt.length - 1 ? 1 : 0;
    }
    model.decode(batch, logits);
    const out: number[] = [];
    for (let k = 0; k < n; k++) {
      const next = argmax(logits.subarray(0, vocab));
      out.push(next);
      if (k === n - 1 || tokenizer.isEndOfGeneration(next)) break;
      batch.length = 1;
      batch.tokens[0] = next;
      batch.positions[0] = prompt.length + k;
      batch.seqIds[0] = seq;
      batch.wantLogits[0] = 1;
      model.decode(batch, logits);
    }
    return out;
  } finally {
    model.seqFree(seq);
  }
}

beforeAll(async () => {
  const path = await pullModel();
  const file = readGguf(path);
  tokenizer = Tokenizer.fromGguf(new GgufMetadata(file.metadata));
  model = openNativeModel(path, { threads: 2, kvPages: 16, maxBatchTokens: 512, maxSequences: 1 }, file);
  batch = createBatch(512);
  logits = new Float32Array(model.info.vocabSize);
});

afterAll(() => model?.close());

describe(`greedy parity with ${fixture.peer}`, () => {
  test("the fixture is the one the issue asks for (10 prompts, 32 tokens)", () => {
    expect(fixture.prompts.length).toBe(10);
    expect(fixture.tokens).toBe(32);
    for (const p of fixture.prompts) expect(p.ids.length).toBeGreaterThan(0);
  });

  test("hearth tokenizes every prompt as llama.cpp does (raw text, no BOS)", () => {
    for (const p of fixture.prompts) {
      expect(tokenizer.encode(p.prompt, { addSpecial: false, parseSpecial: false })).toEqual(p.promptIds);
    }
  });

  // The divergences that remain are near-ties (llama.cpp's own top-2 gap of a few hundredths), so
  // hearth follows ggml's rounding where llama.cpp rounds: Q8_1/Q8_0 activations (f16 scales, half
  // to even), Q and the softmax weights as f16 in attention, rmsnorm sums in f64.
  test(`the first 32 greedy tokens are identical on at least ${REQUIRED_IDENTICAL} of 10 prompts`, () => {
    const report: string[] = [];
    let identical = 0;
    for (const p of fixture.prompts) {
      const prompt = tokenizer.encode(p.prompt, { addSpecial: false, parseSpecial: false });
      const ours = greedy(prompt, fixture.tokens);
      const same = ours.length === p.ids.length && ours.every((id, i) => id === p.ids[i]);
      if (same) identical++;
      else {
        const at = ours.findIndex((id, i) => id !== p.ids[i]);
        report.push(
          `${JSON.stringify(p.prompt)} diverges at token ${at === -1 ? Math.min(ours.length, p.ids.length) : at}: ` +
            `ours ${JSON.stringify(tokenizer.decode(ours))} peer ${JSON.stringify(p.text)}`,
        );
      }
    }
    if (report.length > 0) console.error(`greedy: ${identical}/10 identical\n${report.join("\n")}`);
    expect(identical).toBeGreaterThanOrEqual(REQUIRED_IDENTICAL);
  }, 300_000);

  test("the report covers every candidate prompt: tokens agreeing with llama.cpp's plain and flash answers", () => {
    expect(fixture.candidates.length).toBeGreaterThanOrEqual(fixture.prompts.length);
    // The kept prompts are candidates, so the selection is visible in the report.
    const byPrompt = new Map(fixture.candidates.map((c) => [c.prompt, c]));
    for (const p of fixture.prompts) expect(byPrompt.has(p.prompt)).toBe(true);
    const kept = new Set(fixture.prompts.map((p) => p.prompt));
    const lines: string[] = [];
    let plain = 0;
    let flash = 0;
    let either = 0;
    let peerStable = 0;
    for (const c of fixture.candidates) {
      const prompt = tokenizer.encode(c.prompt, { addSpecial: false, parseSpecial: false });
      expect(prompt).toEqual(c.promptIds);
      const ours = greedy(prompt, fixture.tokens);
      const a = agreeing(ours, c.ids);
      const b = agreeing(ours, c.idsFlash);
      const samePlain = a === ours.length && a === c.ids.length;
      const sameFlash = b === ours.length && b === c.idsFlash.length;
      plain += samePlain ? 1 : 0;
      flash += sameFlash ? 1 : 0;
      either += samePlain || sameFlash ? 1 : 0;
      const stable = agreeing(c.ids, c.idsFlash) === c.ids.length && c.ids.length === c.idsFlash.length;
      peerStable += stable ? 1 : 0;
      lines.push(
        `${kept.has(c.prompt) ? "kept" : "    "} ${stable ? "stable" : "      "} plain ${String(a).padStart(2)}/${c.ids.length} flash ${String(b).padStart(2)}/${c.idsFlash.length}  ${JSON.stringify(c.prompt.slice(0, 48))}`,
      );
    }
    const n = fixture.candidates.length;
    console.error(
      `greedy, every candidate (tokens agreeing before the first difference): identical to llama.cpp plain on ${plain}/${n}, flash on ${flash}/${n}, either on ${either}/${n}; llama.cpp's two paths agree on ${peerStable}/${n}\n${lines.join("\n")}`,
    );
    expect(either).toBeGreaterThanOrEqual(REQUIRED_CANDIDATES_MATCHED);
  }, 300_000);
});
