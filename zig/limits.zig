//! The numbers TypeScript must agree with, read once at load through `hearth_limits`: the KV page
//! size, the bounds of the native options, every status code, and the layout (size and field
//! offsets) of each extern struct that crosses the ABI, so src/native never retypes them.
const std = @import("std");
const status = @import("status.zig");
const model = @import("model/model.zig");
const pages = @import("kv/pages.zig");
const prefix = @import("kv/prefix.zig");
const evict = @import("kv/evict.zig");
const tier = @import("kv/tier.zig");
const pool = @import("pool.zig");

/// Read by src/native/limits.ts as an array of i32 in this order; `size_bytes` comes first so a
/// reader built for another layout notices.
pub const Limits = extern struct {
    size_bytes: i32 = @sizeOf(Limits),
    kv_page_tokens: i32 = pages.page_tokens,
    max_threads: i32 = model.max_threads,
    max_kv_pages: i32 = model.max_kv_pages,
    max_batch_tokens: i32 = model.max_batch_tokens_limit,
    max_sequences: i32 = model.max_sequences_limit,
    max_layers: i32 = model.max_layers,
    /// Every `status.Status` code, in declaration order (ok first).
    status: [status_count]i32 = statusCodes(),
};

const status_count = @typeInfo(status.Status).@"enum".field_names.len;

fn statusCodes() [status_count]i32 {
    var out: [status_count]i32 = undefined;
    for (@typeInfo(status.Status).@"enum".field_values, 0..) |v, i| out[i] = v;
    return out;
}

/// The extern structs TypeScript encodes or decodes, by the id `hearth_layout` takes.
pub const layouts = .{ model.Hparams, model.Options, model.TensorDesc, pages.Stats, prefix.Stats, evict.ReplayResult, tier.Stats, pool.Stats };
pub const layout_count = 8;

/// Writes `[size, offset of field 0, offset of field 1, ...]` of layout `id` (nested structs
/// count as one field); returns the number of u32 written, or -1 for an unknown id or short buffer.
pub fn layout(id: u32, out: []u32) i32 {
    inline for (0..layout_count) |i| {
        if (i == id) {
            const T = layouts[i];
            const names = @typeInfo(T).@"struct".field_names;
            if (out.len < names.len + 1) return -1;
            out[0] = @sizeOf(T);
            inline for (names, 0..) |name, k| out[k + 1] = @offsetOf(T, name);
            return @intCast(names.len + 1);
        }
    }
    return -1;
}

/// Writes the field names of layout `id`, comma-separated; returns the bytes written, or -1 for
/// an unknown id or a short buffer.
pub fn layoutNames(id: u32, out: []u8) i32 {
    inline for (0..layout_count) |i| {
        if (i == id) {
            const names = comptime joined(layouts[i]);
            if (out.len < names.len) return -1;
            @memcpy(out[0..names.len], names);
            return @intCast(names.len);
        }
    }
    return -1;
}

fn joined(comptime T: type) []const u8 {
    comptime var s: []const u8 = "";
    inline for (@typeInfo(T).@"struct".field_names, 0..) |name, k| s = s ++ (if (k == 0) "" else ",") ++ name;
    return s;
}

test "limits carry the page size and every status code" {
    const l = Limits{};
    try std.testing.expectEqual(@as(i32, 16), l.kv_page_tokens);
    try std.testing.expectEqual(@as(i32, -6), l.status[@intCast(-@backingInt(status.Status.kv_full))]);
    var buf: [32]u32 = undefined;
    try std.testing.expectEqual(@as(i32, 1 + @typeInfo(model.Hparams).@"struct".field_names.len), layout(0, &buf));
    try std.testing.expectEqual(@as(u32, @sizeOf(model.Hparams)), buf[0]);
    try std.testing.expectEqual(@as(i32, -1), layout(layout_count, &buf));
    var names: [256]u8 = undefined;
    const n = layoutNames(3, &names);
    try std.testing.expectEqualStrings("page_tokens,pages_total,pages_free,sequences_active,page_size_bytes", names[0..@intCast(n)]);
}
