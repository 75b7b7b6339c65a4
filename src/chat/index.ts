// Chat templates: the model's `tokenizer.chat_template` (Jinja) rendered with @huggingface/jinja,
// or, when the file has none, the turn format its vocabulary has tokens for (Gemma's or ChatML).

import { Template } from "@huggingface/jinja";
import type { GgufMetadata } from "../gguf/index.ts";
import type { Tokenizer } from "../tokenizer/index.ts";

export interface ChatContentPart {
  type: string;
  text?: string;
}

export interface ChatMessage {
  role: string;
  /** Text, or OpenAI-style parts of which the text parts are joined. */
  content: string | null | ChatContentPart[];
  [extra: string]: unknown;
}

export interface RenderOptions {
  /** End with the header of an assistant turn so the model answers. Default true. */
  addGenerationPrompt?: boolean;
  /** Extra template variables (e.g. `tools`), passed through unchanged. */
  variables?: Record<string, unknown>;
}

export class ChatTemplateError extends Error {
  override name = "ChatTemplateError";
}

/** The roles a conversation may use: OpenAI's set, the same the server accepts. */
export const CHAT_ROLES = ["system", "developer", "user", "assistant", "tool"] as const;

/**
 * Checks a conversation before it is rendered for generation: an array of at least one message,
 * each with one of {@link CHAT_ROLES}. `where` names the call (e.g. "chat"). Templates render any
 * role; a conversation to answer needs a known one.
 */
export function checkConversation(where: string, messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages)) {
    throw new ChatTemplateError(`${where}: messages must be an array of { role, content }`);
  }
  if (messages.length === 0) {
    throw new ChatTemplateError(`${where}: messages is empty; give at least one message`);
  }
  messages.forEach((m, i) => {
    if (m === null || typeof m !== "object")
      throw new ChatTemplateError(`${where}: messages[${i}] must be an object`);
    if (!(CHAT_ROLES as readonly string[]).includes(m.role)) {
      throw new ChatTemplateError(
        `${where}: messages[${i}].role is ${JSON.stringify(m.role)}; it must be one of ${CHAT_ROLES.join(", ")}`,
      );
    }
  });
}

