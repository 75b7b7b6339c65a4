//! GGML K-quants (Q4_K, Q5_K, Q6_K: 256-value super-blocks) and their Q8_K activations: layouts,
//! dequantization, and dot products of one weight row against Q8_K activation rows.
//!
//! Why Q8_K (and not the 32-value BlockQ8Act of the other formats): a super-block's sub-block
//! scales are small integers, so with one activation scale per 256 values a whole super-block
//! sums in exact integers and meets the floats once, as in ggml's vec_dot_q4_K_q8_K. The 16
//! per-16-value sums (`bsums`) fold the minimums (Q4_K) and the offset of 32 (Q6_K) in.
const std = @import("std");
const quant = @import("../quant.zig");
const iq = @import("iquants.zig");
const low = @import("kquants_low.zig");

const BlockQ8Act = quant.BlockQ8Act;
const QuantFormat = quant.QuantFormat;

/// Values per super-block (ggml's QK_K).
pub const super_elems = 256;

/// Q4_K, 144 bytes: `d` and `dmin` (f16), `scales` (eight 6-bit scales and eight 6-bit
/// minimums, packed as in `scaleMin`), then 128 bytes of nibbles: byte 32j + l holds value
/// 64j + l in its low nibble and 64j + 32 + l in its high one (j < 4, l < 32). Value v of
/// sub-block s = v / 32: d * scale[s] * nibble - dmin * min[s].
pub const BlockQ4K = extern struct {
    d: f16,
    dmin: f16,
    scales: [12]u8,
    qs: [128]u8,
};

/// Q5_K, 176 bytes: `d`, `dmin` and `scales` as in Q4_K, `qh` (the fifth bits: bit s of qh[l] is
/// the fifth bit of value 32s + l), then `qs` as in Q4_K. Value v of sub-block s = v / 32:
/// d * scale[s] * (nibble + 16 * fifth) - dmin * min[s].
pub const BlockQ5K = extern struct {
    d: f16,
    dmin: f16,
    scales: [12]u8,
    qh: [32]u8,
    qs: [128]u8,
};

/// Q6_K, 210 bytes: `ql` (low 4 bits), `qh` (high 2 bits), `scales` (16 signed 8-bit scales, one
/// per 16 values), `d` (f16). For half h < 2 and l < 32, with ql' = ql[64h..], qh' = qh[32h..]:
/// value 128h + 32p + l (p < 4) has low bits from ql'[l + 32 (p & 1)] (low nibble for p < 2, high
/// for p >= 2) and high bits (qh'[l] >> 2p) & 3; value v = d * scales[v / 16] * (q6 - 32).
pub const BlockQ6K = extern struct {
    ql: [128]u8,
    qh: [64]u8,
    scales: [16]i8,
    d: f16,
};

/// Q8_K activations, 320 bytes: ggml's block_q8_K (f32 `d`, 256 int8 with |q| <= 127, the sums of
/// each 16 of them; 292 bytes in this order) padded to the size of 8 BlockQ8Act, so a Q8_K row
/// sits in an activation buffer exactly where the 32-value blocks of the same values would.
pub const BlockQ8K = extern struct {
    d: f32,
    qs: [super_elems]i8,
    bsums: [16]i16,
    pad: [28]u8 = @splat(0),
};

comptime {
    std.debug.assert(@sizeOf(BlockQ4K) == 144);
    std.debug.assert(@sizeOf(BlockQ5K) == 176);
    std.debug.assert(@sizeOf(BlockQ6K) == 210);
    std.debug.assert(@sizeOf(BlockQ8K) == 8 * @sizeOf(BlockQ8Act));
    std.debug.assert(@offsetOf(BlockQ8K, "bsums") == 260);
}

/// The Q8_K blocks written over an activation buffer of 32-value blocks.
pub fn q8kView(act: []BlockQ8Act) []BlockQ8K {
    std.debug.assert(act.len % 8 == 0);
    return @as([*]BlockQ8K, @ptrCast(act.ptr))[0 .. act.len / 8];
}

