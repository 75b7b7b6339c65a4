// The numbers and layouts libhearth owns (zig/limits.zig), read once when the library loads: the
// KV page size, the bounds of the native options, the status codes, and each extern struct's
// size, field names and offsets. A struct whose fields differ from what this side writes is a
// load error, so no offset, limit or status code is retyped in TypeScript.

/** Status codes of zig/status.zig, by name, in its declaration order (their values come from Zig). */
const STATUS_NAMES = [
  "ok",
  "invalid_argument",
  "null_pointer",
  "misaligned",
  "out_of_range",
  "out_of_memory",
  "kv_full",
  "io_error",
  "bad_model",
  "unsupported",
  "corrupt",
  "internal",
] as const;
export type StatusName = (typeof STATUS_NAMES)[number];

export interface NativeLimits {
  /** Tokens in one KV page. */
  kvPageTokens: number;
  maxThreads: number;
  maxKvPages: number;
  maxBatchTokens: number;
  maxSequences: number;
  maxLayers: number;
  status: Readonly<Record<StatusName, number>>;
}

type FieldType = "u32" | "i32" | "f32" | "u64" | "u64x4" | "struct";

/** The extern structs this side encodes or decodes: zig/limits.zig `layouts` id, fields in order. */
const STRUCTS = {
  hparams: {
    id: 0,
    fields: {
      n_vocab: "u32",
      n_embd: "u32",
      n_layer: "u32",
      n_head: "u32",
      n_head_kv: "u32",
      head_dim: "u32",
      n_ff: "u32",
      n_ctx_train: "u32",
      rope_dims: "u32",
      rope_type: "u32",
      rope_freq_base: "f32",
      rope_freq_scale: "f32",
      rms_eps: "f32",
      arch: "u32",
      n_swa: "u32",
      swa_pattern: "u32",
      rope_freq_base_swa: "f32",
      rope_freq_scale_swa: "f32",
      q_scale: "f32",
      embd_scale: "f32",
      no_rope_layer_step: "u32",
    },
  },
  options: {
    id: 1,
    fields: {
      n_threads: "u32",
      kv_pages: "u32",
      kv_type: "u32",
      max_batch_tokens: "u32",
      max_sequences: "u32",
      reserved: "u32",
    },
  },
  tensorDesc: {
    id: 2,
    fields: { offset: "u64", size_bytes: "u64", type: "u32", n_dims: "u32", dims: "u64x4" },
  },
  kvStats: {
    id: 3,
    fields: {
      page_tokens: "u32",
      pages_total: "u32",
      pages_free: "u32",
      sequences_active: "u32",
      page_size_bytes: "u64",
    },
  },
  tierStats: {
    id: 4,
    fields: {
      lookups: "u64",
      tokens_reused: "u64",
      pages_shared: "u64",
      pages_copied: "u64",
      hot_hits: "u64",
      cold_hits: "u64",
      cold_misses: "u64",
      spilled: "u64",
      dropped: "u64",
      reclaimed: "u64",
      hot_pages: "u64",
      hot_capacity_pages: "u64",
      entries: "u64",
      manifest_entries_loaded: "u64",
      manifest_rejected: "u64",
      cold: "struct",
    },
  },
  replayResult: {
    id: 5,
    fields: { accesses: "u64", lru_hits: "u64", arc_hits: "u64", capacity_pages: "u64" },
  },
  coldStats: {
    id: 6,
    fields: {
      writes_queued: "u64",
      writes_ok: "u64",
      writes_failed: "u64",
      writes_dropped: "u64",
      bytes_written: "u64",
      reads_ok: "u64",
      reads_bad: "u64",
      bytes_read: "u64",
      slots_used: "u64",
      slots_total: "u64",
      faults_enospc: "u64",
      faults_readonly: "u64",
      faults_io: "u64",
      faults_missing: "u64",
      faults_truncated: "u64",
      faults_checksum: "u64",
    },
  },
  poolStats: {
    id: 7,
    fields: {
      parallel_jobs: "u64",
      parallel_ns: "u64",
      parallel_tasks: "u64",
      caller_tasks: "u64",
      wait_ns: "u64",
      stalls: "u64",
      idle_windows: "u64",
      solo_periods: "u64",
      solo_jobs: "u64",
      solo_ns: "u64",
    },
  },
} as const satisfies Record<string, { id: number; fields: Record<string, FieldType> }>;

