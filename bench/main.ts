// `bun run bench [suite...] [--json] [--quick] [--threads N]`: runs benchmark suites and
// prints llama-bench style tables; with no suite, runs all and ends with one summary table.
// With --json the output ends with one JSON object (one suite: its summary keys and rows;
// all suites: { suites: { name: {...} } } plus the merged summary keys). Every run but --quick is
// also saved to bench/results/<date>-<commit>.json with the machine and versions (bench/results.ts).
import { type BenchOptions, formatTable, parseBenchArgs, printSuite, type SuiteResult } from "./lib.ts";
import { saveRun } from "./results.ts";

const SUITES = [
  "kernels",
  "e2e",
  "serve",
  "kv",
  "text",
  "speculative",
  "library",
  "embed",
  "micro",
  "fuzz",
  "scale",
] as const;
/** Suites run only when named: the soak takes --minutes, busy starts its own CPU hog. */
const ON_DEMAND = ["soak", "busy"] as const;

async function loadSuite(name: string): Promise<(o: BenchOptions) => Promise<SuiteResult>> {
  if (![...SUITES, ...ON_DEMAND].includes(name as never)) {
    throw new Error(`unknown suite "${name}"; suites: ${[...SUITES, ...ON_DEMAND].join(", ")}`);
  }
  const mod = (await import(`./${name}.ts`)) as { run?: (o: BenchOptions) => Promise<SuiteResult> };
  if (typeof mod.run !== "function") throw new Error(`bench/${name}.ts does not export run()`);
  return mod.run;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(`Usage: bun run bench [suite...] [--json] [--quick] [--threads N] [--model REF,...] [--depth N] [--peers LIST]

Suites: ${SUITES.join(", ")} (default: all, then one summary table);
        ${ON_DEMAND.join(", ")} only when named.
  --json       end the output with one JSON object of the figures
  --quick      fewer repetitions (smoke runs; not for reporting)
  --minutes N  how long the soak runs (default 10)
  --threads N  worker threads for hearth and the peer (default: $HEARTH_THREADS or 2)
  --model REF  model file(s) for e2e, comma-separated: a path, a known name, or a file of
               bench/peers/llama.cpp/models/ by name (Q4_0, Q4_K_M, gemma3-270m, ...; made by models.sh);
               default: the default model, then Q4_0 when models.sh made it
  --depth N    e2e's depth rows: pp and tg with N tokens already in the context (default 4096; 0: none)
  --peers LIST peer columns: llama.cpp (native build, bench/peers/llama.cpp/build.sh),
               node-llama-cpp, or none (default: llama.cpp,node-llama-cpp)`);
    return 0;
  }
  let parsed: ReturnType<typeof parseBenchArgs>;
  try {
    parsed = parseBenchArgs(argv);
  } catch (err) {
    console.error(`bench: ${(err as Error).message}`);
    return 2;
  }
  const { suites, opts } = parsed;
  const names = suites.length > 0 ? suites : [...SUITES];
  const results: SuiteResult[] = [];
  const failures: string[] = [];
  for (const name of names) {
    try {
      const run = await loadSuite(name);
      const r = await run(opts);
      printSuite(r);
      results.push(r);
    } catch (err) {
      console.error(`bench ${name}: ${(err as Error).message}`);
      failures.push(name);
      if (suites.length > 0) return 1;
    }
  }
  if (names.length > 1) {
    const rows = results.flatMap((r) =>
      Object.entries(r.summary).map(([key, value]) => ({ suite: r.suite, figure: key, value })),
    );
    console.log("\n## summary\n");
    console.log(formatTable(["suite", "figure", "value"], rows));
    if (failures.length > 0) console.log(`\nsuites that failed: ${failures.join(", ")}`);
  }
  const saved = saveRun(results, argv, opts.quick);
  if (saved !== null) console.error(`\nsaved: ${saved}`);
  if (opts.json) {
    if (results.length === 1 && names.length === 1) {
      const r = results[0] as SuiteResult;
      console.log(JSON.stringify({ suite: r.suite, ...r.summary, rows: r.rows }));
    } else {
      const merged = Object.assign({}, ...results.map((r) => r.summary));
      const bySuite = Object.fromEntries(results.map((r) => [r.suite, { ...r.summary, rows: r.rows }]));
      console.log(JSON.stringify({ ...merged, suites: bySuite, failed: failures }));
    }
  }
  return failures.length > 0 ? 1 : 0;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
