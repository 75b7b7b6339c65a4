// The two sinks of runChoices (choices.ts): one JSON body with every choice, or an SSE stream of
// chunks as the text comes (`data: {...}` per chunk, then `data: [DONE]`); respond() picks one.

import { CallScanner, type ParsedCall, parseToolCalls, type ToolEvent } from "../tools/index.ts";
import {
  type ChoiceSink,
  type FinishReason,
  type ResponseHead,
  type RunContext,
  runToBody,
  runToStream,
  submitError,
} from "./choices.ts";
import type { Choice } from "./engine-request.ts";
import { apiError, type ErrorShape } from "./errors.ts";
import { type Endpoint, orderedJson, type Scored } from "./logprobs.ts";
import type {
  ChatCompletionChunkType,
  ChatCompletionType,
  TextCompletionType,
  UsageBody,
} from "./schemas.ts";

/** JSON text of a body: the legacy logprobs carry key-ordered objects, everything else is plain. */
function writer(head: ResponseHead): (v: unknown) => string {
  const withLogprobs = head.choices[0]?.req.logprobs != null;
  return head.endpoint === "completion" && withLogprobs ? orderedJson : (v) => JSON.stringify(v);
}

/** A parsed call as a message's `tool_calls` entry. */
function toolCallBody(c: ParsedCall) {
  return { id: c.id, type: "function" as const, function: { name: c.name, arguments: c.arguments } };
}

/** "tool_calls" when a reply that ended by itself made calls. */
function toolFinish(reason: FinishReason, calls: readonly ParsedCall[]): FinishReason | "tool_calls" {
  return reason === "stop" && calls.length > 0 ? "tool_calls" : reason;
}

/**
 * A streamed tool event as a chat chunk's delta. A choice's first delta carries the role, and, as
 * OpenAI sends it, `content: null` when the reply opens with a call.
 */
function toolDelta(ev: ToolEvent, first: boolean): ChatCompletionChunkType["choices"][number]["delta"] {
  const role = first ? { role: "assistant" as const } : {};
  if (ev.type === "content") return { ...role, content: ev.text };
  if (ev.type === "call")
    return {
      ...role,
      ...(first ? { content: null } : {}),
      tool_calls: [
        { index: ev.index, id: ev.id, type: "function", function: { name: ev.name, arguments: "" } },
      ],
    };
  return { ...role, tool_calls: [{ index: ev.index, function: { arguments: ev.text } }] };
}

/** The whole answer once every choice has ended. */
export function jsonResponse(ctx: RunContext, head: ResponseHead, request: Request): Promise<Response> {
  const toJson = writer(head);
  const texts = head.choices.map(() => "");
  const scores: Scored[][] = head.choices.map(() => []);
  const reasons: Array<FinishReason | null> = head.choices.map(() => null);
  return runToBody(
    ctx,
    head,
    request,
    (answer): ChoiceSink => ({
      piece(i, text, _first, lps) {
        texts[i] += text;
        (scores[i] as Scored[]).push(...lps);
      },
      finish(i, reason, lps) {
        reasons[i] = reason;
        (scores[i] as Scored[]).push(...lps);
      },
      end(usage) {
        const { id, created, model } = head;
        const wants = (k: number) => head.choices[k]?.req.logprobs != null;
        const whole: ChatCompletionType | TextCompletionType =
          head.endpoint === "chat"
            ? {
                ...{ id, object: "chat.completion", created, model },
                choices: texts.map((text, k) => {
                  const format = head.choices[k]?.tools ?? null;
                  const { content, calls } =
                    format === null ? { content: text, calls: [] } : parseToolCalls(format, text);
                  return {
                    index: k,
                    message:
                      calls.length === 0
                        ? { role: "assistant" as const, content }
                        : {
                            role: "assistant" as const,
                            content: content.trim() === "" ? null : content,
                            tool_calls: calls.map(toolCallBody),
                          },
                    logprobs: wants(k) ? ctx.logprobs.chat(scores[k] as Scored[]) : null,
                    finish_reason: toolFinish(reasons[k] as FinishReason, calls),
                  };
                }),
                usage,
              }
            : {
                ...{ id, object: "text_completion", created, model },
                choices: texts.map((text, k) => ({
                  index: k,
                  text,
                  logprobs: wants(k) ? ctx.logprobs.legacy(scores[k] as Scored[]) : null,
                  finish_reason: reasons[k] as FinishReason,
                })),
                usage,
              };
        answer(new Response(toJson(whole), { headers: { "content-type": "application/json" } }));
      },
      fail(message, busy) {
        answer(
          apiError(busy ? 429 : 500, message, busy ? "rate_limit_error" : "server_error", null, {
            "retry-after": ctx.retryAfter,
          }),
        );
      },
      cancelled() {
        // The client is gone: nobody reads this.
        answer(apiError(500, "the request was cancelled", "server_error"));
      },
    }),
    (err) => submitError(ctx, err),
  );
}

