// The engine worker: owns the native model and the scheduler, runs steps back to back while there
// is work, and between steps reads submit / cancel messages (so the main thread never blocks on a
// forward pass).
import { GgufMetadata, readGguf } from "../gguf/index.ts";
import { loadLibrary } from "../native/lib.ts";
import { createBatch, openNativeModel } from "../native/model.ts";
import type { NativeModel } from "../native/model-api.ts";
import { Tokenizer } from "../tokenizer/index.ts";
import type { FromWorker, ToWorker } from "./protocol.ts";
import { QueueFullError, Scheduler } from "./scheduler.ts";

declare const self: Worker;

let scheduler: Scheduler | null = null;
let model: NativeModel | null = null;
let looping = false;

function post(msg: FromWorker): void {
  self.postMessage(msg);
}

function loop(): void {
  const s = scheduler;
  if (s === null) {
    looping = false;
    return;
  }
  const started = performance.now();
  const events = s.step();
  const stepMs = performance.now() - started;
  post({ type: "events", events, stats: s.stats(), stepMs });
  if (s.idle) looping = false;
  else setImmediate(loop);
}

function kick(): void {
  if (looping) return;
  looping = true;
  setImmediate(loop);
}

async function init(config: import("./protocol.ts").EngineConfig): Promise<void> {
  process.env.HEARTH_LIB = config.libPath;
  await loadLibrary();
  const file = readGguf(config.modelPath);
  const tokenizer = Tokenizer.fromGguf(new GgufMetadata(file.metadata));
  model = openNativeModel(
    config.modelPath,
    {
      threads: config.threads,
      kvPages: config.kvPages,
      kvType: config.kvType,
      maxBatchTokens: config.stepTokens,
      maxSequences: config.parallel,
    },
    file,
  );
  scheduler = new Scheduler(
    model,
    tokenizer,
    {
      maxRunning: config.parallel,
      maxQueued: config.maxQueued,
      stepTokens: config.stepTokens,
      contextTokens: config.contextTokens,
    },
    createBatch(config.stepTokens),
  );
  post({ type: "ready", info: model.info, stats: scheduler.stats() });
}

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const msg = ev.data;
  if (msg.type === "init") {
    init(msg.config).catch((err) => post({ type: "fatal", message: (err as Error).message }));
    return;
  }
  const s = scheduler;
  if (msg.type === "close") {
    model?.close();
    model = null;
    scheduler = null;
    post({ type: "closed" });
    return;
  }
  if (s === null) return;
  if (msg.type === "submit") {
    try {
      s.submit(msg.req);
      kick();
    } catch (err) {
      const e = err as Error;
      const message = e instanceof QueueFullError ? `queue_full: ${e.message}` : e.message;
      post({
        type: "events",
        events: [{ type: "error", id: msg.req.id, message }],
        stats: s.stats(),
        stepMs: 0,
      });
    }
  } else if (msg.type === "cancel") {
    const done = s.cancel(msg.id);
    post({ type: "events", events: done ? [done] : [], stats: s.stats(), stepMs: 0 });
  }
};
