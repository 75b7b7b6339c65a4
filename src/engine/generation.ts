// One request's generation rules, shared by the server and the library: sampling (plain or
// JSON-constrained), stop strings and end-of-generation, the streaming decoder, speculative
// drafts (prompt lookup, a predicted output, a draft model's tokens), log-probabilities, and what
// a full context does.
import {
  type FinishReason,
  Sampler,
  type SamplerOptions,
  StopCondition,
  type TokenLogprob,
  tokenLogprob,
} from "../sampling/index.ts";
import { constrainedSample, JsonConstraint, type ReplyConstraint } from "../sampling/json.ts";
import { SchemaConstraint } from "../sampling/json-schema.ts";
import { combineDrafts, predictedDraft, proposeDraft, type ResolvedSpeculative } from "../speculative.ts";
import { ToolCallConstraint, type ToolCallSpec } from "../tools/constraint.ts";
import type { DraftCounts } from "./request.ts";

/** The detokenizer a generation needs (src/tokenizer's Tokenizer satisfies it). */
export interface EngineTokenizer {
  isEndOfGeneration(id: number): boolean;
  streamDecoder(): { push(id: number): string; flush(): string };
  /** A token's bytes (empty for control tokens unless `special`): JSON mode and tools need it. */
  tokenBytes?(id: number, special?: boolean): Uint8Array;
}

/**
 * What a full context does: drop tokens after the first `keepTokens` and go on (dropTokens 0:
 * half of what follows them), or, when null, end the generation with finish "context".
 */
export interface ContextShiftPolicy {
  keepTokens: number;
  dropTokens: number;
}

/** Why a generation ended. "context": the context is full and the request does not shift. */
export type EngineFinishReason = FinishReason | "abort" | "context";

/** What one generation is asked to do (the generation-rule part of an engine request). */
export interface GenerationSpec {
  sampling: SamplerOptions;
  /** Most tokens to generate; 0 runs the prompt and samples nothing (prefill, scoring). */
  maxTokens: number;
  stop: readonly string[];
  /** Keep generating through end-of-generation tokens. */
  ignoreEos?: boolean;
  speculative?: ResolvedSpeculative | null;
  /** A predicted output, as tokens: drafts follow it first (see predictedDraft). */
  predictedIds?: readonly number[];
  json?: boolean;
  jsonSchema?: unknown;
  /**
   * Tool calls (src/tools): a call's layout and its tool's parameter schema constrain the reply
   * from a trigger on (or from the first token when forced). Null or omitted: no tools.
   */
  tools?: ToolCallSpec | null;
  /** Log-probability of each generated token with this many alternatives (0..20); null: off. */
  logprobs?: number | null;
  /** Shift a full context instead of finishing with "context". Null or omitted: finish. */
  contextShift?: ContextShiftPolicy | null;
}

/** Figures of one request, as the library's telemetry reports them. */
export interface GenerationFigures {
  /** Rows run before the first token was sampled (the prompt, or tokens left pending). */
  promptTokens: number;
  prefillMs: number;
  /** Rows run after it (generated tokens and drafts). */
  decodeTokens: number;
  decodeMs: number;
  contextShifts: number;
  droppedTokens: number;
  draftTokens: number;
  acceptedDraftTokens: number;
  /**
   * Draft tokens proposed (run in a step, whether checked or not) and accepted, per source: the
   * draft model's, and lookup's (prompt lookup and predicted output).
   */
  modelDraftTokens: number;
  acceptedModelDraftTokens: number;
  lookupDraftTokens: number;
  acceptedLookupDraftTokens: number;
  /** Rows of drafts run and then rejected. */
  droppedDraftRows: number;
  /** ms from the request's start to its first sampled token; null before it. */
  firstTokenMs: number | null;
}

export function emptyFigures(): GenerationFigures {
  return {
    promptTokens: 0,
    prefillMs: 0,
    decodeTokens: 0,
    decodeMs: 0,
    contextShifts: 0,
    droppedTokens: 0,
    draftTokens: 0,
    acceptedDraftTokens: 0,
    modelDraftTokens: 0,
    acceptedModelDraftTokens: 0,
    lookupDraftTokens: 0,
    acceptedLookupDraftTokens: 0,
    droppedDraftRows: 0,
    firstTokenMs: null,
  };
}

/** A request's draft tokens proposed and accepted per source (the draft model, lookup). */
export function draftCounts(f: Omit<GenerationFigures, "firstTokenMs">): DraftCounts {
  return {
    modelProposed: f.modelDraftTokens,
    modelAccepted: f.acceptedModelDraftTokens,
    lookupProposed: f.lookupDraftTokens,
    lookupAccepted: f.acceptedLookupDraftTokens,
  };
}

