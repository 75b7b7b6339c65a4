// `hearth selftest` (hidden): loads libhearth the way this process finds it and checks one kernel
// (Q8_0 quantize + matmul on a pool) against a plain TypeScript dot product.
import {
  dequantizeRow,
  matmul,
  quantizeAct,
  quantizeRow,
  rowSizeBytes,
  ThreadPool,
} from "../native/kernels.ts";
import { loadLibrary } from "../native/lib.ts";

export async function main(_argv: string[]): Promise<number> {
  const { path, variant } = await loadLibrary();
  const [rows, cols] = [8, 64];
  const w = new Float32Array(rows * cols).map((_, i) => Math.sin(i * 0.37));
  const x = new Float32Array(cols).map((_, i) => Math.cos(i * 0.11));
  const rowBytes = rowSizeBytes("q8_0", cols);
  const wq = new Uint8Array(rows * rowBytes);
  for (let r = 0; r < rows; r++)
    wq.set(quantizeRow("q8_0", w.subarray(r * cols, (r + 1) * cols)), r * rowBytes);
  const pool = new ThreadPool(2);
  let worst = 0;
  try {
    const out = matmul(pool, "q8_0", wq, rows, cols, { act: quantizeAct(x) }, 1);
    for (let r = 0; r < rows; r++) {
      const wr = dequantizeRow("q8_0", wq.subarray(r * rowBytes, (r + 1) * rowBytes), cols);
      let want = 0;
      for (let i = 0; i < cols; i++) want += (wr[i] as number) * (x[i] as number);
      worst = Math.max(worst, Math.abs(want - (out[r] as number)));
    }
  } finally {
    pool.destroy();
  }
  // Activation quantization error bound for |x| <= 1, |w| <= 1, 64 terms: 64 * (1/127/2) ~ 0.25.
  const ok = worst < 0.25;
  console.log(
    `selftest ${ok ? "ok" : "FAILED"}: q8_0 matmul ${rows}x${cols} max error ${worst.toExponential(2)}; library ${path}${variant ? ` (${variant})` : ""}`,
  );
  return ok ? 0 : 1;
}
