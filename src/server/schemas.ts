// Every request and response body of the HTTP API as a TypeBox schema (Elysia's `t`): the
// routes validate with them, the TypeScript types come from them, and docs/server.md lists them.
// A field hearth does not implement is a rule here that only admits values asking for nothing;
// its `unsupported` note is what the 400 says (src/server/validation.ts), and an unknown field is
// a 400 naming it (every object is closed: `additionalProperties: false`).
import { type Static, type TSchema, t } from "elysia";
import { CHAT_ROLES } from "../chat/index.ts";
import { MAX_EMBEDDING_INPUTS } from "../native/limits.ts";
import { MAX_LOGIT_BIAS, MAX_SEED, MAX_TOP_LOGPROBS } from "../sampling/index.ts";

/** Most choices one request may ask for (prompts x n). */
export const MAX_CHOICES = 64;

/** A closed object: a field it does not list is a 400 naming that field. */
function Obj<P extends Record<string, TSchema>>(properties: P) {
  return t.Object(properties, { additionalProperties: false });
}

/**
 * An integer field. Elysia's `t.Integer` also takes numeric strings ("5"), while its `t.Number`
 * does not, so `max_tokens: "5"` passed where `temperature: "0.5"` failed; OpenAI's API refuses
 * both. A number that is a multiple of 1 is an integer and nothing else.
 */
function Int(opts: { minimum?: number; maximum?: number } = {}) {
  return t.Number({ ...opts, multipleOf: 1 });
}

/** An optional field that may also be null (null means "the default", as in OpenAI's API). */
function Opt<S extends TSchema>(schema: S) {
  return t.Optional(t.Union([schema, t.Null()]));
}

/**
 * Not OpenAI nor Anthropic: speculative decoding on or off for a request (same output), or its
 * draft source: "lookup" (prompt lookup), "model" (the server's draft model, -md) or "both".
 */
export const Speculative = t.Union([
  t.Boolean(),
  Obj({ draft: Opt(t.Union([t.Literal("model"), t.Literal("lookup"), t.Literal("both")])) }),
]);

/**
 * A field for a feature hearth does not implement: only the values that ask for nothing pass;
 * any other value is a 400 saying `<what> is not supported by hearth`.
 */
function Unsupported<S extends TSchema>(what: string, schema: S) {
  return t.Optional(t.Union([schema, t.Null()], { unsupported: what }));
}

/** A list that must be empty (`tools: []` asks for nothing). */
const Empty = t.Array(t.Unknown(), { maxItems: 0 });

