// From a validated request body to the engine requests of its choices: prompt tokens, sampler,
// limits, stops, drafts, JSON constraint. Pure: the same body and context give the same requests,
// and a refusal is a RequestError naming the field (the schemas in schemas.ts come first).
import { type ChatMessage, type ChatTemplate, encodeChat } from "../chat/index.ts";
import type { EngineRequest } from "../engine/request.ts";
import {
  DEFAULT_SAMPLER_OPTIONS,
  MAX_LOGIT_BIAS_ENTRIES,
  MAX_SEED,
  type SamplerOptions,
} from "../sampling/index.ts";
import { compileSchema, SchemaError, SchemaRecognizer } from "../sampling/json-schema.ts";
import { type ResolvedSpeculative, resolveSpeculative } from "../speculative.ts";
import type { Tokenizer } from "../tokenizer/index.ts";
import {
  detectToolFormat,
  type FunctionTool,
  type ToolChoice,
  ToolError,
  type ToolFormat,
  toolCallSpec,
  toolConversation,
} from "../tools/index.ts";
import { RequestError } from "./errors.ts";
import type { Echo } from "./logprobs.ts";
import {
  type ChatCompletionRequest,
  type CommonRequest,
  type CompletionRequest,
  MAX_CHOICES,
} from "./schemas.ts";

/** Tokens a /v1/completions request gets when it names no limit (OpenAI's and vLLM's default). */
export const DEFAULT_COMPLETION_TOKENS = 16;

/**
 * Draft settings of a request with a predicted output when the server sets none: 8 tokens per
 * step (a prediction is mostly right for long stretches; 4 left about a third of the saving).
 */
const PREDICTION_DRAFTS = resolveSpeculative({ maxDraftTokens: 8 });

/** What turning a body into engine requests needs from the server. */
export interface RequestContext {
  tokenizer: Tokenizer;
  chatTemplate: ChatTemplate;
  /** Most tokens one request holds (prompt + completion). */
  contextTokens: number;
  /** Requests the engine runs and queues at once: more choices than that could never be admitted. */
  capacity: number;
  /** Speculative decoding for requests that do not say (null: off). */
  speculative: ResolvedSpeculative | null;
  /** Settings for requests that send `speculative: true` when `speculative` is off. */
  speculativeOptIn: ResolvedSpeculative | null;
  /** The engine has a draft model (requests may ask for draft "model" or "both"). */
  draftModel?: boolean;
}

export type EngineSubmission = Omit<EngineRequest, "id">;

/**
 * One choice of a response: its engine request and, on the legacy endpoint, the prompt it echoes
 * and which of the request's prompts it answers (a request's prompts are counted once each in
 * `usage`, however many choices each has).
 */
export interface Choice {
  req: EngineSubmission;
  echo: Echo | null;
  prompt: number;
  /** How the reply writes tool calls, when the request may call tools (the sinks read them out). */
  tools?: ToolFormat | null;
}

/**
 * The sampler a request asks for. A field left out (or null) takes hearth's default, the one the
 * CLI and the library use (DEFAULT_SAMPLER_OPTIONS: temperature 0.8, top_k 40, top_p 0.95,
 * min_p 0.05), as llama.cpp's server does; a field sent is used as sent. Penalties count the
 * tokens generated so far, never the prompt's (OpenAI's rule for its two penalties).
 */
export function samplerOptions(body: CommonRequest, promptTokens: number): SamplerOptions {
  const d = DEFAULT_SAMPLER_OPTIONS;
  const topP = body.top_p ?? d.topP;
  const topK = body.top_k ?? d.topK;
  return {
    // top_p 0 keeps only the best token: the same as greedy.
    temperature: topP === 0 ? 0 : (body.temperature ?? d.temperature),
    topP: topP === 0 ? 1 : topP,
    // vLLM's "off" is -1, llama.cpp's 0.
    topK: Math.max(topK, 0),
    minP: body.min_p ?? d.minP,
    repeatPenalty: body.repeat_penalty ?? d.repeatPenalty,
    presencePenalty: body.presence_penalty ?? d.presencePenalty,
    frequencyPenalty: body.frequency_penalty ?? d.frequencyPenalty,
    penaltyLastN: -1,
    penaltyFrom: promptTokens,
    ...(body.seed != null ? { seed: body.seed } : {}),
  };
}

