//! Super-block weights repacked eight rows at a time (Q4_Kx8, Q5_Kx8, Q6_Kx8, IQ4_XSx8), as interleave.zig does for the
//! 32-value formats: one record is one super-block column of eight rows, its bytes arranged so
//! that four activation bytes broadcast across a vector meet four bytes of each row, and one
//! integer multiply-add serves all eight rows. A record has exactly the size of eight blocks.
//!
//! Q4_Kx8 (1152 B): d[8], dmin[8] (f16, lane i = row 8g+i), scales[12][8] (byte k of lane i's
//! packed scales at [k][i], so one 8-byte load holds byte k of every row), qs[1024]:
//! qs[256j + 32c + 4i + k] = GGML qs[32j + 4c + k] of lane i (j < 4, c < 8, k < 4): its low
//! nibble is column 64j + 4c + k (sub-block 2j, "chunk" c) and its high nibble column
//! 64j + 32 + 4c + k (sub-block 2j + 1).
//!
//! Q5_Kx8 (1408 B): d, dmin and scales as in Q4_Kx8, then qh[256]: qh[32c + 4i + k] = GGML
//! qh[4c + k] of lane i (bit s is the fifth bit of column 32s + 4c + k), then qs as in Q4_Kx8.
//!
//! Q6_Kx8 (1680 B): d[8] (f16), scales[16][8] (i8, transposed as above), bits[1536], by 32-column
//! sub-block s < 8 and chunk c < 8 (columns 32s + 4c .. +3): the low 4 bits of column 32s + 4c + k
//! of lane i are nibble (s & 1) of bits[qlAt(s / 2, c) + 4i + k], its high 2 bits are bits 2 (s % 4)
//! of bits[qhAt(s / 4, c) + 4i + k]. The high bits of four sub-blocks come first, then the low bits
//! of those four, so the kernel reads each record front to back.
//!
//! IQ4_XSx8 (1088 B): d[8] (f16), scales_h[2][8] and scales_l[4][8] (byte k of lane i's packed
//! scales at [k][i]), qs[1024]: qs[128s + 32c + 4i + k] = GGML qs[16s + 4c + k] of lane i (s < 8,
//! c < 4, k < 4): its low nibble indexes column 32s + 4c + k, its high nibble column 32s + 16 + 4c + k.
//!
//! Every (token, row) result is computed by the same operations whatever the token or thread
//! count, and equals `dotGroupScalar` bit for bit: exact integer super-block sums, then the same
//! fused multiply-adds.
const std = @import("std");
const quant = @import("../quant.zig");
const kq = @import("kquants.zig");
const iq = @import("iquants.zig");
const low = @import("kquants_low.zig");
const interleave = @import("../interleave.zig");
const simd = @import("../simd.zig");

const BlockQ8Act = quant.BlockQ8Act;
const BlockQ8K = kq.BlockQ8K;
const QuantFormat = quant.QuantFormat;
const G = 8;

pub const BlockQ4Kx8 = extern struct {
    d: [G]f16,
    dmin: [G]f16,
    scales: [12][G]u8,
    qs: [1024]u8,
};

pub const BlockQ5Kx8 = extern struct {
    d: [G]f16,
    dmin: [G]f16,
    scales: [12][G]u8,
    qh: [256]u8,
    qs: [1024]u8,
};

pub const BlockQ6Kx8 = extern struct {
    d: [G]f16,
    scales: [16][G]i8,
    bits: [1536]u8,
};

pub const BlockIQ4XSx8 = extern struct {
    d: [G]f16,
    scales_h: [2][G]u8,
    scales_l: [4][G]u8,
    qs: [1024]u8,
};

/// Offset in `BlockQ6Kx8.bits` of the low bits of sub-blocks 2sp, 2sp + 1 (sp < 4), chunk c.
inline fn qlAt(sp: usize, c: usize) usize {
    return 768 * (sp / 2) + 256 + 256 * (sp % 2) + 32 * c;
}

