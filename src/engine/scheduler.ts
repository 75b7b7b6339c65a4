// Continuous batching over one NativeModel: every step packs the next token of each running
// sequence plus chunks of pending prompts into one Batch within a token budget (one decode call),
// admits waiting requests while KV pages allow, and preempts the newest sequence when pages run out.
// With the prefix cache on, a new sequence starts from the longest cached prefix of its prompt, and
// a finished (or preempted) one publishes its pages, so the next turn of a conversation reuses them;
// conversations left idle have their pages spilled to the SSD tier.
import type { Batch, KvTierStats, NativeKvTiers, NativeModel } from "../native/model-api.ts";
import { KvFullError } from "../native/model-api.ts";
import {
  type FinishReason,
  Sampler,
  type SamplerOptions,
  StopCondition,
  type TokenLogprob,
  tokenLogprob,
} from "../sampling/index.ts";
import { constrainedSample, JsonConstraint, type ReplyConstraint } from "../sampling/json.ts";
import { SchemaConstraint } from "../sampling/json-schema.ts";
import { predictedDraft, proposeDraft, type ResolvedSpeculative } from "../speculative.ts";

/** Tokens in one KV page (fixed by the native cache). */
const PAGE_TOKENS = 16;
/**
 * Prompt rows a step scores at most (echo + logprobs): each is a vocabulary-sized logits row the
 * decode writes out (192 KiB for a 49k vocabulary), so a 512-token prompt scored in one step
 * would grow the logits buffer to ~100 MB; in chunks of 64 it stays near 13 MB.
 */
const MAX_SCORED_ROWS_PER_STEP = 64;

/** The detokenizer the scheduler needs (src/tokenizer's Tokenizer satisfies it). */
export interface EngineTokenizer {
  isEndOfGeneration(id: number): boolean;
  streamDecoder(): { push(id: number): string; flush(): string };
  /** A token's bytes (empty for control tokens): JSON mode needs it. */
  tokenBytes?(id: number): Uint8Array;
}

export interface EngineRequest {
  id: string;
  promptIds: readonly number[];
  sampling: SamplerOptions;
  /** Most tokens to generate (the engine also stops at the context limit). */
  maxTokens: number;
  stop: readonly string[];
  /** Keep generating through end-of-generation tokens (benchmarks; llama.cpp's ignore_eos). */
  ignoreEos?: boolean;
  /**
   * Speculative decoding by prompt lookup (src/speculative.ts): draft tokens ride in the step
   * after the sequence's next token and are verified by its sampler; the output is the one plain
   * decoding gives. Null or omitted: off.
   */
  speculative?: ResolvedSpeculative | null;
  /**
   * A predicted output (OpenAI's `prediction`), as tokens: with `speculative` on, drafts follow
   * it first (see predictedDraft), then the prompt lookup. The output does not depend on it.
   */
  predictedIds?: readonly number[];
  /**
   * JSON mode (OpenAI's response_format json_object): the reply is one JSON object, drawn from
   * the model's distribution restricted to tokens that keep it valid; it ends when the object
   * closes (finish "stop"). No speculative drafts.
   */
  json?: boolean;
  /**
   * Structured outputs (OpenAI's response_format json_schema): as `json`, the reply matching this
   * JSON Schema (the subset src/sampling/json-schema.ts compiles; others are refused at submit).
   */
  jsonSchema?: unknown;
  /**
   * Report each generated token's log-probability and this many most likely alternatives
   * (0..20; OpenAI's logprobs / top_logprobs). Null or omitted: off.
   */
  logprobs?: number | null;
  /**
   * Also report the log-probability of every prompt token after the first (for `echo` with
   * logprobs), with `logprobs` alternatives each: every prompt row then asks for logits, and the
   * prompt is computed in full (no prefix cache). `maxTokens` may then be 0: score, generate
   * nothing.
   */
  promptLogprobs?: boolean;
}

export type EngineFinishReason = FinishReason | "abort" | "context";

