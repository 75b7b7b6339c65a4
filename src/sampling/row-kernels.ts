// Where the row kernels (argmax, log-probabilities, sampling weights, top-p) run: in libhearth
// (the default; the library loads on first use) or in TypeScript, chosen here and nowhere else.
// Rows shorter than NATIVE_ROW_MIN stay in TypeScript either way: there one FFI call costs more
// than the work. Both paths give the same answers (test/sampling.test.ts compares them).
import { type HearthLib, library } from "../native/lib.ts";

/** Rows shorter than this stay in JS (as fast there, and no FFI call). */
const NATIVE_ROW_MIN = 1024;

export type RowKernelMode = "native" | "js";

let mode: RowKernelMode = "native";

/** Chooses where long rows are processed from now on; returns the previous choice. */
export function setRowKernels(next: RowKernelMode): RowKernelMode {
  if (next !== "native" && next !== "js")
    throw new RangeError(`row kernels must be "native" or "js", got ${String(next)}`);
  const prev = mode;
  mode = next;
  return prev;
}

/** libhearth for a row of `length` values, or null when the row stays in JS. */
export function rowKernels(length: number): HearthLib | null {
  return mode === "native" && length >= NATIVE_ROW_MIN ? library() : null;
}
