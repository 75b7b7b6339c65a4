// Messages between the engine client (main thread) and the engine worker that owns the native model.
import type { ModelInfo } from "../native/model-api.ts";
import type { EngineEvent, EngineRequest, SchedulerStats } from "./scheduler.ts";

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
  /** KV pool size in pages of 16 tokens. */
  kvPages: number;
  /** Most rows one decode call carries. */
  stepTokens: number;
  kvType: "f16" | "q8_0";
}

export type ToWorker =
  | { type: "init"; config: EngineConfig }
  | { type: "submit"; req: EngineRequest }
  | { type: "cancel"; id: string }
  | { type: "close" };

export type FromWorker =
  | { type: "ready"; info: ModelInfo; stats: SchedulerStats }
  | { type: "fatal"; message: string }
  | { type: "events"; events: EngineEvent[]; stats: SchedulerStats; stepMs: number }
  | { type: "closed" };
