// The library session's telemetry: the figures it adds up over a call's requests, and the
// Telemetry it reports from them.
import type { GenerationFigures } from "./engine/generation.ts";
import type { GenerateFinishReason, Telemetry } from "./session-options.ts";

/** The figures a session adds up between generations (prefills count towards the next one). */
export interface PhaseFigures extends Omit<GenerationFigures, "firstTokenMs"> {
  cachedTokens: number;
}

export function emptyPhase(): PhaseFigures {
  return {
    promptTokens: 0,
    cachedTokens: 0,
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
  };
}

export function addFigures(into: PhaseFigures, f: GenerationFigures | undefined): void {
  if (f === undefined) return;
  into.promptTokens += f.promptTokens;
  into.prefillMs += f.prefillMs;
  into.decodeTokens += f.decodeTokens;
  into.decodeMs += f.decodeMs;
  into.contextShifts += f.contextShifts;
  into.droppedTokens += f.droppedTokens;
  into.draftTokens += f.draftTokens;
  into.acceptedDraftTokens += f.acceptedDraftTokens;
  into.modelDraftTokens += f.modelDraftTokens;
  into.acceptedModelDraftTokens += f.acceptedModelDraftTokens;
  into.lookupDraftTokens += f.lookupDraftTokens;
  into.acceptedLookupDraftTokens += f.acceptedLookupDraftTokens;
  into.droppedDraftRows += f.droppedDraftRows;
}

export function diffFigures(after: PhaseFigures, before: PhaseFigures): PhaseFigures {
  const d = emptyPhase();
  for (const k of Object.keys(d) as (keyof PhaseFigures)[]) d[k] = after[k] - before[k];
  return d;
}

function rate(tokens: number, ms: number): number {
  return tokens > 0 && ms > 0 ? (tokens * 1000) / ms : 0;
}

export function buildTelemetry(
  started: number,
  ttft: number | null,
  generated: number,
  reason: GenerateFinishReason | null,
  f: PhaseFigures,
  contextUsedTokens: number,
): Telemetry {
  return {
    promptTokens: f.promptTokens,
    cachedTokens: f.cachedTokens,
    generatedTokens: generated,
    timeToFirstTokenMs: ttft,
    prefillMs: f.prefillMs,
    prefillTokensPerS: rate(f.promptTokens, f.prefillMs),
    decodeTokens: f.decodeTokens,
    decodeMs: f.decodeMs,
    // Tokens kept per second: drafts that were run and then rejected do not count.
    decodeTokensPerS: rate(f.decodeTokens - f.droppedDraftRows, f.decodeMs),
    totalMs: performance.now() - started,
    contextShifts: f.contextShifts,
    droppedTokens: f.droppedTokens,
    contextUsedTokens,
    draftTokens: f.draftTokens,
    acceptedDraftTokens: f.acceptedDraftTokens,
    drafts: {
      modelProposed: f.modelDraftTokens,
      modelAccepted: f.acceptedModelDraftTokens,
      lookupProposed: f.lookupDraftTokens,
      lookupAccepted: f.acceptedLookupDraftTokens,
    },
    finishReason: reason,
  };
}
