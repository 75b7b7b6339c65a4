//! The low-bit K-quants (Q2_K, Q3_K: 256-value super-blocks of sixteen 16-value sub-blocks) read
//! against Q8_K activations, plain and eight rows interleaved (Q2_Kx8, Q3_Kx8; see
//! kquants_x8.zig for the idea): layouts, dequantization, dot products and their scalar twins.
//!
//! Both store a column's low 2 bits in `qs`: byte 32h + l (h < 2, l < 32) holds columns
//! 128h + 32j + l (j < 4) in bits 2j, 2j + 1. Weights are summed as unsigned integers (Q3_K's
//! -4..3 shifted to 0..7) and the shift goes through the activations' sums of 16, as Q6_K's
//! offset does: a super-block still sums in exact integers before one float multiply.
//!
//! Q2_Kx8 (672 B): d[8], dmin[8] (f16), scales[16][8] (byte k of lane i at [k][i]), qs[512]:
//! qs[256h + 32c + 4i + k] = GGML qs[32h + 4c + k] of lane i (c < 8, k < 4), so bits 2j of it
//! are column 128h + 32j + 4c + k: chunk c of 32-column sub-block 4h + j.
//! Q3_Kx8 (880 B): d[8], scales[12][8] (transposed likewise), hmask[256]: hmask[32c + 4i + k] =
//! GGML hmask[4c + k] of lane i (bit s is the high bit of column 32s + 4c + k), qs as in Q2_Kx8.
const std = @import("std");
const quant = @import("../quant.zig");
const kq = @import("kquants.zig");
const interleave = @import("../interleave.zig");

const BlockQ8Act = quant.BlockQ8Act;
const BlockQ8K = kq.BlockQ8K;
const QuantFormat = quant.QuantFormat;
const G = 8;

/// Q2_K, 84 bytes: `scales` (per 16 values: the scale in the low nibble, the minimum in the high
/// one), `qs` (2-bit values, see above), `d` and `dmin` (f16). Value v: d * scale[v / 16] * q -
/// dmin * min[v / 16].
pub const BlockQ2K = extern struct {
    scales: [16]u8,
    qs: [64]u8,
    d: f16,
    dmin: f16,
};

/// Q3_K, 110 bytes: `hmask` (bit 4h + j of hmask[l] is the high bit of column 128h + 32j + l),
/// `qs` (low 2 bits, see above), `scales` (sixteen 6-bit scales packed as in `scaleQ3K`), `d`
/// (f16). Value v: d * (scale[v / 16] - 32) * (low + 4 * high - 4).
pub const BlockQ3K = extern struct {
    hmask: [32]u8,
    qs: [64]u8,
    scales: [12]u8,
    d: f16,
};

pub const BlockQ2Kx8 = extern struct {
    d: [G]f16,
    dmin: [G]f16,
    scales: [16][G]u8,
    qs: [512]u8,
};

pub const BlockQ3Kx8 = extern struct {
    d: [G]f16,
    scales: [12][G]u8,
    hmask: [256]u8,
    qs: [512]u8,
};

comptime {
    std.debug.assert(@sizeOf(BlockQ2K) == 84);
    std.debug.assert(@sizeOf(BlockQ3K) == 110);
    std.debug.assert(@sizeOf(BlockQ2Kx8) == G * @sizeOf(BlockQ2K));
    std.debug.assert(@sizeOf(BlockQ3Kx8) == G * @sizeOf(BlockQ3K));
}

/// The low 2 bits of column `col` (< 256).
pub inline fn low2At(qs: *const [64]u8, col: usize) u8 {
    return (qs[32 * (col / 128) + col % 32] >> @intCast(2 * ((col % 128) / 32))) & 3;
}

/// Q3_K's value of column `col` shifted to 0..7 (the stored value plus 4).
pub inline fn q3At(blk: *align(1) const BlockQ3K, col: usize) u8 {
    const high = (blk.hmask[col % 32] >> @intCast(col / 32)) & 1;
    return low2At(&blk.qs, col) | (high << 2);
}

/// Q3_K's signed scale (-32..31) of 16-value sub-block `k` (< 16): the low 4 bits from byte k
/// (k < 8) or the high nibble of byte k - 8, the high 2 bits from bits 2 (k / 4) of byte 8 + k % 4.
pub inline fn scaleQ3K(scales: *const [12]u8, k: usize) i32 {
    const lo: u8 = if (k < 8) scales[k] & 15 else scales[k - 8] >> 4;
    const hi: u8 = (scales[8 + k % 4] >> @intCast(2 * (k / 4))) & 3;
    return @as(i32, lo | (hi << 4)) - 32;
}

