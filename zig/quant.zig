//! GGML block quant formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, F16, F32; the K-quants in quant/kquants.zig,
//! IQ4_NL and IQ4_XS in quant/iquants.zig):
//! layouts, (de)quantization, and dot products against Q8 activations.
const std = @import("std");
const simd = @import("simd.zig");
pub const kquants = @import("quant/kquants.zig");
pub const iquants = @import("quant/iquants.zig");
pub const kquants_low = @import("quant/kquants_low.zig");

/// GGML tensor type ids as stored in GGUF files.
pub const GgmlType = enum(u32) {
    f32 = 0,
    f16 = 1,
    q4_0 = 2,
    q4_1 = 3,
    q5_0 = 6,
    q5_1 = 7,
    q8_0 = 8,
    q2_k = 10,
    q3_k = 11,
    q4_k = 12,
    q5_k = 13,
    q6_k = 14,
    iq4_nl = 20,
    iq4_xs = 23,
    bf16 = 30,
    _,

    pub fn isQuantized(t: GgmlType) bool {
        return switch (t) {
            .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_k, .q3_k, .q4_k, .q5_k, .q6_k, .iq4_nl, .iq4_xs => true,
            else => false,
        };
    }

    pub fn isSupported(t: GgmlType) bool {
        return switch (t) {
            .f32, .f16, .bf16 => true,
            else => t.isQuantized(),
        };
    }

    /// The K-quants and IQ4_XS: 256-value super-blocks, read against Q8_K activations.
    pub fn isK(t: GgmlType) bool {
        return switch (t) {
            .q2_k, .q3_k, .q4_k, .q5_k, .q6_k, .iq4_xs => true,
            else => false,
        };
    }

    /// Elements per block (1 for the float types).
    pub fn blockElems(t: GgmlType) usize {
        if (t.isK()) return kquants.super_elems;
        return if (t.isQuantized()) block_elems else 1;
    }

    /// The names of every type hearth computes with, for error messages ("F32, F16, ...").
    pub const supported_list: []const u8 = blk: {
        var list: []const u8 = "";
        for (std.enums.values(GgmlType)) |t| {
            if (!t.isSupported()) continue;
            list = list ++ (if (list.len == 0) "" else ", ") ++ t.name().?;
        }
        break :blk list;
    };

    /// GGUF's name of the type ("Q4_K"), or null for a type hearth does not know.
    pub fn name(t: GgmlType) ?[]const u8 {
        return switch (t) {
            .f32 => "F32",
            .f16 => "F16",
            .bf16 => "BF16",
            .q4_0 => "Q4_0",
            .q4_1 => "Q4_1",
            .q5_0 => "Q5_0",
            .q5_1 => "Q5_1",
            .q8_0 => "Q8_0",
            .q2_k => "Q2_K",
            .q3_k => "Q3_K",
            .q4_k => "Q4_K",
            .q5_k => "Q5_K",
            .q6_k => "Q6_K",
            .iq4_nl => "IQ4_NL",
            .iq4_xs => "IQ4_XS",
            _ => null,
        };
    }

    /// Bytes per block (per element for the float types).
    pub fn blockSizeBytes(t: GgmlType) usize {
        return switch (t) {
            .f32 => 4,
            .f16, .bf16 => 2,
            .q4_0 => @sizeOf(BlockQ4_0),
            .q4_1 => @sizeOf(BlockQ4_1),
            .q5_0 => @sizeOf(BlockQ5_0),
            .q5_1 => @sizeOf(BlockQ5_1),
            .q8_0 => @sizeOf(BlockQ8_0),
            .q2_k => @sizeOf(kquants_low.BlockQ2K),
            .q3_k => @sizeOf(kquants_low.BlockQ3K),
            .q4_k => @sizeOf(kquants.BlockQ4K),
            .q5_k => @sizeOf(kquants.BlockQ5K),
            .q6_k => @sizeOf(kquants.BlockQ6K),
            .iq4_nl => @sizeOf(iquants.BlockIQ4NL),
            .iq4_xs => @sizeOf(iquants.BlockIQ4XS),
            _ => 0,
        };
    }
};

/// Elements per quant block in every GGML format we read.
pub const block_elems = 32;

/// Q4_0, 18 bytes: `d` (f16 scale) then 16 bytes of nibbles. Byte j holds element j in its
/// low nibble and element j+16 in its high nibble; value = (nibble - 8) * d.
pub const BlockQ4_0 = extern struct {
    d: f16,
    qs: [16]u8,
};

/// Q4_1, 20 bytes: `d` (f16 scale), `m` (f16 minimum), 16 bytes of nibbles laid out as in
/// Q4_0; value = nibble * d + m.
pub const BlockQ4_1 = extern struct {
    d: f16,
    m: f16,
    qs: [16]u8,
};

/// Q5_0, 22 bytes: `d` (f16 scale), `qh` (the fifth bits: bit j of the little-endian u32 is
/// element j's), 16 bytes of nibbles laid out as in Q4_0; value = (nibble | fifth << 4) - 16) * d.
pub const BlockQ5_0 = extern struct {
    d: f16,
    qh: [4]u8,
    qs: [16]u8,
};

/// Q5_1, 24 bytes: `d`, `m` (f16), then `qh` and `qs` as in Q5_0; value = q5 * d + m.
pub const BlockQ5_1 = extern struct {
    d: f16,
    m: f16,
    qh: [4]u8,
    qs: [16]u8,
};

/// Q8_0, 34 bytes: `d` (f16 scale) then 32 signed bytes; value = q * d.
pub const BlockQ8_0 = extern struct {
    d: f16,
    qs: [32]i8,
};

/// Activation block (ours, not a file format), 40 bytes: 32 int8 with |q| <= 127, the scale
/// `d` (x ~= q * d) and `s` = d * sum(q), which folds Q4_1's minimum and Q4_0's offset of 8
/// into one multiply per block. `d` holds an f16 value (as ggml's Q8_1 / Q8_0 blocks store it)
/// widened to f32, so the kernels read it without converting; `s` is rounded per `ActSum`.
pub const BlockQ8Act = extern struct {
    qs: [32]i8,
    d: f32,
    s: f32,
};

