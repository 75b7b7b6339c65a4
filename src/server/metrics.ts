// Server metrics in Prometheus text format: request and token counters, TTFT and inter-token
// latency histograms, queue depth and KV pages, and the prefix cache with its RAM and SSD tiers
// (the engine figures are the latest the engine reported).

import type { DraftCounts } from "../engine/request.ts";
import type { RedisTierStats } from "../kv/redis-tier.ts";
import { kvPageTokens } from "../native/limits.ts";
import type { KvTierStats } from "../native/model-api.ts";

/** A cumulative histogram with fixed upper bounds in seconds. */
export class Histogram {
  private readonly counts: number[];
  private sum_s = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds_s: readonly number[],
  ) {
    this.counts = bounds_s.map(() => 0);
  }

  observe(value_s: number): void {
    this.sum_s += value_s;
    this.count++;
    for (let i = 0; i < this.bounds_s.length; i++)
      if (value_s <= (this.bounds_s[i] as number)) this.counts[i] = (this.counts[i] as number) + 1;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.bounds_s.forEach((b, i) => {
      lines.push(`${this.name}_bucket{le="${b}"} ${this.counts[i]}`);
    });
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`);
    lines.push(`${this.name}_sum ${this.sum_s}`, `${this.name}_count ${this.count}`);
    return lines.join("\n");
  }
}

export interface EngineGauges {
  running: number;
  queued: number;
  kvPagesTotal: number;
  kvPagesFree: number;
  preemptions: number;
  idleSpilledPages?: number;
  /** Speculative decoding: draft tokens verified / matched the sampled token. */
  draftTokens?: number;
  acceptedDraftTokens?: number;
  /** Draft tokens proposed (run in a step) and accepted, per source (lookup, the draft model). */
  drafts?: DraftCounts;
  /** The KV tier shared through Redis; null or absent when there is none. */
  kvRedis?: RedisTierStats | null;
  /** Prefix cache counters; null or absent when it is off. */
  kvTier?: KvTierStats | null;
}

export class ServerMetrics {
  /** Finished requests by endpoint and outcome (finish reason, or an HTTP error class). */
  private readonly requests = new Map<string, number>();
  promptTokens = 0;
  /** Prompt tokens of finished requests served from the prefix cache. */
  cachedPromptTokens = 0;
  completionTokens = 0;
  readonly ttft = new Histogram(
    "hearth_time_to_first_token_seconds",
    "Time from request arrival to its first generated token.",
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  );
  readonly itl = new Histogram(
    "hearth_inter_token_latency_seconds",
    "Time between consecutive generated tokens of one request (0 for tokens that arrive in the same step: accepted speculative drafts).",
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  );

  countRequest(endpoint: string, outcome: string): void {
    const key = `endpoint="${endpoint}",outcome="${outcome}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  render(g: EngineGauges): string {
    const out: string[] = [];
    out.push(
      "# HELP hearth_requests_total Requests by endpoint and outcome: each finished choice by its finish (a request of n choices counts n), each refused request (queue_full, unavailable) once.",
    );
    out.push("# TYPE hearth_requests_total counter");
    for (const [k, v] of this.requests) out.push(`hearth_requests_total{${k}} ${v}`);
    const counter = (name: string, help: string, v: number) =>
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${v}`);
    const gauge = (name: string, help: string, v: number) =>
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${v}`);
    counter("hearth_prompt_tokens_total", "Prompt tokens of finished requests.", this.promptTokens);
    counter(
      "hearth_completion_tokens_total",
      "Generated tokens of finished requests.",
      this.completionTokens,
    );
    counter(
      "hearth_preemptions_total",
      "Sequences preempted (pages freed, recomputed later).",
      g.preemptions,
    );
    counter(
      "hearth_draft_tokens_total",
      "Speculative decoding: draft tokens verified (requests with speculative on).",
      g.draftTokens ?? 0,
    );
    counter(
      "hearth_draft_tokens_accepted_total",
      "Speculative decoding: draft tokens equal to the sampled token (generated without a step of their own).",
      g.acceptedDraftTokens ?? 0,
    );
    const d = g.drafts;
    if (d !== undefined) {
      out.push(
        "# HELP hearth_draft_tokens_proposed_total Speculative decoding: draft tokens run in a step, by source (lookup: prompt lookup and predicted outputs; model: the draft model).",
        "# TYPE hearth_draft_tokens_proposed_total counter",
        `hearth_draft_tokens_proposed_total{source="lookup"} ${d.lookupProposed}`,
        `hearth_draft_tokens_proposed_total{source="model"} ${d.modelProposed}`,
        "# HELP hearth_draft_tokens_proposed_accepted_total Speculative decoding: proposed draft tokens the target accepted, by source.",
        "# TYPE hearth_draft_tokens_proposed_accepted_total counter",
        `hearth_draft_tokens_proposed_accepted_total{source="lookup"} ${d.lookupAccepted}`,
        `hearth_draft_tokens_proposed_accepted_total{source="model"} ${d.modelAccepted}`,
      );
    }
    out.push(this.ttft.render(), this.itl.render());
    gauge("hearth_requests_running", "Sequences decoding now.", g.running);
    gauge("hearth_queue_depth", "Requests waiting for a slot.", g.queued);
    gauge("hearth_kv_pages_total", `KV pool size in pages of ${kvPageTokens()} tokens.`, g.kvPagesTotal);
    gauge("hearth_kv_pages_free", "Free KV pages.", g.kvPagesFree);
    gauge(
      "hearth_kv_pages_used",
      "KV pages held by sequences and the prefix cache's hot tier.",
      g.kvPagesTotal - g.kvPagesFree,
    );
    counter(
      "hearth_prompt_tokens_cached_total",
      "Prompt tokens of finished requests whose KV came from the prefix cache.",
      this.cachedPromptTokens,
    );
    const t = g.kvTier;
    gauge("hearth_prefix_cache_enabled", "1 when the prefix cache is on.", t ? 1 : 0);
    if (t) {
      counter("hearth_prefix_cache_lookups_total", "Sequences opened through the prefix cache.", t.lookups);
      counter(
        "hearth_prefix_cache_reused_tokens_total",
        "Tokens whose KV a new sequence took from the prefix cache (preempted ones resuming included).",
        t.tokensReused,
      );
      counter("hearth_prefix_cache_hot_hits_total", "Cached pages found in RAM.", t.hotHits);
      counter("hearth_prefix_cache_cold_hits_total", "Cached pages read back from SSD.", t.coldHits);
      counter(
        "hearth_prefix_cache_cold_misses_total",
        "Cached pages on SSD found corrupt, truncated or missing (dropped and recomputed).",
        t.coldMisses,
      );
      counter("hearth_prefix_cache_spilled_pages_total", "Pages written to SSD as they left RAM.", t.spilled);
      counter(
        "hearth_prefix_cache_idle_spilled_pages_total",
        "Pages moved to SSD because their conversation went idle.",
        g.idleSpilledPages ?? 0,
      );
      counter(
        "hearth_prefix_cache_dropped_pages_total",
        "Pages that left RAM without a place on SSD.",
        t.dropped,
      );
      gauge("hearth_prefix_cache_entries", "Pages the prefix cache knows (RAM or SSD).", t.entries);
      gauge("hearth_prefix_cache_hot_pages", "Prefix-cache pages in RAM (the hot tier).", t.hotPages);
      gauge("hearth_prefix_cache_hot_capacity_pages", "Hot tier budget in pages.", t.hotCapacityPages);
      gauge(
        "hearth_prefix_cache_manifest_loaded_pages",
        "Pages listed by the SSD manifest at start-up.",
        t.manifestEntriesLoaded,
      );
      gauge(
        "hearth_prefix_cache_manifest_rejected",
        "1 when the SSD manifest found at start-up was torn or foreign and ignored.",
        t.manifestRejected,
      );
      counter("hearth_kv_ssd_pages_written_total", "Page records written to the SSD tier.", t.coldWritesOk);
      counter("hearth_kv_ssd_bytes_written_total", "Bytes written to the SSD tier.", t.coldBytesWritten);
      counter(
        "hearth_kv_ssd_write_failures_total",
        "SSD page writes that failed (disk full, I/O error): the page is not kept on SSD.",
        t.coldWritesFailed,
      );
      counter(
        "hearth_kv_ssd_writes_dropped_total",
        "Pages not offered to SSD because its slots (--kv-disk-mb) were all in use or its writer was behind.",
        t.coldWritesDropped,
      );
      counter(
        "hearth_kv_ssd_pages_read_total",
        "Page records read back intact from the SSD tier.",
        t.coldReadsOk,
      );
      counter("hearth_kv_ssd_bytes_read_total", "Bytes read from the SSD tier.", t.coldBytesRead);
      counter("hearth_kv_ssd_bad_reads_total", "SSD records that failed verification.", t.coldReadsBad);
      out.push(
        "# HELP hearth_kv_ssd_faults_total SSD tier faults by kind, each page counted once: enospc (disk full or quota), readonly (read-only file system or directory), io (another I/O error), missing (slab file deleted), truncated (record past the end of a cut file), checksum (record failed verification). The page is recomputed, never used.",
        "# TYPE hearth_kv_ssd_faults_total counter",
      );
      const faults: Array<[string, number]> = [
        ["enospc", t.coldFaultsEnospc],
        ["readonly", t.coldFaultsReadonly],
        ["io", t.coldFaultsIo],
        ["missing", t.coldFaultsMissing],
        ["truncated", t.coldFaultsTruncated],
        ["checksum", t.coldFaultsChecksum],
      ];
      for (const [kind, n] of faults) out.push(`hearth_kv_ssd_faults_total{kind="${kind}"} ${n}`);
      gauge(
        "hearth_kv_ssd_pages_used",
        "SSD tier slots holding a page (the cold tier's usage).",
        t.coldSlotsUsed,
      );
      gauge("hearth_kv_ssd_pages_capacity", "SSD tier slots (its byte quota in pages).", t.coldSlotsTotal);
    }
    const r = g.kvRedis;
    gauge("hearth_kv_redis_enabled", "1 when the KV tier shared through Redis is configured.", r ? 1 : 0);
    if (r) {
      gauge("hearth_kv_redis_connected", "1 while the Redis connection is up.", r.connected ? 1 : 0);
      counter("hearth_kv_redis_hits_total", "Pages fetched from Redis, verified and reused.", r.hits);
      counter(
        "hearth_kv_redis_misses_total",
        "Prompt lookups that stopped at a page Redis did not have (recomputed).",
        r.misses,
      );
      counter(
        "hearth_kv_redis_rejected_total",
        "Page records from Redis refused by verification (checksum, model, build or tokens): recomputed.",
        r.rejected,
      );
      counter(
        "hearth_kv_redis_errors_total",
        "Redis commands that failed or timed out, and lookups skipped while Redis was unreachable.",
        r.errors,
      );
      counter("hearth_kv_redis_pages_written_total", "Page records written to Redis.", r.pagesWritten);
      counter(
        "hearth_kv_redis_bytes_written_total",
        "Bytes of page records written to Redis.",
        r.bytesWritten,
      );
      counter("hearth_kv_redis_bytes_read_total", "Bytes of page records read from Redis.", r.bytesRead);
      counter(
        "hearth_kv_redis_evicted_total",
        "Pages this replica deleted from Redis to keep the model's namespace under --kv-redis-max-mb.",
        r.evicted,
      );
    }
    return `${out.join("\n")}\n`;
  }
}
