// Token sampler: logit bias, repetition / presence / frequency penalties, top-k, top-p, min-p,
// temperature and a seeded draw, in llama.cpp's default order. Buffers are sized once per
// vocabulary and reused, so sampling a token allocates nothing.

import { lastError } from "../native/lib.ts";
import { Rng, randomSeed } from "./rng.ts";
import { rowKernels } from "./row-kernels.ts";

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
  /**
   * History index the penalties start at: the tokens before it are never penalised (OpenAI's
   * presence / frequency penalties count only generated tokens, so the server passes the
   * prompt's length). Default 0.
   */
  penaltyFrom?: number;
  /**
   * Added to a token's logit before anything else: token id to a bias in [-100, 100], or
   * -Infinity to ban the token. At most 1024 entries; ids below the vocabulary size.
   */
  logitBias?: Readonly<Record<number, number>> | ReadonlyMap<number, number>;
  /**
   * Seed for the draw (an integer, |seed| <= 2^53); the same seed and inputs give the same
   * tokens. Default: random.
   */
  seed?: number;
}

export class SamplerError extends Error {
  override name = "SamplerError";
}

/** Largest seed magnitude: seeds are exact integers up to 2^53 (the server's limit too). */
export const MAX_SEED = 2 ** 53;
/** Most logitBias entries (the server's limit too). */
export const MAX_LOGIT_BIAS_ENTRIES = 1024;
/** Largest finite logitBias magnitude (OpenAI's range; -Infinity bans a token). */
export const MAX_LOGIT_BIAS = 100;

/** Candidates left after every filter, with probabilities (after temperature) that sum to 1. */
export interface TokenDistribution {
  /** Token ids; a view into the sampler's buffers, valid until the next call. */
  ids: Int32Array;
  /** Probability of each id, same length as ids. */
  probs: Float32Array;
}

/**
 * The one set of sampling defaults: the library's sessions, the CLI (`run`, `chat`, whose --help
 * prints them) and the server (for every field a request leaves out; docs/server.md) use these.
 */
export const DEFAULT_SAMPLER_OPTIONS = {
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  repeatPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  penaltyLastN: 64,
  penaltyFrom: 0,
} as const;

/** Width in logits of the histogram top-p uses without top-k; below it a token's weight is < e^-40. */
const NUCLEUS_LOGIT_RANGE = 40;
const NUCLEUS_BUCKETS = 4096;