/**
 * The completion limit a request asks for: `max_completion_tokens` over `max_tokens`; an
 * explicit null means "as many as the context leaves"; absent gives `absent`.
 */
function completionLimit(body: CommonRequest, absent: number | null): number | null {
  if (body.max_completion_tokens != null) return body.max_completion_tokens;
  if (body.max_tokens != null) return body.max_tokens;
  return body.max_completion_tokens === null || body.max_tokens === null ? null : absent;
}

/** Rules across fields that a schema cannot hold; throws RequestError naming the field. */
function checkFormat(body: CommonRequest): void {
  const rf = body.response_format;
  if (rf?.type !== "json_schema") return;
  if (rf.json_schema?.schema === undefined)
    throw new RequestError(
      "response_format.json_schema.schema is required with type json_schema",
      "response_format.json_schema",
    );
  try {
    new SchemaRecognizer(compileSchema(rf.json_schema.schema, "response_format.json_schema.schema"));
  } catch (err) {
    if (!(err instanceof SchemaError)) throw err;
    throw new RequestError(err.message, "response_format.json_schema.schema");
  }
}

/** The engine request for one prompt; throws RequestError naming the field. */
export function engineRequest(
  ctx: RequestContext,
  body: CommonRequest,
  promptIds: number[],
  requested: number | null,
  promptField: string,
): EngineSubmission {
  const { tokenizer, contextTokens } = ctx;
  if (promptIds.length === 0) throw new RequestError("the prompt is empty", promptField);
  const room = contextTokens - promptIds.length;
  // Room for one token at least, except for scoring a prompt (max_tokens 0).
  if (room < (requested === 0 ? 0 : 1) || (requested !== null && requested > room)) {
    throw new RequestError(
      `${promptField.includes("[") ? `${promptField}: ` : ""}This model's maximum context length is ${contextTokens} tokens. However, you requested ${promptIds.length + (requested ?? 1)} tokens (${promptIds.length} in the prompt, ${requested ?? 1} for the completion). Please reduce the prompt or max_tokens.`,
      requested !== null && room > 0
        ? body.max_completion_tokens != null
          ? "max_completion_tokens"
          : "max_tokens"
        : promptField,
      "context_length_exceeded",
    );
  }
  const sampling = samplerOptions(body, promptIds.length);
  if (body.logit_bias) {
    const entries = Object.entries(body.logit_bias);
    if (entries.length > MAX_LOGIT_BIAS_ENTRIES)
      throw new RequestError(
        `logit_bias has ${entries.length} entries; the limit is ${MAX_LOGIT_BIAS_ENTRIES}`,
        "logit_bias",
      );
    const bias: Record<number, number> = {};
    for (const [key, value] of entries) {
      const id = Number(key);
      if (!/^\d+$/.test(key) || id >= tokenizer.vocabSize)
        throw new RequestError(
          `logit_bias key "${key}" is not a token id below ${tokenizer.vocabSize}`,
          "logit_bias",
        );
      bias[id] = value;
    }
    sampling.logitBias = bias;
  }
  const stop = body.stop == null ? [] : typeof body.stop === "string" ? [body.stop] : body.stop;
  if (stop.some((s) => s.length === 0)) throw new RequestError("stop strings must not be empty", "stop");
  // A predicted output turns speculative decoding on for the request (unless it says
  // `speculative: false`): its tokens are the drafts. Only as much as the reply can hold counts.
  const prediction = body.prediction?.content;
  const predicted =
    prediction == null
      ? []
      : tokenizer
          .encode(typeof prediction === "string" ? prediction : prediction.map((p) => p.text).join(""), {
            addSpecial: false,
          })
          .slice(0, requested ?? room);
  // JSON mode: the reply is one JSON object (its drafts would need the constraint: none);
  // json_schema: one matching the schema (compiled in checkFormat).
  const json = body.response_format?.type === "json_object";
  const jsonSchema =
    body.response_format?.type === "json_schema" ? body.response_format.json_schema?.schema : undefined;
  const source =
    typeof body.speculative === "object" && body.speculative !== null ? body.speculative.draft : undefined;
  if (source !== undefined && source !== "lookup" && ctx.draftModel !== true)
    throw new RequestError(
      `speculative.draft "${source}" needs a draft model: this server has none (start it with -md MODEL)`,
      "speculative",
    );
  const settings =
    body.speculative === false || json || jsonSchema !== undefined
      ? null
      : (ctx.speculative ??
        (predicted.length > 0
          ? (ctx.speculativeOptIn ?? PREDICTION_DRAFTS)
          : body.speculative
            ? (ctx.speculativeOptIn ?? resolveSpeculative(true))
            : null));
  const speculative = settings !== null && source !== undefined ? { ...settings, draft: source } : settings;
  return {
    promptIds,
    sampling,
    maxTokens: requested ?? room,
    stop,
    ignoreEos: body.ignore_eos === true,
    speculative,
    ...(predicted.length > 0 && speculative !== null ? { predictedIds: predicted } : {}),
    ...(json ? { json } : {}),
    ...(jsonSchema !== undefined ? { jsonSchema } : {}),
  };
}

