// Structured outputs (OpenAI's `response_format: {type: "json_schema"}`): a byte-level recognizer
// of JSON text prefixes that can still become a value matching a JSON Schema, for the subset of
// JSON Schema that strict structured outputs use: object (properties, required,
// additionalProperties), array (items, minItems, maxItems), string (enum, const), number,
// integer, boolean, null, a list of types, and enum/const of strings (null allowed beside them).
// Anything else in a schema is refused when it is compiled (SchemaError), never ignored.
//
// States are immutable (a step returns a new one), so testing a token against the reply so far
// needs no copy: feed its bytes from the current state and keep or drop the result.

import {
  isDigit,
  isEscape,
  isHex,
  isWhitespace,
  MAX_JSON_DEPTH,
  MAX_JSON_NUMBER_BYTES,
  MAX_JSON_WHITESPACE,
  Mode,
  maskRefused,
  type Num,
  numberMayEnd,
  numberStart,
  numberStep,
} from "./json.ts";

export class SchemaError extends Error {
  override name = "SchemaError";
}

type JsonType = "object" | "array" | "string" | "number" | "integer" | "boolean" | "null";
const TYPES: readonly JsonType[] = ["object", "array", "string", "number", "integer", "boolean", "null"];

/** A compiled schema node. */
interface Node {
  types: ReadonlySet<JsonType>;
  /** object: its properties (name -> node), in order. */
  props: ReadonlyMap<string, Node>;
  required: readonly string[];
  /** object: the schema of other keys, or null when they are not allowed. */
  additional: Node | null;
  /** array: the items' schema. */
  items: Node;
  minItems: number;
  maxItems: number;
  /** string: the allowed values as the bytes between the quotes (latin1 text of UTF-8), or null for any. */
  strings: readonly string[] | null;
}

const ANY: Node = {
  types: new Set(TYPES),
  props: new Map(),
  required: [],
  additional: null,
  items: null as unknown as Node,
  minItems: 0,
  maxItems: Number.POSITIVE_INFINITY,
  strings: null,
};
(ANY as { additional: Node | null }).additional = ANY;
(ANY as { items: Node }).items = ANY;

/** Keywords that only describe (no effect on which values match). */
const DESCRIPTIVE = new Set(["title", "description", "$schema", "$id", "examples", "default", "$comment"]);
const SUPPORTED = new Set([
  ...DESCRIPTIVE,
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "minItems",
  "maxItems",
  "enum",
  "const",
]);

/** A string's JSON text between its quotes, as latin1 text of its UTF-8 bytes. */
function encodedString(s: string): string {
  const bytes = new TextEncoder().encode(JSON.stringify(s).slice(1, -1));
  let out = "";
  for (const b of bytes) out += String.fromCharCode(b);
  return out;
}

