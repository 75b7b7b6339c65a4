// Every kernel export against a plain TypeScript reference: random inputs, odd row counts,
// token tails, misaligned weight offsets, every format, and the bad-argument status codes.

import { type Pointer, ptr } from "bun:ffi";
import { afterAll, describe, expect, test } from "bun:test";
import {
  ACT_BLOCK_BYTES,
  dequantizeRow,
  GgmlType,
  type GgmlTypeName,
  interleave,
  matmul,
  quantizeAct,
  quantizeRow,
  rowSizeBytes,
  ThreadPool,
} from "../src/native/kernels.ts";
import { library, NativeError } from "../src/native/lib.ts";
import { Rng } from "../src/sampling/rng.ts";

const lib = library();
const pools = [new ThreadPool(1), new ThreadPool(2), new ThreadPool(3)];
afterAll(() => {
  for (const p of pools) p.destroy();
});

/** Seeded uniform floats in [0, 1) from the sampler's PRNG, so runs reproduce. */
function rng(seed: number): () => number {
  const g = new Rng(seed);
  return () => g.nextFloat();
}

function randomFloats(r: () => number, n: number, scale = 1): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (r() * 2 - 1) * scale;
  return x;
}

/** A copy of `bytes` starting at an odd byte offset inside a larger buffer (misaligned weights). */
function atOddOffset(bytes: Uint8Array, offset = 3): Uint8Array {
  const buf = new Uint8Array(bytes.length + offset + 5);
  const view = buf.subarray(offset, offset + bytes.length);
  view.set(bytes);
  return view;
}

// ---------------------------------------------------------------- TypeScript references (from the GGML layouts)

const BLOCK_BYTES: Record<GgmlTypeName, number> = {
  f32: 4,
  f16: 2,
  q4_0: 18,
  q4_1: 20,
  q5_0: 22,
  q5_1: 24,
  q8_0: 34,
  q2_k: 84,
  q3_k: 110,
  q4_k: 144,
  q5_k: 176,
  q6_k: 210,
  iq4_nl: 18,
  iq4_xs: 136,
  bf16: 2,
};
/** The 32-value block formats hearth also quantizes to (the K-quants are tested on ggml's fixtures). */
const QUANT: GgmlTypeName[] = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0"];
const ALL: GgmlTypeName[] = ["f32", "f16", ...QUANT];

function refDequantize(type: GgmlTypeName, src: Uint8Array, n: number): Float64Array {
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const out = new Float64Array(n);
  const f = Math.fround;
  for (let i = 0; i < n; i++) {
    if (type === "f32") out[i] = dv.getFloat32(i * 4, true);
    else if (type === "f16") out[i] = dv.getFloat16(i * 2, true);
    else {
      const b = Math.floor(i / 32);
      const j = i % 32;
      const base = b * BLOCK_BYTES[type];
      const d = dv.getFloat16(base, true);
      if (type === "q8_0") out[i] = f(dv.getInt8(base + 2 + j) * d);
      else if (type === "q5_0" || type === "q5_1") {
        const qsOff = base + (type === "q5_1" ? 8 : 6);
        const qh = dv.getUint32(qsOff - 4, true);
        const byte = dv.getUint8(qsOff + (j % 16));
        const q = (j < 16 ? byte & 15 : byte >> 4) | (((qh >>> j) & 1) << 4);
        out[i] = type === "q5_0" ? f((q - 16) * d) : f(f(q * d) + dv.getFloat16(base + 2, true));
      } else {
        const qsOff = base + (type === "q4_1" ? 4 : 2);
        const byte = dv.getUint8(qsOff + (j % 16));
        const q = j < 16 ? byte & 15 : byte >> 4;
        out[i] = type === "q4_0" ? f((q - 8) * d) : f(f(q * d) + dv.getFloat16(base + 2, true));
      }
    }
  }
  return out;
}

