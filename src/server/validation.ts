// A TypeBox validation error in words, naming the field: "temperature: expected a number from 0
// to 2, got the integer 5". The schemas (src/server/schemas.ts) hold the rules; this only reads
// the error they produce: the innermost failing place, what it accepts and what it got. A field
// hearth does not implement says so (its schema's `unsupported` note), and a field no schema
// lists is named as unrecognized, as OpenAI's API does.
import { ValueErrorType } from "@sinclair/typebox/errors";

interface SchemaNode {
  anyOf?: SchemaNode[];
  /** What a value outside the schema would ask for (schemas.ts's Unsupported). */
  unsupported?: string;
  exclusiveMinimum?: number;
  type?: string;
  const?: unknown;
  minimum?: number;
  maximum?: number;
  multipleOf?: number;
  items?: SchemaNode;
  minItems?: number;
  maxItems?: number;
}

/** What a schema accepts, in words: "an integer >= 1 or null", "a number from 0 to 2". */
export function describeSchema(s: SchemaNode): string {
  if (s.anyOf) return s.anyOf.map(describeSchema).join(" or ");
  if (s.const !== undefined) return JSON.stringify(s.const);
  const bounds = (): string => {
    if (s.minimum !== undefined && s.maximum !== undefined)
      return s.minimum === s.maximum ? ` equal to ${s.minimum}` : ` from ${s.minimum} to ${s.maximum}`;
    if (s.minimum !== undefined) return ` >= ${s.minimum}`;
    if (s.exclusiveMinimum !== undefined)
      return ` > ${s.exclusiveMinimum}${s.maximum !== undefined ? ` and <= ${s.maximum}` : ""}`;
    if (s.maximum !== undefined) return ` <= ${s.maximum}`;
    return "";
  };
  switch (s.type) {
    case "integer":
      return `an integer${bounds()}`;
    case "number":
      return `${s.multipleOf === 1 ? "an integer" : "a number"}${bounds()}`;
    case "string":
      return "a string";
    case "boolean":
      return "a boolean";
    case "null":
      return "null";
    case "object":
      return "an object";
    case "array": {
      const items = s.items?.type !== undefined ? ` of ${plural(describeSchema(s.items))}` : "";
      return `an array${items}${itemCount(s.minItems, s.maxItems)}`;
    }
    default:
      return "a valid value";
  }
}

function itemCount(min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined)
    return min === max ? ` (exactly ${min})` : ` (${min} to ${max})`;
  if (min !== undefined && min > 0) return ` (at least ${min})`;
  if (max !== undefined) return ` (at most ${max})`;
  return "";
}

/** "an integer >= 0" -> "integers >= 0". */
function plural(what: string): string {
  return what.replace(/^an? (\w+)/, (_, noun: string) => `${noun}s`);
}

type JsonKind = "null" | "array" | "number" | "string" | "boolean" | "object" | "other";

function jsonKind(v: unknown): JsonKind {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  const t = typeof v;
  return t === "number" || t === "string" || t === "boolean" || t === "object" ? t : "other";
}

/** Whether a value of this JSON kind can satisfy the schema (ignoring bounds and contents). */
function acceptsKind(s: SchemaNode, kind: JsonKind): boolean {
  if (s.anyOf) return s.anyOf.some((b) => acceptsKind(b, kind));
  if (s.const !== undefined) return jsonKind(s.const) === kind;
  if (s.type === "integer") return kind === "number";
  return s.type === kind;
}

/** The kind of a JSON value as a person would name it ("the string \"x\"", "the integer 5", "an empty array"). */
export function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v))
    return v.length === 0 ? "an empty array" : `an array of ${v.length} item${v.length === 1 ? "" : "s"}`;
  if (typeof v === "number") return Number.isInteger(v) ? `the integer ${v}` : `the number ${v}`;
  if (typeof v === "string")
    return v.length <= 32 ? `the string ${JSON.stringify(v)}` : `a string of ${v.length} characters`;
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

interface ValueErrorLike {
  type?: number;
  message?: string;
  path?: string;
  schema?: SchemaNode;
  value?: unknown;
  errors?: Array<Iterable<ValueErrorLike> & { First?: () => ValueErrorLike | undefined }>;
}

