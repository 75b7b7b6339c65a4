// NativeModel over bun:ffi: reads the GGUF header in TS (src/gguf), hands the hyperparameters and
// the tensor table to zig/model/model.zig (which mmaps the file itself; every family shares its
// model and engine step), and wraps decode / seq / KV.
import type { Pointer } from "bun:ffi";
import { type Architecture, FAMILIES } from "../gguf/families.ts";
import { GgufError, type GgufFile, type LlamaConfig, llamaConfigFromGguf, readGguf } from "../gguf/index.ts";
import { createKvTiers } from "./kv-tiers.ts";
import { check, lastError, library, NativeError, nativeAbi } from "./lib.ts";
import { defaultThreads, nativeLimits } from "./limits.ts";
import {
  type Batch,
  type DraftingNativeModel,
  type DraftOut,
  KvFullError,
  type KvStats,
  type KvTierOptions,
  type KvTierStats,
  type ModelInfo,
  type NativeKvTiers,
} from "./model-api.ts";
import { type PoolStats, readPoolStats } from "./pool-stats.ts";

export interface NativeModelOptions {
  /** Worker threads of the native pool, the calling thread included (default: all cores). */
  threads?: number;
  /** KV pool size in pages of `kvPageTokens()` tokens, allocated once (default 512). */
  kvPages?: number;
  /** Storage of K and V (default "f16"; "q8_0" halves it). */
  kvType?: "f16" | "q8_0";
  /** Most rows one decode call may carry (default 512). */
  maxBatchTokens?: number;
  /** Most sequences open at once (default 16). */
  maxSequences?: number;
}

/** Tensors in the order the native side expects (zig/model/model.zig global_tensors, layer_tensors). */
const GLOBAL_TENSORS = [
  "token_embd.weight",
  "output_norm.weight",
  "output.weight",
  "rope_freqs.weight",
] as const;
const LAYER_TENSORS = [
  "attn_norm.weight",
  "attn_q.weight",
  "attn_k.weight",
  "attn_v.weight",
  "attn_output.weight",
  "ffn_norm.weight",
  "ffn_gate.weight",
  "ffn_up.weight",
  "ffn_down.weight",
  // Only in the families that have them (the configuration checked which must be there).
  "attn_q.bias",
  "attn_k.bias",
  "attn_v.bias",
  "attn_q_norm.weight",
  "attn_k_norm.weight",
  "post_attention_norm.weight",
  "post_ffw_norm.weight",
] as const;
const FIRST_OPTIONAL_LAYER_TENSOR = 9;
const OPTIONAL_TENSORS = new Set(["output.weight", "rope_freqs.weight"]);
const ABSENT_TYPE = 0xffff_ffff;

/** ops.RopeType in zig/ops.zig. */
const ROPE_NORMAL = 0;
const ROPE_NEOX = 2;
const KV_TYPES = { f16: 1, q8_0: 8 } as const;
/** model.Arch in zig/model/model.zig. */
const ARCH_IDS: Readonly<Record<Architecture, number>> = {
  llama: 0,
  qwen2: 1,
  qwen3: 2,
  gemma3: 3,
  smollm3: 4,
};

export interface LlamaHparams {
  nVocab: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  headDim: number;
  nFf: number;
  nCtxTrain: number;
  ropeDims: number;
  ropeType: number;
  ropeFreqBase: number;
  ropeFreqScale: number;
  rmsEps: number;
  arch: number;
  /** Keys a sliding-window layer sees (0: none slide); layer l slides when l % swaPattern < swaPattern - 1. */
  nSwa: number;
  swaPattern: number;
  ropeFreqBaseSwa: number;
  ropeFreqScaleSwa: number;
  /** Q scaled after RoPE instead of the scores (gemma3); 0: scores scaled by 1/sqrt(head_dim). */
  qScale: number;
  embdScale: number;
  /** k > 0: layers l with (l + 1) % k == 0 use no RoPE (SmolLM3). */
  noRopeLayerStep: number;
}

/**
 * The Llama hyperparameters the native model takes, from the validated configuration
 * (llamaConfigFromGguf names the key or tensor when something is missing or wrong), so the
 * runtime accepts exactly the files the configuration layer accepts.
 */
