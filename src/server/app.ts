// The OpenAI-compatible HTTP API as an Elysia app: /v1/chat/completions, /v1/completions,
// /v1/models, /health, /metrics. Requests are validated by schema, tokenized here, and handed to
// the engine (which runs in a worker); responses stream as SSE or come back whole.
import { createHash, timingSafeEqual } from "node:crypto";
import { Elysia, t } from "elysia";
import { CHAT_ROLES, type ChatMessage, type ChatTemplate, encodeChat } from "../chat/index.ts";
import type { EngineEvent, EngineFinishReason, EngineRequest, SchedulerStats } from "../engine/scheduler.ts";
import {
  MAX_LOGIT_BIAS,
  MAX_LOGIT_BIAS_ENTRIES,
  MAX_SEED,
  MAX_TOP_LOGPROBS,
  type SamplerOptions,
  type TokenLogprob,
} from "../sampling/index.ts";
import { compileSchema, SchemaError, SchemaRecognizer } from "../sampling/json-schema.ts";
import { type ResolvedSpeculative, resolveSpeculative } from "../speculative.ts";
import type { StreamDecoder, Tokenizer } from "../tokenizer/index.ts";
import { ServerMetrics } from "./metrics.ts";

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

export interface AppOptions {
  engine: ServingEngine;
  tokenizer: Tokenizer;
  chatTemplate: ChatTemplate;
  /** The id /v1/models lists and responses carry. */
  modelId: string;
  /** Most tokens one request holds (prompt + completion). */
  contextTokens: number;
  /** Bearer key every route but /health requires when set. */
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
  /**
   * Origins whose browser pages may call the server (CORS); "*" for any. Omitted: no CORS
   * headers, so browsers keep pages of other origins out.
   */
  corsOrigins?: readonly string[];
}

export const DEFAULT_MAX_BODY_BYTES = 1 << 20;

/** Longest error message a response carries. */
const MAX_ERROR_CHARS = 1000;

/** Most choices one request may ask for (prompts x n). */
export const MAX_CHOICES = 64;

/** Tokens a /v1/completions request gets when it names no limit (OpenAI's and vLLM's default). */
export const DEFAULT_COMPLETION_TOKENS = 16;

/**
 * The completion limit a request asks for: `max_completion_tokens` over `max_tokens`; an
 * explicit null means "as many as the context leaves"; absent gives `absent`.
 */
function completionLimit(body: SamplingBody, absent: number | null): number | null {
  if (body.max_completion_tokens != null) return body.max_completion_tokens;
  if (body.max_tokens != null) return body.max_tokens;
  return body.max_completion_tokens === null || body.max_tokens === null ? null : absent;
}

