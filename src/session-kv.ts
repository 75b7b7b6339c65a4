// A session's KV sequence: its token history and how much of it the KV holds (the rest is
// pending: sampled or appended, not yet run), kept consistent as prompts are appended, a chat
// reuses a cached prefix, unseen tokens are taken back, a saved file is restored, or it is reset.
import type { OwnedSequence } from "./engine/request.ts";
import { resumeSequence } from "./kv/index.ts";
import type { NativeModel } from "./native/model-api.ts";
import { contextFullError } from "./session-options.ts";

export class SessionSequence {
  /** What the engine runs on: the history, the count in the KV, the last token's logits. */
  kv: OwnedSequence;
  /** The session is closing or closed: its KV is no longer edited. */
  closed = false;

  constructor(private readonly native: NativeModel) {
    this.kv = { seqId: native.seqCreate(), tokens: [], computed: 0, lastLogits: null };
  }

  /** Appends prompt tokens; with `limit` (shift off: the context), refuses what does not fit. */
  append(ids: readonly number[], limit: number | null): void {
    const total = this.kv.tokens.length + ids.length;
    if (limit !== null && total > limit)
      throw contextFullError(this.kv.computed, limit, total - this.kv.computed);
    for (const id of ids) this.kv.tokens.push(id);
  }

  /** Removes the last `n` tokens from the KV (they stay in the history, pending). */
  dropKvTail(n: number): void {
    if (n <= 0 || this.closed) return;
    this.native.seqShift(this.kv.seqId, this.kv.computed - n, n);
    this.kv.computed -= n;
    this.kv.lastLogits = null;
  }

  /** Takes the last `n` tokens out of the history; the last one kept becomes pending (for its logits). */
  takeBack(n: number): void {
    this.kv.tokens.length -= n;
    this.dropKvTail(this.kv.computed - (this.kv.tokens.length - 1));
  }

  /**
   * Keeps the longest prefix of `ids` that the session already holds and drops the rest of the
   * KV (a shift with nothing after it). Returns how many tokens of `ids` are covered. At least
   * one token is always left to run, so fresh logits come out.
   */
  reusePrefix(ids: readonly number[]): number {
    const h = this.kv.tokens;
    let common = 0;
    const limit = Math.min(h.length, ids.length - 1);
    while (common < limit && h[common] === ids[common]) common++;
    if (common < this.kv.computed) {
      this.native.seqShift(this.kv.seqId, common, this.kv.computed - common);
      this.kv.computed = common;
      this.kv.lastLogits = null;
    }
    h.length = common;
    return common;
  }

  /** Writes the tokens in the KV and their KV to `path` (see Session.save). */
  save(path: string): number {
    return this.native.seqSave(this.kv.seqId, this.kv.tokens.slice(0, this.kv.computed), path);
  }

  /**
   * Replaces the sequence with the one saved at `path` when it is sound and holds 1 to
   * `maxTokens` tokens; its last token leaves the KV so the next run yields its logits.
   */
  restore(path: string, maxTokens: number): boolean {
    const r = resumeSequence(this.native, path);
    if (!r.ok) return false;
    if (r.tokens.length === 0 || r.tokens.length > maxTokens) {
      this.native.seqFree(r.seqId);
      return false;
    }
    this.native.seqFree(this.kv.seqId);
    this.native.seqShift(r.seqId, r.tokens.length - 1, 1);
    this.kv = { seqId: r.seqId, tokens: r.tokens, computed: r.tokens.length - 1, lastLogits: null };
    return true;
  }

  /** Forgets every token and its KV (the sequence itself stays). */
  clear(): void {
    if (this.kv.computed > 0) this.native.seqShift(this.kv.seqId, 0, this.kv.computed);
    this.kv.tokens.length = 0;
    this.kv.computed = 0;
    this.kv.lastLogits = null;
  }
}
