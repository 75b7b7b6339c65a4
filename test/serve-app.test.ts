// Unit tests of the HTTP layer (src/server/app.ts) against a scripted engine: shapes that the
// real model cannot produce (a tokenizer that adds BOS). The end-to-end server tests with the
// real engine and the openai client are in serve.test.ts.
import { expect, test } from "bun:test";
import { ChatTemplate } from "../src/chat/index.ts";
import type { EngineEvent, EngineRequest } from "../src/engine/request.ts";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { pullModel } from "../src/gguf/pull.ts";
import { DEFAULT_SAMPLER_OPTIONS } from "../src/sampling/index.ts";
import { createApp, type ServingEngine } from "../src/server/app.ts";
import { Tokenizer } from "../src/tokenizer/index.ts";

/** The events a scripted engine sends for its `n`-th request (id `r<n>`), one per timer tick. */
type Script = (req: Omit<EngineRequest, "id">, id: string, n: number) => EngineEvent[];

/** An app whose engine answers every request at once (by default " yes", every score -1). */
async function scriptedApp(addBos: boolean, script?: Script) {
  const base = new GgufMetadata(readGguf(await pullModel()).metadata);
  const map = new Map(base.map);
  map.set("tokenizer.ggml.add_bos_token", addBos);
  const md = new GgufMetadata(map);
  const tokenizer = Tokenizer.fromGguf(md);
  let next = 0;
  /** Every request the app submitted, in order. */
  const submitted: Array<Omit<EngineRequest, "id">> = [];
  /** Ids the app cancelled. */
  const cancelled: string[] = [];
  const engine = {
    stats: {},
    inFlight: 0,
    capacity: 64,
    available: true,
    submit(req: Omit<EngineRequest, "id">, listen: (ev: EngineEvent) => void) {
      const n = next++;
      const id = `r${n}`;
      submitted.push(req);
      if (script !== undefined) {
        const events = script(req, id, n);
        const tick = (k: number) => {
          if (k >= events.length || cancelled.includes(id)) return;
          listen(events[k] as EngineEvent);
          setTimeout(() => tick(k + 1), 1);
        };
        setTimeout(() => tick(0), 1);
        return id;
      }
      const score = (t: number) => ({ id: t, logprob: -1, top: [] });
      const gen = tokenizer.encode(" yes", { addSpecial: false });
      setTimeout(() =>
        listen({
          type: "done",
          id,
          text: tokenizer.decode(gen),
          finish: "length",
          promptTokens: req.promptIds.length,
          cachedTokens: 0,
          completionTokens: gen.length,
          draftTokens: 0,
          acceptedDraftTokens: 0,
          promptLogprobs: req.promptIds.slice(1).map(score),
          logprobs: gen.map(score),
        } as EngineEvent),
      );
      return id;
    },
    cancel(id: string) {
      cancelled.push(id);
    },
  } as unknown as ServingEngine;
  const app = createApp({
    engine,
    tokenizer,
    chatTemplate: ChatTemplate.fromGguf(md, tokenizer),
    modelId: "m",
    contextTokens: 512,
  });
  return { app, tokenizer, submitted, cancelled };
}

