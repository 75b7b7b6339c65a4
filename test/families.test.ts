// The model families against llama.cpp, logit by logit: tiny random-weight Llama 3 (rope_freqs,
// untied output), SmolLM3 (no RoPE on the fourth layer), Qwen 2 (QKV biases), Qwen 3 (Q/K norms)
// and Gemma 3 (sliding window of 5 keys, post norms, GeGLU) from test/support/tiny-families.ts, and the real Gemma 3 270M in F16
// and BF16 past its 512-key window when those files are present. Fixtures: bench/peers/make-family-fixtures.ts.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { createBatch, openNativeModel } from "../src/native/model.ts";
import type { NativeModel } from "../src/native/model-api.ts";
import { GEMMA3_PROMPT_LENGTH, gemma3Prompt } from "./support/gemma3-prompt.ts";
import {
  FAMILY_CASES,
  TINY_PROMPT,
  TINY_ROWS,
  TINY_WINDOW,
  tinyFamilyModel,
} from "./support/tiny-families.ts";

const dir = mkdtempSync(join(tmpdir(), "hearth-families-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface FamiliesFixture {
  prompt: number[];
  rows: number[];
  cases: Record<string, number[][]>;
}

/** Logits at the positions `keep` (all by default) of `ids` fed as one sequence, `chunk` rows per
 * decode call; row k of the result is the k-th kept position. */
function forcedLogits(
  m: NativeModel,
  ids: readonly number[],
  chunk: number,
  keep?: ReadonlySet<number>,
): Float32Array {
  const vocab = m.info.vocabSize;
  const out = new Float32Array((keep?.size ?? ids.length) * vocab);
  const batch = createBatch(chunk);
  const seq = m.seqCreate();
  let rows = 0;
  for (let at = 0; at < ids.length; at += chunk) {
    const n = Math.min(chunk, ids.length - at);
    for (let i = 0; i < n; i++) {
      batch.tokens[i] = ids[at + i] as number;
      batch.positions[i] = at + i;
      batch.seqIds[i] = seq;
      batch.wantLogits[i] = keep === undefined || keep.has(at + i) ? 1 : 0;
    }
    batch.length = n;
    rows += m.decode(batch, out.subarray(rows * vocab));
  }
  expect(rows).toBe(keep?.size ?? ids.length);
  m.seqFree(seq);
  return out;
}

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if ((x[i] as number) > (x[best] as number)) best = i;
  return best;
}

describe("tiny random-weight models of each family match llama.cpp's logits", async () => {
  const fx = (await Bun.file(`${import.meta.dir}/fixtures/families.json`).json()) as FamiliesFixture;

  test("the fixture was made from the prompt and rows the models are fed", () => {
    expect(fx.prompt).toEqual([...TINY_PROMPT]);
    expect(fx.rows).toEqual([...TINY_ROWS]);
    expect(Object.keys(fx.cases).sort()).toEqual([...FAMILY_CASES].sort());
  });

  for (const c of FAMILY_CASES) {
    test(`${c}: every kept position within 2e-3 + 2e-4 x the row's largest |logit| of llama.cpp, same argmax`, () => {
      const path = join(dir, `${c}.gguf`);
      writeFileSync(path, tinyFamilyModel(c));
      const m = openNativeModel(path, { threads: 2, kvPages: 16, maxBatchTokens: 64, maxSequences: 2 });
      try {
        expect(m.info.architecture).toBe(c === "llama3" ? "llama" : c);
        // A context shift on the same model (SmolLM3's no-RoPE layer only moves its K) keeps it usable.
        const seq = m.seqCreate();
        const b = createBatch(TINY_PROMPT.length);
        TINY_PROMPT.forEach((t, i) => {
          b.tokens[i] = t;
          b.positions[i] = i;
          b.seqIds[i] = seq;
          b.wantLogits[i] = 0;
        });
        b.length = TINY_PROMPT.length;
        m.decode(b, new Float32Array(0));
        m.seqShift(seq, 4, 8);
        expect(m.seqLength(seq)).toBe(TINY_PROMPT.length - 8);
        m.seqFree(seq);
        expect(m.info.formats).toEqual(["F32"]);
        expect(m.info.slidingWindow).toBe(c === "gemma3" ? TINY_WINDOW : null);
        const vocab = m.info.vocabSize;
        // One prefill, then the same positions split over calls (tiles, windows across steps).
        const whole = forcedLogits(m, TINY_PROMPT, TINY_PROMPT.length);
        expect(forcedLogits(m, TINY_PROMPT, 7)).toEqual(whole);
        let worst = 0;
        TINY_ROWS.forEach((r, k) => {
          const want = fx.cases[c]?.[k] as number[];
          const got = whole.subarray(r * vocab, (r + 1) * vocab);
          expect(want.length).toBe(vocab);
          // Random weights give logits up to ~60 (Qwen's tied embeddings): the bound scales with the row.
          const tol = 2e-3 + 2e-4 * Math.max(...want.map(Math.abs));
          for (let i = 0; i < vocab; i++) {
            const w = want[i] as number;
            const d = Math.abs((got[i] as number) - w);
            worst = Math.max(worst, d);
            if (d > tol) throw new Error(`${c} position ${r} token ${i}: ${got[i]} vs ${w} (bound ${tol})`);
          }
          expect(argmax(got)).toBe(argmax(want));
        });
        console.log(`${c}: worst |hearth - llama.cpp| ${worst.toExponential(2)}`);
      } finally {
        m.close();
      }
    });
  }
});