interface ActBlock {
  qs: Int8Array;
  d: number;
  s: number;
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** ggml's AVX2 quantize_row_q8_1: d = f16(amax / 127), q = round-half-even(x * 127 / amax),
 *  s = f16(d_f32 * sum q) for Q4_1 / Q8_0 weights, s = d * sum q (exact) for Q4_0. */
function refQuantizeAct(x: Float32Array, forType: GgmlTypeName = "q4_1"): ActBlock[] {
  const f = Math.fround;
  const out: ActBlock[] = [];
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j] as number));
    const d32 = f(amax / 127);
    const id = amax !== 0 ? f(127 / amax) : 0;
    const qs = new Int8Array(32);
    let sum = 0;
    for (let j = 0; j < 32; j++) {
      qs[j] = roundHalfEven(f((x[b * 32 + j] as number) * id));
      sum += qs[j] as number;
    }
    const d = Math.f16round(d32);
    const exact = forType === "q4_0" || forType === "q5_0";
    out.push({ qs, d, s: exact ? f(d * sum) : Math.f16round(f(d32 * sum)) });
  }
  return out;
}

/** What Q4_1's / Q5_1's minimum adds beyond the dequantized product: m * (s - d * sum q) per
 *  block (ggml's Q8_1 rounds s on its own); 0 for the other types. */
function sumCorrection(type: GgmlTypeName, wRow: Uint8Array, blocks: ActBlock[], first: number): number {
  if (type !== "q4_1" && type !== "q5_1") return 0;
  const size = BLOCK_BYTES[type];
  const dv = new DataView(wRow.buffer, wRow.byteOffset, wRow.byteLength);
  let c = 0;
  for (let b = 0; b < wRow.byteLength / size; b++) {
    const blk = blocks[first + b] as ActBlock;
    let sum = 0;
    for (const q of blk.qs) sum += q;
    c += dv.getFloat16(b * size + 2, true) * (blk.s - blk.d * sum);
  }
  return c;
}

function parseAct(bytes: Uint8Array): ActBlock[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: ActBlock[] = [];
  for (let b = 0; b < bytes.byteLength / ACT_BLOCK_BYTES; b++) {
    const base = b * ACT_BLOCK_BYTES;
    out.push({
      qs: new Int8Array(bytes.buffer, bytes.byteOffset + base, 32).slice(),
      d: dv.getFloat32(base + 32, true),
      s: dv.getFloat32(base + 36, true),
    });
  }
  return out;
}

/** Reference dot in float64 plus the magnitude sum used for the tolerance. */
function refDot(wRow: Float64Array, xRow: ArrayLike<number>): { value: number; magnitude: number } {
  let value = 0;
  let magnitude = 0;
  for (let i = 0; i < wRow.length; i++) {
    const p = (wRow[i] as number) * (xRow[i] as number);
    value += p;
    magnitude += Math.abs(p);
  }
  return { value, magnitude };
}

function actAsFloats(blocks: ActBlock[]): Float64Array {
  const out = new Float64Array(blocks.length * 32);
  blocks.forEach((b, i) => {
    for (let j = 0; j < 32; j++) out[i * 32 + j] = (b.qs[j] as number) * b.d;
  });
  return out;
}

// ---------------------------------------------------------------- tests

describe("row sizes", () => {
  test("match the GGML block sizes and reject bad types and lengths", () => {
    expect(rowSizeBytes("q4_1", 576)).toBe(360);
    expect(rowSizeBytes("q8_0", 576)).toBe(612);
    expect(rowSizeBytes("q4_0", 64)).toBe(36);
    expect(rowSizeBytes("f16", 7)).toBe(14);
    expect(rowSizeBytes("f32", 7)).toBe(28);
    expect(rowSizeBytes("q5_0", 576)).toBe(396);
    expect(rowSizeBytes("q4_k", 1536)).toBe(864);
    expect(rowSizeBytes("q6_k", 256)).toBe(210);
    expect(rowSizeBytes("q5_k", 1536)).toBe(1056);
    expect(Number(lib.hearth_row_size_bytes(16, 256))).toBe(-9); // IQ2_XXS: unsupported
    expect(Number(lib.hearth_row_size_bytes(GgmlType.q4_k, 576))).toBe(-1); // not whole super-blocks
    expect(Number(lib.hearth_row_size_bytes(GgmlType.q4_1, 33))).toBe(-1); // not a block multiple
    expect(Number(lib.hearth_row_size_bytes(GgmlType.q4_1, 0))).toBe(-1);
  });
});