comptime {
    std.debug.assert(@sizeOf(BlockQ4_0) == 18);
    std.debug.assert(@sizeOf(BlockQ4_1) == 20);
    std.debug.assert(@sizeOf(BlockQ5_0) == 22);
    std.debug.assert(@sizeOf(BlockQ5_1) == 24);
    std.debug.assert(@sizeOf(BlockQ8_0) == 34);
    std.debug.assert(@sizeOf(BlockQ8Act) == 40);
}

/// Bytes of one row of `cols` elements; 0 for unsupported types or cols not a multiple of the block.
pub fn rowSizeBytes(t: GgmlType, cols: usize) usize {
    const per = t.blockElems();
    if (!t.isSupported() or cols % per != 0) return 0;
    return cols / per * t.blockSizeBytes();
}

// ---------------------------------------------------------------- activations

/// How an activation block's `s` is rounded, after the weights that will read it.
pub const ActSum = enum {
    /// ggml's Q8_1 (the activations of Q4_1 weights): s = f16(d * sum(q)) with the unrounded d.
    q8_1,
    /// s = d * sum(q) with the stored (f16) d, which is exact in f32 (|sum(q)| <= 4064 needs 12
    /// bits, d 11): Q4_0's offset of 8 then costs nothing, as in ggml's integer Q4_0 x Q8_0 dot.
    exact,
    /// Not 32-value blocks at all: ggml's Q8_K (kquants.BlockQ8K, the activations of the
    /// K-quants), one per 256 values, written over the memory of 8 BlockQ8Act.
    q8_k,
};

/// Round half to even (x86's default mode, and ggml's `_mm256_round_ps(_MM_ROUND_NEAREST)`), for
/// |x| < 2^22: adding and removing 1.5 * 2^23 leaves the nearest integer in the mantissa.
inline fn roundEven(comptime n: comptime_int, x: @Vector(n, f32)) @Vector(n, f32) {
    const magic: @Vector(n, f32) = @splat(12582912.0);
    return (x + magic) - magic;
}

/// Quantizes `x` (32 * out.len values) into Q8 activation blocks as ggml's AVX2 quantize_row_q8_1
/// does: d = amax / 127 stored as f16, q = round-half-even(x * 127 / amax), s per `ActSum`.
/// Rounding like ggml keeps hearth's products on the same grid as llama.cpp's.
pub fn quantizeActAs(sum_kind: ActSum, x: []const f32, out: []BlockQ8Act) void {
    std.debug.assert(x.len == block_elems * out.len);
    if (sum_kind == .q8_k) return kquants.quantizeQ8K(x, kquants.q8kView(out));
    const V = @Vector(block_elems, f32);
    for (out, 0..) |*blk, b| {
        const v: V = x[b * block_elems ..][0..block_elems].*;
        const amax = @reduce(.Max, @abs(v));
        const d = amax / 127.0;
        const id: f32 = if (amax != 0) 127.0 / amax else 0;
        const q: @Vector(block_elems, i8) = @intFromFloat(roundEven(block_elems, v * @as(V, @splat(id))));
        blk.qs = q;
        const isum: f32 = @floatFromInt(@reduce(.Add, @as(@Vector(block_elems, i32), q)));
        blk.d = @as(f16, @floatCast(d));
        blk.s = switch (sum_kind) {
            .q8_1 => @as(f16, @floatCast(d * isum)),
            .exact => blk.d * isum,
            .q8_k => unreachable,
        };
    }
}

/// The activations the weights of type `t` want (ggml's Q8_1 for Q4_1 / Q5_1, an exact sum for
/// Q4_0 / Q5_0, Q8_K for the K-quants and IQ4_XS; IQ4_NL reads ggml's Q8_0, whose sum it ignores).
pub fn actSumFor(t: GgmlType) ActSum {
    return switch (t) {
        .q4_0, .q5_0, .iq4_nl => .exact,
        .q2_k, .q3_k, .q4_k, .q5_k, .q6_k, .iq4_xs => .q8_k,
        else => .q8_1,
    };
}

/// `quantizeActAs(.q8_1, ...)`: the activations of Q4_1 and Q8_0 weights.
pub fn quantizeAct(x: []const f32, out: []BlockQ8Act) void {
    quantizeActAs(.q8_1, x, out);
}

/// Scalar twin of `quantizeActAs` (bit-identical results).
pub fn quantizeActScalar(sum_kind: ActSum, x: []const f32, out: []BlockQ8Act) void {
    std.debug.assert(x.len == block_elems * out.len);
    if (sum_kind == .q8_k) return kquants.quantizeQ8KScalar(x, kquants.q8kView(out));
    for (out, 0..) |*blk, b| {
        const xs = x[b * block_elems ..][0..block_elems];
        var amax: f32 = 0;
        for (xs) |v| amax = @max(amax, @abs(v));
        const d = amax / 127.0;
        const id: f32 = if (amax != 0) 127.0 / amax else 0;
        var isum: i32 = 0;
        for (xs, &blk.qs) |v, *q| {
            const t = v * id;
            // Round half to even, spelled out.
            var r = @floor(t);
            const frac = t - r;
            if (frac > 0.5 or (frac == 0.5 and @mod(r, 2) != 0)) r += 1;
            q.* = @intFromFloat(r);
            isum += q.*;
        }
        const d16: f16 = @floatCast(d);
        blk.d = d16;
        const fsum: f32 = @floatFromInt(isum);
        blk.s = switch (sum_kind) {
            .q8_1 => @as(f16, @floatCast(d * fsum)),
            .exact => blk.d * fsum,
            .q8_k => unreachable,
        };
    }
}

// ---------------------------------------------------------------- weights (quantize, for tests and tools)

