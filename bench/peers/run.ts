// Runs the peer CLI (peer.ts, node-llama-cpp) as a child process after an idempotent install,
// so benchmarks and fixture scripts get its JSON and its own peak RSS, apart from hearth's.
// This module does not import node-llama-cpp itself: the rest of the tree type-checks without it.
import { spawnSync } from "node:child_process";
import type { ParallelResult } from "./parallel.ts";

const PEERS_DIR = import.meta.dir;
export const PEER_SCRIPT = `${PEERS_DIR}/peer.ts`;

/** Flash attention setting of the peer in speed benchmarks: node-llama-cpp's default ("auto"). */
export const PEER_FLASH_ATTENTION = "auto";

let installed = false;

/** Installs node-llama-cpp into bench/peers/node_modules if needed (bench/peers/install.sh). */
export function ensurePeerInstalled(): void {
  if (installed) return;
  const r = spawnSync("bash", [`${PEERS_DIR}/install.sh`], { stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0) throw new Error(`bench/peers/install.sh failed (exit ${r.status ?? r.signal})`);
  installed = true;
}

/** The command line that runs peer.ts: the same Bun that runs us. */
export function peerCommand(args: string[]): string[] {
  return [process.execPath, PEER_SCRIPT, ...args];
}

/**
 * Runs `peer.ts <args>` and returns its JSON output (the last stdout line).
 * stderr (progress) is passed through. Throws with the child's message on failure.
 */
export async function runPeer<T = Record<string, unknown>>(
  args: string[],
  opts: { quiet?: boolean } = {},
): Promise<T> {
  ensurePeerInstalled();
  const proc = Bun.spawn(peerCommand(args), {
    stdout: "pipe",
    stderr: opts.quiet ? "pipe" : "inherit",
    env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: "true" },
  });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  if (code !== 0) {
    const err =
      opts.quiet && proc.stderr instanceof ReadableStream ? await new Response(proc.stderr).text() : "";
    throw new Error(`peer ${args[0]} failed (exit ${code})${err ? `: ${err.trim()}` : ""}`);
  }
  const line = out.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`peer ${args[0]}: output is not JSON: ${line.slice(0, 200)}`);
  }
}

export type PeerParallelResult = ParallelResult;

/**
 * The peer side of the serving benchmark (issue 5): node-llama-cpp with `sequences` parallel
 * sequences in one context, each generating `tokens` tokens; aggregate generated tokens/s.
 */
export function peerParallel(opts: {
  sequences?: number;
  tokens?: number;
  threads?: number;
  model?: string;
}): Promise<PeerParallelResult> {
  const args = [
    "parallel",
    "--sequences",
    String(opts.sequences ?? 16),
    "--tokens",
    String(opts.tokens ?? 128),
    "--threads",
    String(opts.threads ?? 2),
    "--flash-attention",
    PEER_FLASH_ATTENTION,
  ];
  if (opts.model) args.push("--model", opts.model);
  return runPeer<PeerParallelResult>(args);
}

export interface PeerBenchResult {
  peer: string;
  model: string;
  threads: number;
  pp: number;
  tg: number;
  pp_tps: number[];
  tg_tps: number[];
  peak_rss_mb: number | null;
}

/** One peer process measuring pp/tg tokens/s (llama-bench style) and reporting its peak RSS. */
export function peerBench(opts: {
  pp: number;
  tg: number;
  reps?: number;
  threads: number;
  model?: string;
}): Promise<PeerBenchResult> {
  const args = [
    "bench",
    "--pp",
    String(opts.pp),
    "--tg",
    String(opts.tg),
    "--reps",
    String(opts.reps ?? 1),
    "--threads",
    String(opts.threads),
    "--flash-attention",
    PEER_FLASH_ATTENTION,
  ];
  if (opts.model) args.push("--model", opts.model);
  return runPeer<PeerBenchResult>(args);
}

/** What `peer.ts lookup` prints (declared here so the benchmarks need no node-llama-cpp types). */
export interface PeerLookupResult {
  peer: string;
  tokens: number;
  plain_tps: number;
  lookup_tps: number;
  validated: number;
  refuted: number;
  same_text: boolean;
}

/** The peer side of the speculative benchmark: greedy completion plain and with prompt lookup. */
export function peerLookup(opts: {
  prompt: string;
  tokens: number;
  draft: number;
  threads: number;
  model?: string;
}): Promise<PeerLookupResult> {
  const args = [
    "lookup",
    "--prompt",
    opts.prompt,
    "--tokens",
    String(opts.tokens),
    "--draft",
    String(opts.draft),
  ];
  args.push("--threads", String(opts.threads), "--flash-attention", PEER_FLASH_ATTENTION);
  if (opts.model) args.push("--model", opts.model);
  return runPeer<PeerLookupResult>(args);
}
