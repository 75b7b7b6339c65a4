// Speculative decoding's options and its model-free drafts: prompt lookup guesses the next tokens
// by finding the latest earlier place in the context where the last few tokens occurred and
// copying what followed, or by following a predicted output (OpenAI's `prediction`); a draft
// model's guesses (src/engine/draft-model.ts) combine with them here. The target verifies every
// guess in one forward pass, so the output is exactly what plain decoding gives.

/**
 * Where drafts come from: "lookup" (prompt lookup / predicted output), "model" (the draft model
 * loaded beside the target) or "both" (their longest agreed prefix first).
 */
export type DraftSource = "model" | "lookup" | "both";

const DRAFT_SOURCES: readonly DraftSource[] = ["model", "lookup", "both"];

/** Options of speculative decoding ({@link GenerateOptions.speculative}). */
export interface SpeculativeOptions {
  /**
   * Most draft tokens verified per forward pass. Default 4 for lookup drafts and 8 for a draft
   * model's (1..16); a draft model's depth adapts below it to each sequence's acceptance.
   */
  maxDraftTokens?: number;
  /** Longest suffix of the context looked up. Default 4. */
  ngramMax?: number;
  /** Shortest suffix that may produce a draft. Default 2 (1 drafts after any repeated token). */
  ngramMin?: number;
  /**
   * Draft source. Default: "both" when the model was loaded with a draft model, else "lookup";
   * "model" and "both" need a draft model.
   */
  draft?: DraftSource;
}

export interface ResolvedSpeculative {
  /** Lookup drafts' bound. */
  readonly maxDraftTokens: number;
  /** The draft model's bound. */
  readonly maxModelDraftTokens: number;
  readonly ngramMax: number;
  readonly ngramMin: number;
  /** null: the default (see SpeculativeOptions.draft), decided where the draft model is known. */
  readonly draft: DraftSource | null;
}

/** The default draft depth with a draft model, where no maxDraftTokens is given. */
export const MODEL_DRAFT_TOKENS = 8;

/** How far back the lookup scans (tokens): bounds the cost per step on long contexts. */
export const LOOKUP_WINDOW_TOKENS = 4096;

function intIn(name: string, v: number, lo: number, hi: number): number {
  if (!Number.isInteger(v) || v < lo || v > hi) {
    throw new RangeError(`speculative.${name} must be an integer in [${lo}, ${hi}], got ${String(v)}`);
  }
  return v;
}

/** Validates the option; `true` means the defaults, `false`/undefined means off (null). */
export function resolveSpeculative(
  opt: SpeculativeOptions | boolean | undefined,
): ResolvedSpeculative | null {
  if (opt === undefined || opt === false) return null;
  if (opt !== true && (typeof opt !== "object" || opt === null)) {
    throw new TypeError("speculative must be true, false or { maxDraftTokens, ngramMax, ngramMin, draft }");
  }
  const o = opt === true ? {} : opt;
  const draft = o.draft ?? null;
  if (draft !== null && !DRAFT_SOURCES.includes(draft))
    throw new RangeError(
      `speculative.draft must be "model", "lookup" or "both", got ${JSON.stringify(String(draft))}`,
    );
  const given = o.maxDraftTokens === undefined ? undefined : intIn("maxDraftTokens", o.maxDraftTokens, 1, 16);
  const ngramMax = intIn("ngramMax", o.ngramMax ?? 4, 1, 16);
  const ngramMin = intIn("ngramMin", o.ngramMin ?? 2, 1, ngramMax);
  return {
    maxDraftTokens: given ?? 4,
    maxModelDraftTokens: given ?? MODEL_DRAFT_TOKENS,
    ngramMax,
    ngramMin,
    draft,
  };
}

/** The draft sources a request uses, given whether a draft model is loaded; throws when it needs one that is not. */
export function draftSources(
  spec: ResolvedSpeculative,
  hasDraftModel: boolean,
): { lookup: boolean; model: boolean } {
  const source = spec.draft ?? (hasDraftModel ? "both" : "lookup");
  if (source !== "lookup" && !hasDraftModel)
    throw new RangeError(
      `speculative.draft "${source}" needs a draft model (loadModel's draft option, or -md on the command line)`,
    );
  return { lookup: source !== "model", model: source !== "lookup" };
}

/**
 * One draft from a lookup draft and a draft model's: their agreed prefix, then the model's
 * tokens; when the model's whole draft is a prefix of the lookup one, the lookup goes on past it.
 * `modelTokens`: how many leading tokens count as the model's (the rest are lookup's).
 */
export function combineDrafts(
  lookup: readonly number[],
  model: readonly number[],
  limit: number,
): { tokens: number[]; modelTokens: number } {
  if (model.length === 0) return { tokens: lookup.slice(0, limit), modelTokens: 0 };
  let agreed = 0;
  while (agreed < model.length && agreed < lookup.length && model[agreed] === lookup[agreed]) agreed++;
  const tokens = (agreed === model.length ? lookup : model).slice(0, limit);
  return { tokens, modelTokens: Math.min(model.length, tokens.length) };
}

/**
 * Up to `limit` tokens that followed the latest earlier occurrence of the longest suffix of
 * `history` (between ngramMax and ngramMin tokens) found in the last LOOKUP_WINDOW_TOKENS; empty
 * when none occurs.
 */
export function proposeDraft(history: readonly number[], spec: ResolvedSpeculative, limit: number): number[] {
  const len = history.length;
  const k = Math.min(limit, spec.maxDraftTokens);
  if (k <= 0) return [];
  const lowest = Math.max(0, len - LOOKUP_WINDOW_TOKENS);
  for (let n = Math.min(spec.ngramMax, len - 1); n >= spec.ngramMin; n--) {
    // Candidate starts i with i + n <= len - 1, so at least one token follows the match.
    for (let i = len - n - 1; i >= lowest; i--) {
      let j = 0;
      while (j < n && history[i + j] === history[len - n + j]) j++;
      if (j === n) return history.slice(i + n, Math.min(len, i + n + k));
    }
  }
  return [];
}

/**
 * Draft tokens from a predicted output (the text the caller expects the reply to be, mostly):
 * while the reply so far (`generated` tokens at the end of `history`) is the prediction's
 * beginning, its next tokens; else what follows the longest suffix of `history` (ngramMax down
 * to ngramMin tokens) found in the prediction, taking the occurrence nearest the reply's
 * position when it occurs several times (an edited file keeps its lines in order). Empty when
 * nothing matches; up to `limit` (and maxDraftTokens) tokens.
 */
export function predictedDraft(
  history: readonly number[],
  generated: number,
  predicted: readonly number[],
  spec: ResolvedSpeculative,
  limit: number,
): number[] {
  const k = Math.min(limit, spec.maxDraftTokens);
  const len = history.length;
  if (k <= 0 || predicted.length === 0) return [];
  if (generated < predicted.length) {
    let same = 0;
    while (same < generated && predicted[same] === history[len - generated + same]) same++;
    if (same === generated) return predicted.slice(generated, generated + k);
  }
  for (let n = Math.min(spec.ngramMax, len); n >= spec.ngramMin; n--) {
    let best = -1;
    for (let i = 0; i + n < predicted.length; i++) {
      let j = 0;
      while (j < n && predicted[i + j] === history[len - n + j]) j++;
      if (j === n && (best < 0 || Math.abs(i + n - generated) < Math.abs(best + n - generated))) best = i;
    }
    if (best >= 0) return predicted.slice(best + n, best + n + k);
  }
  return [];
}
