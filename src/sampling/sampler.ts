// Token sampler: logit bias, repetition / presence / frequency penalties, top-k, top-p, min-p,
// temperature and a seeded draw, in llama.cpp's default order. Buffers are sized once per
// vocabulary and reused, so sampling a token allocates nothing.

import { Rng, randomSeed } from "./rng.ts";

export interface SamplerOptions {
  /** Softmax temperature; 0 means greedy (argmax, no randomness). Default 0.8. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 disables. Default 40. */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p; 1 disables. Default 0.95. */
  topP?: number;
  /** Drop tokens whose probability is below minP times the best one's; 0 disables. Default 0.05. */
  minP?: number;
  /** Divide (or multiply, when negative) the logit of every recent token; 1 disables. Default 1. */
  repeatPenalty?: number;
  /** Subtract from the logit of every recent token once. Default 0. */
  presencePenalty?: number;
  /** Subtract from the logit of every recent token once per occurrence. Default 0. */
  frequencyPenalty?: number;
  /** How many of the last history tokens the penalties look at; -1 means all, 0 disables. Default 64. */
  penaltyLastN?: number;
  /** Added to a token's logit before anything else; -Infinity bans the token. */
  logitBias?: Readonly<Record<number, number>> | ReadonlyMap<number, number>;
  /** Seed for the draw; the same seed and inputs give the same tokens. Default: random. */
  seed?: number;
}

export class SamplerError extends Error {
  override name = "SamplerError";
}

/** Candidates left after every filter, with probabilities (after temperature) that sum to 1. */
export interface TokenDistribution {
  /** Token ids; a view into the sampler's buffers, valid until the next call. */
  ids: Int32Array;
  /** Probability of each id, same length as ids. */
  probs: Float32Array;
}

export const DEFAULT_SAMPLER_OPTIONS = {
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  repeatPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  penaltyLastN: 64,
} as const;

/** Sizes tried when top-p needs a sorted prefix without top-k (then the whole vocabulary). */
const TOP_P_PREFIX_SIZES = [256, 2048];

