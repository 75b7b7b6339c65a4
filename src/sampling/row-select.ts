// Whole-row primitives the Sampler builds on: argmax (checked, with a SIMD path through the row
// kernels), top-k selection by a bounded heap, the nucleus cut and the native exp weighing.
import { rowKernels } from "./row-kernels.ts";
import { SamplerError } from "./sampler-options.ts";

const expSum = new Float64Array(1);

/**
 * Whether nativeExpWeights weighs `count` values: libhearth loaded and the row long, a finite
 * maximum, and 1/T above 0 as the f32 the kernel takes (a temperature past ~1e38 makes it 0).
 */
export function weighsNatively(count: number, max: number, invT: number): boolean {
  return Number.isFinite(max) && Math.fround(invT) > 0 && rowKernels(count) !== null;
}

/**
 * probs[i] = exp((x[i] - max) * invT) for i < count in SIMD, returning their sum; null when
 * weighsNatively says no (the caller's JS loop serves).
 */
export function nativeExpWeights(
  x: Float32Array,
  count: number,
  max: number,
  invT: number,
  probs: Float32Array,
): number | null {
  const lib = weighsNatively(count, max, invT) ? rowKernels(count) : null;
  if (lib === null) return null;
  const rc = lib.hearth_exp_weights(x, count, max, Math.min(invT, 3.4e38), probs, expSum);
  if (rc !== 0) return null;
  return expSum[0] as number;
}

const argmaxIndex = new Uint32Array(1);

/** The highest logit's id (lowest on ties); a NaN, a +Infinity or an all -Infinity row throws. */
export function checkedArgmax(row: Float32Array): number {
  const lib = rowKernels(row.length);
  if (lib !== null) {
    // One pass in SIMD (a 49k vocabulary: ~55 us in JS, a few us here); same answers and errors.
    const kind = lib.hearth_argmax(row, row.length, argmaxIndex);
    const index = argmaxIndex[0] as number;
    if (kind === 0) return index;
    if (kind === 1) throw new SamplerError(`logit of token ${index} is NaN`);
    if (kind === 2) throw new SamplerError("every token has logit -Infinity (all banned): nothing to sample");
    if (kind === 3) throw new SamplerError(`logit of token ${index} is +Infinity`);
  }
  return checkedArgmaxJs(row);
}

/** The JS path of checkedArgmax: rejects NaN, +Infinity and rows where every logit is -Infinity. */
function checkedArgmaxJs(row: Float32Array): number {
  let max = Number.NEGATIVE_INFINITY;
  let best = -1;
  for (let i = 0; i < row.length; i++) {
    const v = row[i] as number;
    if (v > max) {
      max = v;
      best = i;
    } else if (Number.isNaN(v)) {
      throw new SamplerError(`logit of token ${i} is NaN`);
    }
  }
  if (best < 0) throw new SamplerError("every token has logit -Infinity (all banned): nothing to sample");
  if (max === Number.POSITIVE_INFINITY) throw new SamplerError(`logit of token ${best} is +Infinity`);
  return best;
}

/** Greedy choice: the highest logit, lowest id on ties. */
export function argmax(logits: Float32Array): number {
  if (logits.length === 0) throw new SamplerError("cannot take argmax of an empty logits row");
  let best = 0;
  let max = logits[0] as number;
  for (let i = 1; i < logits.length; i++) {
    const v = logits[i] as number;
    if (v > max) {
      max = v;
      best = i;
    }
  }
  return best;
}

/**
 * Writes the k largest values (ties: lower id first) to outIds/outValues in descending order.
 * A size-k min-heap over the row (O(n log k)), then heapsort of the k: no full sort, no allocation.
 */
export function selectTopK(
  values: Float32Array,
  n: number,
  k: number,
  outIds: Int32Array,
  outValues: Float32Array,
): void {
  for (let i = 0; i < k; i++) {
    outIds[i] = i;
    outValues[i] = values[i] as number;
  }
  for (let i = (k >> 1) - 1; i >= 0; i--) siftDownWorstFirst(outIds, outValues, i, k);
  // The heap root is the worst kept. Later ids lose ties, so only a strictly larger value enters.
  let rootValue = outValues[0] as number;
  for (let i = k; i < n; i++) {
    const v = values[i] as number;
    if (v > rootValue) {
      outValues[0] = v;
      outIds[0] = i;
      siftDownWorstFirst(outIds, outValues, 0, k);
      rootValue = outValues[0] as number;
    }
  }
  // Heapsort: moving the worst to the end each time leaves the array best-first.
  for (let end = k - 1; end > 0; end--) {
    const v = outValues[0] as number;
    const id = outIds[0] as number;
    outValues[0] = outValues[end] as number;
    outIds[0] = outIds[end] as number;
    outValues[end] = v;
    outIds[end] = id;
    siftDownWorstFirst(outIds, outValues, 0, end);
  }
}

/** "a is worse than b": smaller value, or equal value and larger id. */
function worse(va: number, ia: number, vb: number, ib: number): boolean {
  return va < vb || (va === vb && ia > ib);
}

/** Restores the min-heap (worst at the root) below `start` within the first `size` entries. */
function siftDownWorstFirst(ids: Int32Array, values: Float32Array, start: number, size: number): void {
  let i = start;
  const v = values[i] as number;
  const id = ids[i] as number;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= size) break;
    const r = l + 1;
    let c = l;
    if (r < size && worse(values[r] as number, ids[r] as number, values[l] as number, ids[l] as number))
      c = r;
    if (!worse(values[c] as number, ids[c] as number, v, id)) break;
    values[i] = values[c] as number;
    ids[i] = ids[c] as number;
    i = c;
  }
  values[i] = v;
  ids[i] = id;
}

/** How many of the sorted candidates make up the nucleus: the shortest prefix with mass >= p. */
export function nucleusCut(sortedLogits: Float32Array, count: number, p: number): number {
  const max = sortedLogits[0] as number;
  let z = 0;
  for (let i = 0; i < count; i++) z += Math.exp((sortedLogits[i] as number) - max);
  let cum = 0;
  for (let i = 0; i < count; i++) {
    cum += Math.exp((sortedLogits[i] as number) - max) / z;
    if (cum >= p) return i + 1;
  }
  return count;
}
