// The lazy tool-call constraint: free text until a call's trigger appears in the reply (or from
// the first token when a call is required), then the call's exact layout, with a name from the
// request's tools and arguments matching that tool's parameter schema (json-schema.ts).
// A ReplyConstraint (src/sampling/json.ts): Generation samples through it like JSON mode.
import { compileSchema, SchemaRecognizer } from "../sampling/json-schema.ts";
import type { ToolFormat } from "./format.ts";

/** What a generation with tools is asked (the engine-request part; plain data). */
export interface ToolCallSpec {
  format: ToolFormat;
  /** The tools a call may name, with their parameter schemas (undefined: any object). */
  tools: ReadonlyArray<{ name: string; parameters?: unknown }>;
  /** A call from the first token (tool_choice "required" or a named function). */
  forced: boolean;
  /** More than one call in a reply. */
  parallel: boolean;
}

/**
 * A parameter schema as the constraint reads it: an object that does not say
 * `additionalProperties` takes only its listed properties (as llama.cpp's grammar does), so a
 * small model cannot wander off into keys no tool reads.
 */
export function closedSchema(schema: unknown): unknown {
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) return schema;
  const s = { ...(schema as Record<string, unknown>) };
  const types = Array.isArray(s.type) ? s.type : [s.type];
  if (types.includes("object") && s.additionalProperties === undefined) s.additionalProperties = false;
  if (typeof s.properties === "object" && s.properties !== null)
    s.properties = Object.fromEntries(
      Object.entries(s.properties as Record<string, unknown>).map(([k, v]) => [k, closedSchema(v)]),
    );
  if (s.items !== undefined) s.items = closedSchema(s.items);
  return s;
}

/** The schema a tool's arguments are constrained to: its parameters closed; none: an empty object. */
export function toolArgsSchema(parameters: unknown): unknown {
  if (parameters === undefined || parameters === null) return { type: "object", additionalProperties: false };
  if (typeof parameters === "object" && !Array.isArray(parameters) && Object.keys(parameters).length === 0)
    return { type: "object", additionalProperties: false };
  return closedSchema(parameters);
}

type ArgsState = ReturnType<SchemaRecognizer["start"]>;

enum Part {
  Lead,
  Open,
  Head,
  Name,
  Mid,
  Args,
  End,
  After,
  Sep,
  Close,
  Done,
}

/** Where a call's text stands (immutable: a step returns a new one). */
interface Call {
  part: Part;
  off: number;
  /** The name's JSON text so far (latin1 of its UTF-8 bytes). */
  name: string;
  args: ArgsState | null;
  recognizer: SchemaRecognizer | null;
}

const HEAD = '{"name": "';
/** Most bytes of free text kept to look for a trigger in. */
const TAIL = 64;

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

function jsonText(s: string): string {
  return latin1(new TextEncoder().encode(JSON.stringify(s).slice(1, -1)));
}

/** The grammar of one format and tool list: steps a Call byte by byte. */
export class CallGrammar {
  private readonly names: string[];
  private readonly recognizers = new Map<string, SchemaRecognizer>();
  private readonly mid: string;

  constructor(private readonly spec: ToolCallSpec) {
    this.names = spec.tools.map((t) => jsonText(t.name));
    for (const [i, t] of spec.tools.entries()) {
      this.recognizers.set(
        this.names[i] as string,
        new SchemaRecognizer(compileSchema(toolArgsSchema(t.parameters))),
      );
    }
    this.mid = `, "${spec.format.argsKey}": `;
  }

  start(part: Part.Lead | Part.Open): Call {
    return this.skip({ part, off: 0, name: "", args: null, recognizer: null });
  }

  private literal(part: Part): string {
    const f = this.spec.format;
    switch (part) {
      case Part.Lead:
        return f.lead;
      case Part.Open:
        return f.open;
      case Part.Head:
        return HEAD;
      case Part.Mid:
        return this.mid;
      case Part.End:
        return "}";
      case Part.Sep:
        return f.sep ?? "";
      case Part.Close:
        return f.close;
      default:
        return "";
    }
  }

  /** Passes over empty literals; After with no separator allowed goes straight to Close. */
  private skip(c: Call): Call {
    let s = c;
    for (;;) {
      if (s.part === Part.After && !(this.spec.parallel && this.spec.format.sep !== null))
        s = { ...s, part: Part.Close, off: 0 };
      else if (
        s.part !== Part.Name &&
        s.part !== Part.Args &&
        s.part !== Part.After &&
        s.part !== Part.Done &&
        this.literal(s.part) === ""
      )
        s = { ...s, part: s.part + 1, off: 0 };
      else return s;
    }
  }

  done(c: Call): boolean {
    return c.part === Part.Done;
  }

