// Model configuration from a parsed GGUF file (llama, smollm3, qwen2, qwen3, gemma3; what sets the families
// apart is in families.ts): hyper-parameters, the tensor set with the shape each tensor must have,
// tied-output detection and vocabulary consistency. Everything the
// forward pass relies on is checked here, so a bad file fails with an error that names the key or
// the tensor (and its wrong shape) instead of failing later inside a kernel.

import { checkVocabulary, Keys, ModelConfigError, shapeText, TensorChecks } from "./config-checks.ts";
import {
  type Architecture,
  FAMILIES,
  type GemmaTraits,
  gemmaTraits,
  isSupportedArchitecture,
  type SlidingWindow,
  SUPPORTED_ARCHITECTURES,
} from "./families.ts";
import type { GgufFile, GgufTensorInfo } from "./reader.ts";

export { ModelConfigError, SUPPORTED_ARCHITECTURES };

/** How positions are rotated; GGUF llama files use "norm" (adjacent pairs, Q/K pre-permuted). */
export type RopeType = "norm" | "neox";
export type RopeScalingType = "none" | "linear" | "yarn" | "longrope";

/** Tensors of one transformer block. Shapes are GGML order (dims[0] = row length = input size). */
export interface LlamaLayerTensors {
  /** [n_embd] F32 or F16 (as are all 1-D tensors here) */
  attnNorm: GgufTensorInfo;
  /** [n_embd, n_head * head_dim_k] */
  attnQ: GgufTensorInfo;
  /** [n_embd, n_head_kv * head_dim_k] */
  attnK: GgufTensorInfo;
  /** [n_embd, n_head_kv * head_dim_v] */
  attnV: GgufTensorInfo;
  /** [n_head * head_dim_v, n_embd] */
  attnOutput: GgufTensorInfo;
  /** Optional biases ([rows]), present in a few llama-architecture conversions. */
  attnQBias?: GgufTensorInfo;
  attnKBias?: GgufTensorInfo;
  attnVBias?: GgufTensorInfo;
  attnOutputBias?: GgufTensorInfo;
  /** [n_embd] */
  ffnNorm: GgufTensorInfo;
  /** [n_embd, n_ff] */
  ffnGate: GgufTensorInfo;
  /** [n_embd, n_ff] */
  ffnUp: GgufTensorInfo;
  /** [n_ff, n_embd] */
  ffnDown: GgufTensorInfo;
  /** [head_dim] per-head norms of Q and K (qwen3, gemma3). */
  attnQNorm?: GgufTensorInfo;
  attnKNorm?: GgufTensorInfo;
  /** [n_embd] norms of the attention and FFN outputs before the residual adds (gemma3). */
  postAttentionNorm?: GgufTensorInfo;
  postFfwNorm?: GgufTensorInfo;
}

export interface LlamaTensors {
  /** [n_embd, n_vocab] */
  tokenEmbd: GgufTensorInfo;
  /** [n_embd] F32 or F16 */
  outputNorm: GgufTensorInfo;
  /** [n_embd, n_vocab]; the very same object as tokenEmbd when the output is tied. */
  output: GgufTensorInfo;
  /** [rope_dim / 2] frequency factors (Llama 3.1 style long-context RoPE), if present. */
  ropeFreqs?: GgufTensorInfo;
  layers: LlamaLayerTensors[];
}

