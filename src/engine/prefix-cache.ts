// The scheduler's use of the prefix cache: a new sequence starts from the longest cached prefix
// of its prompt; prompts are published page by page as their prefill goes, and a finished (or
// preempted) sequence publishes all its pages, so the next turn of a conversation reuses them;
// conversations left idle have their pages spilled to the SSD tier.
import type { NativeKvTiers } from "../native/model-api.ts";
import type { Sequence } from "./scheduler.ts";

/** Most finished conversations remembered for idle spilling (older ones age out of the hot tier on their own). */
const MAX_CONVERSATIONS = 1024;

/** Tokens two lists share from the start. */
function commonPrefix(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class PrefixCache {
  /** Prompt tokens of admitted requests served from the prefix cache (their first admission). */
  cachedTokens = 0;
  /** Pages moved to the SSD tier because their conversation went idle. */
  idleSpilledPages = 0;
  /** KV of finished conversations (published tokens, compact) and when each was last used, oldest first. */
  private readonly conversations: { tokens: Int32Array; touchedMs: number }[] = [];

  constructor(
    private readonly tiers: NativeKvTiers,
    private readonly pageTokens: number,
    private readonly onPublished?: (tokens: Int32Array) => void,
  ) {}

  /** `tokens` rounded down to whole KV pages. */
  wholePages(tokens: number): number {
    return Math.floor(tokens / this.pageTokens) * this.pageTokens;
  }

  /** The prompt tokens, in whole pages, that a sequence's KV holds. */
  promptPagesInKv(s: Sequence): number {
    return this.wholePages(Math.min(s.kv.computed, s.req.promptIds.length));
  }

  reclaimable(): number {
    return this.tiers.kvTierReclaimable();
  }

  seqCreateWithPrefix(tokens: readonly number[]): { seqId: number; reusedTokens: number } {
    return this.tiers.seqCreateWithPrefix(tokens);
  }

  /**
   * Offers the whole pages of prompts computed so far (after each prefill chunk) to the prefix
   * cache, so a request that starts the same way (another of the same request's n choices, the
   * same new system prompt sent at once) reuses them instead of computing them again; admission
   * holds such a request back until the pages it shares are there. The sequence goes on
   * appending after its published pages, which it never rewrites (nor do rejected drafts: they
   * only drop rows after the prompt). The last partial page waits for the end of the request:
   * it is still being appended to, and two entries would then name one page.
   */
  publishPrompts(running: readonly Sequence[]): void {
    for (const s of running) {
      if (s.owned || s.promptLogprobs !== null) continue;
      const whole = this.promptPagesInKv(s);
      if (whole <= s.publishedTokens) continue;
      s.publishedTokens = whole;
      try {
        this.tiers.seqPublish(s.kv.seqId, s.kv.tokens.slice(0, whole));
      } catch {
        // Not publishing loses only reuse, never correctness.
      }
    }
  }

  /**
   * A running sequence whose prompt shares with `s`'s tokens whole pages it is still computing
   * (not yet in the prefix cache): `s` waits until they are published (after the prefill chunk
   * that computes them) rather than computing the same KV. Pages already in the cache (a chat
   * template's system prompt) hold nothing back.
   */
  sharesPendingPrompt(s: Sequence, running: readonly Sequence[]): boolean {
    if (s.promptLogprobs !== null) return false;
    // s reuses at most all but its last token.
    const most = s.kv.tokens.length - 1;
    return running.some(
      (r) =>
        !r.owned &&
        r.promptLogprobs === null &&
        this.wholePages(Math.min(commonPrefix(r.req.promptIds, s.kv.tokens), most)) > r.publishedTokens,
    );
  }

  /** Publishes every computed token's pages of a sequence about to be freed, and remembers them. */
  publishAll(seqId: number, tokens: number[]): void {
    try {
      this.tiers.seqPublish(seqId, tokens);
      const published = Int32Array.from(tokens);
      this.remember(published);
      this.onPublished?.(published);
    } catch {
      // Not publishing loses only reuse, never correctness.
    }
  }

  /** Records a published conversation; an earlier turn it extends is superseded. */
  private remember(tokens: Int32Array): void {
    const now = Date.now();
    for (let i = this.conversations.length - 1; i >= 0; i--) {
      const c = this.conversations[i] as { tokens: Int32Array };
      if (c.tokens.length <= tokens.length && commonPrefix(c.tokens, tokens) === c.tokens.length)
        this.conversations.splice(i, 1);
    }
    this.conversations.push({ tokens, touchedMs: now });
    if (this.conversations.length > MAX_CONVERSATIONS) this.conversations.shift();
  }

  /**
   * Spills to the SSD tier the pages of conversations not used for `idleMs` (as of `nowMs`),
   * except the pages they share with a request in flight (`live`) or a conversation still in
   * use. Returns the pages that left RAM (0 without an SSD tier).
   */
  spillIdle(nowMs: number, idleMs: number, live: readonly ArrayLike<number>[]): number {
    const idle = this.conversations.filter((c) => nowMs - c.touchedMs >= idleMs);
    if (idle.length === 0) return 0;
    const keep: ArrayLike<number>[] = [
      ...live,
      ...this.conversations.filter((c) => nowMs - c.touchedMs < idleMs).map((c) => c.tokens),
    ];
    let moved = 0;
    for (const c of idle) {
      let shared = 0;
      for (const l of keep) shared = Math.max(shared, commonPrefix(c.tokens, l));
      moved += this.tiers.kvTierSpill(c.tokens, shared);
      this.conversations.splice(this.conversations.indexOf(c), 1);
    }
    this.idleSpilledPages += moved;
    return moved;
  }
}