/// Quantizes one row to GGML Q4_0 (as ggml's reference: scale from the signed max-magnitude value).
pub fn quantizeRowQ4_0(x: []const f32, out: []align(1) BlockQ4_0) void {
    std.debug.assert(x.len == block_elems * out.len);
    for (out, 0..) |*blk, b| {
        const xs = x[b * block_elems ..][0..block_elems];
        var amax: f32 = 0;
        var max: f32 = 0;
        for (xs) |v| if (@abs(v) > amax) {
            amax = @abs(v);
            max = v;
        };
        const d = max / -8.0;
        const id: f32 = if (d != 0) 1.0 / d else 0;
        blk.d = @floatCast(d);
        for (0..16) |j| {
            const lo: u8 = @intFromFloat(@min(15.0, @max(0.0, xs[j] * id + 8.5)));
            const hi: u8 = @intFromFloat(@min(15.0, @max(0.0, xs[j + 16] * id + 8.5)));
            blk.qs[j] = lo | (hi << 4);
        }
    }
}

/// Quantizes one row to GGML Q4_1 (scale and minimum per block).
pub fn quantizeRowQ4_1(x: []const f32, out: []align(1) BlockQ4_1) void {
    std.debug.assert(x.len == block_elems * out.len);
    for (out, 0..) |*blk, b| {
        const xs = x[b * block_elems ..][0..block_elems];
        var min: f32 = std.math.inf(f32);
        var max: f32 = -std.math.inf(f32);
        for (xs) |v| {
            min = @min(min, v);
            max = @max(max, v);
        }
        const d = (max - min) / 15.0;
        const id: f32 = if (d != 0) 1.0 / d else 0;
        blk.d = @floatCast(d);
        blk.m = @floatCast(min);
        for (0..16) |j| {
            const lo: u8 = @intFromFloat(@min(15.0, @max(0.0, (xs[j] - min) * id + 0.5)));
            const hi: u8 = @intFromFloat(@min(15.0, @max(0.0, (xs[j + 16] - min) * id + 0.5)));
            blk.qs[j] = lo | (hi << 4);
        }
    }
}

/// Quantizes one row to GGML Q5_0 (as ggml's reference: scale from the signed max-magnitude value).
pub fn quantizeRowQ5_0(x: []const f32, out: []align(1) BlockQ5_0) void {
    std.debug.assert(x.len == block_elems * out.len);
    for (out, 0..) |*blk, b| {
        const xs = x[b * block_elems ..][0..block_elems];
        var amax: f32 = 0;
        var max: f32 = 0;
        for (xs) |v| if (@abs(v) > amax) {
            amax = @abs(v);
            max = v;
        };
        const d = max / -16.0;
        const id: f32 = if (d != 0) 1.0 / d else 0;
        blk.d = @floatCast(d);
        var qh: u32 = 0;
        for (0..16) |j| {
            const lo: u8 = @intFromFloat(@min(31.0, @max(0.0, xs[j] * id + 16.5)));
            const hi: u8 = @intFromFloat(@min(31.0, @max(0.0, xs[j + 16] * id + 16.5)));
            blk.qs[j] = (lo & 15) | ((hi & 15) << 4);
            qh |= @as(u32, lo >> 4) << @intCast(j);
            qh |= @as(u32, hi >> 4) << @intCast(j + 16);
        }
        blk.qh = @bitCast(std.mem.nativeToLittle(u32, qh));
    }
}

/// Quantizes one row to GGML Q5_1 (scale and minimum per block).
pub fn quantizeRowQ5_1(x: []const f32, out: []align(1) BlockQ5_1) void {
    std.debug.assert(x.len == block_elems * out.len);
    for (out, 0..) |*blk, b| {
        const xs = x[b * block_elems ..][0..block_elems];
        var min: f32 = std.math.inf(f32);
        var max: f32 = -std.math.inf(f32);
        for (xs) |v| {
            min = @min(min, v);
            max = @max(max, v);
        }
        const d = (max - min) / 31.0;
        const id: f32 = if (d != 0) 1.0 / d else 0;
        blk.d = @floatCast(d);
        blk.m = @floatCast(min);
        var qh: u32 = 0;
        for (0..16) |j| {
            const lo: u8 = @intFromFloat(@min(31.0, @max(0.0, (xs[j] - min) * id + 0.5)));
            const hi: u8 = @intFromFloat(@min(31.0, @max(0.0, (xs[j + 16] - min) * id + 0.5)));
            blk.qs[j] = (lo & 15) | ((hi & 15) << 4);
            qh |= @as(u32, lo >> 4) << @intCast(j);
            qh |= @as(u32, hi >> 4) << @intCast(j + 16);
        }
        blk.qh = @bitCast(std.mem.nativeToLittle(u32, qh));
    }
}

/// Quantizes one row to GGML Q8_0.
pub fn quantizeRowQ8_0(x: []const f32, out: []align(1) BlockQ8_0) void {
    std.debug.assert(x.len == block_elems * out.len);
    for (out, 0..) |*blk, b| {
        const xs = x[b * block_elems ..][0..block_elems];
        var amax: f32 = 0;
        for (xs) |v| amax = @max(amax, @abs(v));
        const d = amax / 127.0;
        const id: f32 = if (d != 0) 1.0 / d else 0;
        blk.d = @floatCast(d);
        for (xs, &blk.qs) |v, *q| q.* = @intFromFloat(@round(v * id));
    }
}

/// Whether `quantizeRow` can write type `t` (hearth reads the K-quants and IQ4 but does not make them).
pub fn canQuantize(t: GgmlType) bool {
    return t.isSupported() and !t.isK() and t != .iq4_nl;
}

