// How far hearth's logits are from llama.cpp's along the greedy fixture's paths (teacher forcing):
// a continuous measure of arithmetic parity, where the greedy test only counts identical prompts.
//
//   bun bench/peers/forced-logits.ts /tmp/peer.f32   (once: the peer's logits, 320 rows)
//   bun bench/parity-logits.ts /tmp/peer.f32 [--verbose] [--dump hearth.f32]
//
// Prints the RMS and max |logit difference| over all rows, and how many of the 320 argmax
// decisions agree (with the peer's top-2 margin wherever they do not).
import { readFileSync } from "node:fs";
import { readGguf } from "../src/gguf/index.ts";
import { pullModel } from "../src/gguf/pull.ts";
import { createBatch, openNativeModel } from "../src/native/model.ts";

interface GreedyFixture {
  prompts: Array<{ promptIds: number[]; ids: number[] }>;
}

const peerPath = process.argv[2];
if (!peerPath) throw new Error("usage: bun bench/parity-logits.ts PEER.f32 [--verbose]");
const verbose = process.argv.includes("--verbose");
const dumpAt = process.argv.indexOf("--dump");
const dumpPath = dumpAt > 0 ? process.argv[dumpAt + 1] : undefined;
const fixture = (await Bun.file(`${import.meta.dir}/../test/fixtures/greedy.json`).json()) as GreedyFixture;
const raw = readFileSync(peerPath);
const peer = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
const path = await pullModel();
const model = openNativeModel(
  path,
  { threads: 2, kvPages: 16, maxBatchTokens: 512, maxSequences: 1 },
  readGguf(path),
);
const vocab = model.info.vocabSize;
const steps = 32;
if (peer.length !== fixture.prompts.length * steps * vocab) throw new Error(`${peerPath}: wrong size`);
const batch = createBatch(512);
const logits = new Float32Array(vocab);
const dump = dumpPath ? new Float32Array(peer.length) : undefined;

function top2(row: Float32Array): [number, number] {
  let a = 0;
  let b = 1;
  if ((row[b] as number) > (row[a] as number)) [a, b] = [b, a];
  for (let i = 2; i < row.length; i++) {
    const v = row[i] as number;
    if (v > (row[a] as number)) {
      b = a;
      a = i;
    } else if (v > (row[b] as number)) b = i;
  }
  return [a, b];
}

let sumSq = 0;
let n = 0;
let maxAbs = 0;
let sumMean = 0;
let topSq = 0;
let topN = 0;
let agree = 0;
let rows = 0;
const misses: string[] = [];
for (const [p, fx] of fixture.prompts.entries()) {
  const seq = model.seqCreate();
  const feed = (tokens: number[], first: number): void => {
    batch.length = tokens.length;
    for (let i = 0; i < tokens.length; i++) {
      batch.tokens[i] = tokens[i] as number;
      batch.positions[i] = first + i;
      batch.seqIds[i] = seq;
      batch.wantLogits[i] = i === tokens.length - 1 ? 1 : 0;
    }
    model.decode(batch, logits);
  };
  feed(fx.promptIds, 0);
  for (let k = 0; k < steps; k++) {
    if (k > 0) feed([fx.ids[k - 1] as number], fx.promptIds.length + k - 1);
    const ref = peer.subarray((p * steps + k) * vocab, (p * steps + k + 1) * vocab);
    dump?.set(logits, (p * steps + k) * vocab);
    // Differences after removing the row's mean offset (a softmax ignores a shift).
    let mean = 0;
    for (let i = 0; i < vocab; i++) mean += (logits[i] as number) - (ref[i] as number);
    mean /= vocab;
    for (let i = 0; i < vocab; i++) {
      const d = (logits[i] as number) - (ref[i] as number) - mean;
      sumSq += d * d;
      maxAbs = Math.max(maxAbs, Math.abs(d));
    }
    n += vocab;
    sumMean += mean;
    // The tokens that matter for greedy: the peer's top 16.
    const order = Array.from(ref.keys()).sort((x, y) => (ref[y] as number) - (ref[x] as number));
    for (const i of order.slice(0, 16)) {
      const d = (logits[i] as number) - (ref[i] as number) - mean;
      topSq += d * d;
    }
    topN += 16;
    const [pa, pb] = top2(ref);
    const [ha, hb] = top2(logits);
    rows++;
    if (pa === ha) agree++;
    else
      misses.push(
        `prompt ${p} step ${k}: peer ${pa} by ${((ref[pa] as number) - (ref[pb] as number)).toFixed(3)}, ` +
          `hearth ${ha} by ${((logits[ha] as number) - (logits[hb] as number)).toFixed(3)}`,
      );
  }
  model.seqFree(seq);
}
model.close();
if (dump && dumpPath) await Bun.write(dumpPath, dump);
console.log(
  `logit diff (row offset removed): rms ${Math.sqrt(sumSq / n).toFixed(5)}, peer top-16 rms ${Math.sqrt(topSq / topN).toFixed(5)}, ` +
    `max ${maxAbs.toFixed(4)}, mean offset ${(sumMean / rows).toFixed(5)}; argmax agrees ${agree}/${rows}`,
);
if (verbose) for (const m of misses) console.log(m);