/** The first error a union branch reported (TypeBox keeps one iterator per branch). */
function branchError(ve: ValueErrorLike, k: number): ValueErrorLike | undefined {
  const it = ve.errors?.[k];
  if (it === undefined) return undefined;
  if (typeof it.First === "function") return it.First();
  for (const e of it) return e;
  return undefined;
}

/**
 * Where a value failed and why, in words: "expected an integer >= 1 or null, got a string".
 * A union whose value has the right JSON kind failed inside one branch (an out-of-range entry of
 * an object, a wrong item of an array): that branch's own error is the one to report, so the
 * message never reads "expected an object, got an object".
 */
function describeFailure(ve: ValueErrorLike, depth = 0): { path: string; detail: string } {
  const path = ve.path ?? "";
  if (ve.value === undefined) return { path, detail: "required, missing" };
  if (!ve.schema) return { path, detail: ve.message ?? "invalid value" };
  const kind = jsonKind(ve.value);
  // A key a closed object does not list (the error carries the object's schema, the key's value).
  if (ve.type === ValueErrorType.ObjectAdditionalProperties)
    return { path, detail: "unrecognized request argument (docs/server.md lists the fields)" };
  // A feature hearth lacks: any value but those asking for nothing (the Unsupported wrapper, a
  // union), or a value of the kind the schema takes (a content part's type "image_url", while a
  // type 5 is only of the wrong kind).
  if (ve.schema.unsupported !== undefined && (ve.schema.anyOf !== undefined || acceptsKind(ve.schema, kind)))
    return { path, detail: `${ve.schema.unsupported} is not supported by hearth` };
  const branches = ve.schema.anyOf;
  if (branches && depth < 16) {
    const fitting = branches.map((b, k) => ({ b, k })).filter(({ b }) => acceptsKind(b, kind));
    if (fitting.length === 1) {
      const { b, k } = fitting[0] as { b: SchemaNode; k: number };
      const inner = branchError(ve, k);
      if (inner && (inner.path ?? "").length > path.length) return describeFailure(inner, depth + 1);
      return { path, detail: `expected ${describeSchema(b)}, got ${kindOf(ve.value)}` };
    }
    // Several branches take this kind (a prompt as strings or as token ids): follow one only
    // when it failed on a constraint inside the value, not on the kind of an item.
    for (const { k } of fitting) {
      const inner = branchError(ve, k);
      if (!inner?.schema || (inner.path ?? "").length <= path.length) continue;
      if (acceptsKind(inner.schema, jsonKind(inner.value))) return describeFailure(inner, depth + 1);
    }
  }
  return { path, detail: `expected ${describeSchema(ve.schema)}, got ${kindOf(ve.value)}` };
}

/** A ValidationError in words: the innermost failing place, what it accepts and what it got. */
export function validationMessage(err: unknown): string {
  const ve = (err as { valueError?: ValueErrorLike }).valueError;
  if (!ve) return `${fieldOf(err)}: invalid value`;
  const { path, detail } = describeFailure(ve);
  return `${formatPath(path, (err as { value?: unknown }).value)}: ${detail}`;
}

/**
 * A JSON pointer `/a/b/0/c` as `a.b[0].c`. With the value the pointer points into, a segment is
 * an index only where that value holds an array there: an object's key that happens to be all
 * digits (a `logit_bias` token id) reads `logit_bias["5"]`, as do keys that are not identifiers.
 */
function formatPath(path: string, root?: unknown): string {
  const parts = path
    .split("/")
    .slice(1)
    .map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
  let out = "";
  let at: unknown = root;
  for (const p of parts) {
    const index = root === undefined ? /^\d+$/.test(p) : Array.isArray(at) && /^\d+$/.test(p);
    if (index) out += `[${p}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(p)) out += out === "" ? p : `.${p}`;
    else out += `[${JSON.stringify(p)}]`;
    at = at !== null && typeof at === "object" ? (at as Record<string, unknown>)[p] : undefined;
  }
  return out || "body";
}

/** A ValidationError's first failing field as `a.b[0].c`. */
export function fieldOf(err: unknown): string {
  const e = err as { value?: unknown; valueError?: { path?: string }; all?: Array<{ path?: string }> };
  return formatPath(e.valueError?.path ?? e.all?.[0]?.path ?? "", e.value);
}