fn q8kConst(act: [*]const BlockQ8Act) [*]const BlockQ8K {
    return @ptrCast(act);
}

// ---------------------------------------------------------------- Q8_K activations

/// Quantizes `x` into Q8_K as ggml's quantize_row_q8_K_ref: the scale from the signed value of
/// largest magnitude (the first one), iscale = -127 / max, q = min(127, round-half-even(iscale *
/// x)), d = 1 / iscale. All-zero blocks get d = 0 and zero sums.
pub fn quantizeQ8K(x: []const f32, out: []BlockQ8K) void {
    std.debug.assert(x.len == super_elems * out.len);
    const V = @Vector(super_elems, f32);
    for (out, 0..) |*blk, b| {
        const v: V = x[b * super_elems ..][0..super_elems].*;
        const av = @abs(v);
        const amax = @reduce(.Max, av);
        if (amax == 0) {
            blk.* = .{ .d = 0, .qs = @splat(0), .bsums = @splat(0) };
            continue;
        }
        const max = x[b * super_elems + std.simd.firstIndexOfValue(av, amax).?];
        const iscale = -127.0 / max;
        const magic: V = @splat(12582912.0);
        const r = @min((v * @as(V, @splat(iscale)) + magic) - magic, @as(V, @splat(127.0)));
        const q: @Vector(super_elems, i8) = @intFromFloat(r);
        blk.qs = q;
        const q16: @Vector(super_elems, i16) = q;
        inline for (0..16) |j| {
            const part: @Vector(16, i16) = @as([super_elems]i16, q16)[16 * j ..][0..16].*;
            blk.bsums[j] = @reduce(.Add, part);
        }
        blk.d = 1.0 / iscale;
        blk.pad = @splat(0);
    }
}

/// Scalar twin of `quantizeQ8K` (bit-identical).
pub fn quantizeQ8KScalar(x: []const f32, out: []BlockQ8K) void {
    std.debug.assert(x.len == super_elems * out.len);
    for (out, 0..) |*blk, b| {
        const xs = x[b * super_elems ..][0..super_elems];
        var amax: f32 = 0;
        var max: f32 = 0;
        for (xs) |v| if (@abs(v) > amax) {
            amax = @abs(v);
            max = v;
        };
        blk.pad = @splat(0);
        if (amax == 0) {
            blk.d = 0;
            blk.qs = @splat(0);
            blk.bsums = @splat(0);
            continue;
        }
        const iscale = -127.0 / max;
        for (xs, &blk.qs) |v, *q| {
            // Round half to even, spelled out.
            const t = iscale * v;
            var r = @floor(t);
            const frac = t - r;
            if (frac > 0.5 or (frac == 0.5 and @mod(r, 2) != 0)) r += 1;
            q.* = @intFromFloat(@min(r, 127.0));
        }
        for (0..16) |j| {
            var s: i16 = 0;
            for (blk.qs[16 * j ..][0..16]) |q| s += q;
            blk.bsums[j] = s;
        }
        blk.d = 1.0 / iscale;
    }
}

// ---------------------------------------------------------------- block decoding

/// Scale and minimum of Q4_K sub-block `j` (< 8), as ggml's get_scale_min_k4: sub-blocks 0..3 use
/// the low 6 bits of bytes j and j + 4; 4..7 a nibble of byte j + 4 and the top 2 bits of bytes
/// j - 4 (scale) and j (minimum).
pub fn scaleMin(scales: *const [12]u8, j: usize) struct { sc: u8, m: u8 } {
    if (j < 4) return .{ .sc = scales[j] & 63, .m = scales[j + 4] & 63 };
    return .{
        .sc = (scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4),
        .m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
    };
}

/// The 4-bit value (0..15) of column `col` (< 256) of a Q4_K block.
pub inline fn q4kAt(blk: *align(1) const BlockQ4K, col: usize) u8 {
    const byte = blk.qs[32 * (col / 64) + col % 32];
    return if (col % 64 < 32) byte & 15 else byte >> 4;
}

