// `hearth` on PATH from a checkout: the bin is committed with its run bit and a shebang, and
// `bun link` puts it in $BUN_INSTALL/bin, where it runs from any directory.
import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");

test("the bin is executable in git and starts with a bun shebang", () => {
  const staged = Bun.spawnSync(["git", "ls-files", "-s", "src/cli/main.ts"], { cwd: ROOT });
  expect(staged.stdout.toString()).toMatch(/^100755 /);
  expect(readFileSync(join(ROOT, "src", "cli", "main.ts"), "utf8").split("\n")[0]).toBe("#!/usr/bin/env bun");
});

test("bun link puts `hearth` in $BUN_INSTALL/bin and it runs from anywhere", () => {
  const dir = mkdtempSync(join(tmpdir(), "hearth-link-"));
  try {
    const bunInstall = join(dir, "bun");
    const bin = join(dir, "bin");
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, "bun")); // the shebang finds `bun` on PATH
    const env = {
      HOME: process.env.HOME,
      BUN_INSTALL: bunInstall,
      PATH: `${join(bunInstall, "bin")}:${bin}:/usr/bin:/bin`,
    };
    const link = Bun.spawnSync(["bun", "link"], { cwd: ROOT, env });
    expect(link.exitCode).toBe(0);
    const version = Bun.spawnSync(["hearth", "--version"], { cwd: dir, env });
    expect(version.stderr.toString()).toBe("");
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    expect(version.stdout.toString().trim()).toBe(`hearth ${pkg.version}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