/** Fields of both completion endpoints: sampling, limits, streaming, choices. */
const common = {
  model: t.Optional(t.String()),
  max_tokens: Opt(Int({ minimum: 1 })),
  /** OpenAI's newer name for max_tokens; it wins when both are sent. */
  max_completion_tokens: Opt(Int({ minimum: 1 })),
  temperature: Opt(t.Number({ minimum: 0, maximum: 2 })),
  top_p: Opt(t.Number({ minimum: 0, maximum: 1 })),
  /** Not OpenAI (llama.cpp's and vLLM's): keep the k most likely tokens; 0 or -1 disables. */
  top_k: Opt(Int({ minimum: -1 })),
  /** Not OpenAI (llama.cpp's and vLLM's): drop tokens below min_p x the best one's probability. */
  min_p: Opt(t.Number({ minimum: 0, maximum: 1 })),
  /** Not OpenAI (llama.cpp's): divide the logits of tokens generated so far; 1 disables. */
  repeat_penalty: Opt(t.Number({ exclusiveMinimum: 0, maximum: 10 })),
  presence_penalty: Opt(t.Number({ minimum: -2, maximum: 2 })),
  frequency_penalty: Opt(t.Number({ minimum: -2, maximum: 2 })),
  seed: Opt(Int({ minimum: -MAX_SEED, maximum: MAX_SEED })),
  logit_bias: Opt(t.Record(t.String(), t.Number({ minimum: -MAX_LOGIT_BIAS, maximum: MAX_LOGIT_BIAS }))),
  // One flat union: its error then reads "expected an array of strings (at most 4)".
  stop: t.Optional(t.Union([t.String(), t.Array(t.String(), { maxItems: 4 }), t.Null()])),
  stream: Opt(t.Boolean()),
  stream_options: Opt(
    Obj({
      include_usage: t.Optional(t.Boolean()),
      /** Random padding against length side channels: accepted, none is added. */
      include_obfuscation: t.Optional(t.Boolean()),
    }),
  ),
  /** Choices per prompt, generated side by side in the batch (seeded: choice j samples with seed + j). */
  n: Opt(Int({ minimum: 1, maximum: MAX_CHOICES })),
  /** JSON mode and structured outputs; `json_schema` needs `json_schema.schema` (checked in engine-request.ts). */
  response_format: Opt(
    Obj({
      type: t.Union([t.Literal("text"), t.Literal("json_object"), t.Literal("json_schema")], {
        unsupported: 'a response_format type other than "text", "json_object" and "json_schema"',
      }),
      json_schema: t.Optional(
        Obj({
          name: t.Optional(t.String()),
          description: t.Optional(t.String()),
          schema: t.Optional(t.Unknown()),
          strict: Opt(t.Boolean()),
        }),
      ),
    }),
  ),
  /** Predicted output: drafts for speculative decoding (the output does not depend on it). */
  prediction: Opt(
    Obj({
      type: t.Literal("content"),
      content: t.Union([t.String(), t.Array(Obj({ type: t.Literal("text"), text: t.String() }))]),
    }),
  ),
  // Accepted and ignored: they do not change the output (docs/server.md lists them).
  user: Opt(t.String()),
  store: Opt(t.Boolean()),
  metadata: Opt(t.Record(t.String(), t.String())),
  service_tier: Opt(t.String()),
  prompt_cache_key: Opt(t.String()),
  safety_identifier: Opt(t.String()),
  /** Not OpenAI (llama.cpp's): keep generating through end-of-generation tokens (benchmarks). */
  ignore_eos: Opt(t.Boolean()),
  /**
   * Not OpenAI: speculative decoding on or off for this request (same output), or its draft
   * source: "lookup" (prompt lookup), "model" (the server's draft model, -md) or "both".
   */
  speculative: Opt(Speculative),
  /** More than one tool call in a reply (chat; default true). */
  parallel_tool_calls: Opt(t.Boolean()),
  // OpenAI features hearth does not implement: only values that ask for nothing pass.
  functions: Unsupported("the legacy functions field (use tools)", Empty),
  function_call: Unsupported(
    "the legacy function_call field (use tool_choice)",
    t.Union([t.Literal("none"), t.Literal("auto")]),
  ),
  modalities: Unsupported("output modalities other than text", t.Array(t.Literal("text"))),
  audio: Unsupported("audio output", t.Null()),
  // Its mere presence turns search on, even as {}.
  web_search_options: Unsupported("web search", t.Null()),
};

/** A function tool (docs/tools.md): its parameters are a JSON Schema of the subset structured outputs take. */
export const FunctionToolSchema = Obj({
  type: t.Literal("function"),
  function: Obj({
    name: t.String({ minLength: 1, maxLength: 64 }),
    description: t.Optional(t.String()),
    parameters: t.Optional(t.Record(t.String(), t.Unknown())),
    strict: Opt(t.Boolean()),
  }),
});

export const ToolChoiceSchema = t.Union([
  t.Literal("auto"),
  t.Literal("none"),
  t.Literal("required"),
  Obj({ type: t.Literal("function"), function: Obj({ name: t.String() }) }),
]);

/** A call in an assistant message of the history (and in a reply). */
const ToolCallSchema = Obj({
  id: t.String(),
  type: t.Literal("function"),
  function: Obj({ name: t.String(), arguments: t.String() }),
});

const ContentPart = Obj({
  type: t.String({ pattern: "^text$", unsupported: "content parts other than text (images, audio, files)" }),
  text: t.Optional(t.String()),
});

export const ChatMessageSchema = Obj({
  role: t.Union(CHAT_ROLES.map((r) => t.Literal(r))),
  content: t.Union([t.String(), t.Array(ContentPart), t.Null()]),
  name: t.Optional(t.String()),
  /** An earlier reply's refusal text, as clients send replies back: not rendered. */
  refusal: Opt(t.String()),
  /** An assistant message's tool calls (the history of an agent loop). */
  tool_calls: Opt(t.Array(ToolCallSchema)),
  function_call: Unsupported("the legacy function_call field (use tool_calls)", t.Null()),
  tool_call_id: Opt(t.String()),
  audio: Unsupported("audio", t.Null()),
});