export function llamaHparams(file: GgufFile): { arch: string; hp: LlamaHparams; config: LlamaConfig } {
  const c = llamaConfigFromGguf(file);
  if (c.tensors.layers.some((l) => l.attnOutputBias !== undefined)) {
    throw new GgufError(`tensor "blk.N.attn_output.bias" is not supported`);
  }
  if (c.ropeScalingType !== "none" && c.ropeScalingType !== "linear") {
    throw new GgufError(`rope scaling type "${c.ropeScalingType}" is not supported (none, linear)`);
  }
  if (c.headDimV !== c.headDim) {
    throw new GgufError(
      `value head size ${c.headDimV} differs from key head size ${c.headDim}: not supported`,
    );
  }
  const hp: LlamaHparams = {
    nVocab: c.vocabSize,
    nEmbd: c.embeddingLength,
    nLayer: c.blockCount,
    nHead: c.headCount,
    nHeadKv: c.headCountKv,
    headDim: c.headDim,
    nFf: c.feedForwardLength,
    nCtxTrain: c.contextLength,
    ropeDims: c.ropeDimensionCount,
    ropeType: c.ropeType === "neox" ? ROPE_NEOX : ROPE_NORMAL,
    ropeFreqBase: c.ropeFreqBase,
    ropeFreqScale: c.ropeFreqScale,
    rmsEps: c.rmsNormEps,
    arch: ARCH_IDS[c.architecture],
    nSwa: c.slidingWindow?.size ?? 0,
    swaPattern: c.slidingWindow?.pattern ?? 0,
    ropeFreqBaseSwa: c.slidingWindow?.ropeFreqBase ?? 0,
    ropeFreqScaleSwa: 1,
    qScale: c.gemma?.queryScale ?? 0,
    embdScale: c.gemma?.embeddingScale ?? 1,
    noRopeLayerStep: FAMILIES[c.architecture].noRopeLayerStep,
  };
  return { arch: c.architecture, hp, config: c };
}

function encodeHparams(hp: LlamaHparams): Uint8Array {
  const L = nativeAbi().layouts.hparams;
  const buf = new ArrayBuffer(L.sizeBytes);
  const v = new DataView(buf);
  const u32 = [
    ["n_vocab", hp.nVocab],
    ["n_embd", hp.nEmbd],
    ["n_layer", hp.nLayer],
    ["n_head", hp.nHead],
    ["n_head_kv", hp.nHeadKv],
    ["head_dim", hp.headDim],
    ["n_ff", hp.nFf],
    ["n_ctx_train", hp.nCtxTrain],
    ["rope_dims", hp.ropeDims],
    ["rope_type", hp.ropeType],
    ["arch", hp.arch],
    ["n_swa", hp.nSwa],
    ["swa_pattern", hp.swaPattern],
    ["no_rope_layer_step", hp.noRopeLayerStep],
  ] as const;
  const f32 = [
    ["rope_freq_base", hp.ropeFreqBase],
    ["rope_freq_scale", hp.ropeFreqScale],
    ["rms_eps", hp.rmsEps],
    ["rope_freq_base_swa", hp.ropeFreqBaseSwa],
    ["rope_freq_scale_swa", hp.ropeFreqScaleSwa],
    ["q_scale", hp.qScale],
    ["embd_scale", hp.embdScale],
  ] as const;
  for (const [f, x] of u32) v.setUint32(L.offset[f], x, true);
  for (const [f, x] of f32) v.setFloat32(L.offset[f], x, true);
  return new Uint8Array(buf);
}