export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
  readonly repeatPenalty: number;
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  readonly penaltyLastN: number;
  readonly penaltyFrom: number;
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
  /** The row maximum filter() found, for sampleWholeRow. */
  private rowMax = 0;
  private counts = new Int32Array(0);
  private bucketOf = new Uint16Array(0);
  private touched = new Int32Array(0);
  private readonly bucketMass = new Float64Array(NUCLEUS_BUCKETS);

  /**
   * @param vocabSize - when given, logitBias ids are checked against it now; otherwise an id
   *   outside the logits row is an error at the first sample.
   */
  constructor(options: SamplerOptions = {}, vocabSize?: number) {
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
    this.penaltyFrom = checkInteger("penaltyFrom", o.penaltyFrom, 0);
    this.seed = options.seed === undefined ? randomSeed() : checkSeed(options.seed);
    this.rng = new Rng(this.seed);

    const entries = logitBiasEntries(options.logitBias, vocabSize);
    this.biasIds = new Int32Array(entries.length);
    this.biasValues = new Float32Array(entries.length);
    entries.forEach(([id, bias], i) => {
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
    const count = this.filter(logits, history, true);
    if (count === WHOLE_ROW) return this.sampleWholeRow();
    if (count === 1) return this.candIds[0] as number;
    const { probs } = this;
    const sum = this.weigh(count);
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

  /**
   * `sample` when nothing truncates the distribution (no top-k, top-p or min-p; OpenAI's defaults)
   * and libhearth is loaded: the weights of the whole row (`logits`, bias and penalties applied)
   * in SIMD and the draw scanned in token order, without copying candidates. The same tokens in
   * the same order with the same weights as the candidate path (a banned token weighs 0), so the
   * same choice for the same draw.
   */
  private sampleWholeRow(): number {
    const n = this.vocabSize;
    const { logits, probs } = this;
    const sum = nativeExpWeights(logits, n, this.rowMax, 1 / this.temperature, probs);
    if (sum === null) throw new SamplerError("native sampling weights failed"); // filter() checked
    const target = this.rng.nextFloat() * sum;
    let acc = 0;
    for (let i = 0; i < n; i++) {
      acc += probs[i] as number;
      if (target < acc) return i;
    }
    for (let i = n - 1; i >= 0; i--) if ((probs[i] as number) > 0) return i;
    return 0;
  }

  /**
   * Unnormalised weights of the first `count` candidates after temperature into `probs`,
   * relative to the best candidate so exp never overflows; returns their sum.
   */
  private weigh(count: number): number {
    const { candLogits, probs } = this;
    const invT = 1 / this.temperature;
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < count; i++) if ((candLogits[i] as number) > max) max = candLogits[i] as number;
    // Many candidates (no top-k: the whole vocabulary at T 1): the exps in SIMD, ~25x faster.
    const native = nativeExpWeights(candLogits, count, max, invT, probs);
    if (native !== null) return native;
    let sum = 0;
    for (let i = 0; i < count; i++) {
      // The best candidates weigh 1 exactly: a temperature so small that 1/T is infinite would
      // otherwise make their 0 * Infinity a NaN (the others' -Infinity still gives 0).
      const d = (candLogits[i] as number) - max;
      const w = d === 0 ? 1 : Math.exp(d * invT);
      probs[i] = w;
      sum += w;
    }
    return sum;
  }

  /** The distribution `sample` draws from: the surviving candidates and their probabilities. */
  distribution(logits: Float32Array, history: ArrayLike<number> = []): TokenDistribution {
    const count = this.filter(logits, history);
    const { probs } = this;
    if (count === 1) {
      probs[0] = 1;
    } else {
      const sum = this.weigh(count);
      for (let i = 0; i < count; i++) probs[i] = (probs[i] as number) / sum;
    }
    return { ids: this.candIds.subarray(0, count), probs: this.probs.subarray(0, count) };
  }

  /**
   * Applies bias, penalties and the truncation filters; leaves the survivors in candIds/candLogits
   * (logits still at temperature 1) and returns how many there are. Greedy leaves exactly one.
   */
  private filter(input: Float32Array, history: ArrayLike<number>, wholeRowOk = false): number {
    const n = input.length;
    if (n === 0) throw new SamplerError("cannot sample from an empty logits row");
    this.ensureBuffers(n);
    const { candIds, candLogits } = this;
    const penalised = this.hasPenalties && this.penaltyLastN !== 0 && history.length > this.penaltyFrom;
    if (this.greedy && this.biasIds.length === 0 && !penalised) {
      // Nothing changes the row: read the caller's logits directly, no copy.
      const best = checkedArgmax(input);
      candIds[0] = best;
      candLogits[0] = input[best] as number;
      return 1;
    }
    const logits = this.logits;
    logits.set(input);
    for (let i = 0; i < this.biasIds.length; i++) {
      const id = this.biasIds[i] as number;
      if (id >= n) {
        throw new SamplerError(`logitBias key ${id} is not a token id below the vocabulary size ${n}`);
      }
      logits[id] = (logits[id] as number) + (this.biasValues[i] as number);
    }
    if (penalised) this.applyPenalties(history);
    const best = checkedArgmax(logits);
    const max = logits[best] as number;
    if (this.greedy) {
      candIds[0] = best;
      candLogits[0] = max;
      return 1;
    }

    let count: number;
    let sorted: boolean;
    const k = this.topK > 0 && this.topK < n ? this.topK : 0;
    if (k > 0) {
      selectTopK(logits, n, k, candIds, candLogits);
      count = k;
      sorted = true;
      // Top-p's probabilities are over the k survivors: llama.cpp renormalises after top-k.
      if (this.topP < 1) count = nucleusCut(candLogits, count, this.topP);
    } else if (this.topP < 1) {
      count = this.nucleusOfVocabulary(max);
      sorted = false;
    } else if (wholeRowOk && this.minP === 0 && weighsNatively(n, max, 1 / this.temperature)) {
      // Nothing truncates: sampleWholeRow weighs `logits` in place.
      this.rowMax = max;
      return WHOLE_ROW;
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

  private get hasPenalties(): boolean {
    return this.repeatPenalty !== 1 || this.presencePenalty !== 0 || this.frequencyPenalty !== 0;
  }

  /**
   * Top-p over the whole vocabulary without sorting it: a histogram of probability mass over
   * logit buckets finds the bucket where the cumulative mass crosses p; tokens above it are all in,
   * and only that bucket's tokens are sorted to find the exact cut. Leaves candidates unsorted.
   */
  private nucleusOfVocabulary(max: number): number {
    const n = this.vocabSize;
    const { logits, candIds, candLogits, probs, bucketMass, bucketOf } = this;
    const lib = Number.isFinite(max) ? rowKernels(n) : null;
    if (lib !== null) {
      // The same search in Zig (sampling.nucleus): ~10x faster on a 49k row.
      const rc = lib.hearth_top_p(logits, n, max, this.topP, probs, bucketOf, candIds, nucleusCount);
      if (rc !== 0) throw new SamplerError(`native top-p failed: ${lastError()}`);
      const count = nucleusCount[0] as number;
      for (let k = 0; k < count; k++) candLogits[k] = logits[candIds[k] as number] as number;
      return count;
    }
    const buckets = bucketMass.length;
    const scale = buckets / NUCLEUS_LOGIT_RANGE;
    const floor = max - NUCLEUS_LOGIT_RANGE;
    bucketMass.fill(0);
    let z = 0;
    for (let i = 0; i < n; i++) {
      const v = logits[i] as number;
      const w = Math.exp(v - max);
      probs[i] = w;
      z += w;
      const b = v <= floor ? 0 : Math.min(buckets - 1, Math.floor((v - floor) * scale));
      bucketOf[i] = b;
      bucketMass[b] = (bucketMass[b] as number) + w;
    }
    const target = this.topP * z;
    let cum = 0;
    let boundary = 0;
    for (let b = buckets - 1; b >= 0; b--) {
      const m = bucketMass[b] as number;
      if (cum + m >= target) {
        boundary = b;
        break;
      }
      cum += m;
    }
    // Everything above the boundary bucket is in; the boundary bucket's tokens go to the tail of
    // the candidate buffer, get sorted best-first, and are taken until the mass reaches p.
    let count = 0;
    let tail = n;
    for (let i = 0; i < n; i++) {
      const b = bucketOf[i] as number;
      if (b > boundary) {
        candIds[count] = i;
        candLogits[count] = logits[i] as number;
        count++;
      } else if (b === boundary) {
        candIds[--tail] = i;
      }
    }
    const edge = candIds.subarray(tail, n);
    edge.sort((a, b) => (logits[b] as number) - (logits[a] as number) || a - b);
    for (let j = 0; j < edge.length && cum < target; j++) {
      const id = edge[j] as number;
      cum += probs[id] as number;
      candIds[count] = id;
      candLogits[count] = logits[id] as number;
      count++;
    }
    return count;
  }

  private applyPenalties(history: ArrayLike<number>): void {
    const n = this.vocabSize;
    const start = Math.max(this.penaltyFrom, this.penaltyLastN < 0 ? 0 : history.length - this.penaltyLastN);
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

  private ensureBuffers(n: number): void {
    if (this.vocabSize === n) return;
    this.vocabSize = n;
    this.logits = new Float32Array(n);
    this.candIds = new Int32Array(n);
    this.candLogits = new Float32Array(n);
    this.probs = new Float32Array(n);
    this.counts = new Int32Array(n);
    this.bucketOf = new Uint16Array(n);
  }
}

const expSum = new Float64Array(1);
const nucleusCount = new Uint32Array(1);

/** filter()'s answer when the whole row is the candidate set (see Sampler.sampleWholeRow). */
const WHOLE_ROW = -1;

/**
 * Whether nativeExpWeights weighs `count` values: libhearth loaded and the row long, a finite
 * maximum, and 1/T above 0 as the f32 the kernel takes (a temperature past ~1e38 makes it 0).
 */
function weighsNatively(count: number, max: number, invT: number): boolean {
  return Number.isFinite(max) && Math.fround(invT) > 0 && rowKernels(count) !== null;
}

/**
 * probs[i] = exp((x[i] - max) * invT) for i < count in SIMD, returning their sum; null when
 * weighsNatively says no (the caller's JS loop serves).
 */
function nativeExpWeights(
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
function checkedArgmax(row: Float32Array): number {
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
function nucleusCut(sortedLogits: Float32Array, count: number, p: number): number {
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

function checkSeed(v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || Math.abs(v) > MAX_SEED) {
    throw new SamplerError(`seed must be an integer in [-2^53, 2^53], got ${String(v)}`);
  }
  return v;
}

/** The checked (id, bias) pairs of a logitBias option: ids below `vocabSize` when it is given. */
function logitBiasEntries(
  bias: SamplerOptions["logitBias"],
  vocabSize: number | undefined,
): [number, number][] {
  if (bias === undefined || bias === null) return [];
  if (typeof bias !== "object") {
    throw new SamplerError(`logitBias must be an object or a Map of token id to bias, got ${String(bias)}`);
  }
  const raw: [unknown, unknown][] =
    bias instanceof Map ? [...bias.entries()] : Object.entries(bias as Record<string, unknown>);
  if (raw.length > MAX_LOGIT_BIAS_ENTRIES) {
    throw new SamplerError(`logitBias has ${raw.length} entries; the limit is ${MAX_LOGIT_BIAS_ENTRIES}`);
  }
  return raw.map(([key, value]) => {
    // Object keys are strings: only plain decimal digits name a token id ("" or "1e3" do not).
    const id = typeof key === "string" ? (/^\d+$/.test(key) ? Number(key) : Number.NaN) : key;
    const shown = typeof key === "string" ? JSON.stringify(key) : String(key);
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) {
      throw new SamplerError(`logitBias key ${shown} is not a token id`);
    }
    if (vocabSize !== undefined && id >= vocabSize) {
      throw new SamplerError(`logitBias key ${id} is not a token id below the vocabulary size ${vocabSize}`);
    }
    const ok =
      typeof value === "number" &&
      (value === Number.NEGATIVE_INFINITY || (value >= -MAX_LOGIT_BIAS && value <= MAX_LOGIT_BIAS));
    if (!ok) {
      throw new SamplerError(
        `logitBias for token ${id} must be a number in [-${MAX_LOGIT_BIAS}, ${MAX_LOGIT_BIAS}] or -Infinity (banned), got ${String(value)}`,
      );
    }
    return [id, value];
  });
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
