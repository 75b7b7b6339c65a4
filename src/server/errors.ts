// Errors of the HTTP API: OpenAI's error shape, and the exceptions routes throw to answer one.
import type { ErrorBodyType } from "./schemas.ts";

/** Longest error message a response carries. */
const MAX_ERROR_CHARS = 1000;

/** How a route's errors are written: OpenAI's shape (apiError) or Anthropic's (anthropic-errors.ts). */
export type ErrorShape = typeof apiError;

/** An error answer in OpenAI's shape. */
export function apiError(
  status: number,
  message: string,
  type: string,
  param: string | null = null,
  headers: Record<string, string> = {},
  code: string | null = null,
): Response {
  const shown = shortMessage(message);
  const body: ErrorBodyType = { error: { message: shown, type, param, code } };
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** A message may quote the request (a refused value): never echo megabytes of it back. */
export function shortMessage(message: string): string {
  return message.length > MAX_ERROR_CHARS ? `${message.slice(0, MAX_ERROR_CHARS)}… (cut)` : message;
}

/** A request hearth refuses (400), naming the field. */
export class RequestError extends Error {
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
export class BodyTooLargeError extends Error {}
