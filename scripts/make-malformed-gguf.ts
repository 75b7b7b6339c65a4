// Generates the malformed-GGUF corpus in test/fixtures/malformed/ (each file plus expected.json,
// which maps the file to the layer that must reject it and a regex of the error). Every case is a
// small valid file (a tiny Llama, or a few keys) with exactly one thing broken.
// Usage: bun scripts/make-malformed-gguf.ts [outDir]

import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { GgufValueType as T } from "../src/gguf/types.ts";
import {
  type GgufKvSpec,
  type GgufTensorSpec,
  type GgufValueSpec,
  type GgufWriteSpec,
  v,
  writeGguf,
} from "../src/gguf/writer.ts";

export interface MalformedCase {
  file: string;
  /** What is wrong, in words. */
  what: string;
  /** "reader": readGguf must throw a GgufError; "config": readGguf parses, llamaConfigFromGguf throws. */
  layer: "reader" | "config";
  /** Regex source the error message must match. */
  error: string;
  bytes: Uint8Array;
}

// The tiny Llama every config case starts from: 2 blocks, n_embd 64, n_ff 96, 2 heads of 32
// (a head size the native kernels support, so the native loader gets past it too), 1 KV head,
// vocabulary 16. Matrices are Q4_0 (rows of 32) to keep the files small.
export const TINY = { blocks: 2, embd: 64, ff: 96, heads: 2, kvHeads: 1, headDim: 32, vocab: 16 };
const Q4_0 = 2;
const Q8_0 = 8;
const F32 = 0;
const MXFP4 = 39;

const tokens = [
  "<unk>",
  "<s>",
  "</s>",
  "a",
  "b",
  "c",
  "d",
  "e",
  "ab",
  "cd",
  "abc",
  " ",
  "Ġa",
  "Ġb",
  "\n",
  "!",
];

export function tinyLlamaMetadata(): GgufKvSpec[] {
  return [
    { key: "general.architecture", value: v.str("llama") },
    { key: "general.name", value: v.str("tiny-llama (malformed corpus base)") },
    { key: "llama.block_count", value: v.u32(TINY.blocks) },
    { key: "llama.context_length", value: v.u32(256) },
    { key: "llama.embedding_length", value: v.u32(TINY.embd) },
    { key: "llama.feed_forward_length", value: v.u32(TINY.ff) },
    { key: "llama.attention.head_count", value: v.u32(TINY.heads) },
    { key: "llama.attention.head_count_kv", value: v.u32(TINY.kvHeads) },
    { key: "llama.rope.freq_base", value: v.f32(10_000) },
    { key: "llama.attention.layer_norm_rms_epsilon", value: v.f32(1e-5) },
    { key: "llama.vocab_size", value: v.u32(TINY.vocab) },
    { key: "llama.rope.dimension_count", value: v.u32(TINY.headDim) },
    { key: "tokenizer.ggml.model", value: v.str("gpt2") },
    { key: "tokenizer.ggml.pre", value: v.str("default") },
    { key: "tokenizer.ggml.tokens", value: v.strs(tokens) },
    {
      key: "tokenizer.ggml.token_type",
      value: v.arr(
        T.INT32,
        tokens.map((_, i) => (i < 3 ? 3 : 1)),
      ),
    },
    { key: "tokenizer.ggml.merges", value: v.strs(["a b", "c d", "ab c", "Ġ a"]) },
    { key: "tokenizer.ggml.bos_token_id", value: v.u32(1) },
    { key: "tokenizer.ggml.eos_token_id", value: v.u32(2) },
    { key: "general.alignment", value: v.u32(32) },
  ];
}

export function tinyLlamaTensors(): GgufTensorSpec[] {
  const { embd, ff, heads, kvHeads, headDim, vocab } = TINY;
  const out: GgufTensorSpec[] = [
    { name: "token_embd.weight", dims: [embd, vocab], type: Q4_0 },
    { name: "output_norm.weight", dims: [embd], type: F32 },
  ];
  for (let i = 0; i < TINY.blocks; i++) {
    const b = `blk.${i}.`;
    out.push(
      { name: `${b}attn_norm.weight`, dims: [embd], type: F32 },
      { name: `${b}attn_q.weight`, dims: [embd, heads * headDim], type: Q4_0 },
      { name: `${b}attn_k.weight`, dims: [embd, kvHeads * headDim], type: Q4_0 },
      { name: `${b}attn_v.weight`, dims: [embd, kvHeads * headDim], type: Q4_0 },
      { name: `${b}attn_output.weight`, dims: [heads * headDim, embd], type: Q4_0 },
      { name: `${b}ffn_norm.weight`, dims: [embd], type: F32 },
      { name: `${b}ffn_gate.weight`, dims: [embd, ff], type: Q4_0 },
      { name: `${b}ffn_up.weight`, dims: [embd, ff], type: Q4_0 },
      { name: `${b}ffn_down.weight`, dims: [ff, embd], type: Q4_0 },
    );
  }
  return out;
}

