// FFI symbols of zig/root.zig's core section (ABI version, last error, limits and layouts).
import { FFIType } from "bun:ffi";

export const coreSymbols = {
  hearth_abi_version: { args: [], returns: FFIType.u32 },
  hearth_last_error: { args: [FFIType.ptr, FFIType.u64], returns: FFIType.u64 },
  hearth_limits: { args: [FFIType.ptr], returns: FFIType.i32 },
  hearth_layout: { args: [FFIType.u32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  hearth_layout_names: { args: [FFIType.u32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
} as const;
