// Tool calling pieces on hand-written model outputs: the recognisers of each template family,
// the lazy constraint, and how a conversation with tools reaches the template.
import { describe, expect, test } from "bun:test";
import { ChatTemplate } from "../src/chat/index.ts";
import {
  CallScanner,
  detectToolFormat,
  type FunctionTool,
  parseToolCalls,
  TOOL_FORMATS,
  ToolCallConstraint,
  type ToolCallSpec,
  type ToolEvent,
  toolCallSpec,
  toolConversation,
} from "../src/tools/index.ts";

const weather: FunctionTool = {
  type: "function",
  function: {
    name: "get_weather",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const time: FunctionTool = { type: "function", function: { name: "get_time" } };

/** Streams `text` one character at a time and folds the events back into content and calls. */
function streamed(format: (typeof TOOL_FORMATS)[keyof typeof TOOL_FORMATS], text: string) {
  const s = new CallScanner(format);
  const events: ToolEvent[] = [];
  for (const ch of text) events.push(...s.push(ch));
  events.push(...s.end());
  let content = "";
  const calls: Array<{ name: string; args: string }> = [];
  for (const e of events) {
    if (e.type === "content") content += e.text;
    else if (e.type === "call") calls[e.index] = { name: e.name, args: "" };
    else (calls[e.index] as { args: string }).args += e.text;
  }
  return { content, calls, events };
}

describe("recognising calls per family", () => {
  const cases: Array<[keyof typeof TOOL_FORMATS, string, string, Array<[string, unknown]>]> = [
    [
      "hermes",
      'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"arguments": {"zone": "CET"}, "name": "get_time"}\n</tool_call>',
      "Let me check.\n",
      [
        ["get_weather", { city: "Paris" }],
        ["get_time", { zone: "CET" }],
      ],
    ],
    [
      "llama3",
      '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}',
      "",
      [["get_weather", { city: "Oslo" }]],
    ],
    [
      "llama3",
      'Sure. {"name": "get_time", "parameters": {"zone": "UTC"}}',
      "Sure. ",
      [["get_time", { zone: "UTC" }]],
    ],
    [
      "mistral",
      '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Rome"}}, {"name": "get_time", "arguments": {}}]',
      "",
      [
        ["get_weather", { city: "Rome" }],
        ["get_time", {}],
      ],
    ],
    [
      "generic",
      'I will look.{"tool_calls": [{"name": "get_weather", "arguments": {"city": "a \\"}\\" b"}}]}',
      "I will look.",
      [["get_weather", { city: 'a "}" b' }]],
    ],
  ];
  for (const [family, text, content, calls] of cases) {
    test(`${family}: ${JSON.stringify(text).slice(0, 50)}`, () => {
      const whole = parseToolCalls(TOOL_FORMATS[family], text);
      expect(whole.content).toBe(content);
      expect(whole.calls.map((c) => [c.name, JSON.parse(c.arguments)])).toEqual(calls);
      expect(whole.calls.every((c) => c.complete && /^call_[0-9a-f]{24}$/.test(c.id))).toBe(true);
      // Character by character: the same content and calls, arguments in several fragments.
      const s = streamed(TOOL_FORMATS[family], text);
      expect(s.content).toBe(content);
      expect(s.calls.map((c) => [c.name, JSON.parse(c.args)])).toEqual(calls);
    });
  }

  test("text without a trigger is all content, even when it ends like one", () => {
    const s = streamed(TOOL_FORMATS.hermes, "a < b and <tool_ca");
    expect(s.content).toBe("a < b and <tool_ca");
    expect(s.calls).toEqual([]);
  });

  test("a reply cut inside a call keeps the call, marked incomplete", () => {
    const r = parseToolCalls(
      TOOL_FORMATS.generic,
      '{"tool_calls": [{"name": "get_weather", "arguments": {"ci',
    );
    expect(r.calls.length).toBe(1);
    expect(r.calls[0]?.arguments).toBe('{"ci');
    expect(r.calls[0]?.complete).toBe(false);
  });

  test("families from template sources", () => {
    expect(detectToolFormat("{{ '<tool_call>\\n' }}").name).toBe("hermes");
    expect(detectToolFormat("[TOOL_CALLS] {{ x }}").name).toBe("mistral");
    expect(detectToolFormat("<|start_header_id|>ipython<|end_header_id|>").name).toBe("llama3");
    expect(detectToolFormat("{% for m in messages %}{{ m.content }}{% endfor %}").name).toBe("generic");
  });
});

/** A byte-per-token vocabulary (ASCII) and one control token: enough to drive the constraint. */
const CONTROL = 200;
const bytesOf = (id: number) => (id < 128 ? new Uint8Array([id]) : new Uint8Array());

function spec(over: Partial<ToolCallSpec> = {}): ToolCallSpec {
  return toolCallSpec(
    TOOL_FORMATS.generic,
    [weather, time],
    over.forced ? "required" : "auto",
  ) as ToolCallSpec;
}

function feed(c: ToolCallConstraint, text: string): void {
  for (const ch of text) {
    const id = ch.charCodeAt(0);
    if (!c.allows(id)) throw new Error(`refused ${JSON.stringify(ch)} after some text`);
    c.accept(id);
  }
}

describe("the lazy tool-call constraint", () => {
  test("forced: only the call's layout, a listed name, arguments of its schema", () => {
    const c = new ToolCallConstraint(spec({ forced: true }), bytesOf);
    expect(c.allows("H".charCodeAt(0))).toBe(false);
    feed(c, '{"tool_calls": [{"name": "get_');
    expect(c.allows("x".charCodeAt(0))).toBe(false);
    feed(c, 'weather", "arguments": {');
    // Only the declared key (parameters without additionalProperties are closed).
    expect(c.allows('"'.charCodeAt(0))).toBe(true);
    expect(c.allows("}".charCodeAt(0))).toBe(false); // "city" is required
    feed(c, '"city": "Paris"}}');
    expect(c.allows(CONTROL)).toBe(false);
    feed(c, ", ");
    feed(c, '{"name": "get_time", "arguments": {}}]}');
    expect(c.complete).toBe(true);
  });

  test("auto: free text until the trigger, then constrained", () => {
    const c = new ToolCallConstraint(spec(), bytesOf);
    feed(c, 'Hello! Any text {"x": 1} here. ');
    expect(c.inCall).toBe(false);
    expect(c.allows(CONTROL)).toBe(true);
    feed(c, '{"tool_calls": [{"name": "');
    expect(c.inCall).toBe(true);
    expect(c.allows("z".charCodeAt(0))).toBe(false);
    expect(c.allows(CONTROL)).toBe(false);
    feed(c, 'get_time", "arguments": {}}]}');
    expect(c.complete).toBe(true);
  });

  test("no parallel calls: the list closes after one", () => {
    const one = toolCallSpec(TOOL_FORMATS.generic, [weather, time], "required", false) as ToolCallSpec;
    const c = new ToolCallConstraint(one, bytesOf);
    feed(c, '{"tool_calls": [{"name": "get_time", "arguments": {}}');
    expect(c.allows(",".charCodeAt(0))).toBe(false);
    feed(c, "]}");
    expect(c.complete).toBe(true);
  });

  test("hermes with parallel calls watches for another trigger after a call", () => {
    const s = toolCallSpec(TOOL_FORMATS.hermes, [weather], "auto") as ToolCallSpec;
    const c = new ToolCallConstraint(s, bytesOf);
    feed(c, 'ok <tool_call>\n{"name": "get_weather", "arguments": {"city": "A"}}\n</tool_call>');
    expect(c.inCall).toBe(false);
    expect(c.complete).toBe(false);
    feed(c, '\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "B"}}\n</tool_call>');
    expect(c.inCall).toBe(false);
  });

  test('"none" and an unknown named function', () => {
    expect(toolCallSpec(TOOL_FORMATS.generic, [weather], "none")).toBeNull();
    expect(() =>
      toolCallSpec(TOOL_FORMATS.generic, [weather], { type: "function", function: { name: "x" } }),
    ).toThrow('"x", which is not in tools');
  });
});

describe("a conversation with tools", () => {
  const history = [
    { role: "user", content: "Weather in Paris?" },
    {
      role: "assistant",
      content: null,
      tool_calls: [
        { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
      ],
    },
    { role: "tool", tool_call_id: "call_1", content: "18C" },
  ];

  test("generic: tools in the system message, calls and results as text", () => {
    const { messages, variables } = toolConversation(TOOL_FORMATS.generic, history, [weather]);
    expect(variables).toEqual({});
    expect(messages[0]?.role).toBe("system");
    expect(messages[0]?.content as string).toContain('"name":"get_weather"');
    expect(messages[2]?.content).toBe('{"tool_calls":[{"name":"get_weather","arguments":{"city":"Paris"}}]}');
    expect(messages[3]).toEqual({
      role: "user",
      content: '{"tool_result":{"tool_call_id":"call_1","name":"get_weather","content":"18C"}}',
    });
  });

  test("a template with a tools section gets them, and history arguments as objects", () => {
    const source =
      "{% for t in tools %}[{{ t.function.name }}]{% endfor %}" +
      "{% for m in messages %}{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ c.function.arguments | tojson }}</tool_call>{% endfor %}{% else %}({{ m.role }}:{{ m.content }}){% endif %}{% endfor %}";
    const format = detectToolFormat(source);
    expect(format.name).toBe("hermes");
    const { messages, variables } = toolConversation(format, history, [weather]);
    const text = ChatTemplate.fromString(source).render(messages, { variables });
    expect(text).toBe(
      '[get_weather](user:Weather in Paris?)<tool_call>{"city": "Paris"}</tool_call>(tool:18C)',
    );
  });
});