/// Offset in `BlockQ6Kx8.bits` of the high bits of sub-blocks 4p .. 4p + 3 (p < 2), chunk c.
inline fn qhAt(p: usize, c: usize) usize {
    return 768 * p + 32 * c;
}

comptime {
    std.debug.assert(@sizeOf(BlockQ4Kx8) == G * @sizeOf(kq.BlockQ4K));
    std.debug.assert(@sizeOf(BlockQ5Kx8) == G * @sizeOf(kq.BlockQ5K));
    std.debug.assert(@sizeOf(BlockQ6Kx8) == G * @sizeOf(kq.BlockQ6K));
    std.debug.assert(@sizeOf(BlockIQ4XSx8) == G * @sizeOf(iq.BlockIQ4XS));
}

pub fn BlockX8(comptime f: QuantFormat) type {
    return switch (f) {
        .q4_k => BlockQ4Kx8,
        .q5_k => BlockQ5Kx8,
        .q6_k => BlockQ6Kx8,
        .iq4_xs => BlockIQ4XSx8,
        .q2_k, .q3_k => low.BlockX8(f),
        else => @compileError("not a super-block format"),
    };
}

// ---------------------------------------------------------------- repack

/// Repacks super-block column `b` of eight plain rows (`rows[i]` = row 8g+i) into `o`.
pub fn packRecord(comptime f: QuantFormat, rows: [G][*]const u8, b: usize, o: *align(1) BlockX8(f)) void {
    if (comptime f == .q2_k or f == .q3_k) return low.packRecord(f, rows, b, o);
    const P = quant.BlockOf(f);
    for (0..G) |i| {
        const blk: *align(1) const P = &@as([*]align(1) const P, @ptrCast(rows[i]))[b];
        o.d[i] = blk.d;
        switch (f) {
            .q4_k, .q5_k => {
                o.dmin[i] = blk.dmin;
                for (0..12) |k| o.scales[k][i] = blk.scales[k];
                for (0..4) |j| for (0..8) |c| for (0..4) |k| {
                    o.qs[256 * j + 32 * c + 4 * i + k] = blk.qs[32 * j + 4 * c + k];
                };
                if (f == .q5_k) for (0..8) |c| for (0..4) |k| {
                    o.qh[32 * c + 4 * i + k] = blk.qh[4 * c + k];
                };
            },
            .q6_k => {
                for (0..16) |k| o.scales[k][i] = blk.scales[k];
                for (0..8) |s| for (0..8) |c| for (0..4) |k| {
                    const q = kq.q6kAt(blk, 32 * s + 4 * c + k);
                    const lo_at = qlAt(s / 2, c) + 4 * i + k;
                    const hi_at = qhAt(s / 4, c) + 4 * i + k;
                    const lo_shift: u3 = @intCast(4 * (s & 1));
                    const hi_shift: u3 = @intCast(2 * (s % 4));
                    if (s & 1 == 0) o.bits[lo_at] = 0;
                    if (s % 4 == 0) o.bits[hi_at] = 0;
                    o.bits[lo_at] |= (q & 15) << lo_shift;
                    o.bits[hi_at] |= (q >> 4) << hi_shift;
                };
            },
            .iq4_xs => {
                for (0..2) |k| o.scales_h[k][i] = blk.scales_h[k];
                for (0..4) |k| o.scales_l[k][i] = blk.scales_l[k];
                for (0..8) |sb| for (0..4) |c| for (0..4) |k| {
                    o.qs[128 * sb + 32 * c + 4 * i + k] = blk.qs[16 * sb + 4 * c + k];
                };
            },
            else => comptime unreachable,
        }
    }
}

