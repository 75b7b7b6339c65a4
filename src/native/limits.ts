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
