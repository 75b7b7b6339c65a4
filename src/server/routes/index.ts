// GET /: a short text naming the API's routes (a chat page may take this place later: swap this
// plugin in app.ts).
import { Elysia } from "elysia";

/** The text GET / answers with. */
export function routesText(modelId: string): string {
  return `hearth: an OpenAI-compatible server for ${modelId}

POST /v1/chat/completions   chat (messages; "stream": true for SSE)
POST /v1/completions        text completion (prompt: text, token ids, or a list of them)
GET  /v1/models             the served model (and /v1/models/{id})
GET  /health                200 while the engine runs (no API key needed)
GET  /metrics               Prometheus metrics

Every route but /health needs "Authorization: Bearer <key>" when the server has one.
Request fields: docs/server.md
`;
}

export function indexRoute(modelId: string) {
  const text = routesText(modelId);
  return new Elysia({ normalize: false }).get("/", ({ set }) => {
    set.headers["content-type"] = "text/plain; charset=utf-8";
    return text;
  });
}