export function tinyLlamaSpec(): GgufWriteSpec {
  return { metadata: tinyLlamaMetadata(), tensors: tinyLlamaTensors() };
}

/** The tiny Llama with one metadata value replaced (or removed, for `undefined`). */
function withKey(key: string, value: GgufValueSpec | undefined): Uint8Array {
  const metadata = tinyLlamaMetadata().filter((kv) => kv.key !== key || value !== undefined);
  const at = metadata.findIndex((kv) => kv.key === key);
  if (value !== undefined) {
    if (at >= 0) metadata[at] = { key, value };
    else metadata.push({ key, value });
  }
  return writeGguf({ metadata, tensors: tinyLlamaTensors() });
}

function withTwoKeys(k1: string, v1: GgufValueSpec, k2: string, v2: GgufValueSpec): Uint8Array {
  const metadata = tinyLlamaMetadata().map((kv) =>
    kv.key === k1 ? { key: k1, value: v1 } : kv.key === k2 ? { key: k2, value: v2 } : kv,
  );
  return writeGguf({ metadata, tensors: tinyLlamaTensors() });
}

/** The tiny Llama with its tensor list edited. */
function withTensors(edit: (ts: GgufTensorSpec[]) => GgufTensorSpec[]): Uint8Array {
  return writeGguf({ metadata: tinyLlamaMetadata(), tensors: edit(tinyLlamaTensors()) });
}

function reshaped(name: string, dims: number[], type?: number): Uint8Array {
  return withTensors((ts) => ts.map((t) => (t.name === name ? { ...t, dims, type: type ?? t.type } : t)));
}

/** A small file with a handful of keys and one F32 tensor: the base of most reader cases. */
function small(extra: GgufKvSpec[] = [], tensors?: GgufTensorSpec[], over: Partial<GgufWriteSpec> = {}) {
  return writeGguf({
    metadata: [{ key: "general.architecture", value: v.str("llama") }, ...extra],
    tensors: tensors ?? [{ name: "t", dims: [8], type: F32 }],
    ...over,
  });
}

/** Overwrites 8 bytes at `offset` with a little-endian u64. */
function patchU64(bytes: Uint8Array, offset: number, x: bigint): Uint8Array {
  const out = bytes.slice();
  new DataView(out.buffer).setBigUint64(offset, x, true);
  return out;
}

/** Byte offset just past the end of the first occurrence of `needle` (ASCII) in `bytes`. */
function after(bytes: Uint8Array, needle: string): number {
  const n = new TextEncoder().encode(needle);
  outer: for (let i = 0; i + n.length <= bytes.length; i++) {
    for (let j = 0; j < n.length; j++) if (bytes[i + j] !== n[j]) continue outer;
    return i + n.length;
  }
  throw new Error(`"${needle}" not found`);
}

function nested(depth: number): GgufValueSpec {
  let inner: GgufValueSpec = v.arr(T.UINT8, [1]);
  for (let i = 0; i < depth; i++) inner = v.arr(T.ARRAY, [inner as never]);
  return inner;
}