/// The 5-bit value (0..31) of column `col` (< 256) of a Q5_K block.
pub inline fn q5kAt(blk: *align(1) const BlockQ5K, col: usize) u8 {
    const byte = blk.qs[32 * (col / 64) + col % 32];
    const lo = if (col % 64 < 32) byte & 15 else byte >> 4;
    return lo | (((blk.qh[col % 32] >> @intCast(col / 32)) & 1) << 4);
}

/// The 6-bit value (0..63, offset 32 not removed) of column `col` (< 256) of a Q6_K block.
pub inline fn q6kAt(blk: *align(1) const BlockQ6K, col: usize) u8 {
    const h = col / 128;
    const p = (col % 128) / 32;
    const l = col % 32;
    const lb = blk.ql[64 * h + l + 32 * (p & 1)];
    const lo = if (p < 2) lb & 15 else lb >> 4;
    const hi = (blk.qh[32 * h + l] >> @intCast(2 * p)) & 3;
    return lo | (hi << 4);
}

/// Dequantizes one row of a K-quant type (out.len a multiple of 256), bit-identical to ggml's
/// dequantize_row_q4_K / _q5_K / _q6_K.
pub fn dequantizeRow(t: quant.GgmlType, src: [*]const u8, out: []f32) void {
    std.debug.assert(out.len % super_elems == 0);
    const ns = out.len / super_elems;
    switch (t) {
        .q4_k => {
            const blocks: [*]align(1) const BlockQ4K = @ptrCast(src);
            for (0..ns) |b| {
                const blk = &blocks[b];
                const d: f32 = @floatCast(blk.d);
                const dmin: f32 = @floatCast(blk.dmin);
                const o = out[b * super_elems ..][0..super_elems];
                for (0..8) |s| {
                    const sm = scaleMin(&blk.scales, s);
                    const d1 = d * @as(f32, @floatFromInt(sm.sc));
                    const m1 = dmin * @as(f32, @floatFromInt(sm.m));
                    for (0..32) |l| o[32 * s + l] = d1 * @as(f32, @floatFromInt(q4kAt(blk, 32 * s + l))) - m1;
                }
            }
        },
        .q5_k => {
            const blocks: [*]align(1) const BlockQ5K = @ptrCast(src);
            for (0..ns) |b| {
                const blk = &blocks[b];
                const d: f32 = @floatCast(blk.d);
                const dmin: f32 = @floatCast(blk.dmin);
                const o = out[b * super_elems ..][0..super_elems];
                for (0..8) |s| {
                    const sm = scaleMin(&blk.scales, s);
                    const d1 = d * @as(f32, @floatFromInt(sm.sc));
                    const m1 = dmin * @as(f32, @floatFromInt(sm.m));
                    for (0..32) |l| o[32 * s + l] = d1 * @as(f32, @floatFromInt(q5kAt(blk, 32 * s + l))) - m1;
                }
            }
        },
        .q6_k => {
            const blocks: [*]align(1) const BlockQ6K = @ptrCast(src);
            for (0..ns) |b| {
                const blk = &blocks[b];
                const d: f32 = @floatCast(blk.d);
                const o = out[b * super_elems ..][0..super_elems];
                for (0..super_elems) |c| {
                    const q: i32 = @as(i32, q6kAt(blk, c)) - 32;
                    o[c] = d * @as(f32, @floatFromInt(blk.scales[c / 16])) * @as(f32, @floatFromInt(q));
                }
            }
        },
        else => unreachable,
    }
}

// ---------------------------------------------------------------- dot products

const I8x32 = @Vector(32, i8);
const U8x32 = @Vector(32, u8);
const I32x8 = @Vector(8, i32);
const F32x8 = @Vector(8, f32);

