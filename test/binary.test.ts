// The compiled binary carries libhearth inside it (one build per CPU variant): built with
// `bun build --compile`, copied alone into an empty directory, it prints its version and runs a
// kernel from the embedded library, extracted once into a private cache directory and reused.
import { expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { buildBinary } from "../scripts/build-binary.ts";

const root = resolve(import.meta.dir, "..");

/** Library copies older binaries left in the temp directory (hearth-<hash>-libhearth.so). */
function strayTmpLibraries(): string[] {
  return readdirSync(tmpdir()).filter((f) => f.includes("libhearth"));
}

test(
  "dist/hearth runs --version and a kernel from an empty directory",
  () => {
    const built = buildBinary(join(root, "dist", "hearth"));
    const dir = mkdtempSync(join(tmpdir(), "hearth-binary-"));
    try {
      const exe = join(dir, "hearth");
      copyFileSync(built, exe);
      // No HEARTH_LIB and a cwd with nothing else in it: only the embedded copy can be found.
      const cache = join(dir, "cache");
      const env: Record<string, string | undefined> = { ...process.env, XDG_CACHE_HOME: cache };
      delete env.HEARTH_LIB;
      delete env.HEARTH_CPU;
      const strayBefore = strayTmpLibraries();
      const version = Bun.spawnSync([exe, "--version"], { cwd: dir, env });
      expect(version.exitCode).toBe(0);
      const pkg = require("../package.json") as { version: string };
      expect(version.stdout.toString().trim()).toBe(`hearth ${pkg.version}`);

      const self = Bun.spawnSync([exe, "selftest"], { cwd: dir, env });
      const out = self.stdout.toString();
      expect(self.stderr.toString()).toBe("");
      expect(self.exitCode).toBe(0);
      expect(out).toContain("selftest ok");
      // Loaded from the copy extracted to <cache>/hearth/lib/<hash>/, not from the checkout's zig-out.
      const libPath = /library (\S+)/.exec(out)?.[1] ?? "";
      expect(libPath).toMatch(new RegExp(`^${cache}/hearth/lib/[0-9a-f]{16}/libhearth\\.so$`));
      const firstWrite = statSync(libPath).mtimeMs;
      // A second run reuses the extracted file; nothing is left in the temp directory.
      const again = Bun.spawnSync([exe, "selftest"], { cwd: dir, env });
      expect(again.exitCode).toBe(0);
      expect(/library (\S+)/.exec(again.stdout.toString())?.[1]).toBe(libPath);
      expect(statSync(libPath).mtimeMs).toBe(firstWrite);
      expect(readdirSync(join(libPath, ".."))).toEqual(["libhearth.so"]);
      expect(strayTmpLibraries().filter((f) => !strayBefore.includes(f))).toEqual([]);

      // The benchmarks are not in the binary: it says so instead of failing on a missing module.
      const bench = Bun.spawnSync([exe, "bench", "kernels"], { cwd: dir, env });
      expect(bench.exitCode).toBe(2);
      expect(bench.stderr.toString()).toContain("run from a checkout");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  { timeout: 300_000 },
);
