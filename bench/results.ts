// Every full `bun run bench` run is saved to bench/results/<date>-<commit>.json: the machine (CPU,
// cores, SIMD flags, transparent huge pages, read bandwidth when the kernels suite ran, load), the
// versions (bun, zig, the peers), the command, each suite's table, summary and raw repetitions.
// Which of those files to commit is a choice; the README's table comes from a committed one.
// --quick runs are smoke runs and are not saved.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SuiteResult } from "./lib.ts";

const ROOT = join(import.meta.dir, "..");
export const RESULTS_DIR = join(import.meta.dir, "results");

/** The SIMD features that decide which kernels run, as /proc/cpuinfo names them. */
const FLAGS = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni"];
const FLAGS_MORE = ["avx_vnni", "avx512_bf16", "amx_tile", "asimd", "asimddp", "sve"];

function read(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

function git(args: string[]): string | null {
  const r = Bun.spawnSync(["git", "-C", ROOT, ...args], { stdout: "pipe", stderr: "ignore" });
  return r.exitCode === 0 ? r.stdout.toString().trim() : null;
}

export function machine(readGbps2t: number | null): Record<string, unknown> {
  const cpuinfo = read("/proc/cpuinfo") ?? "";
  const cpu = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? null;
  const flags = new Set((/^(?:flags|Features)\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "").split(/\s+/));
  const thp = /\[(\w+)\]/.exec(read("/sys/kernel/mm/transparent_hugepage/enabled") ?? "")?.[1] ?? null;
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(read("/proc/meminfo") ?? "")?.[1] ?? Number.NaN);
  return {
    cpu,
    cores: navigator.hardwareConcurrency,
    arch: process.arch,
    os: `${process.platform} ${read("/proc/sys/kernel/osrelease")?.trim() ?? ""}`.trim(),
    simd: [...FLAGS, ...FLAGS_MORE].filter((f) => flags.has(f)),
    thp,
    mem_gib: Number.isFinite(memKb) ? Number((memKb / 2 ** 20).toFixed(1)) : null,
    read_gbps_2t: readGbps2t,
    loadavg: read("/proc/loadavg")?.split(" ").slice(0, 3).map(Number) ?? null,
  };
}

function versions(results: SuiteResult[]): Record<string, unknown> {
  const env = Object.fromEntries(
    (read(join(ROOT, "scripts", "toolchain.env")) ?? "")
      .split("\n")
      .map((l) => /^(\w+)=(.*)$/.exec(l.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1], m[2]]),
  );
  const llamacpp = results.map((r) => r.summary.llamacpp_build).find((v) => typeof v === "string") ?? null;
  return {
    bun: Bun.version,
    zig: env.ZIG_VERSION ?? null,
    hearth: (JSON.parse(read(join(ROOT, "package.json")) ?? "{}") as { version?: string }).version ?? null,
    llamacpp,
    node_llama_cpp: "3.22.1 (bench/peers/package.json)",
  };
}

/** Writes the run to bench/results/; returns the path (null when nothing was written). */
export function saveRun(results: SuiteResult[], argv: string[], quick: boolean): string | null {
  if (quick || results.length === 0) return null;
  const commit = git(["rev-parse", "--short", "HEAD"]) ?? "unknown";
  const dirty = (git(["status", "--porcelain", "--untracked-files=no"]) ?? "") !== "";
  const now = new Date();
  // To the second: two suites run one after the other within a minute must not overwrite each other.
  const stamp = now.toISOString().slice(0, 19).replaceAll(":", "");
  // The kernels suite's sweep, else the one e2e takes for its bandwidth share.
  const kernels = (results.find((r) => r.suite === "kernels") ?? results.find((r) => r.suite === "e2e"))
    ?.summary.read_gbps_2t;
  const doc = {
    date: now.toISOString(),
    commit,
    dirty,
    command: `bun run bench ${argv.join(" ")}`.trim(),
    machine: machine(typeof kernels === "number" ? kernels : null),
    versions: versions(results),
    suites: Object.fromEntries(
      results.map((r) => [
        r.suite,
        { summary: r.summary, rows: r.rows, notes: r.notes ?? [], raw: r.raw ?? null },
      ]),
    ),
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, `${stamp}Z-${commit}${dirty ? "-dirty" : ""}.json`);
  writeFileSync(path, `${JSON.stringify(doc, null, 1)}\n`);
  return path;
}
