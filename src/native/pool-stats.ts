// The native thread pool's counters (zig/pool.zig Stats): how often the busy-machine rules sent the
// pool solo and who ran the tasks. Read through hearth_pool_stats or hearth_model_pool_stats.
import { nativeAbi } from "./lib.ts";

export interface PoolStats {
  /** Jobs posted to the workers, and their wall time on the calling thread. */
  parallelJobs: number;
  parallelNs: number;
  /** Tasks of those jobs, and how many the calling thread ran itself. */
  parallelTasks: number;
  callerTasks: number;
  /** Time the calling thread waited for late workers after it ran out of tasks to claim. */
  waitNs: number;
  /** Jobs where that wait was a stall; windows where the workers ran under half their share. */
  stalls: number;
  idleWindows: number;
  /** Solo periods started, and the jobs (and their time) the calling thread then ran alone. */
  soloPeriods: number;
  soloJobs: number;
  soloNs: number;
}

/** Calls `fill` with a buffer the size of the native struct and decodes what it wrote. */
export function readPoolStats(fill: (out: BigUint64Array) => void): PoolStats {
  const L = nativeAbi().layouts.poolStats;
  const buf = new BigUint64Array(Math.ceil(L.sizeBytes / 8));
  fill(buf);
  const v = new DataView(buf.buffer);
  const at = (field: keyof typeof L.offset) => Number(v.getBigUint64(L.offset[field], true));
  return {
    parallelJobs: at("parallel_jobs"),
    parallelNs: at("parallel_ns"),
    parallelTasks: at("parallel_tasks"),
    callerTasks: at("caller_tasks"),
    waitNs: at("wait_ns"),
    stalls: at("stalls"),
    idleWindows: at("idle_windows"),
    soloPeriods: at("solo_periods"),
    soloJobs: at("solo_jobs"),
    soloNs: at("solo_ns"),
  };
}

/** `after - before`, field by field: what the pool did between two reads. */
export function poolStatsDelta(after: PoolStats, before: PoolStats): PoolStats {
  const out = { ...after };
  for (const k of Object.keys(out) as Array<keyof PoolStats>) out[k] = after[k] - before[k];
  return out;
}
