// The library session's options, results and errors, and their checks (src/session.ts runs them).
import type { ChatMessage } from "./chat/index.ts";
import type { GenerationSpec } from "./engine/generation.ts";
import type { EngineEvent } from "./engine/request.ts";
import type { Model } from "./model.ts";
import { KvFullError } from "./native/model-api.ts";
import { checkOptionKeys } from "./option-keys.ts";
import {
  type FinishReason,
  MAX_TOP_LOGPROBS,
  Sampler,
  type SamplerOptions,
  type TokenLogprob,
} from "./sampling/index.ts";
import { resolveSpeculative, type SpeculativeOptions } from "./speculative.ts";
import type { FunctionTool, ToolCall, ToolChoice } from "./tools/index.ts";

export type { ChatMessage, SpeculativeOptions, TokenLogprob };

/**
 * What happens when a session's context is full: keep the first `keepTokens` tokens (e.g. the
 * system prompt), drop the `dropTokens` oldest after them, and re-rope the rest so generation
 * continues. `false` turns shifting off: a full context is then a {@link ContextFullError}.
 */
export interface ContextShiftOptions {
  /** Tokens at the start that are never dropped. Default 4. */
  keepTokens?: number;
  /** Tokens dropped per shift. Default: half of what follows the kept tokens. */
  dropTokens?: number;
}

/** Options of {@link Model.createSession}. */
export interface SessionOptions {
  /** Most tokens this session's KV holds. Default: the model's `contextTokens`. */
  contextTokens?: number;
  /** Context shift when full (default on: keep 4, drop half), or `false` for an error instead. */
  contextShift?: ContextShiftOptions | false;
  /** A system message that starts the history of {@link Session.ask}. */
  systemPrompt?: string;
  /** Fixed seed (0) when a call gives none. Default: the model's `deterministic` option. */
  deterministic?: boolean;
  /** Sampling defaults for every call of this session; a call's options override them. */
  sampling?: SessionSamplerOptions;
}

/**
 * The sampler's options a session takes: all but `penaltyFrom` (a session's penalties look at
 * its last `penaltyLastN` tokens, prompt included, as llama.cpp's do).
 */
export type SessionSamplerOptions = Omit<SamplerOptions, "penaltyFrom">;

/** Options of one generation ({@link Session.generate}, {@link Session.chat}, {@link Session.ask}). */
export interface GenerateOptions extends SessionSamplerOptions {
  /** Most tokens to generate. Default 512. */
  maxTokens?: number;
  /** Generation ends before the first occurrence of any of these strings (not emitted). */
  stop?: readonly string[];
  /** Keep going past end-of-generation tokens. Default false. */
  ignoreEos?: boolean;
  /** Aborting ends the generation with finishReason "abort" (the text so far is kept). */
  signal?: AbortSignal;
  /**
   * Speculative decoding by prompt lookup: draft tokens are copied from where the context's
   * last few tokens occurred before and verified in one forward pass. The output is exactly
   * what plain decoding gives (same tokens for the same seed); it is faster when the reply
   * repeats its context (code edits, quoting, lists). `true` for the defaults. Default off, or on
   * (`draft: "both"`) when the model was loaded with a draft model; `{ draft: "model" | "lookup" |
   * "both" }` picks the draft source (docs/speculative.md).
   */
  speculative?: SpeculativeOptions | boolean;
  /**
   * JSON mode: the reply is one JSON object (the model's distribution restricted to tokens that
   * keep it valid JSON); the generation ends when the object closes (finishReason "stop").
   * `{ schema }`: one matching that JSON Schema (structured outputs; the subset
   * src/sampling/json-schema.ts lists, others are a SchemaError). Takes no speculative drafts.
   * Say in the prompt that the answer is JSON. Default false.
   */
  json?: boolean | { schema: unknown };
  /**
   * Log-probabilities: each generated token's, with this many most likely alternatives (0..20),
   * in {@link GenerateResult.logprobs} (from the model's distribution before sampling settings).
   * Default off.
   */
  logprobs?: number;
  /**
   * A predicted output (text or token ids): the reply you expect, mostly (an edited file, a
   * quoted passage). Speculative drafts follow it first; the output does not depend on it.
   * Turns speculative decoding on with its defaults when `speculative` is not given.
   */
  prediction?: string | readonly number[];
  /**
   * chat() only: functions the model may call (OpenAI's shape; docs/tools.md). The reply's calls
   * are in {@link GenerateResult.toolCalls}.
   */
  tools?: readonly FunctionTool[];
  /** chat() only: "auto" (default), "none", "required", or { type: "function", function: { name } }. */
  toolChoice?: ToolChoice;
  /** chat() only: more than one call in a reply. Default true. */
  parallelToolCalls?: boolean;
}