/** An error answer in OpenAI's shape. */
function apiError(
  status: number,
  message: string,
  type: string,
  param: string | null = null,
  headers = {},
  code: string | null = null,
) {
  // A message may quote the request (a refused value); never echo megabytes of it back.
  const shown = message.length > MAX_ERROR_CHARS ? `${message.slice(0, MAX_ERROR_CHARS)}… (cut)` : message;
  return new Response(JSON.stringify({ error: { message: shown, type, param, code } }), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/**
 * Draft settings of a request with a predicted output when the server sets none: 8 tokens per
 * step (a prediction is mostly right for long stretches; 4 left about a third of the saving).
 */
const PREDICTION_DRAFTS = resolveSpeculative({ maxDraftTokens: 8 });

class RequestError extends Error {
  constructor(
    message: string,
    readonly param: string | null,
    /** OpenAI's machine-readable code, where it has one (`context_length_exceeded`). */
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

/** A body over the size limit (413). */
class BodyTooLargeError extends Error {}

/**
 * An integer field. Elysia's `t.Integer` also takes numeric strings ("5"), while its `t.Number`
 * does not, so `max_tokens: "5"` passed where `temperature: "0.5"` failed; OpenAI's API refuses
 * both. A number that is a multiple of 1 is an integer and nothing else.
 */
function Int(opts: { minimum?: number; maximum?: number } = {}) {
  return t.Number({ ...opts, multipleOf: 1 });
}

const Stop = t.Union([t.String(), t.Array(t.String(), { maxItems: 4 }), t.Null()]);
const sampling = {
  model: t.Optional(t.String()),
  max_tokens: t.Optional(t.Union([Int({ minimum: 1 }), t.Null()])),
  // OpenAI's newer name for max_tokens; it wins when both are sent.
  max_completion_tokens: t.Optional(t.Union([Int({ minimum: 1 }), t.Null()])),
  temperature: t.Optional(t.Union([t.Number({ minimum: 0, maximum: 2 }), t.Null()])),
  top_p: t.Optional(t.Union([t.Number({ minimum: 0, maximum: 1 }), t.Null()])),
  seed: t.Optional(t.Union([Int({ minimum: -MAX_SEED, maximum: MAX_SEED }), t.Null()])),
  logit_bias: t.Optional(
    t.Union([
      t.Record(t.String(), t.Number({ minimum: -MAX_LOGIT_BIAS, maximum: MAX_LOGIT_BIAS })),
      t.Null(),
    ]),
  ),
  // OpenAI features hearth does not implement: accepted only with values that ask for nothing
  // (checked in unsupported()), so a client relying on them gets a 400 naming the field instead
  // of a success that quietly ignored it.
  response_format: t.Optional(t.Any()),
  tools: t.Optional(t.Any()),
  tool_choice: t.Optional(t.Any()),
  parallel_tool_calls: t.Optional(t.Any()),
  functions: t.Optional(t.Any()),
  function_call: t.Optional(t.Any()),
  modalities: t.Optional(t.Any()),
  audio: t.Optional(t.Any()),
  web_search_options: t.Optional(t.Any()),
  // Predicted output: drafts for speculative decoding (the output does not depend on it).
  prediction: t.Optional(
    t.Union([
      t.Object({
        type: t.Literal("content"),
        content: t.Union([t.String(), t.Array(t.Object({ type: t.Literal("text"), text: t.String() }))]),
      }),
      t.Null(),
    ]),
  ),
  stop: t.Optional(Stop),
  stream: t.Optional(t.Union([t.Boolean(), t.Null()])),
  stream_options: t.Optional(t.Union([t.Object({ include_usage: t.Optional(t.Boolean()) }), t.Null()])),
  // Choices per prompt: generated side by side in the batch (seeded: choice i samples with seed + i).
  n: t.Optional(t.Union([Int({ minimum: 1, maximum: MAX_CHOICES }), t.Null()])),
  presence_penalty: t.Optional(t.Union([t.Number({ minimum: -2, maximum: 2 }), t.Null()])),
  frequency_penalty: t.Optional(t.Union([t.Number({ minimum: -2, maximum: 2 }), t.Null()])),
  user: t.Optional(t.Union([t.String(), t.Null()])),
  /** Not OpenAI: keep generating through end-of-generation tokens (as llama.cpp's server). */
  ignore_eos: t.Optional(t.Boolean()),
  /** Not OpenAI: speculative decoding by prompt lookup on or off for this request (same output). */
  speculative: t.Optional(t.Boolean()),
};

const ContentPart = t.Object({ type: t.String(), text: t.Optional(t.String()) });
export const ChatCompletionBody = t.Object({
  ...sampling,
  logprobs: t.Optional(t.Union([t.Boolean(), t.Null()])),
  top_logprobs: t.Optional(t.Union([Int({ minimum: 0, maximum: MAX_TOP_LOGPROBS }), t.Null()])),
  messages: t.Array(
    t.Object({
      role: t.Union(CHAT_ROLES.map((r) => t.Literal(r))),
      content: t.Union([t.String(), t.Array(ContentPart), t.Null()]),
      name: t.Optional(t.String()),
      tool_calls: t.Optional(t.Any()),
      tool_call_id: t.Optional(t.Any()),
    }),
    { minItems: 1 },
  ),
});

export const CompletionBody = t.Object({
  ...sampling,
  // The legacy endpoint's logprobs is the number of alternatives per token (OpenAI allows 0..5).
  logprobs: t.Optional(t.Union([Int({ minimum: 0, maximum: 5 }), t.Null()])),
  /** The prompt before the completion in `text` (and its tokens' log-probabilities with `logprobs`). */
  echo: t.Optional(t.Union([t.Boolean(), t.Null()])),
  // 0 only with echo: score the prompt, generate nothing (what evaluation harnesses send).
  max_tokens: t.Optional(t.Union([Int({ minimum: 0 }), t.Null()])),
  suffix: t.Optional(t.Any()),
  best_of: t.Optional(t.Any()),
  // One prompt (text or token ids) or several (a list of texts or of token-id lists), each
  // answered by n choices: choice i * n + j answers prompt i.
  prompt: t.Union([
    t.String(),
    t.Array(t.String(), { minItems: 1, maxItems: MAX_CHOICES }),
    t.Array(Int({ minimum: 0 }), { minItems: 1 }),
    t.Array(t.Array(Int({ minimum: 0 }), { minItems: 1 }), { minItems: 1, maxItems: MAX_CHOICES }),
  ]),
});

type SamplingBody = {
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  ignore_eos?: boolean;
  speculative?: boolean;
  logit_bias?: Record<string, number> | null;
  n?: number | null;
  prediction?: { type: "content"; content: string | Array<{ type: "text"; text: string }> } | null;
} & Record<string, unknown>;

/** True for a value that asks for nothing: absent, null, false, 0, "", [] or {}. */
function asksNothing(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === "") return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === "object" && Object.keys(v as object).length === 0;
}

/** The first OpenAI feature the request asks for that hearth does not implement, as a RequestError. */
function unsupported(kind: "chat" | "completion", body: Record<string, unknown>): RequestError | null {
  const no = (param: string, what: string) =>
    new RequestError(`${param}: ${what} is not supported by hearth`, param);
  if (kind === "chat" && body.logprobs !== true && !asksNothing(body.top_logprobs))
    return new RequestError("top_logprobs needs logprobs: true", "top_logprobs");
  const rf = body.response_format as { type?: unknown } | null | undefined;
  if (!asksNothing(rf) && rf?.type !== "text" && rf?.type !== "json_object" && rf?.type !== "json_schema")
    return no(
      "response_format",
      `response_format ${JSON.stringify(rf?.type ?? rf)} (only "text", "json_object" and "json_schema")`,
    );
  if (rf?.type === "json_schema") {
    const js = (rf as { json_schema?: { schema?: unknown } }).json_schema;
    if (js === null || typeof js !== "object" || js.schema === undefined)
      return new RequestError(
        "response_format.json_schema.schema is required with type json_schema",
        "response_format.json_schema",
      );
    try {
      new SchemaRecognizer(compileSchema(js.schema, "response_format.json_schema.schema"));
    } catch (err) {
      if (!(err instanceof SchemaError)) throw err;
      return new RequestError(err.message, "response_format.json_schema.schema");
    }
  }
  for (const param of ["tools", "functions"])
    if (!asksNothing(body[param])) return no(param, "function calling");
  // "none" and "auto" with no tools ask for nothing (the deprecated function_call alike).
  for (const param of ["tool_choice", "function_call"]) {
    const choice = body[param];
    if (!asksNothing(choice) && choice !== "none" && choice !== "auto") return no(param, "function calling");
  }
  const modalities = body.modalities;
  if (Array.isArray(modalities) && modalities.some((m) => m !== "text"))
    return no("modalities", `output modalities other than text (${JSON.stringify(modalities)})`);
  if (!asksNothing(body.audio)) return no("audio", "audio output");
  // Its mere presence turns search on, even as {}.
  if (body.web_search_options !== undefined && body.web_search_options !== null)
    return no("web_search_options", "web search");
  if (kind === "chat") {
    const messages = (body.messages ?? []) as { tool_calls?: unknown }[];
    const i = messages.findIndex((m) => !asksNothing(m.tool_calls));
    if (i >= 0) return no(`messages[${i}].tool_calls`, "function calling");
  } else {
    if (!asksNothing(body.suffix)) return no("suffix", "a suffix (fill-in-the-middle)");
    if (body.best_of !== undefined && body.best_of !== null && body.best_of !== 1)
      return no("best_of", "best_of > 1");
  }
  return null;
}

function finishReason(f: EngineFinishReason): "stop" | "length" {
  return f === "length" || f === "context" ? "length" : "stop";
}

interface SchemaNode {
  anyOf?: SchemaNode[];
  type?: string;
  const?: unknown;
  minimum?: number;
  maximum?: number;
  multipleOf?: number;
  items?: SchemaNode;
  minItems?: number;
  maxItems?: number;
}

/** What a schema accepts, in words: "an integer >= 1 or null", "a number from 0 to 2". */
function describeSchema(s: SchemaNode): string {
  if (s.anyOf) return s.anyOf.map(describeSchema).join(" or ");
  if (s.const !== undefined) return JSON.stringify(s.const);
  const bounds = (): string => {
    if (s.minimum !== undefined && s.maximum !== undefined)
      return s.minimum === s.maximum ? ` equal to ${s.minimum}` : ` from ${s.minimum} to ${s.maximum}`;
    if (s.minimum !== undefined) return ` >= ${s.minimum}`;
    if (s.maximum !== undefined) return ` <= ${s.maximum}`;
    return "";
  };
  switch (s.type) {
    case "integer":
      return `an integer${bounds()}`;
    case "number":
      return `${s.multipleOf === 1 ? "an integer" : "a number"}${bounds()}`;
    case "string":
      return "a string";
    case "boolean":
      return "a boolean";
    case "null":
      return "null";
    case "object":
      return "an object";
    case "array": {
      const items = s.items?.type !== undefined ? ` of ${plural(describeSchema(s.items))}` : "";
      return `an array${items}${itemCount(s.minItems, s.maxItems)}`;
    }
    default:
      return "a valid value";
  }
}

function itemCount(min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined)
    return min === max ? ` (exactly ${min})` : ` (${min} to ${max})`;
  if (min !== undefined && min > 0) return ` (at least ${min})`;
  if (max !== undefined) return ` (at most ${max})`;
  return "";
}

/** "an integer >= 0" -> "integers >= 0". */
function plural(what: string): string {
  return what.replace(/^an? (\w+)/, (_, noun: string) => `${noun}s`);
}

type JsonKind = "null" | "array" | "number" | "string" | "boolean" | "object" | "other";

function jsonKind(v: unknown): JsonKind {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  const t = typeof v;
  return t === "number" || t === "string" || t === "boolean" || t === "object" ? t : "other";
}

/** Whether a value of this JSON kind can satisfy the schema (ignoring bounds and contents). */
function acceptsKind(s: SchemaNode, kind: JsonKind): boolean {
  if (s.anyOf) return s.anyOf.some((b) => acceptsKind(b, kind));
  if (s.const !== undefined) return jsonKind(s.const) === kind;
  if (s.type === "integer") return kind === "number";
  return s.type === kind;
}

/** The kind of a JSON value as a person would name it ("the string \"x\"", "the integer 5", "an empty array"). */
function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v))
    return v.length === 0 ? "an empty array" : `an array of ${v.length} item${v.length === 1 ? "" : "s"}`;
  if (typeof v === "number") return Number.isInteger(v) ? `the integer ${v}` : `the number ${v}`;
  if (typeof v === "string")
    return v.length <= 32 ? `the string ${JSON.stringify(v)}` : `a string of ${v.length} characters`;
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

