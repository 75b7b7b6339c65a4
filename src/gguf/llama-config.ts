// Llama model configuration from a parsed GGUF file: hyper-parameters, the tensor set with the
// shape each tensor must have, tied-output detection and vocabulary consistency. Everything the
// forward pass relies on is checked here, so a bad file fails with an error that names the key or
// the tensor (and its wrong shape) instead of failing later inside a kernel.

import { GgufError, type GgufFile, type GgufTensorInfo, type GgufValue } from "./reader.ts";
import { computableGgmlTypes, ggmlTypes } from "./types.ts";

/** A GGUF file that parses but does not describe a model hearth can run. */
export class ModelConfigError extends GgufError {
  override name = "ModelConfigError";
}

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
  /** general.architecture (always "llama" for now). */
  architecture: string;
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
  tensors: LlamaTensors;
}

export interface LlamaConfigOptions {
  /** Reject tensors whose GGML type the native kernels cannot compute with (default true). */
  requireComputableTypes?: boolean;
}

export const SUPPORTED_ARCHITECTURES: readonly string[] = ["llama"];

// Bounds far above any real Llama, low enough that products of them cannot overflow 2^53.
const MAX_BLOCKS = 4096;
const MAX_EMBD = 1 << 20;
const MAX_FF = 1 << 22;
const MAX_HEADS = 4096;
const MAX_HEAD_DIM = 4096;
const MAX_CONTEXT = 1 << 24;
const MAX_VOCAB = 1 << 24;

const SPECIAL_TOKEN_KEYS = [
  "bos_token_id",
  "eos_token_id",
  "eot_token_id",
  "eom_token_id",
  "unknown_token_id",
  "padding_token_id",
  "separator_token_id",
  "cls_token_id",
  "mask_token_id",
];

/** Typed, range-checked metadata access whose errors name the key. */
class Keys {
  constructor(private readonly md: Map<string, GgufValue>) {}

  private describe(x: GgufValue): string {
    if (Array.isArray(x) || ArrayBuffer.isView(x)) return "an array";
    return `${typeof x} ${String(x)}`;
  }

  has(key: string): boolean {
    return this.md.has(key);
  }

  int(key: string, min: number, max: number, fallback?: number): number {
    const x = this.md.get(key);
    if (x === undefined) {
      if (fallback !== undefined) return fallback;
      throw new ModelConfigError(`missing required metadata key "${key}"`);
    }
    if (Array.isArray(x) || ArrayBuffer.isView(x)) {
      throw new ModelConfigError(`metadata key "${key}" is an array; per-layer values are not supported`);
    }
    if (typeof x !== "number" && typeof x !== "bigint") {
      throw new ModelConfigError(`metadata key "${key}" should be an integer, got ${this.describe(x)}`);
    }
    if (typeof x === "number" && !Number.isInteger(x)) {
      throw new ModelConfigError(`metadata key "${key}" should be an integer, got ${x}`);
    }
    if (x < min || x > max) {
      throw new ModelConfigError(`metadata key "${key}" = ${x} is out of range [${min}, ${max}]`);
    }
    return Number(x);
  }

  float(key: string, check: (x: number) => boolean, rule: string, fallback?: number): number {
    const x = this.md.get(key);
    if (x === undefined) {
      if (fallback !== undefined) return fallback;
      throw new ModelConfigError(`missing required metadata key "${key}"`);
    }
    if (typeof x !== "number") {
      throw new ModelConfigError(`metadata key "${key}" should be a number, got ${this.describe(x)}`);
    }
    if (!Number.isFinite(x) || !check(x)) {
      throw new ModelConfigError(`metadata key "${key}" = ${x} is invalid: must be ${rule}`);
    }
    return x;
  }

  string(key: string, fallback?: string): string {
    const x = this.md.get(key);
    if (x === undefined) {
      if (fallback !== undefined) return fallback;
      throw new ModelConfigError(`missing required metadata key "${key}"`);
    }
    if (typeof x !== "string") {
      throw new ModelConfigError(`metadata key "${key}" should be a string, got ${this.describe(x)}`);
    }
    return x;
  }

  /** Length of an array value, checking the element kind. */
  arrayLength(key: string, kind: "string" | "float" | "int"): number | undefined {
    const x = this.md.get(key);
    if (x === undefined) return undefined;
    const ok =
      kind === "string"
        ? Array.isArray(x) && x.every((e) => typeof e === "string")
        : kind === "float"
          ? x instanceof Float32Array || x instanceof Float64Array
          : x instanceof Int32Array ||
            x instanceof Uint32Array ||
            x instanceof Int16Array ||
            x instanceof Uint16Array ||
            x instanceof Int8Array ||
            x instanceof Uint8Array;
    if (!ok) throw new ModelConfigError(`metadata key "${key}" should be an array of ${kind}s`);
    return (x as ArrayLike<unknown>).length;
  }
}