/** Every key of {@link SessionSamplerOptions}. */
export const SAMPLER_OPTION_KEYS = Object.keys({
  temperature: true,
  topK: true,
  topP: true,
  minP: true,
  repeatPenalty: true,
  presencePenalty: true,
  frequencyPenalty: true,
  penaltyLastN: true,
  logitBias: true,
  seed: true,
} satisfies Record<keyof SessionSamplerOptions, true>);

/** Every key of {@link SessionOptions}. */
export const SESSION_OPTION_KEYS = Object.keys({
  contextTokens: true,
  contextShift: true,
  systemPrompt: true,
  deterministic: true,
  sampling: true,
} satisfies Record<keyof SessionOptions, true>);

/** Every key of {@link GenerateOptions} (its own and the sampler's). */
export const GENERATE_OPTION_KEYS = [
  ...SAMPLER_OPTION_KEYS,
  ...Object.keys({
    maxTokens: true,
    stop: true,
    ignoreEos: true,
    signal: true,
    speculative: true,
    json: true,
    logprobs: true,
    prediction: true,
    tools: true,
    toolChoice: true,
    parallelToolCalls: true,
  } satisfies Record<Exclude<keyof GenerateOptions, keyof SessionSamplerOptions>, true>),
];

/** Every key of {@link ContextShiftOptions}. */
const CONTEXT_SHIFT_OPTION_KEYS = Object.keys({
  keepTokens: true,
  dropTokens: true,
} satisfies Record<keyof ContextShiftOptions, true>);

/** Options of {@link Session.prefill}. */
export interface PrefillOptions {
  /** Add BOS as the model asks. Default: only when the session is empty. */
  addSpecial?: boolean;
  /** Read control-token text such as `<|im_start|>` as those tokens. Default false. */
  parseSpecial?: boolean;
  /** Aborting stops between chunks; the chunks already done stay in the session. */
  signal?: AbortSignal;
}

/** Why a generation ended: a stop string, an end-of-generation token, the token budget, or abort. */
export type GenerateFinishReason = FinishReason | "abort";

/** Figures of one call. Rates are 0 when their phase did no work. */
export interface Telemetry {
  /** Prompt tokens run through the model (for generate: the prefills since the last generation). */
  promptTokens: number;
  /** Prompt tokens found already in the KV cache and not recomputed (chat). */
  cachedTokens: number;
  /** Tokens sampled. */
  generatedTokens: number;
  /** Prefill time plus the time to sample the first token; null when no token was sampled. */
  timeToFirstTokenMs: number | null;
  prefillMs: number;
  prefillTokensPerS: number;
  /** Tokens run through the model while generating (generated tokens plus verified drafts). */
  decodeTokens: number;
  decodeMs: number;
  decodeTokensPerS: number;
  /** Wall time of the call, plus (like the TTFT) the prefills run since the last generation. */
  totalMs: number;
  /** Context shifts during the call, and the tokens they dropped. */
  contextShifts: number;
  droppedTokens: number;
  /** Tokens in the session's context when the call ended. */
  contextUsedTokens: number;
  /** Speculative decoding: draft tokens checked against the sampled token, and how many matched. */
  draftTokens: number;
  acceptedDraftTokens: number;
  /**
   * Draft tokens proposed (run in a step) and accepted, per source: the draft model's and
   * lookup's (prompt lookup and predicted output).
   */
  drafts: { modelProposed: number; modelAccepted: number; lookupProposed: number; lookupAccepted: number };
  /** Null for a prefill. */
  finishReason: GenerateFinishReason | null;
}

