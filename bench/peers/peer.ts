// The peer runtime CLI: llama.cpp through node-llama-cpp 3.22.1 (prebuilt CPU binary), printing JSON.
// hearth's fixtures and benchmarks are measured against it. Runs under Bun (node-llama-cpp's N-API
// addon loads in Bun 1.4); bench/peers/run.ts runs it as a child process after install.sh.
//
//   bun bench/peers/peer.ts <command> [options]
//   info                                   model + runtime facts
//   tokenize   --text T | --file F.json    ids (special text parsed) and idsPlain (special as plain)
//   greedy     --prompt P [--tokens 32]    greedy continuation of a raw prompt (no template, no BOS)
//   top        --prompt P [--k 5]          the k largest next-token logits (how close a greedy call was)
//   perplexity --file F [--ctx 512]        llama-perplexity style: chunks of ctx, second half scored
//   bench      [--pp 512] [--tg 128] [--reps 1]      tokens/s of prefill and generation + peak RSS
//   parallel   [--sequences 16] [--tokens 128]      aggregate tokens/s of n sequences in one context
//   lookup     --prompt P [--tokens 128] [--draft 4]  greedy completion tokens/s, plain and with
//                                          InputLookupTokenPredictor (prompt-lookup speculation)
// Common: --model PATH (default: the default hearth model), --threads N (default 2),
//         --flash-attention auto|on|off (default off).
// Output: one JSON object on stdout (the last line); progress goes to stderr.
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import {
  getLlama,
  InputLookupTokenPredictor,
  type Llama,
  LlamaCompletion,
  type LlamaContext,
  type LlamaContextSequence,
  LlamaLogLevel,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import { PARALLEL_PROMPTS, type ParallelResult } from "./parallel.ts";
import type { PeerLookupResult } from "./run.ts";

export const PEER_NAME = "node-llama-cpp 3.22.1";

interface Args {
  cmd: string;
  opts: Map<string, string>;
}

function parseArgs(argv: string[]): Args {
  const cmd = argv[0] ?? "help";
  const opts = new Map<string, string>();
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith("--")) throw new Error(`unexpected argument "${a}"`);
    const eq = a.indexOf("=");
    if (eq > 0) opts.set(a.slice(2, eq), a.slice(eq + 1));
    else {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith("--")) opts.set(a.slice(2), "true");
      else {
        opts.set(a.slice(2), v);
        i++;
      }
    }
  }
  return { cmd, opts };
}

function intOpt(opts: Map<string, string>, name: string, fallback: number): number {
  const raw = opts.get(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${raw}"`);
  return n;
}

function defaultModelPath(): string {
  const dir = process.env.HEARTH_MODELS_DIR ?? join(homedir(), ".cache", "hearth", "models");
  return join(dir, "SmolLM2-135M-Instruct.Q4_1.gguf");
}

/** Peak resident set of this process (VmHWM), MiB. */
export function peakRssMb(): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

export interface Loaded {
  llama: Llama;
  model: LlamaModel;
  modelPath: string;
  threads: number;
  /** Off by default: the textbook attention path, the one hearth's accuracy is compared with. */
  flashAttention: "auto" | boolean;
}

export async function load(opts: Map<string, string>): Promise<Loaded> {
  // Never download or build llama.cpp: the prebuilt CPU binary package is the only one allowed.
  process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = "true";
  const llama = await getLlama({
    gpu: false,
    build: "never",
    usePrebuiltBinaries: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
  });
  const modelPath = opts.get("model") ?? defaultModelPath();
  const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });
  const fa = opts.get("flash-attention") ?? "off";
  if (fa !== "auto" && fa !== "on" && fa !== "off")
    throw new Error(`--flash-attention must be auto, on or off`);
  const flashAttention = fa === "auto" ? "auto" : fa === "on";
  return { llama, model, modelPath, threads: intOpt(opts, "threads", 2), flashAttention };
}

export async function newContext(
  l: Loaded,
  contextSize: number,
  sequences = 1,
  batchSize = 512,
): Promise<LlamaContext> {
  return l.model.createContext({
    contextSize,
    sequences,
    batchSize,
    threads: { ideal: l.threads, min: l.threads },
    flashAttention: l.flashAttention,
    // node-llama-cpp dispatches at once when every sequence has queued tokens; otherwise it would
    // dispatch on the next event-loop turn, often with only the sequences whose sampling finished
    // first. Waiting a few ms for the rest keeps parallel sequences in one llama_decode per step.
    batching: {
      dispatchSchedule: (dispatch: () => void) => void setTimeout(dispatch, sequences > 1 ? 5 : 0),
    },
  });
}

