// A draft model for tests, made from a model file with hearth's own GGUF writer: the same
// metadata and tokenizer with only the first `layers` blocks (an early-exit copy of the model), so
// it shares the target's vocabulary and agrees with it often but not always.
import { type GgufValue, readGguf } from "../../src/gguf/index.ts";
import { GgufValueType } from "../../src/gguf/types.ts";
import {
  type GgufKvSpec,
  type GgufTensorSpec,
  type GgufValueSpec,
  v,
  writeGguf,
} from "../../src/gguf/writer.ts";

function arrayType(x: GgufValue): number | null {
  if (x instanceof Int32Array) return GgufValueType.INT32;
  if (x instanceof Uint32Array) return GgufValueType.UINT32;
  if (x instanceof Float32Array) return GgufValueType.FLOAT32;
  if (x instanceof Float64Array) return GgufValueType.FLOAT64;
  if (x instanceof Int8Array) return GgufValueType.INT8;
  if (x instanceof Uint8Array) return GgufValueType.UINT8;
  if (x instanceof Int16Array) return GgufValueType.INT16;
  if (x instanceof Uint16Array) return GgufValueType.UINT16;
  return null;
}

/** A metadata value as the writer takes it (integers as u32/i32, other numbers as f32). */
function specOf(key: string, x: GgufValue): GgufValueSpec {
  if (typeof x === "string") return v.str(x);
  if (typeof x === "boolean") return v.bool(x);
  if (typeof x === "bigint") return v.u64(x);
  if (typeof x === "number") return Number.isInteger(x) ? (x < 0 ? v.i32(x) : v.u32(x)) : v.f32(x);
  if (Array.isArray(x) && x.every((e) => typeof e === "string")) return v.strs(x as string[]);
  const t = arrayType(x);
  if (t !== null) return v.arr(t, x as ArrayLike<number>);
  throw new Error(`draft-pair: metadata key ${key} has a value this copier does not handle`);
}

/** Writes to `dst` a copy of the model at `src` with only its first `layers` blocks. */
export async function writeEarlyExitDraft(src: string, dst: string, layers: number): Promise<void> {
  const file = readGguf(src);
  const arch = file.metadata.get("general.architecture");
  const bytes = new Uint8Array(await Bun.file(src).arrayBuffer());
  const metadata: GgufKvSpec[] = [];
  for (const [key, value] of file.metadata) {
    metadata.push({ key, value: key === `${String(arch)}.block_count` ? v.u32(layers) : specOf(key, value) });
  }
  const tensors: GgufTensorSpec[] = [];
  for (const t of file.tensors) {
    const block = /^blk\.(\d+)\./.exec(t.name);
    if (block !== null && Number(block[1]) >= layers) continue;
    tensors.push({
      name: t.name,
      dims: t.dims,
      type: t.typeId,
      data: bytes.subarray(t.fileOffset, t.fileOffset + t.sizeBytes),
    });
  }
  await Bun.write(dst, writeGguf({ metadata, tensors, alignment: file.alignment }));
}
