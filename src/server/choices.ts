// Runs a request's choices on the engine together: one state machine per request turns the
// engine's events into text pieces (the echoed prompt first), finish reasons and usage, and feeds
// them to a sink: one JSON body or SSE chunks (sinks.ts, anthropic.ts). runToBody and runToStream
// wrap a run as one Response (the abort wiring, the refused submit, the SSE headers) for both APIs.
import type { EngineEvent, EngineFinishReason, EngineRequest, SchedulerStats } from "../engine/request.ts";
import type { Choice } from "./engine-request.ts";
import { apiError } from "./errors.ts";
import type { Endpoint, LogprobFormat, Scored } from "./logprobs.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { UsageBody } from "./schemas.ts";

/** What the server needs from the engine (src/engine's Engine satisfies it). */
export interface ServingEngine {
  readonly stats: SchedulerStats;
  readonly inFlight: number;
  readonly capacity: number;
  /** False once the engine is shut down or its worker died (requests get 503). */
  readonly available: boolean;
  submit(req: Omit<EngineRequest, "id">, onEvent: (ev: EngineEvent) => void): string;
  cancel(id: string): void;
}

/** What running a request needs from the server. */
export interface RunContext {
  engine: ServingEngine;
  metrics: ServerMetrics;
  logprobs: LogprobFormat;
  /** The id responses carry. */
  modelId: string;
  /** Seconds a client is told to wait when the server is busy. */
  retryAfter: string;
}

export type FinishReason = "stop" | "length";

/** What a sink hears about a request's choices, in order; a sink that throws cancels the request. */
export interface ChoiceSink {
  /** A piece of choice i's text (the first one of each choice carries its echoed prompt) and its tokens' scores. */
  piece(i: number, text: string, first: boolean, scores: Scored[]): void;
  /**
   * Choice i ended; `scores`: tokens scored since its last piece whose text was kept; `done`: the
   * engine's own account (end-of-generation token or stop string, and which one).
   */
  finish(i: number, reason: FinishReason, scores: Scored[], done: Done): void;
  /** Every choice ended. */
  end(usage: UsageBody): void;
  /** The engine failed a choice (the others are cancelled); `busy`: its queue was full. */
  fail(message: string, busy: boolean): void;
  /** The request was cancelled (its client went away). */
  cancelled(): void;
}

/** The envelope every body and chunk of a response carries. */
export interface ResponseHead {
  endpoint: Endpoint;
  id: string;
  created: number;
  model: string;
  choices: Choice[];
}

function finishReason(f: EngineFinishReason): FinishReason {
  return f === "length" || f === "context" ? "length" : "stop";
}

export type Done = Extract<EngineEvent, { type: "done" }>;

/**
 * Starts every choice on the engine and feeds their events to `sink`; returns a function that
 * cancels them all. Throws what the engine's submit throws (a full queue, an engine that is not
 * running), after cancelling the choices it had already taken.
 */
export function runChoices(ctx: RunContext, head: ResponseHead, sink: ChoiceSink): () => void {
  const { engine, metrics } = ctx;
  const { choices } = head;
  const metricsEndpoint = head.endpoint === "chat" ? "chat_completions" : "completions";
  const started = performance.now();
  const lastToken = choices.map(() => 0);
  const observe = (i: number, ev: EngineEvent) => {
    if (ev.type === "text" || (ev.type === "done" && ev.completionTokens > 0 && lastToken[i] === 0)) {
      const now = performance.now();
      if (lastToken[i] === 0) metrics.ttft.observe((now - started) / 1000);
      else metrics.itl.observe((now - (lastToken[i] as number)) / 1000);
      lastToken[i] = now;
      // Tokens that came in the same step (accepted speculative drafts) arrive together.
      for (let k = 1; k < (ev.type === "text" ? ev.tokens : 1); k++) metrics.itl.observe(0);
    }
    if (ev.type === "done") {
      metrics.countRequest(metricsEndpoint, ev.finish);
      metrics.promptTokens += ev.promptTokens;
      metrics.cachedPromptTokens += ev.cachedTokens;
      metrics.completionTokens += ev.completionTokens;
    } else if (ev.type === "error") metrics.countRequest(metricsEndpoint, "error");
  };

  // Per choice: its scores (tokens whose text is held back, a possible stop string or a partial
  // character, keep theirs until a piece carries text), the text sent, whether its first piece
  // (with the echoed prompt) is still to come, and its end.
  const state = choices.map((c) => ({
    scores: ctx.logprobs.scores(c.echo),
    sentChars: 0,
    first: true,
    done: null as Done | null,
  }));
  const reqIds = choices.map(() => "");
  let finished = false;
  const cancelAll = (except = -1) => {
    for (const [i, r] of reqIds.entries()) if (i !== except && r !== "") engine.cancel(r);
  };
  const emit = (i: number, text: string) => {
    const st = state[i] as (typeof state)[number];
    const echo = st.first ? (choices[i]?.echo?.text ?? "") : "";
    const first = st.first;
    st.first = false;
    st.sentChars += echo.length + text.length;
    sink.piece(i, echo + text, first, st.scores.take());
  };
  const listen = (i: number, ev: EngineEvent) => {
    observe(i, ev);
    if (finished) return;
    const st = state[i] as (typeof state)[number];
    st.scores.record(ev);
    try {
      if (ev.type === "text") {
        if (ev.text !== "" || st.first) emit(i, ev.text);
      } else if (ev.type === "error") {
        finished = true;
        cancelAll(i);
        sink.fail(ev.message, ev.message.startsWith("queue_full"));
      } else if (ev.finish === "abort") {
        // Cancelled (the client went away): nothing more for any choice.
        finished = true;
        cancelAll(i);
        sink.cancelled();
      } else {
        st.done = ev;
        // Tokens whose text a stop string cut away are not listed.
        const echo = st.first ? (choices[i]?.echo?.text ?? "") : "";
        st.scores.keep(st.sentChars + echo.length + ev.text.length);
        if (ev.text !== "" || st.first) emit(i, ev.text);
        sink.finish(i, finishReason(ev.finish), st.scores.take(), ev);
        if (state.some((x) => x.done === null)) return;
        finished = true;
        sink.end(
          usageOf(
            choices,
            state.map((x) => x.done as Done),
          ),
        );
      }
    } catch {
      // The sink could not write (the client went away): stop generating for it.
      finished = true;
      cancelAll();
    }
  };
  try {
    for (const [i, c] of choices.entries()) reqIds[i] = engine.submit(c.req, (ev) => listen(i, ev));
  } catch (err) {
    finished = true;
    cancelAll();
    throw err;
  }
  return () => {
    if (finished) return;
    finished = true;
    cancelAll();
  };
}