/// Quantizes a row of `x.len` values of type `t` into `dst` (rowSizeBytes(t, x.len) bytes).
pub fn quantizeRow(t: GgmlType, x: []const f32, dst: [*]u8) void {
    const nb = x.len / block_elems;
    switch (t) {
        .f32 => for (x, 0..) |v, i| std.mem.writeInt(u32, dst[i * 4 ..][0..4], @bitCast(v), .little),
        .f16 => for (x, 0..) |v, i| std.mem.writeInt(u16, dst[i * 2 ..][0..2], @bitCast(@as(f16, @floatCast(v))), .little),
        .bf16 => for (x, 0..) |v, i| std.mem.writeInt(u16, dst[i * 2 ..][0..2], simd.f32ToBf16(v), .little),
        .q4_0 => quantizeRowQ4_0(x, @as([*]align(1) BlockQ4_0, @ptrCast(dst))[0..nb]),
        .q4_1 => quantizeRowQ4_1(x, @as([*]align(1) BlockQ4_1, @ptrCast(dst))[0..nb]),
        .q5_0 => quantizeRowQ5_0(x, @as([*]align(1) BlockQ5_0, @ptrCast(dst))[0..nb]),
        .q5_1 => quantizeRowQ5_1(x, @as([*]align(1) BlockQ5_1, @ptrCast(dst))[0..nb]),
        .q8_0 => quantizeRowQ8_0(x, @as([*]align(1) BlockQ8_0, @ptrCast(dst))[0..nb]),
        else => unreachable,
    }
}

// ---------------------------------------------------------------- dequantize

/// Dequantizes one row of `out.len` elements of type `t` starting at `src`.
pub fn dequantizeRow(t: GgmlType, src: [*]const u8, out: []f32) void {
    const nb = out.len / block_elems;
    switch (t) {
        .f32 => {
            const p: [*]align(1) const f32 = @ptrCast(src);
            for (out, 0..) |*o, i| o.* = p[i];
        },
        .f16 => {
            const p: [*]align(1) const f16 = @ptrCast(src);
            for (out, 0..) |*o, i| o.* = @floatCast(p[i]);
        },
        .bf16 => {
            const p: [*]align(1) const u16 = @ptrCast(src);
            for (out, 0..) |*o, i| o.* = simd.bf16ToF32(p[i]);
        },
        .q4_0 => {
            const blocks: [*]align(1) const BlockQ4_0 = @ptrCast(src);
            for (0..nb) |b| {
                const blk = blocks[b];
                const d: f32 = @floatCast(blk.d);
                const o = out[b * block_elems ..];
                for (blk.qs, 0..) |q, j| {
                    o[j] = @as(f32, @floatFromInt(@as(i32, q & 15) - 8)) * d;
                    o[j + 16] = @as(f32, @floatFromInt(@as(i32, q >> 4) - 8)) * d;
                }
            }
        },
        .q4_1 => {
            const blocks: [*]align(1) const BlockQ4_1 = @ptrCast(src);
            for (0..nb) |b| {
                const blk = blocks[b];
                const d: f32 = @floatCast(blk.d);
                const m: f32 = @floatCast(blk.m);
                const o = out[b * block_elems ..];
                for (blk.qs, 0..) |q, j| {
                    o[j] = @as(f32, @floatFromInt(q & 15)) * d + m;
                    o[j + 16] = @as(f32, @floatFromInt(q >> 4)) * d + m;
                }
            }
        },
        .q5_0 => {
            const blocks: [*]align(1) const BlockQ5_0 = @ptrCast(src);
            for (0..nb) |b| {
                const blk = blocks[b];
                const d: f32 = @floatCast(blk.d);
                const q = q5Values(blk.qs, blk.qh);
                for (q, 0..) |v, j| out[b * block_elems + j] = @as(f32, @floatFromInt(@as(i32, v) - 16)) * d;
            }
        },
        .q5_1 => {
            const blocks: [*]align(1) const BlockQ5_1 = @ptrCast(src);
            for (0..nb) |b| {
                const blk = blocks[b];
                const d: f32 = @floatCast(blk.d);
                const m: f32 = @floatCast(blk.m);
                const q = q5Values(blk.qs, blk.qh);
                for (q, 0..) |v, j| out[b * block_elems + j] = @as(f32, @floatFromInt(v)) * d + m;
            }
        },
        .q8_0 => {
            const blocks: [*]align(1) const BlockQ8_0 = @ptrCast(src);
            for (0..nb) |b| {
                const blk = blocks[b];
                const d: f32 = @floatCast(blk.d);
                for (blk.qs, 0..) |q, j| out[b * block_elems + j] = @as(f32, @floatFromInt(q)) * d;
            }
        },
        .q4_k, .q5_k, .q6_k => kquants.dequantizeRow(t, src, out),
        .q2_k, .q3_k => kquants_low.dequantizeRow(t, src, out),
        .iq4_nl, .iq4_xs => iquants.dequantizeRow(t, src, out),
        _ => unreachable,
    }
}

/// The 32 five-bit values (0..31) of a Q5 block in element order (scalar).
pub fn q5Values(qs: [16]u8, qh: [4]u8) [32]u8 {
    const h = std.mem.readInt(u32, &qh, .little);
    var q: [32]u8 = undefined;
    for (0..16) |j| {
        q[j] = (qs[j] & 15) | @as(u8, @intCast((h >> @intCast(j)) & 1)) << 4;
        q[j + 16] = (qs[j] >> 4) | @as(u8, @intCast((h >> @intCast(j + 16)) & 1)) << 4;
    }
    return q;
}

// ---------------------------------------------------------------- dot products (SIMD)

const I8x32 = @Vector(32, i8);
const U8x32 = @Vector(32, u8);
const I32x8 = @Vector(8, i32);
const F32x8 = @Vector(8, f32);

