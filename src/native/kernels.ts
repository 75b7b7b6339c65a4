// Typed wrappers over the kernel exports: GGML types, row sizes, thread pools, quantize/dequantize, matmul.
import { type Pointer, ptr } from "bun:ffi";
import { check, library } from "./lib.ts";
import { type PoolStats, readPoolStats } from "./pool-stats.ts";

export const GgmlType = {
  f32: 0,
  f16: 1,
  q4_0: 2,
  q4_1: 3,
  q5_0: 6,
  q5_1: 7,
  q8_0: 8,
  q2_k: 10,
  q3_k: 11,
  q4_k: 12,
  q5_k: 13,
  q6_k: 14,
  iq4_nl: 20,
  iq4_xs: 23,
  bf16: 30,
} as const;
export type GgmlTypeName = keyof typeof GgmlType;

/** Bytes of one BlockQ8Act (32 int8 + f32 scale + f32 scaled sum). */
export const ACT_BLOCK_BYTES = 40;
export const BLOCK_ELEMS = 32;
/** Bytes of ggml's block_q8_K (f32 d, 256 int8, 16 int16 sums) at the start of each 320-byte slot. */
export const Q8K_BLOCK_BYTES = 292;

export function rowSizeBytes(type: GgmlTypeName, cols: number): number {
  return check(Number(library().hearth_row_size_bytes(GgmlType[type], cols)), `row size of ${type}[${cols}]`);
}

/** A persistent native thread pool; `destroy()` it when done. */
export class ThreadPool {
  private handle: Pointer | null;
  readonly threads: number;

  constructor(threads: number) {
    const out = new BigUint64Array(1);
    check(library().hearth_pool_create(threads, out), `creating a pool of ${threads} threads`);
    this.handle = Number(out[0]) as Pointer;
    this.threads = threads;
  }

  get ptr(): Pointer {
    if (this.handle === null) throw new Error("thread pool already destroyed");
    return this.handle;
  }

  /** The pool's counters (zig/pool.zig Stats). */
  stats(): PoolStats {
    return readPoolStats((out) => check(library().hearth_pool_stats(this.ptr, out), "pool stats"));
  }

  destroy(): void {
    if (this.handle === null) return;
    check(library().hearth_pool_destroy(this.handle), "destroying the pool");
    this.handle = null;
  }
}

export function quantizeRow(type: GgmlTypeName, x: Float32Array): Uint8Array {
  const out = new Uint8Array(rowSizeBytes(type, x.length));
  check(library().hearth_quantize_row(GgmlType[type], x, x.length, out, out.byteLength), `quantize ${type}`);
  return out;
}

export function dequantizeRow(type: GgmlTypeName, src: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  check(library().hearth_dequantize_row(GgmlType[type], src, src.byteLength, out, n), `dequantize ${type}`);
  return out;
}

/**
 * Quantizes activations (length a multiple of 32) into BlockQ8Act blocks for weights of type
 * `forType` (as ggml: Q8_1 for Q4_1, Q5_1 and Q8_0 weights, an exact block sum for Q4_0 and
 * Q5_0; for the K-quants, length a multiple of 256, Q8_K blocks of Q8K_BLOCK_BYTES, each in the
 * place of 8 BlockQ8Act).
 */
export function quantizeAct(x: Float32Array, forType: GgmlTypeName = "q4_1"): Uint8Array {
  const out = new Uint8Array(new ArrayBuffer((x.length / BLOCK_ELEMS) * ACT_BLOCK_BYTES));
  check(
    library().hearth_quantize_act_for(GgmlType[forType], x, x.length, out, out.byteLength),
    `quantize activations for ${forType}`,
  );
  return out;
}

/** Weight layouts hearth_matmul reads: GGML's rows, or rows interleaved eight at a time (zig/interleave.zig). */
export type WeightLayout = "plain" | "interleaved";

/** Repacks a plain quantized matrix (rows % 8 == 0) into the interleaved layout (same size). */
export function interleave(type: GgmlTypeName, w: Uint8Array, rows: number, cols: number): Uint8Array {
  const out = new Uint8Array(w.byteLength);
  check(
    library().hearth_interleave(GgmlType[type], w, w.byteLength, rows, cols, out, out.byteLength),
    `interleave ${type} ${rows}x${cols}`,
  );
  return out;
}

/**
 * out[t*rows + r] = W[r,:] · x_t. Quantized weights use `act` (from quantizeAct), float weights
 * `x`. `layout` says how `w` is stored (interleaved: from `interleave`).
 */
export function matmul(
  pool: ThreadPool,
  type: GgmlTypeName,
  w: Uint8Array,
  rows: number,
  cols: number,
  input: { x?: Float32Array; act?: Uint8Array },
  nTokens: number,
  out: Float32Array = new Float32Array(rows * nTokens),
  layout: WeightLayout = "plain",
): Float32Array {
  const lib = library();
  check(
    lib.hearth_matmul(
      pool.ptr,
      GgmlType[type],
      layout === "interleaved" ? 1 : 0,
      w,
      w.byteLength,
      rows,
      cols,
      input.x ? ptr(input.x) : null,
      input.act ? ptr(input.act) : null,
      nTokens,
      out,
      out.length,
    ),
    `matmul ${type} ${rows}x${cols} x ${nTokens}`,
  );
  return out;
}
