// Session: one conversation over one KV sequence the session owns. Its prefills and generations
// are requests on the model's in-process engine (src/engine/local.ts), so sessions generating at
// once share each forward pass; the generation rules are the server's (src/engine/generation.ts).
// The KV sequence's bookkeeping is session-kv.ts; options, errors and their checks session-options.ts.
import { type ChatMessage, checkConversation, encodeChat } from "./chat/index.ts";
import { Generation } from "./engine/generation.ts";
import type { LocalRun } from "./engine/local.ts";
import type { Model } from "./model.ts";
import { checkOptionKeys } from "./option-keys.ts";
import { Sampler, type SamplerOptions, type TokenLogprob } from "./sampling/index.ts";
import { SessionSequence } from "./session-kv.ts";
import {
  type ContextFullError,
  type ContextShiftOptions,
  checkFitsPool,
  checkTokenIds,
  contextFullError,
  engineError,
  GENERATE_OPTION_KEYS,
  type GenerateFinishReason,
  type GenerateOptions,
  type GenerateResult,
  generationSpec,
  type PrefillOptions,
  prepareGeneration,
  resolveShift,
  SAMPLER_OPTION_KEYS,
  SESSION_OPTION_KEYS,
  type SessionOptions,
  SessionStateError,
  type Telemetry,
} from "./session-options.ts";
import { addFigures, buildTelemetry, diffFigures, emptyPhase } from "./session-telemetry.ts";
import { type ChatTools, chatTools, toolReply } from "./tools/index.ts";

