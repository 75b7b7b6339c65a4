// hearth's perplexity on every file of test/fixtures/llamacpp-perplexity.json (the native llama.cpp's
// llama-perplexity figures; bench/peers/llama.cpp/fixtures.ts), computed exactly as llama-perplexity
// does: llama.cpp's own token ids from the fixture, chunks of 512 from an empty cache, each chunk's
// first token replaced by BOS when the vocab adds one, rows 256..510 scored against tokens 257..511.
// Target (issue 19): within 1% of llama.cpp's perplexity on the same file. A file hearth cannot run
// gets its error in the table; a file that is missing, the command that makes it.
//   bun bench/ppl-llamacpp.ts [--model NAME] [--threads N] [--json]
import { existsSync } from "node:fs";
import { join } from "node:path";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { DEFAULT_MODEL, pullModel } from "../src/gguf/pull.ts";
import { createBatch, openNativeModel } from "../src/native/model.ts";
import { Tokenizer } from "../src/tokenizer/index.ts";
import { type BenchOptions, type Cell, runStandalone, type SuiteResult } from "./lib.ts";
import { MODELS_DIR, MODELS_HINT } from "./peers/llama.cpp/native.ts";

const TOLERANCE = 0.01;

interface Fixture {
  peer: string;
  ctx: number;
  textFile: string;
  models: Array<{ file: string; vocab: string; chunks: number; ppl: number; chunkMeanNll: number[] }>;
  vocabs: Record<string, { addBos: boolean; bosId: number | null; ids: number[] }>;
}

/** An error message without the model's path (the row names the file), cut for the table. */
function short(err: unknown, path: string): string {
  return JSON.stringify((err as Error).message.replaceAll(`${path}: `, "").slice(0, 110));
}

/** Mean NLL of one chunk as llama-perplexity scores it. */
function chunkNll(model: ReturnType<typeof openNativeModel>, chunk: number[], logits: Float32Array): number {
  const ctx = chunk.length;
  const first = ctx / 2;
  const vocab = model.info.vocabSize;
  const batch = createBatch(ctx);
  const seq = model.seqCreate();
  let rows: number;
  try {
    batch.length = ctx;
    for (let i = 0; i < ctx; i++) {
      batch.tokens[i] = chunk[i] as number;
      batch.positions[i] = i;
      batch.seqIds[i] = seq;
      batch.wantLogits[i] = i >= first && i < ctx - 1 ? 1 : 0;
    }
    rows = model.decode(batch, logits);
  } finally {
    model.seqFree(seq);
  }
  let sum = 0;
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < vocab; j++) max = Math.max(max, row[j] as number);
    let z = 0;
    for (let j = 0; j < vocab; j++) z += Math.exp((row[j] as number) - max);
    sum += -((row[chunk[first + 1 + r] as number] as number) - max - Math.log(z));
  }
  return sum / rows;
}

export async function run(opts: BenchOptions): Promise<SuiteResult> {
  const fixture = (await Bun.file(
    join(import.meta.dir, "..", "test", "fixtures", "llamacpp-perplexity.json"),
  ).json()) as Fixture;
  const text = await Bun.file(join(import.meta.dir, "..", fixture.textFile)).text();
  const rows: Array<Record<string, Cell>> = [];
  const summary: Record<string, number | string | null> = {};
  const wanted = opts.model?.toLowerCase();
  for (const m of fixture.models) {
    if (wanted !== undefined && !m.file.toLowerCase().includes(wanted)) continue;
    const path = m.file === DEFAULT_MODEL.fileName ? await pullModel() : join(MODELS_DIR, m.file);
    const vocab = fixture.vocabs[m.vocab];
    const row: Record<string, Cell> = { model: m.file, "llama.cpp ppl": m.ppl, "hearth ppl": null };
    rows.push(row);
    if (!existsSync(path) || vocab === undefined) {
      row.note = `missing: ${MODELS_HINT}`;
      continue;
    }
    const ctx = fixture.ctx;
    let model: ReturnType<typeof openNativeModel>;
    try {
      const file = readGguf(path);
      try {
        const ids = Tokenizer.fromGguf(new GgufMetadata(file.metadata)).encode(text, { parseSpecial: false });
        row.tokens = JSON.stringify(ids) === JSON.stringify(vocab.ids) ? "same ids" : "ids DIFFER";
      } catch (err) {
        row.tokens = `tokenizer: ${short(err, path)}`;
      }
      const pages = Math.ceil(ctx / 16) + 1;
      model = openNativeModel(
        path,
        { threads: opts.threads, kvPages: pages, maxBatchTokens: ctx, maxSequences: 1 },
        file,
      );
    } catch (err) {
      row.note = short(err, path);
      continue;
    }
    try {
      const logits = new Float32Array((ctx / 2 - 1) * model.info.vocabSize);
      const nll: number[] = [];
      for (let c = 0; c < m.chunks; c++) {
        const chunk = vocab.ids.slice(c * ctx, (c + 1) * ctx);
        if (vocab.addBos && vocab.bosId !== null) chunk[0] = vocab.bosId;
        nll.push(chunkNll(model, chunk, logits));
      }
      const ppl = Math.exp(nll.reduce((a, b) => a + b, 0) / nll.length);
      const rel = ppl / m.ppl - 1;
      Object.assign(row, {
        "hearth ppl": ppl,
        "diff %": rel * 100,
        within: Math.abs(rel) <= TOLERANCE ? "yes" : "NO",
        "max chunk ΔNLL": Math.max(...nll.map((x, i) => Math.abs(x - (m.chunkMeanNll[i] as number)))),
      });
      summary[`hearth_ppl_${m.file}`] = ppl;
      summary[`llamacpp_ppl_${m.file}`] = m.ppl;
    } catch (err) {
      row.note = short(err, path);
    } finally {
      model.close();
    }
  }
  return {
    suite: "ppl-llamacpp",
    columns: ["model", "tokens", "llama.cpp ppl", "hearth ppl", "diff %", "within", "max chunk ΔNLL", "note"],
    rows,
    summary,
    notes: [
      `llama.cpp: ${fixture.peer} (test/fixtures/llamacpp-perplexity.json); both on llama.cpp's token ids; target: within ${TOLERANCE * 100}%.`,
    ],
  };
}

if (import.meta.main) await runStandalone(run);
