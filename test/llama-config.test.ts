// llamaConfigFromGguf: the real SmolLM2 file's configuration and tensor set, and the variants a
// valid Llama file may take (untied output, biases, GQA/MHA, RoPE scaling, explicit head sizes).
import { describe, expect, test } from "bun:test";
import { TINY, tinyLlamaMetadata, tinyLlamaTensors } from "../scripts/make-malformed-gguf.ts";
import { llamaConfigFromGguf, ModelConfigError } from "../src/gguf/llama-config.ts";
import { pullModel } from "../src/gguf/pull.ts";
import { GgufError, parseGguf, readGguf } from "../src/gguf/reader.ts";
import type { GgufKvSpec, GgufTensorSpec, GgufValueSpec } from "../src/gguf/writer.ts";
import { v, writeGguf } from "../src/gguf/writer.ts";
import { FAMILY_CASES, TINY_WINDOW, tinyFamilyModel } from "./support/tiny-families.ts";

describe("SmolLM2-135M-Instruct Q4_1", async () => {
  const path = await pullModel();
  const file = readGguf(path);
  const c = llamaConfigFromGguf(file);

  test("hyper-parameters match the model card", () => {
    expect(c.architecture).toBe("llama");
    expect(c.blockCount).toBe(30);
    expect(c.embeddingLength).toBe(576);
    expect(c.feedForwardLength).toBe(1536);
    expect(c.headCount).toBe(9);
    expect(c.headCountKv).toBe(3);
    expect(c.gqaGroupSize).toBe(3);
    expect(c.headDim).toBe(64);
    expect(c.headDimV).toBe(64);
    expect(c.ropeDimensionCount).toBe(64);
    expect(c.ropeFreqBase).toBe(100_000);
    expect(c.ropeType).toBe("norm");
    expect(c.ropeScalingType).toBe("none");
    expect(c.ropeFreqScale).toBe(1);
    expect(c.rmsNormEps).toBeCloseTo(1e-5, 10);
    expect(c.contextLength).toBe(8192);
    expect(c.vocabSize).toBe(49_152);
  });

  test("tied output: output is token_embd (Q8_0), and there is no output.weight", () => {
    expect(c.tiedOutput).toBe(true);
    expect(file.tensorsByName.has("output.weight")).toBe(false);
    expect(c.tensors.output).toBe(c.tensors.tokenEmbd);
    expect(c.tensors.tokenEmbd.typeName).toBe("Q8_0");
    expect(c.tensors.tokenEmbd.dims).toEqual([576, 49_152]);
  });

  test("every layer has its nine tensors with the expected shapes and types", () => {
    expect(c.tensors.layers.length).toBe(30);
    const used = new Set([c.tensors.tokenEmbd.name, c.tensors.outputNorm.name]);
    for (const [i, l] of c.tensors.layers.entries()) {
      expect(l.attnQ.name).toBe(`blk.${i}.attn_q.weight`);
      expect(l.attnNorm.dims).toEqual([576]);
      expect(l.attnNorm.typeName).toBe("F32");
      expect(l.attnQ.dims).toEqual([576, 576]);
      expect(l.attnK.dims).toEqual([576, 192]);
      expect(l.attnV.dims).toEqual([576, 192]);
      expect(l.attnOutput.dims).toEqual([576, 576]);
      expect(l.ffnGate.dims).toEqual([576, 1536]);
      expect(l.ffnUp.dims).toEqual([576, 1536]);
      expect(l.ffnDown.dims).toEqual([1536, 576]);
      expect(l.ffnNorm.typeName).toBe("F32");
      expect(l.attnQBias).toBeUndefined();
      for (const t of Object.values(l)) used.add(t.name);
    }
    // Every tensor in the file is accounted for: 2 + 30 * 9.
    expect(used.size).toBe(file.tensors.length);
  });

  test("a copy missing one layer's tensor is rejected by name", () => {
    const trimmed = { ...file, tensors: file.tensors.filter((t) => t.name !== "blk.17.ffn_gate.weight") };
    trimmed.tensorsByName = new Map(trimmed.tensors.map((t) => [t.name, t]));
    expect(() => llamaConfigFromGguf(trimmed)).toThrow(
      /missing tensor "blk.17.ffn_gate.weight" \(expected shape \[576, 1536\], n_embd, n_ff\)/,
    );
  });

  test("config errors name the file", () => {
    const md = new Map(file.metadata);
    md.delete("llama.context_length");
    expect(() => llamaConfigFromGguf({ ...file, metadata: md })).toThrow(
      new RegExp(`${path.replaceAll(".", "\\.")}: missing required metadata key "llama.context_length"`),
    );
  });
});

