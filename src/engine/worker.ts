// The engine worker: owns the native model and the scheduler, runs steps back to back while there
// is work, and between steps reads submit / cancel messages (so the main thread never blocks on a
// forward pass). With the prefix cache on it also runs the idle-spill timer and, on close, writes
// the SSD manifest so the cache survives a restart.
import type { GgufFile } from "../gguf/index.ts";
import { type FetchedPages, RedisKvTier } from "../kv/redis-tier.ts";
import { openModel, readModelFile } from "../model-file.ts";
import { loadLibrary } from "../native/lib.ts";
import { sequencesWithEmbeddings } from "../native/limits.ts";
import { createBatch } from "../native/model.ts";
import type { DraftingNativeModel, NativeModel } from "../native/model-api.ts";
import { DraftModel } from "./draft-model.ts";
import { Outbox } from "./outbox.ts";
import type { EngineConfig, FromWorker, ToWorker } from "./protocol.ts";
import type { SchedulerStats } from "./request.ts";
import { QueueFullError, Scheduler } from "./scheduler.ts";

declare const self: Worker;

let scheduler: Scheduler | null = null;
let model: NativeModel | null = null;
let draftNative: DraftingNativeModel | null = null;
let looping = false;
let tierConfig: EngineConfig["kvTier"] = null;
let idleTimer: ReturnType<typeof setInterval> | null = null;
let outbox: Outbox | null = null;
/** The KV tier shared with other replicas through Redis, when configured. */
let shared: RedisKvTier | null = null;
/** Requests waiting for their prefix pages from Redis, and whether they were cancelled meanwhile. */
const fetching = new Map<string, { cancelled: boolean }>();
/** Pages fetched from Redis for queued requests, pinned in the prefix cache until admission. */
const fetched = new Map<string, FetchedPages>();

/** Ends the pins of a request's fetched pages: used once it is admitted, else not. */
function releaseFetched(id: string, used: boolean): void {
  fetched.get(id)?.release(used);
  fetched.delete(id);
}

function post(msg: FromWorker): void {
  self.postMessage(msg);
}

function statsOf(s: Scheduler): SchedulerStats {
  return shared === null ? s.stats() : { ...s.stats(), kvRedis: shared.stats() };
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
  // Going idle: nothing may stay held in the outbox.
  outbox?.push(events, stepMs, s.idle);
  if (s.idle) looping = false;
  else setImmediate(loop);
}

function kick(): void {
  if (looping) return;
  looping = true;
  setImmediate(loop);
}

/** Writes the prefix cache's manifest (and every hot page) to the SSD tier; entries listed. */
function persist(): number | null {
  if (model === null || !tierConfig?.dir) return null;
  return model.kvTierPersist();
}

/**
 * Spills the pages of conversations idle for `idleMs`, then makes the SSD manifest current with
 * a checkpoint (it lists what is on SSD and writes no hot pages, so requests in flight barely wait).
 */
function spillIdle(idleMs: number): void {
  const s = scheduler;
  if (s === null) return;
  try {
    const moved = s.spillIdle(Date.now(), idleMs);
    if (moved === 0) return;
    model?.kvTierCheckpoint();
  } catch (err) {
    console.error(`hearth engine: idle spill failed: ${(err as Error).message}`);
  }
  outbox?.push([], 0, true);
}

