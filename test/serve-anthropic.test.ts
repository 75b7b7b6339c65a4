// /v1/messages (Anthropic's Messages API) end to end: a real `hearth serve` on 127.0.0.1 with the
// default model, driven by the official @anthropic-ai/sdk client and by plain fetch for the raw
// SSE sequence and error bodies. Greedy replies are compared with /v1/chat/completions: both
// routes run on the same generation core, so the same conversation gives the same text.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { pullModel } from "../src/gguf/pull.ts";
import { type RunningServer, startCheckoutServer } from "./server-process.ts";

const KEY = "anthropic-test-key";

// Each test runs several generations on two shared cores.
setDefaultTimeout(120_000);

let server: RunningServer;
let client: Anthropic;
let openai: OpenAI;

beforeAll(async () => {
  const model = await pullModel();
  server = await startCheckoutServer(model, [
    "--api-key",
    KEY,
    "--parallel",
    "4",
    "--ctx",
    "512",
    "--max-body",
    "65536",
    "--threads",
    "2",
    "--no-kv-disk",
  ]);
  client = new Anthropic({ baseURL: server.url, apiKey: KEY, maxRetries: 0 });
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
}, 180_000);

afterAll(async () => {
  await server?.stop();
});

/** The error a call rejects with (the SDK's APIPromise is a thenable). */
async function rejection(p: PromiseLike<unknown>): Promise<{ status?: number; error?: unknown }> {
  try {
    await p;
  } catch (err) {
    return err as { status?: number; error?: unknown };
  }
  throw new Error("expected the call to fail");
}

/** The text of a message's text blocks. */
function textOf(m: Anthropic.Message): string {
  return m.content.map((b) => (b.type === "text" ? b.text : "")).join("");
}

/**
 * Greedy sampling. This SDK's types dropped temperature (Anthropic deprecated it) but it still
 * sends what it is given, and hearth still reads it; spread, so the types let it through.
 */
const GREEDY = { temperature: 0 };

const QUESTION = "Name three colours of the rainbow.";

/** The greedy reply of /v1/chat/completions to the same conversation. */
async function chatReply(messages: OpenAI.ChatCompletionMessageParam[], max: number) {
  const r = await openai.chat.completions.create({ model: "x", messages, max_tokens: max, temperature: 0 });
  return { text: r.choices[0]?.message.content ?? "", finish: r.choices[0]?.finish_reason, usage: r.usage };
}

async function postRaw(body: unknown, headers: Record<string, string> = { "x-api-key": KEY }) {
  return fetch(`${server.url}/v1/messages`, {
    method: "POST",
    headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", ...headers },
    body: JSON.stringify(body),
  });
}

