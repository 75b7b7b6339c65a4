// The engine in the calling thread: one Scheduler over a model's native forward, stepped between
// event-loop turns while any request has work. The library's sessions share it, so sessions
// generating at once share each forward pass; no worker is needed.
import type { Generation } from "./generation.ts";
import type {
  EmbeddingsEvent,
  EngineEvent,
  EngineRequest,
  OwnedSequence,
  SchedulerStats,
  StepEvent,
} from "./request.ts";
import type { Scheduler } from "./scheduler.ts";

/** One request in flight on a LocalEngine: its events in order, taken one at a time. */
export class LocalRun {
  private readonly queue: EngineEvent[] = [];
  private wake: (() => void) | null = null;
  private ended = false;

  constructor(
    private readonly engine: LocalEngine,
    readonly id: string,
  ) {}

  /** @internal */
  push(ev: EngineEvent): void {
    if (ev.type !== "text") this.ended = true;
    this.queue.push(ev);
    this.wake?.();
    this.wake = null;
  }

  /** True once its done or error event arrived. */
  get finished(): boolean {
    return this.ended;
  }

  /** The next event; asking for it lets a paced request run its next step. */
  async next(): Promise<EngineEvent> {
    for (;;) {
      const ev = this.queue.shift();
      if (ev !== undefined) return ev;
      this.engine.resume(this.id);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  /** Ends the request now (finish "abort"), flushing text held for a stop string; returns its done event. */
  cancel(): EngineEvent | null {
    if (this.ended) return null;
    return this.engine.cancel(this.id);
  }
}

export class LocalEngine {
  private readonly runs = new Map<string, LocalRun>();
  private readonly embeddings = new Map<
    string,
    { resolve: (ev: EmbeddingsEvent) => void; reject: (err: Error) => void }
  >();
  private looping = false;
  private nextId = 0;

  constructor(private readonly scheduler: Scheduler) {}

  /** The scheduler's figures (steps, KV pages, drafts). */
  stats(): SchedulerStats {
    return this.scheduler.stats();
  }

  /**
   * Queues a request on a KV sequence the caller owns. Throws (QueueFullError, RangeError) at
   * once for a request the scheduler refuses.
   */
  submit(
    req: Omit<EngineRequest, "id">,
    owned: { kv: OwnedSequence; generation: Generation; contextTokens: number; paced: boolean },
  ): LocalRun {
    const id = `l${this.nextId++}`;
    this.scheduler.submit({ ...req, id }, owned);
    const run = new LocalRun(this, id);
    this.runs.set(id, run);
    this.kick();
    return run;
  }

  /**
   * Queues an embeddings job (token ids per input) between the sessions' steps; resolves with
   * its vectors. Throws RangeError at once for inputs the engine cannot take.
   */
  embed(inputs: readonly (readonly number[])[]): Promise<EmbeddingsEvent> {
    const id = `e${this.nextId++}`;
    this.scheduler.submitEmbed({ id, inputs });
    const answer = new Promise<EmbeddingsEvent>((resolve, reject) =>
      this.embeddings.set(id, { resolve, reject }),
    );
    this.kick();
    return answer;
  }

  /** @internal Fails every embeddings job still queued (the model is closing). */
  abortEmbeddings(message: string): void {
    for (const id of [...this.embeddings.keys()]) {
      this.scheduler.cancel(id);
      this.dispatch([{ type: "error", id, message }]);
    }
  }

  /** @internal A paced request's client took its events: let it run again. */
  resume(id: string): void {
    this.scheduler.resume(id);
    this.kick();
  }

  /** @internal */
  cancel(id: string): EngineEvent | null {
    const ev = this.scheduler.cancel(id, true);
    if (ev !== null) this.dispatch([ev]);
    return ev;
  }

  private kick(): void {
    if (this.looping || !this.scheduler.hasWork) return;
    this.looping = true;
    setImmediate(() => this.loop());
  }

  private loop(): void {
    let events: StepEvent[];
    try {
      events = this.scheduler.step();
    } catch (err) {
      // A bug or a native failure outside decode: every request in flight learns of it.
      events = [];
      for (const id of [...this.runs.keys(), ...this.embeddings.keys()]) {
        this.scheduler.cancel(id);
        events.push({ type: "error", id, message: (err as Error).message });
      }
    }
    this.dispatch(events);
    if (this.scheduler.hasWork) setImmediate(() => this.loop());
    else this.looping = false;
  }

  private dispatch(events: readonly StepEvent[]): void {
    for (const ev of events) {
      const waiter = this.embeddings.get(ev.id);
      if (waiter !== undefined) {
        this.embeddings.delete(ev.id);
        if (ev.type === "embeddings") waiter.resolve(ev);
        else waiter.reject(new Error(ev.type === "error" ? ev.message : "embeddings ended without vectors"));
        continue;
      }
      if (ev.type === "embeddings") continue;
      const run = this.runs.get(ev.id);
      if (run === undefined) continue;
      if (ev.type !== "text") this.runs.delete(ev.id);
      run.push(ev);
    }
  }
}