extern fn @"llvm.x86.avx2.pmadd.ub.sw"(a: U8x32, b: I8x32) @Vector(16, i16);
extern fn @"llvm.x86.avx2.pmadd.wd"(a: @Vector(16, i16), b: @Vector(16, i16)) I32x8;
extern fn @"llvm.x86.avx2.psign.b"(a: I8x32, b: I8x32) I8x32;
extern fn @"llvm.x86.avx512.vpdpbusd.256"(acc: I32x8, a: U8x32, b: I8x32) I32x8;
extern fn @"llvm.aarch64.neon.sdot.v4i32.v16i8"(acc: @Vector(4, i32), a: @Vector(16, i8), b: @Vector(16, i8)) @Vector(4, i32);

/// acc + lane g = sum_{k<4} w[4g+k] * a[4g+k] for unsigned bytes w (0..255): one `vpdpbusd`,
/// exact (the four products and the sum cannot saturate). Only where `simd.has_vnni`.
pub inline fn dotAccU8(acc: I32x8, w: U8x32, a: I8x32) I32x8 {
    comptime std.debug.assert(simd.has_vnni);
    return @"llvm.x86.avx512.vpdpbusd.256"(acc, w, a);
}

/// `dotAccU8` for signed weights: |w| times a with w's sign moved onto a (a never holds -128,
/// so the sign move cannot overflow). `w_abs` is @abs(w), which callers hoist out of token loops.
pub inline fn dotAccI8(acc: I32x8, w_abs: U8x32, w: I8x32, a: I8x32) I32x8 {
    return dotAccU8(acc, w_abs, @"llvm.x86.avx2.psign.b"(a, w));
}