describe("dequantize", () => {
  // Exact: every reference value is the same f32 product/sum of an f16 scale and a small integer.
  for (const type of ALL) {
    test(`${type} equals the reference on random blocks at an odd byte offset`, () => {
      const r = rng(GgmlType[type] + 100);
      for (const n of type === "f32" || type === "f16" ? [1, 7, 33, 1000] : [32, 96, 32 * 13]) {
        const bytes = new Uint8Array(rowSizeBytes(type, n));
        for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(r() * 256);
        const dv = new DataView(bytes.buffer);
        // Finite scales (random bytes could be NaN/inf halves): overwrite each d (and m).
        if (type === "f32") for (let i = 0; i < n; i++) dv.setFloat32(i * 4, r() * 4 - 2, true);
        if (type === "f16") for (let i = 0; i < n; i++) dv.setFloat16(i * 2, r() * 4 - 2, true);
        if (QUANT.includes(type)) {
          for (let b = 0; b < n / 32; b++) {
            dv.setFloat16(b * BLOCK_BYTES[type], r() * 0.2 - 0.1, true);
            if (type === "q4_1" || type === "q5_1") dv.setFloat16(b * BLOCK_BYTES[type] + 2, r() - 0.5, true);
          }
        }
        const src = atOddOffset(bytes);
        const got = dequantizeRow(type, src, n);
        const want = refDequantize(type, src, n);
        for (let i = 0; i < n; i++) expect(got[i]).toBe(Math.fround(want[i] as number));
      }
    });
  }
});

describe("quantize", () => {
  test("activations equal ggml's recipe exactly (qs, f16 d, s as the weight type wants)", () => {
    const r = rng(7);
    for (const [n, forType] of [
      [32, "q4_1"],
      [64, "q8_0"],
      [32 * 19, "q4_1"],
      [32 * 19, "q4_0"],
      [32 * 19, "q5_0"],
      [32 * 19, "q5_1"],
    ] as const) {
      const x = randomFloats(r, n, 5);
      if (n >= 64) x.fill(0, 32, 64); // an all-zero block
      // Exact halves (x * 127 / amax = k + 0.5) round to even.
      x[0] = 127;
      for (let j = 1; j < 32; j++) x[j] = j - 16.5;
      const got = parseAct(quantizeAct(x, forType));
      const want = refQuantizeAct(x, forType);
      expect(got.length).toBe(want.length);
      got.forEach((g, b) => {
        const w = want[b] as ActBlock;
        expect(Array.from(g.qs)).toEqual(Array.from(w.qs));
        expect(g.d).toBe(w.d);
        expect(g.s).toBe(w.s);
      });
    }
  });

  // Bound: half a quantization step, except Q4_0 whose far end clamps at 7/8 of the max (one step).
  for (const type of ALL) {
    test(`${type} round trip stays within its step`, () => {
      const r = rng(GgmlType[type] + 200);
      for (const blocks of [1, 3, 17]) {
        const x = randomFloats(r, 32 * blocks, 2);
        const back = dequantizeRow(type, quantizeRow(type, x), x.length);
        const tol = {
          f32: 0,
          f16: 2e-3,
          q8_0: 2 / 127 / 2 + 2e-3,
          q4_0: 2 / 8 + 1e-2,
          q4_1: 4 / 15 / 2 + 1e-2,
          q5_0: 2 / 16 + 1e-2,
          q5_1: 4 / 31 / 2 + 1e-2,
        }[type as string] as number;
        for (let i = 0; i < x.length; i++)
          expect(Math.abs((back[i] as number) - (x[i] as number))).toBeLessThanOrEqual(tol);
      }
    });
  }
});

