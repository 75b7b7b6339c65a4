// What sets the model families hearth runs apart (general.architecture): the RoPE layout, the
// tensors only some of them have, and Gemma 3's sliding window, query scale and embedding scale.
// The forward passes are zig/model/llama.zig (llama, smollm3, qwen2, qwen3) and zig/model/gemma3.zig.

import { type Keys, ModelConfigError } from "./config-checks.ts";

export const SUPPORTED_ARCHITECTURES = ["llama", "smollm3", "qwen2", "qwen3", "gemma3"] as const;
export type Architecture = (typeof SUPPORTED_ARCHITECTURES)[number];

export interface FamilyTraits {
  /** "norm": adjacent pairs (llama GGUFs, Q/K pre-permuted); "neox": split halves. */
  ropeType: "norm" | "neox";
  /** Per-head RMSNorm of Q and K before RoPE (attn_q_norm / attn_k_norm, [head_dim]). */
  qkNorm: boolean;
  /** RMSNorm of the attention and FFN outputs before their residual adds. */
  postNorms: boolean;
  /** k > 0: layers l with (l + 1) % k == 0 use no RoPE (SmolLM3: 4, as llama.cpp fixes it). */
  noRopeLayerStep: number;
}

export const FAMILIES: Readonly<Record<Architecture, FamilyTraits>> = {
  llama: { ropeType: "norm", qkNorm: false, postNorms: false, noRopeLayerStep: 0 },
  smollm3: { ropeType: "norm", qkNorm: false, postNorms: false, noRopeLayerStep: 4 },
  qwen2: { ropeType: "neox", qkNorm: false, postNorms: false, noRopeLayerStep: 0 },
  qwen3: { ropeType: "neox", qkNorm: true, postNorms: false, noRopeLayerStep: 0 },
  gemma3: { ropeType: "neox", qkNorm: true, postNorms: true, noRopeLayerStep: 0 },
};

export function isSupportedArchitecture(arch: string): arch is Architecture {
  return (SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch);
}

/** Sliding-window attention: layer l slides when l % pattern < pattern - 1 (0: every layer). */
export interface SlidingWindow {
  /** Keys a sliding layer sees, its own included. */
  size: number;
  pattern: number;
  /** RoPE of the sliding layers (unscaled). */
  ropeFreqBase: number;
}

/** Gemma 3's extras, as llama.cpp reads them (llama.cpp/src/models/gemma3.cpp). */
export interface GemmaTraits {
  slidingWindow: SlidingWindow | undefined;
  /** Q is multiplied by this after RoPE; the scores are not scaled again. */
  queryScale: number;
  /** Embedding rows are multiplied by sqrt(n_embd). */
  embeddingScale: number;
}

export function gemmaTraits(
  k: Keys,
  dims: { blockCount: number; embeddingLength: number; headCount: number; headDim: number },
): GemmaTraits {
  const p = "gemma3.";
  const window = k.int(`${p}attention.sliding_window`, 0, 1 << 24, 0);
  let slidingWindow: SlidingWindow | undefined;
  if (window > 0) {
    // A per-layer array pattern is refused by k.int, naming the key.
    slidingWindow = {
      size: window,
      pattern: k.int(`${p}attention.sliding_window_pattern`, 0, 1 << 16, 6),
      ropeFreqBase: k.float(`${p}rope.freq_base_swa`, (x) => x > 1, "greater than 1", 10_000),
    };
  }
  const softcap = k.float(`${p}final_logit_softcapping`, (x) => x >= 0, "not negative", 0);
  if (softcap !== 0) throw new ModelConfigError(`${p}final_logit_softcapping ${softcap} is not supported`);
  // Gemma's query_pre_attn_scalar: the head size, except 27B (62 blocks), whose is n_embd / n_head.
  const scalar = dims.blockCount === 62 ? Math.floor(dims.embeddingLength / dims.headCount) : dims.headDim;
  return {
    slidingWindow,
    // 1.0f / sqrtf(x), each step rounded to f32 as in llama.cpp.
    queryScale: Math.fround(1 / Math.fround(Math.sqrt(scalar))),
    embeddingScale: Math.fround(Math.sqrt(dims.embeddingLength)),
  };
}