/** The corpus's tiny Llama with metadata replaced/added and tensors edited, parsed back. */
function tiny(
  extra: Record<string, GgufValueSpec> = {},
  edit: (ts: GgufTensorSpec[]) => GgufTensorSpec[] = (ts) => ts,
) {
  const md: GgufKvSpec[] = tinyLlamaMetadata().filter((kv) => !((kv.key as string) in extra));
  for (const [key, value] of Object.entries(extra)) md.push({ key, value });
  return parseGguf(writeGguf({ metadata: md, tensors: edit(tinyLlamaTensors()) }));
}

describe("valid variants of a Llama file", () => {
  test("the tiny corpus base is a valid Llama", () => {
    const c = llamaConfigFromGguf(tiny());
    expect(c.blockCount).toBe(TINY.blocks);
    expect(c.headDim).toBe(TINY.headDim);
    expect(c.vocabSize).toBe(TINY.vocab);
    expect(c.tiedOutput).toBe(true);
    expect(c.ropeFreqBase).toBe(10_000);
  });

  test("an output.weight of the right shape unties the output", () => {
    const c = llamaConfigFromGguf(
      tiny({}, (ts) => [...ts, { name: "output.weight", dims: [TINY.embd, TINY.vocab], type: 8 }]),
    );
    expect(c.tiedOutput).toBe(false);
    expect(c.tensors.output.name).toBe("output.weight");
    expect(c.tensors.output).not.toBe(c.tensors.tokenEmbd);
  });

  test("optional Q/K/V/O biases and rope_freqs are picked up with their shapes checked", () => {
    const c = llamaConfigFromGguf(
      tiny({}, (ts) => [
        ...ts,
        { name: "blk.0.attn_q.bias", dims: [64], type: 0 },
        { name: "blk.0.attn_k.bias", dims: [32], type: 0 },
        { name: "blk.0.attn_v.bias", dims: [32], type: 0 },
        { name: "blk.0.attn_output.bias", dims: [64], type: 0 },
        { name: "rope_freqs.weight", dims: [16], type: 0 },
      ]),
    );
    expect(c.tensors.layers[0]?.attnKBias?.dims).toEqual([32]);
    expect(c.tensors.layers[0]?.attnOutputBias?.dims).toEqual([64]);
    expect(c.tensors.layers[1]?.attnQBias).toBeUndefined();
    expect("attnQBias" in (c.tensors.layers[1] ?? {})).toBe(false);
    expect(c.tensors.ropeFreqs?.dims).toEqual([16]);
    expect(() =>
      llamaConfigFromGguf(tiny({}, (ts) => [...ts, { name: "blk.1.attn_k.bias", dims: [64], type: 0 }])),
    ).toThrow(/tensor "blk.1.attn_k.bias" has shape \[64\], expected \[32\]/);
  });

  test("head_count_kv defaults to head_count (multi-head attention)", () => {
    const c = llamaConfigFromGguf(
      tiny({ "llama.attention.head_count_kv": v.u32(2) }, (ts) =>
        ts.map((t) => (/attn_[kv]\.weight$/.test(t.name as string) ? { ...t, dims: [64, 64] } : t)),
      ),
    );
    expect(c.headCountKv).toBe(2);
    expect(c.gqaGroupSize).toBe(1);
  });

  test("explicit key_length / value_length override n_embd / n_head", () => {
    // 2 heads of 16 on n_embd 64, 1 KV head: Q is [64, 32], K/V [64, 16], O [32, 64].
    const c = llamaConfigFromGguf(
      tiny(
        {
          "llama.attention.key_length": v.u32(16),
          "llama.attention.value_length": v.u32(16),
          "llama.rope.dimension_count": v.u32(16),
        },
        (ts) =>
          ts.map((t) => {
            if ((t.name as string).endsWith("attn_q.weight")) return { ...t, dims: [64, 32] };
            if (/attn_[kv]\.weight$/.test(t.name as string)) return { ...t, dims: [64, 16] };
            if ((t.name as string).endsWith("attn_output.weight")) return { ...t, dims: [32, 64] };
            return t;
          }),
      ),
    );
    expect(c.headDim).toBe(16);
    expect(c.headDimV).toBe(16);
    expect(c.ropeDimensionCount).toBe(16);
  });

  test("RoPE scaling: linear factor from rope.scaling.factor or the older rope.scale_linear", () => {
    const a = llamaConfigFromGguf(
      tiny({ "llama.rope.scaling.type": v.str("linear"), "llama.rope.scaling.factor": v.f32(4) }),
    );
    expect([a.ropeScalingType, a.ropeScaleFactor, a.ropeFreqScale]).toEqual(["linear", 4, 0.25]);
    const b = llamaConfigFromGguf(tiny({ "llama.rope.scale_linear": v.f32(2) }));
    expect([b.ropeScalingType, b.ropeScaleFactor, b.ropeFreqScale]).toEqual(["linear", 2, 0.5]);
    const y = llamaConfigFromGguf(
      tiny({
        "llama.rope.scaling.type": v.str("yarn"),
        "llama.rope.scaling.factor": v.f32(8),
        "llama.rope.scaling.original_context_length": v.u32(64),
      }),
    );
    expect([y.ropeScalingType, y.ropeOriginalContextLength]).toEqual(["yarn", 64]);
  });

  test("integer keys may be any integer type; -1 (or 0xFFFFFFFF) means no such special token", () => {
    const c = llamaConfigFromGguf(
      tiny({
        "llama.block_count": v.u64(2n),
        "llama.embedding_length": v.i32(64),
        "llama.context_length": v.u16(256),
        "tokenizer.ggml.padding_token_id": v.i32(-1),
        "tokenizer.ggml.unknown_token_id": v.u32(0xffff_ffff),
      }),
    );
    expect(c.blockCount).toBe(2);
    expect(c.contextLength).toBe(256);
  });

  test("F16 norm weights are accepted (the native side widens them)", () => {
    const c = llamaConfigFromGguf(
      tiny({}, (ts) => ts.map((t) => (t.name === "output_norm.weight" ? { ...t, type: 1 } : t))),
    );
    expect(c.tensors.outputNorm.typeName).toBe("F16");
  });

  test("requireComputableTypes: false accepts a type the kernels lack", () => {
    const file = tiny({}, (ts) => ts.map((t) => (t.name === "blk.0.attn_q.weight" ? { ...t, type: 39 } : t)));
    expect(() => llamaConfigFromGguf(file)).toThrow(/MXFP4, which hearth cannot compute/);
    expect(
      llamaConfigFromGguf(file, { requireComputableTypes: false }).tensors.layers[0]?.attnQ.typeName,
    ).toBe("MXFP4");
  });

  test("ModelConfigError is a GgufError, so one catch handles every bad file", () => {
    let caught: unknown;
    try {
      llamaConfigFromGguf(tiny({ "general.architecture": v.str("bert") }));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ModelConfigError);
    expect(caught).toBeInstanceOf(GgufError);
    expect((caught as Error).name).toBe("ModelConfigError");
  });
});

