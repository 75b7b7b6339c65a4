// Perplexity beside llama.cpp's on any text, chunk by chunk: the mean NLL difference and its standard
// error, so a shift can be told from chunk-to-chunk rounding noise (5 chunks cannot).
//   bun bench/peers/peer.ts perplexity --file TEXT --ctx 512 > PEER.json   (last line is the JSON)
//   bun bench/ppl-compare.ts TEXT PEER.json
import { readFileSync } from "node:fs";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { pullModel } from "../src/gguf/pull.ts";
import { createBatch, openNativeModel } from "../src/native/model.ts";
import { Tokenizer } from "../src/tokenizer/index.ts";

const [textPath, peerPath] = process.argv.slice(2);
if (!textPath || !peerPath) throw new Error("usage: bun bench/ppl-compare.ts TEXT PEER.json");
const peerLines = readFileSync(peerPath, "utf8").trim().split("\n");
const peer = JSON.parse(peerLines[peerLines.length - 1] as string) as {
  tokens: number;
  ctx: number;
  chunks: number;
  firstScored: number;
  chunkMeanNll: number[];
};
const path = await pullModel();
const file = readGguf(path);
const tok = Tokenizer.fromGguf(new GgufMetadata(file.metadata));
const ids = tok.encode(readFileSync(textPath, "utf8"), { addSpecial: false, parseSpecial: false });
if (ids.length !== peer.tokens) throw new Error(`tokens ${ids.length} vs ${peer.tokens}`);
const ctx = peer.ctx;
const first = peer.firstScored;
const model = openNativeModel(
  path,
  { threads: 2, kvPages: Math.ceil(ctx / 16), maxBatchTokens: ctx, maxSequences: 1 },
  file,
);
const batch = createBatch(ctx);
const V = model.info.vocabSize;
const logits = new Float32Array((ctx - first) * V);
const diffs: number[] = [];
for (let c = 0; c < peer.chunks; c++) {
  const chunk = ids.slice(c * ctx, (c + 1) * ctx);
  const seq = model.seqCreate();
  batch.length = ctx;
  for (let i = 0; i < ctx; i++) {
    batch.tokens[i] = chunk[i] as number;
    batch.positions[i] = i;
    batch.seqIds[i] = seq;
    batch.wantLogits[i] = i >= first - 1 && i < ctx - 1 ? 1 : 0;
  }
  const rows = model.decode(batch, logits);
  model.seqFree(seq);
  let sum = 0;
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * V, (r + 1) * V);
    let mx = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < V; j++) mx = Math.max(mx, row[j] as number);
    let z = 0;
    for (let j = 0; j < V; j++) z += Math.exp((row[j] as number) - mx);
    sum += -((row[chunk[first + r] as number] as number) - mx - Math.log(z));
  }
  diffs.push(sum / rows - (peer.chunkMeanNll[c] as number));
}
const n = diffs.length;
const mean = diffs.reduce((a, b) => a + b, 0) / n;
const sd = Math.sqrt(diffs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
const peerMean = peer.chunkMeanNll.reduce((a: number, b: number) => a + b, 0) / n;
console.log(
  `chunks ${n}: mean NLL diff (hearth - peer) ${mean.toFixed(5)} ± ${(sd / Math.sqrt(n)).toFixed(5)} (sd ${sd.toFixed(5)}); ppl hearth ${Math.exp(peerMean + mean).toFixed(4)} peer ${Math.exp(peerMean).toFixed(4)} (${((Math.exp(mean) - 1) * 100).toFixed(3)}%)`,
);
model.close();