export interface LlamaConfig {
  /** general.architecture: one of SUPPORTED_ARCHITECTURES. */
  architecture: Architecture;
  /** general.name, if the file has one. */
  name: string | undefined;
  blockCount: number;
  embeddingLength: number;
  feedForwardLength: number;
  headCount: number;
  headCountKv: number;
  /** Per-head size of Q and K (attention.key_length, default n_embd / n_head). */
  headDim: number;
  /** Per-head size of V (attention.value_length, default headDim). */
  headDimV: number;
  /** headCount / headCountKv: query heads sharing one KV head. */
  gqaGroupSize: number;
  /** Rotated dimensions per head (rope.dimension_count, default headDim). */
  ropeDimensionCount: number;
  ropeFreqBase: number;
  ropeType: RopeType;
  ropeScalingType: RopeScalingType;
  /** rope.scaling.factor (1 when unscaled); positions are multiplied by ropeFreqScale = 1 / factor. */
  ropeScaleFactor: number;
  ropeFreqScale: number;
  /** rope.scaling.original_context_length, when the file gives one. */
  ropeOriginalContextLength: number | undefined;
  rmsNormEps: number;
  /** Training context length (llama.context_length). */
  contextLength: number;
  vocabSize: number;
  /** True when there is no output.weight and token_embd is used for the logits. */
  tiedOutput: boolean;
  /** Sliding-window attention (gemma3), if the file has a window. */
  slidingWindow: SlidingWindow | undefined;
  /** How embeddings are pooled (`<arch>.pooling_type`; the mean when the file does not say). */
  pooling: Pooling;
  /** Gemma 3's query and embedding scales; undefined for the other families. */
  gemma: GemmaTraits | undefined;
  tensors: LlamaTensors;
}

/**
 * How an embedding is pooled from a sequence's final hidden states (`<arch>.pooling_type`, as
 * llama.cpp numbers it): the mean of every token's, the first token's (cls) or the last token's.
 */
export type Pooling = "mean" | "cls" | "last";

/**
 * llama.cpp's pooling types by number: 0 (none) and an absent key give the mean, the default
 * of a decoder model; 4 (rank) belongs to rerankers, whose classifier head hearth does not run.
 */
function poolingOf(k: Keys, arch: string): Pooling {
  const key = `${arch}.pooling_type`;
  const n = k.int(key, 0, 4, 0);
  if (n === 4) throw new ModelConfigError(`metadata key "${key}" = 4 (rank, a reranker) is not supported`);
  return n === 2 ? "cls" : n === 3 ? "last" : "mean";
}

export interface LlamaConfigOptions {
  /** Reject tensors whose GGML type the native kernels cannot compute with (default true). */
  requireComputableTypes?: boolean;
}

// Bounds far above any real Llama, low enough that products of them cannot overflow 2^53.
const MAX_BLOCKS = 4096;
const MAX_EMBD = 1 << 20;
const MAX_FF = 1 << 22;
const MAX_HEADS = 4096;
const MAX_HEAD_DIM = 4096;
const MAX_CONTEXT = 1 << 24;
const MAX_VOCAB = 1 << 24;

function ropeScaling(k: Keys, arch: string): { type: RopeScalingType; factor: number } {
  const type = k.string(`${arch}.rope.scaling.type`, "none");
  if (type !== "none" && type !== "linear" && type !== "yarn" && type !== "longrope") {
    throw new ModelConfigError(
      `metadata key "${arch}.rope.scaling.type" = "${type}" is not one of none, linear, yarn, longrope`,
    );
  }
  const positive = (x: number) => x > 0 && x <= 1e6;
  let factor = k.float(`${arch}.rope.scaling.factor`, positive, "in (0, 1e6]", 0);
  // Older files give the linear factor as rope.scale_linear.
  if (factor === 0) factor = k.float(`${arch}.rope.scale_linear`, positive, "in (0, 1e6]", 1);
  return { type: type === "none" && factor !== 1 ? "linear" : type, factor };
}