function modelName(path: string): string {
  return path.split("/").pop() ?? path;
}

// ---------------------------------------------------------------- tokenize

export interface TokenizeCase {
  text: string;
  ids: number[];
  idsPlain: number[];
}

function tokenizeOne(model: LlamaModel, text: string): TokenizeCase {
  // node-llama-cpp's tokenize is llama.cpp's common_tokenize(add_special=false, parse_special).
  return {
    text,
    ids: Array.from(model.tokenize(text, true)),
    idsPlain: Array.from(model.tokenize(text, false)),
  };
}

async function cmdTokenize(l: Loaded, opts: Map<string, string>): Promise<object> {
  const file = opts.get("file");
  const texts: string[] = [];
  if (file) {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as unknown;
    const list = Array.isArray(parsed) ? parsed : (parsed as { strings?: unknown; cases?: unknown }).strings;
    if (!Array.isArray(list)) throw new Error(`${file}: expected an array of strings or { strings: [...] }`);
    for (const s of list) {
      const t = typeof s === "string" ? s : (s as { text?: unknown }).text;
      if (typeof t !== "string") throw new Error(`${file}: every entry must be a string or { text }`);
      texts.push(t);
    }
  } else {
    const text = opts.get("text");
    if (text === undefined) throw new Error("tokenize needs --text T or --file F.json");
    texts.push(text);
  }
  return { peer: PEER_NAME, model: modelName(l.modelPath), cases: texts.map((t) => tokenizeOne(l.model, t)) };
}

// ---------------------------------------------------------------- greedy

export interface GreedyResult {
  prompt: string;
  promptIds: number[];
  ids: number[];
  text: string;
}

/** Greedy (argmax) continuation; stops early only if the model emits an end-of-generation token. */
export async function greedyOne(l: Loaded, seq: LlamaContextSequence, prompt: string, n: number) {
  await seq.clearHistory();
  const promptIds = l.model.tokenize(prompt, false);
  const ids: Token[] = [];
  for await (const tok of seq.evaluate(promptIds, { temperature: 0, yieldEogToken: true })) {
    ids.push(tok);
    if (ids.length >= n || l.model.isEogToken(tok)) break;
  }
  const result: GreedyResult = {
    prompt,
    promptIds: Array.from(promptIds),
    ids: Array.from(ids),
    text: l.model.detokenize(ids),
  };
  return result;
}

async function cmdGreedy(l: Loaded, opts: Map<string, string>): Promise<object> {
  const n = intOpt(opts, "tokens", 32);
  const prompts: string[] = [];
  const file = opts.get("file");
  if (file) prompts.push(...(JSON.parse(readFileSync(file, "utf8")) as string[]));
  else {
    const p = opts.get("prompt");
    if (p === undefined) throw new Error("greedy needs --prompt P or --file prompts.json");
    prompts.push(p);
  }
  const ctx = await newContext(l, 512);
  const seq = ctx.getSequence();
  const out: GreedyResult[] = [];
  for (const p of prompts) out.push(await greedyOne(l, seq, p, n));
  await ctx.dispose();
  return { peer: PEER_NAME, model: modelName(l.modelPath), tokens: n, prompts: out };
}

// ---------------------------------------------------------------- top

/** The k largest logits after a raw prompt (or prompt ids), to judge how close a greedy choice was. */
async function cmdTop(l: Loaded, opts: Map<string, string>): Promise<object> {
  const k = intOpt(opts, "k", 5);
  const idsOpt = opts.get("ids");
  const prompt = opts.get("prompt");
  const ids: Token[] = idsOpt
    ? (JSON.parse(idsOpt) as Token[])
    : prompt !== undefined
      ? l.model.tokenize(prompt, false)
      : [];
  if (ids.length === 0) throw new Error("top needs --prompt P or --ids [1,2,3]");
  const ctx = await newContext(l, Math.max(64, ids.length + 8), 1, Math.max(32, ids.length));
  const seq = ctx.getSequence();
  const input = ids.map((tok, i) =>
    i === ids.length - 1
      ? ([tok, { generateNext: { logits: true, options: { temperature: 0 } } }] as const)
      : tok,
  );
  const res = await seq.controlledEvaluate(input as Parameters<typeof seq.controlledEvaluate>[0]);
  const logits = (res[ids.length - 1]?.next as { logits?: Map<Token, number> } | undefined)?.logits;
  if (!logits) throw new Error("no logits");
  const top = [...logits.entries()].sort((a, b) => b[1] - a[1]).slice(0, k);
  await ctx.dispose();
  return {
    peer: PEER_NAME,
    ids,
    top: top.map(([id, logit]) => ({ id, logit, text: l.model.detokenize([id]) })),
  };
}

