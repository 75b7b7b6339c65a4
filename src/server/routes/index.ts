// The short text naming the API's routes that GET / answers to clients that do not ask for HTML
// (curl); browsers get the chat page (src/server/web/route.ts serves both).

/** The text GET / answers to clients that do not ask for HTML. */
export function routesText(modelId: string): string {
  return `hearth: an OpenAI-compatible server for ${modelId}

POST /v1/chat/completions   chat (messages; "stream": true for SSE)
POST /v1/completions        text completion (prompt: text, token ids, or a list of them)
POST /v1/messages           Anthropic's Messages API (x-api-key works as the key)
POST /v1/messages/count_tokens  the prompt's tokens, as Anthropic counts them
POST /v1/embeddings         embeddings of texts or token ids (floats or base64)
GET  /v1/models             the served model (and /v1/models/{id})
GET  /health                200 while the engine runs (no API key needed)
GET  /metrics               Prometheus metrics
GET  /                      this text; a browser (Accept: text/html) gets the chat page
GET  /web/info              the model's id and context size, for the chat page

Every route but /health and / needs "Authorization: Bearer <key>" when the server has one.
Request fields: docs/server.md
`;
}
