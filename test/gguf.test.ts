// GGUF reader on the real default model: metadata, tensor table, alignment.
import { describe, expect, test } from "bun:test";
import { GgufError, GgufMetadata, parseGguf, readGguf } from "../src/gguf/index.ts";
import { pullModel } from "../src/gguf/pull.ts";

describe("GGUF reader on SmolLM2-135M-Instruct Q4_1", async () => {
  const path = await pullModel();
  const f = readGguf(path);
  const md = new GgufMetadata(f.metadata);

  test("header and metadata", () => {
    expect(f.version).toBe(3);
    expect(md.string("general.architecture")).toBe("llama");
    expect(md.number("llama.block_count")).toBe(30);
    expect(md.number("llama.embedding_length")).toBe(576);
    expect(md.number("llama.attention.head_count")).toBe(9);
    expect(md.number("llama.attention.head_count_kv")).toBe(3);
    expect(md.string("tokenizer.ggml.model")).toBe("gpt2");
    expect(md.strings("tokenizer.ggml.tokens").length).toBe(49152);
  });

  test("tensor table: types, alignment, offsets inside the file", () => {
    expect(f.alignment).toBe(32);
    expect(f.tensors.length).toBe(272);
    expect(f.tensorsByName.get("token_embd.weight")?.typeName).toBe("Q8_0");
    expect(f.tensorsByName.get("blk.0.attn_q.weight")?.typeName).toBe("Q4_1");
    expect(f.tensorsByName.get("blk.0.attn_q.weight")?.dims).toEqual([576, 576]);
    for (const t of f.tensors) {
      expect(t.fileOffset % f.alignment).toBe(0);
      expect(t.fileOffset + t.sizeBytes).toBeLessThanOrEqual(f.fileSizeBytes);
    }
  });

  test("a truncated copy is a GgufError naming the problem, never a crash", async () => {
    const bytes = new Uint8Array(await Bun.file(path).slice(0, 1_000_000).arrayBuffer());
    expect(() => parseGguf(bytes)).toThrow(GgufError);
    expect(() => parseGguf(bytes.subarray(0, 3))).toThrow(GgufError);
  });

  test("typed accessors name the missing key", () => {
    expect(() => md.number("llama.nope")).toThrow(/missing required metadata key "llama.nope"/);
    expect(() => md.number("general.architecture")).toThrow(/should be a number/);
  });
});
