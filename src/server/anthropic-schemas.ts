// The request body of the Anthropic Messages API (/v1/messages) as a TypeBox schema, with the
// same rules as schemas.ts: every object closed, a feature hearth does not implement accepted
// only with a value that asks for nothing (its `unsupported` note is what the 400 says).
import { type Static, type TSchema, t } from "elysia";
import { Speculative } from "./schemas.ts";

function Obj<P extends Record<string, TSchema>>(properties: P) {
  return t.Object(properties, { additionalProperties: false });
}

/** An integer (t.Integer would also take "5"). */
function Int(opts: { minimum?: number; maximum?: number } = {}) {
  return t.Number({ ...opts, multipleOf: 1 });
}

/** Most stop sequences one request may send. */
export const MAX_STOP_SEQUENCES = 16;

/** Prompt caching marks: accepted and ignored (hearth's prefix cache needs none). */
const CacheControl = t.Optional(t.Union([t.Object({ type: t.Literal("ephemeral") }), t.Null()]));

export const TextBlock = Obj({
  type: t.Literal("text"),
  text: t.String(),
  cache_control: CacheControl,
  citations: t.Optional(t.Union([t.Array(t.Unknown(), { maxItems: 0 }), t.Null()])),
});

/** A call the assistant made, in the history (its `input` is the arguments object). */
export const ToolUseBlock = Obj({
  type: t.Literal("tool_use"),
  id: t.String(),
  name: t.String(),
  input: t.Record(t.String(), t.Unknown()),
  cache_control: CacheControl,
});

/** A call's result, in a user turn. */
export const ToolResultBlock = Obj({
  type: t.Literal("tool_result"),
  tool_use_id: t.String(),
  content: t.Optional(t.Union([t.String(), t.Array(TextBlock)])),
  is_error: t.Optional(t.Boolean()),
  cache_control: CacheControl,
});

/** A block of a message (other types are refused before validation, in anthropic-request.ts). */
const ContentBlock = t.Union([TextBlock, ToolUseBlock, ToolResultBlock]);

export const AnthropicMessage = Obj({
  role: t.Union([t.Literal("user"), t.Literal("assistant")]),
  content: t.Union([t.String(), t.Array(ContentBlock)]),
});

/** A tool the model may call: its input is a JSON Schema of the subset structured outputs take. */
export const AnthropicTool = Obj({
  type: t.Optional(t.Literal("custom", { unsupported: "server tools (only custom tools)" })),
  name: t.String({ minLength: 1, maxLength: 64 }),
  description: t.Optional(t.String()),
  input_schema: t.Record(t.String(), t.Unknown()),
  cache_control: CacheControl,
});

const parallel = { disable_parallel_tool_use: t.Optional(t.Boolean()) };
export const AnthropicToolChoice = t.Union([
  Obj({ type: t.Literal("auto"), ...parallel }),
  Obj({ type: t.Literal("any"), ...parallel }),
  Obj({ type: t.Literal("tool"), name: t.String(), ...parallel }),
  Obj({ type: t.Literal("none") }),
]);

export const MessagesBody = Obj({
  model: t.String(),
  messages: t.Array(AnthropicMessage, { minItems: 1 }),
  /** Required, as Anthropic requires it. */
  max_tokens: Int({ minimum: 1 }),
  system: t.Optional(t.Union([t.String(), t.Array(TextBlock)])),
  stop_sequences: t.Optional(t.Array(t.String({ minLength: 1 }), { maxItems: MAX_STOP_SEQUENCES })),
  temperature: t.Optional(t.Number({ minimum: 0, maximum: 1 })),
  top_p: t.Optional(t.Number({ minimum: 0, maximum: 1 })),
  top_k: t.Optional(Int({ minimum: 0 })),
  stream: t.Optional(t.Boolean()),
  /** Accepted and ignored. */
  metadata: t.Optional(Obj({ user_id: t.Optional(t.Union([t.String(), t.Null()])) })),
  service_tier: t.Optional(t.String()),
  cache_control: CacheControl,
  tools: t.Optional(t.Array(AnthropicTool, { maxItems: 128 })),
  tool_choice: t.Optional(AnthropicToolChoice),
  thinking: t.Optional(Obj({ type: t.Literal("disabled", { unsupported: "extended thinking" }) })),
  /** Not Anthropic: as on the chat route (schemas.ts Speculative). */
  speculative: t.Optional(Speculative),
});

/** POST /v1/messages/count_tokens: what makes the prompt (no limits, sampler or stream). */
export const CountTokensBody = Obj({
  model: MessagesBody.properties.model,
  messages: MessagesBody.properties.messages,
  system: MessagesBody.properties.system,
  tools: MessagesBody.properties.tools,
  tool_choice: MessagesBody.properties.tool_choice,
  thinking: MessagesBody.properties.thinking,
  cache_control: MessagesBody.properties.cache_control,
});

export type MessagesRequest = Static<typeof MessagesBody>;
export type CountTokensRequest = Static<typeof CountTokensBody>;
export type AnthropicMessageBody = Static<typeof AnthropicMessage>;

export type AnthropicStopReason = "end_turn" | "max_tokens" | "stop_sequence" | "tool_use";

export type AnthropicContentBlock =
  | { type: "text"; text: string }
  | { type: "tool_use"; id: string; name: string; input: unknown };

export interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
}

/** The whole answer (`type: "message"`). */
export interface AnthropicMessageResponse {
  id: string;
  type: "message";
  role: "assistant";
  model: string;
  content: AnthropicContentBlock[];
  stop_reason: AnthropicStopReason | null;
  stop_sequence: string | null;
  usage: AnthropicUsage;
}
