// FFI symbols of zig/root.zig's model section (model/model.zig, kv/pages.zig).
import { FFIType } from "bun:ffi";

export const modelSymbols = {
  hearth_model_create: {
    // path, path_len, hparams*, options*, tensors*, n_tensors, out handle*
    args: [FFIType.ptr, FFIType.u64, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.ptr],
    returns: FFIType.i32,
  },
  hearth_model_destroy: { args: [FFIType.ptr], returns: FFIType.void },
  hearth_model_decode: {
    // handle, n_rows, tokens*, positions*, seq_ids*, want_logits*, out*, out_rows_cap
    args: [
      FFIType.ptr,
      FFIType.u32,
      FFIType.ptr,
      FFIType.ptr,
      FFIType.ptr,
      FFIType.ptr,
      FFIType.ptr,
      FFIType.u32,
    ],
    returns: FFIType.i32,
  },
  hearth_model_decode_hidden: {
    // handle, n_rows, tokens*, positions*, seq_ids*, want*, out*, out_rows_cap
    args: [
      FFIType.ptr,
      FFIType.u32,
      FFIType.ptr,
      FFIType.ptr,
      FFIType.ptr,
      FFIType.ptr,
      FFIType.ptr,
      FFIType.u32,
    ],
    returns: FFIType.i32,
  },
  hearth_model_draft: {
    // handle, n_rows, tokens*, positions*, seq_ids*, want*, depths*, n_draft, max_depth, logits*,
    // logits_rows, out_tokens*, out_counts*
    args: [
      FFIType.ptr,
      FFIType.u32,
      FFIType.ptr,
      FFIType.ptr,
      FFIType.ptr,
      FFIType.ptr,
      FFIType.ptr,
      FFIType.u32,
      FFIType.u32,
      FFIType.ptr,
      FFIType.u32,
      FFIType.ptr,
      FFIType.ptr,
    ],
    returns: FFIType.i32,
  },
  hearth_seq_create: { args: [FFIType.ptr], returns: FFIType.i32 },
  hearth_seq_free: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  hearth_seq_length: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  hearth_seq_shift: { args: [FFIType.ptr, FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  hearth_kv_stats: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  hearth_model_pool_stats: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
} as const;
