// End-to-end speed against llama.cpp: pp512 and tg128 tokens/s for hearth's native model, for the
// native llama.cpp build (llama-bench, best of flash attention off and on) and, as a second
// column, for node-llama-cpp under Bun; same model files, same thread count, in one run. By default
// it runs the default model (SmolLM2 Q4_1) and SmolLM2 Q4_0 (when models.sh made it), and depth rows
// for the first model: pp512 and tg128 with 4,096 tokens already in the context, against
// llama-bench `-d 4096`. Every repetition runs each runtime in a fresh child process, rotating the
// order, so neither warms the other's cache and each peak RSS is its own. The 2-thread read
// bandwidth is measured in the same rotation, for tg_bandwidth_share (bench/bandwidth.ts). Also
// checks hearth's memory floor (peak RSS <= file + KV + 100 MiB).
//   bun run bench e2e [--model REF,...] [--depth N] [--peers llama.cpp,node-llama-cpp] [--quick] [--threads N] [--json]
import { existsSync, statSync } from "node:fs";
import { basename } from "node:path";
import { pullModel } from "../src/gguf/pull.ts";
import { decodeWeightBytes, ReadSweep } from "./bandwidth.ts";
import type { HearthRepResult } from "./e2e-hearth.ts";
import {
  type BenchOptions,
  type Cell,
  loadNote,
  meanSd,
  median,
  ratio,
  runStandalone,
  type Stats,
  type SuiteResult,
  stats,
} from "./lib.ts";
import {
  BUILD_HINT,
  binDir,
  findModel,
  type LlamaBenchResult,
  listModels,
  llamaBench,
  MODELS_HINT,
  PIN,
} from "./peers/llama.cpp/native.ts";
import { PEER_FLASH_ATTENTION, type PeerBenchResult, peerBench } from "./peers/run.ts";

const MEMORY_HEADROOM_MB = 100;
/** The files run besides the default model when --model is not given (when models.sh made them). */
const DEFAULT_EXTRA_MODELS = ["Q4_0"];
const DEFAULT_DEPTH = 4096;
const QUICK_DEPTH = 256;
const NODE_PEER_LABEL = "node-llama-cpp 3.22.1 under Bun";

/** --model REF: a path, a known name (pullModel), or a file of bench/peers/llama.cpp/models/. */
export async function resolveModel(ref: string | undefined): Promise<string> {
  if (ref === undefined || existsSync(ref)) return pullModel(ref);
  const found = findModel(ref);
  if (found !== null) return found;
  try {
    return await pullModel(ref);
  } catch (err) {
    const have = listModels();
    throw new Error(
      `${(err as Error).message}; bench/peers/llama.cpp/models/ has ${have.length > 0 ? have.join(", ") : `nothing (${MODELS_HINT})`}`,
    );
  }
}

/** The run's models: --model's comma-separated list, else the default model and the extra ones found. */
async function resolveModels(ref: string | undefined, notes: string[]): Promise<string[]> {
  if (ref !== undefined) {
    const out: string[] = [];
    for (const r of ref.split(",").filter((x) => x !== "")) out.push(await resolveModel(r));
    return out;
  }
  const out = [await resolveModel(undefined)];
  for (const name of DEFAULT_EXTRA_MODELS) {
    const found = findModel(name);
    if (found !== null) out.push(found);
    else notes.push(`SmolLM2 ${name} rows skipped: not in bench/peers/llama.cpp/models/ (${MODELS_HINT}).`);
  }
  return out;
}

type HearthRep = HearthRepResult | { error: string };

async function hearthRep(
  path: string,
  pp: number,
  tg: number,
  threads: number,
  depth: number,
): Promise<HearthRep> {
  const argv = [process.execPath, `${import.meta.dir}/e2e-hearth.ts`, "--pp", String(pp), "--tg", String(tg)];
  argv.push("--threads", String(threads), "--depth", String(depth), "--model", path);
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) {
    const last =
      err
        .trim()
        .split("\n")
        .filter((l) => /error|Error/.test(l))
        .pop() ?? err.trim().split("\n").pop();
    return { error: `exit ${code}: ${JSON.stringify((last ?? "").slice(0, 300))}` };
  }
  return JSON.parse(out.trim().split("\n").pop() ?? "") as HearthRepResult;
}

