// hearth's dequantization and Q8_K activations against llama.cpp's own ggml (the fixtures come from
// bench/peers/llama.cpp/quant-fixtures.sh, run on the native peer build), and the K-quant matmuls
// (plain and interleaved) against a float64 reference, their scalar twins and every pool size.

import { afterAll, describe, expect, test } from "bun:test";
import {
  ACT_BLOCK_BYTES,
  dequantizeRow,
  GgmlType,
  type GgmlTypeName,
  interleave,
  matmul,
  Q8K_BLOCK_BYTES,
  quantizeAct,
  quantizeRow,
  rowSizeBytes,
  ThreadPool,
} from "../src/native/kernels.ts";
import { library } from "../src/native/lib.ts";
import { Rng } from "../src/sampling/rng.ts";

const lib = library();
const pools = [new ThreadPool(1), new ThreadPool(2), new ThreadPool(3)];
afterAll(() => {
  for (const p of pools) p.destroy();
});

const fixtureDir = `${import.meta.dir}/fixtures/quant`;

interface BlockFixture {
  type: string;
  ggml_type: number;
  n: number;
  bytes: string;
  floats: string;
}

function fromBase64(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, "base64"));
}

async function fixture<T>(name: string): Promise<T> {
  return (await Bun.file(`${fixtureDir}/${name}.json`).json()) as T;
}

describe("dequantization equals llama.cpp's ggml bit for bit", () => {
  for (const type of [
    "q4_0",
    "q4_1",
    "q5_0",
    "q5_1",
    "q8_0",
    "q4_k",
    "q5_k",
    "q6_k",
    "iq4_nl",
    "iq4_xs",
    "bf16",
    "q2_k",
    "q3_k",
  ] as const) {
    test(`${type}: a quantized block and random-bit blocks`, async () => {
      const fx = await fixture<BlockFixture>(type);
      expect(fx.ggml_type).toBe(GgmlType[type]);
      const bytes = fromBase64(fx.bytes);
      const want = new Uint32Array(fromBase64(fx.floats).buffer);
      expect(bytes.byteLength).toBe(rowSizeBytes(type, fx.n));
      const got = new Uint32Array(dequantizeRow(type, bytes, fx.n).buffer);
      expect(Array.from(got)).toEqual(Array.from(want));
    });
  }

  test("bf16: hearth rounds floats to BF16 as ggml does (nearest even, halfway cases, infinities)", async () => {
    const fx = await fixture<BlockFixture & { x: string }>("bf16");
    const x = new Float32Array(fromBase64(fx.x).buffer);
    expect(Array.from(quantizeRow("bf16", x))).toEqual(Array.from(fromBase64(fx.bytes)));
  });

  test("a type hearth does not compute yet (IQ2_XXS) is refused with a status, not misread", async () => {
    const fx = await fixture<BlockFixture>("iq2_xxs");
    const bytes = fromBase64(fx.bytes);
    expect(
      lib.hearth_dequantize_row(fx.ggml_type, bytes, bytes.byteLength, new Float32Array(fx.n), fx.n),
    ).toBe(-9);
  });
});

test("Q8_K activations equal ggml's quantize_row_q8_K_ref byte for byte", async () => {
  const fx = await fixture<{ n: number; block_bytes: number; x: string; bytes: string }>("q8_k");
  expect(fx.block_bytes).toBe(Q8K_BLOCK_BYTES);
  const x = new Float32Array(fromBase64(fx.x).buffer);
  const want = fromBase64(fx.bytes);
  for (const type of ["q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_xs"] as const) {
    const act = quantizeAct(x, type);
    expect(act.byteLength).toBe((fx.n / 32) * ACT_BLOCK_BYTES);
    const slot = 8 * ACT_BLOCK_BYTES;
    for (let b = 0; b < fx.n / 256; b++) {
      const got = act.subarray(b * slot, b * slot + Q8K_BLOCK_BYTES);
      expect(Array.from(got)).toEqual(
        Array.from(want.subarray(b * Q8K_BLOCK_BYTES, (b + 1) * Q8K_BLOCK_BYTES)),
      );
    }
  }
});

/** The values an activation row stands for: q * d per 256-value Q8_K block, or per 32-value block. */
function actAsFloats(act: Uint8Array, n: number, q8k: boolean): Float64Array {
  const dv = new DataView(act.buffer, act.byteOffset, act.byteLength);
  const out = new Float64Array(n);
  const slot = 8 * ACT_BLOCK_BYTES;
  for (let i = 0; i < n; i++) {
    if (q8k) {
      const b = Math.floor(i / 256);
      out[i] = dv.getInt8(b * slot + 4 + (i % 256)) * dv.getFloat32(b * slot, true);
    } else {
      const b = Math.floor(i / 32);
      out[i] = dv.getInt8(b * ACT_BLOCK_BYTES + (i % 32)) * dv.getFloat32(b * ACT_BLOCK_BYTES + 32, true);
    }
  }
  return out;
}

