// FFI symbols of zig/root.zig's kernel section: quant formats, matmul, thread pool, row kernels.
import { FFIType } from "bun:ffi";

const { i32, u32, u64, i64, f32, f64, ptr } = FFIType;

export const kernelSymbols = {
  hearth_row_size_bytes: { args: [u32, u64], returns: i64 },
  hearth_pool_create: { args: [u32, ptr], returns: i32 },
  hearth_pool_destroy: { args: [ptr], returns: i32 },
  hearth_pool_threads: { args: [ptr], returns: i32 },
  hearth_pool_stats: { args: [ptr, ptr], returns: i32 },
  hearth_dequantize_row: { args: [u32, ptr, u64, ptr, u64], returns: i32 },
  hearth_quantize_row: { args: [u32, ptr, u64, ptr, u64], returns: i32 },
  hearth_quantize_act: { args: [ptr, u64, ptr, u64], returns: i32 },
  hearth_quantize_act_for: { args: [u32, ptr, u64, ptr, u64], returns: i32 },
  hearth_dot: { args: [u32, ptr, u64, u64, ptr, ptr, ptr], returns: i32 },
  hearth_matmul: { args: [ptr, u32, u32, ptr, u64, u64, u64, ptr, ptr, u64, ptr, u64], returns: i32 },
  hearth_interleave: { args: [u32, ptr, u64, u64, u64, ptr, u64], returns: i32 },
  hearth_argmax: { args: [ptr, u64, ptr], returns: i32 },
  hearth_logprobs: { args: [ptr, u64, u32, ptr, ptr, ptr], returns: i32 },
  hearth_exp_weights: { args: [ptr, u64, f32, f32, ptr, ptr], returns: i32 },
  hearth_top_p: { args: [ptr, u64, f32, f64, ptr, ptr, ptr, ptr], returns: i32 },
} as const;
