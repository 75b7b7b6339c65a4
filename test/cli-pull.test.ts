// `hearth pull` as a user runs it (a real child process): help, usage errors (exit 2), pull
// failures (exit 1, one clear line on stderr), and a local GGUF path printed on stdout.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { v, writeGguf } from "../src/gguf/writer.ts";

const work = mkdtempSync(join(tmpdir(), "hearth-cli-pull-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const cli = join(import.meta.dir, "..", "src", "cli", "main.ts");

async function hearth(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn(["bun", cli, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, HEARTH_MODELS_DIR: join(work, "cache") },
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

describe("hearth pull", () => {
  test("--help prints usage, the known models and the exit codes, and exits 0", async () => {
    const r = await hearth("pull", "--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: hearth pull [model] [options]");
    expect(r.stdout).toContain("smollm2-135m-instruct-q4_1");
    expect(r.stdout).toContain("gemma3-270m");
    expect(r.stdout).toContain("--models-dir DIR");
    expect(r.stdout).toContain("Exit status: 0 pulled, 1 the pull failed, 2 bad usage.");
  });

  test("an unknown option is a usage error (exit 2) that points at --help", async () => {
    const r = await hearth("pull", "--bogus");
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("hearth pull: Unknown option '--bogus'\nRun `hearth pull --help` for usage.\n");
    expect(r.stdout).toBe("");
  });

  test("two models or a missing option value are usage errors", async () => {
    expect((await hearth("pull", "a", "b")).stderr).toContain("expected at most one model, got 2: a b");
    const r = await hearth("pull", "--models-dir");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--models-dir");
  });

  test("a missing file or a non-GGUF file fails with exit 1 and one clear line", async () => {
    const missing = await hearth("pull", join(work, "nope.gguf"));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(
      /^hearth pull: model ".*nope.gguf" is not a file, an http\(s\) URL or a known model/,
    );
    const txt = join(work, "readme.txt");
    writeFileSync(txt, "# not a model\n");
    const bad = await hearth("pull", txt);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split("\n")).toEqual([
      `hearth pull: model file ${txt} is not a GGUF file: it starts with 23 20 6e 6f, expected 47 47 55 46 ("GGUF")`,
    ]);
  });

  test("a local GGUF path is printed on stdout (and nothing else)", async () => {
    const p = join(work, "tiny.gguf");
    writeFileSync(p, writeGguf({ metadata: [{ key: "general.architecture", value: v.str("llama") }] }));
    const r = await hearth("pull", "-q", p);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${p}\n`);
  });

  test("an unreachable URL fails with exit 1", async () => {
    const r = await hearth("pull", "-q", "http://127.0.0.1:1/m.gguf");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("hearth pull: cannot reach http://127.0.0.1:1/m.gguf");
  });
});