function maxOrNull(xs: Array<number | null>): number | null {
  const v = xs.filter((x): x is number => x !== null);
  return v.length > 0 ? Math.max(...v) : null;
}

interface BestOf {
  stats: Stats;
  flashAttention: boolean;
  /** Mean t/s with flash attention off and on. */
  off: number;
  on: number;
}

/** The better of flash attention off and on (higher mean t/s) for one test, over all repetitions. */
function bestOfFlash(runs: LlamaBenchResult[], kind: "pp" | "tg"): BestOf | null {
  const pick = (fa: boolean) =>
    runs.flatMap((r) =>
      r.tests.filter((t) => t.flashAttention === fa && (kind === "pp" ? t.nGen === 0 : t.nPrompt === 0)),
    );
  const off = stats(pick(false).flatMap((t) => t.samplesTs));
  const on = stats(pick(true).flatMap((t) => t.samplesTs));
  if (off.n === 0 && on.n === 0) return null;
  const useOn = on.n > 0 && (off.n === 0 || on.mean > off.mean);
  return { stats: useOn ? on : off, flashAttention: useOn, off: off.mean, on: on.mean };
}

const meanOrNull = (s: Stats | undefined): number | null => (s && s.n > 0 ? s.mean : null);
const tsCell = (s: Stats | undefined): Cell => (s && s.n > 0 ? meanSd(s) : null);
const mb = (v: number | null): Cell => (v === null ? null : Number(v.toFixed(1)));
const pct = (v: number | null): Cell => (v === null ? null : `${(100 * v).toFixed(1)}%`);

/** One model (at one depth) measured by every runtime over the repetitions. */
interface ModelRun {
  path: string;
  /** Summary key suffix: "" for the first model, `_q4_0` for others, `_depth` for the depth run. */
  suffix: string;
  depth: number;
  hearth: HearthRepResult[];
  hearthError: string | null;
  lcpp: LlamaBenchResult[];
  nlc: PeerBenchResult[];
}

/** `_q4_0` for SmolLM2-135M-Instruct.Q4_0.gguf: the type after the last dot, else the whole stem. */
function keySuffix(path: string, taken: Set<string>): string {
  const stem = basename(path).replace(/\.gguf$/i, "");
  const type = stem.includes(".") ? (stem.split(".").pop() as string) : stem;
  let suffix = `_${type.toLowerCase().replace(/[^a-z0-9]+/g, "_")}`;
  if (taken.has(suffix)) suffix = `_${stem.toLowerCase().replace(/[^a-z0-9]+/g, "_")}`;
  taken.add(suffix);
  return suffix;
}