  step(c: Call, b: number): Call | null {
    switch (c.part) {
      case Part.Name: {
        if (b === 0x22) {
          const rec = this.names.includes(c.name) ? this.recognizers.get(c.name) : undefined;
          if (rec === undefined) return null;
          return this.skip({ ...c, part: Part.Mid, off: 0, recognizer: rec });
        }
        const name = c.name + String.fromCharCode(b);
        return this.names.some((n) => n.startsWith(name)) ? { ...c, name } : null;
      }
      case Part.Args: {
        const rec = c.recognizer as SchemaRecognizer;
        const args = rec.step(c.args as ArgsState, b);
        if (args === null) return null;
        if (rec.complete(args)) return this.skip({ ...c, part: Part.End, off: 0, args: null });
        return { ...c, args };
      }
      case Part.After: {
        const sep = this.spec.format.sep as string;
        if (b === sep.charCodeAt(0)) return this.advance({ ...c, part: Part.Sep, off: 0 }, b);
        return this.advance({ ...c, part: Part.Close, off: 0 }, b);
      }
      case Part.Done:
        return null;
      default:
        return this.advance(c, b);
    }
  }

  /** One byte of a literal part. */
  private advance(c: Call, b: number): Call | null {
    const lit = this.literal(c.part);
    if (b !== lit.charCodeAt(c.off)) return null;
    if (c.off + 1 < lit.length) return { ...c, off: c.off + 1 };
    switch (c.part) {
      case Part.Mid: {
        const rec = c.recognizer as SchemaRecognizer;
        return { ...c, part: Part.Args, off: 0, args: rec.start() };
      }
      case Part.End:
        return this.skip({ ...c, part: Part.After, off: 0 });
      case Part.Sep:
        return this.skip({ ...c, part: Part.Head, off: 0, name: "", recognizer: null });
      default:
        return this.skip({ ...c, part: c.part + 1, off: 0 });
    }
  }
}

/**
 * The constraint of a reply that may call tools. While watching (no call open) every token is
 * allowed and the text is searched for a trigger; inside a call only tokens that continue its
 * layout are. `bytesOf` gives a token's bytes, with the text of a control token that is a
 * trigger (Mistral's [TOOL_CALLS], Llama's <|python_tag|>).
 */
export class ToolCallConstraint {
  private readonly grammar: CallGrammar;
  private call: Call | null;
  private tail = "";
  private finished = false;

  constructor(
    private readonly spec: ToolCallSpec,
    private readonly bytesOf: (id: number) => Uint8Array,
  ) {
    this.grammar = new CallGrammar(spec);
    this.call = spec.forced ? this.grammar.start(Part.Lead) : null;
  }

  /** The calls are closed and no more may follow: the reply ends here. */
  get complete(): boolean {
    return this.finished;
  }

  /** A call is open (its layout constrains the next token). */
  get inCall(): boolean {
    return this.call !== null;
  }

  private feed(c: Call, bytes: Uint8Array | string): Call | null {
    let s: Call | null = c;
    for (let i = 0; i < bytes.length && s !== null; i++)
      s = this.grammar.step(s, typeof bytes === "string" ? bytes.charCodeAt(i) : (bytes[i] as number));
    return s;
  }

  allows(id: number): boolean {
    if (this.finished) return false;
    if (this.call === null) return true;
    const bytes = this.bytesOf(id);
    return bytes.length > 0 && this.feed(this.call, bytes) !== null;
  }

  accept(id: number): void {
    const bytes = this.bytesOf(id);
    if (this.call !== null) {
      const next = this.feed(this.call, bytes);
      if (next === null) throw new Error(`token ${id} does not continue the tool call`);
      this.settle(next);
      return;
    }
    this.tail = (this.tail + latin1(bytes)).slice(-TAIL);
    for (const t of this.spec.format.triggers) {
      const k = this.tail.indexOf(t.text);
      if (k < 0) continue;
      const rest = t.at ? this.tail.slice(k) : this.tail.slice(k + t.text.length);
      const next = this.feed(this.grammar.start(Part.Open), rest);
      this.tail = this.tail.slice(k + 1);
      if (next !== null) {
        this.tail = "";
        this.settle(next);
        return;
      }
    }
  }

  private settle(c: Call): void {
    if (!this.grammar.done(c)) {
      this.call = c;
      return;
    }
    this.call = null;
    if (!(this.spec.format.repeat && this.spec.parallel)) this.finished = true;
  }

  maskRow(row: Float32Array): number {
    let left = 0;
    for (let id = 0; id < row.length; id++) {
      if (row[id] === Number.NEGATIVE_INFINITY) continue;
      if (this.allows(id)) left++;
      else row[id] = Number.NEGATIVE_INFINITY;
    }
    return left;
  }
}
