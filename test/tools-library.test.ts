// Tool calling in the library (session.chat with tools) and another chat template (the
// `chatTemplate` option, `--chat-template FILE`), with the real default model.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadModel, type Model } from "../src/index.ts";
import type { FunctionTool } from "../src/tools/index.ts";

const weather: FunctionTool = {
  type: "function",
  function: {
    name: "get_weather",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

/** A Hermes-style ChatML template with a tools section (as Qwen 2.5's, cut down). */
const HERMES = `{%- if tools %}<|im_start|>system
You may call functions. Tools:
{% for t in tools %}{{ t.function | tojson }}
{% endfor %}Reply with <tool_call>
{"name": <name>, "arguments": <args>}
</tool_call><|im_end|>
{% endif %}{%- for m in messages %}<|im_start|>{{ m.role }}
{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>
{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}
</tool_call>{% endfor %}{% else %}{{ m.content }}{% endif %}<|im_end|>
{% endfor %}{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}`;

let model: Model;
let hermes: Model;
let dir: string;

beforeAll(async () => {
  model = await loadModel(undefined, { threads: 2, contextTokens: 1024, maxSessions: 2 });
  hermes = await loadModel(undefined, {
    threads: 2,
    contextTokens: 1024,
    maxSessions: 2,
    chatTemplate: HERMES,
  });
  dir = mkdtempSync(join(tmpdir(), "hearth-tools-"));
}, 120_000);

afterAll(() => {
  model?.close();
  hermes?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function drain(it: AsyncGenerator<string, unknown, void>) {
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value as import("../src/session.ts").GenerateResult;
  }
}

describe("session.chat with tools", () => {
  test("the generic format (the model's own template): a required call", async () => {
    const s = model.createSession();
    const r = await drain(
      s.chat([{ role: "user", content: "Weather in Lima?" }], {
        tools: [weather],
        toolChoice: "required",
        temperature: 0,
        maxTokens: 80,
      }),
    );
    expect(r.text.startsWith('{"tool_calls": [{"name": "get_weather", "arguments": ')).toBe(true);
    expect(r.toolCalls?.length).toBe(1);
    expect(r.toolCalls?.[0]?.function.name).toBe("get_weather");
    expect(typeof JSON.parse(r.toolCalls?.[0]?.function.arguments as string).city).toBe("string");
    expect(r.content).toBe("");
    s.close();
  }, 60_000);

  test("another template (chatTemplate option) with a tools section: the Hermes format", async () => {
    expect(hermes.chatTemplate.source).toBe(HERMES);
    const s = hermes.createSession();
    const r = await drain(
      s.chat([{ role: "user", content: "Weather in Lima?" }], {
        tools: [weather],
        toolChoice: { type: "function", function: { name: "get_weather" } },
        temperature: 0,
        maxTokens: 80,
      }),
    );
    expect(r.text.startsWith('<tool_call>\n{"name": "get_weather", "arguments": {')).toBe(true);
    expect(r.text.endsWith("}\n</tool_call>")).toBe(true);
    expect(r.toolCalls?.map((c) => c.function.name)).toEqual(["get_weather"]);
    s.close();
  }, 60_000);

  test("bad tool options are clear errors", async () => {
    const s = model.createSession();
    const hi = [{ role: "user" as const, content: "hi" }];
    expect(() => s.chat(hi, { toolChoice: "required" })).toThrow("no tools are given");
    expect(() =>
      s.chat(hi, { tools: [weather], toolChoice: { type: "function", function: { name: "x" } } }),
    ).toThrow('"x", which is not in tools');
    expect(() => s.chat(hi, { tools: [{ type: "function" } as never] })).toThrow("tools[0] must be");
    s.prefill("hi");
    expect(() => s.generate({ tools: [weather] })).toThrow("tools need chat()");
    s.close();
    await expect(loadModel(undefined, { chatTemplate: "" })).rejects.toThrow("chatTemplate must be");
  });
});

describe("--chat-template FILE", () => {
  const MAIN = join(import.meta.dir, "..", "src/cli/main.ts");
  const hearth = async (args: string[]) => {
    const proc = Bun.spawn([process.execPath, MAIN, ...args], { stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    return { stdout, stderr, code };
  };

  test("a missing file is a usage error", async () => {
    const r = await hearth(["run", "--chat-template", join(dir, "none.jinja"), "-p", "hi"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--chat-template: cannot read");
    const s = await hearth(["serve", "--chat-template", join(dir, "none.jinja")]);
    expect(s.code).toBe(2);
    expect(s.stderr).toContain("--chat-template: cannot read");
  }, 60_000);

  test("run --chat renders the prompt with the file's template", async () => {
    // A template that answers every conversation with the same fixed assistant turn start.
    const file = join(dir, "t.jinja");
    writeFileSync(file, "<|im_start|>user\nSay only the word: banana<|im_end|>\n<|im_start|>assistant\n");
    const r = await hearth([
      "run",
      "--chat",
      "--chat-template",
      file,
      "--temp",
      "0",
      "-n",
      "8",
      "-p",
      "ignored",
    ]);
    expect(r.code).toBe(0);
    const plain = await hearth(["run", "--chat", "--temp", "0", "-n", "8", "-p", "ignored"]);
    expect(r.stdout).not.toBe(plain.stdout);
  }, 120_000);
});