// ---------------------------------------------------------------- perplexity

export const PPL_METHOD =
  "Text tokenized without BOS and without parsing special tokens; cut into floor(tokens/ctx) " +
  "non-overlapping chunks of ctx tokens (the remainder is dropped); each chunk is evaluated from an " +
  "empty KV cache at positions 0..ctx-1; the tokens at positions ctx/2..ctx-1 of each chunk are scored " +
  "with -log softmax(logits of the previous position)[token] (as llama.cpp's llama-perplexity does); " +
  "ppl = exp(mean of all scored negative log-likelihoods).";

/** Recomputes a few rows' NLL from the full logits row; throws if the cheap path disagrees. */
async function checkAgainstFullLogits(
  seq: LlamaContextSequence,
  chunk: number[],
  first: number,
  tokenNll: number[],
): Promise<void> {
  const rows = [first - 1, first + 44, first + 144, chunk.length - 2];
  await seq.clearHistory();
  const input = chunk.map((tok, i) =>
    rows.includes(i)
      ? ([tok, { generateNext: { logits: true, options: { temperature: 0 } } }] as const)
      : tok,
  );
  const res = await seq.controlledEvaluate(input as Parameters<typeof seq.controlledEvaluate>[0]);
  for (const i of rows) {
    const logits = (res[i]?.next as { logits?: Map<Token, number> } | undefined)?.logits;
    if (!logits || logits.size === 0) throw new Error(`full logits missing at row ${i}`);
    let maxLogit = Number.NEGATIVE_INFINITY;
    for (const v of logits.values()) maxLogit = Math.max(maxLogit, v);
    let sum = 0;
    for (const v of logits.values()) sum += Math.exp(v - maxLogit);
    const target = logits.get(chunk[i + 1] as Token);
    if (target === undefined) throw new Error(`target missing from full logits at row ${i}`);
    const full = -(target - maxLogit - Math.log(sum));
    const cheap = tokenNll[i - (first - 1)] as number;
    if (Math.abs(full - cheap) > 1e-3)
      throw new Error(`NLL self-check failed at row ${i}: ${cheap} vs ${full}`);
  }
}

