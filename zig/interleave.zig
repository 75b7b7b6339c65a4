//! Weights repacked eight rows at a time (Q4_0x8, Q4_1x8, Q5_0x8, Q5_1x8, Q8_0x8, IQ4_NLx8; the
//! super-block formats' records in quant/kquants_x8.zig) so one block column of eight rows
//! is one contiguous record: four activation bytes broadcast across a vector meet four bytes of
//! each of the eight rows, and one integer multiply-add serves all eight rows at once.
//!
//! Why: in the plain GGML layout every (row, block) pays its own scale conversion, a horizontal
//! reduction tree and a scalar minimum term; with eight rows per record those become one vector
//! operation per eight rows, and the AVX2 path can even sum a whole block in 16-bit lanes before
//! widening once. The repacked tensor has exactly the plain tensor's size.
//!
//! Record layout for one block column `b` of the group of rows 8g..8g+7 (lane i is row 8g+i):
//! - Q4_0x8 (144 B): d[8] f16, qs[128]; Q4_1x8 (160 B): d[8] f16, m[8] f16, qs[128].
//!   qs[32j + 4i + k] = the GGML byte qs[4j + k] of lane i: its low nibble is column 4j+k and its
//!   high nibble column 16+4j+k (j < 4, k < 4). So the low nibbles of qs[32j..32j+32] are
//!   "chunk" j (columns 4j..4j+3 of all eight rows) and the high nibbles chunk 4+j.
//! - Q5_0x8 (176 B): d[8] f16, qh[32], qs[128]; Q5_1x8 (192 B): d[8], m[8], qh[32], qs[128]. qs as
//!   in Q4_0x8; bit c of qh[4i + k] is the fifth bit of column 4c+k of lane i (chunk c < 8), so a
//!   chunk's fifth bits are one shift and one mask of the 32 bytes away.
//! - Q8_0x8 (272 B): d[8] f16, qs[256]; qs[32c + 4i + k] = column 4c+k of lane i (chunk c < 8).
//! - IQ4_NLx8 (144 B): Q4_0x8's record, the nibbles indexing iquants.values instead of minus 8.
//!
//! Every (token, row) result is computed by the same operations whatever the token count or the
//! thread count, and equals `dotGroupScalar` bit for bit (exact integer block sums, then the
//! same two fused multiply-adds per block).
const std = @import("std");
const quant = @import("quant.zig");
const simd = @import("simd.zig");
const kx8 = @import("quant/kquants_x8.zig");

const BlockQ8Act = quant.BlockQ8Act;
const QuantFormat = quant.QuantFormat;

/// Rows per interleaved group.
pub const group_rows = 8;

pub const BlockQ4_0x8 = extern struct {
    d: [group_rows]f16,
    qs: [128]u8,
};

pub const BlockQ4_1x8 = extern struct {
    d: [group_rows]f16,
    m: [group_rows]f16,
    qs: [128]u8,
};

pub const BlockQ5_0x8 = extern struct {
    d: [group_rows]f16,
    qh: [32]u8,
    qs: [128]u8,
};

pub const BlockQ5_1x8 = extern struct {
    d: [group_rows]f16,
    m: [group_rows]f16,
    qh: [32]u8,
    qs: [128]u8,
};

pub const BlockQ8_0x8 = extern struct {
    d: [group_rows]f16,
    qs: [256]i8,
};

comptime {
    std.debug.assert(@sizeOf(BlockQ4_0x8) == group_rows * @sizeOf(quant.BlockQ4_0));
    std.debug.assert(@sizeOf(BlockQ4_1x8) == group_rows * @sizeOf(quant.BlockQ4_1));
    std.debug.assert(@sizeOf(BlockQ5_0x8) == group_rows * @sizeOf(quant.BlockQ5_0));
    std.debug.assert(@sizeOf(BlockQ5_1x8) == group_rows * @sizeOf(quant.BlockQ5_1));
    std.debug.assert(@sizeOf(BlockQ8_0x8) == group_rows * @sizeOf(quant.BlockQ8_0));
}

fn BlockX8(comptime f: QuantFormat) type {
    return switch (f) {
        .q4_0, .iq4_nl => BlockQ4_0x8,
        .q4_1 => BlockQ4_1x8,
        .q5_0 => BlockQ5_0x8,
        .q5_1 => BlockQ5_1x8,
        .q8_0 => BlockQ8_0x8,
        .q2_k, .q3_k, .q4_k, .q5_k, .q6_k, .iq4_xs => kx8.BlockX8(f),
    };
}

