// Tool calling (docs/tools.md): what a request's tools and tool_choice ask of a generation, how
// the tools and a tool-calling history reach the chat template, and reading calls out of a reply.
// The engine side is ToolCallConstraint (constraint.ts), which Generation samples through.
import type { ChatMessage } from "../chat/index.ts";
import { compileSchema, SchemaError, SchemaRecognizer } from "../sampling/json-schema.ts";
import { type ToolCallSpec, toolArgsSchema } from "./constraint.ts";
import { detectToolFormat, type ToolFormat } from "./format.ts";
import { parseToolCalls } from "./scanner.ts";

export { CallGrammar, ToolCallConstraint, type ToolCallSpec } from "./constraint.ts";
export { detectToolFormat, TOOL_FORMATS, type ToolFormat, type ToolFormatName } from "./format.ts";
export { CallScanner, callId, type ParsedCall, parseToolCalls, type ToolEvent } from "./scanner.ts";

/** A function tool, as OpenAI's `tools` lists it. */
export interface FunctionTool {
  type: "function";
  function: { name: string; description?: string; parameters?: unknown; strict?: boolean | null };
}

/** OpenAI's tool_choice: "auto" (default), "none", "required", or one named function. */
export type ToolChoice = "auto" | "none" | "required" | { type: "function"; function: { name: string } };

export class ToolError extends Error {
  override name = "ToolError";
  constructor(
    message: string,
    /** The request field at fault. */
    readonly field: string,
  ) {
    super(message);
  }
}

/**
 * The tool-call part of a generation for these tools and tool_choice (null: no calls, "none" or
 * no tools). Throws ToolError for a choice naming a function that is not in `tools`.
 */
export function toolCallSpec(
  format: ToolFormat,
  tools: readonly FunctionTool[],
  choice: ToolChoice = "auto",
  parallel = true,
): ToolCallSpec | null {
  if (tools.length === 0) {
    if (choice !== "auto" && choice !== "none")
      throw new ToolError("tool_choice asks for a call but tools is empty", "tool_choice");
    return null;
  }
  const names = new Set<string>();
  for (const [i, t] of tools.entries()) {
    const name = t.function.name;
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name))
      throw new ToolError(
        `tools[${i}].function.name must be 1 to 64 letters, digits, _ . or -`,
        `tools[${i}].function.name`,
      );
    if (names.has(name))
      throw new ToolError(`tools[${i}].function.name "${name}" is listed twice`, `tools[${i}].function.name`);
    names.add(name);
    const where = `tools[${i}].function.parameters`;
    try {
      new SchemaRecognizer(compileSchema(toolArgsSchema(t.function.parameters), where));
    } catch (err) {
      if (!(err instanceof SchemaError)) throw err;
      throw new ToolError(err.message, where);
    }
  }
  if (choice === "none") return null;
  let listed = tools;
  if (typeof choice === "object") {
    listed = tools.filter((t) => t.function.name === choice.function.name);
    if (listed.length === 0)
      throw new ToolError(
        `tool_choice names "${choice.function.name}", which is not in tools`,
        "tool_choice.function.name",
      );
  }
  return {
    format,
    tools: listed.map((t) => ({ name: t.function.name, parameters: t.function.parameters })),
    forced: choice !== "auto",
    parallel: typeof choice === "object" ? false : parallel,
  };
}

/** A chat message as src/chat renders it (OpenAI's shape). */
interface Message {
  role: string;
  content: unknown;
  tool_calls?: Array<{ id?: string; type?: string; function: { name: string; arguments: string | unknown } }>;
  tool_call_id?: string | null;
  [extra: string]: unknown;
}

/** The arguments of a history call as an object (templates write them with `tojson`). */
function argumentsObject(args: unknown): unknown {
  if (typeof args !== "string") return args;
  try {
    return JSON.parse(args);
  } catch {
    return args;
  }
}

/** The instructions of the generic format, with the tools listed (docs/tools.md). */
export function genericToolPrompt(tools: readonly FunctionTool[]): string {
  const lines = tools.map((t) => JSON.stringify(t.function));
  return (
    "You can call these tools (JSON Schema parameters):\n" +
    `${lines.join("\n")}\n` +
    "To call tools, reply with only this JSON and nothing else:\n" +
    '{"tool_calls": [{"name": "<tool name>", "arguments": {<arguments>}}]}\n' +
    "Otherwise answer in plain text."
  );
}

/**
 * The messages and template variables of a conversation with tools. A template with its own tools
 * section gets `tools`, and history calls with object arguments; the generic format describes the
 * tools in the system message and writes history calls and results as text.
 */