async function cmdPerplexity(l: Loaded, opts: Map<string, string>): Promise<object> {
  const file = opts.get("file");
  if (!file) throw new Error("perplexity needs --file F (a text file)");
  const ctxTokens = intOpt(opts, "ctx", 512);
  if (ctxTokens % 2 !== 0) throw new Error("--ctx must be even");
  const text = readFileSync(file, "utf8");
  const ids = Array.from(l.model.tokenize(text, false));
  const chunks = Math.floor(ids.length / ctxTokens);
  if (chunks < 1) throw new Error(`text has ${ids.length} tokens, fewer than one chunk of ${ctxTokens}`);
  const ctx = await newContext(l, ctxTokens, 1, ctxTokens);
  const seq = ctx.getSequence();
  const first = ctxTokens / 2;
  const chunkNll: number[] = [];
  const tokenNll: number[] = [];
  let nllSum = 0;
  let scored = 0;
  for (let c = 0; c < chunks; c++) {
    const chunk = ids.slice(c * ctxTokens, (c + 1) * ctxTokens);
    await seq.clearHistory();
    // Row i predicts chunk[i+1]; rows first-1 .. ctx-2 are asked for the target's logit, the max logit
    // and sum(exp(logit - max)), which give log softmax without shipping 49k logits per row to JS
    // (checked against full logits rows on chunk 0 by checkAgainstFullLogits).
    const input = chunk.map((tok, i) => {
      if (i < first - 1 || i >= ctxTokens - 1) return tok;
      const target = chunk[i + 1] as number;
      return [
        tok,
        {
          generateNext: {
            // includeSelected adds the greedy (argmax) token's logit, i.e. the max logit.
            // (includeTop/includeMax do not combine with a filter in 3.22.1.)
            token: true,
            logits: { filter: { tokens: [target], includeSelected: true } },
            totalLogitWeight: true,
            options: { temperature: 0 },
          },
        },
      ] as const;
    });
    const res = await seq.controlledEvaluate(input as Parameters<typeof seq.controlledEvaluate>[0]);
    let chunkSum = 0;
    for (let i = first - 1; i < ctxTokens - 1; i++) {
      const r = res[i];
      const target = chunk[i + 1] as number;
      const next = r?.next as
        | { logits?: Map<Token, number>; totalLogitWeight?: number; probabilities?: unknown }
        | undefined;
      const logits = next?.logits;
      const weight = next?.totalLogitWeight;
      if (!logits || weight === undefined) throw new Error(`no logits for chunk ${c} row ${i}`);
      const targetLogit = logits.get(target as Token);
      let maxLogit = Number.NEGATIVE_INFINITY;
      for (const v of logits.values()) maxLogit = Math.max(maxLogit, v);
      if (targetLogit === undefined) throw new Error(`target logit missing at chunk ${c} row ${i}`);
      const nll = -(targetLogit - maxLogit - Math.log(weight));
      chunkSum += nll;
      tokenNll.push(nll);
    }
    const n = ctxTokens - first;
    if (c === 0) await checkAgainstFullLogits(seq, chunk, first, tokenNll);
    chunkNll.push(chunkSum / n);
    nllSum += chunkSum;
    scored += n;
    process.stderr.write(`[peer] ppl chunk ${c + 1}/${chunks}: ${Math.exp(nllSum / scored).toFixed(4)}\n`);
  }
  await ctx.dispose();
  return {
    peer: PEER_NAME,
    model: modelName(l.modelPath),
    tokens: ids.length,
    ctx: ctxTokens,
    chunks,
    firstScored: first,
    scoredTokens: scored,
    chunkMeanNll: chunkNll,
    tokenNll,
    ppl: Math.exp(nllSum / scored),
    method: PPL_METHOD,
    ids,
  };
}

// ---------------------------------------------------------------- bench

/** Deterministic pseudo-random token ids (xorshift), avoiding the first 256 (special/bytes). */
function randomTokens(n: number, vocab: number, seed: number): Token[] {
  let s = seed >>> 0 || 1;
  const out: Token[] = [];
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out.push((256 + (s % (vocab - 256))) as Token);
  }
  return out;
}

/** pp: one batch of n tokens into an empty cache. */
async function timePrefill(seq: LlamaContextSequence, tokens: Token[]): Promise<number> {
  await seq.clearHistory();
  const t0 = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(tokens);
  return (tokens.length * 1000) / (performance.now() - t0);
}

/** tg: n single-token decode steps from an empty cache (llama-bench's tg), greedy-sampled. */
async function timeGenerate(l: Loaded, seq: LlamaContextSequence, n: number, start: Token): Promise<number> {
  await seq.clearHistory();
  let count = 0;
  const t0 = performance.now();
  let feed: Token[] = [start];
  // node-llama-cpp's own generation loop (one sampler for the whole run); an end-of-generation
  // token restarts it from `start` so every step still decodes one token, like llama-bench.
  while (count < n) {
    let restart: Token[] | null = null;
    for await (const tok of seq.evaluate(feed, { temperature: 0, yieldEogToken: true })) {
      count++;
      if (count >= n) break;
      if (l.model.isEogToken(tok)) {
        restart = [start];
        break;
      }
    }
    if (count < n && restart === null) throw new Error("generation ended early");
    feed = restart ?? feed;
  }
  return (n * 1000) / (performance.now() - t0);
}