describe("POST /v1/messages with @anthropic-ai/sdk", () => {
  test("a text reply: the same greedy text and token counts as the chat route", async () => {
    const m = await client.messages.create({
      model: "smol",
      max_tokens: 24,
      ...GREEDY,
      messages: [{ role: "user", content: QUESTION }],
    });
    const ref = await chatReply([{ role: "user", content: QUESTION }], 24);
    expect(m.type).toBe("message");
    expect(m.role).toBe("assistant");
    expect(m.id).toMatch(/^msg_/);
    expect(textOf(m)).toBe(ref.text);
    expect(textOf(m).length).toBeGreaterThan(0);
    expect(m.stop_reason).toBe(ref.finish === "length" ? "max_tokens" : "end_turn");
    expect(m.stop_sequence).toBeNull();
    expect(m.usage.input_tokens).toBe(ref.usage?.prompt_tokens as number);
    expect(m.usage.output_tokens).toBe(ref.usage?.completion_tokens as number);
  });

  test("streamed: the SDK's events rebuild the same message", async () => {
    const whole = await client.messages.create({
      model: "smol",
      max_tokens: 20,
      ...GREEDY,
      messages: [{ role: "user", content: QUESTION }],
    });
    const stream = await client.messages.create({
      model: "smol",
      max_tokens: 20,
      ...GREEDY,
      stream: true,
      messages: [{ role: "user", content: QUESTION }],
    });
    const types: string[] = [];
    let text = "";
    let stopReason: string | null = null;
    let outputTokens = -1;
    let inputTokens = -1;
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === "message_start") inputTokens = ev.message.usage.input_tokens;
      if (ev.type === "content_block_delta" && ev.delta.type === "text_delta") text += ev.delta.text;
      if (ev.type === "message_delta") {
        stopReason = ev.delta.stop_reason;
        outputTokens = ev.usage.output_tokens;
      }
    }
    expect(text).toBe(textOf(whole));
    expect(stopReason).toBe(whole.stop_reason as string);
    expect(outputTokens).toBe(whole.usage.output_tokens);
    expect(inputTokens).toBe(whole.usage.input_tokens);
    // The SDK drops pings; the raw sequence is checked below.
    const deltas = types.filter((t) => t === "content_block_delta").length;
    expect(deltas).toBeGreaterThan(0);
    expect(types).toEqual([
      "message_start",
      "content_block_start",
      ...Array(deltas).fill("content_block_delta"),
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
    // The SDK's own accumulator agrees.
    const final = await client.messages
      .stream({
        model: "smol",
        max_tokens: 20,
        ...GREEDY,
        messages: [{ role: "user", content: QUESTION }],
      })
      .finalMessage();
    expect(textOf(final)).toBe(textOf(whole));
  });

  test("the raw SSE event sequence, ping included", async () => {
    const res = await postRaw({
      model: "smol",
      max_tokens: 8,
      ...GREEDY,
      stream: true,
      messages: [{ role: "user", content: QUESTION }],
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const raw = await res.text();
    const events = raw
      .trim()
      .split("\n\n")
      .map((block) => {
        const [ev, data] = block.split("\n");
        const type = (ev as string).replace(/^event: /, "");
        const body = JSON.parse((data as string).replace(/^data: /, "")) as { type: string };
        expect(body.type).toBe(type);
        return type;
      });
    expect(events.slice(0, 3)).toEqual(["message_start", "content_block_start", "ping"]);
    expect(events.slice(-3)).toEqual(["content_block_stop", "message_delta", "message_stop"]);
    expect(new Set(events.slice(3, -3))).toEqual(new Set(["content_block_delta"]));
  });

  test("system prompt, as a string or text blocks, is rendered as the system turn", async () => {
    const system = "You are a pirate. Answer like a pirate.";
    const asString = await client.messages.create({
      model: "smol",
      max_tokens: 16,
      ...GREEDY,
      system,
      messages: [{ role: "user", content: "Hello" }],
    });
    const asBlocks = await client.messages.create({
      model: "smol",
      max_tokens: 16,
      ...GREEDY,
      system: [
        { type: "text", text: "You are a pirate. " },
        { type: "text", text: "Answer like a pirate." },
      ],
      messages: [{ role: "user", content: [{ type: "text", text: "Hello" }] }],
    });
    const without = await client.messages.create({
      model: "smol",
      max_tokens: 16,
      ...GREEDY,
      messages: [{ role: "user", content: "Hello" }],
    });
    const ref = await chatReply(
      [
        { role: "system", content: system },
        { role: "user", content: "Hello" },
      ],
      16,
    );
    expect(textOf(asString)).toBe(ref.text);
    expect(textOf(asBlocks)).toBe(ref.text);
    expect(asString.usage.input_tokens).toBe(ref.usage?.prompt_tokens as number);
    // (SmolLM's template puts its own system prompt in a conversation without one.)
    expect(asString.usage.input_tokens).not.toBe(without.usage.input_tokens);
  });

  test("stop_sequences end the reply with stop_reason stop_sequence and name the sequence", async () => {
    const base = await client.messages.create({
      model: "smol",
      max_tokens: 32,
      ...GREEDY,
      messages: [{ role: "user", content: QUESTION }],
    });
    const text = textOf(base);
    // A word from the middle of the greedy reply: the reply must stop right before it.
    const words = text.split(/\s+/).filter((w) => /^[A-Za-z]{3,}$/.test(w));
    const word = words[Math.min(2, words.length - 1)] as string;
    expect(word).toBeDefined();
    const m = await client.messages.create({
      model: "smol",
      max_tokens: 32,
      ...GREEDY,
      stop_sequences: ["@@never@@", word],
      messages: [{ role: "user", content: QUESTION }],
    });
    expect(m.stop_reason).toBe("stop_sequence");
    expect(m.stop_sequence).toBe(word);
    expect(textOf(m)).toBe(text.slice(0, text.indexOf(word)));
  });

  test("max_tokens ends the reply with stop_reason max_tokens", async () => {
    const m = await client.messages.create({
      model: "smol",
      max_tokens: 3,
      ...GREEDY,
      messages: [{ role: "user", content: "Write a long story about a dragon." }],
    });
    expect(m.stop_reason).toBe("max_tokens");
    expect(m.usage.output_tokens).toBe(3);
  });

  test("a last assistant turn is a prefill the reply continues", async () => {
    const prefill = "The three colours are";
    const m = await client.messages.create({
      model: "smol",
      max_tokens: 12,
      ...GREEDY,
      messages: [
        { role: "user", content: QUESTION },
        { role: "assistant", content: prefill },
      ],
    });
    const plain = await client.messages.create({
      model: "smol",
      max_tokens: 12,
      ...GREEDY,
      messages: [{ role: "user", content: QUESTION }],
    });
    expect(m.usage.input_tokens).toBeGreaterThan(plain.usage.input_tokens);
    expect(textOf(m).length).toBeGreaterThan(0);
    expect(textOf(m).startsWith(prefill)).toBe(false);
  });
});

describe("authentication and errors in Anthropic's shape", () => {
  test("a wrong key is a 401 authentication_error; x-api-key and Bearer both work", async () => {
    const wrong = new Anthropic({ baseURL: server.url, apiKey: "not-the-key", maxRetries: 0 });
    const err = await rejection(
      wrong.messages.create({ model: "smol", max_tokens: 4, messages: [{ role: "user", content: "Hi" }] }),
    );
    expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
    expect(err.status).toBe(401);
    expect(err.error).toMatchObject({ type: "error", error: { type: "authentication_error" } });

    const none = await postRaw(
      { model: "smol", max_tokens: 4, messages: [{ role: "user", content: "Hi" }] },
      {},
    );
    expect(none.status).toBe(401);
    const body = (await none.json()) as { type: string; error: { type: string; message: string } };
    expect(body.type).toBe("error");
    expect(body.error.type).toBe("authentication_error");
    expect(body.error.message).toContain("x-api-key");

    const bearer = new Anthropic({ baseURL: server.url, authToken: KEY, maxRetries: 0 });
    const ok = await bearer.messages.create({
      model: "smol",
      max_tokens: 2,
      messages: [{ role: "user", content: "Hi" }],
    });
    expect(ok.usage.output_tokens).toBeGreaterThan(0);
    // The OpenAI routes take x-api-key too, and keep their own error shape.
    const chat = await fetch(`${server.url}/v1/models`, { headers: { "x-api-key": KEY } });
    expect(chat.status).toBe(200);
    const chatErr = (await (await fetch(`${server.url}/v1/models`)).json()) as { error: { type: string } };
    expect(chatErr.error.type).toBe("invalid_request_error");
  });

  test("validation errors are 400 invalid_request_error naming the field", async () => {
    const err = await rejection(
      client.messages.create({
        model: "smol",
        max_tokens: 0,
        messages: [{ role: "user", content: "Hi" }],
      }),
    );
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    expect(err.status).toBe(400);
    expect(err.error).toMatchObject({ type: "error", error: { type: "invalid_request_error" } });
    expect((err.error as { error: { message: string } }).error.message).toContain("max_tokens");

    // max_tokens is required, as Anthropic requires it.
    const missing = await postRaw({ model: "smol", messages: [{ role: "user", content: "Hi" }] });
    expect(missing.status).toBe(400);
    const body = (await missing.json()) as { type: string; error: { type: string; message: string } };
    expect(body).toMatchObject({ type: "error", error: { type: "invalid_request_error" } });
    expect(body.error.message).toContain("max_tokens");

    const hot = await postRaw({
      model: "smol",
      max_tokens: 4,
      temperature: 1.5,
      messages: [{ role: "user", content: "Hi" }],
    });
    expect(hot.status).toBe(400);
    expect(((await hot.json()) as { error: { message: string } }).error.message).toContain("temperature");

    for (const [bad, field] of [
      [{ role: "system", content: "x" }, "role"],
      [{ role: "user", content: [{ type: "image", source: {} }] }, "not supported"],
      [{ role: "user", content: [{ type: "text" }] }, "messages[0].content[0].text: required"],
      [
        { role: "user", content: [{ type: "tool_result", tool_use_id: 5 }] },
        "messages[0].content[0].tool_use_id",
      ],
    ] as const) {
      const r = await postRaw({ model: "smol", max_tokens: 4, messages: [bad] });
      expect(r.status).toBe(400);
      const b = (await r.json()) as { error: { type: string; message: string } };
      expect(b.error.type).toBe("invalid_request_error");
      expect(b.error.message).toContain(field);
    }
    const notJson = await fetch(`${server.url}/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": KEY, "content-type": "application/json" },
      body: "{nope",
    });
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { type: string }).type).toBe("error");
  });

  test("a prompt longer than the context, a body over the limit, and GET are refused in Anthropic's shape", async () => {
    const long = await postRaw({
      model: "smol",
      max_tokens: 4,
      messages: [{ role: "user", content: "word ".repeat(2000) }],
    });
    expect(long.status).toBe(400);
    expect(((await long.json()) as { error: { message: string } }).error.message).toContain("context length");

    const huge = await postRaw({
      model: "smol",
      max_tokens: 4,
      messages: [{ role: "user", content: "x".repeat(70_000) }],
    });
    expect(huge.status).toBe(413);
    expect(((await huge.json()) as { error: { type: string } }).error.type).toBe("request_too_large");

    const get = await fetch(`${server.url}/v1/messages`, { headers: { "x-api-key": KEY } });
    expect(get.status).toBe(405);
    expect(((await get.json()) as { type: string }).type).toBe("error");
  });
});

describe("tool use with @anthropic-ai/sdk (the chat route's tool machinery)", () => {
  const weather: Anthropic.Tool = {
    name: "get_weather",
    description: "The current weather in a city",
    input_schema: {
      type: "object",
      properties: { city: { type: "string" }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
      required: ["city", "unit"],
      additionalProperties: false,
    },
  };
  const question: Anthropic.MessageParam = { role: "user", content: "What is the weather in Paris?" };

  test("a round trip: a forced tool_use, its tool_result sent back, the final answer streamed", async () => {
    const first = await client.messages.create({
      model: "smol",
      max_tokens: 120,
      ...GREEDY,
      tools: [weather],
      tool_choice: { type: "tool", name: "get_weather" },
      messages: [question],
    });
    expect(first.stop_reason).toBe("tool_use");
    const uses = first.content.filter((b): b is Anthropic.ToolUseBlock => b.type === "tool_use");
    expect(uses.length).toBe(1);
    const use = uses[0] as Anthropic.ToolUseBlock;
    expect(use.name).toBe("get_weather");
    expect(use.id.length).toBeGreaterThan(0);
    // The input matches the schema: the tools' constraint saw to it.
    const input = use.input as { city: unknown; unit: unknown };
    expect(Object.keys(input).sort()).toEqual(["city", "unit"]);
    expect(typeof input.city).toBe("string");
    expect(["celsius", "fahrenheit"]).toContain(input.unit as string);

    // The same call streamed: a tool_use block whose input_json_delta fragments make the same input.
    const events: Anthropic.RawMessageStreamEvent[] = [];
    const streamed = await client.messages.create({
      model: "smol",
      max_tokens: 120,
      ...GREEDY,
      tools: [weather],
      tool_choice: { type: "tool", name: "get_weather" },
      messages: [question],
      stream: true,
    });
    for await (const ev of streamed) events.push(ev);
    const starts = events.filter((e) => e.type === "content_block_start");
    expect(starts.map((e) => e.content_block.type)).toEqual(["tool_use"]);
    const partial = events
      .map((e) =>
        e.type === "content_block_delta" && e.delta.type === "input_json_delta" ? e.delta.partial_json : "",
      )
      .join("");
    expect(JSON.parse(partial)).toEqual(use.input);
    const delta = events.find((e) => e.type === "message_delta");
    expect(delta?.type === "message_delta" && delta.delta.stop_reason).toBe("tool_use");

    // The result goes back in a user turn; the answer streams, and mentions what the tool said.
    const final = await client.messages
      .stream({
        model: "smol",
        max_tokens: 48,
        ...GREEDY,
        tools: [weather],
        tool_choice: { type: "none" },
        messages: [
          question,
          { role: "assistant", content: first.content },
          {
            role: "user",
            content: [
              { type: "tool_result", tool_use_id: use.id, content: '{"temperature": 18, "sky": "clear"}' },
            ],
          },
        ],
      })
      .finalMessage();
    expect(final.stop_reason === "end_turn" || final.stop_reason === "max_tokens").toBe(true);
    expect(final.content.every((b) => b.type === "text")).toBe(true);
    const answer = textOf(final);
    expect(answer.length).toBeGreaterThan(0);
    // Without the result in the prompt the answer differs: the tool_result reached the model.
    const blind = await client.messages.create({
      model: "smol",
      max_tokens: 48,
      ...GREEDY,
      messages: [question],
    });
    expect(answer).not.toBe(textOf(blind));
    expect(final.usage.input_tokens).toBeGreaterThan(blind.usage.input_tokens);
  });

  test("count_tokens gives the input_tokens a request with the same system, messages and tools has", async () => {
    const params = {
      model: "smol",
      system: "Be brief.",
      tools: [weather],
      messages: [question],
    };
    const counted = await client.messages.countTokens(params);
    const created = await client.messages.create({ ...params, max_tokens: 1 });
    expect(counted.input_tokens).toBe(created.usage.input_tokens);
    const plain = await client.messages.countTokens({ model: "smol", messages: [question] });
    // The tools are rendered into the prompt (the generic format lists them in the system turn).
    expect(counted.input_tokens).toBeGreaterThan(plain.input_tokens + 20);
    // It takes what makes the prompt only: a limit is an unknown field, refused in Anthropic's shape.
    const bad = await fetch(`${server.url}/v1/messages/count_tokens`, {
      method: "POST",
      headers: { "x-api-key": KEY, "content-type": "application/json" },
      body: JSON.stringify({ model: "smol", messages: [question], max_tokens: 5 }),
    });
    expect(bad.status).toBe(400);
    const body = (await bad.json()) as { type: string; error: { message: string } };
    expect(body.type).toBe("error");
    expect(body.error.message).toContain("max_tokens: unrecognized");
  });

  test("tool_choice any forces a call; a tool_result in an assistant turn and an unknown tool are 400s", async () => {
    const any = await client.messages.create({
      model: "smol",
      max_tokens: 120,
      ...GREEDY,
      tools: [weather],
      tool_choice: { type: "any", disable_parallel_tool_use: true },
      messages: [question],
    });
    expect(any.stop_reason).toBe("tool_use");
    expect(any.content.filter((b) => b.type === "tool_use").length).toBe(1);

    const misplaced = await postRaw({
      model: "smol",
      max_tokens: 8,
      messages: [
        question,
        { role: "assistant", content: [{ type: "tool_result", tool_use_id: "x", content: "1" }] },
        { role: "user", content: "and?" },
      ],
    });
    expect(misplaced.status).toBe(400);
    expect(((await misplaced.json()) as { error: { message: string } }).error.message).toContain("user turn");

    const unknown = await rejection(
      client.messages.create({
        model: "smol",
        max_tokens: 8,
        tools: [weather],
        tool_choice: { type: "tool", name: "nope" },
        messages: [question],
      }),
    );
    expect(unknown.status).toBe(400);
    expect(unknown.error).toMatchObject({ type: "error", error: { type: "invalid_request_error" } });
  });
});
