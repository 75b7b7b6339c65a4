// The engine as the main thread sees it: starts the worker that owns the model, routes each
// request's events to its listener, bounds in-flight requests, and keeps the latest KV stats.
import type { GgufFile } from "../gguf/index.ts";
import { loadLibrary } from "../native/lib.ts";
import type { ModelInfo } from "../native/model-api.ts";
import type { EngineConfig, FromWorker, ToWorker } from "./protocol.ts";
import type { EmbeddingsEvent, EngineEvent, EngineRequest, SchedulerStats, StepEvent } from "./request.ts";

export type { EngineConfig, EngineKvTierConfig } from "./protocol.ts";
export {
  type EmbeddingsEvent,
  type EngineEvent,
  type EngineFinishReason,
  type EngineRequest,
  QueueFullError,
  Scheduler,
  type SchedulerStats,
} from "./scheduler.ts";

/** Thrown by Engine.submit when `parallel + maxQueued` requests are already in flight. */
export class EngineBusyError extends Error {
  override name = "EngineBusyError";
}

/** Thrown by Engine.submit once the engine is closed or its worker died (HTTP 503). */
export class EngineUnavailableError extends Error {
  override name = "EngineUnavailableError";
}

type Listener = (ev: StepEvent) => void;

/** What an embeddings job's listener hears: its vectors, or why it failed. */
export type EmbedListener = (ev: EmbeddingsEvent | Extract<EngineEvent, { type: "error" }>) => void;

export class Engine {
  private readonly listeners = new Map<string, Listener>();
  /** Requests cancelled here whose end the worker has not reported yet. */
  private readonly cancelled = new Set<string>();
  private nextId = 0;
  private closed = false;
  /** Latest scheduler figures reported by the worker. */
  stats: SchedulerStats;
  /** Time of the last engine step, for /metrics. */
  lastStepMs = 0;

  private constructor(
    private readonly worker: Worker,
    readonly config: EngineConfig,
    readonly info: ModelInfo,
    stats: SchedulerStats,
    /** Events messages handled here, read by the worker's outbox (it holds events while this lags). */
    private readonly handled: Int32Array,
  ) {
    this.stats = stats;
    worker.onmessage = (ev: MessageEvent<FromWorker>) => this.onMessage(ev.data);
    // A dead worker must not leave clients waiting forever: fail every request in flight.
    worker.onerror = (ev) => {
      this.closed = true;
      for (const [id, l] of this.listeners)
        l({ type: "error", id, message: `engine worker failed: ${ev.message}` });
      this.listeners.clear();
      this.cancelled.clear();
    };
  }

  /** Starts the worker and opens the model in it; resolves once it can take requests. */
  /** `file`: the model's parsed header, when the caller read it already (not parsed again). */
  static async start(config: Omit<EngineConfig, "libPath">, file?: GgufFile): Promise<Engine> {
    const { path: libPath } = await loadLibrary();
    // In the compiled binary the worker is a bundled entrypoint at a path src/cli/binary.ts sets.
    const embedded = (globalThis as { __hearthWorkerUrl?: string }).__hearthWorkerUrl;
    const worker = new Worker(embedded ?? new URL("./worker.ts", import.meta.url).href);
    const full: EngineConfig = { ...config, libPath };
    const handled = new Int32Array(new SharedArrayBuffer(4));
    const ready = await new Promise<{ info: ModelInfo; stats: SchedulerStats }>((resolve, reject) => {
      worker.onmessage = (ev: MessageEvent<FromWorker>) => {
        const m = ev.data;
        if (m.type === "ready") resolve(m);
        else if (m.type === "fatal") reject(new Error(m.message));
      };
      worker.onerror = (ev) => reject(new Error(`engine worker failed: ${ev.message}`));
      worker.postMessage({
        type: "init",
        config: full,
        handled,
        ...(file === undefined ? {} : { file }),
      } satisfies ToWorker);
    }).catch((err) => {
      worker.terminate();
      throw err;
    });
    return new Engine(worker, full, ready.info, ready.stats, handled);
  }

