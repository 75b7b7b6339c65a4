// GGUF v2/v3 reader: metadata of every type, the tensor table, alignment and validation.
// Every malformed input throws a GgufError that names the problem and its byte offset;
// nothing here can loop without bound, allocate more than the file can justify, or crash.

import { statSync } from "node:fs";
import { escapeUnprintable, quoteUntrusted } from "../untrusted.ts";
import { GgufValueType, ggmlTypes, scalarSizeBytes } from "./types.ts";

export class GgufError extends Error {
  override name = "GgufError";
  // The message may hold strings from the file: nothing in it may reach a terminal unescaped.
  constructor(message: string) {
    super(escapeUnprintable(message));
  }
}

export type GgufValue =
  | number
  | bigint
  | boolean
  | string
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array
  | boolean[]
  | string[]
  | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** Dimensions, innermost first (GGML order: dims[0] is the row length). */
  dims: number[];
  typeId: number;
  typeName: string;
  elementCount: number;
  sizeBytes: number;
  /** Absolute byte offset of the tensor data in the file. */
  fileOffset: number;
}

export interface GgufFile {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  tensorsByName: Map<string, GgufTensorInfo>;
  alignment: number;
  /** Absolute offset where tensor data begins. */
  dataOffset: number;
  fileSizeBytes: number;
  /** The path readGguf opened (absent for parseGguf on bytes). */
  path?: string;
}

const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
const MAX_DIMS = 4;
const MAX_ARRAY_NESTING = 3;
const MAX_KEY_BYTES = 65_535;
const DEFAULT_ALIGNMENT = 32;
// No real file aligns beyond a page or two; a larger value only pushes the data past the end.
const MAX_ALIGNMENT = 1 << 20;

// fatal: invalid UTF-8 is an error, not U+FFFD. ignoreBOM: a leading EF BB BF is content (a token
// may be exactly that), not a byte-order mark to strip.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/** String arrays at least this long are decoded in one pass (Cursor.stringArray). */
const STRING_ARRAY_JOIN_MIN = 256;

/** Error context built only when an error is thrown (vocabularies hold ~10^5 strings). */
type Label = string | (() => string);
const label = (what: Label): string => (typeof what === "string" ? what : what());

/** Bounds-checked little-endian cursor over the file bytes. */
class Cursor {
  offset = 0;
  private readonly view: DataView;

  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  remaining(): number {
    return this.bytes.byteLength - this.offset;
  }

  need(sizeBytes: number, what: Label): void {
    if (sizeBytes > this.remaining()) {
      throw new GgufError(
        `truncated file: reading ${label(what)} needs ${sizeBytes} bytes at offset ${this.offset}, ` +
          `but only ${this.remaining()} remain (file is ${this.bytes.byteLength} bytes)`,
      );
    }
  }