export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
  readonly repeatPenalty: number;
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  readonly penaltyLastN: number;
  readonly seed: number;
  private readonly biasIds: Int32Array;
  private readonly biasValues: Float32Array;
  private readonly rng: Rng;

  // Reused per-vocabulary buffers.
  private vocabSize = 0;
  private logits = new Float32Array(0);
  private candIds = new Int32Array(0);
  private candLogits = new Float32Array(0);
  private probs = new Float32Array(0);
  private counts = new Int32Array(0);
  private touched = new Int32Array(0);

  constructor(options: SamplerOptions = {}) {
    const o = { ...DEFAULT_SAMPLER_OPTIONS, ...stripUndefined(options) };
    this.temperature = checkNumber("temperature", o.temperature, 0, Number.POSITIVE_INFINITY);
    this.topK = checkInteger("topK", o.topK, 0);
    this.topP = checkNumber("topP", o.topP, 0, 1);
    if (this.topP === 0) throw new SamplerError("topP must be greater than 0 (use 1 to disable it)");
    this.minP = checkNumber("minP", o.minP, 0, 1);
    this.repeatPenalty = checkNumber("repeatPenalty", o.repeatPenalty, 0, Number.POSITIVE_INFINITY);
    if (this.repeatPenalty === 0)
      throw new SamplerError("repeatPenalty must be greater than 0 (1 disables it)");
    this.presencePenalty = checkNumber("presencePenalty", o.presencePenalty, -1e9, 1e9);
    this.frequencyPenalty = checkNumber("frequencyPenalty", o.frequencyPenalty, -1e9, 1e9);
    this.penaltyLastN = checkInteger("penaltyLastN", o.penaltyLastN, -1);
    this.seed =
      options.seed === undefined ? randomSeed() : checkNumber("seed", options.seed, -(2 ** 53), 2 ** 53);
    this.rng = new Rng(this.seed);

    const entries: [number, number][] =
      options.logitBias instanceof Map
        ? [...options.logitBias.entries()]
        : Object.entries(options.logitBias ?? {}).map(([k, v]) => [Number(k), v as number]);
    this.biasIds = new Int32Array(entries.length);
    this.biasValues = new Float32Array(entries.length);
    entries.forEach(([id, bias], i) => {
      if (!Number.isInteger(id) || id < 0) throw new SamplerError(`logitBias key ${id} is not a token id`);
      if (Number.isNaN(bias) || bias === Number.POSITIVE_INFINITY) {
        throw new SamplerError(`logitBias for token ${id} must be a finite number or -Infinity, got ${bias}`);
      }
      this.biasIds[i] = id;
      this.biasValues[i] = bias;
    });
  }

  get greedy(): boolean {
    return this.temperature === 0;
  }

  /** Restarts the random stream (e.g. for a new request with the same sampler settings). */
  reseed(seed: number): void {
    this.rng.reseed(seed);
  }

  /** Picks the next token from one row of logits; `history` is the tokens so far (prompt + output). */
  sample(logits: Float32Array, history: ArrayLike<number> = []): number {
    const count = this.filter(logits, history);
    if (count === 1) return this.candIds[0] as number;
    // Weights after temperature, relative to the best candidate, so exp never overflows.
    const { candLogits, probs } = this;
    const invT = 1 / this.temperature;
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < count; i++) if ((candLogits[i] as number) > max) max = candLogits[i] as number;
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const w = Math.exp(((candLogits[i] as number) - max) * invT);
      probs[i] = w;
      sum += w;
    }
    const target = this.rng.nextFloat() * sum;
    let acc = 0;
    for (let i = 0; i < count; i++) {
      acc += probs[i] as number;
      if (target < acc) return this.candIds[i] as number;
    }
    // Rounding can leave target == sum; the last candidate with weight is the answer then.
    for (let i = count - 1; i >= 0; i--) if ((probs[i] as number) > 0) return this.candIds[i] as number;
    return this.candIds[0] as number;
  }

  /** The distribution `sample` draws from: the surviving candidates and their probabilities. */
  distribution(logits: Float32Array, history: ArrayLike<number> = []): TokenDistribution {
    const count = this.filter(logits, history);
    const { candLogits, probs } = this;
    if (count === 1) {
      probs[0] = 1;
    } else {
      const invT = 1 / this.temperature;
      let max = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < count; i++) if ((candLogits[i] as number) > max) max = candLogits[i] as number;
      let sum = 0;
      for (let i = 0; i < count; i++) {
        const w = Math.exp(((candLogits[i] as number) - max) * invT);
        probs[i] = w;
        sum += w;
      }
      for (let i = 0; i < count; i++) probs[i] = (probs[i] as number) / sum;
    }
    return { ids: this.candIds.subarray(0, count), probs: this.probs.subarray(0, count) };
  }

  /**
   * Applies bias, penalties and the truncation filters; leaves the survivors in candIds/candLogits
   * (logits still at temperature 1) and returns how many there are. Greedy leaves exactly one.
   */
  private filter(input: Float32Array, history: ArrayLike<number>): number {
    const n = input.length;
    if (n === 0) throw new SamplerError("cannot sample from an empty logits row");
    this.ensureBuffers(n);
    const logits = this.logits;
    logits.set(input);
    for (let i = 0; i < this.biasIds.length; i++) {
      const id = this.biasIds[i] as number;
      if (id < n) logits[id] = (logits[id] as number) + (this.biasValues[i] as number);
    }
    this.applyPenalties(history);

    let max = Number.NEGATIVE_INFINITY;
    let best = -1;
    for (let i = 0; i < n; i++) {
      const v = logits[i] as number;
      if (v > max) {
        max = v;
        best = i;
      } else if (Number.isNaN(v)) {
        throw new SamplerError(`logit of token ${i} is NaN`);
      }
    }
    if (best < 0) throw new SamplerError("every token has logit -Infinity (all banned): nothing to sample");

    const { candIds, candLogits } = this;
    if (this.greedy) {
      candIds[0] = best;
      candLogits[0] = max;
      return 1;
    }

    let count: number;
    let sorted: boolean;
    // Top-p's probabilities are over the tokens top-k left (llama.cpp renormalises after top-k),
    // or over the whole vocabulary when top-k is off.
    let nucleusZ = 0;
    const k = this.topK > 0 && this.topK < n ? this.topK : 0;
    if (k > 0) {
      selectTopK(logits, n, k, candIds, candLogits);
      count = k;
      sorted = true;
    } else if (this.topP < 1) {
      nucleusZ = this.partition(max);
      count = this.sortedNucleusPrefix(max, nucleusZ);
      sorted = true;
    } else {
      // No ordering needed: only min-p (a threshold) may still apply.
      const threshold = this.minP > 0 ? max + Math.log(this.minP) : Number.NEGATIVE_INFINITY;
      count = 0;
      for (let i = 0; i < n; i++) {
        const v = logits[i] as number;
        if (v >= threshold && v > Number.NEGATIVE_INFINITY) {
          candIds[count] = i;
          candLogits[count] = v;
          count++;
        }
      }
      sorted = false;
    }

    if (this.topP < 1) {
      if (nucleusZ === 0)
        for (let i = 0; i < count; i++) nucleusZ += Math.exp((candLogits[i] as number) - max);
      count = nucleusCut(candLogits, count, this.topP, max, nucleusZ);
    }

    if (this.minP > 0) {
      // Relative to the best candidate, which every filter keeps: p_i >= minP * p_max.
      const threshold = max + Math.log(this.minP);
      if (sorted) {
        let keep = 1;
        while (keep < count && (candLogits[keep] as number) >= threshold) keep++;
        count = keep;
      } else {
        let w = 0;
        for (let i = 0; i < count; i++) {
          const v = candLogits[i] as number;
          if (v >= threshold) {
            candIds[w] = candIds[i] as number;
            candLogits[w] = v;
            w++;
          }
        }
        count = w;
      }
    }
    return count;
  }

  private applyPenalties(history: ArrayLike<number>): void {
    if (this.repeatPenalty === 1 && this.presencePenalty === 0 && this.frequencyPenalty === 0) return;
    if (this.penaltyLastN === 0 || history.length === 0) return;
    const n = this.vocabSize;
    const start = this.penaltyLastN < 0 ? 0 : Math.max(0, history.length - this.penaltyLastN);
    const windowLength = history.length - start;
    if (this.touched.length < windowLength) this.touched = new Int32Array(windowLength);
    const { counts, touched, logits } = this;
    let distinct = 0;
    for (let i = start; i < history.length; i++) {
      const id = history[i] as number;
      if (!(id >= 0 && id < n)) continue; // ids from another vocabulary cannot be penalised
      if (counts[id] === 0) touched[distinct++] = id;
      counts[id] = (counts[id] as number) + 1;
    }
    for (let j = 0; j < distinct; j++) {
      const id = touched[j] as number;
      const c = counts[id] as number;
      counts[id] = 0;
      let v = logits[id] as number;
      // llama.cpp's rule: shrink positive logits, grow negative ones, so the token always loses.
      v = v <= 0 ? v * this.repeatPenalty : v / this.repeatPenalty;
      v -= c * this.frequencyPenalty + this.presencePenalty;
      logits[id] = v;
    }
  }

  /**
   * Sorted candidates without top-k: the top m tokens for growing m until their probability mass
   * reaches topP (usually a few hundred tokens; the full vocabulary only for very flat rows).
   */
  private sortedNucleusPrefix(max: number, z: number): number {
    const n = this.vocabSize;
    const { logits, candIds, candLogits } = this;
    for (const m of TOP_P_PREFIX_SIZES) {
      if (m >= n) break;
      selectTopK(logits, n, m, candIds, candLogits);
      let mass = 0;
      for (let i = 0; i < m; i++) mass += Math.exp((candLogits[i] as number) - max);
      if (mass / z >= this.topP) return m;
    }
    selectTopK(logits, n, n, candIds, candLogits);
    return n;
  }

  /** Softmax denominator of the whole (biased, penalised) row, relative to its max. */
  private partition(max: number): number {
    const { logits } = this;
    let z = 0;
    for (let i = 0; i < this.vocabSize; i++) z += Math.exp((logits[i] as number) - max);
    return z;
  }

  private ensureBuffers(n: number): void {
    if (this.vocabSize === n) return;
    this.vocabSize = n;
    this.logits = new Float32Array(n);
    this.candIds = new Int32Array(n);
    this.candLogits = new Float32Array(n);
    this.probs = new Float32Array(n);
    this.counts = new Int32Array(n);
  }
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
  // "a is worse than b": smaller value, or equal value and larger id.
  const worse = (va: number, ia: number, vb: number, ib: number) => va < vb || (va === vb && ia > ib);
  const siftDown = (start: number, size: number) => {
    let i = start;
    const v = outValues[i] as number;
    const id = outIds[i] as number;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      const r = l + 1;
      let c = l;
      if (
        r < size &&
        worse(outValues[r] as number, outIds[r] as number, outValues[l] as number, outIds[l] as number)
      ) {
        c = r;
      }
      if (!worse(outValues[c] as number, outIds[c] as number, v, id)) break;
      outValues[i] = outValues[c] as number;
      outIds[i] = outIds[c] as number;
      i = c;
    }
    outValues[i] = v;
    outIds[i] = id;
  };
  for (let i = 0; i < k; i++) {
    outIds[i] = i;
    outValues[i] = values[i] as number;
  }
  for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(i, k);
  for (let i = k; i < n; i++) {
    const v = values[i] as number;
    // The heap root is the worst kept; replace it when the new one beats it.
    if (worse(outValues[0] as number, outIds[0] as number, v, i)) {
      outValues[0] = v;
      outIds[0] = i;
      siftDown(0, k);
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
    siftDown(0, end);
  }
}

/** How many of the sorted candidates make up the nucleus: the shortest prefix with mass >= p. */
function nucleusCut(sortedLogits: Float32Array, count: number, p: number, max: number, z: number): number {
  let cum = 0;
  for (let i = 0; i < count; i++) {
    cum += Math.exp((sortedLogits[i] as number) - max) / z;
    if (cum >= p) return i + 1;
  }
  return count;
}

function checkNumber(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || Number.isNaN(v) || v < min || v > max) {
    throw new SamplerError(`${name} must be a number in [${min}, ${max}], got ${String(v)}`);
  }
  return v;
}

function checkInteger(name: string, v: unknown, min: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
    throw new SamplerError(`${name} must be an integer >= ${min}, got ${String(v)}`);
  }
  return v;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
