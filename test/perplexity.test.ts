// Perplexity parity with llama.cpp on a fixed text: hearth's tokenizer + native forward computed
// exactly as test/fixtures/perplexity.json states (from node-llama-cpp, bench/peers/peer.ts):
// chunks of ctx tokens, each from an empty cache, the second half of each chunk scored.
// hearth's perplexity must be within 1% of the peer's.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { pullModel } from "../src/gguf/pull.ts";
import { createBatch, openNativeModel } from "../src/native/model.ts";
import type { Batch, NativeModel } from "../src/native/model-api.ts";
import { Tokenizer } from "../src/tokenizer/index.ts";

interface PerplexityFixture {
  peer: string;
  model: string;
  textFile: string;
  tokens: number;
  ctx: number;
  chunks: number;
  firstScored: number;
  scoredTokens: number;
  ppl: number;
  chunkMeanNll: number[];
  method: string;
  ids: number[];
}

const fixture: PerplexityFixture = await Bun.file(`${import.meta.dir}/fixtures/perplexity.json`).json();
const text = await Bun.file(`${import.meta.dir}/../${fixture.textFile}`).text();
const TOLERANCE = 0.01;

let model: NativeModel;
let tokenizer: Tokenizer;
let batch: Batch;

/** Mean negative log-likelihood of tokens first..ctx-1 of one chunk, predicted from the row before. */
function chunkMeanNll(chunk: number[], first: number): number {
  const vocab = model.info.vocabSize;
  const rows = chunk.length - first;
  const logits = new Float32Array(rows * vocab);
  const seq = model.seqCreate();
  try {
    batch.length = chunk.length;
    for (let i = 0; i < chunk.length; i++) {
      batch.tokens[i] = chunk[i] as number;
      batch.positions[i] = i;
      batch.seqIds[i] = seq;
      batch.wantLogits[i] = i >= first - 1 && i < chunk.length - 1 ? 1 : 0;
    }
    expect(model.decode(batch, logits)).toBe(rows);
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
    const target = chunk[first + r] as number;
    sum += -((row[target] as number) - max - Math.log(z));
  }
  return sum / rows;
}

beforeAll(async () => {
  const path = await pullModel();
  const file = readGguf(path);
  tokenizer = Tokenizer.fromGguf(new GgufMetadata(file.metadata));
  const pages = Math.ceil(fixture.ctx / 16);
  model = openNativeModel(
    path,
    { threads: 2, kvPages: pages, maxBatchTokens: fixture.ctx, maxSequences: 1 },
    file,
  );
  batch = createBatch(fixture.ctx);
});

afterAll(() => model?.close());

describe(`perplexity parity with ${fixture.peer}`, () => {
  test("the fixture text is at least 2,000 tokens and hearth tokenizes it as llama.cpp does", () => {
    expect(fixture.tokens).toBeGreaterThanOrEqual(2000);
    const ids = tokenizer.encode(text, { addSpecial: false, parseSpecial: false });
    expect(ids.length).toBe(fixture.tokens);
    expect(ids).toEqual(fixture.ids);
  }, 60_000);

  test(`perplexity within ${TOLERANCE * 100}% of the peer's (ctx ${fixture.ctx}, second half of each chunk scored)`, () => {
    const ids = tokenizer.encode(text, { addSpecial: false, parseSpecial: false });
    const chunks = Math.floor(ids.length / fixture.ctx);
    expect(chunks).toBe(fixture.chunks);
    const first = fixture.ctx / 2;
    expect(first).toBe(fixture.firstScored);
    const perChunk: number[] = [];
    for (let c = 0; c < chunks; c++) {
      perChunk.push(chunkMeanNll(ids.slice(c * fixture.ctx, (c + 1) * fixture.ctx), first));
    }
    const ppl = Math.exp(perChunk.reduce((a, b) => a + b, 0) / chunks);
    const rel = Math.abs(ppl - fixture.ppl) / fixture.ppl;
    console.error(
      `perplexity: hearth ${ppl.toFixed(4)} peer ${fixture.ppl.toFixed(4)} (${(rel * 100).toFixed(3)}% apart); ` +
        `chunk NLL hearth ${perChunk.map((x) => x.toFixed(4)).join(" ")} peer ${fixture.chunkMeanNll.map((x) => x.toFixed(4)).join(" ")}`,
    );
    expect(Number.isFinite(ppl)).toBe(true);
    expect(rel).toBeLessThanOrEqual(TOLERANCE);
  }, 300_000);
});
