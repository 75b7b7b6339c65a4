// Errors of the Anthropic Messages API (/v1/messages): {"type": "error", "error": {"type",
// "message"}}, typed by status as Anthropic documents them. hearth's one refusal for a full queue
// is Anthropic's 529 overloaded_error (the server, not the client, is over its limit), not 429.
import { type ErrorShape, shortMessage } from "./errors.ts";

/** Anthropic's error type for each status hearth answers. */
const TYPES: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  405: "invalid_request_error",
  413: "request_too_large",
  500: "api_error",
  503: "api_error",
  529: "overloaded_error",
};

/** An error answer in Anthropic's shape (the signature of apiError, OpenAI's; `type` and `param` are OpenAI's and ignored). */
export const anthropicError: ErrorShape = (status, message, _type, _param = null, headers = {}) => {
  const code = status === 429 ? 529 : status;
  const body = { type: "error", error: { type: TYPES[code] ?? "api_error", message: shortMessage(message) } };
  return new Response(JSON.stringify(body), {
    status: code,
    headers: { "content-type": "application/json", ...headers },
  });
};

/** The body of an SSE `error` event, for a failure after the stream started. */
export function anthropicErrorEvent(type: string, message: string): string {
  return `event: error\ndata: ${JSON.stringify({ type: "error", error: { type, message: shortMessage(message) } })}\n\n`;
}

/** Whether a request path is the Anthropic API's (its errors are then in Anthropic's shape). */
export function isAnthropicPath(path: string): boolean {
  return /^\/v1\/messages(\/.*)?$/.test(path);
}
