// `bun run pack` as a user meets it: the two tarballs (main + this platform's) installed with
// `bun add` into a fresh project, with no Zig on PATH and no zig-out anywhere, run the README's
// library example on the real default model; each CPU variant this machine runs, forced with
// HEARTH_CPU, gives the same greedy text.
import { afterAll, beforeAll, expect, test } from "bun:test";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pack } from "../scripts/pack.ts";
import {
  hostPlatform,
  type Platform,
  platformPackageName,
  supportedVariants,
} from "../src/native/variants.ts";
import { EXAMPLE_OUTPUT, readmeLibraryExample } from "./support/readme-example.ts";

const platform = hostPlatform();
/** The tests below are skipped where `platform` is undefined. */
const P = platform as Platform;
let project = "";
let env: Record<string, string | undefined> = {};

function run(argv: string[], extra: Record<string, string> = {}) {
  const r = Bun.spawnSync(argv, { cwd: project, env: { ...env, ...extra }, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

beforeAll(() => {
  if (platform === undefined) return;
  const tarballs = pack([platform]);
  project = mkdtempSync(join(tmpdir(), "hearth-pack-"));
  // PATH: `bun` alone (the bin's shebang needs it by that name) and the system's; no zig.
  const bin = join(project, ".bin");
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, "bun"));
  env = { HOME: process.env.HOME, PATH: `${bin}:/usr/bin:/bin`, HEARTH_THREADS: "1" };
  if (process.env.HEARTH_MODELS_DIR) env.HEARTH_MODELS_DIR = process.env.HEARTH_MODELS_DIR;
  writeFileSync(
    join(project, "package.json"),
    JSON.stringify({ name: "pack-test", private: true, type: "module" }),
  );
  const add = run(["bun", "add", tarballs.main, ...tarballs.platforms]);
  if (add.code !== 0) throw new Error(`bun add failed: ${add.err}`);
}, 900_000);

afterAll(() => {
  if (project !== "") rmSync(project, { recursive: true, force: true });
});

test.skipIf(platform === undefined)("the installed package holds only what it needs", () => {
  expect(run(["sh", "-c", "command -v zig || echo none"]).out.trim()).toBe("none");
  const pkgDir = join(project, "node_modules", "hearth-llm");
  // (.bun-tag is Bun's own marker of what it installed.)
  expect(
    readdirSync(pkgDir)
      .filter((f) => f !== ".bun-tag")
      .sort(),
  ).toEqual(["README.md", "build.zig", "build.zig.zon", "docs", "package.json", "src", "zig"].sort());
  // The bin keeps its run bit through the tarball and runs by its shebang.
  expect(statSync(join(pkgDir, "src", "cli", "main.ts")).mode & 0o111).not.toBe(0);
  const version = run([join(project, "node_modules", ".bin", "hearth"), "--version"]);
  expect(version.out.trim()).toMatch(/^hearth \d+\.\d+\.\d+$/);
  const libs = join(project, "node_modules", platformPackageName(P), "lib");
  expect(readdirSync(libs).sort()).toEqual(P.variants.map((v) => v.name).sort());
});

test.skipIf(platform === undefined)(
  "the README's library example runs from the installed package",
  () => {
    const code = readmeLibraryExample();
    expect(code).toContain('from "hearth-llm"');
    writeFileSync(join(project, "example.ts"), code);
    const r = run(["bun", "example.ts"]);
    if (r.code !== 0) console.error(r.err);
    expect(r.code).toBe(0);
    for (const line of EXAMPLE_OUTPUT) expect(r.out).toMatch(line);
  },
  300_000,
);

test.skipIf(platform === undefined)(
  "each CPU variant this machine runs gives the same greedy text, and HEARTH_CPU is checked",
  () => {
    writeFileSync(
      join(project, "variant.ts"),
      `import { loadLibrary, loadModel } from "hearth-llm";
const model = await loadModel(undefined, { contextTokens: 256 });
const { path, variant } = await loadLibrary();
const s = model.createSession();
await s.prefill("The capital of France is");
const g = s.generate({ maxTokens: 24, temperature: 0 });
let r = await g.next();
while (!r.done) r = await g.next();
console.log(JSON.stringify({ path, variant, tokens: r.value.tokens, text: r.value.text }));
s.close();
model.close();
`,
    );
    const variants = supportedVariants(P);
    expect(variants.length).toBeGreaterThan(0);
    const results = variants.map((v) => {
      const r = run(["bun", "variant.ts"], { HEARTH_CPU: v.name });
      if (r.code !== 0) console.error(r.err);
      expect(r.code).toBe(0);
      const got = JSON.parse(r.out) as { path: string; variant: string; tokens: number[]; text: string };
      expect(got.variant).toBe(v.name);
      expect(got.path).toBe(join(project, "node_modules", platformPackageName(P), "lib", v.name, P.libFile));
      expect(got.tokens.length).toBe(24);
      return got;
    });
    // Unforced, the best variant this CPU runs is chosen.
    const best = JSON.parse(run(["bun", "variant.ts"]).out) as { variant: string; tokens: number[] };
    expect(best.variant).toBe(variants[0]?.name ?? "(none)");
    for (const r of results)
      expect({ variant: r.variant, tokens: r.tokens }).toEqual({ variant: r.variant, tokens: best.tokens });

    const bad = run(["bun", "variant.ts"], { HEARTH_CPU: "pentium" });
    expect(bad.code).not.toBe(0);
    expect(bad.err).toContain(`HEARTH_CPU=pentium is not one of the builds for ${P.id}`);
    // Without the platform package the error names the places tried and the way out.
    const moved = join(project, "moved");
    const pkgDir = join(project, "node_modules", platformPackageName(P));
    Bun.spawnSync(["mv", pkgDir, moved]);
    try {
      const missing = run(["bun", "variant.ts"]);
      expect(missing.code).not.toBe(0);
      expect(missing.err).toContain("libhearth not found. Looked in:");
      expect(missing.err).toContain(`${platformPackageName(P)} (not installed)`);
      expect(missing.err).toContain("HEARTH_LIB");
      expect(missing.err).toContain("zig build -Doptimize=ReleaseFast");
    } finally {
      Bun.spawnSync(["mv", moved, pkgDir]);
    }
    expect(existsSync(pkgDir)).toBe(true);
  },
  300_000,
);