/** What the logits rows of one step gave a generation. */
export interface StepOutcome {
  text: string;
  /** `text` per sampled token, in order (one more, without a token, when JSON found no token). */
  pieces: string[];
  /** Tokens sampled this step. */
  produced: number;
  /** Drafts accepted (their KV rows stand). */
  accepted: number;
  /** The draft model's tokens checked this step, and those accepted. */
  modelChecked: number;
  modelAccepted: number;
  logprobs: TokenLogprob[] | undefined;
  finish: EngineFinishReason | null;
}

/**
 * A token's bytes for a tool-call reply: a control token whose text is one of the format's
 * triggers (Mistral's [TOOL_CALLS], Llama's <|python_tag|>) counts as that text.
 */
function toolBytes(spec: ToolCallSpec, tokenizer: EngineTokenizer): (id: number) => Uint8Array {
  const bytes = tokenizer.tokenBytes?.bind(tokenizer);
  if (bytes === undefined) throw new RangeError("tool calls need the tokenizer's token bytes");
  const triggers = new Set(spec.format.triggers.map((t) => t.text));
  const cache = new Map<number, Uint8Array>();
  return (id) => {
    const plain = bytes(id);
    if (plain.length > 0) return plain;
    let special = cache.get(id);
    if (special === undefined) {
      special = bytes(id, true);
      if (!triggers.has(new TextDecoder().decode(special))) special = plain;
      cache.set(id, special);
    }
    return special;
  };
}

/** Builds a request's JSON or tool-call constraint, or null; throws RangeError for what cannot be combined. */
function replyConstraint(spec: GenerationSpec, tokenizer: EngineTokenizer): ReplyConstraint | null {
  const json = spec.json === true || spec.jsonSchema !== undefined;
  if (spec.tools) {
    if (json) throw new RangeError("tool calls cannot be combined with JSON mode");
    if (spec.speculative) throw new RangeError("tool calls take no speculative drafts");
    return new ToolCallConstraint(spec.tools, toolBytes(spec.tools, tokenizer));
  }
  if (!json) return null;
  const tokenBytes = tokenizer.tokenBytes?.bind(tokenizer);
  if (tokenBytes === undefined) throw new RangeError("JSON mode needs the tokenizer's token bytes");
  if (spec.speculative) throw new RangeError("JSON mode takes no speculative drafts");
  return spec.jsonSchema !== undefined
    ? new SchemaConstraint(spec.jsonSchema, tokenBytes)
    : new JsonConstraint(tokenBytes);
}

export class Generation {
  readonly spec: GenerationSpec;
  /** Generated token ids, in order (a context shift never removes them from here). */
  readonly out: number[] = [];
  readonly figures = emptyFigures();
  private readonly sampler: Sampler;
  private readonly stop: StopCondition;
  private readonly decoder: { push(id: number): string; flush(): string };
  private readonly json: ReplyConstraint | null;
  private readonly isEog: (id: number) => boolean;
  /** With tools: the text of a trigger control token (the decoder leaves control tokens out). */
  private readonly triggerText: ((id: number) => string) | null;
  private readonly startedMs = performance.now();

  constructor(spec: GenerationSpec, tokenizer: EngineTokenizer, vocabSize?: number) {
    this.spec = spec;
    this.json = replyConstraint(spec, tokenizer);
    this.sampler = new Sampler(spec.sampling, vocabSize);
    this.isEog = spec.ignoreEos ? () => false : (id) => tokenizer.isEndOfGeneration(id);
    this.stop = new StopCondition({
      maxTokens: spec.maxTokens,
      stop: spec.stop,
      isEndOfGeneration: this.isEog,
    });
    this.decoder = tokenizer.streamDecoder();
    this.triggerText = null;
    if (spec.tools) {
      const bytes = toolBytes(spec.tools, tokenizer);
      const plain = tokenizer.tokenBytes?.bind(tokenizer) as (id: number) => Uint8Array;
      this.triggerText = (id) => (plain(id).length > 0 ? "" : new TextDecoder().decode(bytes(id)));
    }
  }

  /** A token's text for the reply: the decoder's, or a trigger control token's (flushing the decoder first). */
  private decode(id: number): string {
    const trigger = this.triggerText?.(id) ?? "";
    return trigger === "" ? this.decoder.push(id) : this.decoder.flush() + trigger;
  }

  /** True once a token was sampled. */
  get sampling(): boolean {
    return this.out.length > 0;
  }

  /** Adds a step's rows of `rows` tokens (run in `ms`) to the figures of the phase it belongs to. */
  countRows(rows: number, ms: number): void {
    if (this.sampling) {
      this.figures.decodeTokens += rows;
      this.figures.decodeMs += ms;
    } else {
      this.figures.promptTokens += rows;
      this.figures.prefillMs += ms;
    }
  }

  /** Most tokens a draft may hold now: `room`, and never past the token budget. */
  draftLimit(room: number): number {
    return Math.max(0, Math.min(room, this.spec.maxTokens - this.out.length - 1));
  }