describe("matmul", () => {
  // Tolerance: 1e-4 of the sum of |w_i * a_i| (float32 accumulation over up to 1k terms) plus 1e-6.
  for (const type of ALL) {
    test(`${type} equals the float64 reference for odd rows, token tails and every pool size`, () => {
      const r = rng(GgmlType[type] + 300);
      for (const [rows, cols] of [
        [1, 32],
        [37, 96],
        [130, 32 * 9],
      ] as const) {
        const wf = randomFloats(r, rows * cols);
        const rowBytes = rowSizeBytes(type, cols);
        const wAll = new Uint8Array(rows * rowBytes);
        for (let i = 0; i < rows; i++)
          wAll.set(quantizeRow(type, wf.subarray(i * cols, (i + 1) * cols)), i * rowBytes);
        const w = atOddOffset(wAll);
        const maxTokens = 9;
        const x = randomFloats(r, maxTokens * cols, 3);
        const quantized = QUANT.includes(type);
        const act = quantizeAct(x, quantized ? type : "q4_1");
        const blocks = parseAct(act);
        const actF = actAsFloats(blocks);
        const wDeq = Array.from({ length: rows }, (_, i) =>
          refDequantize(type, w.subarray(i * rowBytes), cols),
        );
        const full = matmul(pools[0] as ThreadPool, type, w, rows, cols, { x, act }, maxTokens);
        for (let t = 0; t < maxTokens; t++) {
          const xt = quantized
            ? actF.subarray(t * cols, (t + 1) * cols)
            : x.subarray(t * cols, (t + 1) * cols);
          for (let i = 0; i < rows; i++) {
            const { value: dot, magnitude } = refDot(wDeq[i] as Float64Array, xt);
            const wRow = w.subarray(i * rowBytes, (i + 1) * rowBytes);
            const value = dot + sumCorrection(type, wRow, blocks, (t * cols) / 32);
            expect(Math.abs((full[t * rows + i] as number) - value)).toBeLessThanOrEqual(
              1e-4 * magnitude + 1e-6,
            );
          }
        }
        // Batch and thread invariance: any token count, any pool, bit-identical per (token, row).
        for (const pool of pools) {
          for (const n of [1, 3, 4, 5, 9]) {
            const got = matmul(pool, type, w, rows, cols, { x, act }, n);
            expect(Array.from(got)).toEqual(Array.from(full.subarray(0, n * rows)));
          }
        }
        // hearth_dot (one row, calling thread) gives the same bits as matmul for token 0.
        const one = new Float32Array(1);
        for (const i of [0, rows - 1]) {
          const wr = w.subarray(i * rowBytes, (i + 1) * rowBytes);
          expect(lib.hearth_dot(GgmlType[type], wr, wr.byteLength, cols, x, act, one)).toBe(0);
          expect(one[0]).toBe(full[i] as number);
        }
        // The scalar twin agrees within the same tolerance.
        const twin = new Float32Array(rows * maxTokens);
        const rc = lib.hearth_matmul_scalar(
          GgmlType[type],
          0,
          w,
          w.byteLength,
          rows,
          cols,
          x,
          act,
          maxTokens,
          twin,
          twin.length,
        );
        expect(rc).toBe(0);
        for (let i = 0; i < twin.length; i++) {
          expect(Math.abs((twin[i] as number) - (full[i] as number))).toBeLessThanOrEqual(
            1e-4 * (1 + Math.abs(twin[i] as number)),
          );
        }
      }
    });
  }
});

