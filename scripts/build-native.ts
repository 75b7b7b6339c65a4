// `bun scripts/build-native.ts [PLATFORM...|all]`: builds the prebuilt libhearth of each CPU variant
// (src/native/variants.ts) into dist/native/<platform>/<variant>/, stripped, for a portable
// baseline OS (glibc 2.28, macOS 11). Zig cross-compiles every platform from any host.
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { hostPlatform, PLATFORMS, type Platform, platformById } from "../src/native/variants.ts";

const root = resolve(import.meta.dir, "..");
export const nativeDir = join(root, "dist", "native");

/** Where one variant's library lands. */
export function variantLib(p: Platform, variant: string): string {
  return join(nativeDir, p.id, variant, p.libFile);
}

/** Builds every variant of `p`; returns their paths, best variant first. */
export function buildPlatform(p: Platform): string[] {
  const out: string[] = [];
  for (const v of p.variants) {
    const prefix = join(nativeDir, p.id, v.name);
    const cmd = [
      "zig",
      "build",
      "-Doptimize=ReleaseFast",
      "-Dstrip=true",
      `-Dtarget=${p.zigTarget}`,
      `-Dcpu=${v.zigCpu}`,
      "--prefix",
      prefix,
      "--prefix-lib-dir",
      ".",
    ];
    console.error(`[build-native] ${p.id}/${v.name}: ${cmd.join(" ")}`);
    const r = Bun.spawnSync(cmd, { cwd: root, stdout: "inherit", stderr: "inherit" });
    if (r.exitCode !== 0) throw new Error(`zig build for ${p.id}/${v.name} exited with ${r.exitCode}`);
    const lib = variantLib(p, v.name);
    if (!existsSync(lib)) throw new Error(`${lib} missing after zig build`);
    out.push(lib);
  }
  return out;
}

/** Platform ids from argv: none means this machine's, "all" means every one. */
export function platformsFrom(args: readonly string[]): Platform[] {
  if (args.length === 0) {
    const host = hostPlatform();
    if (host === undefined) throw new Error(`no prebuilt platform for ${process.platform}-${process.arch}`);
    return [host];
  }
  if (args.includes("all")) return [...PLATFORMS];
  return args.map((id) => {
    const p = platformById(id);
    if (p === undefined)
      throw new Error(`unknown platform ${id} (${PLATFORMS.map((q) => q.id).join(", ")}, all)`);
    return p;
  });
}

if (import.meta.main) {
  for (const p of platformsFrom(process.argv.slice(2))) {
    for (const lib of buildPlatform(p)) console.log(`${lib} ${(statSync(lib).size / 1e6).toFixed(2)} MB`);
  }
}
