// FFI symbols of zig/root.zig's test and benchmark section: not the production ABI (src/ does not
// call them; test/ and bench/ do): the scalar matmul twin, memcpy and read sweeps, the FFI-overhead
// probe, the eviction trace replay.
import { FFIType } from "bun:ffi";

const { i32, u32, u64, ptr } = FFIType;

export const benchSymbols = {
  hearth_matmul_scalar: { args: [u32, u32, ptr, u64, u64, u64, ptr, ptr, u64, ptr, u64], returns: i32 },
  hearth_memcpy: { args: [ptr, ptr, u64, u32, u32], returns: i32 },
  hearth_read_sweep: { args: [ptr, ptr, u64, ptr], returns: i32 },
  hearth_noop: { args: [i32], returns: i32 },
  // seed, events, capacity_pages, out*
  hearth_kv_trace_replay: { args: [u64, u32, u32, ptr], returns: i32 },
} as const;