  /**
   * Requests submitted and not finished yet, not counting cancelled ones: the worker sees a
   * cancel before any later submit, so their slots are free for new requests even while a long
   * step delays the worker's answer.
   */
  get inFlight(): number {
    return this.listeners.size - this.cancelled.size;
  }

  get available(): boolean {
    return !this.closed;
  }

  get capacity(): number {
    return this.config.parallel + this.config.maxQueued;
  }

  /**
   * Queues a request; `onEvent` gets its text, then exactly one `done` or `error`.
   * Returns the request id (for cancel). Throws EngineBusyError when the queue is full.
   */
  submit(req: Omit<EngineRequest, "id">, onEvent: (ev: EngineEvent) => void): string {
    const id = this.take(onEvent as Listener);
    this.post({ type: "submit", req: { ...req, id } });
    return id;
  }

  /**
   * Queues an embeddings job (token ids per input; it counts as one request in flight);
   * `onEvent` gets its vectors or an error, once. Throws EngineBusyError when the queue is full.
   */
  submitEmbed(inputs: readonly (readonly number[])[], onEvent: EmbedListener): string {
    const id = this.take(onEvent as Listener);
    this.post({ type: "embed", req: { id, inputs } });
    return id;
  }

  private take(onEvent: Listener): string {
    if (this.closed) throw new EngineUnavailableError("the engine is not running (shut down or failed)");
    if (this.inFlight >= this.capacity)
      throw new EngineBusyError(`queue full: ${this.inFlight} requests in flight`);
    const id = `r${this.nextId++}`;
    this.listeners.set(id, onEvent);
    return id;
  }

  /** Ends a request and frees its KV pages; its listener gets `done` with finish "abort". */
  cancel(id: string): void {
    if (!this.listeners.has(id) || this.cancelled.has(id)) return;
    this.cancelled.add(id);
    this.post({ type: "cancel", id });
  }

  /**
   * Stops the worker after the step in progress. With an SSD tier the prefix cache is written
   * out first (manifest included); the result says how many pages it lists, or why it failed.
   * Requests still in flight end with an error event saying `reason`.
   */
  async close(reason = "engine closed"): Promise<{ persisted: number | null; persistError?: string }> {
    if (this.closed) return { persisted: null };
    this.closed = true;
    // Persisting a large hot tier takes a while: give it up to a minute before giving up on the worker.
    const result = await new Promise<{ persisted: number | null; persistError?: string }>((resolve) => {
      const t = setTimeout(
        () => resolve({ persisted: null, persistError: "the engine did not stop in time" }),
        60_000,
      );
      this.worker.onmessage = (ev: MessageEvent<FromWorker>) => {
        const m = ev.data;
        if (m.type === "closed") {
          clearTimeout(t);
          resolve(
            m.persistError === undefined
              ? { persisted: m.persisted }
              : { persisted: m.persisted, persistError: m.persistError },
          );
        }
      };
      this.post({ type: "close" });
    });
    this.worker.terminate();
    for (const [id, l] of this.listeners) l({ type: "error", id, message: reason });
    this.listeners.clear();
    this.cancelled.clear();
    return result;
  }

  private post(msg: ToWorker): void {
    this.worker.postMessage(msg);
  }

  private onMessage(m: FromWorker): void {
    if (m.type !== "events") return;
    if (m.stats !== undefined) this.stats = m.stats;
    if (m.stepMs > 0) this.lastStepMs = m.stepMs;
    try {
      for (const ev of m.events) {
        const l = this.listeners.get(ev.id);
        if (!l) continue;
        if (ev.type !== "text") {
          this.listeners.delete(ev.id);
          this.cancelled.delete(ev.id);
        }
        l(ev);
      }
    } finally {
      // Handled: the worker may send the next step's events on their own again.
      Atomics.add(this.handled, 0, 1);
    }
  }
}