interface ValueErrorLike {
  message?: string;
  path?: string;
  schema?: SchemaNode;
  value?: unknown;
  errors?: Array<Iterable<ValueErrorLike> & { First?: () => ValueErrorLike | undefined }>;
}

/** The first error a union branch reported (TypeBox keeps one iterator per branch). */
function branchError(ve: ValueErrorLike, k: number): ValueErrorLike | undefined {
  const it = ve.errors?.[k];
  if (it === undefined) return undefined;
  if (typeof it.First === "function") return it.First();
  for (const e of it) return e;
  return undefined;
}

/**
 * Where a value failed and why, in words: "expected an integer >= 1 or null, got a string".
 * A union whose value has the right JSON kind failed inside one branch (an out-of-range entry of
 * an object, a wrong item of an array): that branch's own error is the one to report, so the
 * message never reads "expected an object, got an object".
 */
function describeFailure(ve: ValueErrorLike, depth = 0): { path: string; detail: string } {
  const path = ve.path ?? "";
  if (ve.value === undefined) return { path, detail: "required, missing" };
  if (!ve.schema) return { path, detail: ve.message ?? "invalid value" };
  const kind = jsonKind(ve.value);
  const branches = ve.schema.anyOf;
  if (branches && depth < 16) {
    const fitting = branches.map((b, k) => ({ b, k })).filter(({ b }) => acceptsKind(b, kind));
    if (fitting.length === 1) {
      const { b, k } = fitting[0] as { b: SchemaNode; k: number };
      const inner = branchError(ve, k);
      if (inner && (inner.path ?? "").length > path.length) return describeFailure(inner, depth + 1);
      return { path, detail: `expected ${describeSchema(b)}, got ${kindOf(ve.value)}` };
    }
    // Several branches take this kind (a prompt as strings or as token ids): follow one only
    // when it failed on a constraint inside the value, not on the kind of an item.
    for (const { k } of fitting) {
      const inner = branchError(ve, k);
      if (!inner?.schema || (inner.path ?? "").length <= path.length) continue;
      if (acceptsKind(inner.schema, jsonKind(inner.value))) return describeFailure(inner, depth + 1);
    }
  }
  return { path, detail: `expected ${describeSchema(ve.schema)}, got ${kindOf(ve.value)}` };
}

/** A ValidationError in words: the innermost failing place, what it accepts and what it got. */
function validationMessage(err: unknown): string {
  const ve = (err as { valueError?: ValueErrorLike }).valueError;
  if (!ve) return `${fieldOf(err)}: invalid value`;
  const { path, detail } = describeFailure(ve);
  return `${formatPath(path, (err as { value?: unknown }).value)}: ${detail}`;
}