/**
 * A request's choices: `n` per prompt, prompt by prompt. Seeded requests give choice j of a
 * prompt the seed + j, so a seeded request is reproducible and its choices differ.
 */
function choicesOf(
  ctx: RequestContext,
  body: CommonRequest,
  prompts: Array<{ req: EngineSubmission; echo: Echo | null }>,
): Choice[] {
  const n = body.n ?? 1;
  const total = prompts.length * n;
  if (total > MAX_CHOICES)
    throw new RequestError(
      `${prompts.length} prompts x n ${n} is ${total} choices; the limit is ${MAX_CHOICES}`,
      "n",
    );
  if (total > ctx.capacity)
    throw new RequestError(
      `${total} choices is more than this server runs and queues at once (${ctx.capacity})`,
      n > 1 ? "n" : "prompt",
    );
  const seed = body.seed ?? null;
  if (seed !== null && seed > MAX_SEED - (n - 1))
    throw new RequestError(
      `seed + n - 1 must be at most ${MAX_SEED} (choice j samples with seed + j)`,
      "seed",
    );
  const out: Choice[] = [];
  for (const [i, p] of prompts.entries())
    for (let j = 0; j < n; j++)
      out.push({
        req: seed === null || j === 0 ? p.req : { ...p.req, sampling: { ...p.req.sampling, seed: seed + j } },
        echo: p.echo,
        prompt: i,
      });
  return out;
}

/** A chat completion's choices: the messages rendered with the model's template. */
/**
 * A conversation (OpenAI-shaped history: the chat route's messages, or the Messages route's mapped
 * onto them) as prompt ids: the tools (null: none shown) and tool turns in the format's shape, then
 * the model's chat template. A template that cannot render it is a 400 on `messages`.
 */
export function renderConversation(
  ctx: RequestContext,
  format: ToolFormat,
  messages: unknown,
  tools: FunctionTool[] | null,
): number[] {
  const conversation = toolConversation(format, messages as Parameters<typeof toolConversation>[1], tools);
  try {
    return encodeChat(ctx.chatTemplate, ctx.tokenizer, conversation.messages as ChatMessage[], {
      addGenerationPrompt: true,
      variables: conversation.variables,
    });
  } catch (err) {
    throw new RequestError(
      `messages cannot be rendered with the chat template: ${(err as Error).message}`,
      "messages",
    );
  }
}