async function init(
  config: EngineConfig,
  parsed: GgufFile | undefined,
  handled: Int32Array | undefined,
): Promise<void> {
  process.env.HEARTH_LIB = config.libPath;
  await loadLibrary();
  const mf = readModelFile(config.modelPath, parsed);
  const embedding = sequencesWithEmbeddings(config.parallel);
  const tokenizer = mf.tokenizer;
  model = openModel(mf, {
    threads: config.threads,
    kvPages: config.kvPages,
    kvType: config.kvType,
    maxBatchTokens: config.stepTokens,
    maxSequences: embedding.total,
  });
  if (config.draftModelPath !== undefined) {
    // The same sizes as the target: a draft sequence per target sequence, as many KV tokens.
    draftNative = openModel(readModelFile(config.draftModelPath), {
      threads: config.threads,
      kvPages: config.kvPages,
      kvType: config.kvType,
      maxBatchTokens: config.stepTokens,
      maxSequences: config.parallel,
    });
  }
  tierConfig = config.kvTier ?? null;
  if (tierConfig) {
    const kv = model.kvStats();
    const poolBytes = kv.pagesTotal * kv.pageSizeBytes;
    if (tierConfig.hotBytes !== undefined && tierConfig.hotBytes > poolBytes) {
      const mib = (b: number) => (b / (1024 * 1024)).toFixed(0);
      throw new Error(
        `the prefix cache's RAM budget (kvTier.hotBytes, --kv-hot-mb) of ${mib(tierConfig.hotBytes)} MiB is more than the KV pool it lives in: ${mib(poolBytes)} MiB (${kv.pagesTotal} pages of ${kv.pageSizeBytes} bytes; --kv-pages sets the count)`,
      );
    }
    model.kvTierOpen({
      hotBudgetBytes: tierConfig.hotBytes ?? Math.max(1, Math.floor(kv.pagesTotal / 2)) * kv.pageSizeBytes,
      ...(tierConfig.dir ? { dir: tierConfig.dir, coldMaxBytes: tierConfig.diskBytes ?? 0 } : {}),
    });
    const idleMs = tierConfig.idleMs;
    if (idleMs > 0 && tierConfig.dir) {
      // Checked a few times per idle period; each check is cheap when nothing went idle.
      idleTimer = setInterval(() => spillIdle(idleMs), Math.min(5000, Math.max(20, idleMs / 4)));
    }
  }
  if (tierConfig?.redis) shared = new RedisKvTier(model, tierConfig.redis, () => outbox?.push([], 0, true));
  scheduler = new Scheduler(
    model,
    tokenizer,
    {
      maxRunning: config.parallel,
      maxQueued: config.maxQueued,
      stepTokens: config.stepTokens,
      contextTokens: config.contextTokens,
      prefixCache: tierConfig !== null,
      embedSequences: embedding.embedding,
      onPublished: (tokens) => {
        shared?.publish(tokens);
      },
      onAdmitted: (id) => releaseFetched(id, true),
    },
    createBatch(config.stepTokens),
    draftNative === null ? null : new DraftModel(draftNative, config.stepTokens),
  );
  const s = scheduler;
  outbox = new Outbox(post, () => statsOf(s), handled ?? null);
  post({ type: "ready", info: model.info, stats: statsOf(scheduler) });
}

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const msg = ev.data;
  if (msg.type === "init") {
    init(msg.config, msg.file, msg.handled).catch((err) =>
      post({ type: "fatal", message: (err as Error).message }),
    );
    return;
  }
  const s = scheduler;
  if (msg.type === "close") {
    if (idleTimer !== null) clearInterval(idleTimer);
    idleTimer = null;
    let persisted: number | null = null;
    let persistError: string | undefined;
    try {
      persisted = persist();
    } catch (err) {
      persistError = (err as Error).message;
    }
    for (const id of [...fetched.keys()]) releaseFetched(id, false);
    shared?.close();
    shared = null;
    model?.close();
    model = null;
    draftNative?.close();
    draftNative = null;
    scheduler = null;
    post({ type: "closed", persisted, ...(persistError === undefined ? {} : { persistError }) });
    return;
  }
  if (s === null) return;
  if (msg.type === "submit" && shared !== null && !msg.req.promptLogprobs) {
    // Pages of this prompt that another replica computed come from Redis first; the request
    // waits for them (bounded by the tier's timeout), then is admitted as usual.
    const req = msg.req;
    const state = { cancelled: false };
    fetching.set(req.id, state);
    shared.fetch(req.promptIds).then((pages) => {
      fetching.delete(req.id);
      if (scheduler !== s) {
        pages.release(false);
        return;
      }
      // The pages stay pinned until the scheduler admits the request (onAdmitted): in a full
      // prefix cache they would otherwise be the first pushed out while it waits.
      if (pages.count > 0) fetched.set(req.id, pages);
      if (!submit(() => s.submit(req), req.id)) releaseFetched(req.id, false);
      if (state.cancelled) {
        const done = s.cancel(req.id);
        releaseFetched(req.id, false);
        outbox?.push(done ? [done] : [], 0, true);
      }
    });
  } else if (msg.type === "submit" || msg.type === "embed") {
    const m = msg;
    submit(() => (m.type === "submit" ? s.submit(m.req) : s.submitEmbed(m.req)), m.req.id);
  } else if (msg.type === "cancel") {
    const f = fetching.get(msg.id);
    if (f !== undefined) f.cancelled = true;
    else {
      const done = s.cancel(msg.id);
      releaseFetched(msg.id, false);
      outbox?.push(done ? [done] : [], 0, true);
    }
  }
};

/** Queues a request on the scheduler; a refusal goes back as the request's error event (false). */
function submit(queue: () => void, id: string): boolean {
  try {
    queue();
    kick();
    return true;
  } catch (err) {
    const e = err as Error;
    const message = e instanceof QueueFullError ? `queue_full: ${e.message}` : e.message;
    outbox?.push([{ type: "error", id, message }], 0, true);
    return false;
  }
}