/** The fixed-order tensor table; a missing required tensor is a GgufError naming it. */
function encodeTensors(file: GgufFile, nLayer: number): { bytes: Uint8Array; count: number } {
  // Bound the loop by what the file can hold: an absurd block_count (2^40) must be an error,
  // not a 10^13-entry name list (found by the malformed corpus, test/fixtures/malformed). Each
  // block needs at least one tensor; smaller excesses get the precise "missing tensor" below.
  if (nLayer > file.tensors.length) {
    throw new GgufError(`block_count ${nLayer} is larger than the file's ${file.tensors.length} tensors`);
  }
  const names: string[] = [...GLOBAL_TENSORS];
  const optional = new Set<string>(OPTIONAL_TENSORS);
  for (let l = 0; l < nLayer; l++) {
    LAYER_TENSORS.forEach((t, i) => {
      names.push(`blk.${l}.${t}`);
      if (i >= FIRST_OPTIONAL_LAYER_TENSOR) optional.add(`blk.${l}.${t}`);
    });
  }
  const L = nativeAbi().layouts.tensorDesc;
  const buf = new ArrayBuffer(names.length * L.sizeBytes);
  const view = new DataView(buf);
  names.forEach((name, i) => {
    const base = i * L.sizeBytes;
    const t = file.tensorsByName.get(name);
    if (!t) {
      if (!optional.has(name)) throw new GgufError(`missing tensor "${name}"`);
      view.setUint32(base + L.offset.type, ABSENT_TYPE, true);
      return;
    }
    view.setBigUint64(base + L.offset.offset, BigInt(t.fileOffset), true);
    view.setBigUint64(base + L.offset.size_bytes, BigInt(t.sizeBytes), true);
    view.setUint32(base + L.offset.type, t.typeId, true);
    view.setUint32(base + L.offset.n_dims, t.dims.length, true);
    t.dims.forEach((d, k) => {
      if (k < 4) view.setBigUint64(base + L.offset.dims + 8 * k, BigInt(d), true);
    });
  });
  return { bytes: new Uint8Array(buf), count: names.length };
}

/** A reusable batch with room for `capacity` rows. */
export function createBatch(capacity: number): Batch {
  if (!Number.isInteger(capacity) || capacity <= 0)
    throw new RangeError(`batch capacity must be a positive integer, got ${capacity}`);
  return {
    capacity,
    length: 0,
    tokens: new Int32Array(capacity),
    positions: new Int32Array(capacity),
    seqIds: new Int32Array(capacity),
    wantLogits: new Uint8Array(capacity),
  };
}

function positiveInt(name: string, v: number, max: number): number {
  if (!Number.isInteger(v) || v <= 0 || v > max)
    throw new RangeError(`${name} must be an integer in [1, ${max}], got ${v}`);
  return v;
}

class FfiNativeModel implements DraftingNativeModel {
  readonly info: ModelInfo;
  private handle: Pointer | null;
  private readonly lib = library();
  private readonly statsLayout = nativeAbi().layouts.kvStats;
  private readonly statsBuf = new BigUint64Array(Math.ceil(this.statsLayout.sizeBytes / 8));
  private readonly statsView = new DataView(this.statsBuf.buffer);
  private readonly statusKvFull = nativeAbi().limits.status.kv_full;

  private readonly kv: NativeKvTiers;

  constructor(handle: Pointer, info: ModelInfo, modelTag: bigint, maxTokens: number) {
    this.handle = handle;
    this.info = info;
    this.kv = createKvTiers(this.lib, () => this.h(), modelTag, maxTokens);
  }

  // KV tiers (zig/kv): prefix sharing, SSD tier, session files.
  kvTierOpen(opts: KvTierOptions): void {
    this.kv.kvTierOpen(opts);
  }
  seqCreateWithPrefix(tokens: ArrayLike<number>): { seqId: number; reusedTokens: number } {
    return this.kv.seqCreateWithPrefix(tokens);
  }
  seqPublish(seqId: number, tokens: ArrayLike<number>): number {
    return this.kv.seqPublish(seqId, tokens);
  }
  kvTierSpill(tokens: ArrayLike<number>, fromTokens: number): number {
    return this.kv.kvTierSpill(tokens, fromTokens);
  }
  kvTierReclaimable(): number {
    return this.kv.kvTierReclaimable();
  }
  kvTierCheckpoint(): number {
    return this.kv.kvTierCheckpoint();
  }
  kvTierPersist(): number {
    return this.kv.kvTierPersist();
  }
  kvTierStats(): KvTierStats {
    return this.kv.kvTierStats();
  }
  get kvModelTag(): bigint {
    return this.kv.kvModelTag;
  }
  kvRecordBytes(): number {
    return this.kv.kvRecordBytes();
  }
  kvChain(tokens: ArrayLike<number>): { keys: BigUint64Array; localPages: number } {
    return this.kv.kvChain(tokens);
  }
  kvPageExport(tokens: ArrayLike<number>, page: number, out: Uint8Array): void {
    this.kv.kvPageExport(tokens, page, out);
  }
  kvPageImport(tokens: ArrayLike<number>, page: number, record: Uint8Array): boolean {
    return this.kv.kvPageImport(tokens, page, record);
  }
  kvPageUnpin(tokens: ArrayLike<number>, page: number, used: boolean): boolean {
    return this.kv.kvPageUnpin(tokens, page, used);
  }
  seqSave(seqId: number, tokens: ArrayLike<number>, path: string): number {
    return this.kv.seqSave(seqId, tokens, path);
  }
  seqRestore(path: string): { seqId: number; tokens: number[] } {
    return this.kv.seqRestore(path);
  }

