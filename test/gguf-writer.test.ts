// GGUF writer: what writeGguf produces, readGguf/parseGguf read back unchanged (every value type,
// arrays and nested arrays, tensor infos, alignment, data bytes).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseGguf, readGguf } from "../src/gguf/reader.ts";
import { GgufValueType as T } from "../src/gguf/types.ts";
import { type GgufKvSpec, type GgufTensorSpec, tensorSizeBytes, v, writeGguf } from "../src/gguf/writer.ts";

const dir = mkdtempSync(join(tmpdir(), "hearth-writer-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function patterned(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

const metadata: GgufKvSpec[] = [
  { key: "t.u8", value: v.u8(250) },
  { key: "t.i8", value: v.i8(-120) },
  { key: "t.u16", value: v.u16(65_000) },
  { key: "t.i16", value: v.i16(-32_000) },
  { key: "t.u32", value: v.u32(4_000_000_000) },
  { key: "t.i32", value: v.i32(-2_000_000_000) },
  { key: "t.f32", value: v.f32(0.5) },
  { key: "t.bool.true", value: v.bool(true) },
  { key: "t.bool.false", value: v.bool(false) },
  { key: "t.string", value: v.str("héllo, 世界 🌍") },
  { key: "t.string.empty", value: v.str("") },
  { key: "t.u64", value: v.u64(123_456_789_012n) },
  { key: "t.u64.big", value: v.u64(2n ** 63n + 5n) },
  { key: "t.i64", value: v.i64(-9_007_199_254_740_000n) },
  { key: "t.i64.big", value: v.i64(-(2n ** 62n)) },
  { key: "t.f64", value: v.f64(Math.PI) },
  { key: "a.u8", value: v.arr(T.UINT8, [0, 1, 255]) },
  { key: "a.i8", value: v.arr(T.INT8, [-128, 0, 127]) },
  { key: "a.u16", value: v.arr(T.UINT16, [1, 65_535]) },
  { key: "a.i16", value: v.arr(T.INT16, [-1, 2]) },
  { key: "a.u32", value: v.arr(T.UINT32, [7, 4_294_967_295]) },
  { key: "a.i32", value: v.arr(T.INT32, [-7, 7, 0]) },
  { key: "a.f32", value: v.arr(T.FLOAT32, [0.25, -1.5]) },
  { key: "a.bool", value: v.arr(T.BOOL, [true, false, true]) },
  { key: "a.string", value: v.strs(["a", "", "ünï", "<|im_start|>"]) },
  { key: "a.u64", value: v.arr(T.UINT64, [1n, 2n ** 64n - 1n]) },
  { key: "a.i64", value: v.arr(T.INT64, [-1n, 2n ** 40n]) },
  { key: "a.f64", value: v.arr(T.FLOAT64, [1e-300, -2.5]) },
  { key: "a.empty", value: v.arr(T.UINT32, []) },
  {
    key: "a.nested",
    value: v.arr(T.ARRAY, [v.arr(T.INT32, [1, 2]), v.arr(T.STRING, ["x", "y"]), v.arr(T.ARRAY, [])]),
  },
];

const tensors: GgufTensorSpec[] = [
  { name: "f32.vec", dims: [5], type: 0, data: patterned(20, 1) },
  { name: "f16.mat", dims: [3, 7], type: 1, data: patterned(42, 2) },
  { name: "q4_0.mat", dims: [64, 2], type: 2, data: patterned(4 * 18, 3) },
  { name: "q4_1.mat", dims: [32, 3], type: 3, data: patterned(3 * 20, 4) },
  { name: "q8_0.3d", dims: [32, 2, 2], type: 8, data: patterned(4 * 34, 5) },
  { name: "zeros.4d", dims: [2, 1, 3, 1], type: 0 },
];

describe("writeGguf → readGguf round trip", () => {
  const bytes = writeGguf({ metadata, tensors });
  const path = join(dir, "roundtrip.gguf");

  test("header: version 3, counts, default alignment", async () => {
    await Bun.write(path, bytes);
    const f = readGguf(path);
    expect(f.version).toBe(3);
    expect(f.alignment).toBe(32);
    expect(f.metadata.size).toBe(metadata.length);
    expect(f.tensors.length).toBe(tensors.length);
    expect(f.dataOffset % 32).toBe(0);
    expect(f.fileSizeBytes).toBe(bytes.byteLength);
  });

  test("every scalar type reads back to its value", () => {
    const m = parseGguf(bytes).metadata;
    expect(m.get("t.u8")).toBe(250);
    expect(m.get("t.i8")).toBe(-120);
    expect(m.get("t.u16")).toBe(65_000);
    expect(m.get("t.i16")).toBe(-32_000);
    expect(m.get("t.u32")).toBe(4_000_000_000);
    expect(m.get("t.i32")).toBe(-2_000_000_000);
    expect(m.get("t.f32")).toBe(0.5);
    expect(m.get("t.bool.true")).toBe(true);
    expect(m.get("t.bool.false")).toBe(false);
    expect(m.get("t.string")).toBe("héllo, 世界 🌍");
    expect(m.get("t.string.empty")).toBe("");
    expect(m.get("t.u64")).toBe(123_456_789_012);
    expect(m.get("t.u64.big")).toBe(2n ** 63n + 5n);
    expect(m.get("t.i64")).toBe(-9_007_199_254_740_000);
    expect(m.get("t.i64.big")).toBe(-(2n ** 62n));
    expect(m.get("t.f64")).toBe(Math.PI);
  });

  test("every array type reads back as its typed array, in order", () => {
    const m = parseGguf(bytes).metadata;
    expect(m.get("a.u8")).toEqual(new Uint8Array([0, 1, 255]));
    expect(m.get("a.i8")).toEqual(new Int8Array([-128, 0, 127]));
    expect(m.get("a.u16")).toEqual(new Uint16Array([1, 65_535]));
    expect(m.get("a.i16")).toEqual(new Int16Array([-1, 2]));
    expect(m.get("a.u32")).toEqual(new Uint32Array([7, 4_294_967_295]));
    expect(m.get("a.i32")).toEqual(new Int32Array([-7, 7, 0]));
    expect(m.get("a.f32")).toEqual(new Float32Array([0.25, -1.5]));
    expect(m.get("a.bool")).toEqual([true, false, true]);
    expect(m.get("a.string")).toEqual(["a", "", "ünï", "<|im_start|>"]);
    expect(m.get("a.u64")).toEqual(new BigUint64Array([1n, 2n ** 64n - 1n]));
    expect(m.get("a.i64")).toEqual(new BigInt64Array([-1n, 2n ** 40n]));
    expect(m.get("a.f64")).toEqual(new Float64Array([1e-300, -2.5]));
    expect(m.get("a.empty")).toEqual(new Uint32Array([]));
    expect(m.get("a.nested")).toEqual([new Int32Array([1, 2]), ["x", "y"], []]);
  });

  test("metadata keys keep their file order", () => {
    expect([...parseGguf(bytes).metadata.keys()]).toEqual(metadata.map((kv) => kv.key as string));
  });

  test("tensor infos and data bytes read back exactly, each aligned", () => {
    const f = parseGguf(bytes);
    tensors.forEach((spec, i) => {
      const t = f.tensors[i];
      if (t === undefined) throw new Error(`tensor ${i} missing`);
      expect(t.name).toBe(spec.name as string);
      expect(t.dims).toEqual(spec.dims.map(Number));
      expect(t.typeId).toBe(spec.type);
      expect(t.sizeBytes).toBe(tensorSizeBytes(spec.type, spec.dims));
      expect(t.fileOffset % f.alignment).toBe(0);
      const got = bytes.subarray(t.fileOffset, t.fileOffset + t.sizeBytes);
      expect(got).toEqual((spec.data as Uint8Array<ArrayBuffer> | undefined) ?? new Uint8Array(t.sizeBytes));
      expect(f.tensorsByName.get(t.name)).toBe(t);
    });
  });
});

describe("alignment", () => {
  test("general.alignment = 64 pads the data section and every tensor to 64", () => {
    const bytes = writeGguf({
      metadata: [{ key: "general.alignment", value: v.u32(64) }],
      tensors: [
        { name: "a", dims: [3], type: 0, data: patterned(12, 1) },
        { name: "b", dims: [5], type: 0, data: patterned(20, 2) },
      ],
    });
    const f = parseGguf(bytes);
    expect(f.alignment).toBe(64);
    expect(f.dataOffset % 64).toBe(0);
    expect(f.tensors.map((t) => t.fileOffset - f.dataOffset)).toEqual([0, 64]);
    expect(bytes.subarray(f.dataOffset + 64, f.dataOffset + 84)).toEqual(patterned(20, 2));
  });

  test("a file with metadata and no tensors has no data section", () => {
    const bytes = writeGguf({ metadata: [{ key: "k", value: v.str("v") }] });
    const f = parseGguf(bytes);
    expect(f.tensors).toEqual([]);
    expect(bytes.byteLength).toBe(4 + 4 + 8 + 8 + (8 + 1) + 4 + (8 + 1));
  });

  test("version 2 files are written and read", () => {
    expect(parseGguf(writeGguf({ version: 2, metadata: [] })).version).toBe(2);
  });
});

describe("long string arrays (a vocabulary, decoded in one pass)", () => {
  const words = Array.from({ length: 1000 }, (_, i) =>
    i % 7 === 0 ? "" : i % 3 === 0 ? `▁wörd${i}` : i % 5 === 0 ? `日本${i}😀` : `t${i}`,
  );
  const read = (values: Array<string | Uint8Array>) =>
    parseGguf(
      writeGguf({
        metadata: [
          { key: "a", value: v.arr(T.STRING, values) },
          { key: "b", value: v.u32(9) },
        ],
      }),
    ).metadata;

  test("every element reads back as written, empty ones included, and the next key after them", () => {
    const md = read(words);
    expect(md.get("a")).toEqual(words);
    expect(md.get("b")).toBe(9);
  });

  test("a NUL inside an element stays in that element", () => {
    const withNul = [...words];
    withNul[500] = "a\0b";
    withNul[999] = "\0";
    expect(read(withNul).get("a")).toEqual(withNul);
  });

  test("bad UTF-8 is an error that names the element", () => {
    const bad: Array<string | Uint8Array> = [...words];
    bad[613] = new Uint8Array([0x61, 0xc3]); // a truncated two-byte sequence
    expect(() => read(bad)).toThrow(`"a"[613]`);
    expect(() => read(bad)).toThrow("not valid UTF-8");
  });
});
