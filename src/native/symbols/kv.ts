// FFI symbols of zig/root.zig's KV-tier section (zig/kv/abi.zig: prefix sharing, SSD tier, session files).
import { FFIType } from "bun:ffi";

export const kvSymbols = {
  // handle, dir*, dir_len, hot_budget_bytes, cold_max_bytes, model_tag
  hearth_kv_tier_open: {
    args: [FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.u64, FFIType.u64, FFIType.u64],
    returns: FFIType.i32,
  },
  hearth_kv_tier_stats: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  hearth_kv_tier_persist: { args: [FFIType.ptr], returns: FFIType.i32 },
  // handle, tokens*, n, out_reused*
  hearth_seq_create_prefix: {
    args: [FFIType.ptr, FFIType.ptr, FFIType.u32, FFIType.ptr],
    returns: FFIType.i32,
  },
  hearth_seq_publish: { args: [FFIType.ptr, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  // handle, seq, tokens*, n, model_tag, path*, path_len, out_bytes*
  hearth_seq_save: {
    args: [
      FFIType.ptr,
      FFIType.i32,
      FFIType.ptr,
      FFIType.u32,
      FFIType.u64,
      FFIType.ptr,
      FFIType.u64,
      FFIType.ptr,
    ],
    returns: FFIType.i32,
  },
  // handle, path*, path_len, model_tag, tokens_out*, cap, out_n*
  hearth_seq_restore: {
    args: [FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.u64, FFIType.ptr, FFIType.u32, FFIType.ptr],
    returns: FFIType.i32,
  },
  // handle, tokens*, n, from_tokens
  hearth_kv_tier_spill: { args: [FFIType.ptr, FFIType.ptr, FFIType.u32, FFIType.u32], returns: FFIType.i32 },
  hearth_kv_tier_reclaimable: { args: [FFIType.ptr], returns: FFIType.i32 },
  hearth_kv_tier_checkpoint: { args: [FFIType.ptr], returns: FFIType.i32 },
  hearth_kv_record_bytes: { args: [FFIType.ptr], returns: FFIType.i32 },
  // handle, tokens*, n, keys_out*, cap, out_local*
  hearth_kv_chain: {
    args: [FFIType.ptr, FFIType.ptr, FFIType.u32, FFIType.ptr, FFIType.u32, FFIType.ptr],
    returns: FFIType.i32,
  },
  // handle, tokens*, n, page, out*, len
  hearth_kv_page_export: {
    args: [FFIType.ptr, FFIType.ptr, FFIType.u32, FFIType.u32, FFIType.ptr, FFIType.u64],
    returns: FFIType.i32,
  },
  // handle, tokens*, n, page, record*, len
  hearth_kv_page_import: {
    args: [FFIType.ptr, FFIType.ptr, FFIType.u32, FFIType.u32, FFIType.ptr, FFIType.u64],
    returns: FFIType.i32,
  },
  // handle, tokens*, n, page, used
  hearth_kv_page_unpin: {
    args: [FFIType.ptr, FFIType.ptr, FFIType.u32, FFIType.u32, FFIType.u32],
    returns: FFIType.i32,
  },
} as const;