/**
 * A JSON pointer `/a/b/0/c` as `a.b[0].c`. With the value the pointer points into, a segment is
 * an index only where that value holds an array there: an object's key that happens to be all
 * digits (a `logit_bias` token id) reads `logit_bias["5"]`, as do keys that are not identifiers.
 */
function formatPath(path: string, root?: unknown): string {
  const parts = path
    .split("/")
    .slice(1)
    .map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
  let out = "";
  let at: unknown = root;
  for (const p of parts) {
    const index = root === undefined ? /^\d+$/.test(p) : Array.isArray(at) && /^\d+$/.test(p);
    if (index) out += `[${p}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(p)) out += out === "" ? p : `.${p}`;
    else out += `[${JSON.stringify(p)}]`;
    at = at !== null && typeof at === "object" ? (at as Record<string, unknown>)[p] : undefined;
  }
  return out || "body";
}

/** A ValidationError's first failing field as `a.b[0].c`. */
function fieldOf(err: unknown): string {
  const e = err as { value?: unknown; valueError?: { path?: string }; all?: Array<{ path?: string }> };
  return formatPath(e.valueError?.path ?? e.all?.[0]?.path ?? "", e.value);
}

export function createApp(opts: AppOptions) {
  const { engine, tokenizer, chatTemplate, modelId, contextTokens } = opts;
  const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const retryAfter = String(opts.retryAfterSeconds ?? 1);
  const metrics = new ServerMetrics();
  const created_s = Math.floor(Date.now() / 1000);
  const modelObject = { id: modelId, object: "model", created: created_s, owned_by: "hearth" };
  const wrongMethod = () =>
    apiError(405, "this route takes POST with a JSON body", "invalid_request_error", null, { allow: "POST" });
  const onlyGet = () =>
    apiError(405, "this route takes GET", "invalid_request_error", null, { allow: "GET, HEAD" });

  /** Builds the engine request shared by both endpoints; throws RequestError naming the field. */
  function engineRequest(
    body: SamplingBody,
    promptIds: number[],
    maxTokensField: number | null | undefined,
    promptField: string,
  ) {
    if (promptIds.length === 0) throw new RequestError("the prompt is empty", promptField);
    const room = contextTokens - promptIds.length;
    const requested = maxTokensField ?? null;
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
    const temperature = body.temperature ?? 1;
    const topP = body.top_p ?? 1;
    const sampling: SamplerOptions = {
      // top_p 0 keeps only the best token: the same as greedy.
      temperature: topP === 0 ? 0 : temperature,
      topP: topP === 0 ? 1 : topP,
      topK: 0,
      minP: 0,
      presencePenalty: body.presence_penalty ?? 0,
      frequencyPenalty: body.frequency_penalty ?? 0,
      // OpenAI's penalties count the tokens sampled so far, never the prompt's.
      penaltyLastN: -1,
      penaltyFrom: promptIds.length,
    };
    if (body.seed !== undefined && body.seed !== null) sampling.seed = body.seed;
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
    const predicted = body.prediction
      ? tokenizer
          .encode(
            typeof body.prediction.content === "string"
              ? body.prediction.content
              : body.prediction.content.map((p) => p.text).join(""),
            { addSpecial: false },
          )
          .slice(0, requested ?? room)
      : [];
    // JSON mode: the reply is one JSON object (its drafts would need the constraint: none);
    // json_schema: one matching the schema (checked in unsupported()).
    const format = body.response_format as
      | { type?: unknown; json_schema?: { schema?: unknown } }
      | null
      | undefined;
    const json = format?.type === "json_object";
    const jsonSchema = format?.type === "json_schema" ? format.json_schema?.schema : undefined;
    const speculative =
      body.speculative === false || json || jsonSchema !== undefined
        ? null
        : (opts.speculative ??
          (predicted.length > 0
            ? (opts.speculativeOptIn ?? PREDICTION_DRAFTS)
            : body.speculative
              ? (opts.speculativeOptIn ?? resolveSpeculative(true))
              : null));
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

  type Kind = "chat" | "completion";
  /**
   * A token's score and where its text starts in the request's text; the echoed prompt's first
   * token has no score (null), as in OpenAI's API.
   */
  type Scored = { id: number; logprob: number | null; top: TokenLogprob["top"] | null; offset: number };
  /**
   * The prompt a completion echoes before its text, control tokens shown by name: a token-id
   * prompt decoded, a text prompt as sent. `hidden` leading ids take no room in it (the BOS the
   * tokenizer adds to a text prompt).
   */
  type Echo = { text: string; ids: readonly number[]; hidden: number };
  /** The echoed prompt's scores: nothing for its first token, then the engine's. */
  const promptScores = (echo: Echo, lps: TokenLogprob[]): Array<Omit<Scored, "offset">> => [
    { id: echo.ids[0] as number, logprob: null, top: null },
    ...lps,
  ];

  const utf8 = new TextDecoder();
  /** A token as text (control tokens by name; a partial UTF-8 character shows as U+FFFD). */
  const tokenText = (id: number) => utf8.decode(tokenizer.tokenBytes(id, true));
  const tokenBytes = (id: number) => Array.from(tokenizer.tokenBytes(id, true));
  const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
  /**
   * A token as the legacy endpoint lists it: its text, or `bytes:\xNN...` when its bytes are not
   * whole UTF-8 characters (as OpenAI writes them), so that no two tokens share a key.
   */
  const legacyTokenText = (id: number) => {
    const bytes = tokenizer.tokenBytes(id, true);
    try {
      return strictUtf8.decode(bytes);
    } catch {
      return `bytes:${Array.from(bytes, (b) => `\\x${b.toString(16).padStart(2, "0")}`).join("")}`;
    }
  };
  /**
   * Scores of a request's tokens in order, each with where its text starts in the returned text
   * (UTF-16 units; a stream decoder over the tokens, so a character split over several tokens is
   * counted once). A stop string cuts the text: `keep` drops the tokens that start past it.
   */
  const scoredTokens = (echo: Echo | null) => {
    const decoder = tokenizer.streamDecoder();
    let at = 0;
    const list: Scored[] = [];
    const add = (lps: Array<Omit<Scored, "offset">>, from: StreamDecoder, hidden = 0) => {
      for (const [i, lp] of lps.entries()) {
        list.push({ ...lp, offset: at });
        const text = from.push(lp.id);
        if (i >= hidden) at += text.length;
      }
    };
    return {
      /** The scores an engine event carries: the echoed prompt's (once), then its tokens'. */
      record(ev: EngineEvent) {
        if (ev.type === "error") return;
        if (echo && ev.promptLogprobs) {
          // Offsets follow echo.text: control tokens by name, an added BOS in no room.
          const prompt = tokenizer.streamDecoder({ special: true });
          add(promptScores(echo, ev.promptLogprobs), prompt, echo.hidden);
          at += prompt.flush().length;
        }
        if (ev.logprobs) add(ev.logprobs, decoder);
      },
      take(): Scored[] {
        return list.splice(0);
      },
      keep(textLength: number) {
        const cut = list.findIndex((lp) => lp.offset >= textLength);
        if (cut >= 0) list.length = cut;
      },
    };
  };
  /** An object whose keys keep their order in JSON (JavaScript moves integer-like keys first). */
  class OrderedEntries {
    constructor(readonly entries: Array<[string, number]>) {}
  }
  /** JSON text of `value`, writing OrderedEntries in their own order (top_logprobs "7" before "1"). */
  function orderedJson(value: unknown): string {
    const parts: string[] = [];
    const mark = `\u0000${crypto.randomUUID()}:`;
    const text = JSON.stringify(value, (_key, v) => {
      if (!(v instanceof OrderedEntries)) return v;
      parts.push(`{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${JSON.stringify(x)}`).join(",")}}`);
      return `${mark}${parts.length - 1}`;
    });
    if (parts.length === 0) return text;
    // Split at the quoted mark (unique per call): each piece after the first starts `<i>"`.
    const pieces = text.split(JSON.stringify(mark).slice(0, -1));
    return pieces
      .map((piece, k) => {
        if (k === 0) return piece;
        const end = piece.indexOf('"');
        return (parts[Number(piece.slice(0, end))] as string) + piece.slice(end + 1);
      })
      .join("");
  }
  /**
   * `logprobs` of a choice or chunk in the endpoint's shape: chat's `{ content: [...] }` with
   * bytes and top_logprobs per token, or the legacy `{ tokens, token_logprobs, top_logprobs,
   * text_offset }`.
   */
  function logprobsShape(kind: Kind, lps: Scored[]) {
    if (kind === "chat")
      return {
        content: lps.map((lp) => ({
          token: tokenText(lp.id),
          logprob: lp.logprob,
          bytes: tokenBytes(lp.id),
          top_logprobs: (lp.top ?? []).map((t) => ({
            token: tokenText(t.id),
            logprob: t.logprob,
            bytes: tokenBytes(t.id),
          })),
        })),
        refusal: null,
      };
    return {
      tokens: lps.map((lp) => legacyTokenText(lp.id)),
      token_logprobs: lps.map((lp) => lp.logprob),
      top_logprobs: lps.map((lp) => (lp.top === null ? null : new OrderedEntries(legacyTop(lp)))),
      text_offset: lps.map((lp) => lp.offset),
    };
  }

  /**
   * A token's legacy `top_logprobs` entries: the top ones and, as OpenAI's legacy API always
   * adds it, the token itself where it is not among them (so up to `logprobs` + 1 entries), in
   * order of log-probability.
   */
  function legacyTop(lp: Scored): Array<[string, number]> {
    const top = lp.top ?? [];
    const entries = top.map((t): [string, number] => [legacyTokenText(t.id), t.logprob]);
    if (lp.logprob === null || top.some((t) => t.id === lp.id)) return entries;
    const at = top.findIndex((t) => t.logprob < (lp.logprob as number));
    entries.splice(at < 0 ? entries.length : at, 0, [legacyTokenText(lp.id), lp.logprob]);
    return entries;
  }

  /** The answer when the engine refuses a request: 429 when busy, 503 when it is not running. */
  function submitError(err: unknown): Response {
    const e = err as Error;
    if (e.name === "EngineUnavailableError")
      return apiError(503, e.message, "server_error", null, { "retry-after": retryAfter });
    return apiError(429, e.message, "rate_limit_error", null, { "retry-after": retryAfter });
  }

  /**
   * One choice of a response: its engine request and, on the legacy endpoint, the prompt it echoes
   * and which of the request's prompts it answers (a request's prompts are counted once each in
   * `usage`, however many choices each has).
   */
  type Choice = { req: Omit<EngineRequest, "id">; echo: Echo | null; prompt: number };

  /**
   * A request's choices: `n` per prompt, prompt by prompt. Seeded requests give choice j of a
   * prompt the seed + j, so a seeded request is reproducible and its choices differ.
   */
  function choicesOf(
    body: SamplingBody,
    prompts: Array<{ req: Omit<EngineRequest, "id">; echo: Echo | null }>,
  ): Choice[] {
    const n = body.n ?? 1;
    const total = prompts.length * n;
    if (total > MAX_CHOICES)
      throw new RequestError(
        `${prompts.length} prompts x n ${n} is ${total} choices; the limit is ${MAX_CHOICES}`,
        "n",
      );
    if (total > engine.capacity)
      throw new RequestError(
        `${total} choices is more than this server runs and queues at once (${engine.capacity})`,
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
          req:
            seed === null || j === 0 ? p.req : { ...p.req, sampling: { ...p.req.sampling, seed: seed + j } },
          echo: p.echo,
          prompt: i,
        });
    return out;
  }

  /** Runs a request's choices on the engine together and answers them as SSE or one JSON body. */
  function respond(
    kind: Kind,
    body: SamplingBody,
    choices: Choice[],
    request: Request,
  ): Response | Promise<Response> {
    const endpoint = kind === "chat" ? "chat_completions" : "completions";
    if (!engine.available) {
      metrics.countRequest(endpoint, "unavailable");
      return apiError(503, "the engine is not running", "server_error", null, { "retry-after": retryAfter });
    }
    if (engine.inFlight + choices.length > engine.capacity) {
      metrics.countRequest(endpoint, "queue_full");
      const need =
        choices.length === 1 ? "" : ` (this request needs ${choices.length} slots, one per choice)`;
      return apiError(
        429,
        `the server is busy: ${engine.inFlight} requests in flight (limit ${engine.capacity})${need}; retry later`,
        "rate_limit_error",
        null,
        { "retry-after": retryAfter },
      );
    }
    const started = performance.now();
    const withLogprobs = (choices[0] as Choice).req.logprobs != null;
    // Only the legacy logprobs carry key-ordered objects; everything else takes the plain path.
    const toJson: (v: unknown) => string =
      kind === "completion" && withLogprobs ? orderedJson : (v) => JSON.stringify(v);
    const id = `${kind === "chat" ? "chatcmpl" : "cmpl"}-${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
    const created = Math.floor(Date.now() / 1000);
    const object = kind === "chat" ? "chat.completion" : "text_completion";
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
        metrics.countRequest(endpoint, ev.finish);
        metrics.promptTokens += ev.promptTokens;
        metrics.cachedPromptTokens += ev.cachedTokens;
        metrics.completionTokens += ev.completionTokens;
      } else if (ev.type === "error") metrics.countRequest(endpoint, "error");
    };
    // OpenAI's shape: each prompt counted once (its first choice's figures), every choice's
    // tokens; prompt tokens whose KV came from the prefix cache are `cached_tokens`.
    type Done = Extract<EngineEvent, { type: "done" }>;
    const predicting = choices.some((c) => (c.req.predictedIds?.length ?? 0) > 0);
    const usageOf = (done: Done[]) => {
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
      return {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        prompt_tokens_details: { cached_tokens: cached },
        // With a predicted output: its draft tokens the model confirmed, and those it did not.
        ...(predicting
          ? {
              completion_tokens_details: {
                accepted_prediction_tokens: accepted,
                rejected_prediction_tokens: drafted - accepted,
              },
            }
          : {}),
      };
    };
    const reqIds = choices.map(() => "");
    /** Submits every choice; if the engine refuses one, the ones already submitted are cancelled. */
    const submitAll = (listen: (i: number, ev: EngineEvent) => void): void => {
      try {
        for (const [i, c] of choices.entries()) reqIds[i] = engine.submit(c.req, (ev) => listen(i, ev));
      } catch (err) {
        for (const r of reqIds) if (r !== "") engine.cancel(r);
        throw err;
      }
    };
    const cancelAll = (except = -1) => {
      for (const [i, r] of reqIds.entries()) if (i !== except && r !== "") engine.cancel(r);
    };

    if (!body.stream) {
      return new Promise<Response>((resolve) => {
        const texts = choices.map(() => "");
        const scores = choices.map((c) => scoredTokens(c.echo));
        const done: Array<Done | null> = choices.map(() => null);
        let answered = false;
        const onAbort = () => cancelAll();
        const answer = (res: Response) => {
          answered = true;
          request.signal.removeEventListener("abort", onAbort);
          resolve(res);
        };
        try {
          submitAll((i, ev) => {
            observe(i, ev);
            if (answered) return;
            (scores[i] as ReturnType<typeof scoredTokens>).record(ev);
            if (ev.type === "text") texts[i] += ev.text;
            else if (ev.type === "error") {
              cancelAll(i);
              const busy = ev.message.startsWith("queue_full");
              answer(
                apiError(busy ? 429 : 500, ev.message, busy ? "rate_limit_error" : "server_error", null, {
                  "retry-after": retryAfter,
                }),
              );
            } else {
              texts[i] = ((choices[i] as Choice).echo?.text ?? "") + texts[i] + ev.text;
              done[i] = ev;
              if (done.some((d) => d === null)) return;
              const out = choices.map((c, k) => {
                const text = texts[k] as string;
                const fr = finishReason((done[k] as Done).finish);
                const sc = scores[k] as ReturnType<typeof scoredTokens>;
                sc.keep(text.length);
                const logprobs = c.req.logprobs == null ? null : logprobsShape(kind, sc.take());
                return kind === "chat"
                  ? { index: k, message: { role: "assistant", content: text }, logprobs, finish_reason: fr }
                  : { index: k, text, logprobs, finish_reason: fr };
              });
              const whole = {
                id,
                object,
                created,
                model: modelId,
                choices: out,
                usage: usageOf(done as Done[]),
              };
              answer(new Response(toJson(whole), { headers: { "content-type": "application/json" } }));
            }
          });
        } catch (err) {
          answer(submitError(err));
          return;
        }
        if (!answered) request.signal.addEventListener("abort", onAbort, { once: true });
      });
    }

    const includeUsage = body.stream_options?.include_usage === true;
    const enc = new TextEncoder();
    const chunkObject = kind === "chat" ? "chat.completion.chunk" : "text_completion";
    const chunk = (parts: unknown[], usage?: unknown) =>
      enc.encode(
        `data: ${toJson({ id, object: chunkObject, created, model: modelId, choices: parts, ...(usage === undefined ? {} : { usage }), ...(includeUsage && usage === undefined ? { usage: null } : {}) })}\n\n`,
      );
    // Per choice: tokens whose text is held back (a possible stop string, a partial character)
    // keep their logprobs until a chunk carries text, or the finish chunk.
    const state = choices.map((c) => ({
      pending: scoredTokens(c.echo),
      sentChars: 0,
      first: true,
      done: null as Done | null,
    }));
    /** The echoed prompt while choice i's first chunk is still to be sent, else "". */
    const unsentEcho = (i: number) =>
      (state[i] as (typeof state)[number]).first ? (choices[i]?.echo?.text ?? "") : "";
    const delta = (i: number, piece: string, fr: string | null) => {
      const st = state[i] as (typeof state)[number];
      const text = unsentEcho(i) + piece;
      const first = st.first;
      st.first = false;
      st.sentChars += text.length;
      const lps = st.pending.take();
      const logprobs = !withLogprobs || lps.length === 0 ? null : logprobsShape(kind, lps);
      return kind === "chat"
        ? {
            index: i,
            delta: first ? { role: "assistant", content: text } : fr === null ? { content: text } : {},
            logprobs,
            finish_reason: fr,
          }
        : { index: i, text, logprobs, finish_reason: fr };
    };
    let finished = false;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        const onAbort = () => {
          if (!finished) cancelAll();
        };
        try {
          submitAll((i, ev) => {
            observe(i, ev);
            if (finished) return;
            const st = state[i] as (typeof state)[number];
            st.pending.record(ev);
            try {
              if (ev.type === "text") {
                if (ev.text === "" && !st.first) return;
                controller.enqueue(chunk([delta(i, ev.text, null)]));
              } else if (ev.type === "error") {
                finished = true;
                cancelAll(i);
                controller.enqueue(
                  enc.encode(
                    `data: ${JSON.stringify({ error: { message: ev.message, type: "server_error", param: null, code: null } })}\n\n`,
                  ),
                );
                controller.close();
              } else if (ev.finish === "abort") {
                // Cancelled (the client went away): nothing more is sent for any choice.
                finished = true;
                cancelAll(i);
                controller.close();
              } else {
                st.done = ev;
                // Tokens whose text a stop string cut away are not listed.
                st.pending.keep(st.sentChars + unsentEcho(i).length + ev.text.length);
                if (ev.text !== "" || st.first) controller.enqueue(chunk([delta(i, ev.text, null)]));
                controller.enqueue(chunk([delta(i, "", finishReason(ev.finish))]));
                if (state.some((x) => x.done === null)) return;
                finished = true;
                if (includeUsage) controller.enqueue(chunk([], usageOf(state.map((x) => x.done as Done))));
                controller.enqueue(enc.encode("data: [DONE]\n\n"));
                controller.close();
              }
            } catch {
              // The client went away while we wrote: stop generating for it.
              finished = true;
              cancelAll();
            }
          });
        } catch (err) {
          finished = true;
          controller.enqueue(
            enc.encode(
              `data: ${JSON.stringify({ error: { message: (err as Error).message, type: "rate_limit_error" } })}\n\n`,
            ),
          );
          controller.close();
          return;
        }
        request.signal.addEventListener("abort", onAbort, { once: true });
      },
      cancel() {
        if (!finished) {
          finished = true;
          cancelAll();
        }
      },
    });
    return new Response(stream, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" },
    });
  }

  const keyDigest = opts.apiKey === undefined ? null : sha256(opts.apiKey);
  /** Whether the request carries the API key (scheme case-insensitive, constant-time compare). */
  const authorized = (request: Request): boolean => {
    if (keyDigest === null) return true;
    const m = /^bearer[ \t]+(.+)$/i.exec(request.headers.get("authorization") ?? "");
    return m !== null && timingSafeEqual(sha256((m[1] as string).trim()), keyDigest);
  };

  const corsOrigins = opts.corsOrigins ?? [];
  /** The Access-Control-Allow-Origin a request from `origin` gets, or null for none. */
  const allowedOrigin = (origin: string | null): string | null => {
    if (origin === null || corsOrigins.length === 0) return null;
    if (corsOrigins.includes("*")) return "*";
    return corsOrigins.includes(origin) ? origin : null;
  };

  // Bun refuses bodies past its own limit with a bare 413 before any handler runs; ours is below
  // it so that a client over the limit gets an error it can read.
  return (
    // Elysia turns SO_REUSEPORT on by default: a second server on a taken port then binds too and
    // the kernel splits the connections between the two. A taken port must be an error.
    new Elysia({ serve: { maxRequestBodySize: 2 * maxBodyBytes + 65536, reusePort: false } })
      .onRequest(({ request, set }) => {
        const origin = allowedOrigin(request.headers.get("origin"));
        // The answer depends on Origin whenever a list of origins is set: say so on every
        // response, so a shared cache never hands one origin's answer to another.
        if (corsOrigins.length > 0 && !corsOrigins.includes("*")) set.headers.vary = "Origin";
        if (origin !== null) {
          set.headers["access-control-allow-origin"] = origin;
          // A preflight carries no credentials: it is answered before the key is checked.
          if (request.method === "OPTIONS")
            return new Response(null, {
              status: 204,
              headers: {
                "access-control-allow-origin": origin,
                "access-control-allow-methods": "GET, POST, OPTIONS",
                "access-control-allow-headers":
                  request.headers.get("access-control-request-headers") ?? "authorization, content-type",
                "access-control-max-age": "600",
                vary: "Origin",
              },
            });
        }
        const len = Number(request.headers.get("content-length") ?? 0);
        if (len > maxBodyBytes)
          return apiError(
            413,
            `request body is ${len} bytes; the limit is ${maxBodyBytes}`,
            "invalid_request_error",
          );
        // Everything but /health needs the key: a list of guarded prefixes missed `/metrics/`,
        // which the router sends to the same handler. The path is read off the raw target (an
        // HTTP/1.0 request without Host arrives with a relative URL).
        if (!/^\/health\/?$/.test(requestPath(request.url)) && !authorized(request))
          return apiError(
            401,
            "missing or wrong API key (send Authorization: Bearer <key>)",
            "invalid_request_error",
            null,
            { "www-authenticate": 'Bearer realm="hearth"' },
            "invalid_api_key",
          );
      })
      // Every POST body is JSON whatever its content-type says (OpenAI clients send JSON; curl -d
      // sends a form type), read up to the size limit, and must be one object.
      .onParse(async ({ request }) => {
        // Only the two completion routes read a body; the others answer 405 (or 404) whatever
        // was sent, even a body that is not JSON.
        const path = requestPath(request.url).replace(/(.)\/$/, "$1");
        if (request.method !== "POST" || (path !== "/v1/chat/completions" && path !== "/v1/completions"))
          return {};
        const text = await readLimited(request, maxBodyBytes);
        let body: unknown;
        try {
          body = JSON.parse(text, (key, value) => {
            if (key === "__proto__")
              throw new RequestError("invalid request: __proto__ is not a field", "body");
            return value;
          });
        } catch (err) {
          if (err instanceof RequestError) throw err;
          if (err instanceof RangeError)
            throw new RequestError("invalid request: the body's JSON is nested too deeply", "body");
          throw new RequestError("invalid request: the body is not valid JSON", "body");
        }
        if (body === null || typeof body !== "object" || Array.isArray(body))
          throw new RequestError("invalid request: the body must be a JSON object", "body");
        // Validation wraps a lone value in an array first, so `messages: "hi"` would come back as
        // "messages[0].role: required, missing"; say what is wrong instead.
        const messages = (body as Record<string, unknown>).messages;
        if (messages !== undefined && !Array.isArray(messages))
          throw new RequestError(
            `invalid request: messages: expected ${describeSchema(ChatCompletionBody.properties.messages)}, got ${kindOf(messages)}`,
            "messages",
          );
        // Every message takes at least one token of the context: more messages than that cannot
        // fit, and are refused before validating and rendering each of them (which a body of
        // tens of thousands of them makes take a while).
        if (Array.isArray(messages) && messages.length > contextTokens)
          throw new RequestError(
            `This model's maximum context length is ${contextTokens} tokens; ${messages.length} messages cannot fit in it.`,
            "messages",
            "context_length_exceeded",
          );
        return body;
      })
      .onError(({ code, error }) => {
        if (code === "VALIDATION") {
          const field = fieldOf(error);
          return apiError(
            400,
            `invalid request: ${validationMessage(error)}`,
            "invalid_request_error",
            field,
          );
        }
        if (code === "NOT_FOUND") return apiError(404, "no such route", "invalid_request_error");
        // The body parser's own refusals arrive as the cause of Elysia's ParseError.
        const err = code === "PARSE" ? ((error as { cause?: unknown }).cause ?? error) : error;
        if (err instanceof BodyTooLargeError) return apiError(413, err.message, "invalid_request_error");
        if (err instanceof RequestError)
          return apiError(400, err.message, "invalid_request_error", err.param, {}, err.code);
        if (code === "PARSE")
          return apiError(
            400,
            "invalid request: the body is not valid JSON",
            "invalid_request_error",
            "body",
          );
        return apiError(500, (err as Error).message ?? "internal error", "server_error");
      })
      .get("/health", ({ set }) => {
        if (engine.available) return { status: "ok" };
        set.status = 503;
        return { status: "unavailable" };
      })
      .get("/metrics", ({ set }) => {
        set.headers["content-type"] = "text/plain; version=0.0.4";
        return metrics.render(engine.stats);
      })
      .get("/v1/models", () => ({ object: "list", data: [modelObject] }))
      .get("/v1/chat/completions", wrongMethod)
      .get("/v1/completions", wrongMethod)
      .put("/v1/chat/completions", wrongMethod)
      .put("/v1/completions", wrongMethod)
      .patch("/v1/chat/completions", wrongMethod)
      .patch("/v1/completions", wrongMethod)
      .delete("/v1/chat/completions", wrongMethod)
      .delete("/v1/completions", wrongMethod)
      .post("/v1/models", onlyGet)
      .post("/health", onlyGet)
      .post("/metrics", onlyGet)
      .get("/v1/models/*", ({ params }) => {
        let id = params["*"];
        try {
          id = decodeURIComponent(id);
        } catch {
          // A malformed %-escape names no model either.
        }
        if (id === modelId) return modelObject;
        return apiError(
          404,
          `The model '${id}' does not exist; this server has '${modelId}'`,
          "invalid_request_error",
          "model",
          {},
          "model_not_found",
        );
      })
      .post(
        "/v1/chat/completions",
        ({ body, request }) => {
          const refused = unsupported("chat", body);
          if (refused !== null) throw refused;
          let ids: number[];
          try {
            ids = encodeChat(chatTemplate, tokenizer, body.messages as ChatMessage[], {
              addGenerationPrompt: true,
            });
          } catch (err) {
            throw new RequestError(
              `messages cannot be rendered with the chat template: ${(err as Error).message}`,
              "messages",
            );
          }
          const max = completionLimit(body, null);
          const logprobs = body.logprobs === true ? (body.top_logprobs ?? 0) : null;
          const req = { ...engineRequest(body, ids, max, "messages"), logprobs };
          return respond("chat", body, choicesOf(body, [{ req, echo: null }]), request);
        },
        { body: ChatCompletionBody },
      )
      .post(
        "/v1/completions",
        ({ body, request }) => {
          const refused = unsupported("completion", body);
          if (refused !== null) throw refused;
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
            // Control-token text in a raw prompt is the token (the caller writes the template),
            // as llama.cpp's and vLLM's servers read it; chat messages never are (see encodeChat).
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
            return { req: { ...engineRequest(body, ids, max, field), logprobs, promptLogprobs }, echo };
          });
          return respond("completion", body, choicesOf(body, perPrompt), request);
        },
        { body: CompletionBody },
      )
  );
}

export type HearthApp = ReturnType<typeof createApp>;

/** The path of a request target, absolute URL or relative, without resolving `.` or `..`. */
export function requestPath(url: string): string {
  const rest = url.startsWith("/") ? url : url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, "");
  const end = rest.search(/[?#]/);
  const path = end < 0 ? rest : rest.slice(0, end);
  return path === "" ? "/" : path;
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** The request body as text, refusing (413) once it passes `limit` bytes, chunked or not. */
async function readLimited(request: Request, limit: number): Promise<string> {
  if (request.body === null) return "";
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const part of request.body as unknown as AsyncIterable<Uint8Array>) {
    size += part.byteLength;
    if (size > limit) throw new BodyTooLargeError(`request body is over the limit of ${limit} bytes`);
    parts.push(part);
  }
  return Buffer.concat(parts).toString("utf8");
}
