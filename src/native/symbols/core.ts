// FFI symbols of zig/root.zig's core section (ABI version, last error).
import { FFIType } from "bun:ffi";

export const coreSymbols = {
  hearth_abi_version: { args: [], returns: FFIType.u32 },
  hearth_last_error: { args: [FFIType.ptr, FFIType.u64], returns: FFIType.u64 },
} as const;
