// `bun run pack [PLATFORM...|all] [--no-build]`: writes the npm tarballs to dist/pack/: the main
// package (hearth-llm: TypeScript sources, the Zig sources to build from, README) and one platform
// package per target (@hearth-llm/<os>-<arch>: the prebuilt libhearth of each CPU variant, chosen
// at load time). With no platform given: this machine's. The main package lists every platform
// package as an optional dependency, so a package manager installs only the one that fits.
import { cpSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { PLATFORMS, type Platform, platformPackageName } from "../src/native/variants.ts";
import { buildPlatform, platformsFrom, variantLib } from "./build-native.ts";

const root = resolve(import.meta.dir, "..");
export const packDir = join(root, "dist", "pack");
const stageDir = join(packDir, ".stage");

interface RootManifest {
  name: string;
  version: string;
  description: string;
  files: string[];
  [key: string]: unknown;
}

const manifest = (await Bun.file(join(root, "package.json")).json()) as RootManifest;

function packFolder(dir: string): string {
  const r = Bun.spawnSync([process.execPath, "pm", "pack", "--quiet", "--destination", packDir], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
  });
  if (r.exitCode !== 0) throw new Error(`bun pm pack in ${dir} failed: ${r.stderr.toString()}`);
  const name = r.stdout.toString().trim().split("\n").pop() ?? "";
  return resolve(packDir, name);
}

/** The main package: the root package.json's `files`, plus the platform packages as optional deps. */
function packMain(): string {
  const dir = join(stageDir, "main");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const f of [...manifest.files, "README.md"]) cpSync(join(root, f), join(dir, f), { recursive: true });
  const optionalDependencies = Object.fromEntries(
    PLATFORMS.map((p) => [platformPackageName(p), manifest.version]),
  );
  const { scripts: _s, devDependencies: _d, ...published } = manifest;
  writeFileSync(
    join(dir, "package.json"),
    `${JSON.stringify({ ...published, optionalDependencies }, null, 2)}\n`,
  );
  return packFolder(dir);
}

function packPlatform(p: Platform): string {
  const dir = join(stageDir, p.id);
  rmSync(dir, { recursive: true, force: true });
  for (const v of p.variants) {
    const lib = variantLib(p, v.name);
    if (!existsSync(lib))
      throw new Error(`${lib} missing: build it with \`bun scripts/build-native.ts ${p.id}\``);
    mkdirSync(join(dir, "lib", v.name), { recursive: true });
    cpSync(lib, join(dir, "lib", v.name, p.libFile));
  }
  const pkg = {
    name: platformPackageName(p),
    version: manifest.version,
    description: `libhearth for ${p.id} (CPU variants: ${p.variants.map((v) => v.name).join(", ")}); used by ${manifest.name}`,
    os: [p.os],
    cpu: [p.arch],
    ...(p.os === "linux" ? { libc: ["glibc"] } : {}),
    files: ["lib"],
  };
  writeFileSync(join(dir, "package.json"), `${JSON.stringify(pkg, null, 2)}\n`);
  writeFileSync(
    join(dir, "README.md"),
    `# ${pkg.name}\n\nThe prebuilt native library of [${manifest.name}](https://www.npmjs.com/package/${manifest.name}) for ${p.id}. Install ${manifest.name}, not this.\n`,
  );
  return packFolder(dir);
}

/** Packs the main package and the given platforms' packages; returns the tarball paths. */
export function pack(platforms: readonly Platform[], build = true): { main: string; platforms: string[] } {
  mkdirSync(packDir, { recursive: true });
  const out = { main: "", platforms: [] as string[] };
  for (const p of platforms) {
    if (build) buildPlatform(p);
    out.platforms.push(packPlatform(p));
  }
  out.main = packMain();
  rmSync(stageDir, { recursive: true, force: true });
  return out;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const r = pack(platformsFrom(args.filter((a) => a !== "--no-build")), !args.includes("--no-build"));
  for (const t of [r.main, ...r.platforms]) console.log(`${t} ${(statSync(t).size / 1e6).toFixed(2)} MB`);
}
