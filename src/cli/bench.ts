// `hearth bench [suite...]`: the benchmark runner (same as `bun run bench`).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { isCompiledBinary } from "../native/lib.ts";

export async function main(argv: string[]): Promise<number> {
  // The benchmarks (and their peer runtimes under bench/peers) live in the checkout; the
  // single-file binary and the npm package carry only the runtime.
  if (isCompiledBinary() || !existsSync(join(import.meta.dir, "..", "..", "bench", "main.ts"))) {
    console.error(
      "hearth bench: the benchmarks run from a checkout of hearth (`bun run bench [suite]`); this install does not include them",
    );
    return 2;
  }
  const bench = (await import("../../bench/main.ts")) as { main(argv: string[]): Promise<number> };
  return bench.main(argv);
}