function configOf(file: GgufFile, opts: LlamaConfigOptions): LlamaConfig {
  const k = new Keys(file.metadata);
  const arch = k.string("general.architecture");
  if (!isSupportedArchitecture(arch)) {
    throw new ModelConfigError(
      `unsupported architecture "${arch}" (general.architecture); hearth runs: ${SUPPORTED_ARCHITECTURES.join(", ")}`,
    );
  }
  const p = `${arch}.`;
  const family = FAMILIES[arch];
  if (k.int(`${p}expert_count`, 0, MAX_HEADS, 0) > 0) {
    throw new ModelConfigError(`mixture-of-experts models (${p}expert_count > 0) are not supported`);
  }
  const blockCount = k.int(`${p}block_count`, 1, MAX_BLOCKS);
  const nEmbd = k.int(`${p}embedding_length`, 1, MAX_EMBD);
  const nFf = k.int(`${p}feed_forward_length`, 1, MAX_FF);
  const nHead = k.int(`${p}attention.head_count`, 1, MAX_HEADS);
  const nHeadKv = k.int(`${p}attention.head_count_kv`, 1, MAX_HEADS, nHead);
  if (nHead % nHeadKv !== 0) {
    throw new ModelConfigError(
      `${p}attention.head_count ${nHead} is not a multiple of ${p}attention.head_count_kv ${nHeadKv}`,
    );
  }
  if (!k.has(`${p}attention.key_length`) && nEmbd % nHead !== 0) {
    throw new ModelConfigError(
      `${p}embedding_length ${nEmbd} is not a multiple of ${p}attention.head_count ${nHead} ` +
        `and ${p}attention.key_length is not given`,
    );
  }
  const headDim = k.int(`${p}attention.key_length`, 1, MAX_HEAD_DIM, nEmbd / nHead);
  const headDimV = k.int(`${p}attention.value_length`, 1, MAX_HEAD_DIM, headDim);
  const ropeDims = k.int(`${p}rope.dimension_count`, 2, headDim, headDim);
  if (ropeDims % 2 !== 0) {
    throw new ModelConfigError(`${p}rope.dimension_count ${ropeDims} must be even (RoPE rotates pairs)`);
  }
  const ropeFreqBase = k.float(`${p}rope.freq_base`, (x) => x > 1, "greater than 1", 10_000);
  const scaling = ropeScaling(k, arch);
  const ropeOriginalContextLength = k.has(`${p}rope.scaling.original_context_length`)
    ? k.int(`${p}rope.scaling.original_context_length`, 1, MAX_CONTEXT)
    : undefined;
  const rmsNormEps = k.float(`${p}attention.layer_norm_rms_epsilon`, (x) => x > 0 && x < 1, "in (0, 1)");
  const contextLength = k.int(`${p}context_length`, 1, MAX_CONTEXT);
  const gemma =
    arch === "gemma3"
      ? gemmaTraits(k, { blockCount, embeddingLength: nEmbd, headCount: nHead, headDim })
      : undefined;

  const t = new TensorChecks(file, opts.requireComputableTypes ?? true);
  const embd = file.tensorsByName.get("token_embd.weight");
  if (embd === undefined) {
    throw new ModelConfigError(`missing tensor "token_embd.weight" (expected shape [${nEmbd}, n_vocab])`);
  }
  const vocabSize = embd.dims[1] ?? 0;
  if (vocabSize < 1 || vocabSize > MAX_VOCAB) {
    throw new ModelConfigError(
      `tensor "token_embd.weight" has shape ${shapeText(embd.dims)}, expected [${nEmbd}, n_vocab]`,
    );
  }
  const declaredVocab = k.int(`${p}vocab_size`, 1, MAX_VOCAB, vocabSize);
  if (declaredVocab !== vocabSize) {
    throw new ModelConfigError(
      `${p}vocab_size ${declaredVocab} does not match token_embd.weight's ${vocabSize} rows`,
    );
  }
  const tokenEmbd = t.required("token_embd.weight", [nEmbd, vocabSize], "n_embd, n_vocab");
  checkVocabulary(k, vocabSize);
  const outputNorm = t.required("output_norm.weight", [nEmbd], "n_embd");
  const untiedOutput = t.optional("output.weight", [nEmbd, vocabSize], "n_embd, n_vocab");
  const ropeFreqs = t.optional("rope_freqs.weight", [ropeDims / 2], "rope_dim / 2");

  const qRows = nHead * headDim;
  const kRows = nHeadKv * headDim;
  const vRows = nHeadKv * headDimV;
  const layers: LlamaLayerTensors[] = [];
  for (let i = 0; i < blockCount; i++) {
    const b = `blk.${i}.`;
    layers.push({
      attnNorm: t.required(`${b}attn_norm.weight`, [nEmbd], "n_embd"),
      attnQ: t.required(`${b}attn_q.weight`, [nEmbd, qRows], "n_embd, n_head * head_dim"),
      attnK: t.required(`${b}attn_k.weight`, [nEmbd, kRows], "n_embd, n_head_kv * head_dim"),
      attnV: t.required(`${b}attn_v.weight`, [nEmbd, vRows], "n_embd, n_head_kv * head_dim_v"),
      attnOutput: t.required(
        `${b}attn_output.weight`,
        [nHead * headDimV, nEmbd],
        "n_head * head_dim_v, n_embd",
      ),
      attnQBias: t.optional(`${b}attn_q.bias`, [qRows], "n_head * head_dim"),
      attnKBias: t.optional(`${b}attn_k.bias`, [kRows], "n_head_kv * head_dim"),
      attnVBias: t.optional(`${b}attn_v.bias`, [vRows], "n_head_kv * head_dim_v"),
      attnOutputBias: t.optional(`${b}attn_output.bias`, [nEmbd], "n_embd"),
      ffnNorm: t.required(`${b}ffn_norm.weight`, [nEmbd], "n_embd"),
      ffnGate: t.required(`${b}ffn_gate.weight`, [nEmbd, nFf], "n_embd, n_ff"),
      ffnUp: t.required(`${b}ffn_up.weight`, [nEmbd, nFf], "n_embd, n_ff"),
      ffnDown: t.required(`${b}ffn_down.weight`, [nFf, nEmbd], "n_ff, n_embd"),
    });
    const layer = layers[i] as LlamaLayerTensors;
    if (family.qkNorm) {
      layer.attnQNorm = t.required(`${b}attn_q_norm.weight`, [headDim], "head_dim");
      layer.attnKNorm = t.required(`${b}attn_k_norm.weight`, [headDim], "head_dim");
    }
    if (family.postNorms) {
      layer.postAttentionNorm = t.required(`${b}post_attention_norm.weight`, [nEmbd], "n_embd");
      layer.postFfwNorm = t.required(`${b}post_ffw_norm.weight`, [nEmbd], "n_embd");
    }
    // Drop absent optional keys so the object only holds tensors that exist.
    const entries = layer as unknown as Record<string, unknown>;
    for (const key of Object.keys(entries)) if (entries[key] === undefined) delete entries[key];
  }
  // A tensor nothing reads means the file is not the model its metadata describes (for example a
  // block_count smaller than the real number of blocks).
  const extra = file.tensors.filter((x) => !t.used.has(x.name));
  if (extra.length > 0) {
    const shown = extra
      .slice(0, 3)
      .map((x) => `"${x.name}"`)
      .join(", ");
    throw new ModelConfigError(
      `unexpected tensor ${shown}${extra.length > 3 ? ` and ${extra.length - 3} more` : ""} ` +
        `for a ${arch} model with ${blockCount} blocks`,
    );
  }

  const config: LlamaConfig = {
    architecture: arch,
    name: k.has("general.name") ? k.string("general.name") : undefined,
    blockCount,
    embeddingLength: nEmbd,
    feedForwardLength: nFf,
    headCount: nHead,
    headCountKv: nHeadKv,
    headDim,
    headDimV,
    gqaGroupSize: nHead / nHeadKv,
    ropeDimensionCount: ropeDims,
    ropeFreqBase,
    ropeType: family.ropeType,
    ropeScalingType: scaling.type,
    ropeScaleFactor: scaling.factor,
    ropeFreqScale: 1 / scaling.factor,
    ropeOriginalContextLength,
    rmsNormEps,
    contextLength,
    vocabSize,
    tiedOutput: untiedOutput === undefined,
    slidingWindow: gemma?.slidingWindow,
    pooling: poolingOf(k, arch),
    gemma,
    tensors: { tokenEmbd, outputNorm, output: untiedOutput ?? tokenEmbd, layers },
  };
  if (ropeFreqs !== undefined) config.tensors.ropeFreqs = ropeFreqs;
  return config;
}

/**
 * The Llama configuration of a parsed GGUF file. Throws ModelConfigError (a GgufError) naming the
 * missing or mistyped metadata key, or the missing tensor / the tensor with its wrong shape.
 */
export function llamaConfigFromGguf(file: GgufFile, opts: LlamaConfigOptions = {}): LlamaConfig {
  try {
    return configOf(file, opts);
  } catch (err) {
    if (err instanceof ModelConfigError && file.path !== undefined)
      err.message = `${file.path}: ${err.message}`;
    throw err;
  }
}
