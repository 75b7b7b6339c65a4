// Shared benchmark plumbing: the suite contract, llama-bench style tables, stats, peak RSS.
//
// A suite is bench/<name>.ts exporting `run(opts): Promise<SuiteResult>`. It may also be run
// directly (`bun bench/<name>.ts [--json]`) through `runStandalone`.

export interface BenchOptions {
  json: boolean;
  /** Fewer repetitions / smaller sizes (CI smoke runs); figures are not for reporting. */
  quick: boolean;
  threads: number;
  /** `--model REF`: the model file for suites that take one (a path, a known name, or a file of
   * bench/peers/llama.cpp/models/ by name); undefined means hearth's default model. */
  model?: string;
  /** `--peers LIST`: which peer columns to run (default: llama.cpp,node-llama-cpp). */
  peers: string[];
  /** `--minutes N`: how long a timed suite (soak) runs. */
  minutes?: number;
  /** `--depth N`: tokens already in the context for e2e's depth rows (0: none; undefined: the suite's default). */
  depth?: number;
}

export const PEERS = ["llama.cpp", "node-llama-cpp"] as const;

export type Cell = string | number | null;

export interface SuiteResult {
  suite: string;
  /** Column order of the table. */
  columns: string[];
  rows: Array<Record<string, Cell>>;
  /** The headline figures, flat keys (the ones the issues name, e.g. hearth_tg128). */
  summary: Record<string, number | string | null>;
  notes?: string[];
  /** Every repetition's raw figures, saved with the run (bench/results.ts), never printed. */
  raw?: unknown;
}

export function parseBenchArgs(argv: string[]): { suites: string[]; opts: BenchOptions } {
  const suites: string[] = [];
  const opts: BenchOptions = {
    json: false,
    quick: false,
    threads: Number(process.env.HEARTH_THREADS ?? 2),
    peers: [...PEERS],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--json") opts.json = true;
    else if (a === "--quick") opts.quick = true;
    else if (a === "--threads" || a === "-t") opts.threads = Number(argv[++i]);
    else if (a === "--model" || a === "-m") {
      const v = argv[++i];
      if (v === undefined || v === "") throw new Error("--model needs a path or a name");
      opts.model = v;
    } else if (a === "--minutes") {
      const v = Number(argv[++i]);
      if (!(v > 0) || !Number.isFinite(v)) throw new Error("--minutes must be a positive number");
      opts.minutes = v;
    } else if (a === "--depth") {
      opts.depth = Number(argv[++i]);
      if (!Number.isInteger(opts.depth) || opts.depth < 0) throw new Error("--depth must be an integer >= 0");
    } else if (a === "--peers") {
      opts.peers = (argv[++i] ?? "").split(",").filter((p) => p !== "" && p !== "none");
      const bad = opts.peers.find((p) => !(PEERS as readonly string[]).includes(p));
      if (bad !== undefined) throw new Error(`unknown peer "${bad}"; peers: ${PEERS.join(", ")}, none`);
    } else if (a.startsWith("-")) throw new Error(`unknown option ${a}`);
    else suites.push(a);
  }
  if (!Number.isInteger(opts.threads) || opts.threads < 1)
    throw new Error("--threads must be a positive integer");
  return { suites, opts };
}

function fmt(v: Cell): string {
  if (v === null) return "-";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a >= 100 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toPrecision(3);
  }
  return v;
}

/** A markdown table like llama-bench prints. */
export function formatTable(columns: string[], rows: Array<Record<string, Cell>>): string {
  const cells = rows.map((r) => columns.map((c) => fmt(r[c] ?? null)));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => (row[i] as string).length)));
  const line = (vals: string[]) =>
    `| ${vals.map((v, i) => (i === 0 ? v.padEnd(widths[i] as number) : v.padStart(widths[i] as number))).join(" | ")} |`;
  const sep = `| ${widths.map((w, i) => (i === 0 ? `:${"-".repeat(w - 1)}` : `${"-".repeat(w - 1)}:`)).join(" | ")} |`;
  return [line(columns), sep, ...cells.map(line)].join("\n");
}

export function printSuite(r: SuiteResult): void {
  console.log(`\n## ${r.suite}\n`);
  console.log(formatTable(r.columns, r.rows));
  for (const n of r.notes ?? []) console.log(`\n${n}`);
}

export interface Stats {
  mean: number;
  sd: number;
  min: number;
  max: number;
  n: number;
}

export function stats(xs: number[]): Stats {
  const n = xs.length;
  if (n === 0) return { mean: Number.NaN, sd: Number.NaN, min: Number.NaN, max: Number.NaN, n };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, sd, min: Math.min(...xs), max: Math.max(...xs), n };
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const idx = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[idx] as number;
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** "12.34 ± 0.56" as llama-bench shows t/s. */
export function meanSd(s: Stats): string {
  return `${fmt(s.mean)} ± ${fmt(s.sd)}`;
}

export function ratio(ours: number | null | undefined, peer: number | null | undefined): number | null {
  if (ours == null || peer == null || !Number.isFinite(ours) || !Number.isFinite(peer) || peer === 0)
    return null;
  return ours / peer;
}

/** Peak RSS of this process in bytes (Linux VmHWM). */
export function peakRssBytes(pid: number | "self" = "self"): number | null {
  try {
    const status = require("node:fs").readFileSync(`/proc/${pid}/status`, "utf8") as string;
    const m = /VmHWM:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/**
 * A note on how busy the machine is (1-minute load average against the core count): llama.cpp's
 * worker threads spin at each barrier, so on an oversubscribed machine its figures collapse (tens
 * of times slower) while hearth's only slow down; such a run says more about the load than the code.
 */
export function loadNote(): { load1: number | null; cores: number; note: string } {
  const cores = navigator.hardwareConcurrency;
  let load1: number | null = null;
  try {
    load1 = Number((require("node:fs").readFileSync("/proc/loadavg", "utf8") as string).split(" ")[0]);
  } catch {}
  const busy = load1 !== null && load1 > cores;
  const note =
    load1 === null
      ? "machine load unknown"
      : `machine load ${load1.toFixed(2)} (1-min average) on ${cores} cores${busy ? ": OVERSUBSCRIBED, peer figures are not meaningful (llama.cpp's threads spin at barriers)" : ""}`;
  return { load1, cores, note };
}

/** Runs one suite file on its own: `if (import.meta.main) await runStandalone(run)`. */
export async function runStandalone(run: (o: BenchOptions) => Promise<SuiteResult>): Promise<void> {
  const { opts } = parseBenchArgs(process.argv.slice(2));
  const r = await run(opts);
  printSuite(r);
  if (opts.json) console.log(JSON.stringify({ suite: r.suite, ...r.summary, rows: r.rows }));
}
