// `hearth bench [suite...]`: the benchmark runner (same as `bun run bench`).
export async function main(argv: string[]): Promise<number> {
  // The benchmarks (and their peer runtimes under bench/peers) live in the checkout; the
  // single-file binary carries only the runtime.
  if ((globalThis as { __hearthEmbeddedLib?: string }).__hearthEmbeddedLib !== undefined) {
    console.error(
      "hearth bench: the benchmarks run from a checkout of hearth (`bun run bench [suite]`); this single-file binary does not include them",
    );
    return 2;
  }
  const bench = (await import("../../bench/main.ts")) as { main(argv: string[]): Promise<number> };
  return bench.main(argv);
}
