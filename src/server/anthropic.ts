// The Anthropic Messages API (/v1/messages) on hearth's one generation core: a body becomes one
// choice through engineRequest (engine-request.ts), runs through runChoices (choices.ts), and is
// answered as one `message` or as Anthropic's SSE event sequence (message_start,
// content_block_start, ping, content_block_delta..., content_block_stop, message_delta,
// message_stop).
import { type ChatMessage, encodeChat } from "../chat/index.ts";
import { anthropicError, anthropicErrorEvent } from "./anthropic-errors.ts";
import type {
  AnthropicMessageBody,
  AnthropicMessageResponse,
  AnthropicStopReason,
  MessagesRequest,
} from "./anthropic-schemas.ts";
import {
  type ChoiceSink,
  type Done,
  type ResponseHead,
  type RunContext,
  runChoices,
  submitError,
} from "./choices.ts";
import { type Choice, engineRequest, type RequestContext } from "./engine-request.ts";
import { RequestError } from "./errors.ts";
import type { CommonRequest } from "./schemas.ts";
import { admission } from "./sinks.ts";

/** The text of a message's content: a string, or its text blocks joined. */
function textOf(content: string | Array<{ text: string }>): string {
  return typeof content === "string" ? content : content.map((b) => b.text).join("");
}

/**
 * Refuses content blocks hearth does not read (images, documents, tool blocks) by their type,
 * before the schema would name one of their other fields as unknown. Runs on the raw body.
 */
export function checkBlockTypes(body: unknown): void {
  const messages = (body as { messages?: unknown } | null)?.messages;
  if (!Array.isArray(messages)) return;
  for (const [i, m] of messages.entries()) {
    const content = (m as { content?: unknown } | null)?.content;
    if (!Array.isArray(content)) continue;
    for (const [j, block] of content.entries()) {
      const type = (block as { type?: unknown } | null)?.type;
      if (typeof type === "string" && type !== "text")
        throw new RequestError(
          `invalid request: messages[${i}].content[${j}]: ${JSON.stringify(type.slice(0, 40))} blocks are not supported by hearth (text only)`,
          `messages[${i}].content[${j}].type`,
        );
    }
  }
}

/**
 * The choice of a Messages request: `system` first, then the turns rendered with the model's chat
 * template. A last assistant turn is a prefill: the reply continues its text.
 */
export function messagesChoice(ctx: RequestContext, body: MessagesRequest): Choice {
  const turns: AnthropicMessageBody[] = body.messages;
  const last = turns[turns.length - 1] as AnthropicMessageBody;
  const prefill = last.role === "assistant" ? textOf(last.content) : null;
  const history = prefill === null ? turns : turns.slice(0, -1);
  const messages: ChatMessage[] = [];
  if (body.system !== undefined) messages.push({ role: "system", content: textOf(body.system) });
  for (const m of history) messages.push({ role: m.role, content: textOf(m.content) });
  if (messages.length === 0)
    throw new RequestError("messages: a conversation needs a user turn before the assistant's", "messages");
  let ids: number[];
  try {
    ids = encodeChat(ctx.chatTemplate, ctx.tokenizer, messages, { addGenerationPrompt: true });
  } catch (err) {
    throw new RequestError(
      `messages cannot be rendered with the chat template: ${(err as Error).message}`,
      "messages",
    );
  }
  if (prefill) ids = [...ids, ...ctx.tokenizer.encode(prefill, { addSpecial: false })];
  // The sampler and limits are the OpenAI routes': the same fields under the same names, and
  // stop_sequences as stop strings.
  const common: CommonRequest = {
    max_tokens: body.max_tokens,
    ...(body.temperature !== undefined ? { temperature: body.temperature } : {}),
    ...(body.top_p !== undefined ? { top_p: body.top_p } : {}),
    ...(body.top_k !== undefined ? { top_k: body.top_k } : {}),
    stop: body.stop_sequences ?? null,
  };
  return { req: engineRequest(ctx, common, ids, body.max_tokens, "messages"), echo: null, prompt: 0 };
}

/** Why a reply ended, in Anthropic's words, and the stop sequence that ended it. */
function stopOf(done: Done): { stop_reason: AnthropicStopReason; stop_sequence: string | null } {
  if (done.finish === "length" || done.finish === "context")
    return { stop_reason: "max_tokens", stop_sequence: null };
  if (done.finish === "stop" && done.stopString !== undefined)
    return { stop_reason: "stop_sequence", stop_sequence: done.stopString };
  return { stop_reason: "end_turn", stop_sequence: null };
}