export const ChatCompletionBody = Obj({
  ...common,
  logprobs: Opt(t.Boolean()),
  /** Needs `logprobs: true` (checked in engine-request.ts). */
  top_logprobs: Opt(Int({ minimum: 0, maximum: MAX_TOP_LOGPROBS })),
  messages: t.Array(ChatMessageSchema, { minItems: 1 }),
  /** Functions the model may call (docs/tools.md). */
  tools: Opt(t.Array(FunctionToolSchema, { maxItems: 128 })),
  tool_choice: Opt(ToolChoiceSchema),
});

const TokenIds = t.Array(Int({ minimum: 0 }), { minItems: 1 });

export const CompletionBody = Obj({
  ...common,
  /** The legacy endpoint's logprobs: alternatives per token (OpenAI allows 0..5). */
  logprobs: Opt(Int({ minimum: 0, maximum: 5 })),
  /** The prompt before the completion in `text` (and its tokens' log-probabilities with `logprobs`). */
  echo: Opt(t.Boolean()),
  /** 0 only with echo: score the prompt, generate nothing (what evaluation harnesses send). */
  max_tokens: Opt(Int({ minimum: 0 })),
  suffix: Unsupported("a suffix (fill-in-the-middle)", t.Literal("")),
  best_of: Unsupported("best_of > 1", t.Literal(1)),
  /**
   * One prompt (text or token ids) or several (a list of texts or of token-id lists), each
   * answered by n choices: choice i * n + j answers prompt i.
   */
  prompt: t.Union([
    t.String(),
    t.Array(t.String(), { minItems: 1, maxItems: MAX_CHOICES }),
    TokenIds,
    t.Array(TokenIds, { minItems: 1, maxItems: MAX_CHOICES }),
  ]),
});

export type ChatCompletionRequest = Static<typeof ChatCompletionBody>;
export type CompletionRequest = Static<typeof CompletionBody>;

/** POST /v1/embeddings: a text, texts, token ids or lists of them (routes/embeddings.ts). */
export const EmbeddingBody = Obj({
  // One flat union, so its error reads "expected a string, an array of strings, ...".
  input: t.Union([
    t.String(),
    t.Array(t.String(), { minItems: 1, maxItems: MAX_EMBEDDING_INPUTS }),
    t.Array(Int({ minimum: 0 }), { minItems: 1 }),
    t.Array(t.Array(Int({ minimum: 0 }), { minItems: 1 }), { minItems: 1, maxItems: MAX_EMBEDDING_INPUTS }),
  ]),
  model: t.Optional(t.String()),
  encoding_format: Opt(t.Union([t.Literal("float"), t.Literal("base64")])),
  /** Only the model's own size: hearth does not shorten embeddings (checked in the route). */
  dimensions: Opt(Int({ minimum: 1 })),
  user: t.Optional(t.String()),
});
export type EmbeddingRequest = Static<typeof EmbeddingBody>;
export type ChatMessageBody = Static<typeof ChatMessageSchema>;
/** The fields both endpoints share (what turns into the sampler, limits and stops). */
export type CommonRequest = Pick<ChatCompletionRequest, keyof typeof common>;

// Responses.

export const Usage = t.Object({
  prompt_tokens: t.Number(),
  completion_tokens: t.Number(),
  total_tokens: t.Number(),
  /** Prompt tokens whose KV came from the prefix cache. */
  prompt_tokens_details: t.Object({ cached_tokens: t.Number() }),
  /** With a predicted output: its draft tokens the model confirmed, and those it did not. */
  completion_tokens_details: t.Optional(
    t.Object({ accepted_prediction_tokens: t.Number(), rejected_prediction_tokens: t.Number() }),
  ),
});
export type UsageBody = Static<typeof Usage>;