/**
 * The SSE event of a plain text piece (no logprobs, not a choice's first or last, no tool delta),
 * the hot path of a stream: the envelope's JSON is written once per response and only the text is
 * stringified per piece. The same text, byte for byte, as JSON.stringify of the chunk object
 * (test/sse-chunk.test.ts).
 */
export function plainPieceEvent(
  head: ResponseHead,
  includeUsage: boolean,
): (i: number, text: string) => string {
  const object = head.endpoint === "chat" ? "chat.completion.chunk" : "text_completion";
  const open = `data: {"id":${JSON.stringify(head.id)},"object":"${object}","created":${JSON.stringify(head.created)},"model":${JSON.stringify(head.model)},"choices":[{"index":`;
  const field = head.endpoint === "chat" ? `,"delta":{"content":` : `,"text":`;
  const close = `${head.endpoint === "chat" ? "}" : ""},"logprobs":null,"finish_reason":null}]${includeUsage ? `,"usage":null` : ""}}\n\n`;
  return (i, text) => `${open}${i}${field}${JSON.stringify(text)}${close}`;
}

/** An SSE stream: a chunk per text piece, a finish chunk per choice, usage if asked, [DONE]. */
export function sseResponse(
  ctx: RunContext,
  head: ResponseHead,
  includeUsage: boolean,
  request: Request,
): Response {
  const toJson = writer(head);
  const withLogprobs = head.choices[0]?.req.logprobs != null;
  const enc = new TextEncoder();
  const { id, created, model } = head;
  const plain = withLogprobs ? null : plainPieceEvent(head, includeUsage);
  /** One chunk of every choice part given; `usage` only on the last one, null before it when asked for. */
  const chunk = (
    i: number | null,
    text: string,
    first: boolean,
    lps: Scored[],
    fr: FinishReason | "tool_calls" | null,
    usage?: UsageBody,
    delta?: ChatCompletionChunkType["choices"][number]["delta"],
  ) => {
    const extra = usage !== undefined ? { usage } : includeUsage ? { usage: null } : {};
    const scored = withLogprobs && lps.length > 0;
    const body: ChatCompletionChunkType | TextCompletionType =
      head.endpoint === "chat"
        ? {
            ...{ id, object: "chat.completion.chunk", created, model },
            choices:
              i === null
                ? []
                : [
                    {
                      index: i,
                      delta:
                        delta ??
                        (first ? { role: "assistant", content: text } : fr === null ? { content: text } : {}),
                      logprobs: scored ? ctx.logprobs.chat(lps) : null,
                      finish_reason: fr,
                    },
                  ],
            ...extra,
          }
        : {
            ...{ id, object: "text_completion", created, model },
            choices:
              i === null
                ? []
                : [{ index: i, text, logprobs: scored ? ctx.logprobs.legacy(lps) : null, finish_reason: fr }],
            ...extra,
          };
    return enc.encode(`data: ${toJson(body)}\n\n`);
  };
  return runToStream(
    ctx,
    head,
    request,
    (controller): ChoiceSink => {
      // Choices that may call tools: their text goes through a scanner (content and call deltas).
      const scanners = head.choices.map((c) => (c.tools ? new CallScanner(c.tools) : null));
      // Whether a tool choice's first delta (with the role) is still to go: it waits for the
      // scanner's first event, so that a reply opening with a call says `content: null`.
      const roleDue = head.choices.map(() => true);
      const toolChunks = (i: number, events: ToolEvent[], lps: Scored[]) => {
        let scored = lps;
        for (const ev of events) {
          controller.enqueue(
            chunk(i, "", false, scored, null, undefined, toolDelta(ev, roleDue[i] === true)),
          );
          roleDue[i] = false;
          scored = [];
        }
        if (scored.length === 0) return;
        controller.enqueue(
          chunk(i, "", false, scored, null, undefined, roleDue[i] ? { role: "assistant" } : {}),
        );
        roleDue[i] = false;
      };
      return {
        piece(i, text, first, lps) {
          const scanner = scanners[i];
          if (!scanner) {
            controller.enqueue(
              plain !== null && !first ? enc.encode(plain(i, text)) : chunk(i, text, first, lps, null),
            );
            return;
          }
          toolChunks(i, scanner.push(text), lps);
        },
        finish(i, reason, lps) {
          const scanner = scanners[i];
          if (!scanner) {
            controller.enqueue(chunk(i, "", false, lps, reason));
            return;
          }
          toolChunks(i, scanner.end(), []);
          // A reply with neither text nor calls still opens with the role.
          if (roleDue[i] === true) controller.enqueue(chunk(i, "", true, [], null));
          roleDue[i] = false;
          controller.enqueue(chunk(i, "", false, lps, toolFinish(reason, scanner.calls)));
        },
        end(usage) {
          if (includeUsage) controller.enqueue(chunk(null, "", false, [], null, usage));
          controller.enqueue(enc.encode("data: [DONE]\n\n"));
          controller.close();
        },
        fail(message) {
          const error = { message, type: "server_error", param: null, code: null };
          controller.enqueue(enc.encode(`data: ${JSON.stringify({ error })}\n\n`));
          controller.close();
        },
        cancelled() {
          controller.close();
        },
      };
    },
    (controller, err) => {
      const error = { message: (err as Error).message, type: "rate_limit_error" };
      controller.enqueue(enc.encode(`data: ${JSON.stringify({ error })}\n\n`));
    },
  );
}

