// /v1/messages refusals the real model cannot produce on demand, against a scripted engine: a full
// queue (529 overloaded_error), an engine that is gone (503 api_error), an engine failure while
// streaming (an SSE error event). End to end with the real model: serve-anthropic.test.ts.
import { expect, test } from "bun:test";
import { ChatTemplate } from "../src/chat/index.ts";
import type { EngineEvent, EngineRequest } from "../src/engine/request.ts";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { pullModel } from "../src/gguf/pull.ts";
import { createApp, type ServingEngine } from "../src/server/app.ts";
import { Tokenizer } from "../src/tokenizer/index.ts";

/** An app on an engine in the given state whose every request fails with `message`. */
async function app(state: { inFlight: number; available: boolean }, message: string) {
  const md = new GgufMetadata(readGguf(await pullModel()).metadata);
  const tokenizer = Tokenizer.fromGguf(md);
  const engine = {
    stats: {},
    ...state,
    capacity: 2,
    submit(_req: Omit<EngineRequest, "id">, listen: (ev: EngineEvent) => void) {
      setTimeout(() => listen({ type: "text", id: "r0", text: "a", tokens: 1 }), 1);
      setTimeout(() => listen({ type: "error", id: "r0", message }), 2);
      return "r0";
    },
    cancel() {},
  } as unknown as ServingEngine;
  return createApp({
    engine,
    tokenizer,
    chatTemplate: ChatTemplate.fromGguf(md, tokenizer),
    modelId: "m",
    contextTokens: 512,
  });
}

function request(stream: boolean) {
  return new Request("http://127.0.0.1/v1/messages", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "m", max_tokens: 8, stream, messages: [{ role: "user", content: "hi" }] }),
  });
}

test("a full queue is 529 overloaded_error with Retry-After; a stopped engine is 503 api_error", async () => {
  const full = await (await app({ inFlight: 2, available: true }, "")).handle(request(false));
  expect(full.status).toBe(529);
  expect(full.headers.get("retry-after")).toBe("1");
  expect(await full.json()).toMatchObject({ type: "error", error: { type: "overloaded_error" } });
  const gone = await (await app({ inFlight: 0, available: false }, "")).handle(request(true));
  expect(gone.status).toBe(503);
  expect(await gone.json()).toMatchObject({ type: "error", error: { type: "api_error" } });
});

test("an engine failure: JSON answers in Anthropic's shape, a stream ends with an error event", async () => {
  const boom = await (await app({ inFlight: 0, available: true }, "engine worker failed: boom")).handle(
    request(false),
  );
  expect(boom.status).toBe(500);
  expect(await boom.json()).toMatchObject({
    type: "error",
    error: { type: "api_error", message: expect.stringContaining("boom") },
  });
  const busy = await (await app({ inFlight: 0, available: true }, "queue_full: no room")).handle(
    request(true),
  );
  const events = (await busy.text()).trim().split("\n\n");
  expect(events[0]).toStartWith("event: message_start");
  const last = events.at(-1) as string;
  expect(last).toStartWith("event: error\n");
  expect(JSON.parse(last.split("\ndata: ")[1] as string)).toMatchObject({
    type: "error",
    error: { type: "overloaded_error", message: expect.stringContaining("queue_full") },
  });
  expect(events.some((e) => e.startsWith("event: message_stop"))).toBe(false);
});
