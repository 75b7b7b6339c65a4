// A KV tier shared by replicas through Redis (or Valkey): the prefix cache's whole pages, as
// checksummed portable records (zig/kv/portable.zig), keyed by the model tag and the page's hash-chain
// key. A replica publishes a finished conversation's pages; another replica that gets the next turn
// fetches the pages its own cache lacks, verifies each against its prompt and model, and computes
// only the rest. Redis is an optimisation, never a source of truth: a miss, a damaged or foreign
// record, a timeout or a Redis that is down all mean the same thing, the page is recomputed.
import { RedisClient } from "bun";
import { KvCorruptError, type NativeModel } from "../native/model-api.ts";

export interface RedisTierOptions {
  /** redis://[user:pass@]host:port[/db] (rediss:// for TLS). */
  url: string;
  /** A page not read or written for this long expires. */
  ttlMs: number;
  /** Most bytes of page records this model's namespace may hold; the least recently used go first. */
  maxBytes: number;
  /** A Redis command slower than this counts as an error and its request recomputes (default 1000). */
  timeoutMs?: number;
}

export interface RedisTierStats {
  /** Whether the client is connected now. */
  connected: boolean;
  /** Pages fetched, verified and added to the prefix cache. */
  hits: number;
  /** Lookups that found a needed page missing (expired, evicted or never written). */
  misses: number;
  /** Records refused by verification (checksum, model, build or tokens): deleted and recomputed. */
  rejected: number;
  /** Commands that failed or timed out, and lookups skipped because Redis was unreachable. */
  errors: number;
  pagesWritten: number;
  bytesWritten: number;
  bytesRead: number;
  /** Pages deleted to keep the namespace under its size bound. */
  evicted: number;
}

/** Pages fetched per round trip: bounds the memory a lookup holds (a page of SmolLM2 is 360 KiB). */
const FETCH_BATCH_PAGES = 16;
/** Least time between two connection attempts while Redis is unreachable. */
const RECONNECT_MS = 1000;

// Adds the pages just touched to the namespace's index (a sorted set: key -> expiry in ms), drops
// the expired ones from it, and deletes the least recently touched pages beyond the size bound.
// KEYS[1] = index; ARGV = now, most pages, ttl, then expiry/key pairs. Returns the pages deleted.
const TRIM_SCRIPT = `
local idx = KEYS[1]
for i = 4, #ARGV, 2 do redis.call('ZADD', idx, ARGV[i], ARGV[i + 1]) end
redis.call('ZREMRANGEBYSCORE', idx, '-inf', ARGV[1])
local over = redis.call('ZCARD', idx) - tonumber(ARGV[2])
local deleted = 0
if over > 0 then
  local victims = redis.call('ZPOPMIN', idx, over)
  for i = 1, #victims, 2 do deleted = deleted + redis.call('DEL', victims[i]) end
end
redis.call('PEXPIRE', idx, ARGV[3])
return deleted`;

class TimeoutError extends Error {}

/**
 * The pages a fetch added to the prefix cache for one request. They stay pinned (neither evicted
 * nor reclaimed) until `release`: call it once the request was admitted (its sequence took the
 * pages: `used`) or when it will not be (cancelled, refused). Releasing twice is harmless.
 */
export class FetchedPages {
  private pending: number[];

  constructor(
    private readonly model: NativeModel,
    private readonly tokens: Int32Array,
    pages: number[],
  ) {
    this.pending = pages;
  }

  /** Pages added (and pinned) for the request. */
  get count(): number {
    return this.pending.length;
  }