/// The plain GGML block of lane `i` of a record (the inverse of `packRecord`).
pub fn unpackRecord(comptime f: QuantFormat, rec: *align(1) const BlockX8(f), i: usize) quant.BlockOf(f) {
    if (comptime f == .q2_k or f == .q3_k) return low.unpackRecord(f, rec, i);
    var blk: quant.BlockOf(f) = undefined;
    blk.d = rec.d[i];
    switch (f) {
        .q4_k, .q5_k => {
            blk.dmin = rec.dmin[i];
            for (0..12) |k| blk.scales[k] = rec.scales[k][i];
            for (0..4) |j| for (0..8) |c| for (0..4) |k| {
                blk.qs[32 * j + 4 * c + k] = rec.qs[256 * j + 32 * c + 4 * i + k];
            };
            if (f == .q5_k) for (0..8) |c| for (0..4) |k| {
                blk.qh[4 * c + k] = rec.qh[32 * c + 4 * i + k];
            };
        },
        .q6_k => {
            for (0..16) |k| blk.scales[k] = rec.scales[k][i];
            @memset(&blk.ql, 0);
            @memset(&blk.qh, 0);
            for (0..8) |s| for (0..8) |c| for (0..4) |k| {
                const lo = (rec.bits[qlAt(s / 2, c) + 4 * i + k] >> @intCast(4 * (s & 1))) & 15;
                const hi = (rec.bits[qhAt(s / 4, c) + 4 * i + k] >> @intCast(2 * (s % 4))) & 3;
                // Back to GGML's order (see kquants.BlockQ6K).
                const col = 32 * s + 4 * c + k;
                const h = col / 128;
                const p = (col % 128) / 32;
                const l = col % 32;
                blk.ql[64 * h + l + 32 * (p & 1)] |= lo << @intCast(4 * (p / 2));
                blk.qh[32 * h + l] |= hi << @intCast(2 * p);
            };
        },
        .iq4_xs => {
            for (0..2) |k| blk.scales_h[k] = rec.scales_h[k][i];
            for (0..4) |k| blk.scales_l[k] = rec.scales_l[k][i];
            for (0..8) |sb| for (0..4) |c| for (0..4) |k| {
                blk.qs[16 * sb + 4 * c + k] = rec.qs[128 * sb + 32 * c + 4 * i + k];
            };
        },
        else => comptime unreachable,
    }
    return blk;
}

// ---------------------------------------------------------------- dot products

const I8x32 = @Vector(32, i8);
const U8x32 = @Vector(32, u8);
const I16x16 = @Vector(16, i16);
const I32x8 = @Vector(8, i32);
const F32x8 = @Vector(8, f32);
const U8x8 = @Vector(G, u8);

extern fn @"llvm.x86.avx2.pmadd.wd"(a: I16x16, b: I16x16) I32x8;

inline fn widen(v: U8x8) I32x8 {
    return @intCast(v);
}

/// Lane i = a[2i] * b[2i] + a[2i + 1] * b[2i + 1] (exact: the callers' products are small).
/// One vpmaddwd on AVX2, which LLVM fuses with the following add into vpdpwssd under VNNI.
inline fn pairDot(a: I16x16, b: I16x16) I32x8 {
    if (comptime simd.has_avx2) return @"llvm.x86.avx2.pmadd.wd"(a, b);
    const even: I32x8 = @shuffle(i16, a, undefined, [8]i32{ 0, 2, 4, 6, 8, 10, 12, 14 });
    const odd: I32x8 = @shuffle(i16, a, undefined, [8]i32{ 1, 3, 5, 7, 9, 11, 13, 15 });
    const be: I32x8 = @shuffle(i16, b, undefined, [8]i32{ 0, 2, 4, 6, 8, 10, 12, 14 });
    const bo: I32x8 = @shuffle(i16, b, undefined, [8]i32{ 1, 3, 5, 7, 9, 11, 13, 15 });
    return even * be + odd * bo;
}

/// bsums[2p] and bsums[2p + 1] of a Q8_K block in every 32-bit lane (the right side of `pairDot`).
inline fn bsumPair(a: *const BlockQ8K, p: usize) I16x16 {
    const word = std.mem.readInt(i32, @ptrCast(a.bsums[2 * p ..][0..2]), .little);
    return @bitCast(@as(I32x8, @splat(word)));
}

