// NativeKvTiers over bun:ffi (zig/kv/abi.zig): prefix sharing, SSD tiers and session files for one model handle.
import type { Pointer } from "bun:ffi";
import { quoteUntrusted } from "../untrusted.ts";
import { check, type HearthLib, lastError, NativeError, nativeAbi } from "./lib.ts";
import { kvPageTokens } from "./limits.ts";
import { KvCorruptError, type KvTierOptions, type KvTierStats, type NativeKvTiers } from "./model-api.ts";

/** KvTierStats from the native record: the prefix cache's fields, then its cold tier's (`cold`). */
const TIER_FIELDS = {
  lookups: "lookups",
  tokensReused: "tokens_reused",
  pagesShared: "pages_shared",
  pagesCopied: "pages_copied",
  hotHits: "hot_hits",
  coldHits: "cold_hits",
  coldMisses: "cold_misses",
  spilled: "spilled",
  dropped: "dropped",
  reclaimed: "reclaimed",
  hotPages: "hot_pages",
  hotCapacityPages: "hot_capacity_pages",
  entries: "entries",
  manifestEntriesLoaded: "manifest_entries_loaded",
  manifestRejected: "manifest_rejected",
} as const;
const COLD_FIELDS = {
  coldWritesQueued: "writes_queued",
  coldWritesOk: "writes_ok",
  coldWritesFailed: "writes_failed",
  coldWritesDropped: "writes_dropped",
  coldBytesWritten: "bytes_written",
  coldReadsOk: "reads_ok",
  coldReadsBad: "reads_bad",
  coldBytesRead: "bytes_read",
  coldSlotsUsed: "slots_used",
  coldSlotsTotal: "slots_total",
  coldFaultsEnospc: "faults_enospc",
  coldFaultsReadonly: "faults_readonly",
  coldFaultsIo: "faults_io",
  coldFaultsMissing: "faults_missing",
  coldFaultsTruncated: "faults_truncated",
  coldFaultsChecksum: "faults_checksum",
} as const;
// Every KvTierStats field is read: one missing from both tables fails to compile.
const ALL_FIELDS: Record<keyof KvTierStats, string> = { ...TIER_FIELDS, ...COLD_FIELDS };
void ALL_FIELDS;

/** Reads the native prefix-cache record at the offsets libhearth reported. */
function readTierStats(view: DataView): KvTierStats {
  const { tierStats, coldStats } = nativeAbi().layouts;
  const out = {} as KvTierStats;
  for (const [k, f] of Object.entries(TIER_FIELDS))
    out[k as keyof KvTierStats] = Number(view.getBigUint64(tierStats.offset[f], true));
  const cold = tierStats.offset.cold;
  for (const [k, f] of Object.entries(COLD_FIELDS))
    out[k as keyof KvTierStats] = Number(view.getBigUint64(cold + coldStats.offset[f], true));
  return out;
}

const encoder = new TextEncoder();

/** Token ids as the Int32Array the native side reads (reuses `scratch` when it is large enough). */
function int32Tokens(tokens: ArrayLike<number>, scratch: { buf: Int32Array }): Int32Array {
  if (tokens instanceof Int32Array) return tokens;
  if (scratch.buf.length < tokens.length)
    scratch.buf = new Int32Array(Math.max(tokens.length, 2 * scratch.buf.length));
  const out = scratch.buf.subarray(0, tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as number;
    if (!Number.isInteger(t) || t < 0 || t > 0x7fff_ffff)
      throw new RangeError(`token ${i} = ${t} is not a valid id`);
    out[i] = t;
  }
  return out;
}

function nonNegativeInt(name: string, v: number): bigint {
  if (!Number.isSafeInteger(v) || v < 0)
    throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
  return BigInt(v);
}

/**
 * The KV-tier calls for the model behind `handle()`. `modelTag` roots the hash chains and is
 * written into session files and the manifest: files of another model (or KV type) are refused.
 */