/// Dequantizes one row, bit-identical to ggml's dequantize_row_q2_K / _q3_K.
pub fn dequantizeRow(t: quant.GgmlType, src: [*]const u8, out: []f32) void {
    std.debug.assert(out.len % 256 == 0);
    for (0..out.len / 256) |b| {
        const o = out[256 * b ..][0..256];
        switch (t) {
            .q2_k => {
                const blk = &@as([*]align(1) const BlockQ2K, @ptrCast(src))[b];
                const d: f32 = @floatCast(blk.d);
                const dmin: f32 = @floatCast(blk.dmin);
                for (0..16) |k| {
                    const dl = d * @as(f32, @floatFromInt(blk.scales[k] & 15));
                    const ml = dmin * @as(f32, @floatFromInt(blk.scales[k] >> 4));
                    for (0..16) |l| o[16 * k + l] = dl * @as(f32, @floatFromInt(low2At(&blk.qs, 16 * k + l))) - ml;
                }
            },
            .q3_k => {
                const blk = &@as([*]align(1) const BlockQ3K, @ptrCast(src))[b];
                const d: f32 = @floatCast(blk.d);
                for (0..16) |k| {
                    const dl = d * @as(f32, @floatFromInt(scaleQ3K(&blk.scales, k)));
                    for (0..16) |l| o[16 * k + l] = dl * @as(f32, @floatFromInt(@as(i32, q3At(blk, 16 * k + l)) - 4));
                }
            },
            else => unreachable,
        }
    }
}

// ---------------------------------------------------------------- plain rows

const I8x32 = @Vector(32, i8);
const U8x32 = @Vector(32, u8);
const I32x8 = @Vector(8, i32);
const F32x8 = @Vector(8, f32);
const U8x8 = @Vector(G, u8);

/// A Q2_K / Q3_K block decoded once for every token that reads it: eight 32-column sub-blocks of
/// unsigned bytes (Q2_K 0..3, Q3_K 0..7), sixteen scales and (Q2_K) minimums.
pub const Decoded = struct {
    w: [8]I8x32,
    sc: [16]i16,
    mn: [16]i32,

    pub inline fn of(comptime f: QuantFormat, blk: *align(1) const quant.BlockOf(f)) Decoded {
        var out: Decoded = undefined;
        inline for (0..2) |h| {
            const v: U8x32 = blk.qs[32 * h ..][0..32].*;
            inline for (0..4) |j| {
                var w = (v >> @splat(2 * j)) & @as(U8x32, @splat(3));
                if (f == .q3_k) {
                    const hm: U8x32 = blk.hmask;
                    w |= ((hm >> @splat(4 * h + j)) & @as(U8x32, @splat(1))) << @splat(2);
                }
                out.w[4 * h + j] = @bitCast(w);
            }
        }
        inline for (0..16) |k| {
            if (f == .q2_k) {
                out.sc[k] = blk.scales[k] & 15;
                out.mn[k] = blk.scales[k] >> 4;
            } else {
                out.sc[k] = @intCast(scaleQ3K(&blk.scales, k));
            }
        }
        return out;
    }

    /// Exact integers against one Q8_K block: `isum` (lanes to be summed) = sum of scale * w * a;
    /// `side` = Q2_K: sum of min * (sum of 16 a), Q3_K: sum of scale * (sum of 16 a) (the offset of 4).
    pub inline fn dot(self: *const Decoded, comptime f: QuantFormat, a: *const BlockQ8K) struct { isum: I32x8, side: i32 } {
        @setEvalBranchQuota(100_000);
        var isum: I32x8 = @splat(0);
        inline for (0..8) |s| {
            const lo = self.sc[2 * s];
            const hi = self.sc[2 * s + 1];
            const scv: @Vector(16, i16) = .{ lo, lo, lo, lo, lo, lo, lo, lo, hi, hi, hi, hi, hi, hi, hi, hi };
            isum += quant.groupDotScaled(self.w[s], a.qs[32 * s ..][0..32].*, scv);
        }
        var side: i32 = 0;
        inline for (0..16) |k| side += (if (f == .q2_k) self.mn[k] else self.sc[k]) * @as(i32, a.bsums[k]);
        return .{ .isum = isum, .side = side };
    }
};