export function chatChoices(ctx: RequestContext, body: ChatCompletionRequest): Choice[] {
  if (body.logprobs !== true && body.top_logprobs != null)
    throw new RequestError("top_logprobs needs logprobs: true", "top_logprobs");
  checkFormat(body);
  const format = detectToolFormat(ctx.chatTemplate.source);
  const tools = (body.tools ?? []) as FunctionTool[];
  let spec: ReturnType<typeof toolCallSpec>;
  try {
    spec = toolCallSpec(
      format,
      tools,
      (body.tool_choice ?? "auto") as ToolChoice,
      body.parallel_tool_calls ?? true,
    );
  } catch (err) {
    if (err instanceof ToolError) throw new RequestError(err.message, err.field);
    throw err;
  }
  if (spec !== null && body.response_format != null && body.response_format.type !== "text")
    throw new RequestError("tools cannot be combined with response_format json", "response_format");
  // tool_choice "none": the tools are not shown to the model either.
  const ids = renderConversation(ctx, format, body.messages, spec === null ? null : tools);
  const logprobs = body.logprobs === true ? (body.top_logprobs ?? 0) : null;
  const base = engineRequest(ctx, body, ids, completionLimit(body, null), "messages");
  const req =
    spec === null
      ? { ...base, logprobs }
      : { ...base, logprobs, tools: spec, speculative: null, predictedIds: [] };
  return choicesOf(ctx, body, [{ req, echo: null }]).map((c) => ({
    ...c,
    tools: spec === null ? null : format,
  }));
}

/** A legacy completion's choices: `n` for each of its prompts (texts or token ids). */
export function completionChoices(ctx: RequestContext, body: CompletionRequest): Choice[] {
  checkFormat(body);
  const { tokenizer } = ctx;
  const max = completionLimit(body, DEFAULT_COMPLETION_TOKENS);
  const logprobs = body.logprobs ?? null;
  const p = body.prompt;
  const prompts: Array<string | number[]> =
    typeof p === "string"
      ? [p]
      : typeof p[0] === "number"
        ? [p as number[]]
        : (p as Array<string | number[]>);
  // A list of prompts names its items in errors (prompt[0][1]), even a list of one.
  const listed = typeof p !== "string" && typeof p[0] !== "number";
  const perPrompt = prompts.map((one, i) => {
    const field = listed ? `prompt[${i}]` : "prompt";
    let ids: number[];
    // Control-token text in a raw prompt is the token (the caller writes the template), as
    // llama.cpp's and vLLM's servers read it; chat messages never are (see encodeChat).
    if (typeof one === "string") ids = tokenizer.encode(one, { parseSpecial: true });
    else {
      ids = one;
      const bad = ids.findIndex((x) => x >= tokenizer.vocabSize);
      if (bad >= 0)
        throw new RequestError(
          `${field}[${bad}] is not a token id below ${tokenizer.vocabSize}`,
          `${field}[${bad}]`,
        );
    }
    const echoed = typeof one === "string" ? one : tokenizer.decode(ids, { special: true });
    const hidden = typeof one === "string" && tokenizer.addBos ? 1 : 0;
    const echo = body.echo === true ? { text: echoed, ids, hidden } : null;
    if (max === 0 && echo === null)
      throw new RequestError(
        "max_tokens: 0 generates nothing; it is for scoring a prompt with echo",
        "max_tokens",
      );
    // The engine scores the prompt for echoed logprobs, and for max_tokens 0 (its one job).
    const promptLogprobs = echo !== null && (logprobs !== null || max === 0);
    return { req: { ...engineRequest(ctx, body, ids, max, field), logprobs, promptLogprobs }, echo };
  });
  return choicesOf(ctx, body, perPrompt);
}