function shapeText(dims: readonly number[]): string {
  return `[${dims.join(", ")}]`;
}

/** Finds and checks the tensors one expected-shape table names. */
class TensorChecks {
  readonly used = new Set<string>();

  constructor(
    private readonly file: GgufFile,
    private readonly requireComputable: boolean,
  ) {}

  private check(t: GgufTensorInfo, shape: readonly number[], meaning: string, vector: boolean): void {
    const same = t.dims.length === shape.length && t.dims.every((d, i) => d === shape[i]);
    if (!same) {
      throw new ModelConfigError(
        `tensor "${t.name}" has shape ${shapeText(t.dims)}, expected ${shapeText(shape)} (${meaning})`,
      );
    }
    // Norm weights, biases and RoPE factors are used elementwise: float types only.
    if (vector && t.typeName !== "F32" && t.typeName !== "F16") {
      throw new ModelConfigError(`tensor "${t.name}" has type ${t.typeName}, expected F32 or F16`);
    }
    if (this.requireComputable && !computableGgmlTypes.has(t.typeId)) {
      const names = [...computableGgmlTypes].map((id) => ggmlTypes.get(id)?.name).join(", ");
      throw new ModelConfigError(
        `tensor "${t.name}" has type ${t.typeName}, which hearth cannot compute with (supported: ${names})`,
      );
    }
  }

  required(name: string, shape: readonly number[], meaning: string): GgufTensorInfo {
    const t = this.file.tensorsByName.get(name);
    if (t === undefined) {
      throw new ModelConfigError(`missing tensor "${name}" (expected shape ${shapeText(shape)}, ${meaning})`);
    }
    this.check(t, shape, meaning, shape.length === 1);
    this.used.add(name);
    return t;
  }

  optional(name: string, shape: readonly number[], meaning: string): GgufTensorInfo | undefined {
    const t = this.file.tensorsByName.get(name);
    if (t === undefined) return undefined;
    this.check(t, shape, meaning, shape.length === 1);
    this.used.add(name);
    return t;
  }
}

function checkVocabulary(k: Keys, vocabSize: number): void {
  const tokens = k.arrayLength("tokenizer.ggml.tokens", "string");
  if (tokens === undefined)
    throw new ModelConfigError(`missing required metadata key "tokenizer.ggml.tokens"`);
  if (tokens !== vocabSize) {
    throw new ModelConfigError(
      `tokenizer.ggml.tokens has ${tokens} entries but token_embd.weight has ${vocabSize} rows`,
    );
  }
  for (const [key, kind] of [
    ["tokenizer.ggml.scores", "float"],
    ["tokenizer.ggml.token_type", "int"],
  ] as const) {
    const n = k.arrayLength(key, kind);
    if (n !== undefined && n !== tokens) {
      throw new ModelConfigError(
        `${key} has ${n} entries but tokenizer.ggml.tokens has ${tokens}: mismatched tokenizer arrays`,
      );
    }
  }
  k.arrayLength("tokenizer.ggml.merges", "string");
  k.string("tokenizer.ggml.model");
  for (const name of SPECIAL_TOKEN_KEYS) {
    const key = `tokenizer.ggml.${name}`;
    if (!k.has(key)) continue;
    // Some converters write -1 (as int32 or as u32 0xFFFFFFFF) for "no such token".
    const id = k.int(key, -1, 0xffff_ffff);
    if (id !== -1 && id !== 0xffff_ffff && id >= vocabSize) {
      throw new ModelConfigError(
        `metadata key "${key}" = ${id} is not a token id (vocabulary has ${vocabSize})`,
      );
    }
  }
}

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
  if (!SUPPORTED_ARCHITECTURES.includes(arch)) {
    throw new ModelConfigError(
      `unsupported architecture "${arch}" (general.architecture); hearth runs: ${SUPPORTED_ARCHITECTURES.join(", ")}`,
    );
  }
  const p = `${arch}.`;
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
    // Drop absent optional keys so the object only holds tensors that exist.
    const layer = layers[i] as unknown as Record<string, unknown>;
    for (const key of Object.keys(layer)) if (layer[key] === undefined) delete layer[key];
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
    ropeType: "norm",
    ropeScalingType: scaling.type,
    ropeScaleFactor: scaling.factor,
    ropeFreqScale: 1 / scaling.factor,
    ropeOriginalContextLength,
    rmsNormEps,
    contextLength,
    vocabSize,
    tiedOutput: untiedOutput === undefined,
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
