// Continuous batching over one NativeModel: every step packs the next token of each running
// sequence plus chunks of pending prompts into one Batch within a token budget (one decode call),
// admits waiting requests while KV pages allow, preempts the newest sequence when pages run out,
// and hands each sequence its logits rows (its Generation samples, stops and drafts). The server's
// worker and the library's sessions both drive it; a session's sequence is owned by the session
// and outlives its requests. step-batch.ts fills the batch; with the prefix cache on, see
// prefix-cache.ts; with a draft model, draft-model.ts proposes drafts before each step is packed.
import { type Batch, KvFullError, type NativeKvTiers, type NativeModel } from "../native/model-api.ts";
import { tokenLogprob } from "../sampling/index.ts";
import { draftSources } from "../speculative.ts";
import { type DraftModel, proposeModelDrafts } from "./draft-model.ts";
import { Embedder, type EmbedRequest } from "./embed.ts";
import { draftCounts, type EngineFinishReason, type EngineTokenizer } from "./generation.ts";
import { PrefixCache } from "./prefix-cache.ts";
import type {
  DraftCounts,
  EngineEvent,
  EngineRequest,
  OwnedSequence,
  SchedulerOptions,
  SchedulerStats,
  StepEvent,
} from "./request.ts";
import { newSequence, type OwnedRun, type Sequence, shiftSequence } from "./sequence.ts";
import { packBatch } from "./step-batch.ts";

export type { EngineTokenizer } from "./generation.ts";
export type {
  EmbeddingsEvent,
  EngineEvent,
  EngineFinishReason,
  EngineRequest,
  OwnedSequence,
  SchedulerOptions,
  SchedulerStats,
  StepEvent,
} from "./request.ts";
export type { OwnedRun, Sequence } from "./sequence.ts";

/** submit() answer when the bounded queue has no room. */
export class QueueFullError extends Error {
  override name = "QueueFullError";
}

export class Scheduler {
  private readonly waiting: Sequence[] = [];
  private readonly running: Sequence[] = [];
  private readonly batch: Batch;
  private logits: Float32Array;
  private readonly pageTokens: number;
  private nextOrder = 0;
  private draftTokens = 0;
  private acceptedDraftTokens = 0;
  private readonly drafts: DraftCounts = {
    modelProposed: 0,
    modelAccepted: 0,
    lookupProposed: 0,
    lookupAccepted: 0,
  };
  /** KV pages this step's drafts may still take (what admission did not reserve). */
  private draftPages = 0;
  private preemptions = 0;
  private steps = 0;
  /** The model's prefix cache, when it is on. */
  private readonly prefix: PrefixCache | null;
  private readonly tiers: NativeKvTiers | null;
  /** Embeddings jobs (embed.ts), taking turns with generation. */
  private readonly embeds: Embedder;
  private embedTurn = false;

  constructor(
    private readonly model: NativeModel,
    private readonly tokenizer: EngineTokenizer,
    private readonly opts: SchedulerOptions,
    batch: Batch,
    /** A draft model beside the target (speculative decoding), or null. */
    private readonly draftModel: DraftModel | null = null,
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
    this.pageTokens = kv.pageTokens;
    this.batch = batch;
    // One logits row per running sequence (only the last pending row of each wants logits); rows
    // of speculative drafts grow it on first use.
    this.logits = new Float32Array(opts.maxRunning * model.info.vocabSize);
    this.tiers = opts.prefixCache === true ? model : null;
    this.prefix = this.tiers === null ? null : new PrefixCache(this.tiers, kv.pageTokens, opts.onPublished);
    this.embeds = new Embedder(model, {
      stepTokens: opts.stepTokens,
      sequences: opts.embedSequences ?? 0,
      contextTokens: opts.contextTokens,
    });
  }

  get idle(): boolean {
    return this.waiting.length === 0 && this.running.length === 0 && !this.embeds.hasWork;
  }