/// Scalar twin of `Decoded.dot` for one block (isum summed).
pub fn dotScalar(comptime f: QuantFormat, blk: *align(1) const quant.BlockOf(f), a: *const BlockQ8K) struct { isum: i32, side: i32 } {
    var isum: i32 = 0;
    var side: i32 = 0;
    for (0..16) |k| {
        const sc: i32 = if (f == .q2_k) blk.scales[k] & 15 else scaleQ3K(&blk.scales, k);
        var ss: i32 = 0;
        for (0..16) |l| {
            const q: i32 = if (f == .q2_k) low2At(&blk.qs, 16 * k + l) else q3At(blk, 16 * k + l);
            ss += q * a.qs[16 * k + l];
        }
        isum += sc * ss;
        side += (if (f == .q2_k) @as(i32, blk.scales[k] >> 4) else sc) * a.bsums[k];
    }
    return .{ .isum = isum, .side = side };
}

// ---------------------------------------------------------------- interleaved records

pub fn BlockX8(comptime f: QuantFormat) type {
    return switch (f) {
        .q2_k => BlockQ2Kx8,
        .q3_k => BlockQ3Kx8,
        else => @compileError("not a low-bit K-quant"),
    };
}

/// Repacks super-block column `b` of eight plain rows into `o`.
pub fn packRecord(comptime f: QuantFormat, rows: [G][*]const u8, b: usize, o: *align(1) BlockX8(f)) void {
    for (0..G) |i| {
        const blk = &@as([*]align(1) const quant.BlockOf(f), @ptrCast(rows[i]))[b];
        o.d[i] = blk.d;
        if (f == .q2_k) o.dmin[i] = blk.dmin;
        for (0..blk.scales.len) |k| o.scales[k][i] = blk.scales[k];
        for (0..2) |h| for (0..8) |c| for (0..4) |k| {
            o.qs[256 * h + 32 * c + 4 * i + k] = blk.qs[32 * h + 4 * c + k];
        };
        if (f == .q3_k) for (0..8) |c| for (0..4) |k| {
            o.hmask[32 * c + 4 * i + k] = blk.hmask[4 * c + k];
        };
    }
}

/// The plain GGML block of lane `i` of a record (the inverse of `packRecord`).
pub fn unpackRecord(comptime f: QuantFormat, rec: *align(1) const BlockX8(f), i: usize) quant.BlockOf(f) {
    var blk: quant.BlockOf(f) = undefined;
    blk.d = rec.d[i];
    if (f == .q2_k) blk.dmin = rec.dmin[i];
    for (0..blk.scales.len) |k| blk.scales[k] = rec.scales[k][i];
    for (0..2) |h| for (0..8) |c| for (0..4) |k| {
        blk.qs[32 * h + 4 * c + k] = rec.qs[256 * h + 32 * c + 4 * i + k];
    };
    if (f == .q3_k) for (0..8) |c| for (0..4) |k| {
        blk.hmask[4 * c + k] = rec.hmask[32 * c + 4 * i + k];
    };
    return blk;
}

inline fn widen(v: U8x8) I32x8 {
    return @intCast(v);
}

