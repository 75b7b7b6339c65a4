// The library session's telemetry: the figures it adds up over a call's requests, and the
// Telemetry it reports from them.
import { draftCounts, emptyFigures, type GenerationFigures } from "./engine/generation.ts";
import type { GenerateFinishReason, Telemetry } from "./session-options.ts";

/** The figures a session adds up between generations (prefills count towards the next one). */
export interface PhaseFigures extends Omit<GenerationFigures, "firstTokenMs"> {
  cachedTokens: number;
}

export function emptyPhase(): PhaseFigures {
  const { firstTokenMs: _, ...f } = emptyFigures();
  return { ...f, cachedTokens: 0 };
}

/** Adds a request's figures (all but its first-token time) into the phase's. */
export function addFigures(into: PhaseFigures, f: GenerationFigures | undefined): void {
  if (f === undefined) return;
  for (const k of Object.keys(f) as (keyof GenerationFigures)[]) if (k !== "firstTokenMs") into[k] += f[k];
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
    drafts: draftCounts(f),
    finishReason: reason,
  };
}