/// Bits 2k, 2k + 1 of every byte of `h`, moved to bits 4 and 5 (the high bits of a Q6_K value),
/// the other bits zero: ((h >> 2k) & 3) << 4. One rotate of the 32-bit lanes by 4 - 2k (mod 32:
/// k = 3 rotates right by 2, and no bit reaching bits 4-5 of a byte comes from another byte) and
/// one mask: vprolvd + vpandd under AVX-512, where the shift-mask-shift-mask it replaces took four.
inline fn q6High(h: U8x32, k: u2) U8x32 {
    const words: @Vector(8, u32) = @bitCast(h);
    const r: u5 = @truncate(4 -% 2 * @as(u32, k));
    return @as(U8x32, @bitCast(std.math.rotl(@Vector(8, u32), words, r))) & @as(U8x32, @splat(0x30));
}

/// Per-row values `lo` and `hi` (lane i = row i) as the i16 pair (lo[i], hi[i]) in 32-bit lane i.
inline fn rowPairs(lo: I32x8, hi: I32x8) I16x16 {
    const l: @Vector(8, i16) = @intCast(lo);
    const h: @Vector(8, i16) = @intCast(hi);
    return @shuffle(i16, l, h, [16]i32{ 0, -1, 1, -2, 2, -3, 3, -4, 4, -5, 5, -6, 6, -7, 7, -8 });
}

