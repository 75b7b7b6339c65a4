// Session: one conversation over one KV sequence. Prefill and decode are separate steps;
// generation streams text pieces; every call reports telemetry; a full context shifts.
import { type ChatMessage, checkConversation, encodeChat } from "./chat/index.ts";
import { resumeSequence, saveSequence } from "./kv/index.ts";
import type { Model } from "./model.ts";
import { createBatch } from "./native/model.ts";
import { type Batch, KvFullError } from "./native/model-api.ts";
import { checkOptionKeys } from "./option-keys.ts";
import { type FinishReason, Sampler, type SamplerOptions, StopCondition } from "./sampling/index.ts";
import { constrainedSample, JsonConstraint, type ReplyConstraint } from "./sampling/json.ts";
import { SchemaConstraint } from "./sampling/json-schema.ts";
import { proposeDraft, resolveSpeculative, type SpeculativeOptions } from "./speculative.ts";

export type { ChatMessage, SpeculativeOptions };

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
   * repeats its context (code edits, quoting, lists). `true` for the defaults. Default off.
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
}

/** Every key of {@link SessionSamplerOptions}. */
const SAMPLER_OPTION_KEYS = Object.keys({
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
const SESSION_OPTION_KEYS = Object.keys({
  contextTokens: true,
  contextShift: true,
  systemPrompt: true,
  deterministic: true,
  sampling: true,
} satisfies Record<keyof SessionOptions, true>);

/** Every key of {@link GenerateOptions} (its own and the sampler's). */
const GENERATE_OPTION_KEYS = [
  ...SAMPLER_OPTION_KEYS,
  ...Object.keys({
    maxTokens: true,
    stop: true,
    ignoreEos: true,
    signal: true,
    speculative: true,
    json: true,
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
  /** Null for a prefill. */
  finishReason: GenerateFinishReason | null;
}

/** The outcome of a generation. */
export interface GenerateResult {
  text: string;
  tokens: number[];
  finishReason: GenerateFinishReason;
  telemetry: Telemetry;
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

const DEFAULT_MAX_TOKENS = 512;
const DEFAULT_KEEP_TOKENS = 4;
/** Longest stretch of synchronous native work before the event loop gets a turn (abort, timers). */
const YIELD_EVERY_MS = 20;

interface PhaseFigures {
  promptTokens: number;
  cachedTokens: number;
  prefillMs: number;
  decodeTokens: number;
  decodeMs: number;
  contextShifts: number;
  droppedTokens: number;
  draftTokens: number;
  acceptedDraftTokens: number;
  /** Rows of verify passes whose tokens were dropped (rejected drafts and the ones after them). */
  droppedDraftRows: number;
}

function emptyFigures(): PhaseFigures {
  return {
    promptTokens: 0,
    cachedTokens: 0,
    prefillMs: 0,
    decodeTokens: 0,
    decodeMs: 0,
    contextShifts: 0,
    droppedTokens: 0,
    draftTokens: 0,
    acceptedDraftTokens: 0,
    droppedDraftRows: 0,
  };
}

function rate(tokens: number, ms: number): number {
  return tokens > 0 && ms > 0 ? (tokens * 1000) / ms : 0;
}

function nonNegativeInt(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${String(v)}`);
  }
  return v;
}

/**
 * One conversation with a model: a KV sequence rented from the model's pool, the token history,
 * and the logits of the last token. Create with {@link Model.createSession}; {@link Session.close}
 * returns the pages.
 */
export class Session {
  readonly model: Model;
  /** Most tokens the session's KV holds. */
  readonly contextTokens: number;
  readonly contextShift: Readonly<Required<ContextShiftOptions>> | false;
  readonly deterministic: boolean;
  /** The history {@link Session.ask} keeps (system prompt first, when given). */
  readonly messages: ChatMessage[] = [];
  /** Telemetry of the most recent call. */
  lastTelemetry: Telemetry | null = null;

  private seqId: number;
  private readonly sampling: SamplerOptions;
  private readonly systemPrompt: string | undefined;
  private readonly onClose: () => void;
  private readonly batch: Batch;
  private readonly logits: Float32Array;
  /** Logits rows of a speculative verify pass (allocated on first use). */
  private draftLogits: Float32Array | null = null;
  /** Token history; the first `kvLength` are in the KV cache, the rest are pending (sampled, not yet run). */
  private history: number[] = [];
  private kvLength = 0;
  /** True when `logits` belong to the last token in the KV (false after a truncation). */
  private logitsMatchKv = false;
  private figures = emptyFigures();
  private abortRequested = false;
  private busy = false;
  private closed = false;
  private lastYieldMs = 0;

  /** @internal Use {@link Model.createSession}. */
  constructor(model: Model, opts: SessionOptions, onClose: () => void) {
    this.model = model;
    this.onClose = onClose;
    checkOptionKeys("createSession options", opts, SESSION_OPTION_KEYS);
    checkOptionKeys("createSession sampling", opts.sampling, SAMPLER_OPTION_KEYS);
    const ctx = opts.contextTokens ?? model.options.contextTokens;
    if (!Number.isInteger(ctx) || ctx < 2) {
      throw new RangeError(`contextTokens must be an integer of at least 2, got ${String(ctx)}`);
    }
    if (opts.contextTokens !== undefined) checkFitsPool(model, opts.contextTokens);
    this.contextTokens = ctx;
    this.contextShift = resolveShift(opts.contextShift, ctx);
    this.deterministic = opts.deterministic ?? model.options.deterministic;
    this.sampling = { ...(opts.sampling ?? {}) };
    // Validate the session-wide sampling defaults now rather than at the first call.
    new Sampler({ ...this.sampling, seed: this.sampling.seed ?? 0 }, model.info.vocabSize);
    this.systemPrompt = opts.systemPrompt;
    if (this.systemPrompt !== undefined) this.messages.push({ role: "system", content: this.systemPrompt });
    this.batch = createBatch(model.options.maxBatchTokens);
    this.logits = new Float32Array(model.info.vocabSize);
    this.seqId = model.native.seqCreate();
  }

  /** Every token of the session so far (prompt and generated), after any context shift. */
  get tokens(): readonly number[] {
    return this.history;
  }

  /** Tokens in the context now. */
  get length(): number {
    return this.history.length;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Runs prompt text or token ids through the model (in chunks of the model's maxBatchTokens)
   * and keeps their KV; the next {@link Session.generate} continues from here.
   * A string gets BOS only when the session is empty (and the model wants one).
   * @returns the telemetry of this prefill (also in {@link Session.lastTelemetry}).
   */
  async prefill(input: string | readonly number[], opts: PrefillOptions = {}): Promise<Telemetry> {
    const ids = this.toTokens(input, opts);
    return this.exclusive(async () => {
      const started = performance.now();
      const before = { ...this.figures };
      await this.feed(ids, opts.signal, "prefill");
      const t = this.telemetry(started, null, 0, null, diffFigures(this.figures, before));
      this.lastTelemetry = t;
      return t;
    });
  }

  /**
   * Generates from the current context: an async iterator of text pieces (UTF-8 safe, stop
   * strings withheld). The iterator's return value is the {@link GenerateResult}; its telemetry
   * also lands in {@link Session.lastTelemetry}. Needs a prefilled prompt.
   */
  generate(opts: GenerateOptions = {}): AsyncGenerator<string, GenerateResult, void> {
    this.checkOpen();
    const { options, sampler } = this.prepareGeneration("generate", opts);
    return this.exclusiveGen(() => this.generateInner(options, sampler, null, this.figures.prefillMs));
  }

  /**
   * Answers a conversation: renders `messages` with the model's chat template, reuses the
   * longest prefix already in the KV cache, prefills the rest, and streams the reply.
   */
  chat(
    messages: readonly ChatMessage[],
    opts: GenerateOptions = {},
  ): AsyncGenerator<string, GenerateResult, void> {
    return this.chatAs("chat", messages, opts);
  }

  /** {@link Session.chat}, with errors naming `where` (the call the user made). */
  private chatAs(
    where: string,
    messages: readonly ChatMessage[],
    opts: GenerateOptions,
  ): AsyncGenerator<string, GenerateResult, void> {
    const template = this.model.chatTemplate;
    this.checkOpen();
    checkConversation(where, messages);
    const { options, sampler } = this.prepareGeneration(where, opts);
    const ids = encodeChat(template, this.model.tokenizer, messages, { addGenerationPrompt: true });
    return this.exclusiveGen(() =>
      async function* (this: Session) {
        const started = performance.now();
        const priorPrefillMs = this.figures.prefillMs;
        const cached = this.reuseCachedPrefix(ids);
        this.figures.cachedTokens += cached;
        const complete = await this.feed(ids.slice(cached), options.signal, "prefill");
        if (!complete) return this.finish(started, null, [], "abort", "");
        return yield* this.generateInner(options, sampler, started, priorPrefillMs);
      }.call(this),
    );
  }

  /**
   * Adds a user message to {@link Session.messages}, generates the reply (streamed to
   * `opts.onText` when given), adds it to the history, and returns it. On error the user
   * message is taken back, so the history stays as it was.
   */
  async ask(
    content: string,
    opts: GenerateOptions & { onText?: (piece: string) => void } = {},
  ): Promise<string> {
    if (typeof content !== "string") throw new TypeError("ask: content must be a string");
    checkOptionKeys("ask options", opts, [...GENERATE_OPTION_KEYS, "onText"]);
    const { onText, ...generateOpts } = opts;
    if (onText !== undefined && typeof onText !== "function") {
      throw new TypeError(`ask: onText must be a function, got ${typeof onText}`);
    }
    this.messages.push({ role: "user", content });
    let result: GenerateResult;
    try {
      const it = this.chatAs("ask", this.messages, generateOpts);
      for (;;) {
        const r = await it.next();
        if (r.done) {
          result = r.value;
          break;
        }
        onText?.(r.value);
      }
    } catch (err) {
      this.messages.pop();
      throw err;
    }
    this.messages.push({ role: "assistant", content: result.text });
    return result.text;
  }

  /**
   * Saves the token history and its KV to `path` so this or a later process can
   * {@link Session.restore} it instead of prefilling again. Sampled tokens not yet in the KV are
   * run first. Crash-safe: a temp file, fsync, rename. Returns the bytes written.
   */
  async save(path: string): Promise<number> {
    this.checkOpen();
    return this.exclusive(async () => {
      if (this.kvLength < this.history.length) await this.feed([], undefined, "decode");
      return saveSequence(this.model.native, this.seqId, this.history.slice(0, this.kvLength), path);
    });
  }

  /**
   * Replaces this session's context with one saved by {@link Session.save}: the KV is read from
   * the file (checksums verified), not recomputed; only the last token runs again, at the next
   * generate, for its logits. A missing, damaged or foreign file returns false and leaves the
   * session as it was (prefill the conversation instead). {@link Session.messages} is not saved.
   */
  restore(path: string): boolean {
    this.checkOpen();
    if (this.busy) throw new SessionStateError("cannot restore while a call is running (abort it first)");
    const native = this.model.native;
    const r = resumeSequence(native, path);
    if (!r.ok) return false;
    if (r.tokens.length === 0 || r.tokens.length > this.contextTokens) {
      native.seqFree(r.seqId);
      return false;
    }
    native.seqFree(this.seqId);
    this.seqId = r.seqId;
    // Drop the last token from the KV so the next feed recomputes it and yields its logits.
    native.seqShift(r.seqId, r.tokens.length - 1, 1);
    this.history = r.tokens;
    this.kvLength = r.tokens.length - 1;
    this.logitsMatchKv = false;
    return true;
  }

  /** Ends the running prefill or generation at the next token (finishReason "abort"). */
  abort(): void {
    this.abortRequested = true;
  }

  /** Forgets everything: the KV, the token history and the messages (the system prompt stays). */
  reset(): void {
    this.checkOpen();
    if (this.busy) throw new SessionStateError("cannot reset while a call is running (abort it first)");
    if (this.kvLength > 0) this.model.native.seqShift(this.seqId, 0, this.kvLength);
    this.history = [];
    this.kvLength = 0;
    this.logitsMatchKv = false;
    this.figures = emptyFigures();
    this.messages.length = 0;
    if (this.systemPrompt !== undefined) this.messages.push({ role: "system", content: this.systemPrompt });
  }

  /** Returns the session's KV pages to the pool. A running call ends with "abort". Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.abortRequested = true;
    if (!this.model.isClosed) this.model.native.seqFree(this.seqId);
    this.onClose();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  // --- internals ---

  private checkOpen(): void {
    if (this.closed) throw new SessionStateError("session is closed");
  }

  /**
   * Checks one call's generation options (keys, maxTokens, sampler settings) before anything
   * runs, merges them over the session's sampling defaults and builds the sampler.
   * `where` names the call in errors ("generate", "chat", "ask").
   */
  private prepareGeneration(
    where: string,
    opts: GenerateOptions,
  ): { options: GenerateOptions; sampler: Sampler } {
    checkOptionKeys(`${where} options`, opts, GENERATE_OPTION_KEYS);
    const options = { ...this.sampling, ...opts };
    const maxTokens = options.maxTokens;
    if (
      maxTokens !== undefined &&
      (typeof maxTokens !== "number" || !Number.isInteger(maxTokens) || maxTokens < 1)
    ) {
      throw new RangeError(`${where}: maxTokens must be an integer of at least 1, got ${String(maxTokens)}`);
    }
    const seed = options.seed ?? (this.deterministic ? 0 : undefined);
    const sampler = new Sampler({ ...options, seed }, this.model.info.vocabSize);
    return { options, sampler };
  }

  private toTokens(input: string | readonly number[], opts: PrefillOptions): number[] {
    this.checkOpen();
    const tok = this.model.tokenizer;
    if (typeof input === "string") {
      return tok.encode(input, {
        addSpecial: opts.addSpecial ?? this.history.length === 0,
        parseSpecial: opts.parseSpecial ?? false,
      });
    }
    if (!Array.isArray(input) && !ArrayBuffer.isView(input)) {
      throw new TypeError("prefill: input must be a string or an array of token ids");
    }
    const vocab = this.model.info.vocabSize;
    const ids = Array.from(input as ArrayLike<number>);
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocab) {
        throw new RangeError(`prefill: token ${i} is ${String(id)}, not an id in [0, ${vocab})`);
      }
    });
    return ids;
  }

  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.checkOpen();
    if (this.busy) throw new SessionStateError("the session is busy with another call (one call at a time)");
    this.busy = true;
    this.abortRequested = false;
    try {
      return await fn();
    } finally {
      this.busy = false;
    }
  }

  private async *exclusiveGen(
    make: () => AsyncGenerator<string, GenerateResult, void>,
  ): AsyncGenerator<string, GenerateResult, void> {
    this.checkOpen();
    if (this.busy) throw new SessionStateError("the session is busy with another call (one call at a time)");
    this.busy = true;
    this.abortRequested = false;
    try {
      return yield* make();
    } finally {
      this.busy = false;
    }
  }

  private async *generateInner(
    opts: GenerateOptions,
    sampler: Sampler,
    callStarted: number | null,
    priorPrefillMs: number,
  ): AsyncGenerator<string, GenerateResult, void> {
    // generate() is timed from its first next() (where the body starts) plus the prefills run
    // before it; chat() from its own start (its prefill is inside) plus earlier prefills.
    const started = callStarted ?? performance.now();
    // Time 0 of the call's figures: TTFT and the total both count the prefills run before it.
    const origin = started - priorPrefillMs;
    const tok = this.model.tokenizer;
    const maxTokens = opts.maxTokens ?? DEFAULT_MAX_TOKENS;
    const stop = new StopCondition({
      maxTokens,
      stop: opts.stop ?? [],
      isEndOfGeneration: opts.ignoreEos ? () => false : (id) => tok.isEndOfGeneration(id),
    });
    const decoder = tok.streamDecoder();
    const out: number[] = [];
    let text = "";
    let ttft: number | null = null;
    // The KV holds the whole history but its logits are gone (a chat() whose prefix reuse cut
    // the KV, then failed with ContextFullError): run the last token again for fresh logits.
    if (this.kvLength === this.history.length && this.kvLength > 0 && !this.logitsMatchKv) this.dropKvTail(1);
    // Sampled tokens of an earlier generation are not in the KV yet: run them first.
    if (this.kvLength < this.history.length) {
      const complete = await this.feed([], opts.signal, "prefill");
      if (!complete) return this.finish(origin, ttft, out, "abort", text);
    }
    if (!this.logitsValid) {
      throw new SessionStateError("nothing to generate from: prefill a prompt first");
    }
    if (stop.exhausted) return this.finish(origin, ttft, out, "length", text);
    if (
      opts.json !== undefined &&
      typeof opts.json !== "boolean" &&
      (typeof opts.json !== "object" || opts.json === null || !("schema" in opts.json))
    )
      throw new RangeError("json must be true, false or { schema }");
    const bytesOf = (id: number) => tok.tokenBytes(id);
    const json: ReplyConstraint | null =
      typeof opts.json === "object" && opts.json !== null
        ? new SchemaConstraint(opts.json.schema, bytesOf)
        : opts.json
          ? new JsonConstraint(bytesOf)
          : null;
    if (json !== null && opts.speculative)
      throw new RangeError("json and speculative cannot be combined (JSON mode takes no drafts)");
    const spec = resolveSpeculative(opts.speculative);
    const vocab = this.model.info.vocabSize;
    // Speculation state: after a verify pass the KV holds the drafts not yet checked after the
    // history, and draftLogits row r is the distribution after the r-th token of that pass.
    let drafts: number[] = [];
    let row = -1;
    let finished = false;
    try {
      for (;;) {
        if (this.isAborted(opts.signal)) {
          this.settleDrafts(drafts.length, row);
          const tail = stop.flush();
          if (tail.length > 0) {
            text += tail;
            yield tail;
          }
          finished = true;
          return this.finish(origin, ttft, out, "abort", text);
        }
        const logits =
          row >= 0
            ? (this.draftLogits as Float32Array).subarray(row * vocab, (row + 1) * vocab)
            : this.logits;
        const id =
          json === null
            ? sampler.sample(logits, this.history)
            : constrainedSample(logits, json, (masked) => sampler.sample(masked, this.history));
        if (id < 0) {
          // No token continues the JSON reply (its whitespace or nesting limit): it ends here.
          finished = true;
          return this.finish(origin, ttft, out, "stop", text);
        }
        json?.accept(id);
        if (ttft === null) ttft = performance.now() - origin;
        this.history.push(id);
        out.push(id);
        // A draft that equals the sampled token is already in the KV; the first that differs
        // and every draft after it are dropped, and the sampled token is run next.
        let inKv = false;
        if (drafts.length > 0 && drafts[0] === id) {
          drafts.shift();
          row++;
          inKv = true;
          this.figures.draftTokens++;
          this.figures.acceptedDraftTokens++;
        } else if (drafts.length > 0) {
          this.figures.draftTokens++;
          this.figures.droppedDraftRows += drafts.length;
          this.dropKvTail(drafts.length);
          drafts = [];
        }
        const piece = tok.isEndOfGeneration(id) && !opts.ignoreEos ? "" : decoder.push(id);
        const step = stop.accept(id, piece);
        if (step.finish === null && json?.complete) {
          // The object is closed: the reply ends with it, as if a stop string followed.
          step.text += stop.flush() + decoder.flush();
          step.finish = "stop";
        }
        if (step.text.length > 0) {
          text += step.text;
          yield step.text;
        }
        if (step.finish !== null) {
          this.settleDrafts(drafts.length, row);
          // A last token that ends mid UTF-8 character leaves bytes in the decoder: give them out
          // (as U+FFFD) rather than drop them. After a stop string the rest is cut anyway.
          if (step.finish === "length" || step.finish === "eos") {
            const tail = decoder.flush();
            if (tail.length > 0) {
              text += tail;
              yield tail;
            }
          }
          finished = true;
          return this.finish(origin, ttft, out, step.finish, text);
        }
        if (inKv) continue;
        row = -1;
        // The sampled token is pending: run it, with drafts after it when the context offers some.
        const draft =
          spec && !this.isAborted(opts.signal)
            ? proposeDraft(this.history, spec, this.draftRoom(spec.maxDraftTokens))
            : [];
        if (draft.length > 0 && this.verify(draft)) {
          drafts = draft;
          row = 0;
          // As runPending does: give the event loop a turn now and then (timers, abort, signals).
          if (performance.now() - this.lastYieldMs > YIELD_EVERY_MS) {
            await new Promise<void>((resolve) => setImmediate(resolve));
            this.lastYieldMs = performance.now();
          }
        } else {
          // An abort between tokens is seen at the top of the loop.
          await this.feed([], opts.signal, "decode");
        }
      }
    } finally {
      // The consumer left the loop early (break, return, throw): still report the call.
      if (!finished) {
        this.settleDrafts(drafts.length, row);
        this.finish(origin, ttft, out, "abort", text);
      }
    }
  }

  /** Draft tokens that fit after the pending token: context room and batch capacity. */
  private draftRoom(max: number): number {
    const room = this.contextTokens - this.history.length;
    return Math.max(0, Math.min(max, room, this.batch.capacity - 1));
  }

  /**
   * Runs the pending token followed by `draft` in one forward pass with logits for every row
   * (into draftLogits). Returns false, having changed nothing, when the pool has no room (the
   * caller then runs the pending token alone).
   */
  private verify(draft: readonly number[]): boolean {
    const native = this.model.native;
    const vocab = this.model.info.vocabSize;
    const n = 1 + draft.length;
    if (this.closed || this.kvLength !== this.history.length - 1) return false;
    if (this.draftLogits === null || this.draftLogits.length < n * vocab) {
      this.draftLogits = new Float32Array(Math.max(n, 5) * vocab);
    }
    const b = this.batch;
    for (let k = 0; k < n; k++) {
      b.tokens[k] = k === 0 ? (this.history[this.kvLength] as number) : (draft[k - 1] as number);
      b.positions[k] = this.kvLength + k;
      b.seqIds[k] = this.seqId;
      b.wantLogits[k] = 1;
    }
    b.length = n;
    const t0 = performance.now();
    try {
      native.decode(b, this.draftLogits);
    } catch (err) {
      if (err instanceof KvFullError) return false;
      throw err;
    }
    this.figures.decodeTokens += n;
    this.figures.decodeMs += performance.now() - t0;
    this.kvLength += n;
    // `logits` no longer describe the KV's last token; the rows of draftLogits do.
    this.logitsMatchKv = false;
    return true;
  }

  /** Removes the last `n` tokens from the KV (unverified drafts). */
  private dropKvTail(n: number): void {
    // A closed session's sequence is gone (its id may already belong to another session).
    if (n <= 0 || this.closed) return;
    this.model.native.seqShift(this.seqId, this.kvLength - n, n);
    this.kvLength -= n;
    this.logitsMatchKv = false;
  }

  /**
   * Leaves a consistent state when a generation ends: the `unverified` drafts still in the KV
   * are dropped; when the KV then ends at the last sampled token, draftLogits row `row` holds
   * its logits and becomes `logits`, so the next call needs no extra forward pass.
   */
  private settleDrafts(unverified: number, row: number): void {
    if (this.closed) return;
    if (unverified > 0) {
      this.dropKvTail(unverified);
      this.figures.droppedDraftRows += unverified;
    }
    const h = this.history.length;
    if (this.kvLength === h && row >= 0 && this.draftLogits !== null) {
      const vocab = this.model.info.vocabSize;
      this.logits.set(this.draftLogits.subarray(row * vocab, (row + 1) * vocab));
      this.logitsMatchKv = true;
    } else if (this.kvLength > h || (this.kvLength === h && !this.logitsMatchKv)) {
      // Not expected; keeps the invariant anyway: the last token runs again at the next call.
      this.dropKvTail(this.kvLength - h + 1);
    }
  }

  private finish(
    started: number,
    ttft: number | null,
    out: number[],
    reason: GenerateFinishReason,
    text: string,
  ): GenerateResult {
    const telemetry = this.telemetry(started, ttft, out.length, reason, this.figures);
    this.figures = emptyFigures();
    this.lastTelemetry = telemetry;
    return { text, tokens: out, finishReason: reason, telemetry };
  }

  private telemetry(
    started: number,
    ttft: number | null,
    generated: number,
    reason: GenerateFinishReason | null,
    f: PhaseFigures,
  ): Telemetry {
    return {
      promptTokens: f.promptTokens,
      cachedTokens: f.cachedTokens,
      generatedTokens: generated,
      timeToFirstTokenMs: ttft,
      prefillMs: f.prefillMs,
      prefillTokensPerS: rate(f.promptTokens, f.prefillMs),
      decodeTokens: f.decodeTokens,
      decodeMs: f.decodeMs,
      // Tokens kept per second: drafts that were run and then rejected do not count.
      decodeTokensPerS: rate(f.decodeTokens - f.droppedDraftRows, f.decodeMs),
      totalMs: performance.now() - started,
      contextShifts: f.contextShifts,
      droppedTokens: f.droppedTokens,
      contextUsedTokens: this.history.length,
      draftTokens: f.draftTokens,
      acceptedDraftTokens: f.acceptedDraftTokens,
      finishReason: reason,
    };
  }

  /** Logits to sample from exist: every token of the history has been run. */
  private get logitsValid(): boolean {
    return this.logitsMatchKv && this.kvLength === this.history.length && this.kvLength > 0;
  }

  private isAborted(signal: AbortSignal | undefined): boolean {
    return this.abortRequested || this.closed || signal?.aborted === true;
  }

  /**
   * Keeps the longest prefix of `ids` that the session already holds and drops the rest of the
   * KV (a shift with nothing after it). Returns how many tokens of `ids` are covered. At least
   * one token is always left to run, so fresh logits come out.
   */
  private reuseCachedPrefix(ids: readonly number[]): number {
    const h = this.history;
    let common = 0;
    const limit = Math.min(h.length, ids.length - 1);
    while (common < limit && h[common] === ids[common]) common++;
    if (common < this.kvLength) {
      this.model.native.seqShift(this.seqId, common, this.kvLength - common);
      this.kvLength = common;
      this.logitsMatchKv = false;
    }
    this.history.length = common;
    return common;
  }

  /**
   * Appends `ids` to the history and runs every pending token through the model in chunks,
   * shifting the context when it is full. Returns false when aborted between chunks (the
   * chunks done stay in the KV; the rest stay pending).
   */
  private async feed(ids: readonly number[], signal: AbortSignal | undefined, phase: "prefill" | "decode") {
    const total = this.history.length + ids.length;
    if (this.contextShift === false && total > this.contextTokens) {
      throw new ContextFullError(
        `context full: the session holds ${this.kvLength} of ${this.contextTokens} tokens, ${total - this.kvLength} more ${total - this.kvLength === 1 ? "does" : "do"} not fit, and contextShift is off ` +
          `(open the session with a larger contextTokens, enable contextShift, or reset() it)`,
        this.contextTokens,
        this.kvLength,
        total - this.kvLength,
      );
    }
    for (const id of ids) this.history.push(id);
    try {
      return await this.runPending(signal, phase);
    } catch (err) {
      // Tokens that did not make it into the KV are forgotten, so the session stays consistent.
      this.history.length = this.kvLength;
      throw err;
    }
  }

  private async runPending(signal: AbortSignal | undefined, phase: "prefill" | "decode"): Promise<boolean> {
    const native = this.model.native;
    const cap = this.batch.capacity;
    while (this.kvLength < this.history.length) {
      if (this.isAborted(signal)) return false;
      let room = this.contextTokens - this.kvLength;
      if (room === 0) {
        this.shiftContext();
        room = this.contextTokens - this.kvLength;
      }
      const n = Math.min(cap, room, this.history.length - this.kvLength);
      const b = this.batch;
      for (let k = 0; k < n; k++) {
        b.tokens[k] = this.history[this.kvLength + k] as number;
        b.positions[k] = this.kvLength + k;
        b.seqIds[k] = this.seqId;
        b.wantLogits[k] = k === n - 1 ? 1 : 0;
      }
      b.length = n;
      const t0 = performance.now();
      try {
        native.decode(b, this.logits);
      } catch (err) {
        if (!(err instanceof KvFullError)) throw err;
        // The pool is shared: other sessions may hold the pages. A shift of our own context
        // frees some when shifting is on and we hold enough to drop.
        const stats = native.kvStats();
        if (this.contextShift !== false && this.kvLength > this.contextShift.keepTokens + stats.pageTokens) {
          this.shiftContext();
          continue;
        }
        throw new KvFullError(
          `the KV pool is full (${stats.pagesTotal} pages of ${stats.pageTokens} tokens, shared by ${this.model.openSessions} sessions): ` +
            `close other sessions, or load the model with more kvPages`,
        );
      }
      const ms = performance.now() - t0;
      if (phase === "prefill") {
        this.figures.promptTokens += n;
        this.figures.prefillMs += ms;
      } else {
        this.figures.decodeTokens += n;
        this.figures.decodeMs += ms;
      }
      this.kvLength += n;
      this.logitsMatchKv = true;
      if (performance.now() - this.lastYieldMs > YIELD_EVERY_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        this.lastYieldMs = performance.now();
      }
    }
    return true;
  }

  /** Makes room in a full context: keep the first tokens, drop the oldest after them, re-rope the rest. */
  private shiftContext(): void {
    const used = this.kvLength;
    if (this.contextShift === false) {
      throw new ContextFullError(
        `context full: the session holds ${used} of ${this.contextTokens} tokens and contextShift is off ` +
          `(open the session with a larger contextTokens, enable contextShift, or reset() it)`,
        this.contextTokens,
        used,
        1,
      );
    }
    const keep = Math.min(this.contextShift.keepTokens, used);
    const drop = Math.min(
      this.contextShift.dropTokens > 0 ? this.contextShift.dropTokens : Math.floor((used - keep) / 2),
      used - keep,
    );
    if (drop <= 0) {
      throw new ContextFullError(
        `context full: ${used} of ${this.contextTokens} tokens and nothing can be dropped after the ${keep} kept tokens`,
        this.contextTokens,
        used,
        1,
      );
    }
    this.model.native.seqShift(this.seqId, keep, drop);
    this.history.splice(keep, drop);
    this.kvLength -= drop;
    this.figures.contextShifts++;
    this.figures.droppedTokens += drop;
  }
}

/**
 * Refuses a session context the model's KV pool cannot hold even with no other session open:
 * the session would shift at the pool's size while claiming a larger context.
 */
function checkFitsPool(model: Model, contextTokens: number): void {
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

function resolveShift(
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

function diffFigures(after: PhaseFigures, before: PhaseFigures): PhaseFigures {
  return {
    promptTokens: after.promptTokens - before.promptTokens,
    cachedTokens: after.cachedTokens - before.cachedTokens,
    prefillMs: after.prefillMs - before.prefillMs,
    decodeTokens: after.decodeTokens - before.decodeTokens,
    decodeMs: after.decodeMs - before.decodeMs,
    contextShifts: after.contextShifts - before.contextShifts,
    droppedTokens: after.droppedTokens - before.droppedTokens,
    draftTokens: after.draftTokens - before.draftTokens,
    acceptedDraftTokens: after.acceptedDraftTokens - before.acceptedDraftTokens,
    droppedDraftRows: after.droppedDraftRows - before.droppedDraftRows,
  };
}
