// Server metrics in Prometheus text format: request and token counters, TTFT and inter-token
// latency histograms, queue depth and KV pages (the latter read from the engine on each scrape).

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
}

export class ServerMetrics {
  /** Finished requests by endpoint and outcome (finish reason, or an HTTP error class). */
  private readonly requests = new Map<string, number>();
  promptTokens = 0;
  completionTokens = 0;
  readonly ttft = new Histogram(
    "hearth_time_to_first_token_seconds",
    "Time from request arrival to its first generated token.",
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  );
  readonly itl = new Histogram(
    "hearth_inter_token_latency_seconds",
    "Time between consecutive generated tokens of one request.",
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  );

  countRequest(endpoint: string, outcome: string): void {
    const key = `endpoint="${endpoint}",outcome="${outcome}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  render(g: EngineGauges): string {
    const out: string[] = [];
    out.push("# HELP hearth_requests_total Finished requests by endpoint and outcome.");
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
    out.push(this.ttft.render(), this.itl.render());
    gauge("hearth_requests_running", "Sequences decoding now.", g.running);
    gauge("hearth_queue_depth", "Requests waiting for a slot.", g.queued);
    gauge("hearth_kv_pages_total", "KV pool size in pages of 16 tokens.", g.kvPagesTotal);
    gauge("hearth_kv_pages_free", "Free KV pages.", g.kvPagesFree);
    gauge("hearth_kv_pages_used", "KV pages held by sequences.", g.kvPagesTotal - g.kvPagesFree);
    return `${out.join("\n")}\n`;
  }
}