type RandomType = "q2_k" | "q3_k" | "q4_k" | "q5_k" | "q6_k" | "iq4_xs" | "iq4_nl";

/** Random rows of a type hearth reads but does not make: every bit random except the f16 scales. */
function randomRows(type: RandomType, rows: number, cols: number, seed: number): Uint8Array {
  const g = new Rng(seed);
  const bytes = new Uint8Array(rows * rowSizeBytes(type, cols));
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(g.nextFloat() * 256);
  const dv = new DataView(bytes.buffer);
  const size = { q2_k: 84, q3_k: 110, q4_k: 144, q5_k: 176, q6_k: 210, iq4_xs: 136, iq4_nl: 18 }[type];
  const scaleAt = {
    q2_k: [80, 82],
    q3_k: [108],
    q4_k: [0, 2],
    q5_k: [0, 2],
    q6_k: [208],
    iq4_xs: [0],
    iq4_nl: [0],
  }[type];
  for (let b = 0; b < bytes.length / size; b++) {
    for (const at of scaleAt) dv.setFloat16(b * size + at, (g.nextFloat() * 2 - 1) * 0.01, true);
  }
  return bytes;
}

describe("K-quant and IQ4 matmul", () => {
  for (const type of [
    "q2_k",
    "q3_k",
    "q4_k",
    "q5_k",
    "q6_k",
    "iq4_xs",
    "iq4_nl",
  ] as const satisfies GgmlTypeName[]) {
    test(`${type}, plain and interleaved: the float64 reference, scalar twins, any token and pool count`, () => {
      const [rows, cols, maxTokens] = [40, 768, 9];
      const rowBytes = rowSizeBytes(type, cols);
      const plain = randomRows(type, rows, cols, GgmlType[type] + 900);
      const packed = interleave(type, plain, rows, cols);
      const g = new Rng(GgmlType[type] + 901);
      const x = new Float32Array(maxTokens * cols).map(() => (g.nextFloat() * 2 - 1) * 3);
      const act = quantizeAct(x, type);
      const wDeq = Array.from({ length: rows }, (_, i) =>
        dequantizeRow(type, plain.subarray(i * rowBytes, (i + 1) * rowBytes), cols),
      );
      const plainOut = matmul(pools[0] as ThreadPool, type, plain, rows, cols, { act }, maxTokens);
      const packedOut = matmul(
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
        const a = actAsFloats(act.subarray((t * cols * ACT_BLOCK_BYTES) / 32), cols, type !== "iq4_nl");
        for (let i = 0; i < rows; i++) {
          const w = wDeq[i] as Float32Array;
          let value = 0;
          let magnitude = 0;
          for (let c = 0; c < cols; c++) {
            const p = (w[c] as number) * (a[c] as number);
            value += p;
            magnitude += Math.abs(p);
          }
          for (const out of [plainOut, packedOut]) {
            expect(Math.abs((out[t * rows + i] as number) - value)).toBeLessThanOrEqual(
              1e-4 * magnitude + 1e-6,
            );
          }
        }
      }
      for (const pool of pools) {
        for (const n of [1, 3, 4, 5, 8, 9]) {
          const got = matmul(pool, type, plain, rows, cols, { act }, n);
          expect(Array.from(got)).toEqual(Array.from(plainOut.subarray(0, n * rows)));
          const gotPacked = matmul(pool, type, packed, rows, cols, { act }, n, undefined, "interleaved");
          expect(Array.from(gotPacked)).toEqual(Array.from(packedOut.subarray(0, n * rows)));
        }
      }
      const twin = new Float32Array(rows * maxTokens);
      const scalar = (layout: number, w: Uint8Array) =>
        lib.hearth_matmul_scalar(
          GgmlType[type],
          layout,
          w,
          w.byteLength,
          rows,
          cols,
          null,
          act,
          maxTokens,
          twin,
          twin.length,
        );
      expect(scalar(1, packed)).toBe(0);
      expect(Array.from(twin)).toEqual(Array.from(packedOut));
      expect(scalar(0, plain)).toBe(0);
      for (let i = 0; i < twin.length; i++) {
        expect(Math.abs((twin[i] as number) - (plainOut[i] as number))).toBeLessThanOrEqual(
          1e-4 * (1 + Math.abs(twin[i] as number)),
        );
      }
    });
  }
});
