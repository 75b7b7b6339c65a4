// The native llama.cpp peer: the tools that bench/peers/llama.cpp/build.sh builds from the
// llama-cpp-python 0.3.36 source distribution (vendor/llama.cpp, GGML_NATIVE on, static).
// Benchmarks and fixture scripts find its binaries here; nothing else in the tree uses it.
// The build is never started from here (it takes minutes): when it is absent, callers say so
// with BUILD_HINT and carry on without the column.
import { existsSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const HERE = import.meta.dir;
export const MODELS_DIR = join(HERE, "models");
export const PIN = "llama-cpp-python 0.3.36 sdist";
export const BUILD_HINT =
  "native llama.cpp peer not built: run `bash bench/peers/llama.cpp/build.sh` (5-20 min on 2 cores)";
export const MODELS_HINT = "make the model variants with `bash bench/peers/llama.cpp/models.sh`";

/** Where the tools are: $LLAMACPP_BUILD_DIR/bin, else bench/peers/llama.cpp/build/bin; null if absent. */
export function binDir(): string | null {
  const build = process.env.LLAMACPP_BUILD_DIR ?? join(HERE, "build");
  const bin = join(build, "bin");
  return existsSync(join(bin, "llama-bench")) ? bin : null;
}

/** The path of one tool; throws with BUILD_HINT when the build (or that tool) is missing. */
export function tool(name: string): string {
  const dir = binDir();
  const path = dir === null ? null : join(dir, name);
  if (path === null || !existsSync(path)) throw new Error(`${BUILD_HINT} (${name} missing)`);
  return path;
}

export interface ToolRun {
  stdout: string;
  stderr: string;
  /** Peak resident set of the child (getrusage), MiB. */
  peakRssMb: number | null;
}

/** Runs one tool to completion; throws with the tail of its stderr when it fails. */
export async function runTool(name: string, args: string[]): Promise<ToolRun> {
  const proc = Bun.spawn([tool(name), ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) {
    const tail = stderr.trim().split("\n").slice(-5).join("\n");
    throw new Error(`${name} failed (exit ${code}): ${JSON.stringify(tail)}`);
  }
  const rss = proc.resourceUsage()?.maxRSS;
  return { stdout, stderr, peakRssMb: rss ? rss / 2 ** 20 : null };
}

export interface LlamaBenchTest {
  flashAttention: boolean;
  nPrompt: number;
  nGen: number;
  /** Tokens already in the context (`-d`). */
  nDepth: number;
  samplesTs: number[];
}

export interface LlamaBenchResult {
  buildCommit: string;
  modelType: string;
  modelSizeBytes: number;
  threads: number;
  tests: LlamaBenchTest[];
  peakRssMb: number | null;
}

/**
 * One llama-bench process: pp `pp` and tg `tg` with flash attention off and on (`-fa 0,1`),
 * `reps` repetitions each after llama-bench's own warm-up, f16 KV, JSON output; with `depth`,
 * after that many tokens already in the context (`-d`).
 */
export async function llamaBench(opts: {
  model: string;
  pp: number;
  tg: number;
  threads: number;
  reps: number;
  depth?: number;
}): Promise<LlamaBenchResult> {
  const args = ["-m", opts.model, "-t", String(opts.threads), "-p", String(opts.pp), "-n", String(opts.tg)];
  args.push("-fa", "0,1", "-r", String(opts.reps), "-o", "json");
  if (opts.depth !== undefined && opts.depth > 0) args.push("-d", String(opts.depth));
  const r = await runTool("llama-bench", args);
  const rows = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
  if (!Array.isArray(rows) || rows.length === 0) throw new Error("llama-bench printed no results");
  const first = rows[0] as Record<string, unknown>;
  return {
    buildCommit: String(first.build_commit ?? "?"),
    modelType: String(first.model_type ?? "?"),
    modelSizeBytes: Number(first.model_size ?? 0),
    threads: Number(first.n_threads ?? opts.threads),
    tests: rows.map((row) => ({
      flashAttention: row.flash_attn === true || row.flash_attn === 1 || row.flash_attn === "on",
      nPrompt: Number(row.n_prompt),
      nGen: Number(row.n_gen),
      nDepth: Number(row.n_depth ?? 0),
      samplesTs: (row.samples_ts as number[]).map(Number),
    })),
    peakRssMb: r.peakRssMb,
  };
}

/** The .gguf files in bench/peers/llama.cpp/models/ (empty when models.sh has not run). */
export function listModels(): string[] {
  if (!existsSync(MODELS_DIR)) return [];
  return readdirSync(MODELS_DIR)
    .filter((f) => f.endsWith(".gguf") && statSync(join(MODELS_DIR, f)).isFile())
    .sort();
}

/** Short names for the models folder: `gemma3-270m` is the Q4_K_M file its package ships. */
const ALIASES: Record<string, string> = {
  "gemma3-270m": "gemma-3-270m.Q4_K_M.gguf",
  "gemma-3-270m": "gemma-3-270m.Q4_K_M.gguf",
};

/**
 * A model of the models folder by name: the file name with or without `.gguf`, a SmolLM2 type
 * (`Q4_K_M` means SmolLM2-135M-Instruct.Q4_K_M.gguf), or an alias; case-insensitive. Null if none.
 */
export function findModel(ref: string): string | null {
  const want = ref.toLowerCase().replace(/\.gguf$/, "");
  const alias = ALIASES[want];
  for (const f of listModels()) {
    const stem = f.toLowerCase().replace(/\.gguf$/, "");
    if (stem === want || stem === `smollm2-135m-instruct.${want}` || f === alias) return join(MODELS_DIR, f);
  }
  return null;
}

/** The commit llama-server says it was built from (`--version`), or null when it does not say. */
export async function llamaServerCommit(): Promise<string | null> {
  const r = await runTool("llama-server", ["--version"]).catch(() => null);
  return r === null ? null : (/commit ([0-9a-f]+)/.exec(`${r.stdout}\n${r.stderr}`)?.[1] ?? null);
}

export interface LlamaServer {
  url: string;
  /** Stops the server; resolves to its peak RSS in MiB (getrusage), or null. */
  stop(): Promise<number | null>;
}

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/**
 * Starts `llama-server` on 127.0.0.1 with `parallel` slots (`-np`), no prompt cache (every round
 * sends the same prompts), `ctxPerSlot` tokens of KV per slot, and waits for /health.
 */
export async function startLlamaServer(opts: {
  model: string;
  threads: number;
  parallel: number;
  ctxPerSlot: number;
}): Promise<LlamaServer> {
  const port = await freePort();
  const log = join(tmpdir(), `hearth-bench-llama-server-${process.pid}-${port}.log`);
  const args = ["-m", opts.model, "-t", String(opts.threads), "-np", String(opts.parallel)];
  args.push("-c", String(opts.parallel * opts.ctxPerSlot), "--host", "127.0.0.1", "--port", String(port));
  args.push("--no-cache-prompt", "--cache-ram", "0", "--no-webui");
  const proc = Bun.spawn([tool("llama-server"), ...args], {
    stdin: "ignore",
    stdout: Bun.file(log),
    stderr: Bun.file(log),
  });
  const url = `http://127.0.0.1:${port}`;
  const tail = async () =>
    JSON.stringify(
      (
        (await Bun.file(log)
          .text()
          .catch(() => "")) as string
      )
        .trim()
        .split("\n")
        .slice(-5)
        .join("\n"),
    );
  const stop = async (): Promise<number | null> => {
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await proc.exited;
    clearTimeout(timer);
    const rss = proc.resourceUsage()?.maxRSS;
    await Bun.file(log)
      .delete()
      .catch(() => {});
    return rss ? rss / 2 ** 20 : null;
  };
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (proc.exitCode !== null) {
      const t = await tail();
      await stop();
      throw new Error(`llama-server exited (code ${proc.exitCode}): ${t}`);
    }
    const ok = await fetch(`${url}/health`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) return { url, stop };
    if (Date.now() > deadline) {
      const t = await tail();
      await stop();
      throw new Error(`llama-server did not become healthy in 120 s: ${t}`);
    }
    await Bun.sleep(200);
  }
}