/** What a step produced for one request. */
export type EngineEvent =
  | {
      type: "text";
      id: string;
      text: string;
      tokens: number;
      logprobs?: TokenLogprob[];
      /** With `promptLogprobs`: prompt tokens 1.. (once, in the event of the step that ends the prompt). */
      promptLogprobs?: TokenLogprob[];
    }
  | {
      type: "done";
      id: string;
      text: string;
      /** The step's tokens, with `logprobs` requested (those generated since the last event). */
      logprobs?: TokenLogprob[];
      promptLogprobs?: TokenLogprob[];
      finish: EngineFinishReason;
      promptTokens: number;
      /** Prompt tokens whose KV came from the prefix cache instead of being computed. */
      cachedTokens: number;
      completionTokens: number;
      /** Speculative decoding: this request's draft tokens verified, and those accepted. */
      draftTokens: number;
      acceptedDraftTokens: number;
    }
  | { type: "error"; id: string; message: string };

export interface SchedulerOptions {
  /** Most sequences decoding at once (also bounded by the native model's maxSequences). */
  maxRunning: number;
  /** Most requests waiting for a slot; submit refuses beyond it. */
  maxQueued: number;
  /** Most rows in one decode call (≤ the native maxBatchTokens). */
  stepTokens: number;
  /** Most tokens one sequence may hold (prompt + output). */
  contextTokens: number;
  /**
   * Reuse and publish KV pages through the model's prefix cache (its tier must be open).
   * Ignored for a model without KV tiers.
   */
  prefixCache?: boolean;
}

export interface SchedulerStats {
  running: number;
  queued: number;
  preemptions: number;
  steps: number;
  kvPagesTotal: number;
  kvPagesFree: number;
  kvPageBytes: number;
  /** Prompt tokens of admitted requests served from the prefix cache (their first admission). */
  prefixCachedTokens: number;
  /** Pages moved to the SSD tier because their conversation went idle. */
  idleSpilledPages: number;
  /** Counters of the prefix cache and its tiers; null when the prefix cache is off. */
  kvTier: KvTierStats | null;
  /** Speculative decoding: draft tokens verified, and how many of them matched the sampled token. */
  draftTokens: number;
  acceptedDraftTokens: number;
  /** The logits rows the decode writes (grows to the largest step's wanted rows x vocabulary). */
  logitsBufferBytes: number;
}

/** submit() answer when the bounded queue has no room. */
export class QueueFullError extends Error {
  override name = "QueueFullError";
}

interface Sequence {
  req: EngineRequest;
  /** Arrival order; the newest running sequence is preempted first. */
  order: number;
  seqId: number;
  /** Prompt followed by every generated token. */
  tokens: number[];
  /** Tokens of `tokens` already in the KV cache. */
  computed: number;
  /** Prompt tokens reused from the prefix cache at the first admission; -1 before it. */
  cachedTokens: number;
  sampler: Sampler;
  decoder: { push(id: number): string; flush(): string };
  stop: StopCondition;
  /** Batch row of this step whose logits belong to this sequence, or -1. */
  logitsRow: number;
  /** Rows of this step's batch that carry this sequence's tokens. */
  taking: number;
  /** Draft tokens riding in this step's batch after the sequence's next token (logits rows follow logitsRow). */
  draft: number[];
  /** With `promptLogprobs`: entry i is prompt token i+1's; filled as the prompt is computed. */
  promptLogprobs: TokenLogprob[] | null;
  /** This step's logits rows that score prompt tokens: [first row, first prompt position). */
  promptRows: { row: number; pos: number; count: number } | null;
  /** Whether `promptLogprobs` went out in an event. */
  promptLogprobsSent: boolean;
  /** Speculative decoding: draft tokens verified for this sequence, and those accepted. */
  draftTokens: number;
  acceptedDraftTokens: number;
  /** JSON mode's recognizer of the reply so far; null without JSON mode. */
  json: ReplyConstraint | null;
  /**
   * Prompt tokens, in whole pages, whose KV is in the prefix cache through this sequence: reused
   * at admission or published as its prefill went (see publishPrompts).
   */
  publishedTokens: number;
}

