// The contract between the TypeScript runtime (session, engine) and the native model.
// src/native/model.ts implements it over bun:ffi; the engine and session only see this.
import type { Pooling } from "../gguf/llama-config.ts";
import type { PoolStats } from "./pool-stats.ts";

/** Shape facts of a loaded model that the runtime needs. */
export interface ModelInfo {
  architecture: string;
  vocabSize: number;
  contextLength: number; // trained context length (from GGUF)
  embeddingLength: number;
  layerCount: number;
  headCount: number;
  headCountKv: number;
  headDim: number;
  /** GGML types of the file's tensors ("F32", "Q4_K", ...), sorted. */
  formats: string[];
  /** Keys a sliding-window layer attends to (Gemma 3), or null when every layer sees the whole context. */
  slidingWindow: number | null;
  /** How embeddings are pooled from the final hidden states (the GGUF's `<arch>.pooling_type`). */
  pooling: Pooling;
}

/** KV pool occupancy, in pages of `pageTokens` tokens. */
export interface KvStats {
  pageTokens: number;
  pagesTotal: number;
  pagesFree: number;
  pageSizeBytes: number;
}

/**
 * One engine step's input. Rows are tokens; TS owns and reuses these arrays
 * (allocate once with a capacity, set `length` per step). Row i appends token
 * `tokens[i]` at rope position `positions[i]` to the KV of sequence `seqIds[i]`;
 * rows of one sequence must be in increasing position order.
 * If `wantLogits[i]` is 1, a logits row is produced for row i.
 */
export interface Batch {
  readonly capacity: number;
  length: number;
  readonly tokens: Int32Array;
  readonly positions: Int32Array;
  readonly seqIds: Int32Array;
  readonly wantLogits: Uint8Array;
}

/** Thrown when the KV pool has no free page for a sequence; nothing was written. */
export class KvFullError extends Error {
  override name = "KvFullError";
}

/**
 * The forward pass, KV sequences and KV tiers of a model (what the engine and sessions drive).
 * The tiers are part of every model: before kvTierOpen there is no prefix cache, so
 * seqCreateWithPrefix reuses nothing and seqPublish registers nothing.
 */
export interface NativeModel extends NativeKvTiers {
  readonly info: ModelInfo;
  /** Opens a new empty sequence in the KV cache and returns its id. */
  seqCreate(): number;
  /** Frees every page of a sequence at once; the id becomes invalid. */
  seqFree(seqId: number): void;
  /** Number of tokens currently held in the sequence's KV. */
  seqLength(seqId: number): number;
  /**
   * Context shift: keeps the first `keep` tokens, drops the next `drop`, and
   * re-ropes the remaining ones so positions stay contiguous.
   */
  seqShift(seqId: number, keep: number, drop: number): void;
  /**
   * One forward pass over the batch: a single FFI call. Writes the logits rows
   * (vocabSize floats each, in batch order of rows with wantLogits=1) into `out`.
   * Returns the number of logits rows written. Throws KvFullError if pages ran out.
   */
  decode(batch: Batch, out: Float32Array): number;
  /**
   * The same step, writing for each row with wantLogits=1 its final hidden state after the
   * output norm (embeddingLength floats, what embeddings pool) instead of logits. Returns the
   * number of rows written. Throws KvFullError if pages ran out.
   */
  decodeHidden(batch: Batch, out: Float32Array): number;
  kvStats(): KvStats;
  /** The native thread pool's counters (absent from test doubles). */
  poolStats?(): PoolStats;
  close(): void;
}

/** Where a greedy draft (NativeDrafting.draft) writes: `maxDepth` ids per drafting sequence, and their counts. */
export interface DraftOut {
  /** Drafting sequences x maxDepth ids (sequence j's draft at j * maxDepth). */
  readonly tokens: Int32Array;
  /** Ids drafted per sequence. */
  readonly counts: Int32Array;
  /** Scratch for one logits row per drafting sequence. */
  readonly logits: Float32Array;
}

/** Greedy drafting in one native call (a draft model's part of speculative decoding). */
export interface NativeDrafting {
  /**
   * Decodes the batch, then drafts greedily for each row with wantLogits=1 (a sequence's last
   * known token; sequence j is the j-th such row): up to `depths[j]` (1..maxDepth) tokens, each
   * fed back into the sequence's KV as the next row except the last. A full pool ends drafting
   * early (KvFullError only when the first decode does not fit). Returns the rounds run.
   */
  draft(batch: Batch, depths: Uint8Array, maxDepth: number, out: DraftOut): number;
}

/** Options of the KV tiers (zig/kv): prefix sharing, a RAM hot tier, an optional SSD cold tier. */
export interface KvTierOptions {
  /** Bytes of KV pages the prefix cache may keep in RAM (the hot tier). */
  hotBudgetBytes: number;
  /** Cold tier directory (slab files + manifest); omit for RAM only. */
  dir?: string;
  /** Most bytes of slab files on SSD (a quota; writes beyond it are dropped, never fatal). */
  coldMaxBytes?: number;
}