/** The outcome of a generation. */
export interface GenerateResult {
  text: string;
  tokens: number[];
  finishReason: GenerateFinishReason;
  telemetry: Telemetry;
  /** With {@link GenerateOptions.logprobs}: one entry per generated token (end-of-generation excluded). */
  logprobs?: TokenLogprob[];
  /**
   * With {@link GenerateOptions.tools}: the calls the reply made (OpenAI's shape, ids `call_...`;
   * a call cut by maxTokens has partial arguments), and the text before them.
   */
  toolCalls?: ToolCall[];
  content?: string;
}

/** The context is full and context shift is off (or cannot free room); nothing was lost. */
export class ContextFullError extends Error {
  override name = "ContextFullError";
  constructor(
    message: string,
    readonly contextTokens: number,
    /** Tokens the session held when it refused. */
    readonly usedTokens: number,
    /** Tokens that were to be added and did not fit (1 when a generated token found no room). */
    readonly pendingTokens: number,
  ) {
    super(message);
  }
}

/** A session was used after close, or two calls overlapped. */
export class SessionStateError extends Error {
  override name = "SessionStateError";
}

/** Tokens at the start a context shift keeps by default (a system prompt's first tokens). */
const DEFAULT_KEEP_TOKENS = 4;

function nonNegativeInt(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${String(v)}`);
  }
  return v;
}

/** The error an engine error event stands for, for a session holding `computed` tokens in its KV. */
export function engineError(
  ev: Extract<EngineEvent, { type: "error" }>,
  model: Model,
  contextTokens: number,
  computed: number,
): Error {
  if (ev.code === "kv_full") {
    const stats = model.native.kvStats();
    return new KvFullError(
      `the KV pool is full (${stats.pagesTotal} pages of ${stats.pageTokens} tokens, shared by ${model.openSessions} sessions): ` +
        `close other sessions, or load the model with more kvPages`,
    );
  }
  if (ev.code === "context_full") return new ContextFullError(ev.message, contextTokens, computed, 1);
  return new Error(ev.message);
}

/**
 * Checks one call's generation options (keys, maxTokens, sampler settings) before anything
 * runs and merges them over the session's sampling defaults (`deterministic`: seed 0 unless
 * given). `where` names the call in errors ("generate", "chat", "ask").
 */
export function prepareGeneration(
  where: string,
  opts: GenerateOptions,
  defaults: SessionSamplerOptions,
  deterministic: boolean,
  vocabSize: number,
): GenerateOptions {
  checkOptionKeys(`${where} options`, opts, GENERATE_OPTION_KEYS);
  const options = { ...defaults, ...opts };
  const maxTokens = options.maxTokens;
  if (
    maxTokens !== undefined &&
    (typeof maxTokens !== "number" || !Number.isInteger(maxTokens) || maxTokens < 1)
  ) {
    throw new RangeError(`${where}: maxTokens must be an integer of at least 1, got ${String(maxTokens)}`);
  }
  const seed = options.seed ?? (deterministic ? 0 : undefined);
  new Sampler({ ...options, seed }, vocabSize);
  return { ...options, seed };
}

/**
 * Refuses a session context the model's KV pool cannot hold even with no other session open:
 * the session would shift at the pool's size while claiming a larger context.
 */
export function checkFitsPool(model: Model, contextTokens: number): void {
  const pool = model.native.kvStats();
  const poolTokens = pool.pagesTotal * pool.pageTokens;
  if (contextTokens <= poolTokens) return;
  throw new RangeError(
    `createSession: contextTokens ${contextTokens} is more than the model's KV pool holds ` +
      `(${pool.pagesTotal} pages of ${pool.pageTokens} tokens = ${poolTokens} tokens, shared by every session); ` +
      `load the model with a larger pool: loadModel(ref, { contextTokens: ${contextTokens} }) sizes it for ` +
      `maxSessions contexts of that length, or set kvPages (at least ${Math.ceil(contextTokens / pool.pageTokens)})`,
  );
}