  u8(what: string): number {
    this.need(1, what);
    return this.view.getUint8(this.offset++);
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.offset, true);
    this.offset += 4;
    return v;
  }
  /** u64 as a number; throws if it exceeds 2^53 (no GGUF count or offset legitimately does). */
  u64(what: Label): number {
    this.need(8, what);
    // Two u32 halves instead of getBigUint64: BigInt costs ~10x and this runs per string.
    const lo = this.view.getUint32(this.offset, true);
    const hi = this.view.getUint32(this.offset + 4, true);
    this.offset += 8;
    if (hi > 0x1f_ffff) {
      const v = (BigInt(hi) << 32n) | BigInt(lo);
      throw new GgufError(`absurd value for ${label(what)}: ${v} at offset ${this.offset - 8}`);
    }
    // Small values stay int32 in the engine; a double here would make every later offset a double.
    return hi === 0 && lo <= 0x7fff_ffff ? lo | 0 : hi * 0x1_0000_0000 + lo;
  }

  string(what: Label, maxBytes = Number.MAX_SAFE_INTEGER): string {
    const start = this.offset;
    const len = this.u64(() => `length of ${label(what)}`);
    if (len > maxBytes) throw new GgufError(`absurd length ${len} for ${label(what)} at offset ${start}`);
    this.need(len, what);
    const from = this.offset;
    this.offset += len;
    try {
      return utf8.decode(this.bytes.subarray(from, from + len));
    } catch {
      throw new GgufError(`${label(what)} at offset ${start} is not valid UTF-8`);
    }
  }

  scalar(type: number, what: string): number | bigint | boolean {
    const size = scalarSizeBytes[type];
    if (size === undefined) throw new GgufError(`unknown value type ${type} for ${what}`);
    this.need(size, what);
    const o = this.offset;
    this.offset += size;
    const v = this.view;
    switch (type) {
      case GgufValueType.UINT8:
        return v.getUint8(o);
      case GgufValueType.INT8:
        return v.getInt8(o);
      case GgufValueType.UINT16:
        return v.getUint16(o, true);
      case GgufValueType.INT16:
        return v.getInt16(o, true);
      case GgufValueType.UINT32:
        return v.getUint32(o, true);
      case GgufValueType.INT32:
        return v.getInt32(o, true);
      case GgufValueType.FLOAT32:
        return v.getFloat32(o, true);
      case GgufValueType.BOOL: {
        const b = v.getUint8(o);
        if (b > 1) throw new GgufError(`invalid bool value ${b} for ${what} at offset ${o}`);
        return b === 1;
      }
      case GgufValueType.UINT64: {
        const x = v.getBigUint64(o, true);
        return x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x;
      }
      case GgufValueType.INT64: {
        const x = v.getBigInt64(o, true);
        return x <= BigInt(Number.MAX_SAFE_INTEGER) && x >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(x) : x;
      }
      case GgufValueType.FLOAT64:
        return v.getFloat64(o, true);
    }
    throw new GgufError(`unknown value type ${type} for ${what}`);
  }

  /** Copies `count` little-endian scalars into a typed array (copy: the file may be unmapped later). */
  typedArray(type: number, count: number, what: string): GgufValue {
    const size = scalarSizeBytes[type] ?? 0;
    this.need(count * size, what);
    const slice = this.bytes.slice(this.offset, this.offset + count * size);
    this.offset += count * size;
    const buf = slice.buffer as ArrayBuffer;
    switch (type) {
      case GgufValueType.UINT8:
        return new Uint8Array(buf);
      case GgufValueType.INT8:
        return new Int8Array(buf);
      case GgufValueType.UINT16:
        return new Uint16Array(buf);
      case GgufValueType.INT16:
        return new Int16Array(buf);
      case GgufValueType.UINT32:
        return new Uint32Array(buf);
      case GgufValueType.INT32:
        return new Int32Array(buf);
      case GgufValueType.FLOAT32:
        return new Float32Array(buf);
      case GgufValueType.UINT64:
        return new BigUint64Array(buf);
      case GgufValueType.INT64:
        return new BigInt64Array(buf);
      case GgufValueType.FLOAT64:
        return new Float64Array(buf);
      case GgufValueType.BOOL:
        return Array.from(new Uint8Array(buf), (b, i) => {
          if (b > 1) throw new GgufError(`invalid bool value ${b} in ${what}[${i}]`);
          return b === 1;
        });
    }
    throw new GgufError(`unknown array element type ${type} for ${what}`);
  }

  /**
   * `count` strings. A long array (a vocabulary) is decoded in one pass: its elements' bytes joined
   * by NUL, one UTF-8 decode, one split. Decoding element by element left ~140 bytes of garbage per
   * element behind (36 MB for Gemma 3's 262,144 tokens, most of it still resident when the weights
   * load: docs/HACKING.md). Bad UTF-8 or a NUL inside an element goes element by element instead,
   * which names the bad element. NUL is ASCII, so the joined bytes are valid UTF-8 exactly when
   * every element is.
   */
  stringArray(count: number, what: string): string[] {
    const start = this.offset;
    const one = () => {
      this.offset = start;
      const out: string[] = new Array(count);
      for (let i = 0; i < count; i++) out[i] = this.string(() => `${what}[${i}]`);
      return out;
    };
    if (count < STRING_ARRAY_JOIN_MIN) return one();
    let joinedBytes = 0;
    for (let i = 0; i < count; i++) {
      const len = this.u64(() => `length of ${what}[${i}]`);
      this.need(len, () => `${what}[${i}]`);
      this.offset += len;
      joinedBytes += len + 1;
    }
    const end = this.offset;
    const joined = new Uint8Array(joinedBytes - 1);
    this.offset = start;
    let to = 0;
    for (let i = 0; i < count; i++) {
      const len = this.u64(() => `length of ${what}[${i}]`);
      const element = this.bytes.subarray(this.offset, this.offset + len);
      if (element.indexOf(0) >= 0) return one();
      joined.set(element, to);
      to += len;
      if (i + 1 < count) joined[to++] = 0;
      this.offset += len;
    }
    let parts: string[];
    try {
      parts = utf8.decode(joined).split("\0");
    } catch {
      return one();
    }
    if (parts.length !== count) return one();
    this.offset = end;
    return parts;
  }

  value(type: number, what: string, depth: number): GgufValue {
    if (type === GgufValueType.STRING) return this.string(what);
    if (type !== GgufValueType.ARRAY) return this.scalar(type, what);
    if (depth >= MAX_ARRAY_NESTING)
      throw new GgufError(`arrays nested deeper than ${MAX_ARRAY_NESTING} in ${what}`);
    const elemType = this.u32(`element type of ${what}`);
    const countAt = this.offset;
    const count = this.u64(`element count of ${what}`);
    // Bound the count by the bytes left before allocating anything: each element needs at least
    // its minimal encoding (a string its 8-byte length, an array its type and count).
    const minSize =
      elemType === GgufValueType.STRING
        ? 8
        : elemType === GgufValueType.ARRAY
          ? 12
          : scalarSizeBytes[elemType];
    if (minSize === undefined) throw new GgufError(`unknown array element type ${elemType} in ${what}`);
    if (count * minSize > this.remaining()) {
      throw new GgufError(
        `absurd element count ${count} for ${what} at offset ${countAt}: needs at least ${count * minSize} ` +
          `bytes but ${this.remaining()} remain (truncated or corrupt file)`,
      );
    }
    if (elemType === GgufValueType.STRING) return this.stringArray(count, what);
    if (elemType === GgufValueType.ARRAY) {
      const out: GgufValue[] = new Array(count);
      for (let i = 0; i < count; i++) out[i] = this.value(GgufValueType.ARRAY, `${what}[${i}]`, depth + 1);
      return out;
    }
    return this.typedArray(elemType, count, what);
  }
}