const PlainBlock = quant.BlockOf;

pub const formatOf = quant.formatOf;

/// Whether a `rows` x `cols` matrix of type `t` can be interleaved (quantized, rows in whole groups).
pub fn canInterleave(t: quant.GgmlType, rows: usize, cols: usize) bool {
    return formatOf(t) != null and rows > 0 and rows % group_rows == 0 and cols > 0 and cols % t.blockElems() == 0;
}

/// Blocks (records) per row of `cols` columns of format `f`.
fn blocksPerRow(comptime f: QuantFormat, cols: usize) usize {
    return cols / (if (comptime f.isK()) quant.kquants.super_elems else quant.block_elems);
}

// ---------------------------------------------------------------- repack

/// Repacks row groups [g0, g1) of the plain matrix `src` (type `t`, `cols` columns) into `dst`
/// (same byte offsets: group g starts at g * 8 * row_bytes in both).
pub fn repackGroups(t: quant.GgmlType, src: [*]const u8, dst: [*]u8, cols: usize, g0: usize, g1: usize) void {
    switch (formatOf(t).?) {
        inline else => |f| repackGroupsOf(f, src, dst, cols, g0, g1),
    }
}

fn repackGroupsOf(comptime f: QuantFormat, src: [*]const u8, dst: [*]u8, cols: usize, g0: usize, g1: usize) void {
    const nb = blocksPerRow(f, cols);
    const row_bytes = nb * @sizeOf(PlainBlock(f));
    for (g0..g1) |g| {
        const out: [*]align(1) BlockX8(f) = @ptrCast(dst + g * group_rows * row_bytes);
        if (comptime f.isK()) {
            var rows: [group_rows][*]const u8 = undefined;
            for (0..group_rows) |i| rows[i] = src + (g * group_rows + i) * row_bytes;
            for (0..nb) |b| kx8.packRecord(f, rows, b, &out[b]);
            continue;
        }
        for (0..nb) |b| {
            const o = &out[b];
            for (0..group_rows) |i| {
                const in: [*]align(1) const PlainBlock(f) = @ptrCast(src + (g * group_rows + i) * row_bytes);
                const blk = in[b];
                o.d[i] = blk.d;
                if (f == .q4_1 or f == .q5_1) o.m[i] = blk.m;
                if (f == .q5_0 or f == .q5_1) {
                    const q = quant.q5Values(blk.qs, blk.qh);
                    for (0..4) |k| {
                        var bits: u8 = 0;
                        for (0..8) |c| bits |= (q[4 * c + k] >> 4) << @intCast(c);
                        o.qh[4 * i + k] = bits;
                    }
                }
                const chunks = if (f == .q8_0) 8 else 4;
                for (0..chunks) |c| for (0..4) |k| {
                    o.qs[32 * c + 4 * i + k] = blk.qs[4 * c + k];
                };
            }
        }
    }
}

/// Dequantizes row `r` of an interleaved matrix (type `t`, `cols` columns) into `out` (cols values).
pub fn dequantizeRow(t: quant.GgmlType, data: [*]const u8, cols: usize, r: usize, out: []f32) void {
    switch (formatOf(t).?) {
        inline else => |f| dequantizeRowOf(f, data, cols, r, out),
    }
}