  release(used: boolean): void {
    const pages = this.pending;
    this.pending = [];
    for (const p of pages) {
      try {
        this.model.kvPageUnpin(this.tokens, p, used);
      } catch {
        // The model is closed: its pins went with it.
      }
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`Redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export class RedisKvTier {
  private client: RedisClient;
  private connecting = false;
  private lastConnectMs = 0;
  private readonly namespace: string;
  private readonly indexKey: string;
  private readonly recordBytes: number;
  private readonly maxPages: number;
  private readonly timeoutMs: number;
  private readonly counts: Omit<RedisTierStats, "connected"> = {
    hits: 0,
    misses: 0,
    rejected: 0,
    errors: 0,
    pagesWritten: 0,
    bytesWritten: 0,
    bytesRead: 0,
    evicted: 0,
  };

  constructor(
    private readonly model: NativeModel,
    private readonly opts: RedisTierOptions,
    /** Called when the connection comes up or goes down and when a publish ends (for the metrics). */
    private readonly onStatsChange: () => void = () => {},
  ) {
    if (!Number.isSafeInteger(opts.ttlMs) || opts.ttlMs < 1000)
      throw new RangeError("the Redis TTL must be at least 1 s");
    this.recordBytes = model.kvRecordBytes();
    this.maxPages = Math.floor(opts.maxBytes / this.recordBytes);
    if (this.maxPages < 1)
      throw new RangeError(
        `the Redis size bound must hold at least one page record (${this.recordBytes} bytes)`,
      );
    this.timeoutMs = opts.timeoutMs ?? 1000;
    this.namespace = `hearth:kv:1:${model.kvModelTag.toString(16).padStart(16, "0")}`;
    this.indexKey = `${this.namespace}:index`;
    this.client = this.newClient();
    this.ready();
  }

  private newClient(): RedisClient {
    // No offline queue: while Redis is unreachable a command fails at once and the page is recomputed.
    const client = new RedisClient(this.opts.url, {
      enableOfflineQueue: false,
      connectionTimeout: this.timeoutMs,
      autoReconnect: true,
    });
    client.onconnect = () => this.onStatsChange();
    client.onclose = () => this.onStatsChange();
    return client;
  }

  /** Whether Redis is reachable now; if not, starts (at most once a second) a connection attempt. */
  private ready(): boolean {
    if (this.client.connected) return true;
    const now = Date.now();
    if (!this.connecting && now - this.lastConnectMs >= RECONNECT_MS) {
      this.lastConnectMs = now;
      this.connecting = true;
      this.client
        .connect()
        .catch(() => {
          this.counts.errors++;
        })
        .finally(() => {
          this.connecting = false;
        });
    }
    return false;
  }

  /** A command that failed or timed out: counted; a timed-out connection is replaced (it may be stuck). */
  private failed(err: unknown): void {
    this.counts.errors++;
    if (err instanceof TimeoutError) {
      this.client.close();
      this.client = this.newClient();
      // Connect now, not on the next request's lookup (which would find it down and skip Redis).
      this.lastConnectMs = 0;
      this.ready();
    }
  }

  private pageKey(chainKey: bigint): string {
    return `${this.namespace}:${chainKey.toString(16).padStart(16, "0")}`;
  }

  stats(): RedisTierStats {
    return { connected: this.client.connected, ...this.counts };
  }

  /**
   * Adds to the prefix cache the whole pages of `promptIds` that it lacks and Redis has, in chain
   * order, up to the first miss, pinned until the returned pages are released. The caller then
   * opens the sequence as usual (the prefix cache finds them) and releases them. Never throws.
   */
  async fetch(promptIds: readonly number[]): Promise<FetchedPages> {
    // The prefix cache reuses at most all but the last prompt token.
    const usable = Math.max(0, promptIds.length - 1);
    const tokens = Int32Array.from(promptIds.slice(0, usable));
    const added: number[] = [];
    const result = new FetchedPages(this.model, tokens, added);
    let keys: BigUint64Array;
    let next: number;
    try {
      const c = this.model.kvChain(tokens);
      keys = c.keys;
      next = c.localPages;
    } catch {
      return result;
    }
    if (next >= keys.length) return result;
    if (!this.ready()) {
      this.counts.errors++;
      return result;
    }
    while (next < keys.length) {
      const batch = Array.from(keys.subarray(next, next + FETCH_BATCH_PAGES), (k) => this.pageKey(k));
      let records: (Uint8Array | null)[];
      try {
        records = await withTimeout(Promise.all(batch.map((k) => this.client.getBuffer(k))), this.timeoutMs);
      } catch (err) {
        this.failed(err);
        return result;
      }
      for (const [i, rec] of records.entries()) {
        if (rec === null) {
          this.counts.misses++;
          return result;
        }
        this.counts.bytesRead += rec.length;
        try {
          if (this.model.kvPageImport(tokens, next, rec)) added.push(next);
          this.counts.hits++;
        } catch (err) {
          if (err instanceof KvCorruptError) {
            this.counts.rejected++;
            // Nobody should fetch it again; a replica that computes the page writes a good one.
            this.client.del(batch[i] as string).catch(() => {});
          }
          // Otherwise no page could be had (a pool held by running sequences, or as many
          // imported pages as the hot tier holds waiting for their requests): the rest is computed.
          return result;
        }
        next++;
      }
    }
    return result;
  }

  /**
   * Writes the whole pages of a conversation the prefix cache just published that Redis lacks,
   * and pushes back the expiry of those it has. Returns once Redis answered; never throws.
   */
  async publish(tokens: Int32Array): Promise<void> {
    if (!this.ready()) return;
    let keys: BigUint64Array;
    try {
      keys = this.model.kvChain(tokens).keys;
    } catch {
      return;
    }
    const now = Date.now();
    // Every page's expiry is pushed back (a few bytes per page): whether Redis still has a page
    // is asked each time, never remembered, since it may have been evicted, expired or restarted.
    const due = Array.from(keys, (k, page) => ({ page, key: this.pageKey(k) }));
    if (due.length === 0) return;
    const ttl = String(this.opts.ttlMs);
    try {
      const exists = await withTimeout(
        Promise.all(due.map((d) => this.client.send("PEXPIRE", [d.key, ttl]) as Promise<number>)),
        this.timeoutMs,
      );
      const writes: Promise<unknown>[] = [];
      for (const [i, d] of due.entries()) {
        if (exists[i] === 1) continue;
        // A record of its own per page: the client may serialise the command after this loop.
        const record = new Uint8Array(this.recordBytes);
        try {
          this.model.kvPageExport(tokens, d.page, record);
        } catch {
          // The page left the cache meanwhile (evicted): the pages after it cannot be named either.
          break;
        }
        writes.push(this.client.set(d.key, record, "PX", this.opts.ttlMs));
        this.counts.pagesWritten++;
        this.counts.bytesWritten += record.length;
      }
      // A conversation's pages can be tens of MB: allow for the bytes as well as the latency.
      await withTimeout(Promise.all(writes), this.timeoutMs * 4 + writes.length * 50);
      const deadline = String(now + this.opts.ttlMs);
      const args = [String(now), String(this.maxPages), ttl];
      for (const d of due) args.push(deadline, d.key);
      const deleted = await withTimeout(
        this.client.send("EVAL", [TRIM_SCRIPT, "1", this.indexKey, ...args]) as Promise<number>,
        this.timeoutMs,
      );
      this.counts.evicted += Number(deleted) || 0;
    } catch (err) {
      this.failed(err);
    }
    this.onStatsChange();
  }

  close(): void {
    this.client.close();
  }
}