/** Parses GGUF bytes (usually an mmapped file). Throws GgufError on any malformation. */
export function parseGguf(bytes: Uint8Array): GgufFile {
  const c = new Cursor(bytes);
  if (bytes.byteLength < 4) throw new GgufError(`not a GGUF file: only ${bytes.byteLength} bytes`);
  const magic = c.u32("magic");
  if (magic !== GGUF_MAGIC) {
    const shown = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ");
    throw new GgufError(`not a GGUF file: bad magic bytes ${shown} (expected 47 47 55 46 "GGUF")`);
  }
  const version = c.u32("version");
  if (version !== 2 && version !== 3) {
    throw new GgufError(`unsupported GGUF version ${version} (supported: 2, 3)`);
  }
  const tensorCount = c.u64("tensor count");
  const kvCount = c.u64("metadata key/value count");
  // Minimal encodings: a kv is >= 8+1+4+1 bytes, a tensor info >= 8+1+4+8+4+8.
  if (kvCount * 14 > c.remaining()) {
    throw new GgufError(
      `absurd metadata count ${kvCount} or truncated file: ${kvCount} keys need at least ` +
        `${kvCount * 14} bytes but ${c.remaining()} remain`,
    );
  }
  if (tensorCount * 33 > c.remaining() - kvCount * 14) {
    throw new GgufError(
      `absurd tensor count ${tensorCount} or truncated file: ${tensorCount} tensor infos and ` +
        `${kvCount} keys need at least ${tensorCount * 33 + kvCount * 14} bytes but ${c.remaining()} remain`,
    );
  }

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = c.string(() => `metadata key #${i}`, MAX_KEY_BYTES);
    if (key.length === 0) throw new GgufError(`empty metadata key #${i}`);
    if (metadata.has(key)) throw new GgufError(`duplicate metadata key ${quoteUntrusted(key)}`);
    const type = c.u32(`value type of ${quoteUntrusted(key)}`);
    metadata.set(key, c.value(type, `${quoteUntrusted(key)}`, 0));
  }

  let alignment = DEFAULT_ALIGNMENT;
  const alignValue = metadata.get("general.alignment");
  if (alignValue !== undefined) {
    // Integer check before the bit test: `&` truncates to 32 bits, so 2^32 or 0.5 would pass it.
    if (
      typeof alignValue !== "number" ||
      !Number.isInteger(alignValue) ||
      alignValue < 1 ||
      alignValue > MAX_ALIGNMENT ||
      (alignValue & (alignValue - 1)) !== 0
    ) {
      const shown = typeof alignValue === "string" ? JSON.stringify(alignValue) : String(alignValue);
      throw new GgufError(`general.alignment must be a power of two in [1, ${MAX_ALIGNMENT}], got ${shown}`);
    }
    alignment = alignValue;
  }

  const tensors: GgufTensorInfo[] = [];
  const tensorsByName = new Map<string, GgufTensorInfo>();
  const relOffsets: number[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = c.string(`tensor #${i} name`, MAX_KEY_BYTES);
    if (name.length === 0) throw new GgufError(`tensor #${i} has an empty name`);
    if (tensorsByName.has(name)) throw new GgufError(`duplicate tensor name ${quoteUntrusted(name)}`);
    const nDims = c.u32(`dimension count of tensor ${quoteUntrusted(name)}`);
    if (nDims < 1 || nDims > MAX_DIMS) {
      throw new GgufError(`tensor ${quoteUntrusted(name)} has ${nDims} dimensions (allowed 1..${MAX_DIMS})`);
    }
    const dims: number[] = [];
    let elementCount = 1;
    for (let d = 0; d < nDims; d++) {
      const n = c.u64(`dimension ${d} of tensor ${quoteUntrusted(name)}`);
      if (n === 0) throw new GgufError(`tensor ${quoteUntrusted(name)} has a zero-sized dimension ${d}`);
      elementCount *= n;
      if (elementCount > Number.MAX_SAFE_INTEGER)
        throw new GgufError(`tensor ${quoteUntrusted(name)} has absurd dimensions`);
      dims.push(n);
    }
    const typeId = c.u32(`type of tensor ${quoteUntrusted(name)}`);
    const type = ggmlTypes.get(typeId);
    if (type === undefined)
      throw new GgufError(`tensor ${quoteUntrusted(name)} has unknown tensor type ${typeId}`);
    const rel = c.u64(`data offset of tensor ${quoteUntrusted(name)}`);
    if (rel % alignment !== 0) {
      throw new GgufError(
        `tensor ${quoteUntrusted(name)} data offset ${rel} is not a multiple of the alignment ${alignment}`,
      );
    }
    const rowLen = dims[0] ?? 0;
    if (rowLen % type.blockElements !== 0) {
      throw new GgufError(
        `tensor ${quoteUntrusted(name)} row length ${rowLen} is not a multiple of the ${type.name} block size ${type.blockElements}`,
      );
    }
    const sizeBytes = (elementCount / type.blockElements) * type.blockSizeBytes;
    const info: GgufTensorInfo = {
      name,
      dims,
      typeId,
      typeName: type.name,
      elementCount,
      sizeBytes,
      fileOffset: 0,
    };
    tensors.push(info);
    tensorsByName.set(name, info);
    relOffsets.push(rel);
  }

  const dataOffset = Math.ceil(c.offset / alignment) * alignment;
  const fileSizeBytes = bytes.byteLength;
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i] as GgufTensorInfo;
    t.fileOffset = dataOffset + (relOffsets[i] as number);
    if (t.fileOffset + t.sizeBytes > fileSizeBytes) {
      throw new GgufError(
        `tensor ${quoteUntrusted(t.name)} data [${t.fileOffset}, ${t.fileOffset + t.sizeBytes}) lies outside the file ` +
          `(${fileSizeBytes} bytes): truncated or corrupt file`,
      );
    }
  }
  // Overlapping tensor data means a corrupt table.
  const byOffset = [...tensors].sort((a, b) => a.fileOffset - b.fileOffset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1] as GgufTensorInfo;
    const cur = byOffset[i] as GgufTensorInfo;
    if (prev.fileOffset + prev.sizeBytes > cur.fileOffset) {
      throw new GgufError(
        `tensor ${quoteUntrusted(cur.name)} data overlaps tensor ${quoteUntrusted(prev.name)}`,
      );
    }
  }
  return { version, metadata, tensors, tensorsByName, alignment, dataOffset, fileSizeBytes };
}

