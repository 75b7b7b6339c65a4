// GGUF v3 writer: metadata of every value type (arrays and nested arrays included), tensor infos,
// alignment padding and tensor data. Used by tests and by the malformed-file corpus generator, so
// every field the reader validates can also be written wrong on purpose (see the `raw*` and
// `*Override` fields); with none of those set the output is a valid GGUF file.

import { GgufValueType, ggmlTypes } from "./types.ts";

/** A scalar metadata value with its GGUF type spelled out (the reader's numbers lose it). */
export type GgufScalarSpec =
  | { type: 0 | 1 | 2 | 3 | 4 | 5 | 6 | 12; value: number }
  | { type: 10 | 11; value: number | bigint }
  | { type: 7; value: boolean };

/** An array value: elements of one type; nested arrays hold `GgufArraySpec` elements. */
export interface GgufArraySpec {
  type: 9;
  elementType: number;
  values: ReadonlyArray<number | bigint | boolean | string | Uint8Array | GgufArraySpec> | ArrayLike<number>;
  /** Written instead of values.length (to claim more elements than follow). */
  countOverride?: bigint;
}

/** A string value; a Uint8Array is written as-is (e.g. invalid UTF-8). */
export interface GgufStringSpec {
  type: 8;
  value: string | Uint8Array;
  /** Written instead of the byte length. */
  lengthOverride?: bigint;
}

/** Any type id followed by raw bytes: for unknown value types in malformed files. */
export interface GgufRawValueSpec {
  type: number;
  raw: Uint8Array;
}

export type GgufValueSpec = GgufScalarSpec | GgufStringSpec | GgufArraySpec | GgufRawValueSpec;

export interface GgufKvSpec {
  /** A Uint8Array key is written as-is (e.g. invalid UTF-8). */
  key: string | Uint8Array;
  value: GgufValueSpec;
}

export interface GgufTensorSpec {
  name: string | Uint8Array;
  /** Innermost first (GGML order: dims[0] is the row length). */
  dims: ReadonlyArray<number | bigint>;
  /** GGML type id (see types.ts); unknown ids are written as given. */
  type: number;
  /** Tensor bytes; default zeros of the size the type and dims imply. */
  data?: Uint8Array;
  /** Relative data offset written instead of the computed, aligned one. */
  offsetOverride?: bigint;
  /** Written instead of dims.length. */
  nDimsOverride?: number;
}

export interface GgufWriteSpec {
  metadata: ReadonlyArray<GgufKvSpec>;
  tensors?: ReadonlyArray<GgufTensorSpec>;
  /** Padding unit for the data section and between tensors; default general.alignment or 32. */
  alignment?: number;
  version?: number;
  magic?: number;
  tensorCountOverride?: bigint;
  kvCountOverride?: bigint;
}

/** Builders for value specs, so call sites read `v.u32(30)` instead of `{ type: 4, value: 30 }`. */
export const v = {
  u8: (value: number): GgufScalarSpec => ({ type: GgufValueType.UINT8, value }),
  i8: (value: number): GgufScalarSpec => ({ type: GgufValueType.INT8, value }),
  u16: (value: number): GgufScalarSpec => ({ type: GgufValueType.UINT16, value }),
  i16: (value: number): GgufScalarSpec => ({ type: GgufValueType.INT16, value }),
  u32: (value: number): GgufScalarSpec => ({ type: GgufValueType.UINT32, value }),
  i32: (value: number): GgufScalarSpec => ({ type: GgufValueType.INT32, value }),
  f32: (value: number): GgufScalarSpec => ({ type: GgufValueType.FLOAT32, value }),
  f64: (value: number): GgufScalarSpec => ({ type: GgufValueType.FLOAT64, value }),
  u64: (value: number | bigint): GgufScalarSpec => ({ type: GgufValueType.UINT64, value }),
  i64: (value: number | bigint): GgufScalarSpec => ({ type: GgufValueType.INT64, value }),
  bool: (value: boolean): GgufScalarSpec => ({ type: GgufValueType.BOOL, value }),
  str: (value: string | Uint8Array): GgufStringSpec => ({ type: GgufValueType.STRING, value }),
  arr: (elementType: number, values: GgufArraySpec["values"]): GgufArraySpec => ({
    type: GgufValueType.ARRAY,
    elementType,
    values,
  }),
  strs: (values: readonly string[]): GgufArraySpec => ({
    type: GgufValueType.ARRAY,
    elementType: GgufValueType.STRING,
    values,
  }),
};

