// The gate to libhearth's row kernels (argmax, log-probabilities, sampling weights, top-p): they
// run when the library is loaded and the row is long enough for one FFI call to pay.
import { type HearthLib, loadedLibrary } from "../native/lib.ts";

/** Rows shorter than this stay in JS (as fast there, and no FFI call). */
const NATIVE_ROW_MIN = 1024;

/** libhearth for a row of `length` values, or null: not loaded, or the row is short. */
export function rowKernels(length: number): HearthLib | null {
  return length >= NATIVE_ROW_MIN ? loadedLibrary() : null;
}