fn dequantizeRowOf(comptime f: QuantFormat, data: [*]const u8, cols: usize, r: usize, out: []f32) void {
    const nb = blocksPerRow(f, cols);
    const g = r / group_rows;
    const i = r % group_rows;
    const blocks: [*]align(1) const BlockX8(f) = @ptrCast(data + g * group_rows * nb * @sizeOf(PlainBlock(f)));
    if (comptime f.isK()) {
        // Back to the plain block, then GGML's own dequantization: bit-identical by construction.
        const n = quant.kquants.super_elems;
        for (0..nb) |b| {
            const blk = kx8.unpackRecord(f, &blocks[b], i);
            quant.dequantizeRow(@field(quant.GgmlType, @tagName(f)), @ptrCast(&blk), out[b * n ..][0..n]);
        }
        return;
    }
    for (0..nb) |b| {
        const blk = &blocks[b];
        const d: f32 = @floatCast(blk.d[i]);
        const o = out[b * quant.block_elems ..][0..quant.block_elems];
        switch (f) {
            .q8_0 => for (0..8) |c| for (0..4) |k| {
                o[4 * c + k] = @as(f32, @floatFromInt(blk.qs[32 * c + 4 * i + k])) * d;
            },
            .q4_0, .q4_1 => {
                const m: f32 = if (f == .q4_1) @floatCast(blk.m[i]) else -8.0 * d;
                for (0..4) |c| for (0..4) |k| {
                    const q = blk.qs[32 * c + 4 * i + k];
                    o[4 * c + k] = @as(f32, @floatFromInt(q & 15)) * d + m;
                    o[16 + 4 * c + k] = @as(f32, @floatFromInt(q >> 4)) * d + m;
                };
            },
            .iq4_nl => for (0..4) |c| for (0..4) |k| {
                const q = blk.qs[32 * c + 4 * i + k];
                o[4 * c + k] = d * @as(f32, @floatFromInt(quant.iquants.values[q & 15]));
                o[16 + 4 * c + k] = d * @as(f32, @floatFromInt(quant.iquants.values[q >> 4]));
            },
            .q5_0, .q5_1 => for (0..4) |c| for (0..4) |k| {
                const q = blk.qs[32 * c + 4 * i + k];
                const h = blk.qh[4 * i + k];
                const lo: u8 = (q & 15) | ((h >> @intCast(c)) & 1) << 4;
                const hi: u8 = (q >> 4) | ((h >> @intCast(c + 4)) & 1) << 4;
                if (f == .q5_0) {
                    o[4 * c + k] = @as(f32, @floatFromInt(@as(i32, lo) - 16)) * d;
                    o[16 + 4 * c + k] = @as(f32, @floatFromInt(@as(i32, hi) - 16)) * d;
                } else {
                    const m: f32 = @floatCast(blk.m[i]);
                    o[4 * c + k] = @as(f32, @floatFromInt(lo)) * d + m;
                    o[16 + 4 * c + k] = @as(f32, @floatFromInt(hi)) * d + m;
                }
            },
            else => comptime unreachable,
        }
    }
}

// ---------------------------------------------------------------- dot products

const I8x32 = @Vector(32, i8);
const U8x32 = @Vector(32, u8);
const I16x16 = @Vector(16, i16);
const I32x8 = @Vector(8, i32);
const F32x8 = @Vector(8, f32);

extern fn @"llvm.x86.avx2.pmadd.ub.sw"(a: U8x32, b: I8x32) I16x16;
extern fn @"llvm.x86.avx2.pmadd.wd"(a: I16x16, b: I16x16) I32x8;

/// (v >> shift) & mask in every byte, shifted as 16-bit lanes: x86 has no byte shift, and the
/// vgf2p8affineqb LLVM emits for one (with GFNI) takes a multiply-pipe slot on Zen 4, where
/// vpsrlw + vpand do not. Equal to the byte shift when mask keeps no bit that came in from the
/// neighbouring byte (mask < 256 >> shift).
pub inline fn shrMask(v: U8x32, shift: u4, comptime mask: u8) U8x32 {
    std.debug.assert(shift < 8 and @as(u16, mask) << shift < 256);
    const words: @Vector(16, u16) = @bitCast(v);
    const shifted: U8x32 = @bitCast(words >> @splat(shift));
    return shifted & @as(U8x32, @splat(mask));
}

/// (v << shift) & mask in every byte, as `shrMask` (mask keeps no bit below `shift`).
pub inline fn shlMask(v: U8x32, shift: u4, comptime mask: u8) U8x32 {
    std.debug.assert(shift < 8 and mask & ((@as(u16, 1) << shift) - 1) == 0);
    const words: @Vector(16, u16) = @bitCast(v);
    const shifted: U8x32 = @bitCast(words << @splat(shift));
    return shifted & @as(U8x32, @splat(mask));
}

/// Activation bytes 4c..4c+3 repeated eight times (one per lane / row).
inline fn broadcast4(aq: []const i8, c: usize) I8x32 {
    const word = std.mem.readInt(i32, @ptrCast(aq[4 * c ..][0..4]), .little);
    return @bitCast(@as(I32x8, @splat(word)));
}