function messageId(): string {
  return `msg_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
}

/** The whole `message` once the reply has ended. */
function jsonMessage(ctx: RunContext, head: ResponseHead, request: Request): Promise<Response> {
  let text = "";
  let ended: Done | null = null;
  return new Promise<Response>((resolve) => {
    let cancel = () => {};
    const onAbort = () => cancel();
    const answer = (res: Response) => {
      request.signal.removeEventListener("abort", onAbort);
      resolve(res);
    };
    const sink: ChoiceSink = {
      piece(_i, piece) {
        text += piece;
      },
      finish(_i, _reason, _scores, done) {
        ended = done;
      },
      end(usage) {
        const body: AnthropicMessageResponse = {
          id: head.id,
          type: "message",
          role: "assistant",
          model: head.model,
          content: text === "" ? [] : [{ type: "text", text }],
          ...stopOf(ended as unknown as Done),
          usage: { input_tokens: usage.prompt_tokens, output_tokens: usage.completion_tokens },
        };
        answer(new Response(JSON.stringify(body), { headers: { "content-type": "application/json" } }));
      },
      fail(message, busy) {
        answer(
          anthropicError(busy ? 429 : 500, message, "", null, busy ? { "retry-after": ctx.retryAfter } : {}),
        );
      },
      cancelled() {
        answer(anthropicError(500, "the request was cancelled", ""));
      },
    };
    try {
      cancel = runChoices(ctx, head, sink);
    } catch (err) {
      const refused = submitError(ctx, err);
      answer(
        anthropicError(refused.status, (err as Error).message, "", null, { "retry-after": ctx.retryAfter }),
      );
      return;
    }
    request.signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Anthropic's SSE event sequence for one text block. */
function sseMessage(ctx: RunContext, head: ResponseHead, request: Request): Response {
  const enc = new TextEncoder();
  const event = (type: string, data: Record<string, unknown>) =>
    enc.encode(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  const inputTokens = head.choices[0]?.req.promptIds.length ?? 0;
  let cancel = () => {};
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      let ended: Done | null = null;
      const sink: ChoiceSink = {
        piece(_i, text) {
          if (text !== "")
            controller.enqueue(
              event("content_block_delta", { index: 0, delta: { type: "text_delta", text } }),
            );
        },
        finish(_i, _reason, _scores, done) {
          ended = done;
        },
        end(usage) {
          controller.enqueue(event("content_block_stop", { index: 0 }));
          controller.enqueue(
            event("message_delta", {
              delta: stopOf(ended as unknown as Done),
              usage: { output_tokens: usage.completion_tokens },
            }),
          );
          controller.enqueue(event("message_stop", {}));
          controller.close();
        },
        fail(message, busy) {
          controller.enqueue(
            enc.encode(anthropicErrorEvent(busy ? "overloaded_error" : "api_error", message)),
          );
          controller.close();
        },
        cancelled() {
          controller.close();
        },
      };
      controller.enqueue(
        event("message_start", {
          message: {
            id: head.id,
            type: "message",
            role: "assistant",
            model: head.model,
            content: [],
            stop_reason: null,
            stop_sequence: null,
            usage: { input_tokens: inputTokens, output_tokens: 0 },
          },
        }),
      );
      controller.enqueue(
        event("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
      );
      controller.enqueue(event("ping", {}));
      try {
        cancel = runChoices(ctx, head, sink);
      } catch (err) {
        controller.enqueue(enc.encode(anthropicErrorEvent("overloaded_error", (err as Error).message)));
        controller.close();
        return;
      }
      request.signal.addEventListener("abort", () => cancel(), { once: true });
    },
    cancel() {
      cancel();
    },
  });
  return new Response(stream, {
    headers: { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" },
  });
}

/** Runs a Messages request and answers it as SSE (`stream`) or one `message`. */
export function respondMessages(
  ctx: RunContext,
  choice: Choice,
  stream: boolean,
  request: Request,
): Response | Promise<Response> {
  const refused = admission(ctx, "chat", [choice], anthropicError);
  if (refused !== null) return refused;
  const head: ResponseHead = {
    endpoint: "chat",
    id: messageId(),
    created: Math.floor(Date.now() / 1000),
    model: ctx.modelId,
    choices: [choice],
  };
  return stream ? sseMessage(ctx, head, request) : jsonMessage(ctx, head, request);
}
