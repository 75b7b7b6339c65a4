// From a Messages request body (/v1/messages) to its one engine request, on the machinery the
// chat route uses: the turns and tools become OpenAI-shaped messages and function tools, rendered
// by the model's chat template through src/tools (toolConversation), limited and sampled by
// engineRequest, with the tool-call constraint of toolCallSpec. Pure, like engine-request.ts.

import type { TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import {
  detectToolFormat,
  type FunctionTool,
  type ToolCallSpec,
  type ToolChoice,
  ToolError,
  type ToolFormat,
  toolCallSpec,
} from "../tools/index.ts";
import {
  type AnthropicMessageBody,
  type CountTokensRequest,
  type MessagesRequest,
  TextBlock,
  ToolResultBlock,
  ToolUseBlock,
} from "./anthropic-schemas.ts";
import { type Choice, engineRequest, type RequestContext, renderConversation } from "./engine-request.ts";
import { RequestError } from "./errors.ts";
import type { CommonRequest } from "./schemas.ts";
import { fieldOf, validationMessage } from "./validation.ts";

/** The block types /v1/messages reads, each with its schema. */
const BLOCKS: Record<string, TSchema> = {
  text: TextBlock,
  tool_use: ToolUseBlock,
  tool_result: ToolResultBlock,
};

/**
 * Checks each content block against the schema of its own type, before the body's schema (whose
 * union of block types could only say "expected an object"): a type hearth does not read (images,
 * documents, server tool blocks) is a 400 naming it, and a block of a known type a 400 naming its
 * field. Runs on the raw body.
 */
export function checkBlocks(body: unknown): void {
  const messages = (body as { messages?: unknown } | null)?.messages;
  if (!Array.isArray(messages)) return;
  for (const [i, m] of messages.entries()) {
    const content = (m as { content?: unknown } | null)?.content;
    if (!Array.isArray(content)) continue;
    for (const [j, block] of content.entries()) {
      const type = (block as { type?: unknown } | null)?.type;
      const schema = typeof type === "string" ? BLOCKS[type] : undefined;
      if (typeof type === "string" && schema === undefined)
        throw new RequestError(
          `invalid request: messages[${i}].content[${j}]: ${JSON.stringify(type.slice(0, 40))} blocks are not supported by hearth (text, tool_use and tool_result are)`,
          `messages[${i}].content[${j}].type`,
        );
      const first = schema === undefined ? undefined : Value.Errors(schema, block).First();
      if (first === undefined) continue;
      const err = { valueError: { ...first, path: `/messages/${i}/content/${j}${first.path}` }, value: body };
      throw new RequestError(`invalid request: ${validationMessage(err)}`, fieldOf(err));
    }
  }
}

/** The text of content: a string, or its text blocks joined. */
function textOf(content: string | ReadonlyArray<{ type: string; text?: string }> | undefined): string {
  if (content === undefined) return "";
  if (typeof content === "string") return content;
  return content.map((b) => (b.type === "text" ? (b.text ?? "") : "")).join("");
}

/** An OpenAI-shaped message of the history (what toolConversation takes). */
interface HistoryMessage {
  [extra: string]: unknown;
  role: string;
  content: string | null;
  tool_calls?: Array<{ id: string; type: "function"; function: { name: string; arguments: string } }>;
  tool_call_id?: string;
}

/**
 * A turn as OpenAI-shaped messages: an assistant turn's tool_use blocks become its `tool_calls`;
 * a user turn's tool_result blocks become `tool` messages, in their order among its text.
 */
function historyOf(m: AnthropicMessageBody, i: number): HistoryMessage[] {
  if (typeof m.content === "string") return [{ role: m.role, content: m.content }];
  if (m.role === "assistant") {
    const calls: NonNullable<HistoryMessage["tool_calls"]> = [];
    let text = "";
    for (const [j, b] of m.content.entries()) {
      if (b.type === "text") text += b.text;
      else if (b.type === "tool_use")
        calls.push({
          id: b.id,
          type: "function",
          function: { name: b.name, arguments: JSON.stringify(b.input) },
        });
      else
        throw new RequestError(
          `messages[${i}].content[${j}]: tool_result blocks belong in a user turn`,
          `messages[${i}].content[${j}]`,
        );
    }
    return [{ role: "assistant", content: text, ...(calls.length > 0 ? { tool_calls: calls } : {}) }];
  }
  const out: HistoryMessage[] = [];
  let text = "";
  for (const [j, b] of m.content.entries()) {
    if (b.type === "text") text += b.text;
    else if (b.type === "tool_result") {
      if (text !== "") out.push({ role: "user", content: text });
      text = "";
      const result = textOf(b.content);
      out.push({
        role: "tool",
        tool_call_id: b.tool_use_id,
        content: b.is_error ? `Error: ${result}` : result,
      });
    } else
      throw new RequestError(
        `messages[${i}].content[${j}]: tool_use blocks belong in an assistant turn`,
        `messages[${i}].content[${j}]`,
      );
  }
  if (text !== "" || out.length === 0) out.push({ role: "user", content: text });
  return out;
}

/** Anthropic's tool_choice as OpenAI's, and whether several calls may come in one reply. */
function choiceOf(body: CountTokensRequest): { choice: ToolChoice; parallel: boolean } {
  const c = body.tool_choice;
  const parallel = !(
    c !== undefined &&
    "disable_parallel_tool_use" in c &&
    c.disable_parallel_tool_use === true
  );
  if (c === undefined || c.type === "auto") return { choice: "auto", parallel };
  if (c.type === "none") return { choice: "none", parallel };
  if (c.type === "any") return { choice: "required", parallel };
  return { choice: { type: "function", function: { name: c.name } }, parallel };
}

/**
 * A Messages request's prompt tokens and tool calling: `system` first, then the turns (and tools)
 * rendered with the model's chat template. A last assistant turn of text only is a prefill: the
 * reply continues it.
 */
export function messagesPrompt(
  ctx: RequestContext,
  body: CountTokensRequest,
): { ids: number[]; spec: ToolCallSpec | null; format: ToolFormat } {
  const turns: AnthropicMessageBody[] = body.messages;
  const last = turns[turns.length - 1] as AnthropicMessageBody;
  const prefill =
    last.role === "assistant" &&
    (typeof last.content === "string" || last.content.every((b) => b.type === "text"))
      ? textOf(last.content)
      : null;
  const history: HistoryMessage[] = [];
  if (body.system !== undefined) history.push({ role: "system", content: textOf(body.system) });
  for (const [i, m] of (prefill === null ? turns : turns.slice(0, -1)).entries())
    history.push(...historyOf(m, i));
  if (history.length === 0)
    throw new RequestError("messages: a conversation needs a user turn before the assistant's", "messages");

  const format = detectToolFormat(ctx.chatTemplate.source);
  const tools: FunctionTool[] = (body.tools ?? []).map((t) => ({
    type: "function",
    function: {
      name: t.name,
      ...(t.description !== undefined ? { description: t.description } : {}),
      parameters: t.input_schema,
    },
  }));
  const { choice, parallel } = choiceOf(body);
  let spec: ReturnType<typeof toolCallSpec>;
  try {
    spec = toolCallSpec(format, tools, choice, parallel);
  } catch (err) {
    if (!(err instanceof ToolError)) throw err;
    // The tools' own field names: function.parameters is input_schema here.
    const field = err.field
      .replace(".function.parameters", ".input_schema")
      .replace(".function.name", ".name");
    throw new RequestError(err.message.replaceAll("function.parameters", "input_schema"), field);
  }
  // tool_choice none: the tools are not shown to the model either (as on the chat route).
  let ids = renderConversation(ctx, format, history, spec === null ? null : tools);
  if (prefill) ids = [...ids, ...ctx.tokenizer.encode(prefill, { addSpecial: false })];
  return { ids, spec, format };
}

/** The choice of a Messages request: its prompt, sampler, limits and stops, and tool calling. */
export function messagesChoice(ctx: RequestContext, body: MessagesRequest): Choice {
  const { ids, spec, format } = messagesPrompt(ctx, body);
  // The sampler and limits are the OpenAI routes': the same fields under the same names, and
  // stop_sequences as stop strings.
  const common: CommonRequest = {
    max_tokens: body.max_tokens,
    ...(body.temperature !== undefined ? { temperature: body.temperature } : {}),
    ...(body.top_p !== undefined ? { top_p: body.top_p } : {}),
    ...(body.top_k !== undefined ? { top_k: body.top_k } : {}),
    stop: body.stop_sequences ?? null,
    ...(body.speculative !== undefined ? { speculative: body.speculative } : {}),
  };
  const base = engineRequest(ctx, common, ids, body.max_tokens, "messages");
  const req = spec === null ? base : { ...base, tools: spec, speculative: null, predictedIds: [] };
  return { req, echo: null, prompt: 0, tools: spec === null ? null : format };
}
