//! STAND-IN until the kernels branch lands (scalar, same interface as COMMON.md): block formats, dequantize, activation quantization.
const std = @import("std");

pub const GgmlType = enum(u32) { f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q8_0 = 8, _ };

pub const BlockQ4_0 = extern struct { d: f16 align(1), qs: [16]u8 };
pub const BlockQ4_1 = extern struct { d: f16 align(1), m: f16 align(1), qs: [16]u8 };
pub const BlockQ8_0 = extern struct { d: f16 align(1), qs: [32]i8 };
pub const BlockQ8Act = extern struct { d: f32, s: f32, qs: [32]i8 };

pub fn rowSizeBytes(t: GgmlType, cols: usize) usize {
    return switch (t) {
        .f32 => cols * 4,
        .f16 => cols * 2,
        .q4_0 => cols / 32 * @sizeOf(BlockQ4_0),
        .q4_1 => cols / 32 * @sizeOf(BlockQ4_1),
        .q8_0 => cols / 32 * @sizeOf(BlockQ8_0),
        _ => 0,
    };
}

pub fn quantizeAct(x: []const f32, out: []BlockQ8Act) void {
    std.debug.assert(x.len == out.len * 32);
    for (out, 0..) |*b, i| {
        const v = x[i * 32 ..][0..32];
        var amax: f32 = 0;
        for (v) |e| amax = @max(amax, @abs(e));
        const d = amax / 127.0;
        const id: f32 = if (d != 0) 1.0 / d else 0;
        var sum: i32 = 0;
        for (v, 0..) |e, j| {
            const q: i8 = @intFromFloat(@round(e * id));
            b.qs[j] = q;
            sum += q;
        }
        b.d = d;
        b.s = d * @as(f32, @floatFromInt(sum));
    }
}

pub fn dequantizeRow(t: GgmlType, src: [*]const u8, out: []f32) void {
    switch (t) {
        .f32 => {
            const p: [*]align(1) const f32 = @ptrCast(src);
            for (out, 0..) |*o, i| o.* = p[i];
        },
        .f16 => {
            const p: [*]align(1) const f16 = @ptrCast(src);
            for (out, 0..) |*o, i| o.* = p[i];
        },
        .q4_0 => {
            const bs: [*]align(1) const BlockQ4_0 = @ptrCast(src);
            for (0..out.len / 32) |b| {
                const d: f32 = bs[b].d;
                for (0..16) |j| {
                    out[b * 32 + j] = d * @as(f32, @floatFromInt(@as(i32, bs[b].qs[j] & 15) - 8));
                    out[b * 32 + j + 16] = d * @as(f32, @floatFromInt(@as(i32, bs[b].qs[j] >> 4) - 8));
                }
            }
        },
        .q4_1 => {
            const bs: [*]align(1) const BlockQ4_1 = @ptrCast(src);
            for (0..out.len / 32) |b| {
                const d: f32 = bs[b].d;
                const m: f32 = bs[b].m;
                for (0..16) |j| {
                    out[b * 32 + j] = d * @as(f32, @floatFromInt(bs[b].qs[j] & 15)) + m;
                    out[b * 32 + j + 16] = d * @as(f32, @floatFromInt(bs[b].qs[j] >> 4)) + m;
                }
            }
        },
        .q8_0 => {
            const bs: [*]align(1) const BlockQ8_0 = @ptrCast(src);
            for (0..out.len / 32) |b| {
                const d: f32 = bs[b].d;
                for (0..32) |j| out[b * 32 + j] = d * @as(f32, @floatFromInt(bs[b].qs[j]));
            }
        },
        _ => unreachable,
    }
}

/// Dot of one quantized weight row with one activation row (scalar).
pub fn dotRow(t: GgmlType, w: [*]const u8, x: []const f32, act: []const BlockQ8Act) f32 {
    switch (t) {
        .f32, .f16 => {
            var buf: [8192]f32 = undefined;
            dequantizeRow(t, w, buf[0..x.len]);
            var s: f32 = 0;
            for (x, buf[0..x.len]) |a, b| s += a * b;
            return s;
        },
        .q4_0 => {
            const bs: [*]align(1) const BlockQ4_0 = @ptrCast(w);
            var s: f32 = 0;
            for (act, 0..) |a, b| {
                var isum: i32 = 0;
                for (0..16) |j| {
                    isum += (@as(i32, bs[b].qs[j] & 15) - 8) * a.qs[j];
                    isum += (@as(i32, bs[b].qs[j] >> 4) - 8) * a.qs[j + 16];
                }
                s += @as(f32, bs[b].d) * a.d * @as(f32, @floatFromInt(isum));
            }
            return s;
        },
        .q4_1 => {
            const bs: [*]align(1) const BlockQ4_1 = @ptrCast(w);
            var s: f32 = 0;
            for (act, 0..) |a, b| {
                var isum: i32 = 0;
                for (0..16) |j| {
                    isum += @as(i32, bs[b].qs[j] & 15) * a.qs[j];
                    isum += @as(i32, bs[b].qs[j] >> 4) * a.qs[j + 16];
                }
                s += @as(f32, bs[b].d) * a.d * @as(f32, @floatFromInt(isum)) + @as(f32, bs[b].m) * a.s;
            }
            return s;
        },
        .q8_0 => {
            const bs: [*]align(1) const BlockQ8_0 = @ptrCast(w);
            var s: f32 = 0;
            for (act, 0..) |a, b| {
                var isum: i32 = 0;
                for (0..32) |j| isum += @as(i32, bs[b].qs[j]) * a.qs[j];
                s += @as(f32, bs[b].d) * a.d * @as(f32, @floatFromInt(isum));
            }
            return s;
        },
        _ => unreachable,
    }
}
