// Messages between the engine client (main thread) and the engine worker that owns the native model.
import type { GgufFile } from "../gguf/index.ts";
import type { RedisTierOptions } from "../kv/redis-tier.ts";
import type { ModelInfo } from "../native/model-api.ts";
import type { EmbedRequest } from "./embed.ts";
import type { EngineRequest, SchedulerStats, StepEvent } from "./request.ts";

export interface EngineConfig {
  modelPath: string;
  /** Path of libhearth the main thread loaded (the worker cannot see an embedded copy itself). */
  libPath: string;
  threads: number;
  /** Most sequences decoding at once. */
  parallel: number;
  /** Most requests waiting beyond `parallel`. */
  maxQueued: number;
  /** Most tokens one sequence holds (prompt + output). */
  contextTokens: number;
  /** KV pool size in pages (of the native page size, nativeLimits().kvPageTokens). */
  kvPages: number;
  /** Most rows one decode call carries. */
  stepTokens: number;
  kvType: "f16" | "q8_0";
  /** The prefix cache and its tiers; omitted or null = off (every prompt is computed in full). */
  kvTier?: EngineKvTierConfig | null;
  /** A draft model for speculative decoding (its vocabulary checked against the model's already). */
  draftModelPath?: string;
}

/** Prefix cache of the engine: RAM hot tier, optional SSD tier, idle spilling. */
export interface EngineKvTierConfig {
  /** Bytes of published KV pages kept in RAM (the hot tier, part of the KV pool); default half the pool. */
  hotBytes?: number;
  /** SSD tier directory (slab files + manifest, reloaded at start); omitted = RAM only. */
  dir?: string;
  /** Most bytes of slab files in `dir`. */
  diskBytes?: number;
  /** A conversation unused this long has its pages spilled to SSD (0 = never for idleness). */
  idleMs: number;
  /** A KV tier shared by replicas through Redis (docs/scale-out.md); omitted = none. */
  redis?: RedisTierOptions;
}

export type ToWorker =
  /**
   * `file`: the model's header as the main thread parsed it (the worker does not read it again);
   * `handled`: shared counter of the events messages the main thread has handled (outbox.ts).
   */
  | { type: "init"; config: EngineConfig; file?: GgufFile; handled?: Int32Array }
  | { type: "submit"; req: EngineRequest }
  | { type: "embed"; req: EmbedRequest }
  | { type: "cancel"; id: string }
  | { type: "close" };

export type FromWorker =
  | { type: "ready"; info: ModelInfo; stats: SchedulerStats }
  | { type: "fatal"; message: string }
  /** `stats`: present when they may have changed meaningfully (outbox.ts); `stepMs`: the last step's, 0 if none. */
  | { type: "events"; events: StepEvent[]; stats?: SchedulerStats; stepMs: number }
  /** `persisted`: prefix-cache pages listed in the SSD manifest at shutdown (null: no SSD tier or it failed). */
  | { type: "closed"; persisted: number | null; persistError?: string };