/** Compiles a JSON Schema (the supported subset); `where` names the place in errors. */
export function compileSchema(schema: unknown, where = "schema", depth = 0): Node {
  if (depth > MAX_JSON_DEPTH) throw new SchemaError(`${where}: nested deeper than ${MAX_JSON_DEPTH}`);
  if (schema === true || (typeof schema === "object" && schema !== null && Object.keys(schema).length === 0))
    return ANY;
  if (typeof schema !== "object" || schema === null || Array.isArray(schema))
    throw new SchemaError(`${where} must be a schema object`);
  const s = schema as Record<string, unknown>;
  for (const key of Object.keys(s))
    if (!SUPPORTED.has(key))
      throw new SchemaError(
        `${where}.${key} is not supported (hearth supports ${[...SUPPORTED].filter((k) => !DESCRIPTIVE.has(k)).join(", ")})`,
      );
  let types: Set<JsonType>;
  if (s.type === undefined) types = new Set(TYPES);
  else {
    const list = Array.isArray(s.type) ? s.type : [s.type];
    for (const t of list)
      if (!TYPES.includes(t as JsonType))
        throw new SchemaError(`${where}.type ${JSON.stringify(t)} is not a JSON type`);
    types = new Set(list as JsonType[]);
  }
  let strings: string[] | null = null;
  if (s.enum !== undefined || s.const !== undefined) {
    const values = s.const !== undefined ? [s.const] : s.enum;
    if (!Array.isArray(values) || values.length === 0)
      throw new SchemaError(`${where}.enum must be a non-empty list`);
    if (values.some((v) => typeof v !== "string" && v !== null))
      throw new SchemaError(`${where}: enum and const values must be strings or null`);
    const allowed = new Set<JsonType>();
    if (values.some((v) => typeof v === "string") && types.has("string")) allowed.add("string");
    if (values.includes(null) && types.has("null")) allowed.add("null");
    if (allowed.size === 0) throw new SchemaError(`${where}: no enum value has an allowed type`);
    types = allowed;
    strings = values.filter((v): v is string => typeof v === "string").map(encodedString);
  }
  const props = new Map<string, Node>();
  if (s.properties !== undefined) {
    if (typeof s.properties !== "object" || s.properties === null || Array.isArray(s.properties))
      throw new SchemaError(`${where}.properties must be an object`);
    for (const [k, v] of Object.entries(s.properties))
      props.set(k, compileSchema(v, `${where}.properties.${k}`, depth + 1));
  }
  const required = s.required ?? [];
  if (!Array.isArray(required) || required.some((r) => typeof r !== "string"))
    throw new SchemaError(`${where}.required must be a list of property names`);
  for (const r of required as string[])
    if (!props.has(r) && s.additionalProperties === false)
      throw new SchemaError(`${where}.required names "${r}", which is not among its properties`);
  const additional =
    s.additionalProperties === false
      ? null
      : s.additionalProperties === undefined || s.additionalProperties === true
        ? ANY
        : compileSchema(s.additionalProperties, `${where}.additionalProperties`, depth + 1);
  const count = (key: string, fallback: number): number => {
    const v = s[key];
    if (v === undefined) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0)
      throw new SchemaError(`${where}.${key} must be an integer >= 0`);
    return v;
  };
  const minItems = count("minItems", 0);
  const maxItems = count("maxItems", Number.POSITIVE_INFINITY);
  if (minItems > maxItems) throw new SchemaError(`${where}: minItems is above maxItems`);
  const items = s.items === undefined ? ANY : compileSchema(s.items, `${where}.items`, depth + 1);
  return { types, props, required: required as string[], additional, items, minItems, maxItems, strings };
}

/** An open object or array, innermost first. */
interface Frame {
  readonly kind: "object" | "array";
  readonly node: Node;
  readonly parent: Frame | null;
  readonly depth: number;
  /** object: keys already given; array: items already given. */
  readonly seen: readonly string[];
  readonly count: number;
  /** object: the key whose value is being read. */
  readonly key: string | null;
}

interface State {
  readonly mode: Mode;
  readonly frame: Frame | null;
  /** Value modes: the schema the value must match. */
  readonly expect: Node;
  readonly whitespace: number;
  /** String: the bytes so far (latin1 text), whether it is a key, and the values it may still become. */
  readonly text: string;
  readonly isKey: boolean;
  readonly candidates: readonly string[] | null;
  readonly hexLeft: number;
  /** Number: its lexical state and whether it must stay an integer. */
  readonly num: Num;
  readonly integer: boolean;
  /** Literal: the word and how much of it is typed (Number: its length in bytes). */
  readonly word: string;
  readonly at: number;
}

const LITERAL_WORDS: Record<string, [string, JsonType]> = {
  t: ["true", "boolean"],
  f: ["false", "boolean"],
  n: ["null", "null"],
};

/** The JSON text of a key typed so far (latin1 of UTF-8) as the key. */
function decodeKey(text: string): string | null {
  const bytes = Uint8Array.from(text, (c) => c.charCodeAt(0));
  try {
    return JSON.parse(`"${new TextDecoder("utf-8", { fatal: true }).decode(bytes)}"`) as string;
  } catch {
    return null;
  }
}

/** The recognizer of one schema: `start()` then `step(state, byte)` (null: refused). */
export class SchemaRecognizer {
  constructor(private readonly root: Node) {
    if (!root.types.has("object") || root.types.size !== 1)
      throw new SchemaError('schema: the top level must be {"type": "object", ...}');
  }

  start(): State {
    return {
      mode: Mode.Value,
      frame: null,
      expect: this.root,
      whitespace: 0,
      text: "",
      isKey: false,
      candidates: null,
      hexLeft: 0,
      num: 0,
      integer: false,
      word: "",
      at: 0,
    };
  }