/// Lane i = sum over `n_chunks` chunks (4 columns each) of w(row i) * a: exact integers, for
/// unsigned weights 0..w_max. AVX2 sums as many chunks in 16-bit lanes as cannot overflow them
/// (a pair of products is <= 2 * 127 * w_max: 8 chunks of 4-bit weights, 4 of 5-bit, 2 of
/// 6-bit) before each widening multiply-add.
pub inline fn chunkSums(comptime w_max: comptime_int, comptime n_chunks: comptime_int, chunks: *const [n_chunks]I8x32, aq: *const [4 * n_chunks]i8) I32x8 {
    if (comptime simd.has_vnni) {
        // One vpdpbusd per chunk, the activation word broadcast from memory; two chains so
        // consecutive multiply-adds do not wait on each other's latency.
        var s: [2]I32x8 = @splat(@splat(0));
        inline for (0..n_chunks) |c| s[c % 2] = quant.dotAccU8(s[c % 2], @bitCast(chunks[c]), broadcast4(aq, c));
        return s[0] + s[1];
    }
    if (comptime simd.has_avx2) {
        const run = comptime @min(n_chunks, std.math.maxInt(i16) / (2 * 127 * w_max));
        comptime std.debug.assert(run >= 1 and n_chunks % run == 0);
        var s: I32x8 = @splat(0);
        inline for (0..n_chunks / run) |r| {
            var s16: I16x16 = @splat(0);
            inline for (0..run) |k| {
                const c = r * run + k;
                s16 +%= @"llvm.x86.avx2.pmadd.ub.sw"(@bitCast(chunks[c]), broadcast4(aq, c));
            }
            s += @"llvm.x86.avx2.pmadd.wd"(s16, @splat(1));
        }
        return s;
    }
    var s: I32x8 = @splat(0);
    inline for (0..n_chunks) |c| s += quant.groupDot(true, chunks[c], broadcast4(aq, c));
    return s;
}

/// Lane i = sum over the block's 32 columns of w(row i) * a: exact integers (w_max 0: signed
/// weights).
inline fn blockSums(comptime w_max: comptime_int, chunks: *const [8]I8x32, aq: *const [32]i8) I32x8 {
    if (w_max > 0) return chunkSums(w_max, 8, chunks, aq);
    return signedBlockSums(chunks, aq);
}

/// `blockSums` for signed weights (-127..127): one sign-moving multiply-add per chunk.
pub inline fn signedBlockSums(chunks: *const [8]I8x32, aq: *const [32]i8) I32x8 {
    if (comptime simd.has_vnni) {
        var s: [2]I32x8 = @splat(@splat(0));
        inline for (0..8) |c| s[c % 2] = quant.dotAccI8(s[c % 2], @abs(chunks[c]), chunks[c], broadcast4(aq, c));
        return s[0] + s[1];
    }
    var s: I32x8 = @splat(0);
    inline for (0..8) |c| s += quant.groupDot(false, chunks[c], broadcast4(aq, c));
    return s;
}

/// Dot products of one group of eight interleaved rows (`nb` records at `group`) with `n`
/// activation rows: out[t][i] = row i · token t. The group is decoded once per record.
pub inline fn dotGroup(
    comptime f: QuantFormat,
    comptime n: usize,
    group: [*]const u8,
    nb: usize,
    acts: [n][*]const BlockQ8Act,
    out: *[n]F32x8,
) void {
    @setEvalBranchQuota(100_000);
    if (comptime f.isK()) return kx8.dotGroup(f, n, group, nb, acts, out);
    const blocks: [*]align(1) const BlockX8(f) = @ptrCast(group);
    var acc: [n]F32x8 = @splat(@splat(0));
    for (0..nb) |b| {
        const blk = &blocks[b];
        const dw: F32x8 = @floatCast(@as(@Vector(group_rows, f16), blk.d));
        var chunks: [8]I8x32 = undefined;
        switch (f) {
            .q4_0, .q4_1, .q5_0, .q5_1 => inline for (0..4) |j| {
                const v: U8x32 = blk.qs[32 * j ..][0..32].*;
                chunks[j] = @bitCast(v & @as(U8x32, @splat(15)));
                chunks[4 + j] = @bitCast(shrMask(v, 4, 15));
            },
            .iq4_nl => inline for (0..4) |j| {
                const v: U8x32 = blk.qs[32 * j ..][0..32].*;
                chunks[j] = quant.iquants.lookup(v & @as(U8x32, @splat(15)));
                chunks[4 + j] = quant.iquants.lookup(v >> @as(@Vector(32, u3), @splat(4)));
            },
            .q8_0 => inline for (0..8) |c| {
                chunks[c] = blk.qs[32 * c ..][0..32].*;
            },
            else => comptime unreachable,
        }
        if (f == .q5_0 or f == .q5_1) {
            const h: U8x32 = blk.qh;
            inline for (0..8) |c| {
                const fifth = if (c <= 4) shlMask(h, 4 - c, 16) else shrMask(h, c - 4, 16);
                chunks[c] |= @bitCast(fifth);
            }
        }
        const offset: F32x8 = switch (f) {
            .q4_0 => dw * @as(F32x8, @splat(-8.0)),
            .q5_0 => dw * @as(F32x8, @splat(-16.0)),
            .q4_1, .q5_1 => @floatCast(@as(@Vector(group_rows, f16), blk.m)),
            .q8_0, .iq4_nl => undefined,
            else => comptime unreachable,
        };
        inline for (0..n) |t| {
            const a = &acts[t][b];
            const w_max = switch (f) {
                .q8_0, .iq4_nl => 0,
                .q5_0, .q5_1 => 31,
                else => 15,
            };
            const isum = blockSums(w_max, &chunks, &a.qs);
            acc[t] = @mulAdd(F32x8, @floatFromInt(isum), dw * @as(F32x8, @splat(a.d)), acc[t]);
            if (f != .q8_0 and f != .iq4_nl) acc[t] = @mulAdd(F32x8, offset, @splat(a.s), acc[t]);
        }
    }
    out.* = acc;
}