/** Reads and validates a GGUF file from disk (mmapped; weights are never copied). */
export function readGguf(path: string): GgufFile {
  let sizeBytes: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new GgufError(`model path is not a regular file: ${path}`);
    sizeBytes = st.size;
  } catch (err) {
    if (err instanceof GgufError) throw err;
    throw new GgufError(`cannot open model file ${path}: ${(err as Error).message}`);
  }
  if (sizeBytes < 24) throw new GgufError(`not a GGUF file: ${path} is only ${sizeBytes} bytes`);
  const bytes = Bun.mmap(path, { shared: false });
  try {
    const file = parseGguf(bytes);
    file.path = path;
    return file;
  } catch (err) {
    if (err instanceof GgufError) err.message = `${path}: ${err.message}`;
    throw err;
  }
}

/** Typed metadata access with errors that name the missing or mistyped key. */
export class GgufMetadata {
  constructor(readonly map: Map<string, GgufValue>) {}

  has(key: string): boolean {
    return this.map.has(key);
  }
  number(key: string): number {
    const v = this.map.get(key);
    if (v === undefined) throw new GgufError(`missing required metadata key "${key}"`);
    if (typeof v !== "number")
      throw new GgufError(`metadata key "${key}" should be a number, got ${typeof v}`);
    return v;
  }
  numberOr(key: string, fallback: number): number {
    return this.map.has(key) ? this.number(key) : fallback;
  }
  string(key: string): string {
    const v = this.map.get(key);
    if (v === undefined) throw new GgufError(`missing required metadata key "${key}"`);
    if (typeof v !== "string") throw new GgufError(`metadata key "${key}" should be a string`);
    return v;
  }
  stringOr(key: string, fallback: string): string {
    return this.map.has(key) ? this.string(key) : fallback;
  }
  boolOr(key: string, fallback: boolean): boolean {
    const v = this.map.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== "boolean") throw new GgufError(`metadata key "${key}" should be a bool`);
    return v;
  }
  strings(key: string): string[] {
    const v = this.map.get(key);
    if (v === undefined) throw new GgufError(`missing required metadata key "${key}"`);
    if (!Array.isArray(v) || !v.every((e) => typeof e === "string")) {
      throw new GgufError(`metadata key "${key}" should be an array of strings`);
    }
    return v as string[];
  }
  /** Any numeric array as an Int32Array (token types, ids). */
  int32s(key: string): Int32Array | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    if (v instanceof Int32Array) return v;
    if (
      v instanceof Uint32Array ||
      v instanceof Int16Array ||
      v instanceof Uint16Array ||
      v instanceof Uint8Array ||
      v instanceof Int8Array
    ) {
      return Int32Array.from(v);
    }
    throw new GgufError(`metadata key "${key}" should be an integer array`);
  }
  float32s(key: string): Float32Array | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    if (v instanceof Float32Array) return v;
    throw new GgufError(`metadata key "${key}" should be a float32 array`);
  }
}
