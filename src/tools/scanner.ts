// Reading tool calls out of a reply as it streams: text before a trigger is content; after it,
// each JSON object `{"name": ..., "arguments"|"parameters": {...}}` is a call, reported as soon as
// its name is known and then argument fragment by fragment (OpenAI's streamed tool_calls deltas).
// Lenient about whitespace and key order; text between and after call objects is dropped.
import type { ToolFormat } from "./format.ts";

export type ToolEvent =
  | { type: "content"; text: string }
  /** Call `index` starts: its id and name (arguments follow). */
  | { type: "call"; index: number; id: string; name: string }
  /** More of call `index`'s arguments (JSON text). */
  | { type: "arguments"; index: number; text: string };

export interface ParsedCall {
  id: string;
  name: string;
  /** The arguments as JSON text (what OpenAI's `function.arguments` holds). */
  arguments: string;
  /** False when the reply ended inside the call (max_tokens). */
  complete: boolean;
}

/** A new call id: `call_` and 24 random letters and digits. */
export function callId(): string {
  return `call_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
}

const NAME = /^\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"/;
const ARGS = /"(?:arguments|parameters)"\s*:\s*$/;

export class CallScanner {
  readonly calls: ParsedCall[] = [];
  private inCalls = false;
  /** Free text held back: it may be the start of a trigger. */
  private held = "";
  // The call object being read.
  private obj = "";
  private depth = 0;
  private inString = false;
  private escaped = false;
  private named = false;
  /** The arguments are an object, streamed as it comes. */
  private streaming = false;
  private argsDone = false;

  constructor(private readonly format: ToolFormat) {}

  push(text: string): ToolEvent[] {
    const out: ToolEvent[] = [];
    if (!this.inCalls) {
      const all = this.held + text;
      this.held = "";
      let found = -1;
      let trigger = null as ToolFormat["triggers"][number] | null;
      for (const t of this.format.triggers) {
        const k = all.indexOf(t.text);
        if (k >= 0 && (found < 0 || k < found)) {
          found = k;
          trigger = t;
        }
      }
      if (trigger === null) {
        const keep = this.partialTrigger(all);
        if (all.length - keep > 0) out.push({ type: "content", text: all.slice(0, all.length - keep) });
        this.held = all.slice(all.length - keep);
        return out;
      }
      if (found > 0) out.push({ type: "content", text: all.slice(0, found) });
      this.inCalls = true;
      this.scan(trigger.at ? all.slice(found) : all.slice(found + trigger.text.length), out);
      return out;
    }
    this.scan(text, out);
    return out;
  }

  /** The reply ended: held text is content; a call still open is kept, incomplete. */
  end(): ToolEvent[] {
    const out: ToolEvent[] = [];
    if (this.held !== "") out.push({ type: "content", text: this.held });
    this.held = "";
    if (this.depth > 0 && this.named) {
      const call = this.calls[this.calls.length - 1] as ParsedCall;
      call.complete = false;
    }
    return out;
  }

  /** Length of the longest end of `text` that begins a trigger. */
  private partialTrigger(text: string): number {
    let best = 0;
    for (const t of this.format.triggers)
      for (let n = Math.min(t.text.length - 1, text.length); n > best; n--)
        if (text.endsWith(t.text.slice(0, n))) {
          best = n;
          break;
        }
    return best;
  }

  private scan(text: string, out: ToolEvent[]): void {
    let args = "";
    const flushArgs = () => {
      if (args === "") return;
      const index = this.calls.length - 1;
      (this.calls[index] as ParsedCall).arguments += args;
      out.push({ type: "arguments", index, text: args });
      args = "";
    };
    for (const ch of text) {
      if (this.depth === 0) {
        if (ch !== "{") continue;
        this.obj = "";
        this.named = false;
        this.streaming = false;
        this.argsDone = false;
        this.inString = false;
        this.escaped = false;
      }
      this.obj += ch;
      const depthBefore = this.depth;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (ch === "\\") this.escaped = true;
        else if (ch === '"') this.inString = false;
      } else if (ch === '"') this.inString = true;
      else if (ch === "{" || ch === "[") this.depth++;
      else if (ch === "}" || ch === "]") this.depth--;
      if (this.streaming && !this.argsDone) {
        args += ch;
        if (this.depth === 1 && depthBefore === 2) this.argsDone = true;
      }
      if (!this.named) {
        const m = NAME.exec(this.obj);
        if (m) {
          this.named = true;
          const name = unescapeJson(m[1] as string);
          const id = callId();
          this.calls.push({ id, name, arguments: "", complete: true });
          out.push({ type: "call", index: this.calls.length - 1, id, name });
        }
      } else if (!this.streaming && ch === "{" && this.depth === 2 && ARGS.test(this.obj.slice(0, -1))) {
        // The arguments object opens: it streams from here.
        this.streaming = true;
        args += ch;
      }
      if (this.depth === 0) {
        flushArgs();
        this.closeObject(out);
      }
    }
    flushArgs();
  }

  /** A call object closed: what streaming could not tell comes from parsing it whole. */
  private closeObject(out: ToolEvent[]): void {
    let parsed: Record<string, unknown> | null = null;
    try {
      const v = JSON.parse(this.obj);
      if (v !== null && typeof v === "object" && !Array.isArray(v)) parsed = v as Record<string, unknown>;
    } catch {}
    if (!this.named) {
      if (parsed === null || typeof parsed.name !== "string") return;
      const id = callId();
      this.calls.push({ id, name: parsed.name, arguments: "", complete: true });
      out.push({ type: "call", index: this.calls.length - 1, id, name: parsed.name });
    }
    if (this.streaming || parsed === null) return;
    const value = parsed.arguments ?? parsed.parameters ?? {};
    const text = typeof value === "string" ? value : JSON.stringify(value);
    const index = this.calls.length - 1;
    (this.calls[index] as ParsedCall).arguments = text;
    out.push({ type: "arguments", index, text });
  }
}

function unescapeJson(s: string): string {
  try {
    return JSON.parse(`"${s}"`) as string;
  } catch {
    return s;
  }
}

/** A whole reply's content and calls. */
export function parseToolCalls(format: ToolFormat, text: string): { content: string; calls: ParsedCall[] } {
  const scanner = new CallScanner(format);
  let content = "";
  for (const ev of [...scanner.push(text), ...scanner.end()]) if (ev.type === "content") content += ev.text;
  return { content, calls: scanner.calls };
}