async function post(app: Awaited<ReturnType<typeof scriptedApp>>["app"], path: string, body: unknown) {
  const res = await app.handle(
    new Request(`http://127.0.0.1${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    }),
  );
  return { status: res.status, body: (await res.json()) as { error?: { message: string; param: string } } };
}

test("echo + logprobs: every listed token sits at its text_offset, with and without a BOS the tokenizer adds; control-token text in a prompt is the token", async () => {
  for (const [addBos, prompt] of [
    [false, "Hello world"],
    [true, "Hello world"],
    [false, "<|im_start|>Hello world"],
    [true, "<|im_start|>Hello world"],
  ] as Array<[boolean, string]>) {
    const { app, tokenizer } = await scriptedApp(addBos);
    const ids = tokenizer.encode(prompt, { parseSpecial: true });
    const control = prompt.startsWith("<|") ? 1 : 0;
    expect(ids.length).toBe((addBos ? 3 : 2) + control);
    const res = await app.handle(
      new Request("http://127.0.0.1/v1/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt, echo: true, logprobs: 0, max_tokens: 2 }),
      }),
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      choices: Array<{ text: string; logprobs: { tokens: string[]; text_offset: number[] } }>;
      usage: { prompt_tokens: number };
    };
    const c = body.choices[0] as (typeof body.choices)[number];
    expect(c.text).toBe(`${prompt} yes`);
    expect(body.usage.prompt_tokens).toBe(ids.length);
    // The prompt's tokens (BOS included, at zero width) and the generated one.
    expect(c.logprobs.tokens.length).toBe(ids.length + 1);
    for (const [k, t] of c.logprobs.tokens.entries()) {
      const at = c.logprobs.text_offset[k] as number;
      if (addBos && k === 0) expect(at).toBe(0);
      else expect(c.text.slice(at, at + t.length)).toBe(t);
    }
  }
});

test("sampling: a field left out takes the CLI's and library's default, a field sent is used as sent", async () => {
  const { app, submitted } = await scriptedApp(false);
  const chat = { messages: [{ role: "user", content: "Hi!" }], max_tokens: 2 };
  expect((await post(app, "/v1/chat/completions", chat)).status).toBe(200);
  const d = DEFAULT_SAMPLER_OPTIONS;
  expect(submitted.at(-1)?.sampling).toMatchObject({
    temperature: d.temperature,
    topK: d.topK,
    topP: d.topP,
    minP: d.minP,
    repeatPenalty: d.repeatPenalty,
    presencePenalty: 0,
    frequencyPenalty: 0,
  });
  // null is "the default" too, as in OpenAI's API.
  await post(app, "/v1/completions", { prompt: "hi", temperature: null, top_p: null, top_k: null });
  expect(submitted.at(-1)?.sampling).toMatchObject({
    temperature: d.temperature,
    topP: d.topP,
    topK: d.topK,
  });
  // OpenAI's untruncated distribution, asked for field by field; vLLM's top_k -1 is "off" too.
  await post(app, "/v1/completions", {
    prompt: "hi",
    temperature: 1,
    top_p: 1,
    top_k: -1,
    min_p: 0,
    repeat_penalty: 1.1,
    seed: 3,
  });
  expect(submitted.at(-1)?.sampling).toMatchObject({
    temperature: 1,
    topP: 1,
    topK: 0,
    minP: 0,
    repeatPenalty: 1.1,
    seed: 3,
  });
  // top_p 0 is greedy; out-of-range values are a 400 naming the field.
  await post(app, "/v1/completions", { prompt: "hi", top_p: 0 });
  expect(submitted.at(-1)?.sampling.temperature).toBe(0);
  for (const [field, value] of [
    ["top_k", -2],
    ["top_k", 1.5],
    ["min_p", 1.5],
    ["repeat_penalty", 0],
  ] as Array<[string, number]>) {
    const r = await post(app, "/v1/completions", { prompt: "hi", [field]: value });
    expect([field, value, r.status, r.body.error?.param]).toEqual([field, value, 400, field]);
  }
});

test("an unknown field is a 400 naming it, wherever it is; the fields accepted and ignored pass", async () => {
  const { app } = await scriptedApp(false);
  const hi = [{ role: "user", content: "hi" }];
  // [route, body, param (the field, or the optional object holding it), the place named]
  const cases: Array<[string, unknown, string, string]> = [
    ["/v1/chat/completions", { messages: hi, frobnicate: 1 }, "frobnicate", "frobnicate"],
    ["/v1/completions", { prompt: "hi", temprature: 0.5 }, "temprature", "temprature"],
    [
      "/v1/chat/completions",
      { messages: [{ role: "user", content: "hi", colour: "red" }] },
      "messages[0].colour",
      "messages[0].colour",
    ],
    [
      "/v1/completions",
      { prompt: "hi", stream_options: { include_usage: true, extra: 1 } },
      "stream_options",
      "stream_options.extra",
    ],
    // A chat field on the legacy endpoint is unknown there.
    ["/v1/completions", { prompt: "hi", top_logprobs: 2 }, "top_logprobs", "top_logprobs"],
  ];
  for (const [path, body, param, named] of cases) {
    const r = await post(app, path, body);
    expect([named, r.status, r.body.error?.param]).toEqual([named, 400, param]);
    expect(r.body.error?.message).toContain(`${named}: unrecognized request argument`);
  }
  const ignored = {
    messages: hi,
    user: "u",
    store: false,
    metadata: { k: "v" },
    service_tier: "auto",
    prompt_cache_key: "k",
    safety_identifier: "s",
    parallel_tool_calls: true,
    stream_options: null,
  };
  expect((await post(app, "/v1/chat/completions", ignored)).status).toBe(200);
  // A feature hearth lacks says so, from its schema rule.
  const tools = await post(app, "/v1/chat/completions", { messages: hi, functions: [{ name: "f" }] });
  expect(tools.body.error).toMatchObject({
    param: "functions",
    message: "invalid request: functions: the legacy functions field (use tools) is not supported by hearth",
  });
  const image = await post(app, "/v1/chat/completions", {
    messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }],
  });
  expect(image.status).toBe(400);
  expect(image.body.error?.param).toBe("messages[0].content");
});

test("GET / names the API routes", async () => {
  const { app } = await scriptedApp(false);
  const res = await app.handle(new Request("http://127.0.0.1/"));
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toStartWith("text/plain");
  const text = await res.text();
  for (const route of ["/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics"])
    expect(text).toContain(route);
});

/** A done event with the given text and counts. */
function done(id: string, text: string, finish: "stop" | "length", completionTokens: number): EngineEvent {
  return {
    type: "done",
    id,
    text,
    finish,
    promptTokens: 5,
    cachedTokens: 0,
    completionTokens,
    draftTokens: 0,
    acceptedDraftTokens: 0,
  };
}

/** The SSE stream of a POST, as its parsed `data:` payloads (and "[DONE]"). */
async function sse(app: Awaited<ReturnType<typeof scriptedApp>>["app"], path: string, body: unknown) {
  const res = await app.handle(
    new Request(`http://127.0.0.1${path}`, {
      method: "POST",
      body: JSON.stringify({ ...(body as object), stream: true }),
    }),
  );
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((e) => e.startsWith("data: "))
    .map((e) => (e === "data: [DONE]" ? "[DONE]" : JSON.parse(e.slice(6))));
}