/** Most finished conversations remembered for idle spilling (older ones age out of the hot tier on their own). */
const MAX_CONVERSATIONS = 1024;

/** `tokens` rounded down to whole KV pages. */
function wholePages(tokens: number): number {
  return Math.floor(tokens / PAGE_TOKENS) * PAGE_TOKENS;
}

/** The prompt tokens, in whole pages, that a sequence's KV holds. */
function promptPagesInKv(s: Sequence): number {
  return wholePages(Math.min(s.computed, s.req.promptIds.length));
}

/** Tokens two lists share from the start. */
function commonPrefix(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class Scheduler {
  private readonly waiting: Sequence[] = [];
  private readonly running: Sequence[] = [];
  private readonly batch: Batch;
  private logits: Float32Array;
  private nextOrder = 0;
  private draftTokens = 0;
  private acceptedDraftTokens = 0;
  /** KV pages this step's drafts may still take (what admission did not reserve). */
  private draftPages = 0;
  private preemptions = 0;
  private steps = 0;
  private prefixCachedTokens = 0;
  private idleSpilledPages = 0;
  /** The model's prefix cache, when it is on. */
  private readonly tiers: (NativeModel & NativeKvTiers) | null;
  /** KV of finished conversations (published tokens, compact) and when each was last used, oldest first. */
  private readonly conversations: { tokens: Int32Array; touchedMs: number }[] = [];

  constructor(
    private readonly model: NativeModel,
    private readonly tokenizer: EngineTokenizer,
    private readonly opts: SchedulerOptions,
    batch: Batch,
  ) {
    if (batch.capacity < opts.stepTokens) throw new RangeError("batch capacity is below stepTokens");
    if (opts.maxRunning < 1 || opts.maxQueued < 0) throw new RangeError("maxRunning ≥ 1 and maxQueued ≥ 0");
    // A request that fits the context must fit the pool when it runs alone (others are preempted
    // for it); a smaller pool would fail it only after it had generated part of its answer.
    const kv = model.kvStats();
    if (kv.pagesTotal * kv.pageTokens < opts.contextTokens)
      throw new RangeError(
        `the KV pool holds ${kv.pagesTotal} pages of ${kv.pageTokens} tokens (${kv.pagesTotal * kv.pageTokens} tokens), fewer than one request's context of ${opts.contextTokens}: give it at least ${Math.ceil(opts.contextTokens / kv.pageTokens)} pages or a smaller context`,
      );
    this.batch = batch;
    // One logits row per running sequence (only the last pending row of each wants logits); rows
    // of speculative drafts grow it on first use.
    this.logits = new Float32Array(opts.maxRunning * model.info.vocabSize);
    const m = model as NativeModel & Partial<NativeKvTiers>;
    this.tiers =
      opts.prefixCache === true &&
      typeof m.seqCreateWithPrefix === "function" &&
      typeof m.seqPublish === "function" &&
      typeof m.kvTierStats === "function"
        ? (m as NativeModel & NativeKvTiers)
        : null;
  }

  get idle(): boolean {
    return this.waiting.length === 0 && this.running.length === 0;
  }

  stats(): SchedulerStats {
    const kv = this.model.kvStats();
    return {
      running: this.running.length,
      queued: this.waiting.length,
      preemptions: this.preemptions,
      steps: this.steps,
      kvPagesTotal: kv.pagesTotal,
      kvPagesFree: kv.pagesFree,
      kvPageBytes: kv.pageSizeBytes,
      prefixCachedTokens: this.prefixCachedTokens,
      idleSpilledPages: this.idleSpilledPages,
      kvTier: this.tiers === null ? null : this.tiers.kvTierStats(),
      draftTokens: this.draftTokens,
      acceptedDraftTokens: this.acceptedDraftTokens,
      logitsBufferBytes: this.logits.byteLength,
    };
  }

  /** Queues a request; throws QueueFullError when the queue is full, RangeError for a bad request. */
  submit(req: EngineRequest): void {
    if (this.waiting.length >= this.opts.maxQueued + Math.max(0, this.opts.maxRunning - this.running.length))
      throw new QueueFullError(`queue full (${this.waiting.length} waiting)`);
    if (req.promptIds.length === 0) throw new RangeError("prompt is empty");
    // A scoring request (maxTokens 0) may fill the whole context; others need room for a token.
    if (req.promptIds.length + (req.maxTokens === 0 ? 0 : 1) > this.opts.contextTokens)
      throw new RangeError(
        `prompt has ${req.promptIds.length} tokens; the context holds ${this.opts.contextTokens}`,
      );
    if (req.maxTokens === 0 && !req.promptLogprobs)
      throw new RangeError("maxTokens 0 generates nothing; it is for scoring a prompt (promptLogprobs)");
    const tokenBytes = this.tokenizer.tokenBytes?.bind(this.tokenizer);
    const constrained = req.json === true || req.jsonSchema !== undefined;
    if (constrained && tokenBytes === undefined)
      throw new RangeError("JSON mode needs the tokenizer's token bytes");
    if (constrained && req.speculative) throw new RangeError("JSON mode takes no speculative drafts");
    const json: ReplyConstraint | null =
      !constrained || tokenBytes === undefined
        ? null
        : req.jsonSchema !== undefined
          ? new SchemaConstraint(req.jsonSchema, tokenBytes)
          : new JsonConstraint(tokenBytes);
    this.waiting.push({
      req,
      order: this.nextOrder++,
      seqId: -1,
      tokens: [...req.promptIds],
      computed: 0,
      cachedTokens: -1,
      sampler: new Sampler(req.sampling),
      decoder: this.tokenizer.streamDecoder(),
      stop: new StopCondition({
        maxTokens: req.maxTokens,
        stop: req.stop,
        isEndOfGeneration: req.ignoreEos ? () => false : (id) => this.tokenizer.isEndOfGeneration(id),
      }),
      logitsRow: -1,
      taking: 0,
      draft: [],
      promptLogprobs: req.promptLogprobs ? [] : null,
      promptRows: null,
      promptLogprobsSent: false,
      draftTokens: 0,
      acceptedDraftTokens: 0,
      json,
      publishedTokens: 0,
    });
  }

  /** Ends a request now and returns its KV pages to the pool. Unknown ids are ignored. */
  cancel(id: string): EngineEvent | null {
    const w = this.waiting.findIndex((s) => s.req.id === id);
    if (w >= 0) {
      const [s] = this.waiting.splice(w, 1);
      return this.doneEvent(s as Sequence, "abort", "");
    }
    const r = this.running.findIndex((s) => s.req.id === id);
    if (r < 0) return null;
    const s = this.running[r] as Sequence;
    this.release(s, true);
    this.running.splice(r, 1);
    return this.doneEvent(s, "abort", "");
  }

  /** Runs one engine step (at most one decode call); returns what it produced. */
  step(): EngineEvent[] {
    const events: EngineEvent[] = [];
    this.admit();
    if (this.running.length === 0) return events;
    for (;;) {
      // Drafts take only pages that are free now: a guess never pushes a cached prefix to SSD.
      this.draftPages = this.running.some((s) => s.req.speculative) ? this.freeAfterReservations(false) : 0;
      this.pack();
      if (this.batch.length === 0) return events;
      try {
        this.model.decode(this.batch, this.logits);
        break;
      } catch (err) {
        if (!(err instanceof KvFullError)) {
          // A native failure poisons only this step's sequences: end them with the message.
          for (const s of [...this.running]) {
            this.release(s);
            events.push({ type: "error", id: s.req.id, message: (err as Error).message });
          }
          this.running.length = 0;
          return events;
        }
        if (!this.preemptNewest()) {
          const s = this.running.pop() as Sequence;
          this.release(s);
          events.push({ type: "error", id: s.req.id, message: "KV cache too small for this request" });
          return events;
        }
      }
    }
    this.steps++;
    for (const s of this.running) s.computed += s.taking - s.draft.length;
    const vocab = this.model.info.vocabSize;
    for (const s of [...this.running]) {
      const top = s.req.logprobs ?? null;
      if (s.promptRows !== null && s.promptLogprobs !== null) {
        const { row: first, pos, count } = s.promptRows;
        for (let i = 0; i < count; i++) {
          const row = this.logits.subarray((first + i) * vocab, (first + i + 1) * vocab);
          const next = s.req.promptIds[pos + i + 1] as number;
          s.promptLogprobs.push(tokenLogprob(row, next, top ?? 0));
        }
        s.promptRows = null;
      }
      if (s.logitsRow < 0) continue;
      // The prompt is complete in the KV: its scores go out with this step's event, once.
      const scored =
        s.promptLogprobs !== null && !s.promptLogprobsSent ? { promptLogprobs: s.promptLogprobs } : {};
      s.promptLogprobsSent ||= s.promptLogprobs !== null;
      if (s.req.maxTokens === 0) {
        // Scoring only: nothing is sampled.
        this.release(s, true);
        this.running.splice(this.running.indexOf(s), 1);
        events.push({ ...this.doneEvent(s, "length", ""), ...scored });
        continue;
      }
      let finish: EngineFinishReason | null = null;
      let text = "";
      let produced = 0;
      const logprobs: TokenLogprob[] | undefined = top === null ? undefined : [];
      // Row r holds the distribution after the r-th token of this step's run (the next token,
      // then each draft). A draft equal to the token sampled before it is already in the KV, so
      // sampling goes on from its row; the first draft that differs ends the step's tokens.
      for (let r = 0; ; r++) {
        const row = this.logits.subarray((s.logitsRow + r) * vocab, (s.logitsRow + r + 1) * vocab);
        const json = s.json;
        const id =
          json === null
            ? s.sampler.sample(row, s.tokens)
            : constrainedSample(row, json, (masked) => s.sampler.sample(masked, s.tokens));
        if (id < 0) {
          // No token continues the JSON reply (its whitespace or nesting limit): it ends here.
          finish = "stop";
          text += s.stop.flush() + s.decoder.flush();
          break;
        }
        json?.accept(id);
        // The sampler works on a copy: the row is still the model's distribution.
        if (logprobs !== undefined) logprobs.push(tokenLogprob(row, id, top as number));
        s.tokens.push(id);
        produced++;
        const step = s.stop.accept(id, s.decoder.push(id));
        finish = step.finish;
        text += step.text;
        // The last token may end in a partial UTF-8 character that only a flush gives out.
        if (finish === "eos" || finish === "length") text += s.decoder.flush();
        // The end-of-generation token is not part of the reply: its score is not listed either.
        if (finish === "eos") logprobs?.pop();
        if (finish === null && json?.complete) {
          finish = "stop";
          text += s.stop.flush() + s.decoder.flush();
        }
        if (finish === null && s.tokens.length >= this.opts.contextTokens) {
          finish = "context";
          text += s.stop.flush() + s.decoder.flush();
        }
        if (finish !== null || r >= s.draft.length) break;
        this.draftTokens++; // draft r is checked against the token sampled before it
        s.draftTokens++;
        if (s.draft[r] !== id) break;
        s.computed++; // the draft is the sampled token: its KV row stands
        this.acceptedDraftTokens++;
        s.acceptedDraftTokens++;
      }
      if (s.draft.length > 0) {
        // Drafts past the last accepted one leave the KV (their rows were written this step).
        const rejected = this.model.seqLength(s.seqId) - s.computed;
        if (rejected > 0) this.model.seqShift(s.seqId, s.computed, rejected);
        s.draft = [];
      }
      if (finish !== null) {
        this.release(s, true);
        this.running.splice(this.running.indexOf(s), 1);
        events.push({ ...this.doneEvent(s, finish, text), ...(logprobs ? { logprobs } : {}), ...scored });
      } else {
        events.push({
          type: "text",
          id: s.req.id,
          text,
          tokens: produced,
          ...(logprobs ? { logprobs } : {}),
          ...scored,
        });
      }
    }
    this.publishPrompts();
    return events;
  }

  /**
   * Offers the whole pages of prompts computed so far (after each prefill chunk) to the prefix
   * cache, so a request that starts the same way (another of the same request's n choices, the
   * same new system prompt sent at once) reuses them instead of computing them again; admit()
   * holds such a request back until the pages it shares are there. The sequence goes on
   * appending after its published pages, which it never rewrites (nor do rejected drafts: they
   * only drop rows after the prompt). The last partial page waits for the end of the request:
   * it is still being appended to, and two entries would then name one page.
   */
  private publishPrompts(): void {
    if (this.tiers === null) return;
    for (const s of this.running) {
      if (s.promptLogprobs !== null) continue;
      const whole = promptPagesInKv(s);
      if (whole <= s.publishedTokens) continue;
      s.publishedTokens = whole;
      try {
        this.tiers.seqPublish(s.seqId, s.tokens.slice(0, whole));
      } catch {
        // Not publishing loses only reuse, never correctness.
      }
    }
  }

  /**
   * A running sequence whose prompt shares with `s`'s tokens whole pages it is still computing
   * (not yet in the prefix cache): `s` waits until they are published (after the prefill chunk
   * that computes them) rather than computing the same KV. Pages already in the cache (a chat
   * template's system prompt) hold nothing back.
   */
  private sharesPendingPrompt(s: Sequence): boolean {
    if (this.tiers === null || s.promptLogprobs !== null) return false;
    // s reuses at most all but its last token.
    const most = s.tokens.length - 1;
    return this.running.some(
      (r) =>
        r.promptLogprobs === null &&
        wholePages(Math.min(commonPrefix(r.req.promptIds, s.tokens), most)) > r.publishedTokens,
    );
  }

  /**
   * Free KV pages left once every running sequence has the pages its next token needs; with
   * `reclaimable`, pages only the prefix cache holds count as free (they are freed on demand).
   */
  private freeAfterReservations(reclaimable: boolean): number {
    let free = this.model.kvStats().pagesFree + (reclaimable ? (this.tiers?.kvTierReclaimable?.() ?? 0) : 0);
    for (const s of this.running) free -= this.pagesNeeded(s);
    return Math.max(0, free);
  }

  /**
   * Draft tokens to run after `s`'s next token this step: prompt lookup over its tokens, bounded by
   * the `rowsLeft` rows left in the step, the context, the tokens it may still generate and the
   * free pages.
   */
  private draftFor(s: Sequence, rowsLeft: number): number[] {
    const spec = s.req.speculative;
    if (!spec || s.tokens.length - s.computed !== 1) return [];
    const generated = s.tokens.length - s.req.promptIds.length;
    const room = Math.min(
      rowsLeft,
      this.opts.contextTokens - s.tokens.length,
      s.req.maxTokens - generated - 1,
    );
    if (room <= 0) return [];
    const predicted = s.req.predictedIds ?? [];
    let draft = predicted.length > 0 ? predictedDraft(s.tokens, generated, predicted, spec, room) : [];
    if (draft.length === 0) draft = proposeDraft(s.tokens, spec, room);
    // Pages beyond the one reserved for the next token come out of the step's spare pages.
    const reserved = Math.ceil((s.tokens.length + 1) / PAGE_TOKENS);
    let extra = Math.max(0, Math.ceil((s.tokens.length + draft.length) / PAGE_TOKENS) - reserved);
    while (extra > this.draftPages && draft.length > 0) {
      draft = draft.slice(0, -1);
      extra = Math.max(0, Math.ceil((s.tokens.length + draft.length) / PAGE_TOKENS) - reserved);
    }
    this.draftPages -= extra;
    return draft;
  }

  private doneEvent(s: Sequence, finish: EngineFinishReason, text: string): EngineEvent {
    return {
      type: "done",
      id: s.req.id,
      text,
      finish,
      promptTokens: s.req.promptIds.length,
      cachedTokens: Math.max(0, s.cachedTokens),
      completionTokens: s.tokens.length - s.req.promptIds.length,
      draftTokens: s.draftTokens,
      acceptedDraftTokens: s.acceptedDraftTokens,
    };
  }

  /**
   * Frees a sequence's pages. With `publish`, its computed tokens' pages go to the prefix cache
   * first (they stay in RAM under the hot budget, else spill to SSD) for a later turn to reuse.
   */
  private release(s: Sequence, publish = false): void {
    if (s.seqId >= 0) {
      if (publish && this.tiers !== null && s.computed > 0) {
        const tokens = s.tokens.slice(0, s.computed);
        try {
          this.tiers.seqPublish(s.seqId, tokens);
          this.remember(Int32Array.from(tokens));
        } catch {
          // Not publishing loses only reuse, never correctness.
        }
      }
      this.model.seqFree(s.seqId);
    }
    s.seqId = -1;
    s.computed = 0;
  }

  /** Records a published conversation; an earlier turn it extends is superseded. */
  private remember(tokens: Int32Array): void {
    const now = Date.now();
    for (let i = this.conversations.length - 1; i >= 0; i--) {
      const c = this.conversations[i] as { tokens: Int32Array };
      if (c.tokens.length <= tokens.length && commonPrefix(c.tokens, tokens) === c.tokens.length)
        this.conversations.splice(i, 1);
    }
    this.conversations.push({ tokens, touchedMs: now });
    if (this.conversations.length > MAX_CONVERSATIONS) this.conversations.shift();
  }

  /**
   * Spills to the SSD tier the pages of conversations not used for `idleMs` (as of `nowMs`),
   * except the pages they share with a request in flight or a conversation still in use.
   * Returns the pages that left RAM (0 without an SSD tier).
   */
  spillIdle(nowMs: number, idleMs: number): number {
    const tiers = this.tiers;
    if (tiers === null || typeof tiers.kvTierSpill !== "function") return 0;
    const idle = this.conversations.filter((c) => nowMs - c.touchedMs >= idleMs);
    if (idle.length === 0) return 0;
    const live: ArrayLike<number>[] = [
      ...this.running.map((s) => s.tokens),
      ...this.waiting.map((s) => s.tokens),
      ...this.conversations.filter((c) => nowMs - c.touchedMs < idleMs).map((c) => c.tokens),
    ];
    let moved = 0;
    for (const c of idle) {
      let shared = 0;
      for (const l of live) shared = Math.max(shared, commonPrefix(c.tokens, l));
      moved += tiers.kvTierSpill(c.tokens, shared);
      this.conversations.splice(this.conversations.indexOf(c), 1);
    }
    this.idleSpilledPages += moved;
    return moved;
  }

  /** Pages a sequence still needs to hold all of its tokens plus the next one. */
  private pagesNeeded(s: Sequence): number {
    const have = Math.ceil(s.computed / PAGE_TOKENS);
    return Math.ceil((s.tokens.length + 1) / PAGE_TOKENS) - have;
  }

  /** Moves waiting requests to running, oldest first, while slots and free KV pages allow. */
  private admit(): void {
    if (this.waiting.length === 0) return;
    let free = this.freeAfterReservations(true);
    let i = 0;
    while (i < this.waiting.length && this.running.length < this.opts.maxRunning) {
      const s = this.waiting[i] as Sequence;
      const need = this.pagesNeeded(s);
      // Always let one sequence run when nothing else does, so a large prompt cannot starve.
      if (need > free && this.running.length > 0) return;
      // Held for pages a running prefill is computing: the requests behind it may go first.
      if (this.sharesPendingPrompt(s)) {
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      if (this.tiers !== null && s.promptLogprobs === null) {
        // Start from the longest cached prefix of everything this sequence holds (a preempted one
        // also finds its own generated tokens there).
        const r = this.tiers.seqCreateWithPrefix(s.tokens);
        s.seqId = r.seqId;
        s.computed = r.reusedTokens;
      } else {
        s.seqId = this.model.seqCreate();
        s.computed = 0;
      }
      if (s.cachedTokens < 0) {
        s.cachedTokens = Math.min(s.computed, s.req.promptIds.length);
        this.prefixCachedTokens += s.cachedTokens;
      }
      // Whole pages it found in the cache are there for others too.
      s.publishedTokens = Math.max(s.publishedTokens, promptPagesInKv(s));
      free -= need;
      this.running.push(s);
    }
  }

  /** Fills the batch: decoding sequences first (one row each), then prompt chunks, oldest first. */
  private pack(): void {
    const b = this.batch;
    b.length = 0;
    let rows = 0;
    let logitsRows = 0;
    // The step's scored prompt rows go to the oldest scoring requests first, so a long one is
    // never starved by shorter ones arriving after it (the batch itself is filled shortest first).
    const scoreAllot = new Map<Sequence, number>();
    let scoreBudget = MAX_SCORED_ROWS_PER_STEP;
    for (const s of [...this.running].sort((x, y) => x.order - y.order)) {
      if (s.promptLogprobs === null) continue;
      const unscored = s.req.promptIds.length - 1 - Math.max(s.computed, s.promptLogprobs.length);
      const allot = Math.min(Math.max(0, unscored), scoreBudget);
      scoreAllot.set(s, allot);
      scoreBudget -= allot;
    }
    const byPending = [...this.running].sort(
      (x, y) => x.tokens.length - x.computed - (y.tokens.length - y.computed) || x.order - y.order,
    );
    for (const s of byPending) {
      s.logitsRow = -1;
      s.taking = 0;
      s.draft = [];
      s.promptRows = null;
      const pending = s.tokens.length - s.computed;
      let take = Math.min(pending, this.opts.stepTokens - rows);
      if (s.promptLogprobs !== null) {
        // Rows [firstScored, promptIds.length - 1) are still to be scored: at most its allotment.
        const firstScored = Math.max(s.computed, s.promptLogprobs.length);
        const allot = scoreAllot.get(s) ?? 0;
        const scoring = Math.min(s.computed + take, s.req.promptIds.length - 1) - firstScored;
        if (scoring > allot) take = firstScored - s.computed + allot;
      }
      if (take <= 0) continue;
      s.taking = take;
      for (let k = 0; k < take; k++) {
        const pos = s.computed + k;
        b.tokens[rows] = s.tokens[pos] as number;
        b.positions[rows] = pos;
        b.seqIds[rows] = s.seqId;
        const last = k === take - 1 && take === pending;
        // Row pos scores prompt token pos + 1 (once: a recomputed prompt is not scored again).
        const scores =
          !last &&
          s.promptLogprobs !== null &&
          pos + 1 < s.req.promptIds.length &&
          pos >= s.promptLogprobs.length;
        b.wantLogits[rows] = last || scores ? 1 : 0;
        if (scores) {
          if (s.promptRows === null) s.promptRows = { row: logitsRows, pos, count: 0 };
          s.promptRows.count++;
          logitsRows++;
        }
        if (last) s.logitsRow = logitsRows++;
        rows++;
      }
      if (take !== pending) continue;
      s.draft = this.draftFor(s, this.opts.stepTokens - rows);
      for (const [k, id] of s.draft.entries()) {
        b.tokens[rows] = id;
        b.positions[rows] = s.tokens.length + k;
        b.seqIds[rows] = s.seqId;
        b.wantLogits[rows] = 1;
        logitsRows++;
        rows++;
      }
      s.taking += s.draft.length;
    }
    b.length = rows;
    const need = logitsRows * this.model.info.vocabSize;
    if (this.logits.length < need) this.logits = new Float32Array(need);
  }

  /** Frees the newest running sequence's pages and puts it back at the head of the queue. */
  private preemptNewest(): boolean {
    if (this.running.length <= 1) return false;
    let newest = 0;
    for (let i = 1; i < this.running.length; i++)
      if ((this.running[i] as Sequence).order > (this.running[newest] as Sequence).order) newest = i;
    const [s] = this.running.splice(newest, 1);
    this.release(s as Sequence, true);
    this.waiting.unshift(s as Sequence);
    this.preemptions++;
    return true;
  }
}