export class GgufWriteError extends Error {
  override name = "GgufWriteError";
}

const utf8 = new TextEncoder();

/** Growable little-endian byte buffer. */
class ByteSink {
  private buf = new Uint8Array(4096);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(extraBytes: number): void {
    if (this.length + extraBytes <= this.buf.byteLength) return;
    let cap = this.buf.byteLength * 2;
    while (cap < this.length + extraBytes) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(x: number): void {
    this.reserve(1);
    this.view.setUint8(this.length, x);
    this.length += 1;
  }
  i8(x: number): void {
    this.reserve(1);
    this.view.setInt8(this.length, x);
    this.length += 1;
  }
  u16(x: number): void {
    this.reserve(2);
    this.view.setUint16(this.length, x, true);
    this.length += 2;
  }
  i16(x: number): void {
    this.reserve(2);
    this.view.setInt16(this.length, x, true);
    this.length += 2;
  }
  u32(x: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, x, true);
    this.length += 4;
  }
  i32(x: number): void {
    this.reserve(4);
    this.view.setInt32(this.length, x, true);
    this.length += 4;
  }
  f32(x: number): void {
    this.reserve(4);
    this.view.setFloat32(this.length, x, true);
    this.length += 4;
  }
  f64(x: number): void {
    this.reserve(8);
    this.view.setFloat64(this.length, x, true);
    this.length += 8;
  }
  u64(x: number | bigint): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt(x), true);
    this.length += 8;
  }
  i64(x: number | bigint): void {
    this.reserve(8);
    this.view.setBigInt64(this.length, BigInt(x), true);
    this.length += 8;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.byteLength);
    this.buf.set(b, this.length);
    this.length += b.byteLength;
  }
  padTo(alignment: number): void {
    const pad = (alignment - (this.length % alignment)) % alignment;
    this.reserve(pad);
    this.buf.fill(0, this.length, this.length + pad);
    this.length += pad;
  }
  result(): Uint8Array<ArrayBuffer> {
    return this.buf.slice(0, this.length);
  }
}

function asBytes(s: string | Uint8Array): Uint8Array {
  return typeof s === "string" ? utf8.encode(s) : s;
}

function writeString(out: ByteSink, s: string | Uint8Array, lengthOverride?: bigint): void {
  const b = asBytes(s);
  out.u64(lengthOverride ?? BigInt(b.byteLength));
  out.bytes(b);
}

function writeScalar(out: ByteSink, type: number, x: unknown, what: string): void {
  const num = (): number => {
    if (typeof x !== "number") throw new GgufWriteError(`${what}: expected a number, got ${typeof x}`);
    return x;
  };
  switch (type) {
    case GgufValueType.UINT8:
      out.u8(num());
      return;
    case GgufValueType.INT8:
      out.i8(num());
      return;
    case GgufValueType.UINT16:
      out.u16(num());
      return;
    case GgufValueType.INT16:
      out.i16(num());
      return;
    case GgufValueType.UINT32:
      out.u32(num());
      return;
    case GgufValueType.INT32:
      out.i32(num());
      return;
    case GgufValueType.FLOAT32:
      out.f32(num());
      return;
    case GgufValueType.FLOAT64:
      out.f64(num());
      return;
    case GgufValueType.BOOL:
      if (typeof x !== "boolean") throw new GgufWriteError(`${what}: expected a boolean`);
      out.u8(x ? 1 : 0);
      return;
    case GgufValueType.UINT64:
    case GgufValueType.INT64:
      if (typeof x !== "number" && typeof x !== "bigint")
        throw new GgufWriteError(`${what}: expected a number or bigint`);
      if (type === GgufValueType.UINT64) out.u64(x);
      else out.i64(x);
      return;
  }
  throw new GgufWriteError(`${what}: type ${type} is not a scalar type`);
}

