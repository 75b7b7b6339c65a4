// What every route shares, as Elysia hooks: CORS, the body size limit and the API key on each
// request; JSON bodies read within the limit; and every error answered in OpenAI's shape.
import { createHash, timingSafeEqual } from "node:crypto";
import { anthropicError, isAnthropicPath } from "./anthropic-errors.ts";
import { apiError, BodyTooLargeError, type ErrorShape, RequestError } from "./errors.ts";
import { ChatCompletionBody } from "./schemas.ts";
import { describeSchema, fieldOf, kindOf, validationMessage } from "./validation.ts";

/** Routes that read a JSON body; every other route ignores what was sent. */
const BODY_ROUTES = new Set([
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/messages",
  "/v1/messages/count_tokens",
  "/v1/embeddings",
]);

/** The error shape of a request's route: Anthropic's for /v1/messages, OpenAI's for the rest. */
function errorShape(request: Request): ErrorShape {
  return isAnthropicPath(requestPath(request.url)) ? anthropicError : apiError;
}

export interface GuardOptions {
  /** Bearer key every route but /health and the chat page (/) requires when set. */
  apiKey?: string;
  maxBodyBytes: number;
  /** Origins whose browser pages may call the server ("*" for any); empty: no CORS headers. */
  corsOrigins: readonly string[];
}

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

/** The onRequest hook: CORS (preflights answered without the key), the size limit, the API key. */
export function guard(opts: GuardOptions) {
  const { corsOrigins, maxBodyBytes } = opts;
  const keyDigest = opts.apiKey === undefined ? null : sha256(opts.apiKey);
  /**
   * Whether the request carries the API key: `Authorization: Bearer` (scheme case-insensitive) or
   * Anthropic's `x-api-key`; constant-time compare.
   */
  const authorized = (request: Request): boolean => {
    if (keyDigest === null) return true;
    const m = /^bearer[ \t]+(.+)$/i.exec(request.headers.get("authorization") ?? "");
    const key = m !== null ? (m[1] as string) : request.headers.get("x-api-key");
    return key !== null && timingSafeEqual(sha256(key.trim()), keyDigest);
  };
  /** The Access-Control-Allow-Origin a request from `origin` gets, or null for none. */
  const allowedOrigin = (origin: string | null): string | null => {
    if (origin === null || corsOrigins.length === 0) return null;
    if (corsOrigins.includes("*")) return "*";
    return corsOrigins.includes(origin) ? origin : null;
  };
  return ({ request, set }: { request: Request; set: { headers: Record<string, string | number> } }) => {
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
    const fail = errorShape(request);
    const len = Number(request.headers.get("content-length") ?? 0);
    if (len > maxBodyBytes)
      return fail(413, `request body is ${len} bytes; the limit is ${maxBodyBytes}`, "invalid_request_error");
    // Everything but /health and / (the chat page, which holds no data and asks for the key
    // itself) needs the key: a list of guarded prefixes missed `/metrics/`, which the router
    // sends to the same handler. The path is read off the raw target (an HTTP/1.0 request
    // without Host arrives with a relative URL).
    if (!/^\/(health\/?)?$/.test(requestPath(request.url)) && !authorized(request))
      return fail(
        401,
        "missing or wrong API key (send Authorization: Bearer <key>, or x-api-key: <key>)",
        "invalid_request_error",
        null,
        { "www-authenticate": 'Bearer realm="hearth"' },
        "invalid_api_key",
      );
  };
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

/**
 * The onParse hook: every POST body of a completion route is JSON whatever its content-type says
 * (OpenAI clients send JSON; curl -d sends a form type), read up to the size limit, and must be
 * one object.
 */
export function jsonBody(maxBodyBytes: number, contextTokens: number) {
  return async ({ request }: { request: Request }): Promise<unknown> => {
    // The other routes answer 405 (or 404) whatever was sent, even a body that is not JSON.
    const path = requestPath(request.url).replace(/(.)\/$/, "$1");
    if (request.method !== "POST" || !BODY_ROUTES.has(path)) return {};
    const text = await readLimited(request, maxBodyBytes);
    let body: unknown;
    try {
      body = JSON.parse(text, (key, value) => {
        if (key === "__proto__") throw new RequestError("invalid request: __proto__ is not a field", "body");
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
  };
}

/** The onError hook: schema failures, refusals and anything else, in the route's error shape. */
export function errorAnswer({
  code,
  error,
  request,
}: {
  code: unknown;
  error: unknown;
  request: Request;
}): Response {
  const apiError = errorShape(request);
  if (code === "VALIDATION")
    return apiError(
      400,
      `invalid request: ${validationMessage(error)}`,
      "invalid_request_error",
      fieldOf(error),
    );
  if (code === "NOT_FOUND") return apiError(404, "no such route", "invalid_request_error");
  // The body parser's own refusals arrive as the cause of Elysia's ParseError.
  const err = code === "PARSE" ? ((error as { cause?: unknown }).cause ?? error) : error;
  if (err instanceof BodyTooLargeError) return apiError(413, err.message, "invalid_request_error");
  if (err instanceof RequestError)
    return apiError(400, err.message, "invalid_request_error", err.param, {}, err.code);
  if (code === "PARSE")
    return apiError(400, "invalid request: the body is not valid JSON", "invalid_request_error", "body");
  return apiError(500, (err as Error).message ?? "internal error", "server_error");
}

/** A route's answer to a method it does not take. */
export function wrongMethod(allow: "POST" | "GET"): () => Response {
  const message = allow === "POST" ? "this route takes POST with a JSON body" : "this route takes GET";
  return () =>
    apiError(405, message, "invalid_request_error", null, { allow: allow === "POST" ? "POST" : "GET, HEAD" });
}
