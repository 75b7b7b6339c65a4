// What the engine takes and gives: a request (its prompt and generation rules), the events a step
// produces for it, and the scheduler's figures. Plain data: it crosses to the engine worker.
import type { TokenLogprob } from "../sampling/index.ts";
import type { EngineFinishReason, GenerationFigures, GenerationSpec } from "./generation.ts";

export type { EngineFinishReason } from "./generation.ts";

export interface EngineRequest extends GenerationSpec {
  id: string;
  promptIds: readonly number[];
  /**
   * Most tokens to generate (the engine also stops at the context limit). 0 generates nothing:
   * it scores the prompt (`promptLogprobs`), or, for a sequence the caller owns, prefills it.
   */
  maxTokens: number;
  /**
   * Also report the log-probability of every prompt token after the first (for `echo` with
   * logprobs), with `logprobs` alternatives each: every prompt row then asks for logits, and the
   * prompt is computed in full (no prefix cache). `maxTokens` may then be 0: score, generate
   * nothing.
   */
  promptLogprobs?: boolean;
}

/** What a step produced for one request. */
export type EngineEvent =
  | {
      type: "text";
      id: string;
      text: string;
      tokens: number;
      /** For a caller-owned sequence: `text` per token (see StepOutcome.pieces). */
      pieces?: string[];
      logprobs?: TokenLogprob[];
      /** With `promptLogprobs`: prompt tokens 1.. (once, in the event of the step that ends the prompt). */
      promptLogprobs?: TokenLogprob[];
    }
  | {
      type: "done";
      id: string;
      text: string;
      pieces?: string[];
      /** The step's tokens, with `logprobs` requested (those generated since the last event). */
      logprobs?: TokenLogprob[];
      promptLogprobs?: TokenLogprob[];
      finish: EngineFinishReason;
      /** With finish "stop": the stop string that matched (absent when a JSON reply closed). */
      stopString?: string;
      promptTokens: number;
      /** Prompt tokens whose KV came from the prefix cache instead of being computed. */
      cachedTokens: number;
      completionTokens: number;
      /** Speculative decoding: this request's draft tokens verified, and those accepted. */
      draftTokens: number;
      acceptedDraftTokens: number;
      /** This request's draft tokens proposed and accepted, per source. */
      drafts?: DraftCounts;
      /** The request's figures (rows and time per phase, shifts). */
      figures?: GenerationFigures;
    }
  | {
      type: "error";
      id: string;
      message: string;
      /**
       * kv_full: the KV pool had no page for the request and nothing could be preempted or
       * shifted; context_full: its context is full and nothing can be dropped.
       */
      code?: "kv_full" | "context_full";
    };

/** An embeddings job's answer (its only event; a failed job gets an `error` event instead). */
export interface EmbeddingsEvent {
  type: "embeddings";
  id: string;
  /** inputs x dims floats, input i's unit vector at [i * dims, (i + 1) * dims). */
  vectors: Float32Array;
  dims: number;
  promptTokens: number;
}

/** What a step produces: generation requests' events and embeddings jobs' answers. */
export type StepEvent = EngineEvent | EmbeddingsEvent;

export interface SchedulerOptions {
  /** Most sequences decoding at once (also bounded by the native model's maxSequences). */
  maxRunning: number;
  /** Most requests waiting for a slot; submit refuses beyond it. */
  maxQueued: number;
  /** Most rows in one decode call (≤ the native maxBatchTokens). */
  stepTokens: number;
  /** Most tokens one sequence may hold (prompt + output). */
  contextTokens: number;
  /** KV sequences of the native model set aside for embeddings beyond maxRunning (default 0: none). */
  embedSequences?: number;
  /**
   * Reuse and publish KV pages through the model's prefix cache (its tier must be open).
   * Ignored for a model without KV tiers.
   */
  prefixCache?: boolean;
  /** Called with a conversation's tokens each time the prefix cache publishes it (a shared tier). */
  onPublished?: (tokens: Int32Array) => void;
  /** Called when a request leaves the queue for the running set (its cached prefix attached). */
  onAdmitted?: (id: string) => void;
}

export interface SchedulerStats {
  running: number;
  queued: number;
  preemptions: number;
  steps: number;
  kvPagesTotal: number;
  kvPagesFree: number;
  kvPageBytes: number;
  /** Prompt tokens of admitted requests served from the prefix cache (their first admission). */
  prefixCachedTokens: number;
  /** Pages moved to the SSD tier because their conversation went idle. */
  idleSpilledPages: number;
  /** The KV tier shared through Redis (src/kv/redis-tier.ts); absent when there is none. */
  kvRedis?: import("../kv/redis-tier.ts").RedisTierStats | null;
  /** Counters of the prefix cache and its tiers; null when the prefix cache is off. */
  kvTier: import("../native/model-api.ts").KvTierStats | null;
  /** Speculative decoding: draft tokens verified, and how many of them matched the sampled token. */
  draftTokens: number;
  acceptedDraftTokens: number;
  /** Draft tokens proposed (run in a step) and accepted, per source. */
  drafts: DraftCounts;
  /** The draft model's passes and rows; null without a draft model. */
  draftModel: { passes: number; rows: number; sequences: number } | null;
  /** The logits rows the decode writes (grows to the largest step's wanted rows x vocabulary). */
  logitsBufferBytes: number;
}

/** Draft tokens proposed and accepted, per source: the draft model, and lookup (prompt lookup, predicted output). */
export interface DraftCounts {
  modelProposed: number;
  modelAccepted: number;
  lookupProposed: number;
  lookupAccepted: number;
}

/**
 * A KV sequence its caller owns across requests (a library session): its token history, how
 * many of them the KV holds, and, after a prefill, the logits of its last token. The scheduler
 * appends to it, shifts it and never frees it.
 */
export interface OwnedSequence {
  seqId: number;
  tokens: number[];
  computed: number;
  /** Logits of tokens[computed - 1] when computed === tokens.length; null when unknown. */
  lastLogits: Float32Array | null;
}