export type StructName = keyof typeof STRUCTS;

/** One extern struct as Zig lays it out: its size and each field's byte offset. */
export interface Layout<S extends StructName = StructName> {
  sizeBytes: number;
  offset: Readonly<Record<keyof (typeof STRUCTS)[S]["fields"], number>>;
}

/** The symbols this module reads (a subset of the library's table). */
export interface AbiSymbols {
  hearth_limits(out: Int32Array): number;
  hearth_layout(id: number, out: Uint32Array, cap: number): number;
  hearth_layout_names(id: number, out: Uint8Array, cap: number): number;
}

export interface Abi {
  limits: NativeLimits;
  layouts: { [S in StructName]: Layout<S> };
}

/** Byte sizes of the field types this side writes; a nested struct's size is Zig's to say. */
const FIELD_BYTES: Record<Exclude<FieldType, "struct">, number> = {
  u32: 4,
  i32: 4,
  f32: 4,
  u64: 8,
  u64x4: 32,
};

/**
 * Reads the limits and checks every layout against this side's field lists. Throws (with the
 * struct and field named) when the library was built from other sources.
 */
export function readAbi(lib: AbiSymbols): Abi {
  const raw = new Int32Array(64);
  if (lib.hearth_limits(raw) !== 0) throw new Error("hearth_limits failed");
  const [size, pageTokens, maxThreads, maxKvPages, maxBatchTokens, maxSequences, maxLayers] = raw;
  const statusAt = 7;
  if (size !== (statusAt + STATUS_NAMES.length) * 4)
    throw new Error(
      `the limits struct is ${size} bytes, this code reads ${(statusAt + STATUS_NAMES.length) * 4}`,
    );
  const status = Object.fromEntries(STATUS_NAMES.map((n, i) => [n, raw[statusAt + i] as number])) as Record<
    StatusName,
    number
  >;
  const limits: NativeLimits = {
    kvPageTokens: pageTokens as number,
    maxThreads: maxThreads as number,
    maxKvPages: maxKvPages as number,
    maxBatchTokens: maxBatchTokens as number,
    maxSequences: maxSequences as number,
    maxLayers: maxLayers as number,
    status,
  };
  const layouts = Object.fromEntries(
    (Object.keys(STRUCTS) as StructName[]).map((name) => [name, readLayout(lib, name)]),
  ) as Abi["layouts"];
  return { limits, layouts };
}

function readLayout(lib: AbiSymbols, name: StructName): Layout {
  const spec = STRUCTS[name];
  const nameBuf = new Uint8Array(1024);
  const n = lib.hearth_layout_names(spec.id, nameBuf, nameBuf.length);
  const zigNames = n < 0 ? [] : new TextDecoder().decode(nameBuf.subarray(0, n)).split(",");
  const ours = Object.keys(spec.fields);
  if (zigNames.join(",") !== ours.join(","))
    throw new Error(
      `extern struct ${name}: libhearth has fields ${zigNames.join(", ")}; this code writes ${ours.join(", ")}`,
    );
  const nums = new Uint32Array(ours.length + 1);
  if (lib.hearth_layout(spec.id, nums, nums.length) !== ours.length + 1)
    throw new Error(`extern struct ${name}: libhearth gave no layout`);
  const offset: Record<string, number> = {};
  const types = Object.values(spec.fields) as FieldType[];
  ours.forEach((f, i) => {
    offset[f] = nums[i + 1] as number;
    const t = types[i] as FieldType;
    if (t === "struct") return;
    const align = Math.min(8, FIELD_BYTES[t]);
    if ((offset[f] as number) % align !== 0 || (offset[f] as number) + FIELD_BYTES[t] > (nums[0] as number))
      throw new Error(`extern struct ${name}: field ${f} at offset ${offset[f]} does not hold a ${t}`);
  });
  return { sizeBytes: nums[0] as number, offset } as Layout;
}
