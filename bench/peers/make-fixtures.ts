// Writes the committed accuracy fixtures from the peer (llama.cpp via node-llama-cpp):
// test/fixtures/tokenizer-parity.json, greedy.json and perplexity.json (formats in COMMON.md).
//   bun bench/peers/make-fixtures.ts [tokenizer|greedy|perplexity ...] [--model PATH]
// With no names it writes all three. The peer runs in a child process (bench/peers/run.ts).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { runPeer } from "./run.ts";

const FIXTURES = join(import.meta.dir, "..", "..", "test", "fixtures");

/**
 * Candidate raw prompts (no chat template), in a fixed order. The greedy fixture keeps the first ten
 * whose 32-token greedy continuation llama.cpp itself computes identically with its two attention
 * paths (plain and flash attention): a prompt that llama.cpp cannot reproduce across its own
 * rounding differences sits on a near-tie and says nothing about another runtime's correctness.
 * The choice uses the peer only, never hearth.
 */
export const GREEDY_CANDIDATES = [
  "The capital of France is",
  "Once upon a time, in a small village at the edge of a forest,",
  "def fibonacci(n):\n    ",
  "The three primary colors are",
  "Q: What is 12 times 12?\nA:",
  "Water is made of two elements:",
  "Here is a list of fruits:\n1. Apple\n2.",
  'import json\n\ndata = {"name": "Alice", "age": 30}\nprint(',
  "The best way to learn a new language is",
  "In 1969, the first humans landed on",
  "The largest planet in our solar system is",
  "To make a cup of tea, first",
  "Photosynthesis is the process by which plants",
  "The quick brown fox",
  "SELECT name, age FROM users WHERE",
  "The Great Wall of China was built",
  "Monday, Tuesday, Wednesday,",
  "The chemical symbol for gold is",
  "A haiku about the sea:\n",
  "function add(a, b) {\n  return",
  "The French Revolution began in",
  "Dear Sir or Madam,\n\nI am writing to",
  "1, 2, 3, 4, 5,",
  "The human heart has four chambers:",
  "Shakespeare wrote many plays, including",
  "The boiling point of water at sea level is",
  "<html>\n<head>\n<title>",
  "The main causes of climate change are",
  "Albert Einstein is best known for",
  "Rain falls when",
] as const;
const GREEDY_PROMPT_COUNT = 10;

interface TokenizeOut {
  peer: string;
  model: string;
  cases: Array<{ text: string; ids: number[]; idsPlain: number[] }>;
}

interface GreedyOut {
  peer: string;
  model: string;
  tokens: number;
  prompts: Array<{ prompt: string; promptIds: number[]; ids: number[]; text: string }>;
}

interface PerplexityOut {
  peer: string;
  model: string;
  tokens: number;
  ctx: number;
  chunks: number;
  firstScored: number;
  scoredTokens: number;
  chunkMeanNll: number[];
  ppl: number;
  method: string;
  ids: number[];
}

function write(name: string, value: unknown): void {
  const path = join(FIXTURES, name);
  writeFileSync(path, `${JSON.stringify(value, null, 1)}\n`);
  console.error(`[fixtures] wrote ${path}`);
}

async function tokenizer(common: string[]): Promise<void> {
  const corpus = join(FIXTURES, "tokenizer-corpus.json");
  const out = await runPeer<TokenizeOut>(["tokenize", "--file", corpus, ...common]);
  if (out.cases.length < 300) throw new Error(`corpus has ${out.cases.length} strings, need >= 300`);
  write("tokenizer-parity.json", {
    peer: out.peer,
    model: out.model,
    note: "ids: llama_tokenize(add_special=false, parse_special=true); idsPlain: parse_special=false. No BOS.",
    cases: out.cases,
  });
}

async function greedy(common: string[]): Promise<void> {
  const promptsFile = join(FIXTURES, "greedy-candidates.json");
  writeFileSync(promptsFile, `${JSON.stringify(GREEDY_CANDIDATES, null, 1)}\n`);
  const args = ["greedy", "--file", promptsFile, "--tokens", "32", ...common];
  const plain = await runPeer<GreedyOut>([...args, "--flash-attention", "off"]);
  const flash = await runPeer<GreedyOut>([...args, "--flash-attention", "on"]);
  const stable = plain.prompts.filter(
    (p, i) => JSON.stringify(p.ids) === JSON.stringify(flash.prompts[i]?.ids),
  );
  console.error(
    `[fixtures] greedy: ${stable.length}/${plain.prompts.length} candidates stable across llama.cpp's attention paths`,
  );
  if (stable.length < GREEDY_PROMPT_COUNT) throw new Error(`only ${stable.length} stable prompts`);
  write("greedy.json", {
    peer: plain.peer,
    model: plain.model,
    note:
      "Raw prompt tokenized without BOS (the model does not add one) and without parsing special text; " +
      "ids are the first 32 argmax tokens (temperature 0, llama.cpp plain attention, f16 KV), stopping " +
      "early only on an end-of-generation token.",
    selection:
      `The first ${GREEDY_PROMPT_COUNT} of ${GREEDY_CANDIDATES.length} fixed candidates (bench/peers/make-fixtures.ts) ` +
      "whose 32 greedy tokens llama.cpp computes identically with flash attention off and on; " +
      `${stable.length} of ${GREEDY_CANDIDATES.length} candidates were stable.`,
    tokens: plain.tokens,
    prompts: stable.slice(0, GREEDY_PROMPT_COUNT),
    // Every candidate with both of llama.cpp's answers, so the parity report covers all of them,
    // not only the prompts the selection kept (test/greedy-parity.test.ts).
    candidates: plain.prompts.map((p, i) => ({
      prompt: p.prompt,
      promptIds: p.promptIds,
      ids: p.ids,
      idsFlash: flash.prompts[i]?.ids ?? [],
    })),
  });
}

async function perplexity(common: string[]): Promise<void> {
  const out = await runPeer<PerplexityOut>([
    "perplexity",
    "--file",
    join(FIXTURES, "ppl-text.txt"),
    "--ctx",
    "512",
    ...common,
  ]);
  if (out.tokens < 2000) throw new Error(`ppl text has ${out.tokens} tokens, need >= 2000`);
  write("perplexity.json", {
    peer: out.peer,
    model: out.model,
    textFile: "test/fixtures/ppl-text.txt",
    tokens: out.tokens,
    ctx: out.ctx,
    chunks: out.chunks,
    firstScored: out.firstScored,
    scoredTokens: out.scoredTokens,
    ppl: out.ppl,
    chunkMeanNll: out.chunkMeanNll,
    method: out.method,
    ids: out.ids,
  });
}

const JOBS: Record<string, (common: string[]) => Promise<void>> = { tokenizer, greedy, perplexity };

export async function main(argv: string[]): Promise<number> {
  const names: string[] = [];
  const common: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--model" || a === "--threads") common.push(a, argv[++i] ?? "");
    else if (a.startsWith("-")) throw new Error(`unknown option ${a}`);
    else names.push(a);
  }
  for (const name of names.length > 0 ? names : Object.keys(JOBS)) {
    const job = JOBS[name];
    if (!job) throw new Error(`unknown fixture "${name}"; fixtures: ${Object.keys(JOBS).join(", ")}`);
    await job(common);
  }
  return 0;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