async function cmdBench(l: Loaded, opts: Map<string, string>): Promise<object> {
  const pp = intOpt(opts, "pp", 512);
  const tg = intOpt(opts, "tg", 128);
  const reps = intOpt(opts, "reps", 1);
  const ctx = await newContext(l, Math.max(pp, tg) + 16, 1, Math.max(pp, 32));
  const seq = ctx.getSequence();
  const vocab = l.model.fileInsights.tensorInfo?.find((t) => t.name === "token_embd.weight")?.dimensions[1];
  const vocabSize = typeof vocab === "number" ? vocab : Number(vocab ?? 49152);
  const tokens = randomTokens(pp, vocabSize, 42);
  // Warm-up (first decode allocates compute buffers), as llama-bench does.
  await timePrefill(seq, tokens.slice(0, Math.min(32, pp)));
  await timeGenerate(l, seq, 2, tokens[0] as Token);
  const ppTps: number[] = [];
  const tgTps: number[] = [];
  for (let r = 0; r < reps; r++) {
    ppTps.push(await timePrefill(seq, tokens));
    tgTps.push(await timeGenerate(l, seq, tg, tokens[0] as Token));
  }
  await ctx.dispose();
  return {
    peer: PEER_NAME,
    model: modelName(l.modelPath),
    threads: l.threads,
    pp,
    tg,
    pp_tps: ppTps,
    tg_tps: tgTps,
    peak_rss_mb: peakRssMb(),
  };
}

// ---------------------------------------------------------------- parallel

/**
 * n sequences in one context, each prefilling a different prompt then generating `tokens` tokens
 * greedily (EOG ignored so every sequence produces the same count); node-llama-cpp batches the
 * sequences' steps into shared llama_decode calls. agg_tps = all generated tokens / wall time.
 */
async function cmdParallel(l: Loaded, opts: Map<string, string>): Promise<ParallelResult> {
  const n = intOpt(opts, "sequences", 16);
  const tokens = intOpt(opts, "tokens", 128);
  const promptTexts = Array.from(
    { length: n },
    (_, i) => PARALLEL_PROMPTS[i % PARALLEL_PROMPTS.length] as string,
  );
  const prompts = promptTexts.map((p) => l.model.tokenize(p, false));
  const maxPrompt = Math.max(...prompts.map((p) => p.length));
  const ctx = await newContext(l, n * (maxPrompt + tokens + 8), n, 512);
  const seqs = Array.from({ length: n }, () => ctx.getSequence());
  // Count llama_decode calls (through the addon's decodeBatch) to report the mean batch size.
  // (The addon object is sealed, so a Proxy stands in front of it; counting only, no behaviour change.)
  const holder = ctx as unknown as { _ctx: Record<string | symbol, unknown> };
  const addon = holder._ctx;
  let decodeCalls = 0;
  holder._ctx = new Proxy(addon, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (typeof v !== "function") return v;
      if (prop === "decodeBatch") {
        return (...a: unknown[]) => {
          decodeCalls++;
          return v.apply(target, a);
        };
      }
      return v.bind(target);
    },
  });
  const ttft: number[] = [];
  const t0 = performance.now();
  const counts = await Promise.all(
    seqs.map(async (seq, i) => {
      let feed: Token[] = prompts[i] as Token[];
      let count = 0;
      const prompt = prompts[i] as Token[];
      while (count < tokens) {
        const items = feed.map((tok, j) =>
          j === feed.length - 1 ? ([tok, { generateNext: { token: true } }] as const) : tok,
        );
        const res = await seq.controlledEvaluate(items as Parameters<typeof seq.controlledEvaluate>[0]);
        let tok = res[feed.length - 1]?.next?.token as Token | undefined;
        if (tok === undefined || tok === null) throw new Error("generation produced no token");
        if (count === 0) ttft.push(performance.now() - t0);
        if (l.model.isEogToken(tok)) tok = prompt[0] as Token;
        feed = [tok];
        count++;
      }
      return count;
    }),
  );
  const wallMs = performance.now() - t0;
  await ctx.dispose();
  const generated = counts.reduce((a, b) => a + b, 0);
  ttft.sort((a, b) => a - b);
  return {
    peer: PEER_NAME,
    model: modelName(l.modelPath),
    threads: l.threads,
    sequences: n,
    tokens_per_sequence: tokens,
    generated_tokens: generated,
    prompt_tokens: prompts.reduce((a, p) => a + p.length, 0),
    wall_ms: wallMs,
    agg_tps: (generated * 1000) / wallMs,
    ttft_ms_p50: ttft[Math.floor((ttft.length - 1) / 2)] ?? Number.NaN,
    decode_calls: decodeCalls,
    peak_rss_mb: peakRssMb(),
  };
}

// ---------------------------------------------------------------- main