describe("interleaved weights (eight rows per record, what the model uses)", () => {
  // Same tolerance as plain matmul; against the scalar twin the results must be bit-identical.
  for (const type of QUANT) {
    test(`${type} interleaved equals the float64 reference and its scalar twin, for any token and pool count`, () => {
      const r = rng(GgmlType[type] + 700);
      const [rows, cols, maxTokens] = [40, 32 * 7, 9];
      const rowBytes = rowSizeBytes(type, cols);
      const plain = new Uint8Array(rows * rowBytes);
      const wf = randomFloats(r, rows * cols);
      for (let i = 0; i < rows; i++)
        plain.set(quantizeRow(type, wf.subarray(i * cols, (i + 1) * cols)), i * rowBytes);
      const packed = interleave(type, plain, rows, cols);
      expect(packed.byteLength).toBe(plain.byteLength);
      const x = randomFloats(r, maxTokens * cols, 3);
      const act = quantizeAct(x, type);
      const blocks = parseAct(act);
      const actF = actAsFloats(blocks);
      const full = matmul(
        pools[0] as ThreadPool,
        type,
        packed,
        rows,
        cols,
        { act },
        maxTokens,
        undefined,
        "interleaved",
      );
      for (let t = 0; t < maxTokens; t++) {
        for (let i = 0; i < rows; i++) {
          const wRow = plain.subarray(i * rowBytes, (i + 1) * rowBytes);
          const wDeq = refDequantize(type, wRow, cols);
          const { value: dot, magnitude } = refDot(wDeq, actF.subarray(t * cols, (t + 1) * cols));
          const value = dot + sumCorrection(type, wRow, blocks, (t * cols) / 32);
          expect(Math.abs((full[t * rows + i] as number) - value)).toBeLessThanOrEqual(
            1e-4 * magnitude + 1e-6,
          );
        }
      }
      for (const pool of pools) {
        for (const n of [1, 3, 4, 5, 9]) {
          const got = matmul(pool, type, packed, rows, cols, { act }, n, undefined, "interleaved");
          expect(Array.from(got)).toEqual(Array.from(full.subarray(0, n * rows)));
        }
      }
      const twin = new Float32Array(rows * maxTokens);
      expect(
        lib.hearth_matmul_scalar(
          GgmlType[type],
          1,
          packed,
          packed.byteLength,
          rows,
          cols,
          null,
          act,
          maxTokens,
          twin,
          twin.length,
        ),
      ).toBe(0);
      expect(Array.from(twin)).toEqual(Array.from(full));
    });
  }

  test("bad layouts and shapes give status codes", () => {
    const w = new Uint8Array(rowSizeBytes("q4_1", 64) * 12);
    const act = quantizeAct(new Float32Array(64));
    const out = new Float32Array(16);
    const pool = pools[0] as ThreadPool;
    expect(lib.hearth_matmul(pool.ptr, 3, 2, w, w.length, 8, 64, null, act, 1, out, 16)).toBe(-1);
    expect(lib.hearth_matmul(pool.ptr, 3, 1, w, w.length, 12, 64, null, act, 1, out, 16)).toBe(-1);
    expect(
      lib.hearth_matmul(
        pool.ptr,
        0,
        1,
        new Float32Array(8 * 64),
        8 * 64 * 4,
        8,
        64,
        new Float32Array(64),
        null,
        1,
        out,
        16,
      ),
    ).toBe(-1);
    expect(lib.hearth_interleave(3, w, w.length, 12, 64, new Uint8Array(w.length), w.length)).toBe(-1);
    expect(lib.hearth_interleave(3, w, w.length, 8, 64, new Uint8Array(10), 10)).toBe(-4);
    expect(lib.hearth_interleave(3, null, 0, 8, 64, new Uint8Array(w.length), w.length)).toBe(-2);
    expect(() => interleave("q4_1", w, 12, 64)).toThrow(/whole groups of 8/);
  });
});

describe("memcpy and read sweep", () => {
  test("every copy routine copies exactly, at odd offsets and sizes around the vector widths", () => {
    const r = rng(11);
    const src = new Uint8Array(5000);
    for (let i = 0; i < src.length; i++) src[i] = Math.floor(r() * 256);
    for (const mode of [0, 1, 2]) {
      for (const n of [0, 1, 15, 31, 32, 33, 63, 64, 65, 127, 255, 256, 257, 1000, 4093]) {
        const dst = new Uint8Array(5000);
        expect(lib.hearth_memcpy(dst.subarray(5), src.subarray(3), n, mode, 1)).toBe(0);
        expect(Array.from(dst.subarray(5, 5 + n))).toEqual(Array.from(src.subarray(3, 3 + n)));
        expect(dst[5 + n] ?? 0).toBe(0);
        expect(dst[4]).toBe(0);
      }
    }
  });

  test("read sweep sums every byte as u64 lanes on any pool", () => {
    const bytes = new Uint8Array(1 << 16).fill(1);
    for (const pool of pools) {
      const out = new BigUint64Array(1);
      expect(lib.hearth_read_sweep(pool.ptr, bytes, bytes.length, out)).toBe(0);
      // All-ones bytes read as wrapping u64 lanes: each 8 bytes add 0x0101010101010101.
      expect(out[0]).toBe(BigInt.asUintN(64, 0x0101010101010101n * BigInt(bytes.length / 8)));
    }
  });
});