function writeArrayBody(out: ByteSink, a: GgufArraySpec, what: string): void {
  out.u32(a.elementType);
  const values = a.values as ArrayLike<unknown>;
  out.u64(a.countOverride ?? BigInt(values.length));
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (a.elementType === GgufValueType.STRING) {
      if (typeof x !== "string" && !(x instanceof Uint8Array))
        throw new GgufWriteError(`${what}[${i}]: expected a string`);
      writeString(out, x);
    } else if (a.elementType === GgufValueType.ARRAY) {
      const inner = x as GgufArraySpec;
      if (typeof inner !== "object" || inner === null || !("elementType" in inner))
        throw new GgufWriteError(`${what}[${i}]: expected an array spec`);
      writeArrayBody(out, inner, `${what}[${i}]`);
    } else {
      writeScalar(out, a.elementType, x, `${what}[${i}]`);
    }
  }
}

function writeValue(out: ByteSink, spec: GgufValueSpec, what: string): void {
  out.u32(spec.type);
  if ("raw" in spec) {
    out.bytes(spec.raw);
    return;
  }
  if (spec.type === GgufValueType.STRING) {
    const s = spec as GgufStringSpec;
    writeString(out, s.value, s.lengthOverride);
    return;
  }
  if (spec.type === GgufValueType.ARRAY) {
    writeArrayBody(out, spec as GgufArraySpec, what);
    return;
  }
  writeScalar(out, spec.type, (spec as GgufScalarSpec).value, what);
}

/** Bytes a tensor of this type and shape occupies; throws for unknown types or partial blocks. */
export function tensorSizeBytes(type: number, dims: ReadonlyArray<number | bigint>): number {
  const info = ggmlTypes.get(type);
  if (info === undefined) throw new GgufWriteError(`unknown tensor type ${type}`);
  let elements = 1;
  for (const d of dims) elements *= Number(d);
  const rowLen = Number(dims[0] ?? 1);
  if (rowLen % info.blockElements !== 0) {
    throw new GgufWriteError(`row length ${rowLen} is not a multiple of the ${info.name} block size`);
  }
  return (elements / info.blockElements) * info.blockSizeBytes;
}

function alignmentOf(spec: GgufWriteSpec): number {
  if (spec.alignment !== undefined) return spec.alignment;
  for (const kv of spec.metadata) {
    if (kv.key === "general.alignment" && "value" in kv.value && typeof kv.value.value === "number") {
      return kv.value.value;
    }
  }
  return 32;
}

/** Serializes a GGUF file. With no override set, readGguf parses it back to the same content. */
export function writeGguf(spec: GgufWriteSpec): Uint8Array<ArrayBuffer> {
  const alignment = alignmentOf(spec);
  if (!Number.isInteger(alignment) || alignment <= 0) {
    throw new GgufWriteError(`alignment must be a positive integer, got ${alignment}`);
  }
  const tensors = spec.tensors ?? [];
  const out = new ByteSink();
  out.u32(spec.magic ?? 0x46554747);
  out.u32(spec.version ?? 3);
  out.u64(spec.tensorCountOverride ?? BigInt(tensors.length));
  out.u64(spec.kvCountOverride ?? BigInt(spec.metadata.length));
  for (const kv of spec.metadata) {
    writeString(out, kv.key);
    writeValue(out, kv.value, typeof kv.key === "string" ? kv.key : "key");
  }

  // Lay tensor data out in table order, each start aligned.
  const datas: Uint8Array[] = [];
  const offsets: bigint[] = [];
  let relOffset = 0;
  for (const t of tensors) {
    const data = t.data ?? new Uint8Array(ggmlTypes.has(t.type) ? tensorSizeBytes(t.type, t.dims) : 0);
    relOffset = Math.ceil(relOffset / alignment) * alignment;
    offsets.push(t.offsetOverride ?? BigInt(relOffset));
    datas.push(data);
    relOffset += data.byteLength;
  }
  tensors.forEach((t, i) => {
    writeString(out, t.name);
    out.u32(t.nDimsOverride ?? t.dims.length);
    for (const d of t.dims) out.u64(d);
    out.u32(t.type);
    out.u64(offsets[i] as bigint);
  });
  if (tensors.length > 0) {
    out.padTo(alignment);
    for (const data of datas) {
      out.padTo(alignment);
      out.bytes(data);
    }
  }
  return out.result();
}
