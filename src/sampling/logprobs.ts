// Log-probabilities of a logits row for OpenAI's `logprobs` / `top_logprobs`: the sampled token's
// and the most likely tokens', from the model's own distribution (log-softmax of the raw logits,
// before temperature, penalties or bias, as vLLM reports them by default).

/** Most alternatives one token may list (OpenAI's top_logprobs limit). */
export const MAX_TOP_LOGPROBS = 20;

export interface TokenLogprob {
  id: number;
  logprob: number;
  /** The `top` most likely tokens, most likely first (ties: lower id first). */
  top: Array<{ id: number; logprob: number }>;
}

/** The log-probability of token `id` in `row` and the `top` most likely tokens (0..20). */
export function tokenLogprob(row: Float32Array, id: number, top: number): TokenLogprob {
  if (!Number.isInteger(top) || top < 0 || top > MAX_TOP_LOGPROBS)
    throw new RangeError(`top must be an integer from 0 to ${MAX_TOP_LOGPROBS}, got ${top}`);
  if (!Number.isInteger(id) || id < 0 || id >= row.length)
    throw new RangeError(`token id ${id} is outside the row of ${row.length} logits`);
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
