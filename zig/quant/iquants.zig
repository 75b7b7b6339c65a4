//! GGML's non-linear 4-bit formats (IQ4_NL: 32-value blocks read against Q8_0 activations;
//! IQ4_XS: 256-value super-blocks read against Q8_K): layouts, the value table lookup,
//! dequantization, and the per-block pieces of their dot products.
//!
//! A 4-bit index picks one of 16 signed values (`values`, -127..113: denser near zero, where
//! weights are), so a decoded weight is a signed byte and its products with the int8 activations
//! are summed exactly like Q8_0's (quant.groupDot with signed weights). The lookup is one byte
//! shuffle per 16 or 32 indices (pshufb on AVX2, tbl on NEON).
const std = @import("std");
const quant = @import("../quant.zig");
const simd = @import("../simd.zig");

/// ggml's kvalues_iq4nl: the value of each 4-bit index.
pub const values = [16]i8{ -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113 };

/// IQ4_NL, 18 bytes: `d` (f16) then 16 bytes of indices laid out as Q4_0's (byte j: element j in
/// its low nibble, j + 16 in its high one); value = d * values[index].
pub const BlockIQ4NL = extern struct {
    d: f16,
    qs: [16]u8,
};

/// IQ4_XS, 136 bytes: `d` (f16), the eight 6-bit sub-block scales (low 4 bits of sub-block s in
/// nibble s % 2 of `scales_l[s / 2]`, high 2 bits in bits 2s, 2s + 1 of the little-endian
/// `scales_h`), then eight 16-byte sub-blocks of indices, each laid out as IQ4_NL's.
/// Value v of sub-block s = v / 32: d * (scale[s] - 32) * values[index].
pub const BlockIQ4XS = extern struct {
    d: f16,
    scales_h: [2]u8,
    scales_l: [4]u8,
    qs: [128]u8,
};

comptime {
    std.debug.assert(@sizeOf(BlockIQ4NL) == 18);
    std.debug.assert(@sizeOf(BlockIQ4XS) == 136);
}

const I8x32 = @Vector(32, i8);
const U8x32 = @Vector(32, u8);
const I8x16 = @Vector(16, i8);

extern fn @"llvm.x86.avx2.pshuf.b"(table: I8x32, idx: I8x32) I8x32;
extern fn @"llvm.aarch64.neon.tbl1.v16i8"(table: I8x16, idx: I8x16) I8x16;

/// values[idx[j]] for 32 indices (each < 16).
pub inline fn lookup(idx: U8x32) I8x32 {
    @setEvalBranchQuota(100_000);
    const t16: I8x16 = values;
    if (comptime simd.has_avx2) {
        // pshufb looks up within each 16-byte half: the table twice.
        const t32: I8x32 = std.simd.join(t16, t16);
        return @"llvm.x86.avx2.pshuf.b"(t32, @bitCast(idx));
    } else if (comptime simd.isa == .neon) {
        const i: I8x32 = @bitCast(idx);
        const lo = @"llvm.aarch64.neon.tbl1.v16i8"(t16, std.simd.extract(i, 0, 16));
        const hi = @"llvm.aarch64.neon.tbl1.v16i8"(t16, std.simd.extract(i, 16, 16));
        return std.simd.join(lo, hi);
    } else {
        var out: [32]i8 = undefined;
        inline for (0..32) |j| out[j] = values[idx[j]];
        return out;
    }
}

/// Scalar twin of `lookup`.
pub fn lookupScalar(idx: [32]u8) [32]i8 {
    var out: [32]i8 = undefined;
    for (idx, &out) |i, *o| o.* = values[i];
    return out;
}

/// The 32 indices of a 16-byte Q4_0-style run in element order.
pub inline fn unpackIndices(qs: [16]u8) U8x32 {
    const v: @Vector(16, u8) = qs;
    const lo = v & @as(@Vector(16, u8), @splat(15));
    const hi = v >> @as(@Vector(16, u3), @splat(4));
    return std.simd.join(lo, hi);
}

/// The 32 decoded values (signed bytes) of a 16-byte run of indices.
pub inline fn decode(qs: [16]u8) I8x32 {
    return lookup(unpackIndices(qs));
}

/// Scalar twin of `decode`.
pub fn decodeScalar(qs: [16]u8) [32]i8 {
    var idx: [32]u8 = undefined;
    for (qs, 0..) |q, j| {
        idx[j] = q & 15;
        idx[j + 16] = q >> 4;
    }
    return lookupScalar(idx);
}

/// The signed scale (-32..31) of IQ4_XS sub-block `s` (< 8).
pub inline fn scaleXS(scales_h: [2]u8, scales_l: [4]u8, s: usize) i32 {
    const h = std.mem.readInt(u16, &scales_h, .little);
    const lo: i32 = (scales_l[s / 2] >> @intCast(4 * (s % 2))) & 15;
    const hi: i32 = @intCast((h >> @intCast(2 * s)) & 3);
    return (lo | (hi << 4)) - 32;
}

