// Log-probabilities of a logits row for OpenAI's `logprobs` / `top_logprobs`: the sampled token's
// and the most likely tokens', from the model's own distribution (log-softmax of the raw logits,
// before temperature, penalties or bias, as vLLM reports them by default).

import { lastError } from "../native/lib.ts";
import { rowKernels } from "./row-kernels.ts";

/** Most alternatives one token may list (OpenAI's top_logprobs limit). */
export const MAX_TOP_LOGPROBS = 20;

export interface TokenLogprob {
  id: number;
  logprob: number;
  /** The `top` most likely tokens, most likely first (ties: lower id first). */
  top: Array<{ id: number; logprob: number }>;
}

const nativeIds = new Uint32Array(MAX_TOP_LOGPROBS);
const nativeLse = new Float64Array(1);
const nativeCount = new Uint32Array(1);

/** The log-probability of token `id` in `row` and the `top` most likely tokens (0..20). */
export function tokenLogprob(row: Float32Array, id: number, top: number): TokenLogprob {
  if (!Number.isInteger(top) || top < 0 || top > MAX_TOP_LOGPROBS)
    throw new RangeError(`top must be an integer from 0 to ${MAX_TOP_LOGPROBS}, got ${top}`);
  if (!Number.isInteger(id) || id < 0 || id >= row.length)
    throw new RangeError(`token id ${id} is outside the row of ${row.length} logits`);
  const lib = rowKernels(row.length);
  if (lib === null) return tokenLogprobJs(row, id, top);
  // One vector pass for the normalizer and one for the top ids (a 49k vocabulary: ~0.75 ms in
  // JS, where Math.exp per logit dominates; tens of microseconds here).
  const rc = lib.hearth_logprobs(row, row.length, top, nativeIds, nativeLse, nativeCount);
  if (rc !== 0) throw new Error(`log-probabilities failed: ${lastError()}`);
  const lse = nativeLse[0] as number;
  const top_: TokenLogprob["top"] = [];
  for (let k = 0; k < (nativeCount[0] as number); k++) {
    const t = nativeIds[k] as number;
    top_.push({ id: t, logprob: (row[t] as number) - lse });
  }
  return { id, logprob: (row[id] as number) - lse, top: top_ };
}

/** tokenLogprob in JS (no libhearth loaded, short rows; the tests' reference). */
export function tokenLogprobJs(row: Float32Array, id: number, top: number): TokenLogprob {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) if ((row[i] as number) > max) max = row[i] as number;
  // In f64: the sum over a 49k vocabulary stays exact enough whatever the order.
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp((row[i] as number) - max);
  const lse = max + Math.log(sum);
  // The `top` best by insertion into a short sorted list; most tokens fail the first compare.
  const bestIds: number[] = [];
  const bestLogits: number[] = [];
  if (top > 0) {
    for (let i = 0; i < row.length; i++) {
      const v = row[i] as number;
      if (bestIds.length === top && v <= (bestLogits[top - 1] as number)) continue;
      let at = bestIds.length === top ? top - 1 : bestIds.length;
      while (at > 0 && v > (bestLogits[at - 1] as number)) at--;
      bestIds.splice(at, 0, i);
      bestLogits.splice(at, 0, v);
      if (bestIds.length > top) {
        bestIds.pop();
        bestLogits.pop();
      }
    }
  }
  return {
    id,
    logprob: (row[id] as number) - lse,
    top: bestIds.map((t, k) => ({ id: t, logprob: (bestLogits[k] as number) - lse })),
  };
}