const TopLogprob = t.Object({ token: t.String(), logprob: t.Number(), bytes: t.Array(t.Number()) });
export const ChatLogprobs = t.Object({
  content: t.Array(
    t.Object({
      token: t.String(),
      logprob: t.Union([t.Number(), t.Null()]),
      bytes: t.Array(t.Number()),
      top_logprobs: t.Array(TopLogprob),
    }),
  ),
  refusal: t.Null(),
});
/** `top_logprobs` entries keep their order in the JSON text (see OrderedEntries in logprobs.ts). */
export const CompletionLogprobs = t.Object({
  tokens: t.Array(t.String()),
  token_logprobs: t.Array(t.Union([t.Number(), t.Null()])),
  top_logprobs: t.Array(t.Union([t.Unknown(), t.Null()])),
  text_offset: t.Array(t.Number()),
});
export type ChatLogprobsBody = Static<typeof ChatLogprobs>;
export type CompletionLogprobsBody = Static<typeof CompletionLogprobs>;

const FinishReason = t.Union([t.Literal("stop"), t.Literal("length"), t.Literal("tool_calls"), t.Null()]);
/** A streamed piece of a tool call: the first one of a call has its id and name. */
const ToolCallDelta = t.Object({
  index: t.Number(),
  id: t.Optional(t.String()),
  type: t.Optional(t.Literal("function")),
  function: t.Object({ name: t.Optional(t.String()), arguments: t.String() }),
});
const envelope = { id: t.String(), created: t.Number(), model: t.String() };

export const ChatCompletion = t.Object({
  ...envelope,
  object: t.Literal("chat.completion"),
  choices: t.Array(
    t.Object({
      index: t.Number(),
      message: t.Object({
        role: t.Literal("assistant"),
        content: t.Union([t.String(), t.Null()]),
        tool_calls: t.Optional(t.Array(ToolCallSchema)),
      }),
      logprobs: t.Union([ChatLogprobs, t.Null()]),
      finish_reason: FinishReason,
    }),
  ),
  usage: Usage,
});

export const ChatCompletionChunk = t.Object({
  ...envelope,
  object: t.Literal("chat.completion.chunk"),
  choices: t.Array(
    t.Object({
      index: t.Number(),
      delta: t.Object({
        role: t.Optional(t.Literal("assistant")),
        content: t.Optional(t.Union([t.String(), t.Null()])),
        tool_calls: t.Optional(t.Array(ToolCallDelta)),
      }),
      logprobs: t.Union([ChatLogprobs, t.Null()]),
      finish_reason: FinishReason,
    }),
  ),
  /** With `stream_options.include_usage`: null on every chunk but the last, which has no choices. */
  usage: t.Optional(t.Union([Usage, t.Null()])),
});

/** Both the whole answer and each streamed chunk of the legacy endpoint. */
export const TextCompletion = t.Object({
  ...envelope,
  object: t.Literal("text_completion"),
  choices: t.Array(
    t.Object({
      index: t.Number(),
      text: t.String(),
      logprobs: t.Union([CompletionLogprobs, t.Null()]),
      finish_reason: FinishReason,
    }),
  ),
  usage: t.Optional(t.Union([Usage, t.Null()])),
});

export type ChatCompletionType = Static<typeof ChatCompletion>;
export type ChatCompletionChunkType = Static<typeof ChatCompletionChunk>;
export type TextCompletionType = Static<typeof TextCompletion>;

export const EmbeddingList = t.Object({
  object: t.Literal("list"),
  data: t.Array(
    t.Object({
      object: t.Literal("embedding"),
      index: t.Number(),
      /** Floats, or with encoding_format "base64" the little-endian float32 bytes in base64. */
      embedding: t.Union([t.Array(t.Number()), t.String()]),
    }),
  ),
  model: t.String(),
  usage: t.Object({ prompt_tokens: t.Number(), total_tokens: t.Number() }),
});
export type EmbeddingListBody = Static<typeof EmbeddingList>;

export const Model = t.Object({
  id: t.String(),
  object: t.Literal("model"),
  created: t.Number(),
  owned_by: t.String(),
});
export const ModelList = t.Object({ object: t.Literal("list"), data: t.Array(Model) });
export type ModelBody = Static<typeof Model>;

export const Health = t.Object({ status: t.Union([t.Literal("ok"), t.Literal("unavailable")]) });

/** Every error, in OpenAI's shape. */
export const ErrorBody = t.Object({
  error: t.Object({
    message: t.String(),
    type: t.String(),
    param: t.Union([t.String(), t.Null()]),
    code: t.Union([t.String(), t.Null()]),
  }),
});
export type ErrorBodyType = Static<typeof ErrorBody>;