/// Scalar twin of `dotGroup` for one token: the same integers and the same fused multiply-adds
/// in the same order, so the results are bit-identical.
pub fn dotGroupScalar(t: quant.GgmlType, group: [*]const u8, nb: usize, act: []const BlockQ8Act) [group_rows]f32 {
    return switch (formatOf(t).?) {
        inline .q2_k, .q3_k, .q4_k, .q5_k, .q6_k, .iq4_xs => |f| kx8.dotGroupScalar(f, group, nb, act),
        inline else => |f| dotGroupScalarOf(f, group, nb, act),
    };
}

fn dotGroupScalarOf(comptime f: QuantFormat, group: [*]const u8, nb: usize, act: []const BlockQ8Act) [group_rows]f32 {
    const blocks: [*]align(1) const BlockX8(f) = @ptrCast(group);
    var out: [group_rows]f32 = @splat(0);
    for (0..nb) |b| {
        const blk = &blocks[b];
        const a = act[b];
        for (0..group_rows) |i| {
            var isum: i32 = 0;
            switch (f) {
                .q8_0 => for (0..8) |c| for (0..4) |k| {
                    isum += @as(i32, blk.qs[32 * c + 4 * i + k]) * a.qs[4 * c + k];
                },
                .q4_0, .q4_1 => for (0..4) |c| for (0..4) |k| {
                    const q = blk.qs[32 * c + 4 * i + k];
                    isum += @as(i32, q & 15) * a.qs[4 * c + k] + @as(i32, q >> 4) * a.qs[16 + 4 * c + k];
                },
                .iq4_nl => for (0..4) |c| for (0..4) |k| {
                    const q = blk.qs[32 * c + 4 * i + k];
                    isum += @as(i32, quant.iquants.values[q & 15]) * a.qs[4 * c + k] + @as(i32, quant.iquants.values[q >> 4]) * a.qs[16 + 4 * c + k];
                },
                .q5_0, .q5_1 => for (0..4) |c| for (0..4) |k| {
                    const q = blk.qs[32 * c + 4 * i + k];
                    const h = blk.qh[4 * i + k];
                    const lo: i32 = (q & 15) | ((h >> @intCast(c)) & 1) << 4;
                    const hi: i32 = (q >> 4) | ((h >> @intCast(c + 4)) & 1) << 4;
                    isum += lo * a.qs[4 * c + k] + hi * a.qs[16 + 4 * c + k];
                },
                else => comptime unreachable,
            }
            const dw: f32 = @floatCast(blk.d[i]);
            out[i] = @mulAdd(f32, @floatFromInt(isum), dw * a.d, out[i]);
            switch (f) {
                .q4_0 => out[i] = @mulAdd(f32, dw * -8.0, a.s, out[i]),
                .q5_0 => out[i] = @mulAdd(f32, dw * -16.0, a.s, out[i]),
                .q4_1, .q5_1 => out[i] = @mulAdd(f32, @as(f32, @floatCast(blk.m[i])), a.s, out[i]),
                .q8_0, .iq4_nl => {},
                else => comptime unreachable,
            }
        }
    }
    return out;
}

