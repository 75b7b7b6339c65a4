// Stop strings over streamed text, and the one place that decides when a generation ends
// (stop string, end-of-generation token, or token budget).

export interface StopMatch {
  /** Text that is safe to emit now (never part of a stop string). */
  text: string;
  /** True once a stop string has appeared; nothing after it is ever emitted. */
  stopped: boolean;
  /** The stop string that matched. */
  stop?: string;
}

/**
 * Watches streamed text for stop strings. Text that could be the start of a stop string is held
 * back until the following text shows it is not; a matched stop string and everything after it
 * are dropped.
 */
export class StopMatcher {
  private held = "";
  private done = false;
  private readonly stops: readonly string[];

  constructor(stops: readonly string[] = []) {
    for (const s of stops) {
      if (typeof s !== "string" || s.length === 0) {
        throw new RangeError(`stop strings must be non-empty strings, got ${JSON.stringify(s)}`);
      }
    }
    this.stops = [...new Set(stops)];
  }

  get stopped(): boolean {
    return this.done;
  }

  push(text: string): StopMatch {
    if (this.done) return { text: "", stopped: true };
    if (this.stops.length === 0) return { text, stopped: false };
    const buffer = this.held + text;
    // Earliest stop string wins; at the same position the longer one (it contains the shorter).
    let at = -1;
    let which = "";
    for (const s of this.stops) {
      const i = buffer.indexOf(s);
      if (i >= 0 && (at < 0 || i < at || (i === at && s.length > which.length))) {
        at = i;
        which = s;
      }
    }
    if (at >= 0) {
      this.done = true;
      this.held = "";
      return { text: buffer.slice(0, at), stopped: true, stop: which };
    }
    const hold = this.longestPendingPrefix(buffer);
    this.held = buffer.slice(buffer.length - hold);
    return { text: buffer.slice(0, buffer.length - hold), stopped: false };
  }

  /** Releases held text at the end of a generation that did not stop on a string. */
  flush(): string {
    const rest = this.done ? "" : this.held;
    this.held = "";
    return rest;
  }

  /** Length of the longest suffix of buffer that is a proper prefix of some stop string. */
  private longestPendingPrefix(buffer: string): number {
    let best = 0;
    for (const s of this.stops) {
      const max = Math.min(s.length - 1, buffer.length);
      for (let len = max; len > best; len--) {
        if (buffer.endsWith(s.slice(0, len))) {
          best = len;
          break;
        }
      }
    }
    return best;
  }
}

export type FinishReason = "stop" | "eos" | "length";

export interface StopConditionOptions {
  /** Most tokens to generate; undefined means no limit. */
  maxTokens?: number;
  stop?: readonly string[];
  /** Usually `tokenizer.isEndOfGeneration`. */
  isEndOfGeneration?: (id: number) => boolean;
}

export interface StopStep {
  /** Text to emit for this token (may be empty while a possible stop string is held). */
  text: string;
  /** Why the generation ended, or null to keep going. */
  finish: FinishReason | null;
}

/**
 * Everything that ends a generation, checked once per token: feed each sampled id with its
 * decoded piece to `accept`, emit the returned text, stop when `finish` is set.
 */
export class StopCondition {
  private readonly matcher: StopMatcher;
  private readonly maxTokens: number;
  private readonly isEog: (id: number) => boolean;
  private generated = 0;
  private finished: FinishReason | null = null;
  private matched: string | undefined;

  constructor(options: StopConditionOptions = {}) {
    const max = options.maxTokens ?? Number.POSITIVE_INFINITY;
    if (!(max >= 0) || (Number.isFinite(max) && !Number.isInteger(max))) {
      throw new RangeError(`maxTokens must be a non-negative integer, got ${max}`);
    }
    this.maxTokens = max;
    this.matcher = new StopMatcher(options.stop ?? []);
    this.isEog = options.isEndOfGeneration ?? (() => false);
  }

  get finishReason(): FinishReason | null {
    return this.finished;
  }

  /** The stop string that ended the generation, if one did. */
  get matchedStop(): string | undefined {
    return this.matched;
  }

  get tokenCount(): number {
    return this.generated;
  }

  /** True before the first token when maxTokens is 0. */
  get exhausted(): boolean {
    return this.generated >= this.maxTokens;
  }

  accept(id: number, piece: string): StopStep {
    if (this.finished !== null) return { text: "", finish: this.finished };
    this.generated++;
    if (this.isEog(id)) {
      this.finished = "eos";
      return { text: this.matcher.flush(), finish: "eos" };
    }
    const m = this.matcher.push(piece);
    if (m.stopped) {
      this.finished = "stop";
      this.matched = m.stop;
      return { text: m.text, finish: "stop" };
    }
    if (this.generated >= this.maxTokens) {
      this.finished = "length";
      return { text: m.text + this.matcher.flush(), finish: "length" };
    }
    return { text: m.text, finish: null };
  }

  /** Text still held when the caller ends the generation itself (abort, context full). */
  flush(): string {
    return this.matcher.flush();
  }
}
