// A reply's timing (time to first token, tokens per second) and the line of telemetry it shows.
import type { Usage } from "./api.ts";
import type { Telemetry } from "./store.ts";

/** Times one streamed reply from the moment its request is sent. */
export class ReplyClock {
  private first_ms: number | null = null;
  private last_ms = 0;
  private pieces = 0;

  constructor(private readonly sent_ms: number) {}

  /** A piece of text arrived at `now_ms`. */
  text(now_ms: number): void {
    if (this.first_ms === null) this.first_ms = now_ms;
    this.last_ms = now_ms;
    this.pieces++;
  }

  get started(): boolean {
    return this.first_ms !== null;
  }

  /**
   * The reply's telemetry. Without usage (a reply stopped midway gets none) the completion
   * tokens are counted as the pieces that streamed in, one token each at most steps.
   */
  telemetry(finish: Telemetry["finish"], usage: Usage | null): Telemetry {
    const first = this.first_ms ?? this.last_ms;
    const tokens = usage?.completion_tokens ?? this.pieces;
    const span_s = (this.last_ms - first) / 1000;
    return {
      ttft_ms: this.first_ms === null ? 0 : Math.max(0, this.first_ms - this.sent_ms),
      // The first token's time belongs to the prompt; the rate is of the ones after it.
      tokens_per_s: tokens >= 2 && span_s > 0 ? (tokens - 1) / span_s : null,
      completion_tokens: tokens,
      prompt_tokens: usage?.prompt_tokens ?? null,
      cached_tokens: usage?.prompt_tokens_details?.cached_tokens ?? null,
      finish,
    };
  }
}

/** The telemetry line's parts: "first token 210 ms", "52.3 tok/s", ... */
export function describeTelemetry(t: Telemetry): string[] {
  const parts: string[] = [];
  if (t.completion_tokens > 0)
    parts.push(
      `first token ${t.ttft_ms < 1000 ? `${Math.round(t.ttft_ms)} ms` : `${(t.ttft_ms / 1000).toFixed(2)} s`}`,
    );
  if (t.tokens_per_s !== null) parts.push(`${t.tokens_per_s.toFixed(1)} tok/s`);
  const approx = t.prompt_tokens === null ? "~" : "";
  parts.push(`${approx}${t.completion_tokens} token${t.completion_tokens === 1 ? "" : "s"}`);
  if (t.prompt_tokens !== null)
    parts.push(`prompt ${t.prompt_tokens} tokens, ${t.cached_tokens ?? 0} from the prefix cache`);
  if (t.finish === "length") parts.push("cut at the token limit");
  if (t.finish === "stopped") parts.push("stopped");
  return parts;
}
