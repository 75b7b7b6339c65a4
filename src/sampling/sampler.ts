// Token sampler: logit bias, repetition / presence / frequency penalties, top-k, top-p, min-p,
// temperature and a seeded draw, in llama.cpp's default order. Its working buffers are sized once
// per vocabulary and shared by every sampler on the thread, so sampling a token allocates nothing
// and a request allocates no vocabulary-sized arrays (six of them were ~1 MB per request on a 49k
// vocabulary: garbage that the soak's server RSS wandered with).

import { lastError } from "../native/lib.ts";
import { Rng, randomSeed } from "./rng.ts";
import { rowKernels } from "./row-kernels.ts";
import { checkedArgmax, nativeExpWeights, nucleusCut, selectTopK, weighsNatively } from "./row-select.ts";
import {
  checkInteger,
  checkNumber,
  checkSeed,
  DEFAULT_SAMPLER_OPTIONS,
  logitBiasEntries,
  SamplerError,
  type SamplerOptions,
  stripUndefined,
  type TokenDistribution,
} from "./sampler-options.ts";

/** Width in logits of the histogram top-p uses without top-k; below it a token's weight is < e^-40. */
const NUCLEUS_LOGIT_RANGE = 40;
const NUCLEUS_BUCKETS = 4096;
const nucleusCount = new Uint32Array(1);

/** filter()'s answer when the whole row is the candidate set (see Sampler.sampleWholeRow). */
const WHOLE_ROW = -1;

/**
 * Working buffers for one vocabulary size. A sample or distribution call is synchronous and
 * leaves `counts` all zero, so every sampler on a thread can share one set.
 */
interface Scratch {
  logits: Float32Array;
  candIds: Int32Array;
  candLogits: Float32Array;
  probs: Float32Array;
  counts: Int32Array;
  bucketOf: Uint16Array;
  touched: Int32Array;
  bucketMass: Float64Array;
}

/** Vocabulary sizes whose buffers are kept (models with different vocabularies in one process). */
const SCRATCH_VOCABULARIES_MAX = 4;
const scratchByVocabulary = new Map<number, Scratch>();

/** The shared buffers for vocabulary size `n` (the least recently made set goes past the bound). */
function scratchFor(n: number): Scratch {
  const found = scratchByVocabulary.get(n);
  if (found !== undefined) return found;
  if (scratchByVocabulary.size >= SCRATCH_VOCABULARIES_MAX) {
    const oldest = scratchByVocabulary.keys().next().value as number;
    scratchByVocabulary.delete(oldest);
  }
  const made = makeScratch(n);
  scratchByVocabulary.set(n, made);
  return made;
}

function makeScratch(n: number): Scratch {
  return {
    logits: new Float32Array(n),
    candIds: new Int32Array(n),
    candLogits: new Float32Array(n),
    probs: new Float32Array(n),
    counts: new Int32Array(n),
    bucketOf: new Uint16Array(n),
    touched: new Int32Array(0),
    bucketMass: new Float64Array(NUCLEUS_BUCKETS),
  };
}

/** A sampler's buffers before its first row (every call sizes them first). */
const NO_SCRATCH = makeScratch(0);

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

  /** The thread's shared buffers for the vocabulary of the last row sampled. */
  private vocabSize = 0;
  private s: Scratch = NO_SCRATCH;
  /** The row maximum filter() found, for sampleWholeRow. */
  private rowMax = 0;

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
    if (count === 1) return this.s.candIds[0] as number;
    const { probs } = this.s;
    const sum = this.weigh(count);
    const target = this.rng.nextFloat() * sum;
    let acc = 0;
    for (let i = 0; i < count; i++) {
      acc += probs[i] as number;
      if (target < acc) return this.s.candIds[i] as number;
    }
    // Rounding can leave target == sum; the last candidate with weight is the answer then.
    for (let i = count - 1; i >= 0; i--) if ((probs[i] as number) > 0) return this.s.candIds[i] as number;
    return this.s.candIds[0] as number;
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
    const { logits, probs } = this.s;
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
    const { candLogits, probs } = this.s;
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

  /**
   * The distribution `sample` draws from: the surviving candidates and their probabilities. The
   * arrays are views of the thread's shared buffers: the next `sample` or `distribution` call of
   * any sampler over the same vocabulary overwrites them (copy them to keep them).
   */
  distribution(logits: Float32Array, history: ArrayLike<number> = []): TokenDistribution {
    const count = this.filter(logits, history);
    const { probs } = this.s;
    if (count === 1) {
      probs[0] = 1;
    } else {
      const sum = this.weigh(count);
      for (let i = 0; i < count; i++) probs[i] = (probs[i] as number) / sum;
    }
    return { ids: this.s.candIds.subarray(0, count), probs: this.s.probs.subarray(0, count) };
  }

  /**
   * Applies bias, penalties and the truncation filters; leaves the survivors in candIds/candLogits
   * (logits still at temperature 1) and returns how many there are. Greedy leaves exactly one.
   */
  private filter(input: Float32Array, history: ArrayLike<number>, wholeRowOk = false): number {
    const n = input.length;
    if (n === 0) throw new SamplerError("cannot sample from an empty logits row");
    this.ensureBuffers(n);
    const { candIds, candLogits } = this.s;
    const penalised = this.hasPenalties && this.penaltyLastN !== 0 && history.length > this.penaltyFrom;
    if (this.greedy && this.biasIds.length === 0 && !penalised) {
      // Nothing changes the row: read the caller's logits directly, no copy.
      const best = checkedArgmax(input);
      candIds[0] = best;
      candLogits[0] = input[best] as number;
      return 1;
    }
    const logits = this.s.logits;
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
    const { logits, candIds, candLogits, probs, bucketMass, bucketOf } = this.s;
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
    if (this.s.touched.length < windowLength) this.s.touched = new Int32Array(windowLength);
    const { counts, touched, logits } = this.s;
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
    this.s = scratchFor(n);
  }
}