  complete(s: State): boolean {
    return s.mode === Mode.Done;
  }

  step(s: State, b: number): State | null {
    switch (s.mode) {
      case Mode.String:
        return this.stringByte(s, b);
      case Mode.StringEscape:
        if (b === 0x75) return this.typed({ ...s, mode: Mode.StringHex, hexLeft: 4 }, b);
        if (!isEscape(b)) return null;
        return this.typed({ ...s, mode: Mode.String }, b);
      case Mode.StringHex:
        if (!isHex(b)) return null;
        return this.typed(
          { ...s, mode: s.hexLeft === 1 ? Mode.String : Mode.StringHex, hexLeft: s.hexLeft - 1 },
          b,
        );
      case Mode.Number: {
        const next = this.numberByte(s, b);
        // Past the length limit a number may only go on to where it can end ("1." needs a digit).
        if (next !== null)
          return s.at >= MAX_JSON_NUMBER_BYTES && numberMayEnd(s.num) ? null : { ...next, at: s.at + 1 };
        if (!numberMayEnd(s.num)) return null;
        const done = this.valueDone(s);
        return done === null ? null : this.step(done, b);
      }
      case Mode.Literal: {
        if (b !== s.word.charCodeAt(s.at)) return null;
        if (s.at + 1 === s.word.length) return this.valueDone(s);
        return { ...s, at: s.at + 1 };
      }
      default:
        break;
    }
    if (isWhitespace(b))
      return s.whitespace >= MAX_JSON_WHITESPACE ? null : { ...s, whitespace: s.whitespace + 1 };
    const t: State = s.whitespace === 0 ? s : { ...s, whitespace: 0 };
    const frame = t.frame;
    switch (t.mode) {
      case Mode.Done:
        return null;
      case Mode.Value:
        return this.valueStart(t, t.expect, b);
      case Mode.ValueOrEnd:
        if (b === 0x5d) return frame !== null && frame.count >= frame.node.minItems ? this.close(t) : null;
        if (frame !== null && frame.node.maxItems === 0) return null;
        return this.valueStart(t, t.expect, b);
      case Mode.KeyOrEnd:
      case Mode.Key:
        if (b === 0x22) {
          const node = (frame as Frame).node;
          if (!this.keysLeft(frame as Frame)) return null;
          const seen = (frame as Frame).seen;
          const keys = [...node.props.keys()].filter((k) => !seen.includes(k)).map(encodedString);
          return {
            ...t,
            mode: Mode.String,
            isKey: true,
            text: "",
            candidates: node.additional === null ? keys : null,
          };
        }
        if (t.mode === Mode.KeyOrEnd && b === 0x7d) return this.closeObject(t);
        return null;
      case Mode.Colon: {
        if (b !== 0x3a) return null;
        const f = frame as Frame;
        const key = f.key as string;
        return { ...t, mode: Mode.Value, expect: f.node.props.get(key) ?? (f.node.additional as Node) };
      }
      case Mode.AfterValue: {
        const f = frame as Frame;
        if (f.kind === "object") {
          // A comma only where another key can follow.
          if (b === 0x2c) return this.keysLeft(f) ? { ...t, mode: Mode.Key } : null;
          return b === 0x7d ? this.closeObject(t) : null;
        }
        if (b === 0x2c)
          return f.count < f.node.maxItems ? { ...t, mode: Mode.Value, expect: f.node.items } : null;
        return b === 0x5d && f.count >= f.node.minItems ? this.close(t) : null;
      }
      default:
        return null;
    }
  }

  /** Whether an object may take another key: one of its properties not given yet, or any other. */
  private keysLeft(f: Frame): boolean {
    return f.node.additional !== null || [...f.node.props.keys()].some((k) => !f.seen.includes(k));
  }

  private typed(s: State, b: number): State {
    return { ...s, text: s.text + String.fromCharCode(b) };
  }