export function createKvTiers(
  lib: HearthLib,
  handle: () => Pointer,
  modelTag: bigint,
  maxTokens: number,
): NativeKvTiers {
  const scratch = { buf: new Int32Array(1024) };
  const pageTokens = kvPageTokens();
  const u32 = new Uint32Array(2);
  const u64 = new BigUint64Array(1);
  const statsBuf = new BigUint64Array(Math.ceil(nativeAbi().layouts.tierStats.sizeBytes / 8));
  const statsView = new DataView(statsBuf.buffer);
  return {
    kvTierOpen(opts: KvTierOptions): void {
      const hot = nonNegativeInt("hotBudgetBytes", opts.hotBudgetBytes);
      if (hot === 0n) throw new RangeError("hotBudgetBytes must be positive");
      const cold = nonNegativeInt("coldMaxBytes", opts.coldMaxBytes ?? 0);
      const dir = encoder.encode(opts.dir ?? "");
      if (cold > 0n && dir.length === 0) throw new RangeError("coldMaxBytes needs a dir");
      check(
        lib.hearth_kv_tier_open(handle(), dir.length > 0 ? dir : null, dir.length, hot, cold, modelTag),
        `kvTierOpen ${opts.dir ?? "(RAM only)"}`,
      );
    },
    seqCreateWithPrefix(tokens: ArrayLike<number>): { seqId: number; reusedTokens: number } {
      const t = int32Tokens(tokens, scratch);
      u32[0] = 0;
      const seqId = check(
        lib.hearth_seq_create_prefix(handle(), t.length > 0 ? t : null, t.length, u32),
        "seqCreateWithPrefix",
      );
      return { seqId, reusedTokens: u32[0] as number };
    },
    seqPublish(seqId: number, tokens: ArrayLike<number>): number {
      const t = int32Tokens(tokens, scratch);
      return check(lib.hearth_seq_publish(handle(), seqId, t.length > 0 ? t : null, t.length), "seqPublish");
    },
    kvTierSpill(tokens: ArrayLike<number>, fromTokens: number): number {
      const t = int32Tokens(tokens, scratch);
      const from = Number(nonNegativeInt("fromTokens", fromTokens));
      return check(
        lib.hearth_kv_tier_spill(handle(), t.length > 0 ? t : null, t.length, Math.min(from, 0xffff_ffff)),
        "kvTierSpill",
      );
    },
    kvTierReclaimable(): number {
      return check(lib.hearth_kv_tier_reclaimable(handle()), "kvTierReclaimable");
    },
    kvTierCheckpoint(): number {
      return check(lib.hearth_kv_tier_checkpoint(handle()), "kvTierCheckpoint");
    },
    kvTierPersist(): number {
      return check(lib.hearth_kv_tier_persist(handle()), "kvTierPersist");
    },
    kvTierStats(): KvTierStats {
      check(lib.hearth_kv_tier_stats(handle(), statsBuf), "kvTierStats");
      return readTierStats(statsView);
    },
    kvModelTag: modelTag,
    kvRecordBytes(): number {
      return check(lib.hearth_kv_record_bytes(handle()), "kvRecordBytes");
    },
    kvChain(tokens: ArrayLike<number>): { keys: BigUint64Array; localPages: number } {
      const t = int32Tokens(tokens, scratch);
      const keys = new BigUint64Array(Math.max(1, Math.floor(t.length / pageTokens)));
      u32[0] = 0;
      const n = check(
        lib.hearth_kv_chain(handle(), t.length > 0 ? t : null, t.length, keys, keys.length, u32),
        "kvChain",
      );
      return { keys: keys.subarray(0, n), localPages: u32[0] as number };
    },
    kvPageExport(tokens: ArrayLike<number>, page: number, out: Uint8Array): void {
      const t = int32Tokens(tokens, scratch);
      const p = Number(nonNegativeInt("page", page));
      check(
        lib.hearth_kv_page_export(handle(), t.length > 0 ? t : null, t.length, p, out, out.length),
        `kvPageExport ${p}`,
      );
    },
    kvPageImport(tokens: ArrayLike<number>, page: number, record: Uint8Array): boolean {
      const t = int32Tokens(tokens, scratch);
      const p = Number(nonNegativeInt("page", page));
      const rc = lib.hearth_kv_page_import(
        handle(),
        t.length > 0 ? t : null,
        t.length,
        p,
        record.length > 0 ? record : null,
        record.length,
      );
      if (rc === nativeAbi().limits.status.corrupt) throw new KvCorruptError(`kvPageImport: ${lastError()}`);
      return check(rc, `kvPageImport ${p}`) === 1;
    },
    kvPageUnpin(tokens: ArrayLike<number>, page: number, used: boolean): boolean {
      const t = int32Tokens(tokens, scratch);
      const p = Number(nonNegativeInt("page", page));
      const rc = lib.hearth_kv_page_unpin(handle(), t.length > 0 ? t : null, t.length, p, used ? 1 : 0);
      return check(rc, `kvPageUnpin ${p}`) === 1;
    },
    seqSave(seqId: number, tokens: ArrayLike<number>, path: string): number {
      const t = int32Tokens(tokens, scratch);
      const p = encoder.encode(path);
      check(
        lib.hearth_seq_save(handle(), seqId, t.length > 0 ? t : null, t.length, modelTag, p, p.length, u64),
        `seqSave ${quoteUntrusted(path)}`,
      );
      return Number(u64[0]);
    },
    seqRestore(path: string): { seqId: number; tokens: number[] } {
      const p = encoder.encode(path);
      const out = new Int32Array(maxTokens);
      u32[0] = 0;
      const rc = lib.hearth_seq_restore(handle(), p, p.length, modelTag, out, out.length, u32);
      if (rc === nativeAbi().limits.status.corrupt) throw new KvCorruptError(`seqRestore: ${lastError()}`);
      if (rc < 0) throw new NativeError(rc, `seqRestore: ${lastError()}`);
      return { seqId: rc, tokens: Array.from(out.subarray(0, u32[0] as number)) };
    },
  };
}
