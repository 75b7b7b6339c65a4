// JSON mode (OpenAI's `response_format: {type: "json_object"}`): a byte-level recognizer of JSON
// text prefixes that tells, token by token, whether the reply can still become one JSON object,
// and when that object is complete. The sampler draws as usual; a token this refuses is banned
// and the row is drawn again (see constrainedSample), so the reply follows the model's own
// distribution restricted to valid JSON.

/** Deepest nesting of objects and arrays a reply may open. */
export const MAX_JSON_DEPTH = 64;
/** Most whitespace bytes in a row outside strings (a small model can loop on newlines). */
export const MAX_JSON_WHITESPACE = 32;
/** Longest number in bytes, give or take the digit a "1." or "1e" still needs (a small model can also loop on digits: "1000000..."). */
export const MAX_JSON_NUMBER_BYTES = 24;

/** Where a recognizer stands (shared with json-schema.ts, which starts at Value). */
export enum Mode {
  /** Before the top-level object: whitespace or `{`. */
  Start,
  /** A value. */
  Value,
  /** Right after `[`: a value or `]`. */
  ValueOrEnd,
  /** Right after `{`: a key or `}`. */
  KeyOrEnd,
  /** After `,` in an object: a key. */
  Key,
  /** After a key: `:`. */
  Colon,
  /** After a value inside a container: `,` or the container's end. */
  AfterValue,
  String,
  StringEscape,
  /** Inside `\uXXXX`: `hexLeft` digits to go. */
  StringHex,
  Number,
  /** Inside `true` / `false` / `null`. */
  Literal,
  /** The top-level object is closed. */
  Done,
}

/** Lexical states of a JSON number (shared with json-schema.ts). */
export enum Num {
  Minus,
  Zero,
  Int,
  Dot,
  Frac,
  Exp,
  ExpSign,
  ExpDigits,
}

/** The number's state after `b`, or null when `b` does not continue it (`integer`: no fraction or exponent). */
export function numberStep(num: Num, b: number, integer = false): Num | null {
  const digit = isDigit(b);
  switch (num) {
    case Num.Minus:
      return digit ? (b === 0x30 ? Num.Zero : Num.Int) : null;
    case Num.Zero:
    case Num.Int:
      if (digit && num === Num.Int) return num;
      if (integer) return null;
      if (b === 0x2e) return Num.Dot;
      return b === 0x65 || b === 0x45 ? Num.Exp : null;
    case Num.Dot:
      return digit ? Num.Frac : null;
    case Num.Frac:
      if (digit) return num;
      return b === 0x65 || b === 0x45 ? Num.Exp : null;
    case Num.Exp:
      if (b === 0x2b || b === 0x2d) return Num.ExpSign;
      return digit ? Num.ExpDigits : null;
    case Num.ExpSign:
      return digit ? Num.ExpDigits : null;
    case Num.ExpDigits:
      return digit ? num : null;
  }
}

/** The number's state after its first byte (`-` or a digit). */
export function numberStart(b: number): Num {
  return b === 0x2d ? Num.Minus : b === 0x30 ? Num.Zero : Num.Int;
}

/** Whether a number may end in this state. */
export function numberMayEnd(num: Num): boolean {
  return num === Num.Zero || num === Num.Int || num === Num.Frac || num === Num.ExpDigits;
}

/** The byte after a backslash in a string: one of `" \ / b f n r t` (`u` takes four hex digits). */
export function isEscape(b: number): boolean {
  return ESCAPES.includes(b);
}
const ESCAPES = [0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74];

const OBJECT = 1;
const ARRAY = 2;
const LITERALS = ["true", "false", "null"].map((w) => new TextEncoder().encode(w));

export function isWhitespace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}
export function isDigit(b: number): boolean {
  return b >= 0x30 && b <= 0x39;
}
export function isHex(b: number): boolean {
  return isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
}

/** Sets the logit of every token `allows` refuses to -Infinity in `row`; returns how many remain. */
export function maskRefused(row: Float32Array, allows: (id: number) => boolean): number {
  let left = 0;
  for (let id = 0; id < row.length; id++) {
    if (row[id] === Number.NEGATIVE_INFINITY) continue;
    if (allows(id)) left++;
    else row[id] = Number.NEGATIVE_INFINITY;
  }
  return left;
}