/** Used when a model has no chat template: ChatML, which SmolLM-style models are trained on. */
export const CHATML_TEMPLATE =
  "{%- for message in messages %}" +
  "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/**
 * Used when a model has no chat template but its vocabulary has Gemma's turn tokens (Gemma 3 GGUFs
 * converted without one, such as the 270M Q4_K_M file of `hearth pull gemma3-270m`): llama.cpp's
 * built-in `gemma` format. Assistant turns are `model` turns, every message is trimmed, and system
 * text (Gemma has no system turn) goes before the next user message, followed by a blank line.
 * (llama.cpp itself renders ChatML for such a file: `<|im_start|>` is plain text to Gemma's vocab.)
 */
export const GEMMA_TEMPLATE =
  "{%- set ns = namespace(system='') %}" +
  "{%- for message in messages %}" +
  "{%- if message['role'] == 'system' %}{%- set ns.system = ns.system + (message['content'] | trim) %}" +
  "{%- else %}" +
  "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}" +
  "{{- '<start_of_turn>' + role + '\n' }}" +
  "{%- if ns.system != '' and role != 'model' %}{{- ns.system + '\n\n' }}{%- set ns.system = '' %}{%- endif %}" +
  "{{- (message['content'] | trim) + '<end_of_turn>\n' }}" +
  "{%- endif %}" +
  "{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<start_of_turn>model\n' }}{%- endif %}";

/** The template for a model without one: Gemma's when the vocabulary has its turn tokens, else ChatML. */
function fallbackTemplate(tokenizer: Tokenizer | undefined): string {
  const gemma =
    tokenizer !== undefined &&
    tokenizer.tokenId("<start_of_turn>") !== undefined &&
    tokenizer.tokenId("<end_of_turn>") !== undefined;
  return gemma ? GEMMA_TEMPLATE : CHATML_TEMPLATE;
}

export interface ChatTemplateTokens {
  bosToken?: string;
  eosToken?: string;
}

export class ChatTemplate {
  private readonly template: Template;
  private systemRole: boolean | undefined;

  private constructor(
    readonly source: string,
    /** True when the model had no template and a fallback (ChatML or Gemma's) is used instead. */
    readonly isFallback: boolean,
    private readonly tokens: ChatTemplateTokens,
  ) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(
        `${isFallback ? "fallback" : "the"} chat template does not parse: ${(e as Error).message}`,
      );
    }
  }

  /** The template in `tokenizer.chat_template`, with BOS/EOS texts from the tokenizer; if absent, the
   * fallback the vocabulary fits (Gemma's turn tokens, else ChatML). */
  static fromGguf(md: GgufMetadata, tokenizer?: Tokenizer): ChatTemplate {
    const tokens = templateTokens(tokenizer);
    const key = "tokenizer.chat_template";
    if (!md.has(key)) return new ChatTemplate(fallbackTemplate(tokenizer), true, tokens);
    let source: string;
    try {
      source = md.string(key);
    } catch {
      throw new ChatTemplateError(`${key} is not a string`);
    }
    if (source.trim() === "") return new ChatTemplate(fallbackTemplate(tokenizer), true, tokens);
    return new ChatTemplate(source, false, tokens);
  }

  static fromString(source: string, tokens: ChatTemplateTokens = {}): ChatTemplate {
    return new ChatTemplate(source, false, tokens);
  }

  /** Another template (`--chat-template FILE`, the `chatTemplate` option) for a model's tokenizer. */
  static forTokenizer(source: string, tokenizer: Tokenizer): ChatTemplate {
    if (typeof source !== "string" || source.trim() === "")
      throw new ChatTemplateError("the chat template must be a non-empty Jinja text");
    return new ChatTemplate(source, false, templateTokens(tokenizer));
  }

  static chatml(tokens: ChatTemplateTokens = {}): ChatTemplate {
    return new ChatTemplate(CHATML_TEMPLATE, true, tokens);
  }

  /**
   * Renders a conversation to the prompt text. To tokenize it, prefer `encodeChat`: encoding
   * this text with `parseSpecial: true` also turns control-token text inside messages into tokens.
   */
  render(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    return this.renderEscaped(messages, options, (content) => content);
  }

  /** `render` with each message's text passed through `mapContent` first. */
  renderEscaped(
    messages: readonly ChatMessage[],
    options: RenderOptions,
    mapContent: (content: string) => string,
  ): string {
    // As llama.cpp's chat code does: OpenAI's `developer` messages are system messages (except for
    // gpt-oss's channel templates), and a template that ignores or refuses a system message gets it
    // merged into the next message.
    const developerAsSystem = !this.source.includes("<|channel|>");
    let normalized = normalizeMessages(messages).map((m) => ({
      ...m,
      role: developerAsSystem && m.role === "developer" ? "system" : m.role,
      content: mapContent(m.content as string),
    }));
    if (normalized[0]?.role === "system" && !this.supportsSystemRole()) {
      const [system, next, ...rest] = normalized;
      normalized =
        next === undefined ? [] : [{ ...next, content: `${system?.content}\n${next.content}` }, ...rest];
    }
    return this.renderContext({ ...options, messages: normalized });
  }

  private renderContext(options: RenderOptions & { messages: unknown[] }): string {
    const now = new Date();
    const context: Record<string, unknown> = {
      bos_token: this.tokens.bosToken ?? "",
      eos_token: this.tokens.eosToken ?? "",
      // llama.cpp's extra context: today's date, as "07 Dec 2026" and "Dec 07 2026".
      date_string: `${pad2(now.getDate())} ${MONTHS[now.getMonth()]} ${now.getFullYear()}`,
      datetime: `${MONTHS[now.getMonth()]} ${pad2(now.getDate())} ${now.getFullYear()}`,
      // Reasoning templates think unless told not to (llama.cpp's default; variables override it).
      enable_thinking: true,
      ...options.variables,
      messages: options.messages,
      add_generation_prompt: options.addGenerationPrompt ?? true,
    };
    try {
      return this.template.render(context);
    } catch (e) {
      throw new ChatTemplateError(`chat template failed to render: ${(e as Error).message}`);
    }
  }

  /** Whether a system message's text reaches the output (llama.cpp's supports_system_role probe). */
  private supportsSystemRole(): boolean {
    if (this.systemRole === undefined) {
      const probe = "\ufdd0system probe\ufdd0";
      try {
        this.systemRole = this.renderContext({
          messages: [
            { role: "system", content: probe },
            { role: "user", content: "User message" },
          ],
        }).includes(probe);
      } catch {
        this.systemRole = false;
      }
    }
    return this.systemRole;
  }
}