export function resolveShift(
  shift: ContextShiftOptions | false | undefined,
  contextTokens: number,
): Readonly<Required<ContextShiftOptions>> | false {
  if (shift === false) return false;
  if (shift !== undefined && (typeof shift !== "object" || shift === null)) {
    throw new TypeError("contextShift must be an object { keepTokens, dropTokens } or false");
  }
  checkOptionKeys("createSession contextShift", shift, CONTEXT_SHIFT_OPTION_KEYS);
  const keepTokens = nonNegativeInt("contextShift.keepTokens", shift?.keepTokens ?? DEFAULT_KEEP_TOKENS);
  // 0 means "half of what follows the kept tokens", decided at shift time.
  const dropTokens = nonNegativeInt("contextShift.dropTokens", shift?.dropTokens ?? 0);
  if (keepTokens >= contextTokens) {
    throw new RangeError(
      `contextShift.keepTokens (${keepTokens}) must be less than contextTokens (${contextTokens})`,
    );
  }
  if (keepTokens + dropTokens > contextTokens) {
    throw new RangeError(
      `contextShift keepTokens + dropTokens (${keepTokens + dropTokens}) must not exceed contextTokens (${contextTokens})`,
    );
  }
  return { keepTokens, dropTokens };
}

/** Most tokens a generation makes when the call does not say. */
const DEFAULT_MAX_TOKENS = 512;

/**
 * The generation rules of one call, checked (a RangeError names what is wrong).
 * `encode` turns a prediction into token ids (text without BOS; ids checked against the vocabulary).
 */
export function generationSpec(
  opts: GenerateOptions,
  shift: Readonly<Required<ContextShiftOptions>> | false,
  encode: (p: string | readonly number[]) => number[],
  draftModel = false,
): GenerationSpec {
  if (
    opts.json !== undefined &&
    typeof opts.json !== "boolean" &&
    (typeof opts.json !== "object" || opts.json === null || !("schema" in opts.json))
  )
    throw new RangeError("json must be true, false or { schema }");
  const json = opts.json !== undefined && opts.json !== false;
  if (json && opts.speculative)
    throw new RangeError("json and speculative cannot be combined (JSON mode takes no drafts)");
  const predicted = opts.prediction === undefined ? undefined : encode(opts.prediction);
  // A predicted output or a loaded draft model turns drafting on unless the call says otherwise.
  const speculative = resolveSpeculative(
    opts.speculative ?? ((predicted !== undefined || draftModel) && !json),
  );
  const {
    maxTokens,
    stop,
    ignoreEos,
    logprobs,
    signal: _s,
    speculative: _sp,
    json: _j,
    prediction: _p,
    tools: _t,
    toolChoice: _tc,
    parallelToolCalls: _ptc,
    ...sampling
  } = opts;
  if (logprobs !== undefined && (!Number.isInteger(logprobs) || logprobs < 0 || logprobs > MAX_TOP_LOGPROBS))
    throw new RangeError(
      `logprobs must be an integer from 0 to ${MAX_TOP_LOGPROBS}, got ${String(logprobs)}`,
    );
  return {
    sampling,
    maxTokens: maxTokens ?? DEFAULT_MAX_TOKENS,
    stop: stop ?? [],
    ignoreEos: ignoreEos === true,
    speculative,
    ...(predicted === undefined ? {} : { predictedIds: predicted }),
    json: opts.json === true,
    ...(typeof opts.json === "object" && opts.json !== null ? { jsonSchema: opts.json.schema } : {}),
    logprobs: logprobs ?? null,
    contextShift: shift === false ? null : { ...shift },
  };
}

/** The context is full with shift off: `pending` tokens (1: the next one) do not fit. */
export function contextFullError(used: number, contextTokens: number, pending: number): ContextFullError {
  return new ContextFullError(
    `context full: the session holds ${used} of ${contextTokens} tokens, ${pending} more ${pending === 1 ? "does" : "do"} not fit, and contextShift is off ` +
      `(open the session with a larger contextTokens, enable contextShift, or reset() it)`,
    contextTokens,
    used,
    pending,
  );
}

/** Token ids given by a caller, checked against the vocabulary (`where` names the call). */
export function checkTokenIds(where: string, input: unknown, vocabSize: number): number[] {
  if (!Array.isArray(input) && !ArrayBuffer.isView(input)) {
    throw new TypeError(`${where}: input must be a string or an array of token ids`);
  }
  const ids = Array.from(input as ArrayLike<number>);
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new RangeError(`${where}: token ${i} is ${String(id)}, not an id in [0, ${vocabSize})`);
    }
  });
  return ids;
}
