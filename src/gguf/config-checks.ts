// Typed, range-checked access to GGUF metadata and tensors for the model configuration: every
// error names the key, or the tensor and its wrong shape or type.

import type { GgufFile, GgufTensorInfo, GgufValue } from "./reader.ts";
import { GgufError } from "./reader.ts";
import { computableGgmlTypes, ggmlTypes } from "./types.ts";

/** A GGUF file that parses but does not describe a model hearth can run. */
export class ModelConfigError extends GgufError {
  override name = "ModelConfigError";
}

const SPECIAL_TOKEN_KEYS = [
  "bos_token_id",
  "eos_token_id",
  "eot_token_id",
  "eom_token_id",
  "unknown_token_id",
  "padding_token_id",
  "separator_token_id",
  "cls_token_id",
  "mask_token_id",
];

/** Typed, range-checked metadata access whose errors name the key. */
export class Keys {
  constructor(private readonly md: Map<string, GgufValue>) {}

  private describe(x: GgufValue): string {
    if (Array.isArray(x) || ArrayBuffer.isView(x)) return "an array";
    return `${typeof x} ${String(x)}`;
  }

  has(key: string): boolean {
    return this.md.has(key);
  }

  int(key: string, min: number, max: number, fallback?: number): number {
    const x = this.md.get(key);
    if (x === undefined) {
      if (fallback !== undefined) return fallback;
      throw new ModelConfigError(`missing required metadata key "${key}"`);
    }
    if (Array.isArray(x) || ArrayBuffer.isView(x)) {
      throw new ModelConfigError(`metadata key "${key}" is an array; per-layer values are not supported`);
    }
    if (typeof x !== "number" && typeof x !== "bigint") {
      throw new ModelConfigError(`metadata key "${key}" should be an integer, got ${this.describe(x)}`);
    }
    if (typeof x === "number" && !Number.isInteger(x)) {
      throw new ModelConfigError(`metadata key "${key}" should be an integer, got ${x}`);
    }
    if (x < min || x > max) {
      throw new ModelConfigError(`metadata key "${key}" = ${x} is out of range [${min}, ${max}]`);
    }
    return Number(x);
  }

  float(key: string, check: (x: number) => boolean, rule: string, fallback?: number): number {
    const x = this.md.get(key);
    if (x === undefined) {
      if (fallback !== undefined) return fallback;
      throw new ModelConfigError(`missing required metadata key "${key}"`);
    }
    if (typeof x !== "number") {
      throw new ModelConfigError(`metadata key "${key}" should be a number, got ${this.describe(x)}`);
    }
    if (!Number.isFinite(x) || !check(x)) {
      throw new ModelConfigError(`metadata key "${key}" = ${x} is invalid: must be ${rule}`);
    }
    return x;
  }

  string(key: string, fallback?: string): string {
    const x = this.md.get(key);
    if (x === undefined) {
      if (fallback !== undefined) return fallback;
      throw new ModelConfigError(`missing required metadata key "${key}"`);
    }
    if (typeof x !== "string") {
      throw new ModelConfigError(`metadata key "${key}" should be a string, got ${this.describe(x)}`);
    }
    return x;
  }

  /** Length of an array value, checking the element kind. */
  arrayLength(key: string, kind: "string" | "float" | "int"): number | undefined {
    const x = this.md.get(key);
    if (x === undefined) return undefined;
    const ok =
      kind === "string"
        ? Array.isArray(x) && x.every((e) => typeof e === "string")
        : kind === "float"
          ? x instanceof Float32Array || x instanceof Float64Array
          : x instanceof Int32Array ||
            x instanceof Uint32Array ||
            x instanceof Int16Array ||
            x instanceof Uint16Array ||
            x instanceof Int8Array ||
            x instanceof Uint8Array;
    if (!ok) throw new ModelConfigError(`metadata key "${key}" should be an array of ${kind}s`);
    return (x as ArrayLike<unknown>).length;
  }
}

export function shapeText(dims: readonly number[]): string {
  return `[${dims.join(", ")}]`;
}

/** Finds and checks the tensors one expected-shape table names. */
export class TensorChecks {
  readonly used = new Set<string>();

  constructor(
    private readonly file: GgufFile,
    private readonly requireComputable: boolean,
  ) {}

  private check(t: GgufTensorInfo, shape: readonly number[], meaning: string, vector: boolean): void {
    const same = t.dims.length === shape.length && t.dims.every((d, i) => d === shape[i]);
    if (!same) {
      throw new ModelConfigError(
        `tensor "${t.name}" has shape ${shapeText(t.dims)}, expected ${shapeText(shape)} (${meaning})`,
      );
    }
    // Norm weights, biases and RoPE factors are used elementwise: float types only.
    if (vector && t.typeName !== "F32" && t.typeName !== "F16") {
      throw new ModelConfigError(`tensor "${t.name}" has type ${t.typeName}, expected F32 or F16`);
    }
    if (this.requireComputable && !computableGgmlTypes.has(t.typeId)) {
      const names = [...computableGgmlTypes].map((id) => ggmlTypes.get(id)?.name).join(", ");
      throw new ModelConfigError(
        `tensor "${t.name}" has type ${t.typeName}, which hearth cannot compute with (supported: ${names})`,
      );
    }
  }

  required(name: string, shape: readonly number[], meaning: string): GgufTensorInfo {
    const t = this.file.tensorsByName.get(name);
    if (t === undefined) {
      throw new ModelConfigError(`missing tensor "${name}" (expected shape ${shapeText(shape)}, ${meaning})`);
    }
    this.check(t, shape, meaning, shape.length === 1);
    this.used.add(name);
    return t;
  }

  optional(name: string, shape: readonly number[], meaning: string): GgufTensorInfo | undefined {
    const t = this.file.tensorsByName.get(name);
    if (t === undefined) return undefined;
    this.check(t, shape, meaning, shape.length === 1);
    this.used.add(name);
    return t;
  }
}

export function checkVocabulary(k: Keys, vocabSize: number): void {
  const tokens = k.arrayLength("tokenizer.ggml.tokens", "string");
  if (tokens === undefined)
    throw new ModelConfigError(`missing required metadata key "tokenizer.ggml.tokens"`);
  if (tokens !== vocabSize) {
    throw new ModelConfigError(
      `tokenizer.ggml.tokens has ${tokens} entries but token_embd.weight has ${vocabSize} rows`,
    );
  }
  for (const [key, kind] of [
    ["tokenizer.ggml.scores", "float"],
    ["tokenizer.ggml.token_type", "int"],
  ] as const) {
    const n = k.arrayLength(key, kind);
    if (n !== undefined && n !== tokens) {
      throw new ModelConfigError(
        `${key} has ${n} entries but tokenizer.ggml.tokens has ${tokens}: mismatched tokenizer arrays`,
      );
    }
  }
  k.arrayLength("tokenizer.ggml.merges", "string");
  k.string("tokenizer.ggml.model");
  for (const name of SPECIAL_TOKEN_KEYS) {
    const key = `tokenizer.ggml.${name}`;
    if (!k.has(key)) continue;
    // Some converters write -1 (as int32 or as u32 0xFFFFFFFF) for "no such token".
    const id = k.int(key, -1, 0xffff_ffff);
    if (id !== -1 && id !== 0xffff_ffff && id >= vocabSize) {
      throw new ModelConfigError(
        `metadata key "${key}" = ${id} is not a token id (vocabulary has ${vocabSize})`,
      );
    }
  }
}