/// The eight 32-value sub-blocks of a Q4_K block as bytes 0..15 in column order.
inline fn unpackQ4K(blk: *align(1) const BlockQ4K) [8]I8x32 {
    var w: [8]I8x32 = undefined;
    inline for (0..4) |j| {
        const v: U8x32 = blk.qs[32 * j ..][0..32].*;
        w[2 * j] = @bitCast(v & @as(U8x32, @splat(15)));
        w[2 * j + 1] = @bitCast(v >> @splat(4));
    }
    return w;
}

/// The eight 32-value sub-blocks of a Q5_K block as bytes 0..31 in column order.
inline fn unpackQ5K(blk: *align(1) const BlockQ5K) [8]I8x32 {
    var w: [8]I8x32 = undefined;
    const h: U8x32 = blk.qh;
    const one: U8x32 = @splat(1);
    inline for (0..4) |j| {
        const v: U8x32 = blk.qs[32 * j ..][0..32].*;
        const h_lo = (h >> @splat(2 * j)) & one;
        const h_hi = (h >> @splat(2 * j + 1)) & one;
        w[2 * j] = @bitCast((v & @as(U8x32, @splat(15))) | (h_lo << @splat(4)));
        w[2 * j + 1] = @bitCast((v >> @splat(4)) | (h_hi << @splat(4)));
    }
    return w;
}

/// The eight 32-value sub-blocks of a Q6_K block as bytes 0..63 (offset 32 not removed).
inline fn unpackQ6K(blk: *align(1) const BlockQ6K) [8]I8x32 {
    var w: [8]I8x32 = undefined;
    const lo4: U8x32 = @splat(15);
    const lo2: U8x32 = @splat(3);
    inline for (0..2) |h| {
        const a: U8x32 = blk.ql[64 * h ..][0..32].*;
        const b: U8x32 = blk.ql[64 * h + 32 ..][0..32].*;
        const hb: U8x32 = blk.qh[32 * h ..][0..32].*;
        w[4 * h + 0] = @bitCast((a & lo4) | ((hb & lo2) << @splat(4)));
        w[4 * h + 1] = @bitCast((b & lo4) | (((hb >> @splat(2)) & lo2) << @splat(4)));
        w[4 * h + 2] = @bitCast((a >> @splat(4)) | (((hb >> @splat(4)) & lo2) << @splat(4)));
        w[4 * h + 3] = @bitCast((b >> @splat(4)) | ((hb >> @splat(6)) << @splat(4)));
    }
    return w;
}

