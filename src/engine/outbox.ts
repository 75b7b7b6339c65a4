// The engine worker's outgoing events. Each message wakes the main thread, and on a busy machine
// the woken thread takes the worker's core (measured in the worker, load 10 on 2 cores: 1.3-2.3 ms
// per posted step, against 0.2-0.4 ms at load 4), so the outbox sends one message per step only
// while the main thread keeps up: until it has handled the last message (a shared counter it
// bumps), the steps' events wait and go out together, in order. The scheduler's figures (0.07-0.2
// ms to gather with the prefix cache on) ride along when a request ended, when the engine goes
// idle, or every STATS_INTERVAL_MS, not with every token.
import type { FromWorker } from "./protocol.ts";
import type { SchedulerStats, StepEvent } from "./request.ts";

/** Most time between two copies of the scheduler's figures while requests run (for /metrics). */
export const STATS_INTERVAL_MS = 50;

export class Outbox {
  private pending: StepEvent[] = [];
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
    for (const ev of events) this.pending.push(ev);
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
    this.stepMs = 0;
    this.sent++;
    this.send(msg);
  }

  /** Events held back, for tests. */
  get held(): number {
    return this.pending.length;
  }
}
