// The page's calls to the server: model info, and a chat completion streamed as server-sent events.

export interface ServerInfo {
  model: string;
  context_tokens: number;
}

/** An error answer of the API, with what the page needs to explain it. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly retryAfterS: number | null = null,
  ) {
    super(message);
  }
}

function headers(apiKey: string | null): Record<string, string> {
  const h: Record<string, string> = { "content-type": "application/json" };
  if (apiKey !== null) h.authorization = `Bearer ${apiKey}`;
  return h;
}

async function errorOf(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText}`;
  let code: string | null = null;
  let param: string | null = null;
  try {
    const body = (await res.json()) as { error?: { message?: unknown; code?: unknown; param?: unknown } };
    if (typeof body.error?.message === "string") message = body.error.message;
    if (typeof body.error?.code === "string") code = body.error.code;
    if (typeof body.error?.param === "string") param = body.error.param;
  } catch {
    // Not JSON: the status line says enough.
  }
  const retry = Number(res.headers.get("retry-after"));
  return new ApiError(message, res.status, code, param, Number.isFinite(retry) && retry > 0 ? retry : null);
}

export async function fetchInfo(apiKey: string | null): Promise<ServerInfo> {
  const res = await fetch("web/info", { headers: headers(apiKey) });
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as ServerInfo;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number };
}

export interface StreamHandlers {
  /** A piece of the reply's text. */
  onText(text: string): void;
  onFinish(reason: string): void;
  onUsage(usage: Usage): void;
}

/**
 * POSTs a streaming chat completion and feeds its events to `on` until the stream ends. Throws
 * ApiError for an error answer or an error event, and the fetch's AbortError when `signal` fires.
 */
export async function streamChat(
  body: Record<string, unknown>,
  apiKey: string | null,
  signal: AbortSignal,
  on: StreamHandlers,
): Promise<void> {
  const res = await fetch("v1/chat/completions", {
    method: "POST",
    headers: headers(apiKey),
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    signal,
  });
  if (!res.ok || res.body === null) throw await errorOf(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += value;
    let end = buffered.indexOf("\n\n");
    while (end >= 0) {
      const event = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      end = buffered.indexOf("\n\n");
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data) as {
          error?: { message?: string; type?: string };
          choices?: Array<{ delta?: { content?: string | null }; finish_reason?: string | null }>;
          usage?: Usage | null;
        };
        if (chunk.error) {
          const busy = chunk.error.type === "rate_limit_error";
          throw new ApiError(chunk.error.message ?? "the server reported an error", busy ? 429 : 500);
        }
        const choice = chunk.choices?.[0];
        if (choice?.delta?.content) on.onText(choice.delta.content);
        if (choice?.finish_reason) on.onFinish(choice.finish_reason);
        if (chunk.usage) on.onUsage(chunk.usage);
      }
    }
  }
}