describe("bad arguments give status codes, never a crash", () => {
  const x = new Float32Array(64);
  const act = quantizeAct(x);
  const w = quantizeRow("q4_1", x);
  const out = new Float32Array(4);
  const pool = pools[1] as ThreadPool;
  const cases: Array<[string, () => number, number]> = [
    ["null pool", () => lib.hearth_matmul(null, 3, 0, w, w.length, 1, 64, null, act, 1, out, 4), -2],
    ["null weights", () => lib.hearth_matmul(pool.ptr, 3, 0, null, 0, 1, 64, null, act, 1, out, 4), -2],
    [
      "weights too short",
      () => lib.hearth_matmul(pool.ptr, 3, 0, w, w.length - 1, 1, 64, null, act, 1, out, 4),
      -4,
    ],
    [
      "rows out of range",
      () => lib.hearth_matmul(pool.ptr, 3, 0, w, w.length, 2, 64, null, act, 1, out, 4),
      -4,
    ],
    ["out too short", () => lib.hearth_matmul(pool.ptr, 3, 0, w, w.length, 1, 64, null, act, 5, out, 4), -4],
    ["zero tokens", () => lib.hearth_matmul(pool.ptr, 3, 0, w, w.length, 1, 64, null, act, 0, out, 4), -1],
    [
      "cols not a block multiple",
      () => lib.hearth_matmul(pool.ptr, 3, 0, w, w.length, 1, 63, null, act, 1, out, 4),
      -1,
    ],
    [
      "unsupported type",
      () => lib.hearth_matmul(pool.ptr, 16, 0, w, w.length, 1, 64, null, act, 1, out, 4),
      -9,
    ],
    [
      "null activations",
      () => lib.hearth_matmul(pool.ptr, 3, 0, w, w.length, 1, 64, null, null, 1, out, 4),
      -2,
    ],
    [
      "misaligned out",
      () => lib.hearth_matmul(pool.ptr, 3, 0, w, w.length, 1, 64, null, act, 1, (ptr(out) + 1) as Pointer, 3),
      -3,
    ],
    [
      "null x for f32",
      () => lib.hearth_matmul(pool.ptr, 0, 0, x, x.byteLength, 1, 64, null, null, 1, out, 4),
      -2,
    ],
    ["dot with short weights", () => lib.hearth_dot(3, w, w.length - 2, 64, null, act, out), -4],
    ["dot with null out", () => lib.hearth_dot(3, w, w.length, 64, null, act, null), -2],
    ["pool of 0 threads", () => lib.hearth_pool_create(0, new BigUint64Array(1)), -1],
    ["pool with null out", () => lib.hearth_pool_create(2, null), -2],
    ["destroy null pool", () => lib.hearth_pool_destroy(null), -2],
    [
      "dequantize short src",
      () => lib.hearth_dequantize_row(3, w, w.length - 1, new Float32Array(64), 64),
      -4,
    ],
    [
      "dequantize misaligned out",
      () => lib.hearth_dequantize_row(3, w, w.length, (ptr(x) + 2) as Pointer, 64),
      -3,
    ],
    ["quantize null x", () => lib.hearth_quantize_row(8, null, 64, new Uint8Array(68), 68), -2],
    ["quantize short dst", () => lib.hearth_quantize_row(8, x, 64, new Uint8Array(67), 67), -4],
    ["quantize_act odd length", () => lib.hearth_quantize_act(x, 33, new Uint8Array(80), 80), -1],
    ["quantize_act short out", () => lib.hearth_quantize_act(x, 64, new Uint8Array(80), 79), -4],
    ["memcpy null dst", () => lib.hearth_memcpy(null, w, 4, 0, 1), -2],
    ["memcpy bad mode", () => lib.hearth_memcpy(new Uint8Array(4), w, 4, 7, 1), -1],
    ["memcpy overlap", () => lib.hearth_memcpy(w.subarray(1), w, 4, 0, 1), -1],
    ["read sweep of 0 bytes", () => lib.hearth_read_sweep(pool.ptr, w, 0, new BigUint64Array(1)), -1],
  ];
  for (const [name, call, code] of cases) {
    test(`${name} → ${code}`, () => {
      expect(call()).toBe(code);
      const buf = new Uint8Array(512);
      const n = Number(lib.hearth_last_error(buf, buf.length));
      expect(n).toBeGreaterThan(0);
    });
  }

  test("the typed wrappers throw NativeError with the message", () => {
    expect(() => rowSizeBytes("q8_0", 31)).toThrow(NativeError);
    expect(() => new ThreadPool(0)).toThrow(/threads must be in 1\.\./);
  });
});
