//! The C ABI of libhearth: every `export fn` lives here and only here.
const std = @import("std");
const status = @import("status.zig");

/// Bumped whenever an export's signature or meaning changes; checked by src/native at load.
pub const abi_version: u32 = 1;

export fn hearth_abi_version() u32 {
    return abi_version;
}

export fn hearth_last_error(buf: ?[*]u8, cap: usize) usize {
    return status.copyLastError(buf, cap);
}

test {
    std.testing.refAllDecls(@This());
    _ = status;
    _ = @import("ops.zig");
    _ = @import("kv/pages.zig");
    _ = @import("attention.zig");
}
