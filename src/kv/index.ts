// KV memory tiers for the session and the server: prefix reuse, SSD-backed prefix cache, session save / resume.
// Thin policy over the KV tiers every native model has (NativeKvTiers, src/native/model-api.ts).
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { NativeError } from "../native/lib.ts";
import { nativeLimits } from "../native/limits.ts";
import { KvCorruptError, type NativeModel } from "../native/model-api.ts";
import { quoteUntrusted } from "../untrusted.ts";

export type { KvTierOptions, KvTierStats, NativeKvTiers } from "../native/model-api.ts";

/** Default cold-tier / session directory: $HEARTH_KV_DIR or ~/.cache/hearth/kv. */
export function defaultKvDir(): string {
  return process.env.HEARTH_KV_DIR ?? join(homedir(), ".cache", "hearth", "kv");
}

export type ResumeResult =
  | { ok: true; seqId: number; tokens: number[] }
  | { ok: false; reason: "missing" | "corrupt" | "mismatch" | "full"; message: string };

/**
 * Restores a saved sequence. A missing, damaged or foreign file is not an error: the result says
 * why, and the caller re-prefills from its own copy of the conversation.
 */
export function resumeSequence(model: NativeModel, path: string): ResumeResult {
  if (!existsSync(path))
    return { ok: false, reason: "missing", message: `${quoteUntrusted(path)} does not exist` };
  try {
    const r = model.seqRestore(path);
    return { ok: true, seqId: r.seqId, tokens: r.tokens };
  } catch (e) {
    if (e instanceof KvCorruptError) return { ok: false, reason: "corrupt", message: e.message };
    if (e instanceof NativeError) {
      const { kv_full, io_error } = nativeLimits().status;
      const reason = e.status === kv_full ? "full" : e.status === io_error ? "missing" : "mismatch";
      return { ok: false, reason, message: e.message };
    }
    throw e;
  }
}
