// Seeded fuzzing of the GGUF reader and the Llama config layer: random byte flips, random bytes,
// deleted ranges and truncations of the real model's header region and of the corpus's tiny Llama.
// Each mutant must either parse (and then configure or fail with a GgufError) or throw a GgufError;
// any other exception is a reader bug. Failures print the seed and iteration to replay them.
import { describe, expect, test } from "bun:test";
import { tinyLlamaSpec } from "../scripts/make-malformed-gguf.ts";
import { llamaConfigFromGguf } from "../src/gguf/llama-config.ts";
import { pullModel } from "../src/gguf/pull.ts";
import { GgufError, parseGguf } from "../src/gguf/reader.ts";
import { writeGguf } from "../src/gguf/writer.ts";

/** mulberry32: a tiny seeded PRNG, so every run mutates the same bytes. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

type Outcome = "parsed+configured" | "parsed, config error" | "reader error";

/** Parses and configures; returns the outcome, or a description of the bug (a non-GgufError). */
function classify(bytes: Uint8Array): Outcome | `BUG: ${string}` {
  let file: ReturnType<typeof parseGguf>;
  try {
    file = parseGguf(bytes);
  } catch (err) {
    return err instanceof GgufError ? "reader error" : `BUG: reader threw ${String(err)}`;
  }
  try {
    llamaConfigFromGguf(file);
    return "parsed+configured";
  } catch (err) {
    return err instanceof GgufError ? "parsed, config error" : `BUG: config threw ${String(err)}`;
  }
}

interface Region {
  from: number;
  to: number;
}

/** Applies 1-4 random edits inside the regions, in place; returns an undo function. */
function mutateInPlace(bytes: Uint8Array, regions: Region[], next: () => number): () => void {
  const saved: Array<[number, number]> = [];
  const edits = 1 + Math.floor(next() * 4);
  for (let e = 0; e < edits; e++) {
    const r = regions[Math.floor(next() * regions.length)] as Region;
    const at = r.from + Math.floor(next() * (r.to - r.from));
    saved.push([at, bytes[at] as number]);
    const kind = next();
    if (kind < 0.5) bytes[at] = (bytes[at] as number) ^ (1 << Math.floor(next() * 8));
    else if (kind < 0.8) bytes[at] = Math.floor(next() * 256);
    else bytes[at] = next() < 0.5 ? 0xff : 0;
  }
  return () => {
    for (let i = saved.length - 1; i >= 0; i--) {
      const [at, b] = saved[i] as [number, number];
      bytes[at] = b;
    }
  };
}

function tally(outcomes: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
  return counts;
}

function bugs(outcomes: Array<{ what: string; outcome: string }>): string[] {
  return outcomes.filter((o) => o.outcome.startsWith("BUG")).map((o) => `${o.what}: ${o.outcome}`);
}