interface GemmaFixture {
  vocab: number;
  /** lse: llama.cpp's log(sum(exp(logits))) over the row (fixtures made before it was kept lack it). */
  rows: Array<{ position: number; ids: number[]; logits: number[]; lse?: number }>;
}

/**
 * KL(llama.cpp || hearth) of one row over 17 outcomes: each of llama.cpp's 16 most likely tokens
 * (the fixture's first 16 ids) and the rest of the vocabulary as one. Merging outcomes never raises
 * a KL, so this is a lower bound of the full one; with most of the mass in the top 16 it is close.
 */
function topKl(got: Float32Array, row: GemmaFixture["rows"][number], lse: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const x of got) max = Math.max(max, x);
  let z = 0;
  for (const x of got) z += Math.exp(x - max);
  const lseGot = max + Math.log(z);
  let kl = 0;
  let pTop = 0;
  let qTop = 0;
  for (let k = 0; k < 16; k++) {
    const p = Math.exp((row.logits[k] as number) - lse);
    const q = Math.exp((got[row.ids[k] as number] as number) - lseGot);
    kl += p * Math.log(p / q);
    pTop += p;
    qTop += q;
  }
  const pRest = Math.max(0, 1 - pTop);
  const qRest = Math.max(1e-30, 1 - qTop);
  return pRest > 0 ? kl + pRest * Math.log(pRest / qRest) : kl;
}

// The F16 and BF16 files are made from the Q4_K_M one (llama-quantize --allow-requantize IN OUT F16 / BF16).
const modelsDirs = [
  "/work/peerbuild/models",
  join(process.env.HEARTH_MODELS_DIR ?? join(homedir(), ".cache/hearth/models")),
];
const GEMMA_FILES = [
  { type: "F16", file: "gemma-3-270m.F16.gguf", fixture: "gemma3-270m-f16.json", env: "HEARTH_GEMMA3_F16" },
  {
    type: "BF16",
    file: "gemma-3-270m.BF16.gguf",
    fixture: "gemma3-270m-bf16.json",
    env: "HEARTH_GEMMA3_BF16",
  },
];

for (const g of GEMMA_FILES) {
  const path = [process.env[g.env], ...modelsDirs.map((d) => join(d, g.file))].find(
    (p) => p !== undefined && existsSync(p),
  );
  describe.skipIf(path === undefined)(`Gemma 3 270M ${g.type} against llama.cpp`, () => {
    test("700 forced positions (prefill in 128-token steps): logits close, same top token", async () => {
      const fx = (await Bun.file(`${import.meta.dir}/fixtures/${g.fixture}`).json()) as GemmaFixture;
      const m = openNativeModel(path as string, {
        threads: 2,
        kvPages: 64,
        maxBatchTokens: 128,
        maxSequences: 1,
      });
      try {
        expect(m.info.architecture).toBe("gemma3");
        expect(m.info.slidingWindow).toBe(512);
        expect(m.info.vocabSize).toBe(fx.vocab);
        expect(m.info.formats).toContain(g.type);
        const positions = fx.rows.map((r) => r.position);
        expect(Math.max(...positions)).toBe(GEMMA3_PROMPT_LENGTH - 1);
        const all = forcedLogits(m, gemma3Prompt(), 128, new Set(positions));
        let sumWorst = 0;
        let sumKl = 0;
        let maxKl = 0;
        for (const [k, row] of fx.rows.entries()) {
          const got = all.subarray(k * fx.vocab, (k + 1) * fx.vocab);
          let worst = 0;
          row.ids.forEach((id, k) => {
            worst = Math.max(worst, Math.abs((got[id] as number) - (row.logits[k] as number)));
          });
          sumWorst += worst;
          // Random tokens make a few positions sensitive (measured: up to ~0.5 of logits ~20).
          expect(worst).toBeLessThan(0.75);
          // The fixture's first id is llama.cpp's top token.
          expect(argmax(got)).toBe(row.ids[0] as number);
          if (row.lse !== undefined) {
            const kl = topKl(got, row, row.lse);
            sumKl += kl;
            maxKl = Math.max(maxKl, kl);
          }
        }
        const mean = sumWorst / fx.rows.length;
        const haveLse = fx.rows.every((r) => r.lse !== undefined);
        console.log(
          `gemma3 270m ${g.type}: mean over positions of the worst |diff| ${mean.toFixed(4)}` +
            (haveLse
              ? `; KL(llama.cpp || hearth) over the top 16 + rest: mean ${(sumKl / fx.rows.length).toExponential(2)}, max ${maxKl.toExponential(2)}`
              : ""),
        );
        expect(mean).toBeLessThan(0.1);
        if (haveLse) expect(sumKl / fx.rows.length).toBeLessThan(1e-3);
      } finally {
        m.close();
      }
    }, 300_000);
  });
}
