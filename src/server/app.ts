// The OpenAI-compatible HTTP API (and Anthropic's /v1/messages) as an Elysia app, composed from a table of routes: each route is
// a plugin (src/server/routes/), every body a schema (schemas.ts). Requests become engine
// requests in engine-request.ts, run on the engine (in a worker) in choices.ts, and come back
// whole or as SSE (sinks.ts). The hooks every route shares (key, CORS, body limit, errors) are in
// http.ts.
import { Elysia } from "elysia";
import type { ChatTemplate } from "../chat/index.ts";
import type { ResolvedSpeculative } from "../speculative.ts";
import type { Tokenizer } from "../tokenizer/index.ts";
import type { RunContext, ServingEngine } from "./choices.ts";
import type { RequestContext } from "./engine-request.ts";
import { errorAnswer, guard, jsonBody } from "./http.ts";
import { LogprobFormat } from "./logprobs.ts";
import { ServerMetrics } from "./metrics.ts";
import { chatRoute } from "./routes/chat.ts";
import { completionsRoute } from "./routes/completions.ts";
import { type EmbeddingEngine, embeddingsRoute } from "./routes/embeddings.ts";
import { healthRoute } from "./routes/health.ts";
import { messagesRoute } from "./routes/messages.ts";
import { metricsRoute } from "./routes/metrics.ts";
import { modelsRoute } from "./routes/models.ts";
import { webPage } from "./web/route.ts";

export type { ServingEngine } from "./choices.ts";
export { DEFAULT_COMPLETION_TOKENS } from "./engine-request.ts";
export { requestPath } from "./http.ts";
export { MAX_CHOICES } from "./schemas.ts";

export interface AppOptions {
  engine: ServingEngine;
  tokenizer: Tokenizer;
  chatTemplate: ChatTemplate;
  /** The id /v1/models lists and responses carry. */
  modelId: string;
  /** Most tokens one request holds (prompt + completion). */
  contextTokens: number;
  /** Bearer key every route but /health and the chat page (/) requires when set. */
  apiKey?: string;
  /** Largest request body accepted, in bytes. */
  maxBodyBytes?: number;
  /** Seconds a client is told to wait when the queue is full. */
  retryAfterSeconds?: number;
  /**
   * Speculative decoding (prompt lookup) for requests that do not say: null or omitted = off. A
   * request's `speculative: true` turns it on with these settings (or the defaults).
   */
  speculative?: ResolvedSpeculative | null;
  /** Settings for requests that send `speculative: true` when `speculative` is off (default: resolveSpeculative(true)). */
  speculativeOptIn?: ResolvedSpeculative | null;
  /** The engine runs a draft model (requests may ask for `speculative: { draft: "model" }`). */
  draftModel?: boolean;
  /**
   * Origins whose browser pages may call the server (CORS); "*" for any. Omitted: no CORS
   * headers, so browsers keep pages of other origins out.
   */
  corsOrigins?: readonly string[];
  /** The engine's embeddings (POST /v1/embeddings); omitted: that route is not served. */
  embeddings?: EmbeddingEngine;
}

export const DEFAULT_MAX_BODY_BYTES = 1 << 20;

export function createApp(opts: AppOptions) {
  const { engine, modelId } = opts;
  const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const metrics = new ServerMetrics();
  const run: RunContext = {
    engine,
    metrics,
    logprobs: new LogprobFormat(opts.tokenizer),
    modelId,
    retryAfter: String(opts.retryAfterSeconds ?? 1),
  };
  const requests: RequestContext = {
    tokenizer: opts.tokenizer,
    chatTemplate: opts.chatTemplate,
    contextTokens: opts.contextTokens,
    capacity: engine.capacity,
    speculative: opts.speculative ?? null,
    speculativeOptIn: opts.speculativeOptIn ?? null,
    draftModel: opts.draftModel === true,
  };
  // Bun refuses bodies past its own limit with a bare 413 (no JSON) before any handler runs, so
  // its limit is out of reach: the guard refuses by Content-Length and readLimited stops reading a
  // chunked body at ours, each with an error a client can read (the fuzz sent 5x the limit). Elysia turns SO_REUSEPORT on by
  // default: a second server on a taken port then binds too and the kernel splits the
  // connections between the two; a taken port must be an error. `normalize: false` (the composing
  // app's setting rules every plugin's routes): a field no schema lists is a 400, not dropped.
  return new Elysia({
    serve: { maxRequestBodySize: Number.MAX_SAFE_INTEGER, reusePort: false },
    normalize: false,
  })
    .onRequest(guard({ apiKey: opts.apiKey, maxBodyBytes, corsOrigins: opts.corsOrigins ?? [] }))
    .onParse(jsonBody(maxBodyBytes, opts.contextTokens))
    .onError(errorAnswer)
    .use(webPage({ modelId, contextTokens: opts.contextTokens }))
    .use(chatRoute(run, requests))
    .use(completionsRoute(run, requests))
    .use(messagesRoute(run, requests))
    .use(
      opts.embeddings === undefined
        ? new Elysia()
        : embeddingsRoute(run, {
            engine: opts.embeddings,
            tokenizer: opts.tokenizer,
            contextTokens: opts.contextTokens,
          }),
    )
    .use(modelsRoute(modelId))
    .use(healthRoute(engine))
    .use(metricsRoute(engine, metrics));
}

export type HearthApp = ReturnType<typeof createApp>;