export function toolConversation(
  format: ToolFormat,
  messages: readonly Message[],
  tools: readonly FunctionTool[] | null,
): { messages: ChatMessage[]; variables: Record<string, unknown> } {
  if (format.name !== "generic") {
    const out = messages.map((m) =>
      m.tool_calls === undefined || m.tool_calls === null
        ? m
        : {
            ...m,
            tool_calls: m.tool_calls.map((c) => ({
              ...c,
              function: { ...c.function, arguments: argumentsObject(c.function.arguments) },
            })),
          },
    );
    return {
      messages: out as ChatMessage[],
      variables: tools === null || tools.length === 0 ? {} : { tools },
    };
  }
  const names = new Map<string, string>();
  const out: Message[] = messages.map((m) => {
    if (m.role === "assistant" && m.tool_calls != null && m.tool_calls.length > 0) {
      const calls = m.tool_calls.map((c) => {
        if (c.id !== undefined) names.set(c.id, c.function.name);
        return { name: c.function.name, arguments: argumentsObject(c.function.arguments) };
      });
      const text = typeof m.content === "string" && m.content !== "" ? `${m.content}\n` : "";
      const { tool_calls: _, ...rest } = m;
      return { ...rest, content: `${text}${JSON.stringify({ tool_calls: calls })}` };
    }
    if (m.role === "tool") {
      const id = m.tool_call_id ?? null;
      const result = {
        tool_result: {
          tool_call_id: id,
          name: id === null ? null : (names.get(id) ?? null),
          content: m.content,
        },
      };
      return { role: "user", content: JSON.stringify(result) };
    }
    return m;
  });
  if (tools !== null && tools.length > 0) {
    const prompt = genericToolPrompt(tools);
    const first = out[0];
    if (first?.role === "system" && typeof first.content === "string")
      out[0] = { ...first, content: `${first.content}\n\n${prompt}` };
    else out.unshift({ role: "system", content: prompt });
  }
  return { messages: out as ChatMessage[], variables: {} };
}

/** A tool call of a library reply, in OpenAI's shape (it goes back into the history as is). */
export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** What a chat with tools needs: the messages and variables to render, the engine spec, the format. */
export interface ChatTools {
  messages: ChatMessage[];
  variables: Record<string, unknown>;
  spec: ToolCallSpec | null;
  format: ToolFormat;
}

/**
 * The library's chat options `tools`, `toolChoice` and `parallelToolCalls` for a template, checked
 * (a RangeError names what is wrong); null when the call has no tools.
 */
export function chatTools(
  where: string,
  templateSource: string,
  messages: readonly ChatMessage[],
  opts: { tools?: readonly FunctionTool[]; toolChoice?: ToolChoice; parallelToolCalls?: boolean },
): ChatTools | null {
  const { tools, toolChoice, parallelToolCalls } = opts;
  if (tools === undefined) {
    if (toolChoice !== undefined && toolChoice !== "auto" && toolChoice !== "none")
      throw new RangeError(`${where}: toolChoice asks for a call but no tools are given`);
    return null;
  }
  if (!Array.isArray(tools)) throw new RangeError(`${where}: tools must be an array of function tools`);
  for (const [i, t] of tools.entries())
    if (t === null || typeof t !== "object" || t.type !== "function" || typeof t.function?.name !== "string")
      throw new RangeError(
        `${where}: tools[${i}] must be { type: "function", function: { name, parameters } }`,
      );
  if (
    toolChoice !== undefined &&
    !["auto", "none", "required"].includes(toolChoice as string) &&
    typeof (toolChoice as { function?: { name?: unknown } })?.function?.name !== "string"
  )
    throw new RangeError(
      `${where}: toolChoice must be "auto", "none", "required" or { type: "function", function: { name } }`,
    );
  if (parallelToolCalls !== undefined && typeof parallelToolCalls !== "boolean")
    throw new RangeError(`${where}: parallelToolCalls must be a boolean`);
  const format = detectToolFormat(templateSource);
  let spec: ToolCallSpec | null;
  try {
    spec = toolCallSpec(format, tools, toolChoice ?? "auto", parallelToolCalls ?? true);
  } catch (err) {
    if (err instanceof ToolError) throw new RangeError(`${where}: ${err.message}`);
    throw err;
  }
  const conversation = toolConversation(format, messages as Message[], spec === null ? null : tools);
  return { ...conversation, spec, format };
}

/** A reply's text read as content and calls (the library's result fields). */
export function toolReply(format: ToolFormat, text: string): { content: string; toolCalls: ToolCall[] } {
  const { content, calls } = parseToolCalls(format, text);
  return {
    content,
    toolCalls: calls.map((c) => ({
      id: c.id,
      type: "function",
      function: { name: c.name, arguments: c.arguments },
    })),
  };
}