/// Dot products of one K-quant weight row (`nb` * 32 values) with `n` Q8_K activation rows
/// (`acts[t]` points at the activation buffer of token t, read as BlockQ8K). Each output is
/// computed by the same operations whatever `n` is (batch invariance).
pub inline fn dotRows(
    comptime f: QuantFormat,
    comptime n: usize,
    w_row: [*]const u8,
    nb: usize,
    acts: [n][*]const BlockQ8Act,
    out: *[n]f32,
) void {
    @setEvalBranchQuota(100_000);
    std.debug.assert(nb % 8 == 0);
    const ns = nb / 8;
    var acc: [n]F32x8 = @splat(@splat(0));
    var acc_s: [n]f32 = @splat(0);
    for (0..ns) |b| {
        switch (f) {
            .q4_k, .q5_k => {
                const blk = &@as([*]align(1) const quant.BlockOf(f), @ptrCast(w_row))[b];
                const w = if (f == .q4_k) unpackQ4K(blk) else unpackQ5K(blk);
                var sc: [8]i32 = undefined;
                var mn: [8]i32 = undefined;
                inline for (0..8) |s| {
                    const sm = scaleMin(&blk.scales, s);
                    sc[s] = sm.sc;
                    mn[s] = sm.m;
                }
                const d: f32 = @floatCast(blk.d);
                const dmin: f32 = @floatCast(blk.dmin);
                inline for (0..n) |t| {
                    const a = &q8kConst(acts[t])[b];
                    var isum: I32x8 = @splat(0);
                    var summ: i32 = 0;
                    inline for (0..8) |s| {
                        isum += quant.groupDotScaled(w[s], a.qs[32 * s ..][0..32].*, @splat(@intCast(sc[s])));
                        summ += mn[s] * (@as(i32, a.bsums[2 * s]) + a.bsums[2 * s + 1]);
                    }
                    acc[t] = @mulAdd(F32x8, @floatFromInt(isum), @splat(d * a.d), acc[t]);
                    acc_s[t] = @mulAdd(f32, -dmin * a.d, @floatFromInt(summ), acc_s[t]);
                }
            },
            .q6_k => {
                const blk = &@as([*]align(1) const BlockQ6K, @ptrCast(w_row))[b];
                const w = unpackQ6K(blk);
                const d: f32 = @floatCast(blk.d);
                inline for (0..n) |t| {
                    const a = &q8kConst(acts[t])[b];
                    var isum: I32x8 = @splat(0);
                    var off: i32 = 0;
                    inline for (0..8) |s| {
                        const lo: i32 = blk.scales[2 * s];
                        const hi: i32 = blk.scales[2 * s + 1];
                        const lo16: i16 = @intCast(lo);
                        const hi16: i16 = @intCast(hi);
                        const scv: @Vector(16, i16) = .{ lo16, lo16, lo16, lo16, lo16, lo16, lo16, lo16, hi16, hi16, hi16, hi16, hi16, hi16, hi16, hi16 };
                        isum += quant.groupDotScaled(w[s], a.qs[32 * s ..][0..32].*, scv);
                        off += lo * a.bsums[2 * s] + hi * a.bsums[2 * s + 1];
                    }
                    // The offset of 32 goes through the sums of 16: exact integers.
                    acc[t] = @mulAdd(F32x8, @floatFromInt(isum), @splat(d * a.d), acc[t]);
                    acc_s[t] = @mulAdd(f32, -32.0 * d * a.d, @floatFromInt(off), acc_s[t]);
                }
            },
            .q2_k, .q3_k => {
                const blk = &@as([*]align(1) const quant.BlockOf(f), @ptrCast(w_row))[b];
                const dec = low.Decoded.of(f, blk);
                const d: f32 = @floatCast(blk.d);
                inline for (0..n) |t| {
                    const a = &q8kConst(acts[t])[b];
                    const r = dec.dot(f, a);
                    acc[t] = @mulAdd(F32x8, @floatFromInt(r.isum), @splat(d * a.d), acc[t]);
                    // Q2_K's minimums, Q3_K's offset of 4: through the sums of 16.
                    const side_scale: f32 = if (f == .q2_k) -@as(f32, @floatCast(blk.dmin)) else -4.0 * d;
                    acc_s[t] = @mulAdd(f32, side_scale * a.d, @floatFromInt(r.side), acc_s[t]);
                }
            },
            .iq4_xs => {
                const blk = &@as([*]align(1) const iq.BlockIQ4XS, @ptrCast(w_row))[b];
                const d: f32 = @floatCast(blk.d);
                const dec = iq.DecodedXS.of(blk);
                inline for (0..n) |t| {
                    const a = &q8kConst(acts[t])[b];
                    acc[t] = @mulAdd(F32x8, @floatFromInt(dec.dot(&a.qs)), @splat(d * a.d), acc[t]);
                }
            },
            else => comptime unreachable,
        }
    }
    inline for (0..n) |t| out[t] = quant.hsum8(acc[t]) + acc_s[t];
}