describe("fuzz: the real model's header region", async () => {
  const path = await pullModel();
  const fileSizeBytes = Bun.file(path).size;
  // The first 2 MiB hold the whole header (metadata + tensor table, ~1.8 MB) of SmolLM2; the rest
  // of the file is tensor data, which the reader never reads, so zeros stand in for it.
  const head = new Uint8Array(
    await Bun.file(path)
      .slice(0, 2 << 20)
      .arrayBuffer(),
  );
  const image = new Uint8Array(fileSizeBytes);
  image.set(head);
  const clean = parseGguf(image);
  const tableFrom = clean.tensors.length > 0 ? indexOf(head, "token_embd.weight") - 8 : clean.dataOffset;
  // Half the edits land where the structure is dense (header, first keys, tensor table).
  const regions: Region[] = [
    { from: 0, to: 4096 },
    { from: tableFrom, to: clean.dataOffset },
    { from: 0, to: clean.dataOffset },
  ];

  test("the unmutated image parses and configures (so mutants are judged against a valid file)", () => {
    expect(classify(image)).toBe("parsed+configured");
    expect(tableFrom).toBeGreaterThan(4096);
  });

  test("150 byte-mutated headers: GgufError or a valid parse, nothing else", () => {
    const seed = 0x6875_7a7a;
    const next = rng(seed);
    const results: Array<{ what: string; outcome: string }> = [];
    for (let i = 0; i < 150; i++) {
      const undo = mutateInPlace(image, regions, next);
      results.push({ what: `seed ${seed} iteration ${i}`, outcome: classify(image) });
      undo();
    }
    expect(bugs(results)).toEqual([]);
    // The fuzzer must actually exercise both sides; a run where everything fails early tests little.
    const counts = tally(results.map((r) => r.outcome));
    expect(counts["reader error"] ?? 0).toBeGreaterThan(10);
    expect(counts["parsed+configured"] ?? 0).toBeGreaterThan(10);
  }, 120_000);

  test("100 truncations and deleted ranges: GgufError or a valid parse", () => {
    const seed = 0x7472_756e;
    const next = rng(seed);
    const results: Array<{ what: string; outcome: string }> = [];
    const scratch = new Uint8Array(image.byteLength);
    for (let i = 0; i < 100; i++) {
      let mutant: Uint8Array;
      if (i % 2 === 0) {
        // Truncate: anywhere in the header, or inside the data.
        const cut = next() < 0.8 ? Math.floor(next() * clean.dataOffset) : Math.floor(next() * fileSizeBytes);
        mutant = image.subarray(0, cut);
      } else {
        // Delete 1-64 bytes from the header: everything after shifts out of place.
        const at = Math.floor(next() * clean.dataOffset);
        const n = 1 + Math.floor(next() * 64);
        // Beyond the copied head both image and scratch are zeros, so only the head is rewritten.
        scratch.set(head);
        scratch.set(head.subarray(at + n), at);
        scratch.fill(0, head.byteLength - n, head.byteLength);
        mutant = scratch.subarray(0, image.byteLength - n);
      }
      results.push({ what: `seed ${seed} iteration ${i}`, outcome: classify(mutant) });
    }
    expect(bugs(results)).toEqual([]);
    // Truncating the header always loses something the reader needs.
    expect(tally(results.map((r) => r.outcome))["reader error"] ?? 0).toBeGreaterThan(40);
  }, 120_000);
});

describe("fuzz: the corpus's tiny Llama", () => {
  const base = writeGguf(tinyLlamaSpec());
  const dataOffset = parseGguf(base).dataOffset;

  test("3000 mutants (edits anywhere in the header, truncations): GgufError or a valid parse", () => {
    const seed = 0x7469_6e79;
    const next = rng(seed);
    const bytes = base.slice();
    const results: Array<{ what: string; outcome: string }> = [];
    for (let i = 0; i < 3000; i++) {
      let outcome: string;
      if (i % 10 === 9) {
        outcome = classify(bytes.subarray(0, Math.floor(next() * bytes.byteLength)));
      } else {
        const undo = mutateInPlace(bytes, [{ from: 0, to: dataOffset }], next);
        outcome = classify(bytes);
        undo();
      }
      results.push({ what: `seed ${seed} iteration ${i}`, outcome });
    }
    expect(bugs(results)).toEqual([]);
    const counts = tally(results.map((r) => r.outcome));
    expect(counts["reader error"] ?? 0).toBeGreaterThan(300);
    expect(counts["parsed, config error"] ?? 0).toBeGreaterThan(30);
    expect(counts["parsed+configured"] ?? 0).toBeGreaterThan(30);
  }, 120_000);
});

function indexOf(bytes: Uint8Array, needle: string): number {
  const n = new TextEncoder().encode(needle);
  outer: for (let i = 0; i + n.length <= bytes.length; i++) {
    for (let j = 0; j < n.length; j++) if (bytes[i + j] !== n[j]) continue outer;
    return i;
  }
  return -1;
}
