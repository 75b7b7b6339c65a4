// How a model writes tool calls, by chat-template family (docs/tools.md): the text that opens a
// call when the model decides to make one (its triggers), and the exact layout a constrained
// call follows. Plain data: it crosses to the engine worker inside a request.

/** The families hearth recognises; "generic" is hearth's own JSON format for templates without one. */
export type ToolFormatName = "hermes" | "llama3" | "mistral" | "generic";

/** Text that opens tool calls in free text. `at`: the trigger is the start of the call's JSON. */
export interface ToolTrigger {
  text: string;
  at: boolean;
}

export interface ToolFormat {
  name: ToolFormatName;
  triggers: readonly ToolTrigger[];
  /** What a forced call (tool_choice required or named) starts with, before `open`. */
  lead: string;
  /** After the trigger (or lead), before the first call object. */
  open: string;
  /** The key of the arguments object in a call object: `{"name": "...", "<argsKey>": {...}}`. */
  argsKey: "arguments" | "parameters";
  /** Between two calls under one opening; null: one call per opening. */
  sep: string | null;
  /** After the last call object. */
  close: string;
  /** Another trigger may open more calls after `close` (when parallel calls are allowed). */
  repeat: boolean;
}

export const TOOL_FORMATS: Record<ToolFormatName, ToolFormat> = {
  // Hermes 2 Pro, Qwen 2.5 and Qwen 3: <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>
  hermes: {
    name: "hermes",
    triggers: [{ text: "<tool_call>", at: false }],
    lead: "<tool_call>",
    open: "\n",
    argsKey: "arguments",
    sep: null,
    close: "\n</tool_call>",
    repeat: true,
  },
  // Llama 3.1-3.3: {"name": ..., "parameters": {...}}, possibly after <|python_tag|>.
  llama3: {
    name: "llama3",
    triggers: [
      { text: "<|python_tag|>", at: false },
      { text: '{"name": "', at: true },
    ],
    lead: "",
    open: "",
    argsKey: "parameters",
    sep: null,
    close: "",
    repeat: false,
  },
  // Mistral / Mixtral / Mistral Nemo: [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]
  mistral: {
    name: "mistral",
    triggers: [{ text: "[TOOL_CALLS]", at: false }],
    lead: "[TOOL_CALLS]",
    open: "[",
    argsKey: "arguments",
    sep: ", ",
    close: "]",
    repeat: false,
  },
  // Templates without a tools section: {"tool_calls": [{"name": ..., "arguments": {...}}, ...]}
  generic: {
    name: "generic",
    triggers: [{ text: '{"tool_calls":', at: false }],
    lead: '{"tool_calls":',
    open: " [",
    argsKey: "arguments",
    sep: ", ",
    close: "]}",
    repeat: false,
  },
};

/**
 * The family of a chat template, from marker text in its source (as llama.cpp's common/chat.cpp
 * tells formats apart): generic when it has none of them.
 */
export function detectToolFormat(templateSource: string): ToolFormat {
  const has = (s: string) => templateSource.includes(s);
  if (has("<tool_call>")) return TOOL_FORMATS.hermes;
  if (has("[TOOL_CALLS]")) return TOOL_FORMATS.mistral;
  if (has("<|start_header_id|>") && (has("<|python_tag|>") || has("ipython"))) return TOOL_FORMATS.llama3;
  return TOOL_FORMATS.generic;
}
