// What a Sampler accepts: its options, their defaults and limits, and the checks that turn a
// bad value into a SamplerError naming the option (the library and the server share them).

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

export function checkSeed(v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || Math.abs(v) > MAX_SEED) {
    throw new SamplerError(`seed must be an integer in [-2^53, 2^53], got ${String(v)}`);
  }
  return v;
}

/** The checked (id, bias) pairs of a logitBias option: ids below `vocabSize` when it is given. */
export function logitBiasEntries(
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

export function checkNumber(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || Number.isNaN(v) || v < min || v > max) {
    throw new SamplerError(`${name} must be a number in [${min}, ${max}], got ${String(v)}`);
  }
  return v;
}

export function checkInteger(name: string, v: unknown, min: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
    throw new SamplerError(`${name} must be an integer >= ${min}, got ${String(v)}`);
  }
  return v;
}

export function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