/** Where a JSON text prefix stands; `feed` advances it one byte, refusing a byte no JSON object continues with. */
export class JsonPrefix {
  private mode = Mode.Start;
  private readonly stack = new Uint8Array(MAX_JSON_DEPTH);
  private depth = 0;
  private keyString = false;
  private num = Num.Minus;
  private literal = 0;
  private literalAt = 0;
  private hexLeft = 0;
  private whitespace = 0;
  private numberBytes = 0;

  /** The top-level object is complete (only whitespace may follow). */
  get complete(): boolean {
    return this.mode === Mode.Done;
  }

  copyFrom(o: JsonPrefix): void {
    this.mode = o.mode;
    this.stack.set(o.stack.subarray(0, o.depth));
    this.depth = o.depth;
    this.keyString = o.keyString;
    this.num = o.num;
    this.literal = o.literal;
    this.literalAt = o.literalAt;
    this.hexLeft = o.hexLeft;
    this.whitespace = o.whitespace;
    this.numberBytes = o.numberBytes;
  }

  /** Feeds `bytes`; false (and a state to discard) when they cannot continue a JSON object. */
  feedAll(bytes: Uint8Array): boolean {
    for (let i = 0; i < bytes.length; i++) if (!this.feed(bytes[i] as number)) return false;
    return true;
  }

  feed(b: number): boolean {
    switch (this.mode) {
      case Mode.String:
        if (b === 0x22) {
          if (this.keyString) this.mode = Mode.Colon;
          else this.valueDone();
          return true;
        }
        if (b === 0x5c) this.mode = Mode.StringEscape;
        return b >= 0x20; // raw control characters are not allowed in strings
      case Mode.StringEscape:
        if (b === 0x75) {
          this.mode = Mode.StringHex;
          this.hexLeft = 4;
          return true;
        }
        this.mode = Mode.String;
        return isEscape(b);
      case Mode.StringHex:
        if (!isHex(b)) return false;
        if (--this.hexLeft === 0) this.mode = Mode.String;
        return true;
      case Mode.Number:
        // Past the length limit a number may only go on to where it can end ("1." needs a digit).
        if (this.numberBytes >= MAX_JSON_NUMBER_BYTES && numberMayEnd(this.num)) {
          if (numberStep(this.num, b) !== null) return false;
        } else if (this.numberByte(b)) {
          this.numberBytes++;
          return true;
        }
        // The number ends here (if it may) and the byte is read after it.
        if (!numberMayEnd(this.num)) return false;
        this.valueDone();
        return this.feed(b);
      case Mode.Literal: {
        const word = LITERALS[this.literal] as Uint8Array;
        if (b !== word[this.literalAt]) return false;
        if (++this.literalAt === word.length) this.valueDone();
        return true;
      }
      default:
        break;
    }
    if (isWhitespace(b)) return ++this.whitespace <= MAX_JSON_WHITESPACE;
    this.whitespace = 0;
    switch (this.mode) {
      case Mode.Start:
        return b === 0x7b && this.open(OBJECT);
      case Mode.Done:
        return false;
      case Mode.Colon:
        if (b !== 0x3a) return false;
        this.mode = Mode.Value;
        return true;
      case Mode.Key:
      case Mode.KeyOrEnd:
        if (b === 0x22) {
          this.mode = Mode.String;
          this.keyString = true;
          return true;
        }
        return this.mode === Mode.KeyOrEnd && b === 0x7d && this.close(OBJECT);
      case Mode.AfterValue: {
        const top = this.stack[this.depth - 1];
        if (b === 0x2c) {
          this.mode = top === OBJECT ? Mode.Key : Mode.Value;
          return true;
        }
        return (b === 0x7d && this.close(OBJECT)) || (b === 0x5d && this.close(ARRAY));
      }
      case Mode.ValueOrEnd:
        if (b === 0x5d) return this.close(ARRAY);
        return this.valueStart(b);
      case Mode.Value:
        return this.valueStart(b);
      default:
        return false;
    }
  }

