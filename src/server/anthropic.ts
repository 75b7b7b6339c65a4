// The Anthropic Messages API (/v1/messages) on hearth's one generation core: a body becomes one
// choice (anthropic-request.ts), runs through runChoices (choices.ts), and is answered as one
// `message` (text and tool_use blocks) or as Anthropic's SSE event sequence (message_start,
// content_block_start, ping, content_block_delta..., content_block_stop, message_delta,
// message_stop).
import { CallScanner, type ParsedCall, parseToolCalls, type ToolEvent } from "../tools/index.ts";
import { anthropicError, anthropicErrorEvent } from "./anthropic-errors.ts";
import type {
  AnthropicContentBlock,
  AnthropicMessageResponse,
  AnthropicStopReason,
} from "./anthropic-schemas.ts";
import {
  type ChoiceSink,
  type Done,
  type ResponseHead,
  type RunContext,
  runToBody,
  runToStream,
  submitError,
} from "./choices.ts";
import type { Choice } from "./engine-request.ts";
import { admission } from "./sinks.ts";

/** Why a reply ended, in Anthropic's words, and the stop sequence that ended it. */
function stopOf(
  done: Done,
  calls: number,
): { stop_reason: AnthropicStopReason; stop_sequence: string | null } {
  if (done.finish === "length" || done.finish === "context")
    return { stop_reason: "max_tokens", stop_sequence: null };
  if (calls > 0) return { stop_reason: "tool_use", stop_sequence: null };
  if (done.finish === "stop" && done.stopString !== undefined)
    return { stop_reason: "stop_sequence", stop_sequence: done.stopString };
  return { stop_reason: "end_turn", stop_sequence: null };
}

/** A call's arguments (JSON text) as a tool_use block's `input` object. */
function inputOf(call: ParsedCall): unknown {
  try {
    return JSON.parse(call.arguments);
  } catch {
    return {};
  }
}

/**
 * A whole reply's content blocks: its text, then (when the request has tools) a tool_use block
 * per complete call; a call cut by max_tokens is left out.
 */
function contentOf(choice: Choice, text: string): { content: AnthropicContentBlock[]; calls: number } {
  const format = choice.tools ?? null;
  const { content, calls } = format === null ? { content: text, calls: [] } : parseToolCalls(format, text);
  const complete = calls.filter((c) => c.complete);
  const blocks: AnthropicContentBlock[] =
    content.trim() === "" && (format !== null || content === "") ? [] : [{ type: "text", text: content }];
  for (const c of complete) blocks.push({ type: "tool_use", id: c.id, name: c.name, input: inputOf(c) });
  return { content: blocks, calls: complete.length };
}

function messageId(): string {
  return `msg_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
}

/** The whole `message` once the reply has ended. */
function jsonMessage(ctx: RunContext, head: ResponseHead, request: Request): Promise<Response> {
  let text = "";
  let ended: Done | null = null;
  return runToBody(
    ctx,
    head,
    request,
    (answer): ChoiceSink => ({
      piece(_i, piece) {
        text += piece;
      },
      finish(_i, _reason, _scores, done) {
        ended = done;
      },
      end(usage) {
        const { content, calls } = contentOf(head.choices[0] as Choice, text);
        const body: AnthropicMessageResponse = {
          id: head.id,
          type: "message",
          role: "assistant",
          model: head.model,
          content,
          ...stopOf(ended as unknown as Done, calls),
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
    }),
    (err) =>
      anthropicError(submitError(ctx, err).status, (err as Error).message, "", null, {
        "retry-after": ctx.retryAfter,
      }),
  );
}

/**
 * Anthropic's SSE event sequence. Without tools: one text block, opened at once. With tools, the
 * reply goes through the tools' CallScanner: text opens a text block, each call a tool_use block
 * whose arguments stream as input_json_delta.
 */
function sseMessage(ctx: RunContext, head: ResponseHead, request: Request): Response {
  const enc = new TextEncoder();
  const event = (type: string, data: Record<string, unknown>) =>
    enc.encode(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  const choice = head.choices[0] as Choice;
  const scanner = choice.tools ? new CallScanner(choice.tools) : null;
  return runToStream(
    ctx,
    head,
    request,
    (controller): ChoiceSink => {
      let ended: Done | null = null;
      // The open block: its index and kind.
      let index = -1;
      let open: "text" | "tool_use" | null = null;
      const close = () => {
        if (open !== null) controller.enqueue(event("content_block_stop", { index }));
        open = null;
      };
      const start = (block: Record<string, unknown>) => {
        close();
        index++;
        open = block.type as "text" | "tool_use";
        controller.enqueue(event("content_block_start", { index, content_block: block }));
      };
      const text = (piece: string) => {
        // Whitespace around calls opens no block of its own.
        if (open !== "text" && (scanner === null || piece.trim() === "")) return;
        if (open !== "text") start({ type: "text", text: "" });
        controller.enqueue(
          event("content_block_delta", { index, delta: { type: "text_delta", text: piece } }),
        );
      };
      const tool = (ev: ToolEvent) => {
        if (ev.type === "content") text(ev.text);
        else if (ev.type === "call") start({ type: "tool_use", id: ev.id, name: ev.name, input: {} });
        else if (ev.text !== "")
          controller.enqueue(
            event("content_block_delta", {
              index,
              delta: { type: "input_json_delta", partial_json: ev.text },
            }),
          );
      };
      const sink: ChoiceSink = {
        piece(_i, piece) {
          if (piece === "") return;
          if (scanner === null) text(piece);
          else for (const ev of scanner.push(piece)) tool(ev);
        },
        finish(_i, _reason, _scores, done) {
          if (scanner !== null) for (const ev of scanner.end()) tool(ev);
          ended = done;
        },
        end(usage) {
          close();
          const calls = scanner?.calls.filter((c) => c.complete).length ?? 0;
          controller.enqueue(
            event("message_delta", {
              delta: stopOf(ended as unknown as Done, calls),
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
            usage: { input_tokens: choice.req.promptIds.length, output_tokens: 0 },
          },
        }),
      );
      if (scanner === null) start({ type: "text", text: "" });
      controller.enqueue(event("ping", {}));
      return sink;
    },
    (controller, err) => {
      controller.enqueue(enc.encode(anthropicErrorEvent("overloaded_error", (err as Error).message)));
    },
  );
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
