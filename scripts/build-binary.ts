// `bun run build:binary [PLATFORM...|all]`: single-file executables of the CLI. Each embeds the
// chat page and the libhearth of every CPU variant of its platform (scripts/build-native.ts builds them); at run
// time src/native/lib.ts picks the one this CPU runs and extracts it once to
// ~/.cache/hearth/lib/<hash>/. No platform given: this machine's, written to dist/hearth; named
// platforms (or all) go to dist/hearth-<platform>.
import { copyFileSync, mkdirSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { hostPlatform, type Platform } from "../src/native/variants.ts";
import { buildPlatform, nativeDir, platformsFrom } from "./build-native.ts";

const root = resolve(import.meta.dir, "..");

function step(cmd: string[]): void {
  console.error(`[build-binary] ${cmd.join(" ")}`);
  const r = Bun.spawnSync(cmd, { cwd: root, stdout: "inherit", stderr: "inherit" });
  if (r.exitCode !== 0) throw new Error(`${cmd[0]} exited with ${r.exitCode}`);
}

/** Builds the binary for `platform` (default: this machine's) into `outfile` (default: dist/hearth). */
export function buildBinary(outfile?: string, platform: Platform | undefined = hostPlatform()): string {
  if (platform === undefined) throw new Error(`no binary target for ${process.platform}-${process.arch}`);
  const out = outfile ?? join(root, "dist", "hearth");
  const libs = buildPlatform(platform);
  // Embedded files keep only their base name (plus a hash), so each variant gets its own:
  // libhearth-<variant>.<ext>, which src/native/lib.ts reads back.
  const embedDir = join(nativeDir, platform.id, ".embed");
  rmSync(embedDir, { recursive: true, force: true });
  mkdirSync(embedDir, { recursive: true });
  const ext = platform.libFile.slice(platform.libFile.lastIndexOf("."));
  const staged = platform.variants.map((v, i) => {
    const to = join(embedDir, `libhearth-${v.name}${ext}`);
    copyFileSync(libs[i] as string, to);
    return to;
  });
  // The chat page `hearth serve` answers at / (src/server/web/page.ts finds it among the
  // embedded files by this name).
  const page = join(embedDir, "chat-page.gz");
  step([process.execPath, join(root, "src", "server", "web", "page.ts"), page]);
  // The engine worker (hearth serve) is a second entrypoint; --root src keeps it at
  // ./engine/worker.ts inside the binary, where src/cli/binary.ts points the engine.
  step([
    process.execPath,
    "build",
    "--compile",
    "--minify",
    `--target=${platform.bunTarget}`,
    "--root",
    join(root, "src"),
    join(root, "src", "cli", "binary.ts"),
    join(root, "src", "engine", "worker.ts"),
    ...staged,
    page,
    "--outfile",
    out,
  ]);
  return out;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  for (const p of platformsFrom(args)) {
    const out = buildBinary(args.length === 0 ? undefined : join(root, "dist", `hearth-${p.id}`), p);
    console.log(`${out} ${(statSync(out).size / 1e6).toFixed(1)} MB`);
  }
}