/** Counters of the prefix cache and its tiers (KvTierStats names match zig/kv/prefix.zig Stats). */
export interface KvTierStats {
  lookups: number;
  tokensReused: number;
  pagesShared: number;
  pagesCopied: number;
  hotHits: number;
  coldHits: number;
  coldMisses: number;
  spilled: number;
  dropped: number;
  reclaimed: number;
  hotPages: number;
  hotCapacityPages: number;
  entries: number;
  manifestEntriesLoaded: number;
  manifestRejected: number;
  coldWritesQueued: number;
  coldWritesOk: number;
  coldWritesFailed: number;
  coldWritesDropped: number;
  coldBytesWritten: number;
  coldReadsOk: number;
  coldReadsBad: number;
  coldBytesRead: number;
  coldSlotsUsed: number;
  coldSlotsTotal: number;
  /** SSD faults by kind (zig/kv/tier.zig Fault): pages a full disk, a read-only place, an I/O
   * error, a missing or truncated file, or a failed verification cost. */
  coldFaultsEnospc: number;
  coldFaultsReadonly: number;
  coldFaultsIo: number;
  coldFaultsMissing: number;
  coldFaultsTruncated: number;
  coldFaultsChecksum: number;
}

/** Thrown by seqRestore when the session file is damaged; the caller re-prefills instead. */
export class KvCorruptError extends Error {
  override name = "KvCorruptError";
}

/**
 * The KV tiers of a native model (zig/kv): prefix sharing, SSD tiers and session files.
 */
export interface NativeKvTiers {
  /** Opens (or reopens) the prefix cache and tiers; loads the SSD manifest if there is one. */
  kvTierOpen(opts: KvTierOptions): void;
  /**
   * Opens a sequence already holding the longest cached prefix of `tokens` (at most
   * tokens.length - 1, so at least one token is left to compute for logits). Without an open
   * tier it is a plain seqCreate with 0 reused.
   */
  seqCreateWithPrefix(tokens: ArrayLike<number>): { seqId: number; reusedTokens: number };
  /**
   * Registers the pages of a sequence holding `tokens` (all its tokens, or its first ones: a
   * prefix of whole pages avoids a second entry for a page it still appends to); returns pages
   * registered.
   */
  seqPublish(seqId: number, tokens: ArrayLike<number>): number;
  /**
   * Moves the hot pages of the cached chain of `tokens`, from token `fromTokens` on (rounded down
   * to a page), to the SSD tier now, freeing their RAM; pages a sequence still uses stay. Returns
   * the pages that left RAM (0 without an SSD tier). For conversations that went idle.
   */
  kvTierSpill(tokens: ArrayLike<number>, fromTokens: number): number;
  /** Pool pages only the prefix cache holds: freed on demand for new sequences (0 without a tier). */
  kvTierReclaimable(): number;
  /** Writes the prefix cache to SSD with a crash-safe manifest; returns the entries listed. */
  kvTierPersist(): number;
  /**
   * Writes the crash-safe manifest of the pages already on SSD, without writing hot pages (cheap
   * while serving; kvTierPersist at shutdown also writes the hot ones). Returns the entries listed.
   */
  kvTierCheckpoint(): number;
  kvTierStats(): KvTierStats;
  /** Roots every hash chain: a hash of the hyperparameters, tensor table, file size and KV type. */
  readonly kvModelTag: bigint;
  /** Bytes of one portable page record (zig/kv/portable.zig), for a tier shared by replicas. */
  kvRecordBytes(): number;
  /**
   * The chain keys of the whole pages of `tokens`, and how many leading pages the prefix cache
   * holds (in RAM or on SSD).
   */
  kvChain(tokens: ArrayLike<number>): { keys: BigUint64Array; localPages: number };
  /** Writes whole page `page` of the cached chain of `tokens` as a portable record into `out`. */
  kvPageExport(tokens: ArrayLike<number>, page: number, out: Uint8Array): void;
  /**
   * Adds whole page `page` of `tokens` from a portable record to the prefix cache after checking
   * it against the tokens, the model and the build, pinned (neither evicted nor reclaimed) until
   * kvPageUnpin; false when it was cached already (not pinned). Throws KvCorruptError when the
   * record does not check out, NativeError when no page can be had or too many wait pinned.
   */
  kvPageImport(tokens: ArrayLike<number>, page: number, record: Uint8Array): boolean;
  /**
   * Ends the pin of an imported page: it joins the eviction policy as a page used twice when
   * `used` (its request attached it), else once. False when it was not pinned.
   */
  kvPageUnpin(tokens: ArrayLike<number>, page: number, used: boolean): boolean;
  /** Saves a sequence (its KV holds exactly `tokens`) to a file; returns the bytes written. */
  seqSave(seqId: number, tokens: ArrayLike<number>, path: string): number;
  /** Restores a saved sequence into a new one. Throws KvCorruptError if the file is damaged. */
  seqRestore(path: string): { seqId: number; tokens: number[] };
}

/** A model libhearth opened (openNativeModel, openModel): it also drafts in one call. */
export type DraftingNativeModel = NativeModel & NativeDrafting;