/// Sums of products over groups of 4 bytes: lane g = sum_{k<4} w[4g+k] * a[4g+k].
/// `w_nonneg` promises 0 <= w (the 4-bit formats), which lets AVX2 skip the sign trick.
/// Every path returns the same exact integers; `groupDotScalar` is the twin.
pub inline fn groupDot(comptime w_nonneg: bool, w: I8x32, a: I8x32) I32x8 {
    if (comptime simd.has_vnni) {
        const zero: I32x8 = @splat(0);
        return if (w_nonneg) dotAccU8(zero, @bitCast(w), a) else dotAccI8(zero, @abs(w), w, a);
    } else if (comptime simd.has_avx2) {
        const ones: @Vector(16, i16) = @splat(1);
        if (w_nonneg) {
            return @"llvm.x86.avx2.pmadd.wd"(@"llvm.x86.avx2.pmadd.ub.sw"(@bitCast(w), a), ones);
        }
        // maddubs wants an unsigned left side: |w| times a with w's sign moved onto a.
        const aw: U8x32 = @abs(w);
        const sa = @"llvm.x86.avx2.psign.b"(a, w);
        return @"llvm.x86.avx2.pmadd.wd"(@"llvm.x86.avx2.pmadd.ub.sw"(aw, sa), ones);
    } else if (comptime simd.has_sdot) {
        const zero: @Vector(4, i32) = @splat(0);
        const lo_half = [16]i32{ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
        const hi_half = [16]i32{ 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31 };
        const w_lo: @Vector(16, i8) = @shuffle(i8, w, undefined, lo_half);
        const w_hi: @Vector(16, i8) = @shuffle(i8, w, undefined, hi_half);
        const a_lo: @Vector(16, i8) = @shuffle(i8, a, undefined, lo_half);
        const a_hi: @Vector(16, i8) = @shuffle(i8, a, undefined, hi_half);
        const lo = @"llvm.aarch64.neon.sdot.v4i32.v16i8"(zero, w_lo, a_lo);
        const hi = @"llvm.aarch64.neon.sdot.v4i32.v16i8"(zero, w_hi, a_hi);
        return @shuffle(i32, lo, hi, [8]i32{ 0, 1, 2, 3, -1, -2, -3, -4 });
    } else {
        // Portable vectors (NEON without dotprod, SSE, scalar): widen, multiply, add groups of 4.
        const p: @Vector(32, i32) = @as(@Vector(32, i32), w) * @as(@Vector(32, i32), a);
        const p0 = @shuffle(i32, p, undefined, [8]i32{ 0, 4, 8, 12, 16, 20, 24, 28 });
        const p1 = @shuffle(i32, p, undefined, [8]i32{ 1, 5, 9, 13, 17, 21, 25, 29 });
        const p2 = @shuffle(i32, p, undefined, [8]i32{ 2, 6, 10, 14, 18, 22, 26, 30 });
        const p3 = @shuffle(i32, p, undefined, [8]i32{ 3, 7, 11, 15, 19, 23, 27, 31 });
        return (p0 + p1) + (p2 + p3);
    }
}

/// `groupDot(true, w, a)` with lane g multiplied by scale[2g] (= scale[2g + 1]): on AVX2 the
/// scale rides in the widening multiply-add for free. |scale| * 2 * 63 * 127 must fit i32.
pub inline fn groupDotScaled(w: I8x32, a: I8x32, scale: @Vector(16, i16)) I32x8 {
    if (comptime simd.has_avx2) {
        return @"llvm.x86.avx2.pmadd.wd"(@"llvm.x86.avx2.pmadd.ub.sw"(@bitCast(w), a), scale);
    }
    const even: I32x8 = @shuffle(i16, scale, undefined, [8]i32{ 0, 2, 4, 6, 8, 10, 12, 14 });
    return groupDot(true, w, a) * even;
}

/// Scalar twin of `groupDot`.
pub fn groupDotScalar(w: [32]i8, a: [32]i8) [8]i32 {
    var out: [8]i32 = undefined;
    for (0..8) |g| {
        var s: i32 = 0;
        for (0..4) |k| s += @as(i32, w[4 * g + k]) * @as(i32, a[4 * g + k]);
        out[g] = s;
    }
    return out;
}

/// Deterministic horizontal sum (fixed tree order, so results do not depend on the caller).
pub inline fn hsum8(v: F32x8) f32 {
    const a: @Vector(4, f32) = @shuffle(f32, v, undefined, [4]i32{ 0, 1, 2, 3 }) + @shuffle(f32, v, undefined, [4]i32{ 4, 5, 6, 7 });
    const b: @Vector(2, f32) = @shuffle(f32, a, undefined, [2]i32{ 0, 1 }) + @shuffle(f32, a, undefined, [2]i32{ 2, 3 });
    return b[0] + b[1];
}

/// Unpacks a 4-bit block to 32 bytes in element order (low nibbles are 0..15, high 16..31).
inline fn unpackNibbles(qs: [16]u8) I8x32 {
    const v: @Vector(16, u8) = qs;
    const lo = v & @as(@Vector(16, u8), @splat(15));
    const hi = v >> @as(@Vector(16, u3), @splat(4));
    const both: U8x32 = @shuffle(u8, lo, hi, [32]i32{
        0,  1,  2,  3,  4,  5,  6,  7,  8,  9,   10,  11,  12,  13,  14,  15,
        -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -13, -14, -15, -16,
    });
    return @bitCast(both);
}

/// The fifth bits of a Q5 block as 0 or 16 per element (element order).
inline fn fifthBits(qh: [4]u8) U8x32 {
    const bits: @Vector(32, u1) = @bitCast(std.mem.readInt(u32, &qh, .little));
    return @as(U8x32, bits) << @splat(4);
}

/// The weight formats `dotRows` handles (the quantized GGML types).
pub const QuantFormat = enum {
    q4_0,
    q4_1,
    q5_0,
    q5_1,
    q8_0,
    q2_k,
    q3_k,
    q4_k,
    q5_k,
    q6_k,
    iq4_nl,
    iq4_xs,

    /// 256-value super-blocks against Q8_K activations (GgmlType.isK).
    pub fn isK(f: QuantFormat) bool {
        return switch (f) {
            .q2_k, .q3_k, .q4_k, .q5_k, .q6_k, .iq4_xs => true,
            else => false,
        };
    }
};

/// The quant format of a GGML type, or null for the float types.
pub fn formatOf(t: GgmlType) ?QuantFormat {
    return switch (t) {
        .q4_0 => .q4_0,
        .q4_1 => .q4_1,
        .q5_0 => .q5_0,
        .q5_1 => .q5_1,
        .q8_0 => .q8_0,
        .q2_k => .q2_k,
        .q3_k => .q3_k,
        .q4_k => .q4_k,
        .q5_k => .q5_k,
        .q6_k => .q6_k,
        .iq4_nl => .iq4_nl,
        .iq4_xs => .iq4_xs,
        else => null,
    };
}

pub fn BlockOf(comptime f: QuantFormat) type {
    return switch (f) {
        .q4_0 => BlockQ4_0,
        .q4_1 => BlockQ4_1,
        .q5_0 => BlockQ5_0,
        .q5_1 => BlockQ5_1,
        .q8_0 => BlockQ8_0,
        .q2_k => kquants_low.BlockQ2K,
        .q3_k => kquants_low.BlockQ3K,
        .q4_k => kquants.BlockQ4K,
        .q5_k => kquants.BlockQ5K,
        .q6_k => kquants.BlockQ6K,
        .iq4_nl => iquants.BlockIQ4NL,
        .iq4_xs => iquants.BlockIQ4XS,
    };
}

/// Dot products of one weight row (`nb` * 32 values of format `f`) with `n` activation rows at
/// once: the row is decoded once per block and reused for every activation row. Each
/// output is computed by the same operations in the same order whatever `n` is, so a
/// token's result does not depend on how many tokens share the pass (batch invariance).
pub inline fn dotRows(
    comptime f: QuantFormat,
    comptime n: usize,
    w_row: [*]const u8,
    nb: usize,
    acts: [n][*]const BlockQ8Act,
    out: *[n]f32,
) void {
    if (comptime f.isK()) return kquants.dotRows(f, n, w_row, nb, acts, out);
    const blocks: [*]align(1) const BlockOf(f) = @ptrCast(w_row);
    var acc: [n]F32x8 = @splat(@splat(0));
    var acc_s: [n]f32 = @splat(0);
    for (0..nb) |b| {
        const blk = &blocks[b];
        const dw: f32 = @floatCast(blk.d);
        const wq: I8x32 = switch (f) {
            .q4_0, .q4_1 => unpackNibbles(blk.qs),
            .q5_0, .q5_1 => unpackNibbles(blk.qs) | @as(I8x32, @bitCast(fifthBits(blk.qh))),
            .q8_0 => blk.qs,
            .iq4_nl => iquants.decode(blk.qs),
            else => comptime unreachable,
        };
        inline for (0..n) |t| {
            const a = &acts[t][b];
            const isum = groupDot(f != .q8_0 and f != .iq4_nl, wq, a.qs);
            acc[t] = @mulAdd(F32x8, @splat(dw * a.d), @floatFromInt(isum), acc[t]);
            switch (f) {
                // value = (q - 8) * d: the -8 * d * sum(a) part goes through a.s.
                .q4_0 => acc_s[t] = @mulAdd(f32, -8.0 * dw, a.s, acc_s[t]),
                .q5_0 => acc_s[t] = @mulAdd(f32, -16.0 * dw, a.s, acc_s[t]),
                .q4_1, .q5_1 => acc_s[t] = @mulAdd(f32, @as(f32, @floatCast(blk.m)), a.s, acc_s[t]),
                .q8_0, .iq4_nl => {},
                else => comptime unreachable,
            }
        }
    }
    inline for (0..n) |t| out[t] = hsum8(acc[t]) + acc_s[t];
}

/// One weight row (type `t`, `nb` blocks) against one activation row.
pub fn dotQuant(t: GgmlType, w_row: [*]const u8, act: []const BlockQ8Act) f32 {
    var out: [1]f32 = undefined;
    const acts = [1][*]const BlockQ8Act{act.ptr};
    switch (formatOf(t).?) {
        inline else => |f| dotRows(f, 1, w_row, act.len, acts, &out),
    }
    return out[0];
}

/// Scalar twin of `dotRows` / `dotQuant`: plain integer loops, one float accumulator.
pub fn dotQuantScalar(t: GgmlType, w_row: [*]const u8, act: []const BlockQ8Act) f32 {
    if (t.isK()) return kquants.dotScalar(t, w_row, act);
    var sum: f32 = 0;
    for (act, 0..) |a, b| {
        var w: [32]i8 = undefined;
        var dw: f32 = undefined;
        var extra: f32 = 0;
        switch (t) {
            .q4_0, .q4_1 => {
                const qs: [16]u8 = if (t == .q4_0)
                    @as([*]align(1) const BlockQ4_0, @ptrCast(w_row))[b].qs
                else
                    @as([*]align(1) const BlockQ4_1, @ptrCast(w_row))[b].qs;
                for (qs, 0..) |q, j| {
                    w[j] = @intCast(q & 15);
                    w[j + 16] = @intCast(q >> 4);
                }
                if (t == .q4_0) {
                    dw = @floatCast(@as([*]align(1) const BlockQ4_0, @ptrCast(w_row))[b].d);
                    extra = -8.0 * dw * a.s;
                } else {
                    const blk = @as([*]align(1) const BlockQ4_1, @ptrCast(w_row))[b];
                    dw = @floatCast(blk.d);
                    extra = @as(f32, @floatCast(blk.m)) * a.s;
                }
            },
            .q5_0 => {
                const blk = @as([*]align(1) const BlockQ5_0, @ptrCast(w_row))[b];
                w = @bitCast(q5Values(blk.qs, blk.qh));
                dw = @floatCast(blk.d);
                extra = -16.0 * dw * a.s;
            },
            .q5_1 => {
                const blk = @as([*]align(1) const BlockQ5_1, @ptrCast(w_row))[b];
                w = @bitCast(q5Values(blk.qs, blk.qh));
                dw = @floatCast(blk.d);
                extra = @as(f32, @floatCast(blk.m)) * a.s;
            },
            .q8_0 => {
                const blk = @as([*]align(1) const BlockQ8_0, @ptrCast(w_row))[b];
                w = blk.qs;
                dw = @floatCast(blk.d);
            },
            .iq4_nl => {
                const blk = @as([*]align(1) const iquants.BlockIQ4NL, @ptrCast(w_row))[b];
                w = iquants.decodeScalar(blk.qs);
                dw = @floatCast(blk.d);
            },
            else => unreachable,
        }
        var isum: i32 = 0;
        for (groupDotScalar(w, a.qs)) |g| isum += g;
        sum += dw * a.d * @as(f32, @floatFromInt(isum)) + extra;
    }
    return sum;
}

// ---------------------------------------------------------------- tests

const testing = std.testing;

fn randomRow(r: std.Random, x: []f32, scale: f32) void {
    for (x) |*v| v.* = (r.float(f32) * 2 - 1) * scale;
}

test "block layouts match GGML" {
    try testing.expectEqual(@as(usize, 0), @offsetOf(BlockQ4_1, "d"));
    try testing.expectEqual(@as(usize, 2), @offsetOf(BlockQ4_1, "m"));
    try testing.expectEqual(@as(usize, 4), @offsetOf(BlockQ4_1, "qs"));
    try testing.expectEqual(@as(usize, 2), @offsetOf(BlockQ8_0, "qs"));
    try testing.expectEqual(@as(usize, 360), rowSizeBytes(.q4_1, 576));
    try testing.expectEqual(@as(usize, 612), rowSizeBytes(.q8_0, 576));
    try testing.expectEqual(@as(usize, 324), rowSizeBytes(.q4_0, 576));
    try testing.expectEqual(@as(usize, 1152), rowSizeBytes(.f16, 576));
    try testing.expectEqual(@as(usize, 0), rowSizeBytes(.q4_1, 33));
    try testing.expectEqual(@as(usize, 0), rowSizeBytes(@fromBackingInt(@intCast(99)), 64));
}

test "groupDot equals its scalar twin on extreme and random bytes" {
    var prng = std.Random.DefaultPrng.init(7);
    const r = prng.random();
    for (0..200) |it| {
        var w: [32]i8 = undefined;
        var a: [32]i8 = undefined;
        var wn: [32]i8 = undefined;
        for (&w, &a, &wn) |*x, *y, *z| {
            x.* = if (it == 0) -127 else r.intRangeAtMost(i8, -127, 127);
            y.* = if (it == 0) -127 else r.intRangeAtMost(i8, -127, 127);
            z.* = if (it == 0) 15 else r.intRangeAtMost(i8, 0, 15);
        }
        const want = groupDotScalar(w, a);
        const got: [8]i32 = groupDot(false, w, a);
        try testing.expectEqual(want, got);
        const want_n = groupDotScalar(wn, a);
        const got_n: [8]i32 = groupDot(true, wn, a);
        try testing.expectEqual(want_n, got_n);
    }
}

test "quantizeAct equals its scalar twin and bounds the error" {
    var prng = std.Random.DefaultPrng.init(3);
    const r = prng.random();
    var x: [32 * 9]f32 = undefined;
    randomRow(r, &x, 3);
    @memset(x[32..64], 0); // an all-zero block
    var a: [9]BlockQ8Act = undefined;
    var b: [9]BlockQ8Act = undefined;
    // Exact halves (x * 127 / amax = k + 0.5) must round to even, as ggml's AVX2 path does.
    x[64] = 127;
    for (x[65..96], 0..) |*v, j| v.* = @as(f32, @floatFromInt(j)) - 15.5;
    for ([_]ActSum{ .q8_1, .exact }) |kind| {
        quantizeActAs(kind, &x, &a);
        quantizeActScalar(kind, &x, &b);
        for (a, b) |p, q| {
            try testing.expectEqual(q.qs, p.qs);
            try testing.expectEqual(q.d, p.d);
            try testing.expectEqual(q.s, p.s);
        }
        for (a, 0..) |blk, i| for (blk.qs, 0..) |q, j| {
            // d is f16-rounded (relative error <= 2^-11), the grid step is amax / 127.
            try testing.expectApproxEqAbs(x[i * 32 + j], @as(f32, @floatFromInt(q)) * blk.d, blk.d * 0.57 + 1e-6);
        };
        try testing.expectEqual(@as(i8, -16), a[2].qs[1]); // -15.5 -> -16 (even)
        try testing.expectEqual(@as(i8, -14), a[2].qs[2]); // -14.5 -> -14
        try testing.expectEqual(@as(i8, 0), a[2].qs[16]); // -0.5 -> 0
        try testing.expectEqual(@as(i8, 2), a[2].qs[18]); // 1.5 -> 2
        try testing.expectEqual(@as(i8, 2), a[2].qs[19]); // 2.5 -> 2
    }
}

test "quantize then dequantize stays within half a step for every format" {
    var prng = std.Random.DefaultPrng.init(11);
    const r = prng.random();
    var x: [32 * 5]f32 = undefined;
    randomRow(r, &x, 2);
    var buf: [rowSizeBytesComptime(.f32, 32 * 5)]u8 = undefined;
    var y: [32 * 5]f32 = undefined;
    const cases = [_]struct { t: GgmlType, tol: f32 }{
        .{ .t = .f32, .tol = 0 },
        .{ .t = .f16, .tol = 2e-3 },
        .{ .t = .bf16, .tol = 2.0 / 256.0 },
        .{ .t = .q8_0, .tol = 2.0 / 127.0 * 0.5 + 2e-3 },
        // The end opposite the max-magnitude value clamps at 7/8 of it: a full step of error.
        .{ .t = .q4_0, .tol = 2.0 / 8.0 + 1e-2 },
        .{ .t = .q4_1, .tol = 4.0 / 15.0 * 0.5 + 1e-2 },
        .{ .t = .q5_0, .tol = 2.0 / 16.0 + 1e-2 },
        .{ .t = .q5_1, .tol = 4.0 / 31.0 * 0.5 + 1e-2 },
    };
    for (cases) |c| {
        quantizeRow(c.t, &x, &buf);
        dequantizeRow(c.t, &buf, &y);
        for (x, y) |p, q| try testing.expectApproxEqAbs(p, q, c.tol);
    }
}

fn rowSizeBytesComptime(comptime t: GgmlType, comptime cols: usize) usize {
    return comptime rowSizeBytes(t, cols);
}

test "SIMD dot of every format equals the scalar twin and the float reference" {
    var prng = std.Random.DefaultPrng.init(5);
    const r = prng.random();
    const nb = 19;
    var w: [32 * nb]f32 = undefined;
    var x: [32 * nb]f32 = undefined;
    var wbuf: [rowSizeBytesComptime(.q8_0, 32 * nb)]u8 = undefined;
    var wdeq: [32 * nb]f32 = undefined;
    var act: [nb]BlockQ8Act = undefined;
    for (0..20) |_| {
        randomRow(r, &w, 1);
        randomRow(r, &x, 4);
        for ([_]GgmlType{ .q4_0, .q4_1, .q5_0, .q5_1, .q8_0 }) |t| {
            quantizeActAs(actSumFor(t), &x, &act);
            quantizeRow(t, &w, &wbuf);
            const got = dotQuant(t, &wbuf, &act);
            const twin = dotQuantScalar(t, &wbuf, &act);
            try testing.expectApproxEqAbs(twin, got, 1e-3 * (1 + @abs(twin)));
            // Against float math on the dequantized weights and activations.
            dequantizeRow(t, &wbuf, &wdeq);
            var want: f64 = 0;
            for (0..nb) |b| {
                var isum: i32 = 0;
                for (0..32) |j| {
                    want += @as(f64, wdeq[b * 32 + j]) * @as(f64, @floatFromInt(act[b].qs[j])) * act[b].d;
                    isum += act[b].qs[j];
                }
                // Q4_1's minimum meets s, which ggml's Q8_1 rounds to f16 on its own.
                if (t == .q4_1 or t == .q5_1) {
                    const m: f32 = if (t == .q4_1)
                        @floatCast(@as([*]align(1) const BlockQ4_1, @ptrCast(&wbuf))[b].m)
                    else
                        @floatCast(@as([*]align(1) const BlockQ5_1, @ptrCast(&wbuf))[b].m);
                    want += @as(f64, m) * (@as(f64, act[b].s) - @as(f64, act[b].d) * @as(f64, @floatFromInt(isum)));
                }
            }
            try testing.expectApproxEqAbs(@as(f32, @floatCast(want)), got, 1e-3 * (1 + @abs(got)));
        }
    }
}

test "dotRows gives bit-identical results for n = 1 and n = 4" {
    var prng = std.Random.DefaultPrng.init(9);
    const r = prng.random();
    const nb = 7;
    var w: [32 * nb]f32 = undefined;
    var wbuf: [rowSizeBytesComptime(.q8_0, 32 * nb)]u8 = undefined;
    var xs: [4][32 * nb]f32 = undefined;
    var acts: [4][nb]BlockQ8Act = undefined;
    randomRow(r, &w, 1);
    for (&xs, &acts) |*x, *a| {
        randomRow(r, x, 1);
        quantizeAct(x, a);
    }
    inline for (.{ QuantFormat.q4_0, QuantFormat.q4_1, QuantFormat.q5_0, QuantFormat.q5_1, QuantFormat.q8_0 }) |f| {
        quantizeRow(@field(GgmlType, @tagName(f)), &w, &wbuf);
        var four: [4]f32 = undefined;
        dotRows(f, 4, &wbuf, nb, .{ &acts[0], &acts[1], &acts[2], &acts[3] }, &four);
        for (0..4) |t| {
            var one: [1]f32 = undefined;
            dotRows(f, 1, &wbuf, nb, .{&acts[t]}, &one);
            try testing.expectEqual(one[0], four[t]);
        }
    }
}
