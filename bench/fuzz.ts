// `bun run bench fuzz`: the request fuzz of issue 23 (bench/fuzz-requests.ts), 1,200 seeded
// hostile requests to a real `hearth serve`. Targets: 0 crashes, 0 hangs, 0 bad answers.

import { runFuzz, startFuzzServer } from "./fuzz-requests.ts";
import type { BenchOptions, SuiteResult } from "./lib.ts";

export const FUZZ_SEED = 23;

export async function run(opts: BenchOptions): Promise<SuiteResult> {
  const count = opts.quick ? 200 : 1200;
  const server = await startFuzzServer(opts.threads);
  try {
    const r = await runFuzz(server, { seed: FUZZ_SEED, count, batch: 100 });
    const rows = Object.entries(r.byKind).map(([kind, k]) => ({
      kind,
      requests: k.requests,
      failures: k.failures,
      statuses: Object.entries(k.statuses)
        .sort()
        .map(([s, n]) => `${s}:${n}`)
        .join(" "),
    }));
    const notes = r.failures.slice(0, 20).map((f) => `${f.what} (${f.kind}): ${f.detail} <- ${f.request}`);
    return {
      suite: "fuzz",
      columns: ["kind", "requests", "failures", "statuses"],
      rows,
      summary: { requests: r.requests, crashes: r.crashes, hangs: r.hangs, bad_answers: r.bad_answers },
      notes,
      raw: r.failures,
    };
  } finally {
    await server.stop();
  }
}
