// `bun run bench busy`: decode on a busy machine (issue 23). Starts its own CPU hog (a child
// process spinning on one core, not pinned: the kernel places it), then measures one-stream greedy
// decode tokens/s of the default model on 1 thread and on 2 threads in alternating rounds of the
// same run (two models loaded side by side, so each round sees the same load). The same rounds
// without the hog come first, for reference. Headline: busy_2t_vs_1t (target >= 1.0: two threads
// never slower than one; zig/pool.zig says how the pool gets there). Each phase also reports the
// 2-thread pool's counters (solo share of its time, stalls, the worker's share of the tasks) and
// the read bandwidth of 1 and 2 threads, measured inside the same rounds (the decode bound).
import { loadModel, type Model } from "../src/index.ts";
import { type PoolStats, poolStatsDelta } from "../src/native/pool-stats.ts";
import { ReadSweep } from "./bandwidth.ts";
import { type BenchOptions, type Cell, loadNote, median, runStandalone, type SuiteResult } from "./lib.ts";

const PROMPT = "The history of the printing press begins";

/** Decode tokens/s of one greedy stream of `tokens` (prefill not timed). */
async function decodeTps(model: Model, tokens: number): Promise<number> {
  const s = model.createSession();
  try {
    await s.prefill(PROMPT);
    for await (const _ of s.generate({ maxTokens: tokens, temperature: 0, ignoreEos: true })) {
      // drain
    }
    const t = s.lastTelemetry;
    if (t === null || t === undefined || t.generatedTokens !== tokens)
      throw new Error(`made ${t?.generatedTokens} tokens, not ${tokens}`);
    return t.decodeTokensPerS;
  } finally {
    s.close();
  }
}

/** A process that keeps one core busy until killed. */
function startHog(): ReturnType<typeof Bun.spawn> {
  return Bun.spawn([process.execPath, "-e", "for (;;) {}"], { stdout: "ignore", stderr: "ignore" });
}

export async function run(opts: BenchOptions): Promise<SuiteResult> {
  const tokens = opts.quick ? 32 : 128;
  const rounds = opts.quick ? 3 : 15;
  const one = await loadModel(opts.model, { threads: 1, contextTokens: 512, maxSessions: 1 });
  const two = await loadModel(opts.model, { threads: 2, contextTokens: 512, maxSessions: 1 });
  const rows: Array<Record<string, Cell>> = [];
  const summary: Record<string, number | null> = {};
  const sweeps = { 1: new ReadSweep(1, 256 << 20), 2: new ReadSweep(2, 256 << 20) };
  const poolStats = (): PoolStats | null => two.native.poolStats?.() ?? null;
  const measure = async (phase: "quiet" | "busy") => {
    const tps = { 1: [] as number[], 2: [] as number[] };
    const gbps = { 1: [] as number[], 2: [] as number[] };
    const before = poolStats();
    let decodeNs = 0;
    for (let r = 0; r < rounds; r++) {
      // Alternate which goes first, so a drift in the load favours neither.
      const order = r % 2 === 0 ? ([1, 2] as const) : ([2, 1] as const);
      for (const n of order) {
        const t0 = Bun.nanoseconds();
        tps[n].push(await decodeTps(n === 1 ? one : two, tokens));
        if (n === 2) decodeNs += Bun.nanoseconds() - t0;
        gbps[n].push(sweeps[n].gbps(2));
      }
    }
    const after = poolStats();
    if (before !== null && after !== null) {
      const d = poolStatsDelta(after, before);
      summary[`${phase}_2t_solo_share`] = d.soloNs / Math.max(1, d.soloNs + d.parallelNs);
      summary[`${phase}_2t_worker_task_share`] = 1 - d.callerTasks / Math.max(1, d.parallelTasks);
      summary[`${phase}_2t_stalls`] = d.stalls;
      summary[`${phase}_2t_idle_windows`] = d.idleWindows;
      summary[`${phase}_2t_solo_periods`] = d.soloPeriods;
      summary[`${phase}_2t_wait_ms`] = d.waitNs / 1e6;
      summary[`${phase}_2t_decode_ms`] = decodeNs / 1e6;
    }
    summary[`${phase}_read_gbps_1t`] = median(gbps[1]);
    summary[`${phase}_read_gbps_2t`] = median(gbps[2]);
    for (const n of [1, 2] as const) {
      rows.push({
        phase,
        threads: n,
        test: `tg${tokens}`,
        "t/s (median)": median(tps[n]),
        min: Math.min(...tps[n]),
        max: Math.max(...tps[n]),
        rounds,
      });
    }
    const ratio = median(tps[2]) / median(tps[1]);
    summary[`${phase}_1t_tps`] = median(tps[1]);
    summary[`${phase}_2t_tps`] = median(tps[2]);
    summary[`${phase}_2t_vs_1t`] = ratio;
  };
  let hog: ReturnType<typeof Bun.spawn> | null = null;
  try {
    await decodeTps(one, 8); // warm-up
    await decodeTps(two, 8);
    const quietLoad = loadNote().note;
    await measure("quiet");
    hog = startHog();
    await Bun.sleep(500);
    await measure("busy");
    return {
      suite: "busy",
      columns: ["phase", "threads", "test", "t/s (median)", "min", "max", "rounds"],
      rows,
      summary,
      notes: [
        `one greedy stream, ${tokens} tokens per round, 1 and 2 threads alternating; busy = with a child process spinning on one core (pid ${hog.pid})`,
        `before: ${quietLoad}; after: ${loadNote().note}`,
        "per phase: <phase>_2t_solo_share = the 2-thread pool's time in solo periods / its time in jobs; _worker_task_share = tasks the worker ran / tasks of parallel jobs; _read_gbps_1t/_2t = read sweep (256 MiB) after each decode round, median",
      ],
    };
  } finally {
    hog?.kill("SIGKILL");
    await hog?.exited;
    one.close();
    two.close();
    sweeps[1].close();
    sweeps[2].close();
  }
}

if (import.meta.main) await runStandalone(run);
