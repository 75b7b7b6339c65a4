// Regenerates the architecture parity fixtures from the native llama.cpp build:
//   test/fixtures/families.json       logits of the tiny random-weight Llama 3 / Qwen 2 / Qwen 3 /
//                                     Gemma 3 models (test/support/tiny-families.ts)
//   test/fixtures/gemma3-270m-f16.json  Gemma 3 270M (the F16 requantization of the Q4_K_M file):
//                                     700 forced positions, past its 512-key sliding window
//   test/fixtures/gemma3-270m-bf16.json the same for the BF16 requantization
//
//   bash bench/peers/llamacpp-logits.sh          (builds the logits dumper)
//   bun bench/peers/make-family-fixtures.ts [LOGITS_BIN] [MODELS_DIR] [--gemma-only]
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../../src/sampling/index.ts";
import { GEMMA3_PROMPT_LENGTH, GEMMA3_ROWS, gemma3Prompt } from "../../test/support/gemma3-prompt.ts";
import { FAMILY_CASES, TINY_PROMPT, TINY_ROWS, tinyFamilyModel } from "../../test/support/tiny-families.ts";

const args = process.argv.slice(2).filter((a) => a !== "--gemma-only");
const gemmaOnly = process.argv.includes("--gemma-only");
const bin = args[0] ?? "/work/peerbuild/build/bin/llamacpp-logits";
const modelsDir = args[1] ?? "/work/peerbuild/models";
/** Gemma 3 270M requantizations (bench/peers/llama.cpp/models.sh) and their fixtures. */
const GEMMA_FILES = [
  { gguf: "gemma-3-270m.F16.gguf", fixture: "gemma3-270m-f16.json" },
  { gguf: "gemma-3-270m.BF16.gguf", fixture: "gemma3-270m-bf16.json" },
];
const fixtures = join(import.meta.dir, "../../test/fixtures");
const dir = mkdtempSync(join(tmpdir(), "hearth-families-"));

async function logits(model: string, ids: readonly number[], batch: number): Promise<Float32Array> {
  const out = join(dir, "logits.f32");
  const p = Bun.spawnSync([bin, model, out, ids.join(","), String(batch)], { stderr: "pipe" });
  if (p.exitCode !== 0)
    throw new Error(`${bin} ${model}: exit ${p.exitCode}\n${p.stderr.toString().slice(-2000)}`);
  return new Float32Array(await Bun.file(out).arrayBuffer());
}

const round = (x: number) => Number(x.toPrecision(7));

try {
  if (!gemmaOnly) {
    const cases: Record<string, number[][]> = {};
    for (const c of FAMILY_CASES) {
      const path = join(dir, `${c}.gguf`);
      writeFileSync(path, tinyFamilyModel(c));
      const all = await logits(path, TINY_PROMPT, TINY_PROMPT.length);
      const vocab = all.length / TINY_PROMPT.length;
      cases[c] = TINY_ROWS.map((r) => Array.from(all.subarray(r * vocab, (r + 1) * vocab), round));
      console.error(`${c}: ${vocab} logits x ${TINY_ROWS.length} rows`);
    }
    writeFileSync(
      join(fixtures, "families.json"),
      `${JSON.stringify({ peer: "llama.cpp (native build, flash attention off, F16 KV)", prompt: TINY_PROMPT, rows: TINY_ROWS, cases })}\n`,
    );
  }

  for (const g of GEMMA_FILES) {
    const gemmaPath = join(modelsDir, g.gguf);
    if (!(await Bun.file(gemmaPath).exists())) {
      console.error(`${gemmaPath} not found: ${g.fixture} left as it is`);
      continue;
    }
    const ids = gemma3Prompt();
    const all = await logits(gemmaPath, ids, 128);
    const vocab = all.length / GEMMA3_PROMPT_LENGTH;
    // Per kept row: the 16 highest logits and 48 seeded-random ids, with llama.cpp's values, and the
    // log of the sum of exp over the whole row (the softmax's normalizer, for a KL over the top 16).
    const rng = new Rng(99);
    const rows = GEMMA3_ROWS.map((r) => {
      const row = all.subarray(r * vocab, (r + 1) * vocab);
      const top = Array.from(row.keys())
        .sort((a, b) => (row[b] as number) - (row[a] as number))
        .slice(0, 16);
      const picks = new Set(top);
      while (picks.size < 64) picks.add(Math.floor(rng.nextFloat() * vocab));
      const tokenIds = [...picks];
      const max = row[top[0] as number] as number;
      let z = 0;
      for (const x of row) z += Math.exp(x - max);
      const lse = round(max + Math.log(z));
      return { position: r, ids: tokenIds, logits: tokenIds.map((t) => round(row[t] as number)), lse };
    });
    writeFileSync(
      join(fixtures, g.fixture),
      `${JSON.stringify({ peer: "llama.cpp (native build, flash attention off, F16 KV, batches of 128)", model: g.gguf, vocab, rows })}\n`,
    );
    console.error(`${g.gguf}: ${rows.length} rows`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
