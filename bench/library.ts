// The library's batching: aggregate decode tokens/s of N sessions of one model generating at
// once (they share the model's in-process engine, so their tokens ride in one forward pass per
// step) against one session alone. Headline: sessions_4_vs_1 (target >= 2.5).
import { loadModel } from "../src/index.ts";
import { type BenchOptions, type Cell, runStandalone, type SuiteResult } from "./lib.ts";

const PROMPTS = [
  "The history of the printing press begins",
  "A recipe for bread needs flour, water,",
  "The planets of the solar system are",
  "In a small village by the sea there lived",
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function sd(xs: number[]): number {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(1, xs.length - 1));
}

export async function run(opts: BenchOptions): Promise<SuiteResult> {
  const tokens = opts.quick ? 32 : 128;
  const rounds = opts.quick ? 1 : 3;
  const model = await loadModel(undefined, { threads: opts.threads, contextTokens: 1024, maxSessions: 4 });
  const rows: Array<Record<string, Cell>> = [];
  const summary: Record<string, number | string | null> = {};
  const sizeMiB = model.file.tensors.reduce((a, t) => a + t.sizeBytes, 0) / (1024 * 1024);
  /** Tokens/s of `n` sessions generating `tokens` each at once (prefill not timed). */
  const once = async (n: number): Promise<number> => {
    const sessions = Array.from({ length: n }, () => model.createSession());
    try {
      await Promise.all(sessions.map((s, i) => s.prefill(PROMPTS[i % PROMPTS.length] as string)));
      const t0 = performance.now();
      const made = await Promise.all(
        sessions.map(async (s) => {
          for await (const _ of s.generate({ maxTokens: tokens, temperature: 0, ignoreEos: true })) {
            // drain
          }
          return s.lastTelemetry?.generatedTokens ?? 0;
        }),
      );
      const ms = performance.now() - t0;
      const total = made.reduce((a, b) => a + b, 0);
      if (total !== n * tokens) throw new Error(`${n} sessions made ${total} tokens, not ${n * tokens}`);
      return (total * 1000) / ms;
    } finally {
      for (const s of sessions) s.close();
    }
  };
  try {
    await once(1); // warm-up
    const agg = new Map<number, number>();
    for (const n of [1, 2, 4]) {
      const tps: number[] = [];
      for (let r = 0; r < rounds; r++) tps.push(await once(n));
      const m = median(tps);
      agg.set(n, m);
      rows.push({
        model: model.name,
        size: `${sizeMiB.toFixed(1)} MiB`,
        threads: opts.threads,
        test: `tg${tokens} x ${n} session${n === 1 ? "" : "s"}`,
        "t/s": rounds > 1 ? `${m.toFixed(2)} ± ${sd(tps).toFixed(2)}` : m,
        "vs 1 session": m / (agg.get(1) as number),
      });
      summary[`library_agg_tps_${n}`] = m;
    }
    summary.sessions_4_vs_1 = (agg.get(4) as number) / (agg.get(1) as number);
  } finally {
    model.close();
  }
  return {
    suite: "library",
    columns: ["model", "size", "threads", "test", "t/s", "vs 1 session"],
    rows,
    summary,
    notes: [
      `${tokens} greedy tokens per session (EOS ignored) after a short prompt each; t/s is all sessions' tokens over the wall time from the first generate to the last token (median of ${rounds} round(s)).`,
      "Target: sessions_4_vs_1 >= 2.5 (sessions of one model share the in-process engine's steps).",
    ],
  };
}

if (import.meta.main) await runStandalone(run);