  /**
   * Draft tokens to verify after the pending token at the end of `tokens`: with `lookup`, the
   * predicted output first, then prompt lookup; combined with the draft model's `model` tokens
   * (combineDrafts). At most `room` tokens and never past the token budget; `modelTokens`: how
   * many leading ones are the draft model's.
   */
  draft(
    tokens: readonly number[],
    room: number,
    lookup = true,
    model: readonly number[] = [],
  ): { tokens: number[]; modelTokens: number } {
    const spec = this.spec.speculative;
    const generated = this.out.length;
    const limit = this.draftLimit(room);
    if (!spec || limit <= 0) return { tokens: [], modelTokens: 0 };
    let found: number[] = [];
    if (lookup) {
      const predicted = this.spec.predictedIds ?? [];
      found = predicted.length > 0 ? predictedDraft(tokens, generated, predicted, spec, limit) : [];
      if (found.length === 0) found = proposeDraft(tokens, spec, limit);
    }
    return combineDrafts(found, model, limit);
  }

  /**
   * Samples from logits rows: `row(0)` is the distribution after the pending token, `row(r)`
   * after draft r-1. A draft equal to the token sampled before it is already in the KV, so
   * sampling goes on from its row; the first draft that differs ends the step. Each token is
   * appended to `tokens`. `contextTokens`: the context the request may fill.
   */
  consume(
    row: (r: number) => Float32Array,
    draft: readonly number[],
    tokens: number[],
    contextTokens: number,
    modelTokens = 0,
  ): StepOutcome {
    const top = this.spec.logprobs ?? null;
    const out: StepOutcome = {
      text: "",
      pieces: [],
      produced: 0,
      accepted: 0,
      modelChecked: 0,
      modelAccepted: 0,
      logprobs: top === null ? undefined : [],
      finish: null,
    };
    for (let r = 0; ; r++) {
      const logits = row(r);
      const json = this.json;
      const id =
        json === null
          ? this.sampler.sample(logits, tokens)
          : constrainedSample(logits, json, (masked) => this.sampler.sample(masked, tokens));
      if (id < 0) {
        // No token continues the JSON reply (its whitespace or nesting limit): it ends here.
        out.finish = "stop";
        out.pieces.push(this.stop.flush() + this.decoder.flush());
        break;
      }
      json?.accept(id);
      if (this.figures.firstTokenMs === null) this.figures.firstTokenMs = performance.now() - this.startedMs;
      // The sampler works on a copy: the row is still the model's distribution.
      if (out.logprobs !== undefined) out.logprobs.push(tokenLogprob(logits, id, top as number));
      tokens.push(id);
      this.out.push(id);
      out.produced++;
      // The end-of-generation token is not text: it never reaches the decoder.
      const step = this.stop.accept(id, this.isEog(id) ? "" : this.decode(id));
      let piece = step.text;
      out.finish = step.finish;
      // The last token may end in a partial UTF-8 character that only a flush gives out.
      if (out.finish === "eos" || out.finish === "length") piece += this.decoder.flush();
      // The end-of-generation token is not part of the reply: its score is not listed either.
      if (out.finish === "eos") out.logprobs?.pop();
      if (out.finish === null && json?.complete) {
        // The object is closed: the reply ends with it, as if a stop string followed.
        out.finish = "stop";
        piece += this.stop.flush() + this.decoder.flush();
      }
      if (out.finish === null && !this.spec.contextShift && tokens.length >= contextTokens) {
        out.finish = "context";
        piece += this.stop.flush() + this.decoder.flush();
      }
      out.pieces.push(piece);
      if (out.finish !== null || r >= draft.length) break;
      this.figures.draftTokens++; // draft r is checked against the token sampled before it
      if (r < modelTokens) out.modelChecked++;
      if (draft[r] !== id) break;
      this.figures.acceptedDraftTokens++;
      if (r < modelTokens) out.modelAccepted++;
      out.accepted++;
    }
    out.text = out.pieces.join("");
    const fromModel = Math.min(modelTokens, draft.length);
    this.figures.modelDraftTokens += fromModel;
    this.figures.acceptedModelDraftTokens += out.modelAccepted;
    this.figures.lookupDraftTokens += draft.length - fromModel;
    this.figures.acceptedLookupDraftTokens += out.accepted - out.modelAccepted;
    this.figures.droppedDraftRows += draft.length - out.accepted;
    return out;
  }

  /** The stop string that ended the generation, if one did. */
  get matchedStop(): string | undefined {
    return this.stop.matchedStop;
  }

  /** Text held back for a possible stop string, when the caller ends the generation (abort). */
  flushHeld(): string {
    return this.stop.flush();
  }
}

/**
 * Rows of a full context to drop so generation can go on (keep the first tokens, drop the
 * oldest after them): 0 when nothing can be dropped. `used`: tokens in the KV.
 */
export function shiftDrop(policy: ContextShiftPolicy, used: number): { keep: number; drop: number } {
  const keep = Math.min(policy.keepTokens, used);
  const drop = Math.min(
    policy.dropTokens > 0 ? policy.dropTokens : Math.floor((used - keep) / 2),
    used - keep,
  );
  return { keep, drop: Math.max(0, drop) };
}
