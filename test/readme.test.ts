// The README's "Library API" example, run as written (with "hearth" resolved to src/index.ts).
import { expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");

/** The first ```ts block after the "## Library API" heading. */
function libraryExample(): string {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const at = readme.indexOf("## Library API");
  expect(at).toBeGreaterThanOrEqual(0);
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  if (m === null || m[1] === undefined) throw new Error("README: no ```ts block under ## Library API");
  return m[1];
}

test("the README's Library API example runs and prints a completion, a reply and telemetry", async () => {
  const code = libraryExample();
  expect(code).toContain('from "hearth"');
  const dir = join(ROOT, ".cache", "readme-example");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "example.ts");
  writeFileSync(file, code.replace(/from "hearth"/g, `from ${JSON.stringify(join(ROOT, "src/index.ts"))}`));
  const proc = Bun.spawn([process.execPath, file], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, HEARTH_THREADS: "1" },
  });
  const [stdout, stderr, code_] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code_ !== 0) console.error(stderr);
  expect(code_).toBe(0);
  expect(stdout).toMatch(/^completion: \S.*$/m);
  expect(stdout).toMatch(/^decode tok\/s: \d+\.\d$/m);
  expect(stdout).toMatch(/^reply: \S.*$/m);
  expect(stdout).toMatch(/^ttft \d+ ms, \d+ tokens, (eos|length|stop)$/m);
}, 120_000);
