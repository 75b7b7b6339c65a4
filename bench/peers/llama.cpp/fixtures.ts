// Regenerates test/fixtures/llamacpp-perplexity.json from the native llama.cpp build: llama-perplexity
// on the project's perplexity text (test/fixtures/ppl-text.txt, ctx 512) for the default model, every
// SmolLM2 variant of bench/peers/llama.cpp/models/ and Gemma 3 270M, plus llama.cpp's own KL
// divergence of each SmolLM2 file against the F16 one (`--kl-divergence-base`). The base logits
// (about 125 MB) stay beside the models, never in git.
//   bun bench/peers/llama.cpp/fixtures.ts [--threads N] [--missing]   (threads default 1)
// --missing keeps the fixture's figures and runs only the model files it does not have yet (their
// KL divergence reads the base logits already beside the models).
// Needs build.sh and models.sh to have run (it says so when they have not).
import { existsSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { pullModel, sha256File } from "../../../src/gguf/pull.ts";
import { BUILD_HINT, binDir, listModels, MODELS_DIR, MODELS_HINT, PIN, runTool } from "./native.ts";

const ROOT = join(import.meta.dir, "..", "..", "..");
const TEXT = "test/fixtures/ppl-text.txt";
const OUT = join(ROOT, "test", "fixtures", "llamacpp-perplexity.json");
const CTX = 512;
const BASE_FILE = "SmolLM2-135M-Instruct.F16.gguf";
const BASE_LOGITS = join(MODELS_DIR, "SmolLM2-135M-Instruct.F16.kld-base.bin");

export const METHOD =
  "llama-perplexity -c 512 -b 512 -fa off: the text tokenized with add_special (a BOS only if the vocab " +
  "adds one) and without parsing special text; floor(tokens/512) chunks, each from an empty KV cache, its " +
  "first token replaced by BOS when the vocab adds one; in each chunk the tokens at positions 257..511 " +
  "(255 per chunk) are scored with -log softmax(logits of the previous position)[token]; ppl = " +
  "exp(mean NLL). chunkMeanNll[i] is derived from llama.cpp's running mean after chunk i.";

interface ModelFigures {
  file: string;
  sha256: string;
  sizeBytes: number;
  vocab: string;
  chunks: number;
  scoredTokens: number;
  ppl: number;
  pplStderr: number | null;
  chunkMeanNll: number[];
  kld?: {
    base: string;
    mean: number;
    meanStderr: number;
    median: number;
    p99: number;
    max: number;
    sameTopP: number;
  };
}

function num(re: RegExp, text: string, what: string): number {
  const m = re.exec(text);
  if (!m) throw new Error(`llama-perplexity output has no ${what}`);
  return Number(m[1]);
}

/** Per-chunk mean NLL from llama.cpp's running means (each chunk scores the same number of tokens). */
function chunkMeans(running: number[]): number[] {
  return running.map((m, i) => (i === 0 ? m : m * (i + 1) - (running[i - 1] as number) * i));
}

/** A plain perplexity run (`--ppl-output-type 1` prints the running mean NLL after each chunk). */
async function perplexity(
  model: string,
  threads: number,
  extra: string[] = [],
): Promise<Omit<ModelFigures, "file" | "sha256" | "sizeBytes" | "vocab">> {
  const args = ["-m", model, "-f", join(ROOT, TEXT), "-c", String(CTX), "-b", String(CTX), "-fa", "off"];
  args.push("-t", String(threads), "--ppl-output-type", "1", ...extra);
  const r = await runTool("llama-perplexity", args);
  const out = `${r.stdout}\n${r.stderr}`;
  const running = [...out.matchAll(/^\s*\d+\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$/gm)].map((m) =>
    Number(m[2]),
  );
  if (running.length === 0) throw new Error(`llama-perplexity printed no chunks for ${basename(model)}`);
  const m = /Final estimate: PPL = ([\d.]+) \+\/- ([\d.]+)/.exec(out);
  const meanNll = running[running.length - 1] as number;
  return {
    chunks: running.length,
    scoredTokens: running.length * (CTX / 2 - 1),
    ppl: m ? Number(m[1]) : Math.exp(meanNll),
    pplStderr: m ? Number(m[2]) : null,
    chunkMeanNll: chunkMeans(running),
  };
}

/** A KL-divergence run against the saved base logits; it also gives this file's perplexity. */
async function klDivergence(
  model: string,
  threads: number,
): Promise<Omit<ModelFigures, "file" | "sha256" | "sizeBytes" | "vocab">> {
  const args = ["-m", model, "-f", join(ROOT, TEXT), "-c", String(CTX), "-b", String(CTX), "-fa", "off"];
  args.push("-t", String(threads), "--kl-divergence-base", BASE_LOGITS, "--kl-divergence");
  const r = await runTool("llama-perplexity", args);
  const out = `${r.stdout}\n${r.stderr}`;
  const rows = [...out.matchAll(/^\s*\d+\s+([\d.]+) ± +[\d.]+\s+-?[\d.]+ ± /gm)].map((x) =>
    Math.log(Number(x[1])),
  );
  if (rows.length === 0)
    throw new Error(`llama-perplexity --kl-divergence printed no chunks for ${basename(model)}`);
  return {
    chunks: rows.length,
    scoredTokens: rows.length * (CTX / 2 - 1),
    ppl: num(/Mean PPL\(Q\)\s*:\s*([\d.]+)/, out, "Mean PPL(Q)"),
    pplStderr: num(/Mean PPL\(Q\)\s*:\s*[\d.]+ ± +([\d.]+)/, out, "PPL(Q) uncertainty"),
    // The per-chunk PPL column is the running value with 4 decimals: good to about 1e-5 in NLL.
    chunkMeanNll: chunkMeans(rows),
    kld: {
      base: BASE_FILE,
      mean: num(/Mean +KLD:\s*(-?[\d.]+)/, out, "Mean KLD"),
      meanStderr: num(/Mean +KLD:\s*-?[\d.]+ ± +([\d.]+)/, out, "KLD uncertainty"),
      median: num(/Median +KLD:\s*(-?[\d.]+)/, out, "Median KLD"),
      p99: num(/99\.0% +KLD:\s*(-?[\d.]+)/, out, "99% KLD"),
      max: num(/Maximum KLD:\s*(-?[\d.]+)/, out, "Maximum KLD"),
      sameTopP: num(/Same top p:\s*([\d.]+)/, out, "Same top p") / 100,
    },
  };
}

/** The ids llama-perplexity evaluates (add_special, no special parsing), and whether llama.cpp puts
 * a BOS first (it then also replaces each chunk's first token with it): the ids with and without
 * --no-bos differ exactly then. The trailing newline that llama.cpp's -f strips changes nothing here,
 * since the last partial chunk is dropped. */
async function tokenIds(model: string): Promise<{ ids: number[]; addBos: boolean; bosId: number | null }> {
  const run = async (extra: string[]) => {
    const args = ["-m", model, "-f", join(ROOT, TEXT), "--ids", "--no-parse-special", "--log-disable"];
    const r = await runTool("llama-tokenize", [...args, ...extra]);
    const line = r.stdout.split("\n").find((l) => l.startsWith("["));
    if (!line) throw new Error(`llama-tokenize printed no ids for ${basename(model)}`);
    return JSON.parse(line) as number[];
  };
  const ids = await run([]);
  const noBos = await run(["--no-bos"]);
  const addBos = ids.length === noBos.length + 1;
  return { ids, addBos, bosId: addBos ? (ids[0] as number) : null };
}

interface VocabIds {
  from: string;
  tokens: number;
  addBos: boolean;
  bosId: number | null;
  ids: number[];
}

async function main(argv: string[]): Promise<number> {
  const ti = argv.indexOf("--threads");
  // One thread by default: the figures do not depend on it, and on a shared machine llama.cpp's
  // threads spin at every barrier, which makes 2 threads many times slower than 1.
  const threads = ti >= 0 ? Number(argv[ti + 1]) : 1;
  if (!Number.isInteger(threads) || threads < 1) throw new Error("--threads must be a positive integer");
  if (binDir() === null) throw new Error(BUILD_HINT);
  const variants = listModels();
  if (!variants.includes(BASE_FILE))
    throw new Error(`${BASE_FILE} missing from ${MODELS_DIR}: ${MODELS_HINT}`);
  let files = [await pullModel(), ...variants.map((f) => join(MODELS_DIR, f))];
  const previous = argv.includes("--missing")
    ? ((await Bun.file(OUT).json()) as { models: ModelFigures[]; vocabs: Record<string, VocabIds> })
    : null;
  if (previous) {
    if (!existsSync(BASE_LOGITS)) throw new Error(`--missing needs ${BASE_LOGITS}: run without it once`);
    const have = new Set(previous.models.map((m) => m.file));
    files = files.filter((f) => !have.has(basename(f)));
  }
  const version = await runTool("llama-bench", ["--version"]).catch(() => null);
  const build = `${version?.stdout ?? ""}${version?.stderr ?? ""}`.trim().split("\n")[0] ?? "";
  const vocabs: Record<string, VocabIds> = {};
  const models: ModelFigures[] = previous ? [...previous.models] : [];
  if (previous) Object.assign(vocabs, previous.vocabs);
  // The base first: its run saves the logits the KL-divergence runs read.
  files.sort((a, b) => Number(basename(b) === BASE_FILE) - Number(basename(a) === BASE_FILE));
  for (const path of files) {
    const file = basename(path);
    const vocab = file.startsWith("gemma-3-270m") ? "gemma3" : "smollm2";
    console.error(`[fixtures] ${file}`);
    let figures: Awaited<ReturnType<typeof perplexity>>;
    if (file === BASE_FILE) figures = await perplexity(path, threads, ["--kl-divergence-base", BASE_LOGITS]);
    else if (vocab === "smollm2" && existsSync(BASE_LOGITS)) figures = await klDivergence(path, threads);
    else figures = await perplexity(path, threads);
    if (!vocabs[vocab]) {
      const t = await tokenIds(path);
      vocabs[vocab] = { from: file, tokens: t.ids.length, addBos: t.addBos, bosId: t.bosId, ids: t.ids };
    }
    models.push({ file, sha256: await sha256File(path), sizeBytes: Bun.file(path).size, vocab, ...figures });
    console.error(
      `[fixtures]   ppl ${figures.ppl.toFixed(4)}${figures.kld ? `, KLD ${figures.kld.mean}` : ""}`,
    );
  }
  const fixture = {
    peer: `llama.cpp native, ${PIN}${build ? `, ${build}` : ""}, GGML_NATIVE, CPU`,
    tool: "llama-perplexity",
    textFile: TEXT,
    ctx: CTX,
    batch: CTX,
    flashAttention: "off",
    threads,
    method: METHOD,
    kldNote:
      `kld: llama.cpp's KL divergence of each SmolLM2 file from ${BASE_FILE} on the same scored tokens ` +
      `(llama-perplexity --kl-divergence); the base logits are ${basename(BASE_LOGITS)} beside the models ` +
      "(bench/peers/llama.cpp/fixtures.ts regenerates them). The SmolLM2 variants are all requantized from the " +
      "Q4_1 file, so F16 holds the Q4_1 weights: KLD measures each format's rounding, not distance from the original model.",
    models,
    vocabs,
  };
  writeFileSync(OUT, `${JSON.stringify(fixture, null, 1)}\n`);
  console.error(`[fixtures] wrote ${OUT}`);
  return 0;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