// ---------------------------------------------------------------- tests

const testing = std.testing;

test "record layouts" {
    try testing.expectEqual(@as(usize, 16), @offsetOf(BlockQ4_0x8, "qs"));
    try testing.expectEqual(@as(usize, 16), @offsetOf(BlockQ4_1x8, "m"));
    try testing.expectEqual(@as(usize, 32), @offsetOf(BlockQ4_1x8, "qs"));
    try testing.expectEqual(@as(usize, 16), @offsetOf(BlockQ8_0x8, "qs"));
    try testing.expect(canInterleave(.q4_1, 16, 64));
    try testing.expect(!canInterleave(.q4_1, 12, 64));
    try testing.expect(!canInterleave(.f16, 16, 64));
}

test "interleaved dot equals its scalar twin bit for bit, and the plain dot within rounding, for every format and token count" {
    @setEvalBranchQuota(100_000);
    const rows = 24;
    const nb = 11;
    const cols = nb * 32;
    var prng = std.Random.DefaultPrng.init(17);
    const r = prng.random();
    var wf: [rows * cols]f32 = undefined;
    for (&wf) |*v| v.* = r.float(f32) * 2 - 1;
    // Extreme activations in token 0 (every |q| = 127) to exercise the 16-bit block sums.
    var x: [5 * cols]f32 = undefined;
    for (&x, 0..) |*v, j| v.* = if (j < cols) (if (j % 3 == 0) -1 else 1) else (r.float(f32) * 2 - 1) * 3;
    var act: [5 * nb]BlockQ8Act = undefined;
    quant.quantizeAct(&x, &act);
    var plain: [rows * cols * 2]u8 = undefined;
    var packed_buf: [rows * cols * 2]u8 = undefined;
    var deq: [cols]f32 = undefined;
    var deq_plain: [cols]f32 = undefined;
    inline for (.{ QuantFormat.q4_0, QuantFormat.q4_1, QuantFormat.q5_0, QuantFormat.q5_1, QuantFormat.q8_0, QuantFormat.iq4_nl }) |f| {
        const t: quant.GgmlType = @field(quant.GgmlType, @tagName(f));
        const rb = quant.rowSizeBytes(t, cols);
        // IQ4_NL (hearth does not quantize to it): random indices, small scales.
        if (f == .iq4_nl) quant.kquants.randomBlocks(t, r, plain[0 .. rows * rb]) else for (0..rows) |i| quant.quantizeRow(t, wf[i * cols ..][0..cols], plain[i * rb ..].ptr);
        // Q4_1 with all-15 nibbles in row 0 (the largest unsigned weights).
        if (f == .q4_1) for (0..nb) |b| @memset(plain[b * 20 + 4 ..][0..16], 0xff);
        // Q5_1 with all-31 values in row 0 (the largest five-bit weights).
        if (f == .q5_1) for (0..nb) |b| @memset(plain[b * 24 + 4 ..][0..20], 0xff);
        repackGroups(t, &plain, &packed_buf, cols, 0, rows / group_rows);
        for (0..rows) |row| {
            dequantizeRow(t, &packed_buf, cols, row, &deq);
            quant.dequantizeRow(t, plain[row * rb ..].ptr, &deq_plain);
            try testing.expectEqualSlices(f32, &deq_plain, &deq);
        }
        for (0..rows / group_rows) |g| {
            const grp = packed_buf[g * group_rows * rb ..].ptr;
            var four: [4]F32x8 = undefined;
            dotGroup(f, 4, grp, nb, .{ act[0..].ptr, act[nb..].ptr, act[2 * nb ..].ptr, act[3 * nb ..].ptr }, &four);
            for (0..5) |tok| {
                var one: [1]F32x8 = undefined;
                dotGroup(f, 1, grp, nb, .{act[tok * nb ..].ptr}, &one);
                const twin = dotGroupScalar(t, grp, nb, act[tok * nb ..][0..nb]);
                const simd_one: [group_rows]f32 = one[0];
                try testing.expectEqual(twin, simd_one);
                if (tok < 4) try testing.expectEqual(simd_one, @as([group_rows]f32, four[tok]));
                for (0..group_rows) |i| {
                    const want = quant.dotQuantScalar(t, plain[(g * group_rows + i) * rb ..].ptr, act[tok * nb ..][0..nb]);
                    try testing.expectApproxEqAbs(want, twin[i], 1e-4 * (1 + @abs(want)));
                }
            }
        }
    }
}