  private h(): Pointer {
    if (this.handle === null) throw new NativeError(-1, "model is closed");
    return this.handle;
  }

  seqCreate(): number {
    return check(this.lib.hearth_seq_create(this.h()), "seqCreate");
  }
  seqFree(seqId: number): void {
    check(this.lib.hearth_seq_free(this.h(), seqId), "seqFree");
  }
  seqLength(seqId: number): number {
    return check(this.lib.hearth_seq_length(this.h(), seqId), "seqLength");
  }
  seqShift(seqId: number, keep: number, drop: number): void {
    check(this.lib.hearth_seq_shift(this.h(), seqId, keep, drop), "seqShift");
  }

  decode(batch: Batch, out: Float32Array): number {
    return this.step(batch, out, this.info.vocabSize, this.lib.hearth_model_decode);
  }

  decodeHidden(batch: Batch, out: Float32Array): number {
    return this.step(batch, out, this.info.embeddingLength, this.lib.hearth_model_decode_hidden);
  }

  draft(batch: Batch, depths: Uint8Array, maxDepth: number, out: DraftOut): number {
    const n = batch.length;
    if (!Number.isInteger(n) || n < 1 || n > batch.capacity) {
      throw new RangeError(`batch length ${n} must be an integer in [1, ${batch.capacity}]`);
    }
    let drafting = 0;
    for (let i = 0; i < n; i++) if (batch.wantLogits[i] !== 0) drafting++;
    if (!Number.isInteger(maxDepth) || maxDepth < 1 || maxDepth > 255)
      throw new RangeError(`maxDepth ${maxDepth} must be an integer in [1, 255]`);
    if (depths.length < drafting || out.counts.length < drafting || out.tokens.length < drafting * maxDepth)
      throw new RangeError(
        `draft: ${drafting} drafting sequences need larger depths / tokens / counts arrays`,
      );
    const rc = this.lib.hearth_model_draft(
      this.h(),
      n,
      batch.tokens,
      batch.positions,
      batch.seqIds,
      batch.wantLogits,
      depths,
      drafting,
      maxDepth,
      out.logits,
      Math.floor(out.logits.length / this.info.vocabSize),
      out.tokens,
      out.counts,
    );
    if (rc === this.statusKvFull) throw new KvFullError(`draft: ${lastError() || "KV pool full"}`);
    return check(rc, "draft");
  }

  private step(
    batch: Batch,
    out: Float32Array,
    rowFloats: number,
    call: typeof this.lib.hearth_model_decode,
  ): number {
    const n = batch.length;
    if (!Number.isInteger(n) || n < 0 || n > batch.capacity) {
      throw new RangeError(`batch length ${n} must be an integer in [0, ${batch.capacity}]`);
    }
    if (n === 0) return 0;
    const capRows = Math.floor(out.length / rowFloats);
    const rc = call(
      this.h(),
      n,
      batch.tokens,
      batch.positions,
      batch.seqIds,
      batch.wantLogits,
      capRows > 0 ? out : null,
      capRows,
    );
    if (rc === this.statusKvFull) {
      throw new KvFullError(`decode: ${lastError() || "KV pool full"}`);
    }
    return check(rc, "decode");
  }

