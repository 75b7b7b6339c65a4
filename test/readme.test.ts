// The README's "Library API" example, run as written (with "hearth-llm" resolved to src/index.ts).
import { expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EXAMPLE_OUTPUT, readmeLibraryExample } from "./support/readme-example.ts";

const ROOT = join(import.meta.dir, "..");

test("the README's Library API example runs and prints a completion, a reply and telemetry", async () => {
  const code = readmeLibraryExample();
  expect(code).toContain('from "hearth-llm"');
  const dir = join(ROOT, ".cache", "readme-example");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "example.ts");
  writeFileSync(
    file,
    code.replace(/from "hearth-llm"/g, `from ${JSON.stringify(join(ROOT, "src/index.ts"))}`),
  );
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
  for (const line of EXAMPLE_OUTPUT) expect(stdout).toMatch(line);
}, 120_000);