const USAGE = `Usage: bun bench/peers/peer.ts <command> [options]   (prints one JSON object)
  info
  tokenize   --text T | --file strings.json
  greedy     --prompt P | --file prompts.json   [--tokens 32]
  top        --prompt P | --ids '[1,2]'   [--k 5]   the k largest next-token logits
  perplexity --file text.txt [--ctx 512]
  bench      [--pp 512] [--tg 128] [--reps 1]
  parallel   [--sequences 16] [--tokens 128]
Common: --model PATH (default ~/.cache/hearth/models/SmolLM2-135M-Instruct.Q4_1.gguf), --threads N (2),
        --flash-attention auto|on|off (off: llama.cpp's plain attention path)`;

// ---------------------------------------------------------------- lookup (speculative)

export type LookupResult = PeerLookupResult;

/** Greedy completion of `prompt`, `tokens` tokens, in a fresh sequence (with a predictor or not); tokens/s of generation. */
async function timedCompletion(
  ctx: LlamaContext,
  prompt: string,
  tokens: number,
  predictor: InputLookupTokenPredictor | undefined,
): Promise<{ tps: number; text: string; validated: number; refuted: number }> {
  const seq = ctx.getSequence(predictor ? { tokenPredictor: predictor } : {});
  try {
    const completion = new LlamaCompletion({ contextSequence: seq });
    let first = 0;
    let count = 0;
    const started = performance.now();
    const text = await completion.generateCompletion(prompt, {
      maxTokens: tokens,
      temperature: 0,
      onToken: (t) => {
        if (count === 0) first = performance.now();
        count += t.length;
      },
    });
    const ms = performance.now() - (first || started);
    const p = seq.tokenPredictions;
    // Tokens after the first over the time after the first (prefill excluded).
    return { tps: ((count - 1) * 1000) / ms, text, validated: p.validated, refuted: p.refuted };
  } finally {
    seq.dispose();
  }
}

async function cmdLookup(l: Loaded, opts: Map<string, string>): Promise<LookupResult> {
  const prompt = opts.get("prompt");
  if (!prompt) throw new Error("lookup needs --prompt");
  const tokens = intOpt(opts, "tokens", 128);
  const draft = intOpt(opts, "draft", 4);
  const ctx = await newContext(l, 2048, 1);
  try {
    await timedCompletion(ctx, prompt, 8, undefined); // warm-up
    const plain = await timedCompletion(ctx, prompt, tokens, undefined);
    const predictor = new InputLookupTokenPredictor({
      patternLength: { min: 2, max: 4 },
      predictionLength: { min: 1, max: draft },
    });
    const lookup = await timedCompletion(ctx, prompt, tokens, predictor);
    return {
      peer: PEER_NAME,
      tokens,
      plain_tps: plain.tps,
      lookup_tps: lookup.tps,
      validated: lookup.validated,
      refuted: lookup.refuted,
      same_text: plain.text === lookup.text,
    };
  } finally {
    await ctx.dispose();
  }
}

export async function main(argv: string[]): Promise<number> {
  const { cmd, opts } = parseArgs(argv);
  if (cmd === "help" || cmd === "--help" || opts.has("help")) {
    console.log(USAGE);
    return 0;
  }
  const commands: Record<string, (l: Loaded, o: Map<string, string>) => Promise<object>> = {
    info: async (l) => ({
      peer: PEER_NAME,
      model: modelName(l.modelPath),
      modelPath: l.modelPath,
      buildType: l.llama.buildType,
      cpuMathCores: l.llama.cpuMathCores,
      llamaCppRelease: l.llama.llamaCppRelease,
      bos: l.model.tokens.bos,
      eos: l.model.tokens.eos,
      trainContextSize: l.model.trainContextSize,
      sizeBytes: l.model.size,
    }),
    tokenize: cmdTokenize,
    top: cmdTop,
    greedy: cmdGreedy,
    perplexity: cmdPerplexity,
    bench: cmdBench,
    parallel: cmdParallel,
    lookup: cmdLookup,
  };
  const fn = commands[cmd];
  if (!fn) {
    console.error(`unknown command "${cmd}"\n${USAGE}`);
    return 2;
  }
  const l = await load(opts);
  try {
    const out = await fn(l, opts);
    console.log(JSON.stringify(out));
  } finally {
    await l.model.dispose();
    await l.llama.dispose();
  }
  return 0;
}

if (import.meta.main) {
  try {
    process.exitCode = await main(process.argv.slice(2));
  } catch (err) {
    console.error(`peer: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
