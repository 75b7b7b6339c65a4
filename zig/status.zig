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

/// Most bytes of an untrusted string a message shows (the TypeScript side's
/// UNTRUSTED_SHOWN_CHARS_MAX, src/untrusted.ts); the rest is counted, not shown.
pub const untrusted_shown_bytes_max: usize = 120;

/// A string from a file or a request (a path, a name), formatted with `{f}` in double quotes and
/// safe for a terminal or a log: the same escapes as src/untrusted.ts's quoteUntrusted.
pub fn quoted(s: []const u8) Quoted {
    return .{ .s = s };
}

pub const Quoted = struct {
    s: []const u8,

    pub fn format(self: Quoted, w: *std.Io.Writer) std.Io.Writer.Error!void {
        const shown = self.s[0..cutAt(self.s, untrusted_shown_bytes_max)];
        try w.writeByte('"');
        var i: usize = 0;
        while (i < shown.len) {
            const b = shown[i];
            if (b < 0x80) {
                switch (b) {
                    '"', '\\' => try w.print("\\{c}", .{b}),
                    '\n' => try w.writeAll("\\n"),
                    '\r' => try w.writeAll("\\r"),
                    0x1b => try w.writeAll("\\e"),
                    '\t', 0x20...0x21, 0x23...0x5b, 0x5d...0x7e => try w.writeByte(b),
                    else => try w.print("\\x{x:0>2}", .{b}),
                }
                i += 1;
                continue;
            }
            const len = std.unicode.utf8ByteSequenceLength(b) catch 0;
            const cp: ?u21 = if (len == 0 or i + len > shown.len) null else std.unicode.utf8Decode(shown[i..][0..len]) catch null;
            if (cp) |c| {
                if (unprintable(c)) {
                    if (c <= 0xff) try w.print("\\x{x:0>2}", .{c}) else try w.print("\\u{x:0>4}", .{c});
                } else try w.writeAll(shown[i..][0..len]);
                i += len;
            } else {
                // Not UTF-8: the byte itself, escaped.
                try w.print("\\x{x:0>2}", .{b});
                i += 1;
            }
        }
        try w.writeByte('"');
        if (shown.len < self.s.len) try w.print("... ({d} bytes)", .{self.s.len});
    }

    /// C1 controls, the bidi marks, embeddings, overrides and isolates that reorder what follows
    /// them, zero-width characters, the line/paragraph separators and the BOM.
    fn unprintable(c: u21) bool {
        return (c >= 0x80 and c <= 0x9f) or c == 0x061c or (c >= 0x200b and c <= 0x200f) or
            (c >= 0x2028 and c <= 0x202e) or (c >= 0x2060 and c <= 0x2069) or c == 0xfeff;
    }

    /// The longest prefix of at most `max` bytes that does not end inside a UTF-8 sequence.
    fn cutAt(s: []const u8, max: usize) usize {
        if (s.len <= max) return s.len;
        var end = max;
        // Back up over continuation bytes to the start of the sequence the cut falls in.
        var back: usize = 0;
        while (end > 0 and back < 3 and s[end] & 0xc0 == 0x80) : (back += 1) end -= 1;
        if (back == 3 and s[end] & 0xc0 == 0x80) return max; // not UTF-8: cut anywhere
        return end;
    }
};

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

test "quoted escapes what a terminal would act on and cuts long strings" {
    var buf: [512]u8 = undefined;
    var w: std.Io.Writer = .fixed(&buf);
    try w.print("{f}", .{quoted("a\x1b]0;pwned\x07 \"q\" \\ \n\x00\xffé\u{202e}x")});
    try std.testing.expectEqualStrings("\"a\\e]0;pwned\\x07 \\\"q\\\" \\\\ \\n\\x00\\xffé\\u202ex\"", w.buffered());

    var long: [300]u8 = undefined;
    @memset(&long, 'a');
    long[119] = 0xc3; // a two-byte character across the cut is left out whole
    long[120] = 0xa9;
    w = .fixed(&buf);
    try w.print("{f}", .{quoted(&long)});
    const got = w.buffered();
    try std.testing.expectEqual(1 + 119 + "\"... (300 bytes)".len, got.len);
    try std.testing.expect(got[0] == '"' and std.mem.allEqual(u8, got[1..120], 'a'));
    try std.testing.expectEqualStrings("\"... (300 bytes)", got[120..]);
}

test "fail quotes a path given with {f}" {
    _ = fail(.io_error, "cannot open {f}: errno {d}", .{ quoted("/tmp/\x1b[2Jx"), 2 });
    var out: [64]u8 = undefined;
    const n = copyLastError(&out, out.len);
    try std.testing.expectEqualStrings("cannot open \"/tmp/\\e[2Jx\": errno 2", out[0..n]);
}