/// Dot products of eight interleaved rows (`nb` / 8 records at `group`) with `n` Q8_K rows.
pub inline fn dotGroup(
    comptime f: QuantFormat,
    comptime n: usize,
    group: [*]const u8,
    nb: usize,
    acts: [n][*]const BlockQ8Act,
    out: *[n]F32x8,
) void {
    @setEvalBranchQuota(100_000);
    const recs: [*]align(1) const BlockX8(f) = @ptrCast(group);
    var acc: [n]F32x8 = @splat(@splat(0));
    for (0..nb / 8) |b| {
        const rec = &recs[b];
        const d: F32x8 = @floatCast(@as(@Vector(G, f16), rec.d));
        var sc: [16]I32x8 = undefined;
        var mn: [16]I32x8 = undefined;
        inline for (0..16) |k| {
            if (f == .q2_k) {
                const s: U8x8 = rec.scales[k];
                sc[k] = widen(s & @as(U8x8, @splat(15)));
                mn[k] = widen(s >> @splat(4));
            } else {
                const lo: U8x8 = if (k < 8) @as(U8x8, rec.scales[k]) & @as(U8x8, @splat(15)) else @as(U8x8, rec.scales[k - 8]) >> @splat(4);
                const hi: U8x8 = (@as(U8x8, rec.scales[8 + k % 4]) >> @splat(2 * (k / 4))) & @as(U8x8, @splat(3));
                sc[k] = widen(lo | (hi << @splat(4))) - @as(I32x8, @splat(32));
            }
        }
        var isum: [n]I32x8 = @splat(@splat(0));
        const w_max = if (f == .q2_k) 3 else 7;
        inline for (0..2) |h| {
            var v: [8]U8x32 = undefined;
            inline for (0..8) |c| v[c] = rec.qs[256 * h + 32 * c ..][0..32].*;
            inline for (0..4) |j| {
                const s = 4 * h + j;
                var chunks: [8]I8x32 = undefined;
                inline for (0..8) |c| {
                    var w = (v[c] >> @splat(2 * j)) & @as(U8x32, @splat(3));
                    if (f == .q3_k) {
                        const hm: U8x32 = rec.hmask[32 * c ..][0..32].*;
                        w |= ((hm >> @splat(s)) & @as(U8x32, @splat(1))) << @splat(2);
                    }
                    chunks[c] = @bitCast(w);
                }
                inline for (0..n) |t| {
                    const a = &@as([*]const BlockQ8K, @ptrCast(acts[t]))[b];
                    isum[t] += interleave.chunkSums(w_max, 4, chunks[0..4], a.qs[32 * s ..][0..16]) * sc[2 * s] +
                        interleave.chunkSums(w_max, 4, chunks[4..8], a.qs[32 * s + 16 ..][0..16]) * sc[2 * s + 1];
                }
            }
        }
        inline for (0..n) |t| {
            const a = &@as([*]const BlockQ8K, @ptrCast(acts[t]))[b];
            var side: I32x8 = @splat(0);
            inline for (0..16) |k| side += (if (f == .q2_k) mn[k] else sc[k]) * @as(I32x8, @splat(a.bsums[k]));
            const da: F32x8 = @splat(a.d);
            if (f == .q2_k) {
                acc[t] = @mulAdd(F32x8, @floatFromInt(isum[t]), d * da, acc[t]);
                const dmin: F32x8 = @floatCast(@as(@Vector(G, f16), rec.dmin));
                acc[t] = @mulAdd(F32x8, @floatFromInt(side), -(dmin * da), acc[t]);
            } else {
                // The offset of 4 through the sums of 16: one exact integer per row.
                const total = isum[t] - side * @as(I32x8, @splat(4));
                acc[t] = @mulAdd(F32x8, @floatFromInt(total), d * da, acc[t]);
            }
        }
    }
    out.* = acc;
}

/// Scalar twin of `dotGroup` for one token (the same integers, the same fused multiply-adds).
pub fn dotGroupScalar(comptime f: QuantFormat, group: [*]const u8, nb: usize, act: []const BlockQ8Act) [G]f32 {
    const recs: [*]align(1) const BlockX8(f) = @ptrCast(group);
    const a8: [*]const BlockQ8K = @ptrCast(act.ptr);
    var out: [G]f32 = @splat(0);
    for (0..nb / 8) |b| {
        const a = &a8[b];
        for (0..G) |i| {
            const blk = unpackRecord(f, &recs[b], i);
            const d: f32 = @floatCast(blk.d);
            const r = dotScalar(f, &blk, a);
            if (f == .q2_k) {
                const dmin: f32 = @floatCast(blk.dmin);
                out[i] = @mulAdd(f32, @floatFromInt(r.isum), d * a.d, out[i]);
                out[i] = @mulAdd(f32, @floatFromInt(r.side), -(dmin * a.d), out[i]);
            } else {
                out[i] = @mulAdd(f32, @floatFromInt(r.isum - 4 * r.side), d * a.d, out[i]);
            }
        }
    }
    return out;
}

test "Q3_K scales: 6 bits from two places, minus 32" {
    var s: [12]u8 = @splat(0);
    s[1] = 0x5A; // k = 1: low nibble A; k = 9: high nibble 5
    s[9] = 0b1110_0100; // high bits: k = 1 (bits 0-1) 0, k = 5 (bits 2-3) 1, k = 9 (bits 4-5) 2, k = 13 (bits 6-7) 3
    try std.testing.expectEqual(@as(i32, 0xA - 32), scaleQ3K(&s, 1));
    try std.testing.expectEqual(@as(i32, (0x5 | (2 << 4)) - 32), scaleQ3K(&s, 9));
    try std.testing.expectEqual(@as(i32, (1 << 4) - 32), scaleQ3K(&s, 5));
    try std.testing.expectEqual(@as(i32, (3 << 4) - 32), scaleQ3K(&s, 13));
}