export async function run(opts: BenchOptions): Promise<SuiteResult> {
  const notes: string[] = [];
  const paths = await resolveModels(opts.model, notes);
  const reps = opts.quick ? 1 : 3;
  const pp = opts.quick ? 128 : 512;
  const tg = opts.quick ? 32 : 128;
  const depth = opts.depth ?? (opts.quick ? QUICK_DEPTH : DEFAULT_DEPTH);
  const loadBefore = loadNote();
  const wantNative = opts.peers.includes("llama.cpp");
  const native = wantNative && binDir() !== null;
  if (wantNative && !native) notes.push(`llama.cpp column skipped: ${BUILD_HINT}.`);
  const node = opts.peers.includes("node-llama-cpp");

  const taken = new Set<string>([""]);
  const runs: ModelRun[] = paths.map((path, i) => ({
    path,
    suffix: i === 0 ? "" : keySuffix(path, taken),
    depth: 0,
    hearth: [],
    hearthError: null,
    lcpp: [],
    nlc: [],
  }));
  const depthRun: ModelRun | null =
    depth > 0
      ? {
          path: paths[0] as string,
          suffix: "_depth",
          depth,
          hearth: [],
          hearthError: null,
          lcpp: [],
          nlc: [],
        }
      : null;
  const all = depthRun === null ? runs : [...runs, depthRun];
  const label = (m: ModelRun) => `${basename(m.path)}${m.depth > 0 ? ` at depth ${m.depth}` : ""}`;

  const sweep = new ReadSweep(opts.threads, (opts.quick ? 128 : 512) * 2 ** 20);
  const readGbps: number[] = [];
  const runners: Array<[string, () => Promise<void>]> = [
    ["read bandwidth", async () => void readGbps.push(sweep.gbps(opts.quick ? 2 : 5))],
  ];
  for (const m of all) {
    runners.push([
      `hearth on ${label(m)}`,
      async () => {
        if (m.hearthError !== null) return;
        const h = await hearthRep(m.path, pp, tg, opts.threads, m.depth);
        if ("error" in h) m.hearthError = h.error;
        else m.hearth.push(h);
      },
    ]);
    if (native)
      runners.push([
        `llama.cpp on ${label(m)}`,
        async () =>
          void m.lcpp.push(
            await llamaBench({ model: m.path, pp, tg, threads: opts.threads, reps: 1, depth: m.depth }),
          ),
      ]);
    if (node && m.depth === 0)
      runners.push([
        `node-llama-cpp on ${label(m)}`,
        async () =>
          void m.nlc.push(await peerBench({ pp, tg, reps: 1, threads: opts.threads, model: m.path })),
      ]);
  }
  // A peer that fails (a file its llama.cpp cannot load) loses its cells, not the suite.
  const peerErrors = new Map<string, string>();
  try {
    for (let r = 0; r < reps; r++) {
      // Rotate which runtime goes first so drift in machine load falls on all of them.
      for (let k = 0; k < runners.length; k++) {
        const [who, runOne] = runners[(r + k) % runners.length] as [string, () => Promise<void>];
        if (peerErrors.has(who)) continue;
        await runOne().catch((err: Error) => peerErrors.set(who, JSON.stringify(err.message.slice(0, 300))));
      }
    }
  } finally {
    sweep.close();
  }
  for (const m of all)
    if (m.hearthError !== null) notes.push(`hearth could not run ${label(m)}: ${m.hearthError}`);
  for (const [who, msg] of peerErrors) notes.push(`${who} failed: ${msg}`);
  const loadAfter = loadNote();
  notes.push(`before: ${loadBefore.note}; after: ${loadAfter.note}.`);

  const bw = readGbps.length > 0 ? median(readGbps) : null;
  const buildCommit = all.flatMap((m) => m.lcpp)[0]?.buildCommit ?? null;
  const buildName = buildCommit !== null ? `${PIN}, build ${buildCommit}, GGML_NATIVE, ${binDir()}` : null;
  const lcppCol = `native llama.cpp${buildCommit !== null ? ` ${buildCommit}` : ""} t/s`;
  const nodeCol = `${NODE_PEER_LABEL} t/s`;
  const columns = ["model", "size", "threads", "test", "hearth t/s"];
  if (native) columns.push(lcppCol, "vs llama.cpp");
  if (node) columns.push(nodeCol, "vs node-llama-cpp");
  const rows: Array<Record<string, Cell>> = [];
  const summary: Record<string, number | string | null> = {
    model: basename(paths[0] as string),
    models: paths.map((p) => basename(p)).join(", "),
  };
  const faNotes: string[] = [];

  for (const m of all) {
    const sfx = m.suffix;
    const fileMb = statSync(m.path).size / 2 ** 20;
    const model = basename(m.path).replace(/\.gguf$/i, "");
    const size = `${fileMb.toFixed(1)} MiB`;
    const at = m.depth > 0 ? ` @ d${m.depth}` : "";
    const hPp = stats(m.hearth.flatMap((h) => h.pp_tps));
    const hTg = stats(m.hearth.flatMap((h) => h.tg_tps));
    const lPp = bestOfFlash(m.lcpp, "pp");
    const lTg = bestOfFlash(m.lcpp, "tg");
    const nPp = node && m.depth === 0 ? stats(m.nlc.flatMap((p) => p.pp_tps)) : undefined;
    const nTg = node && m.depth === 0 ? stats(m.nlc.flatMap((p) => p.tg_tps)) : undefined;
    const row = (test: string, h: Stats, l: BestOf | null, n: Stats | undefined) => {
      const cells: Record<string, Cell> = {
        model,
        size,
        threads: opts.threads,
        test,
        "hearth t/s": tsCell(h),
      };
      if (native) {
        cells[lcppCol] = l ? `${meanSd(l.stats)} (fa ${l.flashAttention ? "on" : "off"})` : null;
        cells["vs llama.cpp"] = ratio(meanOrNull(h), l?.stats.mean);
      }
      if (node) {
        cells[nodeCol] = tsCell(n);
        cells["vs node-llama-cpp"] = ratio(meanOrNull(h), meanOrNull(n));
      }
      return cells;
    };
    rows.push(row(`pp${pp}${at}`, hPp, lPp, nPp), row(`tg${tg}${at}`, hTg, lTg, nTg));
    if (native)
      faNotes.push(
        `${label(m)}: pp off ${lPp?.off.toFixed(1) ?? "-"} / on ${lPp?.on.toFixed(1) ?? "-"}, tg off ${lTg?.off.toFixed(1) ?? "-"} / on ${lTg?.on.toFixed(1) ?? "-"} t/s`,
      );
    Object.assign(summary, {
      [`model${sfx}`]: basename(m.path),
      [`hearth_pp512${sfx}`]: meanOrNull(hPp),
      [`hearth_tg128${sfx}`]: meanOrNull(hTg),
      [`llamacpp_pp512${sfx}`]: lPp?.stats.mean ?? null,
      [`llamacpp_tg128${sfx}`]: lTg?.stats.mean ?? null,
      [`llamacpp_pp512${sfx}_flash_attention`]: lPp ? (lPp.flashAttention ? "on" : "off") : null,
      [`llamacpp_tg128${sfx}_flash_attention`]: lTg ? (lTg.flashAttention ? "on" : "off") : null,
      [`ratio_pp512${sfx}`]: ratio(meanOrNull(hPp), lPp?.stats.mean),
      [`ratio_tg128${sfx}`]: ratio(meanOrNull(hTg), lTg?.stats.mean),
      [`hearth_error${sfx}`]: m.hearthError,
    });
    if (m.depth > 0) {
      summary.depth_tokens = m.depth;
      continue;
    }
    // Memory: hearth's floor, and every runtime's peak.
    const hRss = maxOrNull(m.hearth.map((h) => h.peak_rss_mb));
    const lRss = maxOrNull(m.lcpp.map((p) => p.peakRssMb));
    const nRss = maxOrNull(m.nlc.map((p) => p.peak_rss_mb));
    const kvMb = m.hearth[0]?.kv_pool_mb ?? null;
    const floorMb = kvMb === null ? null : fileMb + kvMb + MEMORY_HEADROOM_MB;
    const rssRow: Record<string, Cell> = {
      model,
      size,
      threads: opts.threads,
      test: "peak RSS MiB",
      "hearth t/s": mb(hRss),
    };
    if (native) Object.assign(rssRow, { [lcppCol]: mb(lRss), "vs llama.cpp": ratio(hRss, lRss) });
    if (node) Object.assign(rssRow, { [nodeCol]: mb(nRss), "vs node-llama-cpp": ratio(hRss, nRss) });
    rows.push(rssRow);
    notes.push(
      `${model}: hearth peak RSS ${hRss?.toFixed(1) ?? "?"} MiB vs floor ${floorMb?.toFixed(1) ?? "?"} MiB ` +
        `(file ${fileMb.toFixed(1)} + KV pool ${kvMb?.toFixed(1) ?? "?"} + ${MEMORY_HEADROOM_MB}): ` +
        `${hRss === null || floorMb === null ? "unknown" : hRss <= floorMb ? "within" : "OVER"}.`,
    );
    // The bandwidth bound: weight bytes per token x tokens/s over the read bandwidth of this run.
    const weightBytes = decodeWeightBytes(m.path);
    const share = (tps: number | null | undefined) =>
      tps == null || bw === null ? null : (weightBytes * tps) / (bw * 1e9);
    const shareRow: Record<string, Cell> = {
      model,
      size,
      threads: opts.threads,
      test: `tg${tg} share of read bandwidth`,
      "hearth t/s": pct(share(meanOrNull(hTg))),
    };
    if (native) Object.assign(shareRow, { [lcppCol]: pct(share(lTg?.stats.mean)), "vs llama.cpp": null });
    if (node) Object.assign(shareRow, { [nodeCol]: pct(share(meanOrNull(nTg))), "vs node-llama-cpp": null });
    rows.push(shareRow);
    Object.assign(summary, {
      [`model_file_mb${sfx}`]: fileMb,
      [`weight_bytes_per_token${sfx}`]: weightBytes,
      [`tg_bandwidth_share${sfx}`]: share(meanOrNull(hTg)),
      [`llamacpp_tg_bandwidth_share${sfx}`]: share(lTg?.stats.mean),
      [`nodellamacpp_pp512${sfx}`]: meanOrNull(nPp),
      [`nodellamacpp_tg128${sfx}`]: meanOrNull(nTg),
      [`hearth_peak_rss_mb${sfx}`]: hRss,
      [`llamacpp_peak_rss_mb${sfx}`]: lRss,
      [`nodellamacpp_peak_rss_mb${sfx}`]: nRss,
      [`hearth_rss_floor_mb${sfx}`]: floorMb,
      [`hearth_rss_within_floor${sfx}`]:
        hRss === null || floorMb === null ? null : hRss <= floorMb ? "yes" : "no",
    });
  }

  if (native)
    notes.push(
      `llama.cpp: native llama-bench (${buildName ?? PIN}, OMP_WAIT_POLICY=${process.env.OMP_WAIT_POLICY ?? "unset"}); f16 KV; each test's better mean of flash attention off and on (${faNotes.join("; ")}).`,
    );
  if (node)
    notes.push(
      `${NODE_PEER_LABEL}: llama.cpp's prebuilt CPU binary through node-llama-cpp's N-API addon, flash attention ${PEER_FLASH_ATTENTION}, f16 KV; not llama.cpp at its best; no depth rows.`,
    );
  if (depthRun !== null)
    notes.push(
      `Depth rows (@ d${depth}): pp${pp} and tg${tg} after ${depth} tokens already in the context (prefilled untimed), hearth against llama-bench -d ${depth}; the first model only.`,
    );
  notes.push(
    `tg${tg} share of read bandwidth: weight bytes read per token (every tensor but the token embedding, of which one row; ${((summary.weight_bytes_per_token as number) / 2 ** 20).toFixed(1)} MiB for the first model) x tokens/s / the ${opts.threads}-thread read bandwidth of this run (median ${bw?.toFixed(1) ?? "?"} GB/s of ${readGbps.length} sweeps in the rotation).`,
  );
  notes.unshift(
    `${reps} repetition(s), each runtime in a fresh child process, order rotated; ${opts.threads} threads; models ${paths.join(", ")}.`,
  );
  if (opts.quick)
    notes.push(`--quick: pp${pp}/tg${tg}, depth ${depth} and 1 repetition; keys keep the pp512/tg128 names.`);

  Object.assign(summary, {
    peer_errors: peerErrors.size > 0 ? JSON.stringify(Object.fromEntries(peerErrors)) : null,
    llamacpp_build: buildName,
    llamacpp_omp_wait_policy: process.env.OMP_WAIT_POLICY ?? null,
    nodellamacpp_peer: node ? NODE_PEER_LABEL : null,
    [`read_gbps_${opts.threads}t`]: bw,
    reps,
    threads: opts.threads,
    loadavg_1m_before: loadBefore.load1,
    loadavg_1m_after: loadAfter.load1,
    quick: opts.quick ? "yes (sizes and repetitions reduced; not for reporting)" : "no",
  });
  return {
    suite: "e2e",
    columns,
    rows,
    summary,
    notes,
    raw: {
      read_gbps: readGbps,
      runs: all.map((m) => ({
        model: basename(m.path),
        depth: m.depth,
        hearth: m.hearth,
        llamacpp: m.lcpp,
        nodellamacpp: m.nlc,
      })),
    },
  };
}

if (import.meta.main) await runStandalone(run);
