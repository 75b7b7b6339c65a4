// Tool calling against a real `hearth serve` on 127.0.0.1 with the real default model (SmolLM2,
// whose template has no tools section: the generic format), through the official openai client.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { pullModel } from "../src/gguf/pull.ts";
import { type RunningServer, startCheckoutServer } from "./server-process.ts";

let server: RunningServer;
let client: OpenAI;

const weather: OpenAI.Chat.Completions.ChatCompletionTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The current weather in a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string" }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
      required: ["city", "unit"],
      additionalProperties: false,
    },
  },
};
const time: OpenAI.Chat.Completions.ChatCompletionTool = {
  type: "function",
  function: {
    name: "get_time",
    parameters: { type: "object", properties: { zone: { type: "string" } }, required: ["zone"] },
  },
};

beforeAll(async () => {
  server = await startCheckoutServer(await pullModel(), []);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
}, 180_000);

afterAll(async () => {
  await server?.stop();
});

describe("tool calling (real server, openai client)", () => {
  test("a whole agent loop: a required call, its result sent back, the final answer streamed", async () => {
    const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
      { role: "user", content: "What is the weather in Paris?" },
    ];
    const first = await client.chat.completions.create({
      model: "default",
      messages,
      tools: [weather, time],
      tool_choice: "required",
      temperature: 0,
      max_tokens: 120,
    });
    const choice = first.choices[0] as OpenAI.Chat.Completions.ChatCompletion.Choice;
    expect(choice.finish_reason).toBe("tool_calls");
    const calls = choice.message.tool_calls ?? [];
    expect(calls.length).toBeGreaterThanOrEqual(1);
    const call = calls[0] as OpenAI.Chat.Completions.ChatCompletionMessageToolCall & { type: "function" };
    expect(call.id).toMatch(/^call_[0-9a-f]{24}$/);
    expect(["get_weather", "get_time"]).toContain(call.function.name);
    // The arguments match the tool's schema: the constraint saw to it.
    const args = JSON.parse(call.function.arguments);
    if (call.function.name === "get_weather") {
      expect(typeof args.city).toBe("string");
      expect(["celsius", "fahrenheit"]).toContain(args.unit);
      expect(Object.keys(args).sort()).toEqual(["city", "unit"]);
    } else expect(typeof args.zone).toBe("string");

    messages.push(choice.message as OpenAI.Chat.Completions.ChatCompletionMessageParam);
    messages.push({ role: "tool", tool_call_id: call.id, content: '{"temperature": 18, "sky": "clear"}' });
    const stream = await client.chat.completions.create({
      model: "default",
      messages,
      tools: [weather, time],
      tool_choice: "none",
      temperature: 0,
      max_tokens: 40,
      stream: true,
    });
    let text = "";
    let chunks = 0;
    let finish: string | null = null;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (!c) continue;
      expect(c.delta.tool_calls).toBeUndefined();
      if (c.delta.content) {
        text += c.delta.content;
        chunks++;
      }
      if (c.finish_reason) finish = c.finish_reason;
    }
    expect(text.trim().length).toBeGreaterThan(0);
    expect(chunks).toBeGreaterThan(1);
    expect(["stop", "length"]).toContain(finish as string);
  }, 120_000);

  test("a named function is called from the first token, streamed as index-keyed deltas", async () => {
    const body = {
      model: "default",
      messages: [{ role: "user" as const, content: "Weather in Oslo, in celsius please." }],
      tools: [weather, time],
      tool_choice: { type: "function" as const, function: { name: "get_weather" } },
      temperature: 0,
      max_tokens: 120,
    };
    const stream = await client.chat.completions.create({ ...body, stream: true });
    const parts: Array<{ index: number; id?: string; name?: string; args: string }> = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (!c) continue;
      for (const d of c.delta.tool_calls ?? []) {
        if (d.id !== undefined)
          parts[d.index] = { index: d.index, id: d.id, name: d.function?.name, args: "" };
        (parts[d.index] as { args: string }).args += d.function?.arguments ?? "";
      }
      if (c.finish_reason) finish = c.finish_reason;
    }
    expect(finish).toBe("tool_calls");
    expect(parts.length).toBe(1);
    expect(parts[0]?.name).toBe("get_weather");
    const args = JSON.parse(parts[0]?.args as string);
    expect(typeof args.city).toBe("string");
    // The same request without streaming gives the same call (greedy).
    const whole = await client.chat.completions.create(body);
    const call = whole.choices[0]?.message.tool_calls?.[0] as {
      function: { name: string; arguments: string };
    };
    expect(call.function.name).toBe("get_weather");
    expect(call.function.arguments).toBe(parts[0]?.args as string);
  }, 120_000);

  test("a reply opening with a call: its first delta has the role and content null, as OpenAI's; the client's stream helper assembles it", async () => {
    const body = {
      model: "default",
      messages: [{ role: "user" as const, content: "Weather in Oslo, in celsius please." }],
      tools: [weather, time],
      tool_choice: { type: "function" as const, function: { name: "get_weather" } },
      temperature: 0,
      max_tokens: 120,
    };
    const raw = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ ...body, stream: true }),
    });
    const deltas = (await raw.text())
      .split("\n\n")
      .filter((l) => l.startsWith("data: {"))
      .map((l) => JSON.parse(l.slice(6)).choices[0]?.delta)
      .filter((d) => d !== undefined);
    expect(deltas[0]).toMatchObject({ role: "assistant", content: null });
    expect(deltas[0].tool_calls[0]).toMatchObject({
      index: 0,
      type: "function",
      function: { name: "get_weather", arguments: "" },
    });
    expect(deltas.slice(1).every((d) => d.role === undefined && d.content === undefined)).toBe(true);
    // The openai client's stream helper accepts it and assembles the call.
    const argsDone: string[] = [];
    const stream = client.chat.completions
      .stream({ ...body, stream: true })
      .on("tool_calls.function.arguments.done", (e) => argsDone.push(e.arguments));
    const final = await stream.finalChatCompletion();
    const message = final.choices[0]?.message;
    expect(message?.role).toBe("assistant");
    expect(message?.content ?? null).toBeNull();
    expect(final.choices[0]?.finish_reason).toBe("tool_calls");
    const call = message?.tool_calls?.[0] as { function: { name: string; arguments: string } };
    expect(call.function.name).toBe("get_weather");
    expect(argsDone).toEqual([call.function.arguments]);
    expect(typeof JSON.parse(call.function.arguments).city).toBe("string");
  }, 120_000);

  test("a reply cut by max_tokens inside a call ends with length and the partial call", async () => {
    const r = await client.chat.completions.create({
      model: "default",
      messages: [{ role: "user", content: "Weather in Rome?" }],
      tools: [weather],
      tool_choice: "required",
      temperature: 0,
      max_tokens: 22,
    });
    const c = r.choices[0] as OpenAI.Chat.Completions.ChatCompletion.Choice;
    expect(c.finish_reason).toBe("length");
    const call = c.message.tool_calls?.[0] as { function: { name: string; arguments: string } };
    expect(call.function.name).toBe("get_weather");
    expect(() => JSON.parse(call.function.arguments)).toThrow();
  }, 60_000);

  test('tool_choice "none" with tools present answers in text', async () => {
    const r = await client.chat.completions.create({
      model: "default",
      messages: [{ role: "user", content: "Say hello." }],
      tools: [weather],
      tool_choice: "none",
      temperature: 0,
      max_tokens: 20,
    });
    const c = r.choices[0] as OpenAI.Chat.Completions.ChatCompletion.Choice;
    expect(c.message.tool_calls).toBeUndefined();
    expect(typeof c.message.content).toBe("string");
    expect(["stop", "length"]).toContain(c.finish_reason);
  }, 60_000);

  test("bad tools are a 400 naming the field", async () => {
    const bad = async (extra: Record<string, unknown>) => {
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 4, ...extra }),
      });
      expect(res.status).toBe(400);
      return ((await res.json()) as { error: { message: string; param: string | null } }).error;
    };
    expect(
      (await bad({ tools: [weather], tool_choice: { type: "function", function: { name: "nope" } } }))
        .message,
    ).toContain('"nope", which is not in tools');
    const e = await bad({
      tools: [{ type: "function", function: { name: "f", parameters: { type: "object", pattern: "x" } } }],
    });
    expect(e.param).toBe("tools[0].function.parameters");
    expect((await bad({ tool_choice: "required" })).message).toContain("tools is empty");
  }, 60_000);
});
