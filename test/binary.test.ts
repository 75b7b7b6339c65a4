// The compiled binary carries libhearth inside it: built with `bun build --compile`, copied alone
// into an empty directory, it prints its version and runs a kernel from the embedded library.
import { expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { buildBinary } from "../scripts/build-binary.ts";

const root = resolve(import.meta.dir, "..");

test(
  "dist/hearth runs --version and a kernel from an empty directory",
  () => {
    const built = buildBinary(join(root, "dist", "hearth"));
    const dir = mkdtempSync(join(tmpdir(), "hearth-binary-"));
    try {
      const exe = join(dir, "hearth");
      copyFileSync(built, exe);
      // No HEARTH_LIB and a cwd with nothing else in it: only the embedded copy can be found.
      const env = { ...process.env };
      delete env.HEARTH_LIB;
      const version = Bun.spawnSync([exe, "--version"], { cwd: dir, env });
      expect(version.exitCode).toBe(0);
      const pkg = require("../package.json") as { version: string };
      expect(version.stdout.toString().trim()).toBe(`hearth ${pkg.version}`);

      const self = Bun.spawnSync([exe, "selftest"], { cwd: dir, env });
      const out = self.stdout.toString();
      expect(self.stderr.toString()).toBe("");
      expect(self.exitCode).toBe(0);
      expect(out).toContain("selftest ok");
      // Loaded from the copy extracted to the temp dir, not from the checkout's zig-out.
      const libPath = /library (\S+)/.exec(out)?.[1] ?? "";
      expect(libPath.startsWith(tmpdir())).toBe(true);
      expect(libPath.includes("zig-out")).toBe(false);

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
