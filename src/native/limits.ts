// The native bounds as the rest of TypeScript asks for them (read from libhearth at load, see
// src/native/abi.ts), and the one default thread count.
import { availableParallelism } from "node:os";
import type { NativeLimits } from "./abi.ts";
import { nativeAbi } from "./lib.ts";

export type { NativeLimits } from "./abi.ts";

/** The limits, page size and status codes of libhearth (loads it on first use). */
export function nativeLimits(): NativeLimits {
  return nativeAbi().limits;
}

/** Tokens in one KV page (libhearth's, read at load). */
export function kvPageTokens(): number {
  return nativeLimits().kvPageTokens;
}

/**
 * The default compute thread count: `$HEARTH_THREADS` when set (an integer in [1, the native
 * maximum], else a RangeError), otherwise every core, at most the native maximum.
 */
export function defaultThreads(): number {
  const max = nativeLimits().maxThreads;
  const env = process.env.HEARTH_THREADS;
  if (env !== undefined && env.trim() !== "") {
    const n = Number(env);
    if (!Number.isInteger(n) || n <= 0 || n > max)
      throw new RangeError(`HEARTH_THREADS must be an integer in [1, ${max}], got ${String(n)}`);
    return n;
  }
  return Math.max(1, Math.min(availableParallelism(), max));
}

/**
 * KV sequences a model keeps beside its generating ones for embeddings: the most inputs one
 * engine step computes together (more take further steps).
 */
export const EMBEDDING_SEQUENCES = 64;

/** Most inputs one embeddings request carries (OpenAI's limit). */
export const MAX_EMBEDDING_INPUTS = 2048;

/**
 * Sequences to open the native model with: `generating` ones plus EMBEDDING_SEQUENCES, within
 * the native maximum (a model opened with the maximum for generation has none for embeddings).
 */
export function sequencesWithEmbeddings(generating: number): { total: number; embedding: number } {
  const total = Math.min(nativeLimits().maxSequences, generating + EMBEDDING_SEQUENCES);
  return { total, embedding: Math.max(0, total - generating) };
}
