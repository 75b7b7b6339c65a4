// Embeddings throughput: embeddings/s of model.embed for 1 input and for 64 inputs (one forward
// pass), beside native llama.cpp's llama-embedding on the same file in the same run (mean
// pooling, L2), with the lowest cosine between the two as a parity check. hearth's figure is the
// wall-clock of model.embed (tokenizing, the forward, pooling); llama.cpp's is its own "prompt eval
// time" of one warm forward pass (the forward and pooling only; process start, load and the
// first pass's warm-up are left out: see nativeWarmPass).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadModel, type Model } from "../src/index.ts";
import { type BenchOptions, type Cell, runStandalone, type SuiteResult } from "./lib.ts";
import { BUILD_HINT, binDir, runTool } from "./peers/llama.cpp/native.ts";

const TOPICS = [
  "the weather",
  "a recipe",
  "the stock market",
  "football",
  "a train journey",
  "gardening",
  "a new phone",
  "the ocean",
];

/** Sentence i: 10-16 tokens, different for every i. */
function sentence(i: number): string {
  return `Sentence ${i + 1} is a short note about ${TOPICS[i % TOPICS.length]} written on day ${(i * 7) % 31}.`;
}

function sentences(n: number): string[] {
  return Array.from({ length: n }, (_, i) => sentence(i));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/**
 * Milliseconds of llama-embedding's "prompt eval time" over `prompts` (one per line), its batch
 * and context `batchTokens`, and its vectors.
 */
async function nativeRun(
  model: string,
  prompts: string[],
  batchTokens: number,
  threads: number,
): Promise<{ ms: number; vectors: number[][] }> {
  const dir = mkdtempSync(join(tmpdir(), "hearth-bench-embd-"));
  try {
    const file = join(dir, "prompts.txt");
    writeFileSync(file, prompts.join("\n"));
    const size = String(batchTokens);
    const r = await runTool("llama-embedding", [
      ...["-m", model, "-f", file, "-t", String(threads), "-c", size, "-b", size, "-lv", "4"],
      ...["--pooling", "mean", "--embd-normalize", "2", "--embd-output-format", "json"],
    ]);
    const m = /prompt eval time =\s*([\d.]+) ms/.exec(r.stderr);
    if (m === null) throw new Error("llama-embedding printed no prompt eval time");
    const vectors = (JSON.parse(r.stdout) as { data: { embedding: number[] }[] }).data.map(
      (d) => d.embedding,
    );
    if (vectors.length !== prompts.length) throw new Error(`llama-embedding gave ${vectors.length} vectors`);
    return { ms: Number(m[1]), vectors };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * One warm forward pass of llama-embedding over `texts`: it is a one-shot tool whose first pass
 * carries the warm-up, so a warm-up batch goes first, filled to exactly the batch size (so the
 * measured texts make a pass of their own), and the pass's time is the difference between that
 * run and one of the warm-up batch alone. Returns milliseconds and the texts' vectors.
 */
async function nativeWarmPass(
  model: Model,
  texts: string[],
  threads: number,
): Promise<{ ms: number; vectors: number[][] }> {
  const count = (t: string) => model.encode(t).length;
  const measured = texts.reduce((a, t) => a + count(t), 0);
  // llama.cpp wants a batch of at least its 256 sequences' outputs, and (this build) a context
  // that is a multiple of 256.
  const batch = Math.ceil(Math.max(256, measured) / 256) * 256;
  const warm: string[] = [];
  let filled = 0;
  for (let i = 0; ; i++) {
    const t = sentence(1000 + i);
    if (filled + count(t) > batch) break;
    warm.push(t);
    filled += count(t);
  }
  while (filled + count("x") <= batch) {
    warm.push("x");
    filled += count("x");
  }
  const both = await nativeRun(model.path, [...warm, ...texts], batch, threads);
  const alone = await nativeRun(model.path, warm, batch, threads);
  return { ms: both.ms - alone.ms, vectors: both.vectors.slice(warm.length) };
}

async function hearthEmbed(
  model: Model,
  texts: string[],
): Promise<{ seconds: number; vectors: Float32Array[] }> {
  const t0 = performance.now();
  const vectors = await model.embed(texts);
  return { seconds: (performance.now() - t0) / 1000, vectors };
}

function minCosine(a: Float32Array[], b: number[][]): number {
  let min = 1;
  for (const [i, x] of a.entries()) {
    const y = b[i] as number[];
    let dot = 0;
    let yy = 0;
    for (let j = 0; j < x.length; j++) {
      dot += (x[j] as number) * (y[j] as number);
      yy += (y[j] as number) ** 2;
    }
    min = Math.min(min, dot / Math.sqrt(yy));
  }
  return min;
}

export async function run(opts: BenchOptions): Promise<SuiteResult> {
  const rounds = opts.quick ? 1 : 5;
  const nativeRounds = opts.quick ? 1 : 3;
  const bin = opts.peers.includes("llama.cpp") ? binDir() : null;
  // A step of 1024 rows holds the 64 inputs, as llama-embedding's one batch of 2048 does.
  const model = await loadModel(opts.model, {
    threads: opts.threads,
    contextTokens: 512,
    maxBatchTokens: 1024,
  });
  const rows: Array<Record<string, Cell>> = [];
  const summary: Record<string, number | string | null> = {};
  const notes: string[] = [
    `hearth: wall-clock of model.embed (tokenize, forward, pool), median of ${rounds}; native llama.cpp: one warm forward pass of llama-embedding (its prompt eval time with a warm-up batch before the texts, minus that of the warm-up batch alone), median of ${nativeRounds}`,
  ];
  try {
    await hearthEmbed(model, sentences(8)); // warm-up
    for (const n of [1, 64]) {
      const texts = sentences(n);
      const tokens = texts.reduce((a, t) => a + model.encode(t).length, 0);
      const ours: number[] = [];
      let vectors: Float32Array[] = [];
      for (let r = 0; r < rounds; r++) {
        const h = await hearthEmbed(model, texts);
        ours.push(n / h.seconds);
        vectors = h.vectors;
      }
      const hearthRate = median(ours);
      let nativeRate: number | null = null;
      let cosine: number | null = null;
      if (bin !== null) {
        const theirs: number[] = [];
        for (let r = 0; r < nativeRounds; r++) {
          const p = await nativeWarmPass(model, texts, opts.threads);
          theirs.push((n * 1000) / Math.max(1e-3, p.ms));
          cosine = minCosine(vectors, p.vectors);
        }
        nativeRate = median(theirs);
      }
      rows.push({
        model: model.name,
        threads: opts.threads,
        test: `embed ${n} input${n === 1 ? "" : "s"}`,
        tokens,
        "hearth emb/s": hearthRate,
        "native llama.cpp emb/s": nativeRate,
        "vs native": nativeRate === null ? null : hearthRate / nativeRate,
        "min cosine": cosine === null ? null : cosine.toFixed(5),
      });
      summary[`hearth_embed_${n}_per_s`] = hearthRate;
      summary[`llamacpp_embed_${n}_per_s`] = nativeRate;
      summary[`embed_${n}_min_cosine`] = cosine;
    }
  } finally {
    model.close();
  }
  if (bin === null && opts.peers.includes("llama.cpp")) notes.push(BUILD_HINT);
  return {
    suite: "embed",
    columns: [
      "model",
      "threads",
      "test",
      "tokens",
      "hearth emb/s",
      "native llama.cpp emb/s",
      "vs native",
      "min cosine",
    ],
    rows,
    summary,
    notes,
  };
}

if (import.meta.main) await runStandalone(run);
