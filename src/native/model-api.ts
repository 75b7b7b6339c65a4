// The contract between the TypeScript runtime (session, engine) and the native model.
// src/native/model.ts implements it over bun:ffi; the engine and session only see this.

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

export interface NativeModel {
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
  kvStats(): KvStats;
  close(): void;
}
