// End-to-end speed against llama.cpp: pp512 and tg128 tokens/s for hearth's native model and for
// node-llama-cpp, same model file, same thread count, in one run. Every repetition runs each
// runtime in a fresh child process, alternating hearth / peer, so neither warms the other's cache
// and each peak RSS is its own. Also checks hearth's memory floor (peak RSS <= file + KV + 100 MiB).
//   bun run bench e2e [--quick] [--threads N] [--json]
import { pullModel } from "../src/gguf/pull.ts";
import type { HearthRepResult } from "./e2e-hearth.ts";
import { type BenchOptions, meanSd, ratio, runStandalone, type SuiteResult, stats } from "./lib.ts";
import { PEER_FLASH_ATTENTION, type PeerBenchResult, peerBench } from "./peers/run.ts";

const MEMORY_HEADROOM_MB = 100;

async function hearthRep(path: string, pp: number, tg: number, threads: number): Promise<HearthRepResult> {
  const proc = Bun.spawn(
    [
      process.execPath,
      `${import.meta.dir}/e2e-hearth.ts`,
      "--pp",
      String(pp),
      "--tg",
      String(tg),
      "--threads",
      String(threads),
      "--model",
      path,
    ],
    { stdout: "pipe", stderr: "inherit" },
  );
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  if (code !== 0) throw new Error(`hearth child failed (exit ${code})`);
  return JSON.parse(out.trim().split("\n").pop() ?? "") as HearthRepResult;
}

function maxOrNull(xs: Array<number | null>): number | null {
  const v = xs.filter((x): x is number => x !== null);
  return v.length > 0 ? Math.max(...v) : null;
}

export async function run(opts: BenchOptions): Promise<SuiteResult> {
  const path = await pullModel();
  const reps = opts.quick ? 1 : 3;
  const pp = opts.quick ? 128 : 512;
  const tg = opts.quick ? 32 : 128;
  const hearth: HearthRepResult[] = [];
  const peer: PeerBenchResult[] = [];
  for (let r = 0; r < reps; r++) {
    // Alternate which runtime goes first so drift in machine load falls on both.
    const order = r % 2 === 0 ? ["hearth", "peer"] : ["peer", "hearth"];
    for (const who of order) {
      if (who === "hearth") hearth.push(await hearthRep(path, pp, tg, opts.threads));
      else peer.push(await peerBench({ pp, tg, reps: 1, threads: opts.threads, model: path }));
    }
  }
  const hPp = stats(hearth.flatMap((h) => h.pp_tps));
  const hTg = stats(hearth.flatMap((h) => h.tg_tps));
  const pPp = stats(peer.flatMap((p) => p.pp_tps));
  const pTg = stats(peer.flatMap((p) => p.tg_tps));
  const hRss = maxOrNull(hearth.map((h) => h.peak_rss_mb));
  const pRss = maxOrNull(peer.map((p) => p.peak_rss_mb));
  const fileMb = hearth[0]?.model_file_mb ?? 0;
  const kvMb = hearth[0]?.kv_pool_mb ?? 0;
  const floorMb = fileMb + kvMb + MEMORY_HEADROOM_MB;
  const model = "SmolLM2-135M Q4_1";
  const ppName = `pp${pp}`;
  const tgName = `tg${tg}`;
  const row = (test: string, h: ReturnType<typeof stats>, p: ReturnType<typeof stats>) => ({
    model,
    threads: opts.threads,
    test,
    "hearth t/s": meanSd(h),
    "llama.cpp t/s": meanSd(p),
    ratio: ratio(h.mean, p.mean),
  });
  const ppRatio = ratio(hPp.mean, pPp.mean);
  const tgRatio = ratio(hTg.mean, pTg.mean);
  return {
    suite: "e2e",
    columns: ["model", "threads", "test", "hearth t/s", "llama.cpp t/s", "ratio"],
    rows: [
      row(ppName, hPp, pPp),
      row(tgName, hTg, pTg),
      {
        model,
        threads: opts.threads,
        test: "peak RSS MiB",
        "hearth t/s": hRss === null ? null : Number(hRss.toFixed(1)),
        "llama.cpp t/s": pRss === null ? null : Number(pRss.toFixed(1)),
        ratio: ratio(hRss, pRss),
      },
    ],
    summary: {
      hearth_pp512: hPp.mean,
      hearth_tg128: hTg.mean,
      peer_pp512: pPp.mean,
      peer_tg128: pTg.mean,
      ratio_pp512: ppRatio,
      ratio_tg128: tgRatio,
      hearth_peak_rss_mb: hRss,
      peer_peak_rss_mb: pRss,
      hearth_rss_floor_mb: floorMb,
      hearth_rss_within_floor: hRss === null ? null : hRss <= floorMb ? "yes" : "no",
      reps,
      quick: opts.quick ? "yes (sizes and repetitions reduced; not for reporting)" : "no",
    },
    notes: [
      `${reps} repetition(s), each runtime in a fresh child process, alternating; ${opts.threads} threads; ` +
        `peer: ${peer[0]?.peer ?? "node-llama-cpp"} (prebuilt CPU llama.cpp, flash attention ${PEER_FLASH_ATTENTION}, f16 KV).`,
      `targets (issue 4): tg ratio >= 1.0 (${tgRatio?.toFixed(2) ?? "-"}), pp ratio >= 0.7 (${ppRatio?.toFixed(2) ?? "-"}); ` +
        `hearth peak RSS ${hRss?.toFixed(1) ?? "?"} MiB vs floor ${floorMb.toFixed(1)} MiB ` +
        `(file ${fileMb.toFixed(1)} + KV pool ${kvMb.toFixed(1)} + ${MEMORY_HEADROOM_MB}): ` +
        `${hRss === null ? "unknown" : hRss <= floorMb ? "within" : "OVER"}.`,
      ...(opts.quick ? [`--quick: pp${pp}/tg${tg} and 1 repetition; keys keep the pp512/tg128 names.`] : []),
    ],
  };
}

if (import.meta.main) await runStandalone(run);
