import { readFileSync } from "node:fs";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({
  modelPath: process.env.HOME + "/.cache/hearth/models/SmolLM2-135M-Instruct.Q4_1.gguf",
});
const fx = JSON.parse(readFileSync("../../test/fixtures/perplexity.json", "utf8"));
const ids = fx.ids.slice(0, 512);
const ctx = await model.createContext({ contextSize: 512, batchSize: 512, threads: 1 });
const seq = ctx.getSequence();
const r = 300;
const tgt = ids[r + 1];
console.log(
  "target",
  tgt,
  JSON.stringify(model.detokenize([tgt])),
  "context",
  JSON.stringify(model.detokenize(ids.slice(r - 10, r + 1))),
);
for (const gn of [
  { logits: true },
  { logits: { filter: { tokens: [tgt] }, includeTop: 3 } },
  { probabilities: true, token: true },
  { logits: { filter: { tokens: [tgt] }, includeTop: 3 } },
  { logits: true },
]) {
  await seq.clearHistory();
  const input = ids
    .slice(0, r + 1)
    .map((t: number, i: number) =>
      i === r ? [t, { generateNext: { ...gn, options: { temperature: 0 } } }] : t,
    );
  const res = await seq.controlledEvaluate(input as any);
  const nx = (res[r] as any).next;
  const m = (nx.logits ?? nx.probabilities) as Map<number, number>;
  const top = [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3);
  console.log(Object.keys(gn), m.size, "target:", m.get(tgt), "top:", JSON.stringify(top), "tok", nx.token);
}