/// Scalar twin of `dotRows` for one activation row (`act`: cols / 32 BlockQ8Act holding Q8_K).
pub fn dotScalar(t: quant.GgmlType, w_row: [*]const u8, act: []const BlockQ8Act) f32 {
    const ns = act.len / 8;
    const a8 = q8kConst(act.ptr);
    var sum: f32 = 0;
    for (0..ns) |b| {
        const a = &a8[b];
        switch (t) {
            inline .q4_k, .q5_k => |kt| {
                const B = if (kt == .q4_k) BlockQ4K else BlockQ5K;
                const blk = &@as([*]align(1) const B, @ptrCast(w_row))[b];
                var isum: i32 = 0;
                var summ: i32 = 0;
                for (0..8) |s| {
                    const sm = scaleMin(&blk.scales, s);
                    var ss: i32 = 0;
                    for (0..32) |l| {
                        const q = if (kt == .q4_k) q4kAt(blk, 32 * s + l) else q5kAt(blk, 32 * s + l);
                        ss += @as(i32, q) * a.qs[32 * s + l];
                    }
                    isum += @as(i32, sm.sc) * ss;
                    summ += @as(i32, sm.m) * (@as(i32, a.bsums[2 * s]) + a.bsums[2 * s + 1]);
                }
                const d: f32 = @floatCast(blk.d);
                const dmin: f32 = @floatCast(blk.dmin);
                sum += d * a.d * @as(f32, @floatFromInt(isum)) - dmin * a.d * @as(f32, @floatFromInt(summ));
            },
            .q6_k => {
                const blk = &@as([*]align(1) const BlockQ6K, @ptrCast(w_row))[b];
                var isum: i32 = 0;
                for (0..16) |h| {
                    var ss: i32 = 0;
                    for (0..16) |l| ss += (@as(i32, q6kAt(blk, 16 * h + l)) - 32) * a.qs[16 * h + l];
                    isum += @as(i32, blk.scales[h]) * ss;
                }
                const d: f32 = @floatCast(blk.d);
                sum += d * a.d * @as(f32, @floatFromInt(isum));
            },
            inline .q2_k, .q3_k => |kt| {
                const f = comptime quant.formatOf(kt).?;
                const blk = &@as([*]align(1) const quant.BlockOf(f), @ptrCast(w_row))[b];
                const r = low.dotScalar(f, blk, a);
                const d: f32 = @floatCast(blk.d);
                const side_scale: f32 = if (f == .q2_k) -@as(f32, @floatCast(blk.dmin)) else -4.0 * d;
                sum += d * a.d * @as(f32, @floatFromInt(r.isum)) + side_scale * a.d * @as(f32, @floatFromInt(r.side));
            },
            .iq4_xs => {
                const blk = &@as([*]align(1) const iq.BlockIQ4XS, @ptrCast(w_row))[b];
                const d: f32 = @floatCast(blk.d);
                sum += d * a.d * @as(f32, @floatFromInt(iq.superDotXSScalar(blk, &a.qs)));
            },
            else => unreachable,
        }
    }
    return sum;
}

// ---------------------------------------------------------------- tests

const testing = std.testing;

/// Random blocks of a format hearth reads but does not make (the K-quants, IQ4): every bit random
/// except the f16 scales, kept small and finite.
pub fn randomBlocks(t: quant.GgmlType, r: std.Random, dst: []u8) void {
    r.bytes(dst);
    const size = t.blockSizeBytes();
    std.debug.assert(dst.len % size == 0);
    var b: usize = 0;
    while (b < dst.len) : (b += size) {
        const blk = dst[b..][0..size];
        const d: f16 = @floatCast((r.float(f32) * 2 - 1) * 0.01);
        const dmin: f16 = @floatCast((r.float(f32) * 2 - 1) * 0.01);
        switch (t) {
            .q4_k, .q5_k => {
                blk[0..2].* = @bitCast(d);
                blk[2..4].* = @bitCast(dmin);
            },
            .q6_k => blk[208..210].* = @bitCast(d),
            .iq4_xs, .iq4_nl => blk[0..2].* = @bitCast(d),
            .q2_k => {
                blk[80..82].* = @bitCast(d);
                blk[82..84].* = @bitCast(dmin);
            },
            .q3_k => blk[108..110].* = @bitCast(d),
            else => unreachable,
        }
    }
}