  kvStats(): KvStats {
    check(this.lib.hearth_kv_stats(this.h(), this.statsBuf), "kvStats");
    const v = this.statsView;
    const at = this.statsLayout.offset;
    return {
      pageTokens: v.getUint32(at.page_tokens, true),
      pagesTotal: v.getUint32(at.pages_total, true),
      pagesFree: v.getUint32(at.pages_free, true),
      pageSizeBytes: Number(v.getBigUint64(at.page_size_bytes, true)),
    };
  }

  poolStats(): PoolStats {
    return readPoolStats((out) => check(this.lib.hearth_model_pool_stats(this.h(), out), "poolStats"));
  }

  close(): void {
    if (this.handle === null) return;
    this.lib.hearth_model_destroy(this.handle);
    this.handle = null;
  }
}

/**
 * Opens a GGUF model for native inference. `file` may pass an already parsed header (from
 * readGguf) to avoid parsing it twice. Throws GgufError for a malformed or unsupported file,
 * NativeError when the native side rejects it.
 */
export function openNativeModel(
  path: string,
  opts: NativeModelOptions = {},
  file?: GgufFile,
): DraftingNativeModel {
  const gguf = file ?? readGguf(path);
  const { arch, hp, config } = llamaHparams(gguf);
  const kvType = opts.kvType ?? "f16";
  if (!(kvType in KV_TYPES)) throw new RangeError(`kvType must be "f16" or "q8_0", got ${String(kvType)}`);
  const limits = nativeLimits();
  const kvPages = positiveInt("kvPages", opts.kvPages ?? 512, limits.maxKvPages);
  const OL = nativeAbi().layouts.options;
  const options = new Uint8Array(OL.sizeBytes);
  const ov = new DataView(options.buffer);
  ov.setUint32(
    OL.offset.n_threads,
    positiveInt("threads", opts.threads ?? defaultThreads(), limits.maxThreads),
    true,
  );
  ov.setUint32(OL.offset.kv_pages, kvPages, true);
  ov.setUint32(OL.offset.kv_type, KV_TYPES[kvType], true);
  ov.setUint32(
    OL.offset.max_batch_tokens,
    positiveInt("maxBatchTokens", opts.maxBatchTokens ?? 512, limits.maxBatchTokens),
    true,
  );
  ov.setUint32(
    OL.offset.max_sequences,
    positiveInt("maxSequences", opts.maxSequences ?? 16, limits.maxSequences),
    true,
  );
  const tensors = encodeTensors(gguf, hp.nLayer);
  const pathBytes = new TextEncoder().encode(path);
  const out = new BigUint64Array(1);
  const lib = library();
  // The parse of the file's metadata leaves garbage behind (tens of MB for a 262k-token vocabulary)
  // that no later allocation would make the collector reclaim soon: collect it now, before the
  // weights are copied, so it does not sit on top of them in the process's peak memory.
  Bun.gc(true);
  check(
    lib.hearth_model_create(
      pathBytes,
      pathBytes.length,
      encodeHparams(hp),
      options,
      tensors.bytes,
      tensors.count,
      out,
    ),
    `open ${path}`,
  );
  const handle = Number(out[0]) as Pointer;
  const info: ModelInfo = {
    architecture: arch,
    vocabSize: hp.nVocab,
    contextLength: hp.nCtxTrain,
    embeddingLength: hp.nEmbd,
    layerCount: hp.nLayer,
    headCount: hp.nHead,
    headCountKv: hp.nHeadKv,
    headDim: hp.headDim,
    formats: [...new Set(gguf.tensors.map((t) => t.typeName))].sort(),
    slidingWindow: config.slidingWindow?.size ?? null,
    pooling: config.pooling,
  };
  // Identity of the KV this model produces: hyperparameters, tensor table, file size, KV type.
  const hpBytes = encodeHparams(hp);
  const tagSource = new Uint8Array(hpBytes.length + tensors.bytes.length + 16);
  tagSource.set(hpBytes, 0);
  tagSource.set(tensors.bytes, hpBytes.length);
  new DataView(tagSource.buffer).setFloat64(hpBytes.length + tensors.bytes.length, gguf.fileSizeBytes, true);
  tagSource[tagSource.length - 1] = KV_TYPES[kvType];
  const modelTag = BigInt.asUintN(64, BigInt(Bun.hash(tagSource)));
  return new FfiNativeModel(handle, info, modelTag, kvPages * limits.kvPageTokens);
}
