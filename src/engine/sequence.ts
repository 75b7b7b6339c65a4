// One request as the scheduler holds it: its KV sequence (its own, or one its caller owns), its
// Generation, and where its rows sit in the step being packed.
import type { NativeModel } from "../native/model-api.ts";
import type { TokenLogprob } from "../sampling/index.ts";
import { type EngineTokenizer, Generation, shiftDrop } from "./generation.ts";
import type { EngineRequest, OwnedSequence } from "./request.ts";

/** A request the caller runs on a KV sequence it owns (a library session). */
export interface OwnedRun {
  kv: OwnedSequence;
  /** Built by the caller (it validated the options); the scheduler samples through it. */
  generation: Generation;
  /** The context this sequence may fill (at most the scheduler's). */
  contextTokens: number;
  /** After each text event the sequence waits for resume(): its client takes tokens at its pace. */
  paced: boolean;
}

export interface Sequence {
  req: EngineRequest;
  /** Arrival order; the newest running sequence is preempted first. */
  order: number;
  /** Its KV sequence: seqId -1 while it holds none; tokens = prompt then every generated token. */
  kv: OwnedSequence;
  /** The caller owns the KV sequence: never freed, published or preempted here. */
  owned: boolean;
  contextTokens: number;
  /** Prompt tokens reused from the prefix cache at the first admission; -1 before it. */
  cachedTokens: number;
  gen: Generation;
  /** Batch row of this step whose logits belong to this sequence, or -1. */
  logitsRow: number;
  /** Rows of this step's batch that carry this sequence's tokens. */
  taking: number;
  /** Draft tokens riding in this step's batch after the sequence's next token (logits rows follow logitsRow). */
  draft: number[];
  /** How many leading tokens of `draft` the draft model proposed. */
  draftModelTokens: number;
  /** The draft model's proposal for this step (before it is combined and fitted into the batch). */
  modelDraft: number[];
  /** With `promptLogprobs`: entry i is prompt token i+1's; filled as the prompt is computed. */
  promptLogprobs: TokenLogprob[] | null;
  /** This step's logits rows that score prompt tokens: [first row, first prompt position). */
  promptRows: { row: number; pos: number; count: number } | null;
  /** Whether `promptLogprobs` went out in an event. */
  promptLogprobsSent: boolean;
  /** Prompt tokens, in whole pages, whose KV is in the prefix cache through this sequence. */
  publishedTokens: number;
  /** Paced: an event went out that its client has not taken yet (see resume). */
  held: boolean;
  paced: boolean;
}

/** A waiting sequence for `req` (on the caller's KV sequence with `owned`). */
export function newSequence(
  req: EngineRequest,
  order: number,
  tokenizer: EngineTokenizer,
  contextTokens: number,
  owned: OwnedRun | undefined,
): Sequence {
  return {
    req,
    order,
    kv: owned?.kv ?? { seqId: -1, tokens: [...req.promptIds], computed: 0, lastLogits: null },
    owned: owned !== undefined,
    contextTokens: owned?.contextTokens ?? contextTokens,
    cachedTokens: -1,
    gen: owned?.generation ?? new Generation(req, tokenizer),
    logitsRow: -1,
    taking: 0,
    draft: [],
    draftModelTokens: 0,
    modelDraft: [],
    promptLogprobs: req.promptLogprobs && owned === undefined ? [] : null,
    promptRows: null,
    promptLogprobsSent: false,
    publishedTokens: 0,
    held: false,
    paced: owned?.paced ?? false,
  };
}

/**
 * Context shift of a sequence whose request asks for it: keep its first tokens, drop the
 * oldest after them, re-rope the rest. False when it does not shift or nothing can be dropped.
 */
export function shiftSequence(model: NativeModel, s: Sequence): boolean {
  const policy = s.gen.spec.contextShift;
  if (!policy || s.kv.seqId < 0) return false;
  const { keep, drop } = shiftDrop(policy, s.kv.computed);
  if (drop <= 0) return false;
  model.seqShift(s.kv.seqId, keep, drop);
  s.kv.tokens.splice(keep, drop);
  s.kv.computed -= drop;
  s.kv.lastLogits = null;
  s.gen.figures.contextShifts++;
  s.gen.figures.droppedTokens += drop;
  return true;
}