  /** Whether step() has anything to do (paced sequences waiting for their client do not count). */
  get hasWork(): boolean {
    return this.embeds.hasWork || this.waiting.length > 0 || this.running.some((s) => !s.held);
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
      prefixCachedTokens: this.prefix?.cachedTokens ?? 0,
      idleSpilledPages: this.prefix?.idleSpilledPages ?? 0,
      kvTier: this.tiers === null ? null : this.tiers.kvTierStats(),
      draftTokens: this.draftTokens,
      acceptedDraftTokens: this.acceptedDraftTokens,
      drafts: { ...this.drafts },
      draftModel: this.draftModel?.stats() ?? null,
      logitsBufferBytes: this.logits.byteLength,
    };
  }

  /**
   * Queues a request; throws QueueFullError when the queue is full, RangeError for a bad request.
   * With `owned`, it runs on the caller's KV sequence (tokens pending there are computed first).
   */
  submit(req: EngineRequest, owned?: OwnedRun): void {
    if (this.waiting.length >= this.opts.maxQueued + Math.max(0, this.opts.maxRunning - this.running.length))
      throw new QueueFullError(`queue full (${this.waiting.length} waiting)`);
    if (owned === undefined) {
      if (req.promptIds.length === 0) throw new RangeError("prompt is empty");
      // A scoring request (maxTokens 0) may fill the whole context; others need room for a token.
      if (req.promptIds.length + (req.maxTokens === 0 ? 0 : 1) > this.opts.contextTokens)
        throw new RangeError(
          `prompt has ${req.promptIds.length} tokens; the context holds ${this.opts.contextTokens}`,
        );
      if (req.maxTokens === 0 && !req.promptLogprobs)
        throw new RangeError("maxTokens 0 generates nothing; it is for scoring a prompt (promptLogprobs)");
    }
    if (req.speculative) draftSources(req.speculative, this.draftModel !== null);
    this.waiting.push(newSequence(req, this.nextOrder++, this.tokenizer, this.opts.contextTokens, owned));
  }

  /** Queues an embeddings job (embed.ts); throws RangeError for inputs it cannot take. */
  submitEmbed(req: EmbedRequest): void {
    this.embeds.submit(req);
  }

  /** Lets a paced sequence run again once its client took its last event. */
  resume(id: string): void {
    const s = this.running.find((x) => x.req.id === id);
    if (s !== undefined) s.held = false;
  }

  /**
   * Ends a request now and returns its KV pages to the pool (an owned sequence keeps its KV).
   * With `flushHeld`, text held back for a possible stop string goes out in the event.
   * Unknown ids are ignored.
   */
  cancel(id: string, flushHeld = false): EngineEvent | null {
    const embed = this.embeds.cancel(id);
    if (embed !== null) return embed;
    const w = this.waiting.findIndex((s) => s.req.id === id);
    const r = w >= 0 ? -1 : this.running.findIndex((s) => s.req.id === id);
    const s = w >= 0 ? this.waiting.splice(w, 1)[0] : r >= 0 ? this.running.splice(r, 1)[0] : undefined;
    if (s === undefined) return null;
    if (r >= 0) this.release(s, true);
    return this.doneEvent(s, "abort", flushHeld ? s.gen.flushHeld() : "");
  }

  /** Runs one engine step (at most one decode call); returns what it produced. */
  step(): StepEvent[] {
    // Embeddings and generation take turns while both have work.
    const generating = this.waiting.length > 0 || this.running.some((s) => !s.held);
    if (this.embeds.hasWork && (this.embedTurn || !generating)) {
      this.embedTurn = false;
      return this.embeds.step(this.freeAfterReservations(true));
    }
    this.embedTurn = this.embeds.hasWork;
    const events: EngineEvent[] = [];
    this.admit();
    // A sequence whose last token's logits are known (a prefilled session) samples from them.
    for (const s of [...this.running]) {
      const last = s.kv.lastLogits;
      if (s.held || last === null || s.kv.computed !== s.kv.tokens.length || s.gen.spec.maxTokens === 0)
        continue;
      s.kv.lastLogits = null;
      this.deliver(s, () => last, events);
    }
    if (!this.running.some((s) => !s.held)) return events;
    if (this.draftModel !== null) proposeModelDrafts(this.draftModel, this.running);
    let started = 0;
    for (;;) {
      // Drafts take only pages that are free now: a guess never pushes a cached prefix to SSD.
      this.draftPages = this.running.some((s) => s.gen.spec.speculative)
        ? this.freeAfterReservations(false)
        : 0;
      const failed = this.pack();
      if (failed !== null) {
        events.push(failed);
        continue;
      }
      if (this.batch.length === 0) return events;
      try {
        started = performance.now();
        this.model.decode(this.batch, this.logits);
        break;
      } catch (err) {
        if (!(err instanceof KvFullError)) {
          // A native failure poisons only this step's sequences: end them with the message.
          for (const s of [...this.running]) {
            if (s.taking === 0) continue;
            this.release(s);
            this.running.splice(this.running.indexOf(s), 1);
            events.push({ type: "error", id: s.req.id, message: (err as Error).message });
          }
          return events;
        }
        if (this.preemptNewest() || this.shiftForPages()) continue;
        const s = this.running.pop() as Sequence;
        this.release(s);
        events.push({
          type: "error",
          id: s.req.id,
          message: "KV cache too small for this request",
          code: "kv_full",
        });
        return events;
      }
    }
    const stepMs = performance.now() - started;
    this.steps++;
    // The draft depth weighs a draft pass against a decoding step (not one carrying a prompt).
    if (this.running.every((s) => s.taking <= 1 + s.draft.length))
      this.draftModel?.noteTargetStep(
        stepMs,
        this.running.reduce((rows, s) => rows + s.draft.length, 0),
      );
    for (const s of this.running) {
      if (s.taking === 0) continue;
      s.kv.computed += s.taking - s.draft.length;
      s.gen.countRows(s.taking, stepMs);
    }
    const vocab = this.model.info.vocabSize;
    const rowOf = (i: number) => this.logits.subarray(i * vocab, (i + 1) * vocab);
    for (const s of [...this.running]) {
      if (s.promptRows !== null && s.promptLogprobs !== null) {
        const { row: first, pos, count } = s.promptRows;
        for (let i = 0; i < count; i++) {
          const next = s.req.promptIds[pos + i + 1] as number;
          s.promptLogprobs.push(tokenLogprob(rowOf(first + i), next, s.req.logprobs ?? 0));
        }
        s.promptRows = null;
      }
      if (s.logitsRow < 0) continue;
      const base = s.logitsRow;
      this.deliver(s, (r) => rowOf(base + r), events);
    }
    this.prefix?.publishPrompts(this.running);
    return events;
  }

  /** Hands a sequence its logits rows (row 0: after its last token in the KV, then its drafts). */
  private deliver(s: Sequence, row: (r: number) => Float32Array, events: EngineEvent[]): void {
    // The prompt is complete in the KV: its scores go out with this step's event, once.
    const scored =
      s.promptLogprobs !== null && !s.promptLogprobsSent ? { promptLogprobs: s.promptLogprobs } : {};
    s.promptLogprobsSent ||= s.promptLogprobs !== null;
    if (s.gen.spec.maxTokens === 0) {
      // Scoring or prefilling only: nothing is sampled. A caller's sequence keeps the logits.
      if (s.owned) s.kv.lastLogits = row(0).slice();
      this.release(s, true);
      this.running.splice(this.running.indexOf(s), 1);
      events.push({ ...this.doneEvent(s, "length", ""), ...scored });
      return;
    }
    const draft = s.draft;
    const checked = s.gen.figures.draftTokens;
    const o = s.gen.consume(row, draft, s.kv.tokens, s.contextTokens, s.draftModelTokens);
    s.kv.computed += o.accepted; // a draft equal to the sampled token: its KV row stands
    this.draftTokens += s.gen.figures.draftTokens - checked;
    this.acceptedDraftTokens += o.accepted;
    const fromModel = Math.min(s.draftModelTokens, draft.length);
    this.drafts.modelProposed += fromModel;
    this.drafts.modelAccepted += o.modelAccepted;
    this.drafts.lookupProposed += draft.length - fromModel;
    this.drafts.lookupAccepted += o.accepted - o.modelAccepted;
    if (o.modelChecked > 0) this.draftModel?.observe(s.kv, o.modelChecked, o.modelAccepted);
    if (draft.length > 0) {
      // Drafts past the last accepted one leave the KV (their rows were written this step).
      const rejected = this.model.seqLength(s.kv.seqId) - s.kv.computed;
      if (rejected > 0) this.model.seqShift(s.kv.seqId, s.kv.computed, rejected);
      s.draft = [];
      s.draftModelTokens = 0;
    }
    // A session streams token by token: it gets the step's text per token.
    const logprobs = {
      ...(o.logprobs ? { logprobs: o.logprobs } : {}),
      ...(s.owned ? { pieces: o.pieces } : {}),
    };
    if (o.finish !== null) {
      this.release(s, true);
      this.running.splice(this.running.indexOf(s), 1);
      events.push({ ...this.doneEvent(s, o.finish, o.text), ...logprobs, ...scored });
      return;
    }
    events.push({ type: "text", id: s.req.id, text: o.text, tokens: o.produced, ...logprobs, ...scored });
    if (s.paced) s.held = true;
  }

  /**
   * Free KV pages left once every running sequence has the pages its next token needs; with
   * `reclaimable`, pages only the prefix cache holds count as free (they are freed on demand).
   */
  private freeAfterReservations(reclaimable: boolean): number {
    let free = this.model.kvStats().pagesFree + (reclaimable ? (this.prefix?.reclaimable() ?? 0) : 0);
    for (const s of this.running) free -= this.pagesNeeded(s);
    return Math.max(0, free);
  }

  /**
   * Draft tokens to run after `s`'s next token this step, bounded by the `rowsLeft` rows left in
   * the step, the context, the tokens it may still generate and the free pages.
   */
  private draftFor(s: Sequence, rowsLeft: number): number[] {
    s.draftModelTokens = 0;
    const spec = s.gen.spec.speculative;
    if (!spec || s.kv.tokens.length - s.kv.computed !== 1) return [];
    const sources = draftSources(spec, this.draftModel !== null);
    const proposed = s.gen.draft(
      s.kv.tokens,
      Math.min(rowsLeft, s.contextTokens - s.kv.tokens.length),
      sources.lookup,
      s.modelDraft,
    );
    let draft = proposed.tokens;
    // Pages beyond the one reserved for the next token come out of the step's spare pages.
    const p = this.pageTokens;
    const reserved = Math.ceil((s.kv.tokens.length + 1) / p);
    let extra = Math.max(0, Math.ceil((s.kv.tokens.length + draft.length) / p) - reserved);
    while (extra > this.draftPages && draft.length > 0) {
      draft = draft.slice(0, -1);
      extra = Math.max(0, Math.ceil((s.kv.tokens.length + draft.length) / p) - reserved);
    }
    this.draftPages -= extra;
    s.draftModelTokens = Math.min(proposed.modelTokens, draft.length);
    return draft;
  }

  /** Frees what the scheduler keeps for a caller's KV sequence beyond its requests (its draft model KV). */
  forget(kv: OwnedSequence): void {
    this.draftModel?.release(kv);
  }

  private doneEvent(s: Sequence, finish: EngineFinishReason, text: string): EngineEvent {
    const f = s.gen.figures;
    return {
      type: "done",
      id: s.req.id,
      text,
      finish,
      ...(s.gen.matchedStop !== undefined ? { stopString: s.gen.matchedStop } : {}),
      promptTokens: s.req.promptIds.length,
      cachedTokens: Math.max(0, s.cachedTokens),
      completionTokens: s.gen.out.length,
      draftTokens: f.draftTokens,
      acceptedDraftTokens: f.acceptedDraftTokens,
      drafts: draftCounts(f),
      // The library's telemetry; the server reports usage from the counts above.
      ...(s.owned ? { figures: { ...f } } : {}),
    };
  }

  /**
   * Frees a sequence's pages (not an owned one's). With `publish`, its computed tokens' pages go
   * to the prefix cache first for a later turn to reuse.
   */
  private release(s: Sequence, publish = false): void {
    if (s.owned) return;
    this.draftModel?.release(s.kv);
    if (s.kv.seqId >= 0) {
      if (publish && s.kv.computed > 0)
        this.prefix?.publishAll(s.kv.seqId, s.kv.tokens.slice(0, s.kv.computed));
      this.model.seqFree(s.kv.seqId);
    }
    s.kv.seqId = -1;
    s.kv.computed = 0;
  }

  /**
   * Spills to the SSD tier the pages of conversations not used for `idleMs` (as of `nowMs`),
   * except the pages they share with a request in flight. Returns the pages that left RAM.
   */
  spillIdle(nowMs: number, idleMs: number): number {
    if (this.prefix === null) return 0;
    const live = [...this.running, ...this.waiting].map((s) => s.kv.tokens);
    return this.prefix.spillIdle(nowMs, idleMs, live);
  }

  /** Pages a sequence still needs to hold all of its tokens plus the next one. */
  private pagesNeeded(s: Sequence): number {
    const have = Math.ceil(s.kv.computed / this.pageTokens);
    return Math.max(0, Math.ceil((s.kv.tokens.length + 1) / this.pageTokens) - have);
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
      if (!s.owned && this.prefix?.sharesPendingPrompt(s, this.running)) {
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      if (!s.owned) {
        if (this.prefix !== null && s.promptLogprobs === null) {
          // Start from the longest cached prefix of everything this sequence holds (a preempted
          // one also finds its own generated tokens there).
          const r = this.prefix.seqCreateWithPrefix(s.kv.tokens);
          s.kv.seqId = r.seqId;
          s.kv.computed = r.reusedTokens;
        } else {
          s.kv.seqId = this.model.seqCreate();
          s.kv.computed = 0;
        }
        if (s.cachedTokens < 0) {
          s.cachedTokens = Math.min(s.kv.computed, s.req.promptIds.length);
          if (this.prefix !== null) this.prefix.cachedTokens += s.cachedTokens;
        }
        // Whole pages it found in the cache are there for others too.
        if (this.prefix !== null)
          s.publishedTokens = Math.max(s.publishedTokens, this.prefix.promptPagesInKv(s));
      }
      free -= need;
      this.running.push(s);
      this.opts.onAdmitted?.(s.req.id);
    }
  }

  /**
   * Fills the batch (see packBatch); a caller's sequence whose context is full and cannot shift
   * leaves the running set with an error event (returned, and the caller packs again).
   */
  private pack(): EngineEvent | null {
    const packed = packBatch(this.batch, this.running, this.opts.stepTokens, this.model, (s, rowsLeft) =>
      this.draftFor(s, rowsLeft),
    );
    if ("contextFull" in packed) {
      const s = packed.contextFull;
      this.running.splice(this.running.indexOf(s), 1);
      return {
        type: "error",
        id: s.req.id,
        message: `context full: ${s.kv.computed} of ${s.contextTokens} tokens and nothing can be dropped`,
        code: "context_full",
      };
    }
    const need = packed.logitsRows * this.model.info.vocabSize;
    if (this.logits.length < need) this.logits = new Float32Array(need);
    return null;
  }

  /**
   * The pool is full and nothing can be preempted: a caller's sequence that shifts and holds more
   * than a page after its kept tokens gives up its oldest tokens (newest sequence first).
   */
  private shiftForPages(): boolean {
    const byNewest = [...this.running].sort((x, y) => y.order - x.order);
    for (const s of byNewest) {
      const policy = s.gen.spec.contextShift;
      if (
        s.owned &&
        policy &&
        s.kv.computed > policy.keepTokens + this.pageTokens &&
        shiftSequence(this.model, s)
      )
        return true;
    }
    return false;
  }

  /** Frees the newest running sequence's pages and puts it back at the head of the queue. */
  private preemptNewest(): boolean {
    // A caller's sequence is never preempted: its KV is the caller's history.
    const candidates = this.running.filter((s) => !s.owned);
    if (candidates.length === 0 || this.running.length <= 1) return false;
    let newest = candidates[0] as Sequence;
    for (const s of candidates) if (s.order > newest.order) newest = s;
    this.running.splice(this.running.indexOf(newest), 1);
    this.release(newest, true);
    this.waiting.unshift(newest);
    this.preemptions++;
    return true;
  }
}