describe("model families (families.ts)", () => {
  test("an unsupported architecture names itself and lists what hearth runs", () => {
    expect(() => llamaConfigFromGguf(tiny({ "general.architecture": v.str("mamba") }))).toThrow(
      'unsupported architecture "mamba" (general.architecture); hearth runs: llama, smollm3, qwen2, qwen3, gemma3',
    );
  });

  test("each family's configuration: rope layout, its own tensors, Gemma 3's window and scales", () => {
    for (const c of FAMILY_CASES) {
      const cfg = llamaConfigFromGguf(parseGguf(tinyFamilyModel(c)));
      const layer = cfg.tensors.layers[0];
      expect(cfg.ropeType).toBe(c === "llama3" || c === "smollm3" ? "norm" : "neox");
      expect(layer?.attnQBias !== undefined).toBe(c === "qwen2");
      expect(layer?.attnQNorm !== undefined).toBe(c === "qwen3" || c === "gemma3");
      expect(layer?.postFfwNorm !== undefined).toBe(c === "gemma3");
      expect(cfg.tensors.ropeFreqs !== undefined).toBe(c === "llama3");
      expect(cfg.tiedOutput).toBe(c !== "llama3");
      if (c === "gemma3") {
        expect(cfg.slidingWindow).toEqual({ size: TINY_WINDOW, pattern: 2, ropeFreqBase: 10_000 });
        expect(cfg.gemma?.queryScale).toBe(1 / 8); // 1 / sqrt(key_length 64)
        expect(cfg.gemma?.embeddingScale).toBe(16); // sqrt(n_embd 256)
      } else expect(cfg.gemma).toBeUndefined();
    }
  });

  test("a family's own tensor missing, or another family's present, is an error naming it", () => {
    const qwen3 = parseGguf(tinyFamilyModel("qwen3"));
    const withoutNorm = { ...qwen3, tensorsByName: new Map(qwen3.tensorsByName) };
    withoutNorm.tensorsByName.delete("blk.1.attn_k_norm.weight");
    expect(() => llamaConfigFromGguf(withoutNorm)).toThrow('missing tensor "blk.1.attn_k_norm.weight"');
    const asQwen2 = parseGguf(tinyFamilyModel("qwen3"));
    asQwen2.metadata.set("general.architecture", "qwen2");
    for (const key of [...asQwen2.metadata.keys()]) {
      if (key.startsWith("qwen3."))
        asQwen2.metadata.set(`qwen2.${key.slice(6)}`, asQwen2.metadata.get(key) as never);
    }
    expect(() => llamaConfigFromGguf(asQwen2)).toThrow(/unexpected tensor "blk.0.attn_q_norm.weight"/);
  });
});