  private stringByte(s: State, b: number): State | null {
    if (b === 0x22) {
      if (s.candidates !== null && !s.candidates.includes(s.text)) return null;
      if (!s.isKey) return this.valueDone(s);
      const key = decodeKey(s.text);
      const f = s.frame as Frame;
      if (key === null || f.seen.includes(key)) return null;
      if (!f.node.props.has(key) && f.node.additional === null) return null;
      return { ...s, mode: Mode.Colon, frame: { ...f, key }, candidates: null, text: "" };
    }
    if (b < 0x20) return null;
    const next = this.typed(b === 0x5c ? { ...s, mode: Mode.StringEscape } : s, b);
    if (next.candidates !== null) {
      const text = next.text;
      const left = next.candidates.filter((c) => c.startsWith(text));
      if (left.length === 0) return null;
      return { ...next, candidates: left };
    }
    return next;
  }

  private valueStart(s: State, node: Node, b: number): State | null {
    const types = node.types;
    if (b === 0x7b) return types.has("object") ? this.open(s, "object", node) : null;
    if (b === 0x5b) return types.has("array") ? this.open(s, "array", node) : null;
    if (b === 0x22) {
      if (!types.has("string")) return null;
      return { ...s, mode: Mode.String, isKey: false, text: "", candidates: node.strings, expect: node };
    }
    if (b === 0x2d || isDigit(b)) {
      if (!types.has("number") && !types.has("integer")) return null;
      return {
        ...s,
        mode: Mode.Number,
        num: numberStart(b),
        integer: !types.has("number"),
        at: 1, // bytes of the number so far
        expect: node,
      };
    }
    const literal = LITERAL_WORDS[String.fromCharCode(b)];
    if (literal === undefined || !types.has(literal[1])) return null;
    return { ...s, mode: Mode.Literal, word: literal[0], at: 1, expect: node };
  }

  private numberByte(s: State, b: number): State | null {
    const num = numberStep(s.num, b, s.integer);
    return num === null ? null : { ...s, num };
  }

  private open(s: State, kind: "object" | "array", node: Node): State | null {
    const depth = (s.frame?.depth ?? 0) + 1;
    if (depth > MAX_JSON_DEPTH) return null;
    const frame: Frame = { kind, node, parent: s.frame, depth, seen: [], count: 0, key: null };
    if (kind === "object") return { ...s, mode: Mode.KeyOrEnd, frame };
    return { ...s, mode: Mode.ValueOrEnd, frame, expect: node.items };
  }

  private closeObject(s: State): State | null {
    const f = s.frame as Frame;
    if (f.node.required.some((r) => !f.seen.includes(r))) return null;
    return this.close(s);
  }

  /** Closes the innermost container: it is the value its parent was reading. */
  private close(s: State): State | null {
    return this.valueDone({ ...s, frame: (s.frame as Frame).parent });
  }

  /** A value ended: the parent takes it (a key seen, an item counted), or the reply is done. */
  private valueDone(s: State): State | null {
    const f = s.frame;
    if (f === null) return { ...s, mode: Mode.Done };
    if (f.kind === "object")
      return { ...s, mode: Mode.AfterValue, frame: { ...f, seen: [...f.seen, f.key as string], key: null } };
    return { ...s, mode: Mode.AfterValue, frame: { ...f, count: f.count + 1 } };
  }
}

/**
 * A reply constrained to one JSON value matching a schema (the JsonConstraint of structured
 * outputs): which tokens may come next, and whether the value is complete.
 */
export class SchemaConstraint {
  private readonly recognizer: SchemaRecognizer;
  private state: State;

  constructor(
    schema: unknown,
    private readonly tokenBytes: (id: number) => Uint8Array,
  ) {
    this.recognizer = new SchemaRecognizer(compileSchema(schema));
    this.state = this.recognizer.start();
  }

  get complete(): boolean {
    return this.recognizer.complete(this.state);
  }

  private after(id: number): State | null {
    const bytes = this.tokenBytes(id);
    if (bytes.length === 0) return null;
    let s: State | null = this.state;
    for (let i = 0; i < bytes.length && s !== null; i++) s = this.recognizer.step(s, bytes[i] as number);
    return s;
  }

  allows(id: number): boolean {
    return this.after(id) !== null;
  }

  accept(id: number): void {
    const next = this.after(id);
    if (next === null) throw new Error(`token ${id} does not continue the JSON reply`);
    this.state = next;
  }

  maskRow(row: Float32Array): number {
    return maskRefused(row, (id) => this.allows(id));
  }
}
