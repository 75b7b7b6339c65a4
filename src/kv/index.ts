// KV memory tiers for the session and the server: prefix reuse, SSD-backed prefix cache, session save / resume.
// Thin policy over the KV tiers every native model has (NativeKvTiers, src/native/model-api.ts).
import { existsSync, mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { NativeError } from "../native/lib.ts";
import { isTiered, KvCorruptError, type KvTierOptions, type NativeModel } from "../native/model-api.ts";

export type { KvTierOptions, KvTierStats, NativeKvTiers } from "../native/model-api.ts";

/** Default cold-tier / session directory: $HEARTH_KV_DIR or ~/.cache/hearth/kv. */
export function defaultKvDir(): string {
  return process.env.HEARTH_KV_DIR ?? join(homedir(), ".cache", "hearth", "kv");
}

/** Whether a model has the KV tiers: every native model does; a test double may not. */
export const hasKvTiers = isTiered;

/** Opens the prefix cache and tiers on a model that supports them; false when it does not. */
export function openKvTiers(model: NativeModel, opts: KvTierOptions): boolean {
  if (!hasKvTiers(model)) return false;
  if (opts.dir) mkdirSync(opts.dir, { recursive: true });
  model.kvTierOpen(opts);
  return true;
}

/**
 * A sequence for `tokens`: with tiers, pre-filled with the longest cached prefix. The caller
 * decodes tokens[reusedTokens..] next (at positions reusedTokens..).
 */
export function sequenceForPrompt(
  model: NativeModel,
  tokens: ArrayLike<number>,
): { seqId: number; reusedTokens: number } {
  if (hasKvTiers(model)) return model.seqCreateWithPrefix(tokens);
  return { seqId: model.seqCreate(), reusedTokens: 0 };
}

/** Offers the pages of a prefilled sequence for reuse by later ones (no-op without tiers). */
export function publishSequence(model: NativeModel, seqId: number, tokens: ArrayLike<number>): number {
  return hasKvTiers(model) ? model.seqPublish(seqId, tokens) : 0;
}

/** Saves a sequence's KV and tokens to `path` (crash-safe: temp file, fsync, rename). Returns bytes. */
export function saveSequence(
  model: NativeModel,
  seqId: number,
  tokens: ArrayLike<number>,
  path: string,
): number {
  if (!hasKvTiers(model)) throw new Error("this native model cannot save sequences");
  return model.seqSave(seqId, tokens, path);
}

export type ResumeResult =
  | { ok: true; seqId: number; tokens: number[] }
  | { ok: false; reason: "missing" | "corrupt" | "mismatch" | "full"; message: string };

/**
 * Restores a saved sequence. A missing, damaged or foreign file is not an error: the result says
 * why, and the caller re-prefills from its own copy of the conversation.
 */
export function resumeSequence(model: NativeModel, path: string): ResumeResult {
  if (!hasKvTiers(model)) return { ok: false, reason: "mismatch", message: "model has no KV tiers" };
  if (!existsSync(path)) return { ok: false, reason: "missing", message: `${path} does not exist` };
  try {
    const r = model.seqRestore(path);
    return { ok: true, seqId: r.seqId, tokens: r.tokens };
  } catch (e) {
    if (e instanceof KvCorruptError) return { ok: false, reason: "corrupt", message: e.message };
    if (e instanceof NativeError) {
      const reason = e.status === -6 ? "full" : e.status === -7 ? "missing" : "mismatch";
      return { ok: false, reason, message: e.message };
    }
    throw e;
  }
}
