// `hearth bench [suite...]`: the benchmark runner (same as `bun run bench`).
export async function main(argv: string[]): Promise<number> {
  const bench = (await import("../../bench/main.ts")) as { main(argv: string[]): Promise<number> };
  return bench.main(argv);
}
