// Strings from model files reach errors and the terminal escaped: no control characters, no bidi
// overrides, a bounded length (issue 23, "Untrusted strings").
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tinyLlamaSpec } from "../scripts/make-malformed-gguf.ts";
import { GgufError, parseGguf } from "../src/gguf/reader.ts";
import { writeGguf } from "../src/gguf/writer.ts";
import { escapeUnprintable, quoteUntrusted, UNTRUSTED_SHOWN_CHARS_MAX } from "../src/untrusted.ts";

// Anything a terminal would act on: C0 (but tab), DEL, C1, bidi controls, line separators.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const ACTIVE = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/;

describe("quoteUntrusted", () => {
  test("escapes terminal escapes, NULs, newlines, bidi overrides and quotes", () => {
    const hostile = 'a\x1b]0;title\x07b\x00c\nd\u202ee"f\\g\x9b';
    const q = quoteUntrusted(hostile);
    expect(q).not.toMatch(ACTIVE);
    expect(q).toBe('"a\\e]0;title\\x07b\\x00c\\nd\\u202ee\\"f\\\\g\\x9b"');
  });

  test("keeps printable unicode and tabs as they are", () => {
    expect(quoteUntrusted("héllo\twörld 日本 🙂")).toBe('"héllo\twörld 日本 🙂"');
  });

  test("cuts long strings, stating the length, never inside a surrogate pair", () => {
    const long = "x".repeat(UNTRUSTED_SHOWN_CHARS_MAX - 1) + "🙂".repeat(10);
    const q = quoteUntrusted(long);
    expect(q).toBe(`"${"x".repeat(UNTRUSTED_SHOWN_CHARS_MAX - 1)}"... (${long.length} characters)`);
    expect(quoteUntrusted("\x00".repeat(1_000_000)).length).toBeLessThan(1000);
  });

  test("lone surrogates are escaped, pairs kept", () => {
    expect(escapeUnprintable("a\ud800b🙂\udc00")).toBe("a\\ud800b🙂\\udc00");
  });
});

describe("GGUF errors carry the file's strings escaped", () => {
  const hostileName = "blk.0.\x1b[31mred\x1b[0m\u202e\x00";

  function withDuplicateTensor(name: string): Uint8Array {
    const spec = tinyLlamaSpec();
    const tensors = [...(spec.tensors ?? [])];
    const first = tensors[0];
    if (first === undefined) throw new Error("tiny llama has no tensors");
    tensors[0] = { ...first, name };
    tensors.push({ ...first, name });
    return writeGguf({ ...spec, tensors });
  }

  test("a duplicate tensor name with escape sequences", () => {
    let message = "";
    try {
      parseGguf(withDuplicateTensor(hostileName));
    } catch (err) {
      expect(err).toBeInstanceOf(GgufError);
      message = (err as Error).message;
    }
    expect(message).toContain("duplicate tensor name");
    expect(message).toContain("\\e[31mred");
    expect(message).not.toMatch(ACTIVE);
  });

  test("the CLI prints such an error without a raw control character", () => {
    const dir = mkdtempSync(join(tmpdir(), "hearth-untrusted-"));
    try {
      const path = join(dir, "hostile.gguf");
      writeFileSync(path, withDuplicateTensor(hostileName));
      const proc = Bun.spawnSync(["bun", "src/cli/main.ts", "run", "-m", path, "-p", "hi", "-n", "1"], {
        env: { ...process.env, NO_COLOR: "1" },
      });
      const stderr = proc.stderr.toString();
      expect(proc.exitCode).not.toBe(0);
      expect(stderr).toContain("duplicate tensor name");
      expect(stderr.replace(/\n$/, "")).not.toMatch(ACTIVE);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