export function malformedCases(): MalformedCase[] {
  const cases: MalformedCase[] = [];
  const reader = (file: string, what: string, error: string, bytes: Uint8Array) =>
    cases.push({ file: `${file}.gguf`, what, layer: "reader", error, bytes });
  const config = (file: string, what: string, error: string, bytes: Uint8Array) =>
    cases.push({ file: `${file}.gguf`, what, layer: "config", error, bytes });
  const tiny = writeGguf(tinyLlamaSpec());

  // --- Header ---
  reader("empty", "a zero-byte file", "not a GGUF file: .* only 0 bytes", new Uint8Array(0));
  reader(
    "bad-magic",
    "GGML magic instead of GGUF",
    "bad magic bytes 47 47 4d 4c",
    small([], [], { magic: 0x4c4d4747 }),
  );
  reader(
    "bad-magic-text",
    "a text file",
    "bad magic bytes 68 65 6c 6c",
    new TextEncoder().encode("hello, this is not a model\n"),
  );
  reader(
    "version-1",
    "GGUF v1 (32-bit counts)",
    "unsupported GGUF version 1 ",
    small([], [], { version: 1 }),
  );
  reader("version-4", "a future GGUF version", "unsupported GGUF version 4 ", small([], [], { version: 4 }));
  reader(
    "version-huge",
    "version 0xFFFFFFFF (big-endian or garbage)",
    "unsupported GGUF version 4294967295",
    small([], [], { version: 0xffffffff }),
  );
  reader(
    "truncated-header",
    "the header cut after the version",
    "not a GGUF file: .* only 8 bytes",
    tiny.slice(0, 8),
  );
  reader("truncated-header-counts", "the header cut inside the kv count", "only 20 bytes", tiny.slice(0, 20));

  // --- Counts ---
  reader(
    "absurd-tensor-count",
    "tensor count 2^62",
    "absurd value for tensor count",
    small([], [], { tensorCountOverride: 2n ** 62n }),
  );
  reader(
    "absurd-tensor-count-fits",
    "tensor count 10^12 (fits a double)",
    "absurd tensor count 1000000000000 or truncated file",
    small([], [], { tensorCountOverride: 10n ** 12n }),
  );
  reader(
    "absurd-kv-count",
    "kv count 2^64-1",
    "absurd value for metadata key/value count",
    small([], [], { kvCountOverride: 2n ** 64n - 1n }),
  );
  reader(
    "absurd-kv-count-fits",
    "kv count 10^9",
    "absurd metadata count 1000000000 or truncated file",
    small([], [], { kvCountOverride: 10n ** 9n }),
  );
  reader(
    "kv-count-too-high",
    "kv count one more than the keys present",
    "truncated file: reading length of metadata key #1",
    small([], [], { kvCountOverride: 2n }),
  );
  reader(
    "tensor-count-too-high",
    "tensor count one more than the tensors present",
    "tensor #1 has an empty name",
    small([], undefined, { tensorCountOverride: 2n }),
  );

  // --- Truncation ---
  const vocab = Array.from({ length: 200 }, (_, i) => `token-${i}`);
  const withVocab = small([{ key: "tokenizer.ggml.tokens", value: v.strs(vocab) }], []);
  reader(
    "truncated-metadata",
    "cut inside the tokenizer.ggml.tokens array",
    'truncated file: reading "tokenizer.ggml.tokens"\\[1\\d\\d\\]',
    withVocab.slice(0, after(withVocab, "token-150") - 3),
  );
  reader(
    "truncated-metadata-early",
    "cut a few bytes into the tokenizer.ggml.tokens array",
    "absurd element count 200 .*truncated or corrupt file",
    withVocab.slice(0, after(withVocab, "token-3")),
  );
  reader(
    "truncated-metadata-counts",
    "cut inside the metadata: the key count no longer fits",
    "absurd metadata count 20 or truncated file",
    tiny.slice(0, after(tiny, "general.name") + 20),
  );
  const longName = small([{ key: "general.name", value: v.str("n".repeat(1000)) }], []);
  reader(
    "truncated-metadata-string",
    "cut inside a string value",
    'truncated file: reading "general.name" needs 1000 bytes',
    longName.slice(0, longName.byteLength - 10),
  );
  reader(
    "truncated-tensor-table",
    "cut inside the tensor infos",
    "truncated file: reading .*tensor",
    tiny.slice(0, after(tiny, "blk.0.attn_v.weight") + 6),
  );
  reader(
    "truncated-data",
    "cut inside the tensor data",
    "lies outside the file",
    tiny.slice(0, tiny.byteLength - 100),
  );
  reader(
    "truncated-data-start",
    "cut right after the tensor table",
    "lies outside the file",
    tiny.slice(0, after(tiny, "blk.1.ffn_down.weight") + 4 + 16 + 4 + 8),
  );

  // --- Strings ---
  const keyLen = small([{ key: "k", value: v.u32(1) }]);
  const firstKeyAt = 24; // magic, version, two u64 counts
  reader(
    "absurd-key-length",
    "a key length of 2^40",
    "absurd length 1099511627776 for metadata key #0",
    patchU64(keyLen, firstKeyAt, 2n ** 40n),
  );
  reader(
    "key-length-over-2p53",
    "a key length of 2^63",
    "absurd value for length of metadata key #0",
    patchU64(keyLen, firstKeyAt, 2n ** 63n),
  );
  reader(
    "absurd-string-length",
    "a string value claiming 2^40 bytes",
    'truncated file: reading "s" needs 1099511627776 bytes',
    small([{ key: "s", value: { type: T.STRING, value: "abc", lengthOverride: 2n ** 40n } }]),
  );
  reader(
    "string-length-past-end",
    "a string value 1 byte longer than the file",
    'truncated file: reading "s" needs 4 bytes',
    small([{ key: "s", value: { type: T.STRING, value: "abc", lengthOverride: 4n } }], []),
  );
  const named = small([], [{ name: "tensor-name", dims: [8], type: F32 }]);
  reader(
    "absurd-tensor-name-length",
    "a tensor name longer than 65535 bytes",
    "absurd length 100000 for tensor #0 name",
    patchU64(named, after(named, "tensor-name") - 11 - 8, 100_000n),
  );
  reader(
    "invalid-utf8-key",
    "a key with bytes ff fe",
    "metadata key #1 at offset \\d+ is not valid UTF-8",
    small([{ key: new Uint8Array([0x67, 0xff, 0xfe]), value: v.u8(1) }]),
  );
  reader(
    "invalid-utf8-value",
    "a string value with a lone continuation byte",
    '"general.name" at offset \\d+ is not valid UTF-8',
    small([{ key: "general.name", value: v.str(new Uint8Array([0x61, 0x80, 0x62])) }]),
  );
  reader(
    "invalid-utf8-overlong",
    "an overlong encoding of '/' (c0 af)",
    "is not valid UTF-8",
    small([{ key: "general.name", value: v.str(new Uint8Array([0xc0, 0xaf])) }]),
  );
  reader(
    "invalid-utf8-tensor-name",
    "a tensor name with a truncated 3-byte sequence",
    "tensor #0 name at offset \\d+ is not valid UTF-8",
    small([], [{ name: new Uint8Array([0x74, 0xe2, 0x82]), dims: [8], type: F32 }]),
  );
  reader(
    "invalid-utf8-token",
    "a vocabulary entry with invalid UTF-8",
    '"tokenizer.ggml.tokens"\\[2\\] at offset \\d+ is not valid UTF-8',
    small([
      {
        key: "tokenizer.ggml.tokens",
        value: v.arr(T.STRING, ["a", "b", new Uint8Array([0xed, 0xa0, 0x80])]),
      },
    ]),
  );
  reader("empty-key", "a zero-length key", "empty metadata key #1", small([{ key: "", value: v.u8(1) }]));
  reader(
    "duplicate-key",
    "the same key twice",
    'duplicate metadata key "general.architecture"',
    small([{ key: "general.architecture", value: v.str("llama") }]),
  );

  // --- Values and arrays ---
  reader(
    "unknown-value-type",
    "value type 13",
    'unknown value type 13 for "x"',
    small([{ key: "x", value: { type: 13, raw: new Uint8Array(8) } }]),
  );
  reader(
    "unknown-value-type-huge",
    "value type 0xFFFFFFFF",
    "unknown value type 4294967295",
    small([{ key: "x", value: { type: 0xffffffff, raw: new Uint8Array(8) } }]),
  );
  reader(
    "unknown-array-type",
    "an array of element type 42",
    'unknown array element type 42 in "x"',
    small([{ key: "x", value: { type: T.ARRAY, elementType: 42, values: [] } }]),
  );
  reader(
    "invalid-bool",
    "a bool byte of 7",
    'invalid bool value 7 for "b"',
    small([{ key: "b", value: { type: T.BOOL, raw: new Uint8Array([7]) } }]),
  );
  const boolArray = new Uint8Array([T.BOOL, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 2]); // element type, count 2, 1, 2
  reader(
    "invalid-bool-in-array",
    "a bool array holding 2",
    'invalid bool value 2 in "b"\\[1\\]',
    small([{ key: "b", value: { type: T.ARRAY, raw: boolArray } }]),
  );
  reader(
    "absurd-array-length",
    "a u8 array claiming 2^40 elements",
    'absurd element count 1099511627776 for "x"',
    small([{ key: "x", value: { ...v.arr(T.UINT8, [1, 2, 3]), countOverride: 2n ** 40n } }]),
  );
  reader(
    "absurd-array-length-u64",
    "a u64 array claiming 2^50 elements",
    'absurd element count 1125899906842624 for "x"',
    small([{ key: "x", value: { ...v.arr(T.UINT64, [1n]), countOverride: 2n ** 50n } }]),
  );
  reader(
    "absurd-string-array-length",
    "a string array claiming 2^52 strings",
    'absurd element count 4503599627370496 for "tokenizer.ggml.tokens"',
    small([{ key: "tokenizer.ggml.tokens", value: { ...v.strs(["a"]), countOverride: 2n ** 52n } }]),
  );
  reader(
    "array-length-over-2p53",
    "an array count of 2^63",
    'absurd value for element count of "x"',
    small([{ key: "x", value: { ...v.arr(T.UINT8, [1]), countOverride: 2n ** 63n } }]),
  );
  reader(
    "absurd-nested-array-length",
    "an array of arrays claiming 2^40 arrays",
    'absurd element count 1099511627776 for "x"',
    small([{ key: "x", value: { ...v.arr(T.ARRAY, []), countOverride: 2n ** 40n } }]),
  );
  reader(
    "nested-arrays-too-deep",
    "arrays nested 8 deep",
    'arrays nested deeper than \\d+ in "x',
    small([{ key: "x", value: nested(8) }]),
  );

  // --- Tensor table ---
  const t8 = (over: Partial<GgufTensorSpec>): GgufTensorSpec[] => [
    { name: "t", dims: [8], type: F32, ...over },
  ];
  reader(
    "unknown-tensor-type",
    "tensor type 99",
    'tensor "t" has unknown tensor type 99',
    small([], t8({ type: 99, data: new Uint8Array(32) })),
  );
  reader(
    "removed-tensor-type",
    "tensor type 4 (Q4_2, removed from GGML)",
    'tensor "t" has unknown tensor type 4',
    small([], t8({ type: 4, data: new Uint8Array(32) })),
  );
  reader(
    "too-many-dims",
    "a tensor with 5 dimensions",
    'tensor "t" has 5 dimensions \\(allowed 1\\.\\.4\\)',
    small([], [{ name: "t", dims: [2, 2, 2, 1, 1], type: F32 }]),
  );
  reader(
    "zero-dims",
    "a tensor with 0 dimensions",
    'tensor "t" has 0 dimensions',
    small([], [{ name: "t", dims: [], type: F32, data: new Uint8Array(4) }]),
  );
  reader(
    "absurd-n-dims",
    "n_dims = 2^31",
    'tensor "t" has 2147483648 dimensions',
    small([], [{ name: "t", dims: [8], type: F32, nDimsOverride: 2 ** 31 }]),
  );
  reader(
    "zero-dim",
    "a dimension of 0",
    'tensor "t" has a zero-sized dimension 1',
    small([], [{ name: "t", dims: [8, 0], type: F32, data: new Uint8Array(0) }]),
  );
  reader(
    "absurd-dim",
    "a dimension of 2^60",
    'absurd value for dimension 1 of tensor "t"',
    small([], [{ name: "t", dims: [8, 2n ** 60n], type: F32, data: new Uint8Array(32) }]),
  );
  reader(
    "element-count-overflow",
    "dims 2^26 x 2^26 x 2^26 (2^78 elements)",
    'tensor "t" has absurd dimensions',
    small([], [{ name: "t", dims: [2 ** 26, 2 ** 26, 2 ** 26], type: F32, data: new Uint8Array(32) }]),
  );
  reader(
    "huge-tensor",
    "a tensor of 2^50 bytes in a small file",
    'tensor "t" data .* lies outside the file',
    small([], [{ name: "t", dims: [2 ** 24, 2 ** 24], type: F32, data: new Uint8Array(32) }]),
  );
  reader(
    "partial-block",
    "a Q8_0 row of 40 elements (blocks are 32)",
    "row length 40 is not a multiple of the Q8_0 block size 32",
    small([], [{ name: "t", dims: [40, 2], type: Q8_0, data: new Uint8Array(96) }]),
  );
  reader(
    "offset-out-of-range",
    "a data offset of 2^40",
    'tensor "t" data \\[\\d+, \\d+\\) lies outside the file',
    small([], t8({ offsetOverride: 2n ** 40n })),
  );
  reader(
    "offset-over-2p53",
    "a data offset of 2^63",
    'absurd value for data offset of tensor "t"',
    small([], t8({ offsetOverride: 2n ** 63n })),
  );
  reader(
    "offset-misaligned",
    "a data offset of 4 with alignment 32",
    'tensor "t" data offset 4 is not a multiple of the alignment 32',
    small([], t8({ offsetOverride: 4n })),
  );
  reader(
    "offset-just-past-end",
    "the last tensor's data running 32 bytes past the end",
    "lies outside the file",
    small(
      [],
      [
        { name: "a", dims: [8], type: F32 },
        { name: "b", dims: [8], type: F32, offsetOverride: 64n },
      ],
    ),
  );
  reader(
    "overlapping-tensors",
    "two tensors at the same offset",
    'tensor "(a|b)" data overlaps tensor "(a|b)"',
    small(
      [],
      [
        { name: "a", dims: [8], type: F32 },
        { name: "b", dims: [8], type: F32, offsetOverride: 0n },
      ],
    ),
  );
  reader(
    "overlapping-tensors-partial",
    "a tensor starting inside the previous one",
    'data overlaps tensor "a"',
    small(
      [],
      [
        { name: "a", dims: [16], type: F32, data: new Uint8Array(64) },
        { name: "b", dims: [8], type: F32, offsetOverride: 32n },
      ],
    ),
  );
  reader(
    "duplicate-tensor",
    "two tensors with the same name",
    'duplicate tensor name "t"',
    small(
      [],
      [
        { name: "t", dims: [8], type: F32 },
        { name: "t", dims: [8], type: F32 },
      ],
    ),
  );
  reader(
    "empty-tensor-name",
    "a tensor with an empty name",
    "tensor #0 has an empty name",
    small([], [{ name: "", dims: [8], type: F32 }]),
  );

  // --- Alignment ---
  const align = (value: GgufValueSpec, alignment = 32) =>
    small([{ key: "general.alignment", value }], undefined, { alignment });
  reader(
    "alignment-zero",
    "general.alignment = 0",
    "general.alignment must be a power of two .* got 0",
    align(v.u32(0)),
  );
  reader(
    "alignment-not-power-of-two",
    "general.alignment = 48",
    "general.alignment must be a power of two .* got 48",
    align(v.u32(48), 48),
  );
  reader(
    "alignment-float",
    "general.alignment = 0.5 (f32)",
    "general.alignment must be a power of two .* got 0.5",
    align(v.f32(0.5)),
  );
  reader(
    "alignment-u64-wraps",
    "general.alignment = 2^32 (u64: wraps to 0 in 32 bits)",
    "general.alignment must be",
    align(v.u64(2n ** 32n)),
  );
  reader("alignment-string", 'general.alignment = "32"', "general.alignment must be", align(v.str("32")));
  reader(
    "alignment-negative",
    "general.alignment = -32 (i32)",
    "general.alignment must be",
    align(v.i32(-32)),
  );
  reader(
    "alignment-huge",
    "general.alignment = 2^30",
    "general.alignment must be a power of two in \\[1, 1048576\\], got 1073741824",
    align(v.u32(2 ** 30), 32),
  );

  // --- Model configuration (the file parses; it is not a Llama hearth can run) ---
  config(
    "missing-architecture",
    "no general.architecture",
    'missing required metadata key "general.architecture"',
    withKey("general.architecture", undefined),
  );
  config(
    "architecture-not-string",
    "general.architecture is a u32",
    'metadata key "general.architecture" should be a string, got number',
    withKey("general.architecture", v.u32(1)),
  );
  config(
    "architecture-unsupported",
    'general.architecture = "mamba"',
    'unsupported architecture "mamba"',
    withKey("general.architecture", v.str("mamba")),
  );
  for (const key of [
    "block_count",
    "embedding_length",
    "feed_forward_length",
    "attention.head_count",
    "attention.layer_norm_rms_epsilon",
    "context_length",
  ]) {
    config(
      `missing-${key.replaceAll(/[._]/g, "-")}`,
      `no llama.${key}`,
      `missing required metadata key "llama.${key}"`,
      withKey(`llama.${key}`, undefined),
    );
  }
  config(
    "block-count-string",
    "llama.block_count is a string",
    'metadata key "llama.block_count" should be an integer, got string',
    withKey("llama.block_count", v.str("2")),
  );
  config(
    "block-count-float",
    "llama.block_count = 2.5",
    'metadata key "llama.block_count" should be an integer, got 2.5',
    withKey("llama.block_count", v.f32(2.5)),
  );
  config(
    "block-count-negative",
    "llama.block_count = -2 (i32)",
    '"llama.block_count" = -2 is out of range',
    withKey("llama.block_count", v.i32(-2)),
  );
  config(
    "block-count-zero",
    "llama.block_count = 0",
    '"llama.block_count" = 0 is out of range',
    withKey("llama.block_count", v.u32(0)),
  );
  config(
    "block-count-absurd",
    "llama.block_count = 2^40 (u64)",
    '"llama.block_count" = 1099511627776 is out of range',
    withKey("llama.block_count", v.u64(2n ** 40n)),
  );
  config(
    "block-count-too-high",
    "llama.block_count = 3 with 2 blocks of tensors",
    'missing tensor "blk.2.attn_norm.weight"',
    withKey("llama.block_count", v.u32(3)),
  );
  config(
    "block-count-too-low",
    "llama.block_count = 1 with 2 blocks of tensors",
    'unexpected tensor "blk.1.attn_norm.weight"',
    withKey("llama.block_count", v.u32(1)),
  );
  config(
    "head-count-array",
    "llama.attention.head_count as a per-layer array",
    '"llama.attention.head_count" is an array',
    withKey("llama.attention.head_count", v.arr(T.UINT32, [2, 2])),
  );
  config(
    "head-count-kv-not-divisor",
    "3 heads, 2 KV heads",
    "head_count 3 is not a multiple of llama.attention.head_count_kv 2",
    withTwoKeys("llama.attention.head_count", v.u32(3), "llama.attention.head_count_kv", v.u32(2)),
  );
  config(
    "embd-not-multiple-of-heads",
    "n_embd 64 with 3 heads of 1 KV head",
    "embedding_length 64 is not a multiple of llama.attention.head_count 3",
    withKey("llama.attention.head_count", v.u32(3)),
  );
  config(
    "rope-dims-odd",
    "llama.rope.dimension_count = 7",
    "rope.dimension_count 7 must be even",
    withKey("llama.rope.dimension_count", v.u32(7)),
  );
  config(
    "rope-dims-too-big",
    "llama.rope.dimension_count = 64 > head_dim 32",
    '"llama.rope.dimension_count" = 64 is out of range \\[2, 32\\]',
    withKey("llama.rope.dimension_count", v.u32(64)),
  );
  config(
    "rope-base-string",
    "llama.rope.freq_base is a string",
    '"llama.rope.freq_base" should be a number, got string',
    withKey("llama.rope.freq_base", v.str("10000")),
  );
  config(
    "rope-base-nan",
    "llama.rope.freq_base = NaN",
    '"llama.rope.freq_base" = NaN is invalid',
    withKey("llama.rope.freq_base", v.f32(Number.NaN)),
  );
  config(
    "rope-scaling-unknown",
    'llama.rope.scaling.type = "dynamic"',
    '"llama.rope.scaling.type" = "dynamic" is not one of',
    withKey("llama.rope.scaling.type", v.str("dynamic")),
  );
  config(
    "rms-eps-negative",
    "rms epsilon = -1e-5",
    'layer_norm_rms_epsilon" = -0.0000\\d+ is invalid: must be in \\(0, 1\\)',
    withKey("llama.attention.layer_norm_rms_epsilon", v.f32(-1e-5)),
  );
  config(
    "rms-eps-string",
    "rms epsilon is a string",
    'layer_norm_rms_epsilon" should be a number',
    withKey("llama.attention.layer_norm_rms_epsilon", v.str("1e-5")),
  );
  config(
    "context-length-zero",
    "llama.context_length = 0",
    '"llama.context_length" = 0 is out of range',
    withKey("llama.context_length", v.u32(0)),
  );
  config(
    "moe",
    "llama.expert_count = 8",
    "mixture-of-experts models .* are not supported",
    withKey("llama.expert_count", v.u32(8)),
  );
  config(
    "vocab-size-mismatch",
    "llama.vocab_size 17, token_embd has 16 rows",
    "llama.vocab_size 17 does not match token_embd.weight's 16 rows",
    withKey("llama.vocab_size", v.u32(17)),
  );

  // Tokenizer arrays.
  config(
    "tokens-missing",
    "no tokenizer.ggml.tokens",
    'missing required metadata key "tokenizer.ggml.tokens"',
    withKey("tokenizer.ggml.tokens", undefined),
  );
  config(
    "tokens-not-strings",
    "tokenizer.ggml.tokens is a u32 array",
    '"tokenizer.ggml.tokens" should be an array of strings',
    withKey(
      "tokenizer.ggml.tokens",
      v.arr(
        T.UINT32,
        tokens.map((_, i) => i),
      ),
    ),
  );
  config(
    "tokens-too-few",
    "15 tokens, 16 embedding rows",
    "tokenizer.ggml.tokens has 15 entries but token_embd.weight has 16 rows",
    withKey("tokenizer.ggml.tokens", v.strs(tokens.slice(0, 15))),
  );
  config(
    "token-type-length-mismatch",
    "token_type has 15 entries, tokens 16",
    "tokenizer.ggml.token_type has 15 entries but tokenizer.ggml.tokens has 16: mismatched",
    withKey("tokenizer.ggml.token_type", v.arr(T.INT32, new Array(15).fill(1))),
  );
  config(
    "scores-length-mismatch",
    "scores has 17 entries, tokens 16",
    "tokenizer.ggml.scores has 17 entries .* mismatched",
    withKey("tokenizer.ggml.scores", v.arr(T.FLOAT32, new Array(17).fill(0))),
  );
  config(
    "scores-wrong-type",
    "scores is a string array",
    '"tokenizer.ggml.scores" should be an array of floats',
    withKey("tokenizer.ggml.scores", v.strs(tokens)),
  );
  config(
    "merges-wrong-type",
    "merges is an int array",
    '"tokenizer.ggml.merges" should be an array of strings',
    withKey("tokenizer.ggml.merges", v.arr(T.INT32, [1, 2])),
  );
  config(
    "tokenizer-model-missing",
    "no tokenizer.ggml.model",
    'missing required metadata key "tokenizer.ggml.model"',
    withKey("tokenizer.ggml.model", undefined),
  );
  config(
    "bos-out-of-range",
    "bos_token_id = 16 with 16 tokens",
    '"tokenizer.ggml.bos_token_id" = 16 is not a token id',
    withKey("tokenizer.ggml.bos_token_id", v.u32(16)),
  );
  config(
    "eos-wrong-type",
    "eos_token_id is a string",
    '"tokenizer.ggml.eos_token_id" should be an integer, got string',
    withKey("tokenizer.ggml.eos_token_id", v.str("</s>")),
  );

  // Tensors.
  config(
    "missing-token-embd",
    "no token_embd.weight",
    'missing tensor "token_embd.weight"',
    withTensors((ts) => ts.filter((t) => t.name !== "token_embd.weight")),
  );
  config(
    "missing-output-norm",
    "no output_norm.weight",
    'missing tensor "output_norm.weight" \\(expected shape \\[64\\]',
    withTensors((ts) => ts.filter((t) => t.name !== "output_norm.weight")),
  );
  config(
    "missing-ffn-up",
    "no blk.1.ffn_up.weight",
    'missing tensor "blk.1.ffn_up.weight" \\(expected shape \\[64, 96\\]',
    withTensors((ts) => ts.filter((t) => t.name !== "blk.1.ffn_up.weight")),
  );
  config(
    "missing-attn-q",
    "no blk.0.attn_q.weight",
    'missing tensor "blk.0.attn_q.weight"',
    withTensors((ts) => ts.filter((t) => t.name !== "blk.0.attn_q.weight")),
  );
  config(
    "shape-attn-k",
    "attn_k as [64, 64] (MHA-sized) with 1 KV head",
    'tensor "blk.0.attn_k.weight" has shape \\[64, 64\\], expected \\[64, 32\\]',
    reshaped("blk.0.attn_k.weight", [64, 64]),
  );
  config(
    "shape-ffn-down-transposed",
    "ffn_down stored as [64, 96]",
    'tensor "blk.1.ffn_down.weight" has shape \\[64, 96\\], expected \\[96, 64\\]',
    reshaped("blk.1.ffn_down.weight", [64, 96]),
  );
  config(
    "shape-norm-2d",
    "attn_norm as [64, 1]",
    'tensor "blk.0.attn_norm.weight" has shape \\[64, 1\\], expected \\[64\\]',
    reshaped("blk.0.attn_norm.weight", [64, 1]),
  );
  config(
    "shape-token-embd-1d",
    "token_embd as a vector",
    'tensor "token_embd.weight" has shape \\[1024\\], expected \\[64, n_vocab\\]',
    reshaped("token_embd.weight", [1024]),
  );
  config(
    "shape-output",
    "output.weight as [64, 15]",
    'tensor "output.weight" has shape \\[64, 15\\], expected \\[64, 16\\]',
    withTensors((ts) => [...ts, { name: "output.weight", dims: [64, 15], type: Q4_0 }]),
  );
  config(
    "norm-quantized",
    "ffn_norm stored as Q8_0",
    'tensor "blk.0.ffn_norm.weight" has type Q8_0, expected F32 or F16',
    reshaped("blk.0.ffn_norm.weight", [64], Q8_0),
  );
  config(
    "type-not-computable",
    "attn_q as MXFP4 (parses, no kernel)",
    'tensor "blk.0.attn_q.weight" has type MXFP4, which hearth cannot compute',
    reshaped("blk.0.attn_q.weight", [64, 64], MXFP4),
  );
  config(
    "unexpected-tensor",
    "an extra tensor nothing uses",
    'unexpected tensor "blk.0.attn_sinks.weight"',
    withTensors((ts) => [...ts, { name: "blk.0.attn_sinks.weight", dims: [4], type: F32 }]),
  );
  return cases;
}

export function writeCorpus(outDir: string): MalformedCase[] {
  mkdirSync(outDir, { recursive: true });
  for (const f of readdirSync(outDir)) if (f.endsWith(".gguf")) rmSync(join(outDir, f));
  const cases = malformedCases();
  const manifest: Record<string, { layer: string; error: string; what: string }> = {};
  for (const c of cases) {
    if (manifest[c.file] !== undefined) throw new Error(`duplicate corpus file ${c.file}`);
    writeFileSync(join(outDir, c.file), c.bytes);
    manifest[c.file] = { layer: c.layer, error: c.error, what: c.what };
  }
  writeFileSync(join(outDir, "expected.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  return cases;
}

if (import.meta.main) {
  const outDir = resolve(process.argv[2] ?? join(import.meta.dir, "..", "test", "fixtures", "malformed"));
  const cases = writeCorpus(outDir);
  const totalBytes = cases.reduce((n, c) => n + c.bytes.byteLength, 0);
  console.log(
    `wrote ${cases.length} malformed GGUF files (${(totalBytes / 1024).toFixed(0)} KiB) to ${outDir}`,
  );
}