test("one choice state machine, two sinks: the JSON body and the SSE chunks carry the same text, finish reasons and usage", async () => {
  // Choice 0 streams in three pieces (one of them empty: nothing is sent for it) and stops;
  // choice 1 ends at its limit with its text in the done event only.
  const script: Script = (_req, id, n) =>
    n % 2 === 0
      ? [
          { type: "text", id, text: "Hel", tokens: 1 },
          { type: "text", id, text: "", tokens: 1 },
          { type: "text", id, text: "lo", tokens: 1 },
          done(id, "!", "stop", 4),
        ]
      : [done(id, "Bye", "length", 2)];
  const { app } = await scriptedApp(false, script);
  const body = { messages: [{ role: "user", content: "hi" }], n: 2, stream_options: { include_usage: true } };
  const whole = (await (
    await app.handle(
      new Request("http://127.0.0.1/v1/chat/completions", { method: "POST", body: JSON.stringify(body) }),
    )
  ).json()) as {
    choices: Array<{ index: number; message: { content: string }; finish_reason: string }>;
    usage: { prompt_tokens: number; completion_tokens: number };
  };
  expect(whole.choices.map((c) => [c.index, c.message.content, c.finish_reason])).toEqual([
    [0, "Hello!", "stop"],
    [1, "Bye", "length"],
  ]);
  // The prompt is counted once, the completions of both choices.
  expect(whole.usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 6 });

  const events = await sse(app, "/v1/chat/completions", body);
  expect(events.at(-1)).toBe("[DONE]");
  const chunks = events.slice(0, -1) as Array<{
    choices: Array<{
      index: number;
      delta: { role?: string; content?: string };
      finish_reason: string | null;
    }>;
    usage: unknown;
  }>;
  const texts = ["", ""];
  const finishes: Array<string | null> = [null, null];
  for (const c of chunks)
    for (const ch of c.choices) {
      texts[ch.index] += ch.delta.content ?? "";
      if (ch.finish_reason !== null) finishes[ch.index] = ch.finish_reason;
    }
  expect(texts).toEqual(["Hello!", "Bye"]);
  expect(finishes).toEqual(["stop", "length"]);
  // No chunk for the empty piece: three text chunks and a finish chunk for choice 0.
  expect(chunks.filter((c) => c.choices[0]?.index === 0).length).toBe(4);
  // Each choice's first chunk names the role; usage comes last, alone, and is null before.
  expect(chunks.find((c) => c.choices[0]?.index === 1)?.choices[0]?.delta.role).toBe("assistant");
  expect(chunks.at(-1)?.choices).toEqual([]);
  expect(chunks.at(-1)?.usage).toEqual(whole.usage);
  expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
});

test("an engine error in one choice: JSON answers 500 (429 for a full queue), SSE ends with an error event; the other choices are cancelled", async () => {
  const script: Script = (_req, id, n) =>
    n % 2 === 1
      ? [{ type: "error", id, message: n >= 3 ? "queue_full: no room" : "engine worker failed: boom" }]
      : [
          { type: "text", id, text: "a", tokens: 1 },
          ...Array(50).fill({ type: "text", id, text: "b", tokens: 1 }),
        ];
  const { app, cancelled } = await scriptedApp(false, script);
  const body = { prompt: "hi", n: 2, max_tokens: 100 };
  const failed = await post(app, "/v1/completions", body);
  expect(failed.status).toBe(500);
  expect(failed.body.error?.message).toContain("boom");
  expect(cancelled).toContain("r0");
  const events = await sse(app, "/v1/completions", body);
  const last = events.at(-1) as { error?: { message: string } };
  expect(last.error?.message).toContain("queue_full");
  expect(events).not.toContain("[DONE]");
  expect(cancelled).toContain("r2");
  const busy = await post(app, "/v1/completions", body);
  expect(busy.status).toBe(429);
});