/**
 * The refusal of a request the engine cannot take now (503 not running, 429 queue full), in the
 * route's error shape; null when it can.
 */
export function admission(
  ctx: RunContext,
  endpoint: Endpoint,
  choices: Choice[],
  shape: ErrorShape = apiError,
): Response | null {
  const { engine, metrics, retryAfter } = ctx;
  const metricsEndpoint = endpoint === "chat" ? "chat_completions" : "completions";
  if (!engine.available) {
    metrics.countRequest(metricsEndpoint, "unavailable");
    return shape(503, "the engine is not running", "server_error", null, { "retry-after": retryAfter });
  }
  if (engine.inFlight + choices.length > engine.capacity) {
    metrics.countRequest(metricsEndpoint, "queue_full");
    const need = choices.length === 1 ? "" : ` (this request needs ${choices.length} slots, one per choice)`;
    return shape(
      429,
      `the server is busy: ${engine.inFlight} requests in flight (limit ${engine.capacity})${need}; retry later`,
      "rate_limit_error",
      null,
      { "retry-after": retryAfter },
    );
  }
  return null;
}

/** Runs a request's choices and answers them as SSE (`stream`) or one JSON body. */
export function respond(
  ctx: RunContext,
  endpoint: Endpoint,
  choices: Choice[],
  stream: boolean,
  includeUsage: boolean,
  request: Request,
): Response | Promise<Response> {
  const refused = admission(ctx, endpoint, choices);
  if (refused !== null) return refused;
  const head: ResponseHead = {
    endpoint,
    id: `${endpoint === "chat" ? "chatcmpl" : "cmpl"}-${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`,
    created: Math.floor(Date.now() / 1000),
    model: ctx.modelId,
    choices,
  };
  return stream ? sseResponse(ctx, head, includeUsage, request) : jsonResponse(ctx, head, request);
}
