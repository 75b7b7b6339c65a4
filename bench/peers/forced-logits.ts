// llama.cpp's full logits along the greedy fixture's own paths (teacher forcing), to measure how far
// hearth's logits are from the peer's at every one of the 320 decisions, not only whether they tie.
//
//   bun bench/peers/forced-logits.ts OUT.f32 [--flash-attention]   (writes prompts x 32 rows of n_vocab f32, prompt-major)
//
// Each prompt is prefilled in one batch, then the fixture's tokens are fed one at a time, exactly as
// the fixture was made (flash attention off, 2 threads, context 512).
import { writeFileSync } from "node:fs";
import type { Token } from "node-llama-cpp";
import { load, newContext } from "./peer.ts";

interface GreedyFixture {
  prompts: Array<{ promptIds: number[]; ids: number[] }>;
}

const out = process.argv[2];
if (!out) throw new Error("usage: bun bench/peers/forced-logits.ts OUT.f32");
const fixture = (await Bun.file(
  `${import.meta.dir}/../../test/fixtures/greedy.json`,
).json()) as GreedyFixture;
// The default model, 2 threads, as peer.ts loads it.
const loaded = await load(
  new Map([["flash-attention", process.argv[3] === "--flash-attention" ? "on" : "off"]]),
);
const vocab = 49152;
const ctx = await newContext(loaded, 512, 1, 512);
const seq = ctx.getSequence();
const steps = 32;
const all = new Float32Array(fixture.prompts.length * steps * vocab);
type Input = Parameters<typeof seq.controlledEvaluate>[0];
const want = { generateNext: { logits: true, options: { temperature: 0 } } } as const;

function store(row: number, res: Awaited<ReturnType<typeof seq.controlledEvaluate>>, at: number): void {
  const logits = (res[at]?.next as { logits?: Map<Token, number> } | undefined)?.logits;
  if (!logits || logits.size !== vocab) throw new Error(`row ${row}: full logits missing`);
  const dst = all.subarray(row * vocab, (row + 1) * vocab);
  for (const [id, v] of logits) dst[id] = v;
}

for (const [p, fx] of fixture.prompts.entries()) {
  await seq.clearHistory();
  const ids = fx.promptIds as Token[];
  const input = ids.map((tok, i) => (i === ids.length - 1 ? ([tok, want] as const) : tok));
  store(p * steps, await seq.controlledEvaluate(input as Input), ids.length - 1);
  for (let k = 0; k + 1 < steps && k < fx.ids.length; k++) {
    store(p * steps + k + 1, await seq.controlledEvaluate([[fx.ids[k] as Token, want]] as Input), 0);
  }
  console.error(`prompt ${p} done`);
}
writeFileSync(out, new Uint8Array(all.buffer));
await ctx.dispose();
await loaded.model.dispose();
await loaded.llama.dispose();