/// Dot products of one group of eight interleaved K-quant rows (`nb` * 32 columns, `nb` / 8
/// records at `group`) with `n` Q8_K activation rows: out[t][i] = row i · token t.
///
/// One 32-column sub-block (Q4_K) or a pair of 16-column ones (Q6_K) is decoded at a time and
/// meets every token before the next is decoded, so the decoded chunks, the tokens' sums and a
/// few temporaries fit the vector registers. The minimums (Q4_K) and the offset of 32 (Q6_K)
/// meet the activations' 16-value sums through pairwise 16-bit multiply-adds.
pub inline fn dotGroup(
    comptime f: QuantFormat,
    comptime n: usize,
    group: [*]const u8,
    nb: usize,
    acts: [n][*]const BlockQ8Act,
    out: *[n]F32x8,
) void {
    @setEvalBranchQuota(100_000);
    if (comptime f == .q2_k or f == .q3_k) return low.dotGroup(f, n, group, nb, acts, out);
    const recs: [*]align(1) const BlockX8(f) = @ptrCast(group);
    var acc: [n]F32x8 = @splat(@splat(0));
    for (0..nb / 8) |b| {
        const rec = &recs[b];
        const d: F32x8 = @floatCast(@as(@Vector(G, f16), rec.d));
        var isum: [n]I32x8 = @splat(@splat(0));
        var a8: [n]*const BlockQ8K = undefined;
        inline for (0..n) |t| a8[t] = &@as([*]const BlockQ8K, @ptrCast(acts[t]))[b];
        switch (f) {
            .q4_k, .q5_k => {
                var q: [12]U8x8 = undefined;
                inline for (0..12) |k| q[k] = rec.scales[k];
                var sc: [8]I32x8 = undefined;
                var mn: [8]I32x8 = undefined;
                const m6: U8x8 = @splat(63);
                const m4: U8x8 = @splat(15);
                inline for (0..4) |s| {
                    sc[s] = widen(q[s] & m6);
                    mn[s] = widen(q[s + 4] & m6);
                    sc[s + 4] = widen((q[s + 8] & m4) | ((q[s] >> @splat(6)) << @splat(4)));
                    mn[s + 4] = widen((q[s + 8] >> @splat(4)) | ((q[s + 4] >> @splat(6)) << @splat(4)));
                }
                const w_max = if (f == .q4_k) 15 else 31;
                // Sub-block s: the low (s even) or high nibbles of bytes 256 (s / 2) .. (and for
                // Q5_K bit s of qh as 16). A runtime loop: unrolled, LLVM decodes every sub-block
                // up front and spills the chunks to the stack.
                for (0..8) |s| {
                    var ch: [8]I8x32 = undefined;
                    const shift: u4 = @intCast(4 * (s % 2));
                    inline for (0..8) |c| {
                        const v: U8x32 = rec.qs[256 * (s / 2) + 32 * c ..][0..32].*;
                        var w = interleave.shrMask(v, shift, 15);
                        if (f == .q5_k) {
                            const h: U8x32 = rec.qh[32 * c ..][0..32].*;
                            w |= interleave.shlMask(interleave.shrMask(h, @intCast(s), 1), 4, 16);
                        }
                        ch[c] = @bitCast(w);
                    }
                    inline for (0..n) |t| {
                        isum[t] += interleave.chunkSums(w_max, 8, &ch, a8[t].qs[32 * s ..][0..32]) * sc[s];
                    }
                }
                // Minimum s meets the sums of 16 values 2s and 2s + 1: (mn, mn) pairs.
                var mn2: [8]I16x16 = undefined;
                inline for (0..8) |s| mn2[s] = rowPairs(mn[s], mn[s]);
                const dmin: F32x8 = @floatCast(@as(@Vector(G, f16), rec.dmin));
                inline for (0..n) |t| {
                    var summ: I32x8 = @splat(0);
                    inline for (0..8) |s| summ += pairDot(mn2[s], bsumPair(a8[t], s));
                    const da: F32x8 = @splat(a8[t].d);
                    acc[t] = @mulAdd(F32x8, @floatFromInt(isum[t]), d * da, acc[t]);
                    acc[t] = @mulAdd(F32x8, @floatFromInt(summ), -(dmin * da), acc[t]);
                }
            },
            .q6_k => {
                // Sub-blocks of 16 in pairs (2p, 2p + 1) for the offset's pairwise multiply-add.
                var sc: [16]I32x8 = undefined;
                inline for (0..16) |k| sc[k] = @as(@Vector(G, i8), rec.scales[k]);
                for (0..4) |sp| inline for (0..2) |odd| {
                    // 32-column sub-block s = 2 sp + odd: low bits from nibble `odd` of
                    // qlAt(sp, c), high bits from bits 2 (s % 4) of qhAt(s / 4, c). A runtime loop
                    // over the pairs, as for Q4_K; the nibble's shift is a constant.
                    const s = 2 * sp + odd;
                    var ch: [8]I8x32 = undefined;
                    inline for (0..8) |c| {
                        const v: U8x32 = rec.bits[qlAt(sp, c)..][0..32].*;
                        const h: U8x32 = rec.bits[qhAt(s / 4, c)..][0..32].*;
                        const lo = if (odd == 0) v & @as(U8x32, @splat(15)) else interleave.shrMask(v, 4, 15);
                        ch[c] = @bitCast(lo | q6High(h, @intCast(s % 4)));
                    }
                    inline for (0..n) |t| {
                        const aq = a8[t].qs[32 * s ..][0..32];
                        isum[t] += interleave.chunkSums(63, 4, ch[0..4], aq[0..16]) * sc[2 * s] +
                            interleave.chunkSums(63, 4, ch[4..8], aq[16..32]) * sc[2 * s + 1];
                    }
                };
                var sc2: [8]I16x16 = undefined;
                inline for (0..8) |p| sc2[p] = rowPairs(sc[2 * p], sc[2 * p + 1]);
                inline for (0..n) |t| {
                    var off: I32x8 = @splat(0);
                    inline for (0..8) |p| off += pairDot(sc2[p], bsumPair(a8[t], p));
                    // The offset of 32 goes through the sums of 16: one exact integer per row.
                    const total = isum[t] - off * @as(I32x8, @splat(32));
                    acc[t] = @mulAdd(F32x8, @floatFromInt(total), d * @as(F32x8, @splat(a8[t].d)), acc[t]);
                }
            },
            .iq4_xs => {
                inline for (0..8) |sb| {
                    // Lane i's signed 6-bit scale of sub-block sb (see iquants.scaleXS).
                    const lo4 = (@as(U8x8, rec.scales_l[sb / 2]) >> @splat(4 * (sb % 2))) & @as(U8x8, @splat(15));
                    const hi2 = (@as(U8x8, rec.scales_h[sb / 4]) >> @splat(2 * (sb % 4))) & @as(U8x8, @splat(3));
                    const sc = widen(lo4 | (hi2 << @splat(4))) - @as(I32x8, @splat(32));
                    var chunks: [8]I8x32 = undefined;
                    inline for (0..4) |c| {
                        const v: U8x32 = rec.qs[128 * sb + 32 * c ..][0..32].*;
                        chunks[c] = iq.lookup(v & @as(U8x32, @splat(15)));
                        chunks[4 + c] = iq.lookup(v >> @splat(4));
                    }
                    inline for (0..n) |t| {
                        const a = &@as([*]const BlockQ8K, @ptrCast(acts[t]))[b];
                        isum[t] += interleave.signedBlockSums(&chunks, a.qs[32 * sb ..][0..32]) * sc;
                    }
                }
                inline for (0..n) |t| {
                    const a = &@as([*]const BlockQ8K, @ptrCast(acts[t]))[b];
                    acc[t] = @mulAdd(F32x8, @floatFromInt(isum[t]), d * @as(F32x8, @splat(a.d)), acc[t]);
                }
            },
            else => comptime unreachable,
        }
    }
    out.* = acc;
}

