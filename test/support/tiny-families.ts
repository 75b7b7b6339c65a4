// Tiny random-weight models of each family hearth runs (Llama 3.x, SmolLM3, Qwen 2, Qwen 3, Gemma 3), with
// the real tensor names and metadata, written by hearth's GGUF writer. F32 weights, dimensions that
// are multiples of 256, a seeded Rng: the same bytes every time, so the logits llama.cpp computed
// from them (test/fixtures/families.json, made by bench/peers/make-family-fixtures.ts) stay valid.

import { GgufValueType as T } from "../../src/gguf/types.ts";
import { type GgufKvSpec, type GgufTensorSpec, v, writeGguf } from "../../src/gguf/writer.ts";
import { Rng } from "../../src/sampling/index.ts";

export const FAMILY_CASES = ["llama3", "qwen2", "qwen3", "gemma3", "smollm3"] as const;
export type FamilyCase = (typeof FAMILY_CASES)[number];

/** Four blocks: SmolLM3's fourth has no RoPE. */
const DIMS = { embd: 256, ff: 512, heads: 4, kvHeads: 2, headDim: 64, vocab: 512, blocks: 4 };
/** Gemma's sliding window here: short, so a 40-token prompt crosses it many times. */
export const TINY_WINDOW = 5;
/** The token ids every case is fed (positions 0..n-1, one sequence). */
export const TINY_PROMPT: readonly number[] = (() => {
  const rng = new Rng(4242);
  return Array.from({ length: 40 }, () => 3 + Math.floor(rng.nextFloat() * (DIMS.vocab - 3)));
})();
/** Positions whose logits the fixture keeps. */
export const TINY_ROWS: readonly number[] = [0, 1, 4, 5, 6, 11, 17, 26, 33, 39];

const F32 = 0;

function f32Tensor(name: string, dims: number[], fill: (i: number) => number): GgufTensorSpec {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = fill(i);
  return { name, dims, type: F32, data: new Uint8Array(data.buffer) };
}

/** Llama 3's rope_freqs: 1 for short wavelengths, 8 for long ones, smooth in between. */
function llama3Factors(pairs: number, base: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < pairs; i++) {
    const wavelen = 2 * Math.PI * base ** ((2 * i) / (2 * pairs));
    const low = 64 / 1;
    const high = 64 / 4;
    if (wavelen < high) out.push(1);
    else if (wavelen > low) out.push(8);
    else {
      const smooth = (64 / wavelen - 1) / (4 - 1);
      out.push(1 / ((1 - smooth) / 8 + smooth));
    }
  }
  return out;
}

/** The GGUF bytes of one tiny family model. */
export function tinyFamilyModel(which: FamilyCase): Uint8Array {
  const { embd, ff, heads, kvHeads, headDim, vocab, blocks } = DIMS;
  const rng = new Rng(FAMILY_CASES.indexOf(which) + 1);
  const uni = (a: number) => (rng.nextFloat() * 2 - 1) * a;
  const arch = which === "llama3" ? "llama" : which;
  const p = `${arch}.`;
  const ropeBase = which === "llama3" ? 500_000 : which === "gemma3" ? 1_000_000 : 10_000;
  const tokens = Array.from(
    { length: vocab },
    (_, i) => (i < 3 ? ["<unk>", "<s>", "</s>"][i] : `t${i}`) as string,
  );
  const metadata: GgufKvSpec[] = [
    { key: "general.architecture", value: v.str(arch) },
    { key: "general.name", value: v.str(`tiny-${which} (random weights)`) },
    { key: `${p}block_count`, value: v.u32(blocks) },
    { key: `${p}context_length`, value: v.u32(4096) },
    { key: `${p}embedding_length`, value: v.u32(embd) },
    { key: `${p}feed_forward_length`, value: v.u32(ff) },
    { key: `${p}attention.head_count`, value: v.u32(heads) },
    { key: `${p}attention.head_count_kv`, value: v.u32(kvHeads) },
    { key: `${p}attention.key_length`, value: v.u32(headDim) },
    { key: `${p}attention.value_length`, value: v.u32(headDim) },
    { key: `${p}rope.freq_base`, value: v.f32(ropeBase) },
    { key: `${p}attention.layer_norm_rms_epsilon`, value: v.f32(1e-6) },
    { key: "tokenizer.ggml.model", value: v.str("gpt2") },
    { key: "tokenizer.ggml.pre", value: v.str("default") },
    { key: "tokenizer.ggml.tokens", value: v.strs(tokens) },
    {
      key: "tokenizer.ggml.token_type",
      value: v.arr(
        T.INT32,
        tokens.map((_, i) => (i < 3 ? 3 : 1)),
      ),
    },
    { key: "tokenizer.ggml.merges", value: v.strs(["t 1"]) },
    { key: "tokenizer.ggml.bos_token_id", value: v.u32(1) },
    { key: "tokenizer.ggml.eos_token_id", value: v.u32(2) },
  ];
  if (which === "gemma3") {
    metadata.push(
      { key: `${p}attention.sliding_window`, value: v.u32(TINY_WINDOW) },
      { key: `${p}attention.sliding_window_pattern`, value: v.u32(2) },
    );
  }
  const mat = (name: string, cols: number, rows: number) =>
    f32Tensor(name, [cols, rows], () => uni(Math.sqrt(3 / cols)));
  // Gemma's GGUF norms are 1 + w; the others' are w: random around 1 either way.
  const norm = (name: string, n: number) => f32Tensor(name, [n], () => 1 + uni(0.3));
  const tensors: GgufTensorSpec[] = [
    f32Tensor("token_embd.weight", [embd, vocab], () => uni(which === "gemma3" ? 0.1 : 1)),
    norm("output_norm.weight", embd),
  ];
  if (which === "llama3") {
    tensors.push(mat("output.weight", embd, vocab));
    const f = llama3Factors(headDim / 2, ropeBase);
    tensors.push(f32Tensor("rope_freqs.weight", [headDim / 2], (i) => f[i] as number));
  }
  for (let l = 0; l < blocks; l++) {
    const b = `blk.${l}.`;
    tensors.push(
      norm(`${b}attn_norm.weight`, embd),
      mat(`${b}attn_q.weight`, embd, heads * headDim),
      mat(`${b}attn_k.weight`, embd, kvHeads * headDim),
      mat(`${b}attn_v.weight`, embd, kvHeads * headDim),
      mat(`${b}attn_output.weight`, heads * headDim, embd),
      norm(`${b}ffn_norm.weight`, embd),
      mat(`${b}ffn_gate.weight`, embd, ff),
      mat(`${b}ffn_up.weight`, embd, ff),
      mat(`${b}ffn_down.weight`, ff, embd),
    );
    if (which === "qwen2") {
      tensors.push(
        f32Tensor(`${b}attn_q.bias`, [heads * headDim], () => uni(0.5)),
        f32Tensor(`${b}attn_k.bias`, [kvHeads * headDim], () => uni(0.5)),
        f32Tensor(`${b}attn_v.bias`, [kvHeads * headDim], () => uni(0.5)),
      );
    }
    if (which === "qwen3" || which === "gemma3") {
      tensors.push(norm(`${b}attn_q_norm.weight`, headDim), norm(`${b}attn_k_norm.weight`, headDim));
    }
    if (which === "gemma3") {
      tensors.push(norm(`${b}post_attention_norm.weight`, embd), norm(`${b}post_ffw_norm.weight`, embd));
    }
  }
  return writeGguf({ metadata, tensors });
}