test "Q8_K quantization: SIMD equals its scalar twin, sums and scale as ggml's reference" {
    var prng = std.Random.DefaultPrng.init(41);
    const r = prng.random();
    var x: [4 * super_elems]f32 = undefined;
    for (&x) |*v| v.* = (r.float(f32) * 2 - 1) * 3;
    @memset(x[super_elems .. 2 * super_elems], 0);
    x[2 * super_elems + 5] = -7; // the largest magnitude is negative: its q is +127
    x[3 * super_elems] = 127; // exact halves round to even
    for (1..64) |j| x[3 * super_elems + j] = @as(f32, @floatFromInt(j)) - 31.5;
    var a: [4]BlockQ8K = undefined;
    var b: [4]BlockQ8K = undefined;
    quantizeQ8K(&x, &a);
    quantizeQ8KScalar(&x, &b);
    for (a, b) |p, q| {
        try testing.expectEqual(q.d, p.d);
        try testing.expectEqual(q.qs, p.qs);
        try testing.expectEqual(q.bsums, p.bsums);
    }
    try testing.expectEqual(@as(f32, 0), a[1].d);
    // The value of largest magnitude always maps to -127, and d takes its sign.
    try testing.expectEqual(@as(i8, -127), a[2].qs[5]);
    try testing.expect(a[2].d > 0 and a[3].d < 0);
    try testing.expectEqual(@as(i8, -127), a[3].qs[0]);
    try testing.expectEqual(@as(i8, 30), a[3].qs[2]); // -29.5 * -1 -> 29.5 -> 30 (even)
    try testing.expectEqual(@as(i8, 28), a[3].qs[4]); // 27.5 -> 28
    try testing.expectEqual(@as(i8, 26), a[3].qs[6]); // 25.5 -> 26
    for (a, 0..) |blk, i| for (blk.qs, 0..) |q, j| {
        try testing.expectApproxEqAbs(x[i * super_elems + j], @as(f32, @floatFromInt(q)) * blk.d, @abs(blk.d) * 0.51 + 1e-6);
    };
}

test "K-quant dot: SIMD equals its scalar twin and float math on the dequantized values" {
    @setEvalBranchQuota(100_000);
    var prng = std.Random.DefaultPrng.init(43);
    const r = prng.random();
    const ns = 3;
    const cols = ns * super_elems;
    var wbuf: [ns * @sizeOf(BlockQ6K)]u8 = undefined;
    var wdeq: [cols]f32 = undefined;
    var x: [4][cols]f32 = undefined;
    var act: [4][cols / 32]BlockQ8Act align(64) = undefined;
    for (&x, &act) |*xt, *at| {
        for (xt) |*v| v.* = (r.float(f32) * 2 - 1) * 2;
        quant.quantizeActAs(.q8_k, xt, at);
    }
    for (0..10) |_| {
        inline for (.{ QuantFormat.q2_k, QuantFormat.q3_k, QuantFormat.q4_k, QuantFormat.q5_k, QuantFormat.q6_k, QuantFormat.iq4_xs }) |f| {
            const t: quant.GgmlType = @field(quant.GgmlType, @tagName(f));
            const w = wbuf[0 .. ns * t.blockSizeBytes()];
            randomBlocks(t, r, w);
            quant.dequantizeRow(t, w.ptr, &wdeq);
            var four: [4]f32 = undefined;
            dotRows(f, 4, w.ptr, cols / 32, .{ &act[0], &act[1], &act[2], &act[3] }, &four);
            for (0..4) |k| {
                var one: [1]f32 = undefined;
                dotRows(f, 1, w.ptr, cols / 32, .{&act[k]}, &one);
                try testing.expectEqual(one[0], four[k]);
                const twin = dotScalar(t, w.ptr, &act[k]);
                try testing.expectApproxEqAbs(twin, one[0], 1e-4 * (1 + @abs(twin)));
                var want: f64 = 0;
                const a8 = q8kView(&act[k]);
                for (0..cols) |c| want += @as(f64, wdeq[c]) * @as(f64, @floatFromInt(a8[c / super_elems].qs[c % super_elems])) * a8[c / super_elems].d;
                try testing.expectApproxEqAbs(@as(f32, @floatCast(want)), one[0], 1e-3 * (1 + @abs(one[0])));
            }
        }
    }
}