  private valueStart(b: number): boolean {
    if (b === 0x7b) return this.open(OBJECT);
    if (b === 0x5b) return this.open(ARRAY);
    if (b === 0x22) {
      this.mode = Mode.String;
      this.keyString = false;
      return true;
    }
    if (b === 0x2d || isDigit(b)) {
      this.mode = Mode.Number;
      this.numberBytes = 1;
      this.num = numberStart(b);
      return true;
    }
    const literal = LITERALS.findIndex((w) => w[0] === b);
    if (literal < 0) return false;
    this.mode = Mode.Literal;
    this.literal = literal;
    this.literalAt = 1;
    return true;
  }

  /** Advances the number by `b` if `b` continues it. */
  private numberByte(b: number): boolean {
    const next = numberStep(this.num, b);
    if (next === null) return false;
    this.num = next;
    return true;
  }

  private open(kind: number): boolean {
    if (this.depth === MAX_JSON_DEPTH) return false;
    this.stack[this.depth++] = kind;
    this.mode = kind === OBJECT ? Mode.KeyOrEnd : Mode.ValueOrEnd;
    return true;
  }

  private close(kind: number): boolean {
    if (this.depth === 0 || this.stack[this.depth - 1] !== kind) return false;
    this.depth--;
    this.valueDone();
    return true;
  }

  private valueDone(): void {
    this.mode = this.depth === 0 ? Mode.Done : Mode.AfterValue;
  }
}

/**
 * A reply constrained to one JSON object: which tokens may come next, and whether it is complete.
 * `tokenBytes` gives a token's bytes (empty for control tokens, which are never allowed).
 */
export class JsonConstraint {
  private readonly state = new JsonPrefix();
  private readonly scratch = new JsonPrefix();

  constructor(private readonly tokenBytes: (id: number) => Uint8Array) {}

  get complete(): boolean {
    return this.state.complete;
  }

  allows(id: number): boolean {
    const bytes = this.tokenBytes(id);
    if (bytes.length === 0) return false;
    this.scratch.copyFrom(this.state);
    return this.scratch.feedAll(bytes);
  }

  /** Advances past a token `allows` accepted. */
  accept(id: number): void {
    if (!this.state.feedAll(this.tokenBytes(id)))
      throw new Error(`token ${id} does not continue the JSON reply`);
  }

  /** Sets every refused token's logit to -Infinity in `row`; returns how many remain. */
  maskRow(row: Float32Array): number {
    return maskRefused(row, (id) => this.allows(id));
  }
}

/** Draws refused before the whole row is masked: each refusal bans one token and draws again. */
const JSON_REDRAWS = 8;

/** What constrainedSample needs of a constraint (JsonConstraint, SchemaConstraint). */
export interface TokenConstraint {
  allows(id: number): boolean;
  maskRow(row: Float32Array): number;
}

/** A reply's constraint: which tokens may come next, advancing past them, and when it is done. */
export interface ReplyConstraint extends TokenConstraint {
  accept(id: number): void;
  readonly complete: boolean;
}

/**
 * The copy of a row constrainedSample bans tokens in, reused by every call on the thread (a fresh
 * copy per refused draw was a vocabulary-sized array of garbage per JSON token).
 */
let maskedRow = new Float32Array(0);

/**
 * One token for a JSON reply: `draw(row)` (the request's sampler) on the model's row, and while
 * the constraint refuses the token, on a copy with it banned; after JSON_REDRAWS refusals, on a
 * copy with every refused token masked. -1 when no token can continue the reply. `draw` must not
 * keep the row it is given (the copy is reused).
 */
export function constrainedSample(
  row: Float32Array,
  json: TokenConstraint,
  draw: (row: Float32Array) => number,
): number {
  let id = draw(row);
  if (json.allows(id)) return id;
  if (maskedRow.length !== row.length) maskedRow = new Float32Array(row.length);
  const masked = maskedRow;
  masked.set(row);
  for (let k = 0; k < JSON_REDRAWS; k++) {
    masked[id] = Number.NEGATIVE_INFINITY;
    id = draw(masked);
    if (json.allows(id)) return id;
  }
  if (json.maskRow(masked) === 0) return -1;
  return draw(masked);
}