/// Dequantizes one row (`out.len` values) of IQ4_NL or IQ4_XS, bit-identical to ggml's
/// dequantize_row_iq4_nl / _iq4_xs.
pub fn dequantizeRow(t: quant.GgmlType, src: [*]const u8, out: []f32) void {
    switch (t) {
        .iq4_nl => {
            std.debug.assert(out.len % 32 == 0);
            const blocks: [*]align(1) const BlockIQ4NL = @ptrCast(src);
            for (0..out.len / 32) |b| {
                const d: f32 = @floatCast(blocks[b].d);
                for (decodeScalar(blocks[b].qs), 0..) |v, j| out[32 * b + j] = d * @as(f32, @floatFromInt(v));
            }
        },
        .iq4_xs => {
            std.debug.assert(out.len % 256 == 0);
            const blocks: [*]align(1) const BlockIQ4XS = @ptrCast(src);
            for (0..out.len / 256) |b| {
                const blk = &blocks[b];
                const d: f32 = @floatCast(blk.d);
                for (0..8) |s| {
                    const dl = d * @as(f32, @floatFromInt(scaleXS(blk.scales_h, blk.scales_l, s)));
                    const v = decodeScalar(blk.qs[16 * s ..][0..16].*);
                    for (v, 0..) |q, j| out[256 * b + 32 * s + j] = dl * @as(f32, @floatFromInt(q));
                }
            }
        },
        else => unreachable,
    }
}

/// An IQ4_XS super-block decoded once for every token that reads it: eight sub-blocks of signed
/// bytes and their signed scales.
pub const DecodedXS = struct {
    w: [8]I8x32,
    sc: [8]i32,

    pub inline fn of(blk: *align(1) const BlockIQ4XS) DecodedXS {
        @setEvalBranchQuota(100_000);
        var out: DecodedXS = undefined;
        inline for (0..8) |s| {
            out.w[s] = decode(blk.qs[16 * s ..][0..16].*);
            out.sc[s] = scaleXS(blk.scales_h, blk.scales_l, s);
        }
        return out;
    }

    /// Exact integer dot product with one Q8_K block's int8 values (lanes to be summed):
    /// sum over sub-blocks of scale * (values · activations).
    pub inline fn dot(self: *const DecodedXS, aq: *const [256]i8) @Vector(8, i32) {
        @setEvalBranchQuota(100_000);
        var isum: @Vector(8, i32) = @splat(0);
        inline for (0..8) |s| {
            isum += quant.groupDot(false, self.w[s], aq[32 * s ..][0..32].*) * @as(@Vector(8, i32), @splat(self.sc[s]));
        }
        return isum;
    }
};

/// Scalar twin of `DecodedXS.dot` (its lanes summed).
pub fn superDotXSScalar(blk: *align(1) const BlockIQ4XS, aq: *const [256]i8) i32 {
    var isum: i32 = 0;
    for (0..8) |s| {
        const w = decodeScalar(blk.qs[16 * s ..][0..16].*);
        var ss: i32 = 0;
        for (0..32) |j| ss += @as(i32, w[j]) * aq[32 * s + j];
        isum += ss * scaleXS(blk.scales_h, blk.scales_l, s);
    }
    return isum;
}

// ---------------------------------------------------------------- tests

const testing = std.testing;

test "the value lookup equals its scalar twin for every index" {
    var idx: [32]u8 = undefined;
    for (0..2) |round| {
        for (&idx, 0..) |*x, j| x.* = @intCast((j + 7 * round) % 16);
        const got: [32]i8 = lookup(idx);
        try testing.expectEqual(lookupScalar(idx), got);
    }
    var prng = std.Random.DefaultPrng.init(17);
    const r = prng.random();
    for (0..50) |_| {
        var qs: [16]u8 = undefined;
        r.bytes(&qs);
        const got: [32]i8 = decode(qs);
        try testing.expectEqual(decodeScalar(qs), got);
    }
}

test "IQ4_XS scales: 6 bits from two places, minus 32" {
    // Sub-block 3: low nibble = high nibble of scales_l[1], high bits = bits 6, 7 of scales_h.
    const h = [2]u8{ 0b1100_0000, 0 };
    const l = [4]u8{ 0, 0xA0, 0, 0 };
    try testing.expectEqual(@as(i32, (0xA | (3 << 4)) - 32), scaleXS(h, l, 3));
    try testing.expectEqual(@as(i32, -32), scaleXS(h, l, 0));
    const all = [2]u8{ 0xFF, 0xFF };
    const l_all = [4]u8{ 0xFF, 0xFF, 0xFF, 0xFF };
    for (0..8) |s| try testing.expectEqual(@as(i32, 31), scaleXS(all, l_all, s));
}

test "IQ4_XS super-block dot equals its scalar twin" {
    var prng = std.Random.DefaultPrng.init(19);
    const r = prng.random();
    for (0..40) |_| {
        var blk: BlockIQ4XS = undefined;
        r.bytes(std.mem.asBytes(&blk));
        var aq: [256]i8 = undefined;
        for (&aq) |*a| a.* = r.intRangeAtMost(i8, -127, 127);
        const dec = DecodedXS.of(&blk);
        try testing.expectEqual(superDotXSScalar(&blk, &aq), @reduce(.Add, dec.dot(&aq)));
    }
}