// Types and errors a session's caller needs, from the file that defines them.
export * from "./session-options.ts";

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

  private readonly sampling: SamplerOptions;
  private readonly systemPrompt: string | undefined;
  private readonly onClose: () => void;
  /** Its KV sequence and token history (session-kv.ts). */
  private readonly seq: SessionSequence;
  private figures = emptyPhase();
  /** The engine request running now (prefill or generation), if any. */
  private run: LocalRun | null = null;
  /** Removes the current run's listener from the caller's AbortSignal (a signal may outlive many calls). */
  private detachAbort: (() => void) | null = null;
  private abortRequested = false;
  private busy = false;

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
    this.seq = new SessionSequence(model.native);
  }

  /** Every token of the session so far (prompt and generated), after any context shift. */
  get tokens(): readonly number[] {
    return this.seq.kv.tokens;
  }

  /** Tokens in the context now. */
  get length(): number {
    return this.seq.kv.tokens.length;
  }

  get isClosed(): boolean {
    return this.seq.closed;
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
      this.append(ids);
      await this.runPending(opts.signal);
      const t = buildTelemetry(
        started,
        null,
        0,
        null,
        diffFigures(this.figures, before),
        this.seq.kv.tokens.length,
      );
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
    const options = prepareGeneration(
      "generate",
      opts,
      this.sampling,
      this.deterministic,
      this.model.info.vocabSize,
    );
    if (options.tools !== undefined)
      throw new RangeError("generate: tools need chat() (the template shows them)");
    return this.exclusiveGen(() => this.generateInner(options, null, this.figures.prefillMs));
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
    const options = prepareGeneration(
      where,
      opts,
      this.sampling,
      this.deterministic,
      this.model.info.vocabSize,
    );
    const tools = chatTools(where, template.source, messages, opts);
    const ids = encodeChat(template, this.model.tokenizer, tools?.messages ?? messages, {
      addGenerationPrompt: true,
      variables: tools?.variables,
    });
    return this.exclusiveGen(() =>
      async function* (this: Session) {
        const started = performance.now();
        const priorPrefillMs = this.figures.prefillMs;
        const cached = this.seq.reusePrefix(ids);
        this.figures.cachedTokens += cached;
        // The rest of the prompt runs as the generation's first rows (one request).
        this.append(ids.slice(cached));
        return yield* this.generateInner(options, started, priorPrefillMs, tools);
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
      if (this.seq.kv.computed < this.seq.kv.tokens.length) await this.runPending(undefined);
      return this.seq.save(path);
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
    return this.seq.restore(path, this.contextTokens);
  }

  /** Ends the running prefill or generation at the next token (finishReason "abort"). */
  abort(): void {
    this.abortRequested = true;
    this.run?.cancel();
  }

  /** Forgets everything: the KV, the token history and the messages (the system prompt stays). */
  reset(): void {
    this.checkOpen();
    if (this.busy) throw new SessionStateError("cannot reset while a call is running (abort it first)");
    this.seq.clear();
    this.figures = emptyPhase();
    this.messages.length = 0;
    if (this.systemPrompt !== undefined) this.messages.push({ role: "system", content: this.systemPrompt });
  }

  /** Returns the session's KV pages to the pool. A running call ends with "abort". Idempotent. */
  close(): void {
    if (this.seq.closed) return;
    this.seq.closed = true;
    this.abortRequested = true;
    // The engine lets go of the sequence before its pages (and its id) go back to the pool.
    this.run?.cancel();
    if (!this.model.isClosed) {
      this.model.forgetSequence(this.seq.kv);
      this.model.native.seqFree(this.seq.kv.seqId);
    }
    this.onClose();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  // --- internals ---

  private checkOpen(): void {
    if (this.seq.closed) throw new SessionStateError("session is closed");
  }

  private toTokens(input: string | readonly number[], opts: PrefillOptions): number[] {
    this.checkOpen();
    if (typeof input !== "string") return checkTokenIds("prefill", input, this.model.info.vocabSize);
    return this.model.tokenizer.encode(input, {
      addSpecial: opts.addSpecial ?? this.seq.kv.tokens.length === 0,
      parseSpecial: opts.parseSpecial ?? false,
    });
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
    callStarted: number | null,
    priorPrefillMs: number,
    tools: ChatTools | null = null,
  ): AsyncGenerator<string, GenerateResult, void> {
    // generate() is timed from its first next() (where the body starts) plus the prefills run
    // before it; chat() from its own start (its prefill is inside) plus earlier prefills.
    const started = callStarted ?? performance.now();
    // Time 0 of the call's figures: TTFT and the total both count the prefills run before it.
    const origin = started - priorPrefillMs;
    const kv = this.seq.kv;
    // The KV holds the whole history but its logits are gone (a chat() whose prefix reuse cut
    // the KV, then failed): run the last token again for fresh logits.
    if (kv.computed === kv.tokens.length && kv.computed > 0 && kv.lastLogits === null) this.seq.dropKvTail(1);
    if (kv.tokens.length === 0)
      throw new SessionStateError("nothing to generate from: prefill a prompt first");
    const gen = new Generation(
      {
        ...generationSpec(
          opts,
          this.contextShift,
          (p) =>
            typeof p === "string"
              ? this.model.tokenizer.encode(p, { addSpecial: false })
              : this.toTokens(p, {}),
          this.model.draft !== null && tools === null,
        ),
        tools: tools?.spec ?? null,
      },
      this.model.tokenizer,
      this.model.info.vocabSize,
    );
    if (this.contextShift === false && kv.tokens.length >= this.contextTokens) throw this.contextFull();
    if (this.isAborted(opts.signal)) return this.finish(origin, null, gen, "abort", "");
    let text = "";
    let ttft: number | null = null;
    let logprobs: TokenLogprob[] | undefined = opts.logprobs === undefined ? undefined : [];
    // Tokens the engine sampled, and those whose pieces the consumer has been given: a step may
    // sample several (accepted drafts), and an early exit takes back the ones not given out.
    let received = 0;
    let delivered = 0;
    let completed = false;
    const run = this.submit(gen, opts.signal, true);
    try {
      for (;;) {
        if (this.isAborted(opts.signal)) run.cancel();
        const ev = await run.next();
        if (ev.type === "error") throw engineError(ev, this.model, this.contextTokens, this.seq.kv.computed);
        if (ev.logprobs !== undefined) logprobs = [...(logprobs ?? []), ...ev.logprobs];
        const first = received;
        received = gen.out.length;
        if (ttft === null && received > 0) ttft = performance.now() - origin;
        if (ev.type === "done") addFigures(this.figures, ev.figures);
        const pieces = ev.pieces ?? [ev.text];
        for (const [i, piece] of pieces.entries()) {
          // An abort between two tokens of one step ends the generation there.
          if (ev.type === "text" && this.isAborted(opts.signal)) break;
          if (first + i < received) delivered = first + i + 1;
          if (piece.length === 0) continue;
          text += piece;
          yield piece;
        }
        if (ev.type === "text") continue;
        if (ev.finish === "context") throw this.contextFull();
        completed = true;
        this.takeBack(gen, received - delivered);
        if (logprobs !== undefined) logprobs.length = Math.min(logprobs.length, delivered);
        const result = this.finish(origin, ttft, gen, ev.finish, text);
        const calls = tools?.spec ? toolReply(tools.format, text) : null;
        return { ...result, ...(logprobs === undefined ? {} : { logprobs }), ...calls };
      }
    } finally {
      // The consumer left the loop early (break, return, throw) or aborted: still report the call.
      if (!completed) {
        const ev = run.cancel();
        if (ev?.type === "done") addFigures(this.figures, ev.figures);
        this.takeBack(gen, received - delivered);
        if (logprobs !== undefined) logprobs.length = Math.min(logprobs.length, delivered);
        this.finish(origin, ttft, gen, "abort", text);
      }
      this.endRun();
    }
  }

  /** Takes back the last `n` sampled tokens the consumer never got (history, KV, result). */
  private takeBack(gen: Generation, n: number): void {
    if (n <= 0 || this.seq.closed) return;
    gen.out.length -= n;
    this.seq.takeBack(n);
  }

  /** Submits a request on this session's sequence: a generation, or (gen null) a prefill. */
  private submit(gen: Generation, signal: AbortSignal | undefined, paced: boolean): LocalRun {
    const run = this.model.engine.submit(
      { ...gen.spec, promptIds: [] },
      { kv: this.seq.kv, generation: gen, contextTokens: this.contextTokens, paced },
    );
    this.run = run;
    if (signal !== undefined) {
      const onAbort = () => run.cancel();
      signal.addEventListener("abort", onAbort, { once: true });
      this.detachAbort = () => signal.removeEventListener("abort", onAbort);
    }
    return run;
  }

  /** The current run is over: forget it and stop listening to its caller's signal. */
  private endRun(): void {
    this.detachAbort?.();
    this.detachAbort = null;
    this.run = null;
  }

  /** Runs every pending token through the model (prefill); an abort leaves the rest pending. */
  private async runPending(signal: AbortSignal | undefined): Promise<void> {
    if (this.seq.kv.computed === this.seq.kv.tokens.length) return;
    if (this.isAborted(signal)) return;
    const gen = new Generation(
      { sampling: {}, maxTokens: 0, stop: [], contextShift: this.shiftPolicy() },
      this.model.tokenizer,
    );
    const run = this.submit(gen, signal, false);
    try {
      const ev = await run.next();
      if (ev.type === "error") {
        // Tokens that did not make it into the KV are forgotten, so the session stays consistent.
        this.seq.kv.tokens.length = this.seq.kv.computed;
        throw engineError(ev, this.model, this.contextTokens, this.seq.kv.computed);
      }
      if (ev.type === "done") addFigures(this.figures, ev.figures);
    } finally {
      this.endRun();
    }
  }

  private shiftPolicy(): { keepTokens: number; dropTokens: number } | null {
    return this.contextShift === false ? null : { ...this.contextShift };
  }

  /** Appends prompt tokens to the history; with shift off, refuses what does not fit. */
  private append(ids: readonly number[]): void {
    this.seq.append(ids, this.contextShift === false ? this.contextTokens : null);
  }

  /** The context is full with shift off: the next token has no room. */
  private contextFull(): ContextFullError {
    return contextFullError(this.seq.kv.tokens.length, this.contextTokens, 1);
  }

  private finish(
    started: number,
    ttft: number | null,
    gen: Generation,
    reason: GenerateFinishReason,
    text: string,
  ): GenerateResult {
    const out = [...gen.out];
    const telemetry = buildTelemetry(
      started,
      ttft,
      out.length,
      reason,
      this.figures,
      this.seq.kv.tokens.length,
    );
    this.figures = emptyPhase();
    this.lastTelemetry = telemetry;
    return { text, tokens: out, finishReason: reason, telemetry };
  }

  private isAborted(signal: AbortSignal | undefined): boolean {
    return this.abortRequested || this.seq.closed || signal?.aborted === true;
  }
}