/// Scalar twin of `dotGroup` for one token (the same integers, the same fused multiply-adds).
pub fn dotGroupScalar(comptime f: QuantFormat, group: [*]const u8, nb: usize, act: []const BlockQ8Act) [G]f32 {
    if (comptime f == .q2_k or f == .q3_k) return low.dotGroupScalar(f, group, nb, act);
    const recs: [*]align(1) const BlockX8(f) = @ptrCast(group);
    const a8: [*]const BlockQ8K = @ptrCast(act.ptr);
    var out: [G]f32 = @splat(0);
    for (0..nb / 8) |b| {
        const a = &a8[b];
        for (0..G) |i| {
            const blk = unpackRecord(f, &recs[b], i);
            const d: f32 = @floatCast(blk.d);
            switch (f) {
                .q4_k, .q5_k => {
                    var isum: i32 = 0;
                    var summ: i32 = 0;
                    for (0..8) |s| {
                        const sm = kq.scaleMin(&blk.scales, s);
                        var ss: i32 = 0;
                        for (0..32) |l| {
                            const q = if (f == .q4_k) kq.q4kAt(&blk, 32 * s + l) else kq.q5kAt(&blk, 32 * s + l);
                            ss += @as(i32, q) * a.qs[32 * s + l];
                        }
                        isum += ss * sm.sc;
                        summ += @as(i32, sm.m) * (@as(i32, a.bsums[2 * s]) + a.bsums[2 * s + 1]);
                    }
                    const dmin: f32 = @floatCast(blk.dmin);
                    out[i] = @mulAdd(f32, @floatFromInt(isum), d * a.d, out[i]);
                    out[i] = @mulAdd(f32, @floatFromInt(summ), -(dmin * a.d), out[i]);
                },
                .q6_k => {
                    var total: i32 = 0;
                    for (0..16) |h| {
                        var ss: i32 = 0;
                        for (0..16) |l| ss += (@as(i32, kq.q6kAt(&blk, 16 * h + l)) - 32) * a.qs[16 * h + l];
                        total += @as(i32, blk.scales[h]) * ss;
                    }
                    out[i] = @mulAdd(f32, @floatFromInt(total), d * a.d, out[i]);
                },
                .iq4_xs => out[i] = @mulAdd(f32, @floatFromInt(iq.superDotXSScalar(&blk, &a.qs)), d * a.d, out[i]),
                else => comptime unreachable,
            }
        }
    }
    return out;
}

test "q6High moves bits 2k, 2k + 1 of every byte to bits 4, 5" {
    var prng = std.Random.DefaultPrng.init(7);
    const r = prng.random();
    for (0..64) |_| {
        var h: [32]u8 = undefined;
        r.bytes(&h);
        for (0..4) |k| {
            const got: [32]u8 = q6High(h, @intCast(k));
            for (h, got) |x, y| try std.testing.expectEqual(((x >> @intCast(2 * k)) & 3) << 4, y);
        }
    }
}
