//! Status codes returned by every fallible export, and the thread-local last-error message.
const std = @import("std");

pub const Status = enum(i32) {
    ok = 0,
    invalid_argument = -1,
    null_pointer = -2,
    misaligned = -3,
    out_of_range = -4,
    out_of_memory = -5,
    kv_full = -6,
    io_error = -7,
    bad_model = -8,
    unsupported = -9,
    corrupt = -10,
    internal = -11,
};

threadlocal var last_error_buf: [512]u8 = undefined;
threadlocal var last_error_len: usize = 0;

/// Records a message for `hearth_last_error` and returns the status as i32.
pub fn fail(status: Status, comptime fmt: []const u8, args: anytype) i32 {
    std.debug.assert(status != .ok);
    const msg = std.fmt.bufPrint(&last_error_buf, fmt, args) catch blk: {
        // Message longer than the buffer: keep what fits.
        break :blk last_error_buf[0..];
    };
    last_error_len = msg.len;
    return @backingInt(status);
}

/// Copies the last error message into `buf`; returns the number of bytes written.
pub fn copyLastError(buf: ?[*]u8, cap: usize) usize {
    const dst = buf orelse return 0;
    const n = @min(cap, last_error_len);
    @memcpy(dst[0..n], last_error_buf[0..n]);
    return n;
}

test "fail records a message" {
    const code = fail(.out_of_range, "token id {d} >= vocab {d}", .{ 50000, 49152 });
    try std.testing.expectEqual(@as(i32, -4), code);
    var out: [64]u8 = undefined;
    const n = copyLastError(&out, out.len);
    try std.testing.expectEqualStrings("token id 50000 >= vocab 49152", out[0..n]);
}