/**
 * OpenAI's usage: each prompt counted once (its first choice's figures), every choice's tokens;
 * prompt tokens whose KV came from the prefix cache are `cached_tokens`.
 */
function usageOf(choices: Choice[], done: Done[]): UsageBody {
  let prompt = 0;
  let cached = 0;
  let completion = 0;
  let accepted = 0;
  let drafted = 0;
  const counted = new Set<number>();
  for (const [i, ev] of done.entries()) {
    completion += ev.completionTokens;
    accepted += ev.acceptedDraftTokens;
    drafted += ev.draftTokens;
    const p = (choices[i] as Choice).prompt;
    if (counted.has(p)) continue;
    counted.add(p);
    prompt += ev.promptTokens;
    cached += ev.cachedTokens;
  }
  const predicting = choices.some((c) => (c.req.predictedIds?.length ?? 0) > 0);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: cached },
    ...(predicting
      ? {
          completion_tokens_details: {
            accepted_prediction_tokens: accepted,
            rejected_prediction_tokens: drafted - accepted,
          },
        }
      : {}),
  };
}

/** The answer when the engine refuses a request: 429 when busy, 503 when it is not running. */
export function submitError(ctx: RunContext, err: unknown): Response {
  const e = err as Error;
  const retry = { "retry-after": ctx.retryAfter };
  if (e.name === "EngineUnavailableError") return apiError(503, e.message, "server_error", null, retry);
  return apiError(429, e.message, "rate_limit_error", null, retry);
}

/**
 * Runs the choices into the sink `makeSink(answer)` builds and resolves with the one Response the
 * sink answers (the whole body, or an error); a submit the engine refuses answers `refused(err)`.
 * The client going away cancels the run.
 */
export function runToBody(
  ctx: RunContext,
  head: ResponseHead,
  request: Request,
  makeSink: (answer: (res: Response) => void) => ChoiceSink,
  refused: (err: unknown) => Response,
): Promise<Response> {
  return new Promise<Response>((resolve) => {
    let cancel = () => {};
    const onAbort = () => cancel();
    const answer = (res: Response) => {
      request.signal.removeEventListener("abort", onAbort);
      resolve(res);
    };
    try {
      cancel = runChoices(ctx, head, makeSink(answer));
    } catch (err) {
      answer(refused(err));
      return;
    }
    request.signal.addEventListener("abort", onAbort, { once: true });
  });
}

const SSE_HEADERS = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache",
  connection: "keep-alive",
};

/**
 * An SSE response whose events the sink `makeSink(controller)` writes as the choices run (it may
 * write the stream's opening events before it returns); a submit the engine refuses writes
 * `refused(controller, err)` and ends the stream. The client going away cancels the run.
 */
export function runToStream(
  ctx: RunContext,
  head: ResponseHead,
  request: Request,
  makeSink: (controller: ReadableStreamDefaultController<Uint8Array>) => ChoiceSink,
  refused: (controller: ReadableStreamDefaultController<Uint8Array>, err: unknown) => void,
): Response {
  let cancel = () => {};
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      const sink = makeSink(controller);
      try {
        cancel = runChoices(ctx, head, sink);
      } catch (err) {
        refused(controller, err);
        controller.close();
        return;
      }
      request.signal.addEventListener("abort", () => cancel(), { once: true });
    },
    cancel() {
      cancel();
    },
  });
  return new Response(stream, { headers: SSE_HEADERS });
}
