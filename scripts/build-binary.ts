// `bun run build:binary`: builds libhearth (ReleaseFast) and compiles the CLI with the library embedded → dist/hearth.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dir, "..");

function step(cmd: string[]): void {
  console.error(`[build-binary] ${cmd.join(" ")}`);
  const r = Bun.spawnSync(cmd, { cwd: root, stdout: "inherit", stderr: "inherit" });
  if (r.exitCode !== 0) throw new Error(`${cmd[0]} exited with ${r.exitCode}`);
}

export function buildBinary(outfile = join(root, "dist", "hearth")): string {
  step(["zig", "build", "-Doptimize=ReleaseFast"]);
  if (!existsSync(join(root, "zig-out", "lib", "libhearth.so")))
    throw new Error("zig-out/lib/libhearth.so missing after zig build");
  step([process.execPath, "build", "--compile", join(root, "src", "cli", "binary.ts"), "--outfile", outfile]);
  return outfile;
}

if (import.meta.main) {
  const out = buildBinary(process.argv[2] ? resolve(process.argv[2]) : undefined);
  console.log(out);
}
