// The malformed-GGUF corpus (test/fixtures/malformed, made by scripts/make-malformed-gguf.ts):
// every file is rejected with a GgufError (reader) or ModelConfigError (Llama config) whose
// message matches expected.json, in a child process so that a crash or a hang fails the test
// instead of killing the runner, and each parse finishes within a bound.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { malformedCases } from "../scripts/make-malformed-gguf.ts";
import { llamaConfigFromGguf, ModelConfigError } from "../src/gguf/llama-config.ts";
import { GgufError, parseGguf, readGguf } from "../src/gguf/reader.ts";
import type { ParseOutcome } from "./support/parse-corpus-child.ts";

const dir = join(import.meta.dir, "fixtures", "malformed");
const manifest = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as Record<
  string,
  { layer: "reader" | "config"; error: string; what: string }
>;
const files = Object.keys(manifest).sort();
// Generous: the largest corpus file is ~20 KB and parses in well under a millisecond.
const PARSE_MS_MAX = 2_000;
const CHILD_TIMEOUT_MS = 60_000;

async function parseInChild(
  paths: string[],
  flags: string[] = [],
): Promise<{ outcomes: ParseOutcome[]; exitCode: number | null }> {
  const child = join(import.meta.dir, "support", "parse-corpus-child.ts");
  const proc = Bun.spawn(["bun", child, ...flags, ...paths], {
    stdout: "pipe",
    stderr: "pipe",
    timeout: CHILD_TIMEOUT_MS,
    killSignal: "SIGKILL",
  });
  const [out, exitCode] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  const outcomes = out
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as ParseOutcome);
  return { outcomes, exitCode };
}

describe("malformed GGUF corpus", async () => {
  const { outcomes, exitCode } = await parseInChild(files.map((f) => join(dir, f)));

  test("the corpus covers every class of damage and matches its manifest", () => {
    expect(files.length).toBeGreaterThanOrEqual(100);
    const onDisk = readdirSync(dir).filter((f) => f.endsWith(".gguf"));
    expect(onDisk.sort()).toEqual(files);
    for (const f of files) expect(Bun.file(join(dir, f)).size).toBeLessThan(64 * 1024);
  });

  test("the committed files are what the generator makes today", () => {
    for (const c of malformedCases()) {
      expect(manifest[c.file]?.error).toBe(c.error);
      const same = readFileSync(join(dir, c.file)).equals(c.bytes);
      expect(same ? "same" : `${c.file} differs: run bun scripts/make-malformed-gguf.ts`).toBe("same");
    }
  });

  test("the child parsed every file and exited cleanly (no crash, no hang)", () => {
    const missing = files.length > outcomes.length ? files[outcomes.length] : undefined;
    expect(missing === undefined ? "all parsed" : `stopped at ${missing}`).toBe("all parsed");
    expect(exitCode).toBe(0);
  });

  for (const [i, file] of files.entries()) {
    const expected = manifest[file] as { layer: "reader" | "config"; error: string; what: string };
    test(`${file}: ${expected.what} → ${expected.layer} error /${expected.error}/`, () => {
      const o = outcomes[i];
      if (o === undefined) throw new Error(`no outcome for ${file}: the child crashed or hung before it`);
      expect(o.path.endsWith(file)).toBe(true);
      expect(o.isGgufError).toBe(true);
      expect(o.isModelConfigError).toBe(expected.layer === "config");
      expect(o.layer).toBe(expected.layer);
      expect(o.message).toMatch(new RegExp(expected.error));
      expect(o.message).toContain(file); // errors name the file
      expect(o.parseMs).toBeLessThan(PARSE_MS_MAX);
    });
  }
});

describe("in-process: the same errors from parseGguf on the bytes and through the config layer", () => {
  test("reader-layer files throw GgufError from parseGguf too (not only readGguf)", () => {
    for (const f of files) {
      const expected = manifest[f];
      if (expected?.layer !== "reader") continue;
      const bytes = new Uint8Array(readFileSync(join(dir, f)));
      let caught: unknown;
      try {
        parseGguf(bytes);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(GgufError);
    }
  });

  test("config-layer files parse, then llamaConfigFromGguf throws ModelConfigError naming the problem", () => {
    for (const f of files) {
      const expected = manifest[f];
      if (expected?.layer !== "config") continue;
      const file = readGguf(join(dir, f));
      expect(() => llamaConfigFromGguf(file)).toThrow(ModelConfigError);
      expect(() => llamaConfigFromGguf(file)).toThrow(new RegExp(expected.error));
    }
  });
});

describe("the native loader on the corpus (openNativeModel, one child process)", async () => {
  const { outcomes, exitCode } = await parseInChild(
    files.map((f) => join(dir, f)),
    ["--native"],
  );
  // Errors that name the problem; anything else (TypeError, RangeError...) is a loader bug.
  const clear = new Set(["GgufError", "ModelConfigError", "NativeError"]);

  test("every file is rejected with a clear error or opened; no crash, no hang", () => {
    const missing = files.length > outcomes.length ? files[outcomes.length] : undefined;
    expect(missing === undefined ? "all opened or rejected" : `stopped at ${missing}`).toBe(
      "all opened or rejected",
    );
    expect(exitCode).toBe(0);
    const unclear = outcomes
      .filter((o) => o.native?.outcome === "rejected" && !clear.has(o.native.errorName))
      .map((o) => `${o.path}: ${o.native?.errorName}: ${o.native?.message}`);
    expect(unclear).toEqual([]);
  });

  test("files the reader rejects are rejected by the native loader too", () => {
    for (const o of outcomes) {
      const expected = manifest[o.path.split("/").at(-1) ?? ""];
      if (expected?.layer === "reader") expect(`${o.path}: ${o.native?.outcome}`).toEndWith("rejected");
    }
  });

  test("an absurd block_count is an error naming it, not a 10^13-entry loop", () => {
    const o = outcomes.find((x) => x.path.endsWith("block-count-absurd.gguf"));
    expect(o?.native?.message).toMatch(/"llama.block_count" = 1099511627776 is out of range/);
  });
});
