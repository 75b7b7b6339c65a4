// The engine worker's outgoing events. Each message wakes the main thread, and on a busy machine
// the woken thread takes the worker's core (measured in the worker, load 10 on 2 cores: 1.3-2.3 ms
// per posted step, against 0.2-0.4 ms at load 4), so the outbox sends one message per step only
// while the main thread keeps up: until it has handled the last message (a shared counter it
// bumps), the steps' events wait and go out together, in order, each request's texts joined into
// one event (one SSE chunk instead of one per step). The scheduler's figures (0.07-0.2
// ms to gather with the prefix cache on) ride along when a request ended, when the engine goes
// idle, or every STATS_INTERVAL_MS, not with every token.
import type { FromWorker } from "./protocol.ts";
import type { SchedulerStats, StepEvent } from "./request.ts";

/** Most time between two copies of the scheduler's figures while requests run (for /metrics). */
export const STATS_INTERVAL_MS = 50;

export class Outbox {
  private pending: StepEvent[] = [];
  /** Where each request's held text event is in `pending`. */
  private readonly textAt = new Map<string, number>();
  private stepMs = 0;
  /** Events messages sent; the main thread counts those it handled in `handled[0]`. */
  private sent = 0;
  private statsAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly send: (msg: Extract<FromWorker, { type: "events" }>) => void,
    private readonly stats: () => SchedulerStats,
    /** The main thread's count of handled events messages; null: send every time. */
    private readonly handled: Int32Array | null,
    private readonly now: () => number = () => performance.now(),
    /** Most time between two copies of the figures; 0: with every message. */
    private readonly statsIntervalMs = STATS_INTERVAL_MS,
  ) {}

  /**
   * Adds a step's events (`stepMs` > 0: its time). They go out now, with any held before them, when
   * the main thread has handled every earlier message, or when `flush` (the engine is going idle,
   * or the events answer a message of the main thread).
   */
  push(events: readonly StepEvent[], stepMs: number, flush: boolean): void {
    for (const ev of events) this.hold(ev);
    if (stepMs > 0) this.stepMs = stepMs;
    const behind = this.handled !== null && Atomics.load(this.handled, 0) < this.sent;
    if (behind && !flush) return;
    const now = this.now();
    const ended = this.pending.some((ev) => ev.type !== "text");
    const statsDue = flush || ended || now - this.statsAt >= this.statsIntervalMs;
    if (this.pending.length === 0 && !statsDue) return;
    const msg: Extract<FromWorker, { type: "events" }> = {
      type: "events",
      events: this.pending,
      stepMs: this.stepMs,
    };
    if (statsDue) {
      msg.stats = this.stats();
      this.statsAt = now;
    }
    this.pending = [];
    this.textAt.clear();
    this.stepMs = 0;
    this.sent++;
    this.send(msg);
  }

  /**
   * Holds an event; a request's text joins its text already held (one event, its tokens summed),
   * so a main thread that lagged writes one chunk per request, not one per step. Nothing of that
   * request can come between: its done or error ends it.
   */
  private hold(ev: StepEvent): void {
    if (ev.type === "text") {
      const k = this.textAt.get(ev.id);
      const held = k === undefined ? undefined : this.pending[k];
      if (held !== undefined && held.type === "text") {
        this.pending[k as number] = joinText(held, ev);
        return;
      }
      this.textAt.set(ev.id, this.pending.length);
    } else this.textAt.delete(ev.id);
    this.pending.push(ev);
  }

  /** Events held back, for tests. */
  get held(): number {
    return this.pending.length;
  }
}

type TextEvent = Extract<StepEvent, { type: "text" }>;

/** Two text events of one request as one: texts, tokens and their per-token lists joined. */
function joinText(a: TextEvent, b: TextEvent): TextEvent {
  const out: TextEvent = { type: "text", id: a.id, text: a.text + b.text, tokens: a.tokens + b.tokens };
  const pieces = join(a.pieces, b.pieces);
  if (pieces !== undefined) out.pieces = pieces;
  const logprobs = join(a.logprobs, b.logprobs);
  if (logprobs !== undefined) out.logprobs = logprobs;
  const prompt = join(a.promptLogprobs, b.promptLogprobs);
  if (prompt !== undefined) out.promptLogprobs = prompt;
  return out;
}

function join<T>(a: T[] | undefined, b: T[] | undefined): T[] | undefined {
  if (a === undefined) return b;
  return b === undefined ? a : a.concat(b);
}
