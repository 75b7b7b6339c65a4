// End-to-end speed against llama.cpp: pp512 and tg128 tokens/s for hearth's native model, for the
// native llama.cpp build (llama-bench, best of flash attention off and on) and, as a second
// column, for node-llama-cpp under Bun; same model file, same thread count, in one run. Every
// repetition runs each runtime in a fresh child process, rotating the order, so neither warms the
// other's cache and each peak RSS is its own. Also checks hearth's memory floor (peak RSS <= file
// + KV + 100 MiB).
//   bun run bench e2e [--model REF] [--peers llama.cpp,node-llama-cpp] [--quick] [--threads N] [--json]
import { existsSync, statSync } from "node:fs";
import { basename } from "node:path";
import { pullModel } from "../src/gguf/pull.ts";
import type { HearthRepResult } from "./e2e-hearth.ts";
import {
  type BenchOptions,
  type Cell,
  loadNote,
  meanSd,
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

type HearthRep = HearthRepResult | { error: string };

async function hearthRep(path: string, pp: number, tg: number, threads: number): Promise<HearthRep> {
  const argv = [process.execPath, `${import.meta.dir}/e2e-hearth.ts`, "--pp", String(pp), "--tg", String(tg)];
  argv.push("--threads", String(threads), "--model", path);
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

export async function run(opts: BenchOptions): Promise<SuiteResult> {
  const path = await resolveModel(opts.model);
  const reps = opts.quick ? 1 : 3;
  const pp = opts.quick ? 128 : 512;
  const tg = opts.quick ? 32 : 128;
  const notes: string[] = [];
  const loadBefore = loadNote();
  const wantNative = opts.peers.includes("llama.cpp");
  const native = wantNative && binDir() !== null;
  if (wantNative && !native) notes.push(`llama.cpp column skipped: ${BUILD_HINT}.`);
  const node = opts.peers.includes("node-llama-cpp");

  const hearth: HearthRepResult[] = [];
  let hearthError: string | null = null;
  const lcpp: LlamaBenchResult[] = [];
  const nlc: PeerBenchResult[] = [];
  const runners: Array<[string, () => Promise<void>]> = [
    [
      "hearth",
      async () => {
        if (hearthError !== null) return;
        const h = await hearthRep(path, pp, tg, opts.threads);
        if ("error" in h) hearthError = h.error;
        else hearth.push(h);
      },
    ],
  ];
  if (native)
    runners.push([
      "llama.cpp",
      async () => void lcpp.push(await llamaBench({ model: path, pp, tg, threads: opts.threads, reps: 1 })),
    ]);
  if (node)
    runners.push([
      "node-llama-cpp",
      async () => void nlc.push(await peerBench({ pp, tg, reps: 1, threads: opts.threads, model: path })),
    ]);
  // A peer that fails (a file its llama.cpp cannot load) loses its column, not the suite.
  const peerErrors = new Map<string, string>();
  for (let r = 0; r < reps; r++) {
    // Rotate which runtime goes first so drift in machine load falls on all of them.
    for (let k = 0; k < runners.length; k++) {
      const [who, runOne] = runners[(r + k) % runners.length] as [string, () => Promise<void>];
      if (peerErrors.has(who)) continue;
      await runOne().catch((err: Error) => peerErrors.set(who, JSON.stringify(err.message.slice(0, 300))));
    }
  }
  if (hearthError !== null) notes.push(`hearth could not run this model: ${hearthError}`);
  for (const [who, msg] of peerErrors) notes.push(`${who} failed: ${msg}`);
  const loadAfter = loadNote();
  notes.push(`before: ${loadBefore.note}; after: ${loadAfter.note}.`);

  const hPp = stats(hearth.flatMap((h) => h.pp_tps));
  const hTg = stats(hearth.flatMap((h) => h.tg_tps));
  const lPp = bestOfFlash(lcpp, "pp");
  const lTg = bestOfFlash(lcpp, "tg");
  const nPp = node ? stats(nlc.flatMap((p) => p.pp_tps)) : undefined;
  const nTg = node ? stats(nlc.flatMap((p) => p.tg_tps)) : undefined;
  const hRss = maxOrNull(hearth.map((h) => h.peak_rss_mb));
  const lRss = maxOrNull(lcpp.map((p) => p.peakRssMb));
  const nRss = maxOrNull(nlc.map((p) => p.peak_rss_mb));
  const fileMb = statSync(path).size / 2 ** 20;
  const kvMb = hearth[0]?.kv_pool_mb ?? null;
  const floorMb = kvMb === null ? null : fileMb + kvMb + MEMORY_HEADROOM_MB;
  const model = basename(path).replace(/\.gguf$/i, "");
  const size = `${fileMb.toFixed(1)} MiB`;
  const lcppCol = "llama.cpp t/s";
  const nodeCol = `${NODE_PEER_LABEL} t/s`;
  const columns = ["model", "size", "threads", "test", "hearth t/s"];
  if (native) columns.push(lcppCol, "vs llama.cpp");
  if (node) columns.push(nodeCol, "vs node-llama-cpp");
  const row = (test: string, h: Stats, l: BestOf | null, n: Stats | undefined) => {
    const cells: Record<string, Cell> = { model, size, threads: opts.threads, test, "hearth t/s": tsCell(h) };
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
  const rssRow: Record<string, Cell> = {
    model,
    size,
    threads: opts.threads,
    test: "peak RSS MiB",
    "hearth t/s": mb(hRss),
  };
  if (native) Object.assign(rssRow, { [lcppCol]: mb(lRss), "vs llama.cpp": ratio(hRss, lRss) });
  if (node) Object.assign(rssRow, { [nodeCol]: mb(nRss), "vs node-llama-cpp": ratio(hRss, nRss) });

  const buildName = lcpp[0] ? `${PIN}, build ${lcpp[0].buildCommit}, GGML_NATIVE, ${binDir()}` : null;
  if (native)
    notes.push(
      `llama.cpp: native llama-bench (${buildName}, OMP_WAIT_POLICY=${process.env.OMP_WAIT_POLICY ?? "unset"}); f16 KV; each test's better mean of flash attention off and on ` +
        `(pp off ${lPp?.off.toFixed(1) ?? "-"} / on ${lPp?.on.toFixed(1) ?? "-"}, tg off ${lTg?.off.toFixed(1) ?? "-"} / on ${lTg?.on.toFixed(1) ?? "-"} t/s).`,
    );
  if (node)
    notes.push(
      `${NODE_PEER_LABEL}: llama.cpp's prebuilt CPU binary through node-llama-cpp's N-API addon, flash attention ${PEER_FLASH_ATTENTION}, f16 KV; not llama.cpp at its best.`,
    );
  notes.unshift(
    `${reps} repetition(s), each runtime in a fresh child process, order rotated; ${opts.threads} threads; model ${path}.`,
  );
  notes.push(
    `hearth peak RSS ${hRss?.toFixed(1) ?? "?"} MiB vs floor ${floorMb?.toFixed(1) ?? "?"} MiB ` +
      `(file ${fileMb.toFixed(1)} + KV pool ${kvMb?.toFixed(1) ?? "?"} + ${MEMORY_HEADROOM_MB}): ` +
      `${hRss === null || floorMb === null ? "unknown" : hRss <= floorMb ? "within" : "OVER"}.`,
  );
  if (opts.quick) notes.push(`--quick: pp${pp}/tg${tg} and 1 repetition; keys keep the pp512/tg128 names.`);

  return {
    suite: "e2e",
    columns,
    rows: [row(`pp${pp}`, hPp, lPp, nPp), row(`tg${tg}`, hTg, lTg, nTg), rssRow],
    summary: {
      model: basename(path),
      model_file_mb: fileMb,
      hearth_pp512: meanOrNull(hPp),
      hearth_tg128: meanOrNull(hTg),
      hearth_error: hearthError,
      peer_errors: peerErrors.size > 0 ? JSON.stringify(Object.fromEntries(peerErrors)) : null,
      llamacpp_pp512: lPp?.stats.mean ?? null,
      llamacpp_tg128: lTg?.stats.mean ?? null,
      llamacpp_pp512_flash_attention: lPp ? (lPp.flashAttention ? "on" : "off") : null,
      llamacpp_tg128_flash_attention: lTg ? (lTg.flashAttention ? "on" : "off") : null,
      llamacpp_build: buildName,
      llamacpp_omp_wait_policy: process.env.OMP_WAIT_POLICY ?? null,
      ratio_pp512: ratio(meanOrNull(hPp), lPp?.stats.mean),
      ratio_tg128: ratio(meanOrNull(hTg), lTg?.stats.mean),
      nodellamacpp_pp512: meanOrNull(nPp),
      nodellamacpp_tg128: meanOrNull(nTg),
      nodellamacpp_peer: node ? NODE_PEER_LABEL : null,
      hearth_peak_rss_mb: hRss,
      llamacpp_peak_rss_mb: lRss,
      nodellamacpp_peak_rss_mb: nRss,
      hearth_rss_floor_mb: floorMb,
      hearth_rss_within_floor: hRss === null || floorMb === null ? null : hRss <= floorMb ? "yes" : "no",
      reps,
      threads: opts.threads,
      loadavg_1m_before: loadBefore.load1,
      loadavg_1m_after: loadAfter.load1,
      quick: opts.quick ? "yes (sizes and repetitions reduced; not for reporting)" : "no",
    },
    notes,
    raw: { hearth, llamacpp: lcpp, nodellamacpp: nlc },
  };
}

if (import.meta.main) await runStandalone(run);