/** BOS and EOS texts a template may use. */
function templateTokens(tokenizer: Tokenizer | undefined): ChatTemplateTokens {
  const tokens: ChatTemplateTokens = {};
  if (tokenizer !== undefined) {
    if (tokenizer.bosId >= 0) tokens.bosToken = tokenizer.tokenText(tokenizer.bosId);
    if (tokenizer.eosId >= 0) tokens.eosToken = tokenizer.tokenText(tokenizer.eosId);
  }
  return tokens;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad2 = (n: number) => String(n).padStart(2, "0");

/** Noncharacters reserved for internal use: the placeholder marker is one no message contains. */
const MARKER_FIRST = 0xfdd0;
const MARKER_LAST = 0xfdef;

/**
 * Renders a conversation with the template and tokenizes it. The template's own control tokens
 * (`<|im_start|>`, `<|im_end|>`, ...) become those tokens; control-token text inside a message
 * stays plain text, so a message cannot close its own turn and forge another. BOS is added
 * unless the template already starts with it. Text without control-token strings in its
 * messages gives the same tokens as encoding `render()` with `parseSpecial: true`.
 */
export function encodeChat(
  template: ChatTemplate,
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  options: RenderOptions = {},
): number[] {
  const controls = tokenizer.controlTexts();
  const contents = normalizeMessages(messages).map((m) => m.content as string);
  let marker = "";
  for (let c = MARKER_FIRST; c <= MARKER_LAST && marker === ""; c++) {
    const ch = String.fromCharCode(c);
    if (!contents.some((t) => t.includes(ch))) marker = ch;
  }
  if (marker === "") {
    throw new ChatTemplateError("messages contain every noncharacter U+FDD0..U+FDEF; remove them");
  }
  // Longest first, as the tokenizer matches them (a longer token may contain a shorter one).
  const pattern =
    controls.length === 0
      ? null
      : new RegExp(controls.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "g");
  const originals: string[] = [];
  const hide = (content: string): string =>
    pattern === null
      ? content
      : content.replace(pattern, (found) => {
          originals.push(found);
          return `${marker}${originals.length - 1}${marker}`;
        });
  const text = template.renderEscaped(messages, options, hide);
  const placeholder = new RegExp(`${marker}(\\d+)${marker}`, "g");
  const bosText = tokenizer.bosId >= 0 ? tokenizer.tokenText(tokenizer.bosId) : "";
  return tokenizer.encode(text, {
    addSpecial: !(bosText !== "" && text.startsWith(bosText)),
    parseSpecial: true,
    unescape:
      originals.length === 0
        ? undefined
        : (t) => t.replace(placeholder, (_, i) => originals[Number(i)] ?? ""),
  });
}

function normalizeMessages(messages: readonly ChatMessage[]): Record<string, unknown>[] {
  if (!Array.isArray(messages)) throw new ChatTemplateError("messages must be an array");
  return messages.map((m, i) => {
    if (m === null || typeof m !== "object") throw new ChatTemplateError(`messages[${i}] must be an object`);
    if (typeof m.role !== "string" || m.role === "") {
      throw new ChatTemplateError(`messages[${i}].role must be a non-empty string`);
    }
    let content: string;
    if (typeof m.content === "string") content = m.content;
    else if (m.content === null || m.content === undefined) content = "";
    else if (Array.isArray(m.content)) {
      content = m.content
        .map((part: ChatContentPart, j: number) => {
          if (part === null || typeof part !== "object" || typeof part.type !== "string") {
            throw new ChatTemplateError(`messages[${i}].content[${j}] must be a {type, text} part`);
          }
          if (part.type !== "text") {
            throw new ChatTemplateError(
              `messages[${i}].content[${j}] has type "${part.type}"; only text is supported`,
            );
          }
          if (typeof part.text !== "string")
            throw new ChatTemplateError(`messages[${i}].content[${j}].text must be a string`);
          return part.text;
        })
        // One part per line, as llama.cpp joins them (no newline while the text is still empty).
        .reduce((text: string, part: string) => (text === "" ? part : `${text}\n${part}`), "");
    } else {
      throw new ChatTemplateError(`messages[${i}].content must be a string, null or an array of text parts`);
    }
    return { ...m, content };
  });
}
