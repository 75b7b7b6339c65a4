//! Compile-time SIMD selection (AVX-512 / AVX2+FMA / SSE / NEON / scalar) and the vector copy/read kernels.
const std = @import("std");
const builtin = @import("builtin");

const cpu = builtin.cpu;

pub const Isa = enum { avx512, avx2, sse, neon, scalar };

/// The widest instruction set this build may use, fixed at compile time from the target CPU.
pub const isa: Isa = switch (cpu.arch) {
    .x86_64, .x86 => if (std.Target.x86.featureSetHas(cpu.features, .avx512f))
        .avx512
    else if (std.Target.x86.featureSetHasAll(cpu.features, .{ .avx2, .fma }))
        .avx2
    else if (std.Target.x86.featureSetHas(cpu.features, .sse2))
        .sse
    else
        .scalar,
    .aarch64, .aarch64_be => if (std.Target.aarch64.featureSetHas(cpu.features, .neon)) .neon else .scalar,
    else => .scalar,
};

/// x86 AVX2: integer dot products through vpmaddubsw/vpmaddwd.
pub const has_avx2 = isa == .avx2 or isa == .avx512;
/// x86 VNNI: `vpdpbusd` (unsigned bytes × signed bytes, four products summed into each i32
/// lane and accumulated) on 256-bit vectors, from AVX512-VNNI with AVX512VL or from AVX-VNNI.
/// It replaces AVX2's vpmaddubsw + vpaddw + vpmaddwd with one instruction that cannot saturate.
pub const has_vnni = cpu.arch == .x86_64 and
    ((std.Target.x86.featureSetHasAll(cpu.features, .{ .avx512vnni, .avx512vl })) or
        std.Target.x86.featureSetHas(cpu.features, .avxvnni));
/// aarch64 dot-product extension: sdot on 4-byte groups.
pub const has_sdot = (cpu.arch == .aarch64 or cpu.arch == .aarch64_be) and
    std.Target.aarch64.featureSetHas(cpu.features, .dotprod);

/// f32 lanes per vector register of the selected ISA.
pub const f32_lanes: comptime_int = switch (isa) {
    .avx512 => 16,
    .avx2 => 8,
    .sse, .neon => 4,
    .scalar => 1,
};

pub const F32v = @Vector(f32_lanes, f32);
/// Bytes per vector register (the copy unit of `copy`).
pub const vector_bytes: comptime_int = f32_lanes * 4;

/// Copies below this size go through @memcpy (libc's small-copy paths win there).
/// Measured on this Zen3 VM (hearth_memcpy repeat loop, best of 7, ns per copy):
/// 64 B 1.9 vs 4.1 (ours), 512 B 6.0 vs 7.2, 1 KiB 10.8 vs 11.9, 2 KiB 20.9 vs 20.5,
/// 4 KiB 54 vs 41, 256 KiB 7197 vs 6932, 1 MiB 44141 vs 38956: the vector loop wins from 2 KiB.
pub const copy_small_threshold_bytes: usize = 2048;

/// SIMD memcpy for KV moves: unrolled vector loads/stores, unaligned-safe, no overlap allowed.
pub fn copy(dst: []u8, src: []const u8) void {
    std.debug.assert(dst.len == src.len);
    if (src.len < copy_small_threshold_bytes) {
        @memcpy(dst, src);
        return;
    }
    copyVector(dst, src);
}

const CopyV = @Vector(vector_bytes, u8);
const copy_unroll = 4;

/// The vector loop of `copy`, also called directly by the benchmark and tests.
pub fn copyVector(dst: []u8, src: []const u8) void {
    std.debug.assert(dst.len == src.len);
    const n = src.len;
    var i: usize = 0;
    const step = vector_bytes * copy_unroll;
    while (i + step <= n) : (i += step) {
        inline for (0..copy_unroll) |k| {
            const v: CopyV = src[i + k * vector_bytes ..][0..vector_bytes].*;
            dst[i + k * vector_bytes ..][0..vector_bytes].* = v;
        }
    }
    while (i + vector_bytes <= n) : (i += vector_bytes) {
        const v: CopyV = src[i..][0..vector_bytes].*;
        dst[i..][0..vector_bytes].* = v;
    }
    // Tail: one overlapping vector from the end when the buffer holds at least one vector.
    if (i < n) {
        if (n >= vector_bytes) {
            const v: CopyV = src[n - vector_bytes ..][0..vector_bytes].*;
            dst[n - vector_bytes ..][0..vector_bytes].* = v;
        } else {
            copyScalar(dst[i..], src[i..]);
        }
    }
}

/// Scalar twin of `copyVector`.
pub fn copyScalar(dst: []u8, src: []const u8) void {
    for (dst, src) |*d, s| d.* = s;
}

/// Read-only sweep (the bandwidth limit line): sums `bytes` as u64 lanes so nothing is skipped.
pub fn readSum(bytes: []const u8) u64 {
    const lanes = vector_bytes / 8;
    const V = @Vector(lanes, u64);
    const step = vector_bytes * 4;
    var a0: V = @splat(0);
    var a1: V = @splat(0);
    var a2: V = @splat(0);
    var a3: V = @splat(0);
    var i: usize = 0;
    // Loads through a vector pointer: a bitcast from a byte array gets scalarized by LLVM.
    const vp: [*]align(1) const V = @ptrCast(bytes.ptr);
    while (i + step <= bytes.len) : (i += step) {
        const k = i / vector_bytes;
        a0 +%= vp[k];
        a1 +%= vp[k + 1];
        a2 +%= vp[k + 2];
        a3 +%= vp[k + 3];
    }
    var total: u64 = @reduce(.Add, a0 +% a1 +% a2 +% a3);
    // The tail too as u64 words while whole words remain, so the sum of a chunk of whole words
    // does not depend on the vector width (a thread's chunk may be shorter than one `step`).
    while (i + 8 <= bytes.len) : (i += 8) total +%= std.mem.readInt(u64, bytes[i..][0..8], .little);
    while (i < bytes.len) : (i += 1) total +%= bytes[i];
    return total;
}

/// f32 dot product with `f32_lanes`-wide FMA accumulators.
pub fn dotF32(a: []align(1) const f32, b: []const f32) f32 {
    std.debug.assert(a.len == b.len);
    var acc0: F32v = @splat(0);
    var acc1: F32v = @splat(0);
    var i: usize = 0;
    while (i + 2 * f32_lanes <= a.len) : (i += 2 * f32_lanes) {
        const x0: F32v = a[i..][0..f32_lanes].*;
        const y0: F32v = b[i..][0..f32_lanes].*;
        const x1: F32v = a[i + f32_lanes ..][0..f32_lanes].*;
        const y1: F32v = b[i + f32_lanes ..][0..f32_lanes].*;
        acc0 = @mulAdd(F32v, x0, y0, acc0);
        acc1 = @mulAdd(F32v, x1, y1, acc1);
    }
    var sum: f32 = @reduce(.Add, acc0 + acc1);
    while (i < a.len) : (i += 1) sum = @mulAdd(f32, a[i], b[i], sum);
    return sum;
}

/// f16 × f32 dot product (f16 widened in registers; F16C on x86).
pub fn dotF16(a: [*]align(1) const f16, b: []const f32) f32 {
    var acc: F32v = @splat(0);
    var i: usize = 0;
    while (i + f32_lanes <= b.len) : (i += f32_lanes) {
        const h: @Vector(f32_lanes, f16) = a[i..][0..f32_lanes].*;
        const x: F32v = @floatCast(h);
        const y: F32v = b[i..][0..f32_lanes].*;
        acc = @mulAdd(F32v, x, y, acc);
    }
    var sum: f32 = @reduce(.Add, acc);
    while (i < b.len) : (i += 1) sum = @mulAdd(f32, @floatCast(a[i]), b[i], sum);
    return sum;
}

/// bf16 (raw u16 bits) × f32 dot product: a bf16 widens to f32 by a 16-bit shift.
pub fn dotBf16(a: [*]align(1) const u16, b: []const f32) f32 {
    var acc: F32v = @splat(0);
    var i: usize = 0;
    while (i + f32_lanes <= b.len) : (i += f32_lanes) {
        const h: @Vector(f32_lanes, u16) = a[i..][0..f32_lanes].*;
        const x: F32v = @bitCast(@as(@Vector(f32_lanes, u32), h) << @splat(16));
        const y: F32v = b[i..][0..f32_lanes].*;
        acc = @mulAdd(F32v, x, y, acc);
    }
    var sum: f32 = @reduce(.Add, acc);
    while (i < b.len) : (i += 1) sum = @mulAdd(f32, bf16ToF32(a[i]), b[i], sum);
    return sum;
}

/// The f32 value of a bf16 (its top 16 bits).
pub inline fn bf16ToF32(h: u16) f32 {
    return @bitCast(@as(u32, h) << 16);
}

/// f32 to bf16 as ggml's ggml_compute_fp32_to_bf16: round to nearest even; a NaN stays a (quiet) NaN.
pub fn f32ToBf16(v: f32) u16 {
    const u: u32 = @bitCast(v);
    if (u & 0x7fffffff > 0x7f800000) return @as(u16, @truncate(u >> 16)) | 64;
    return @truncate((u +% (0x7fff + ((u >> 16) & 1))) >> 16);
}

/// Scalar twin of `dotBf16`.
pub fn dotBf16Scalar(a: [*]align(1) const u16, b: []const f32) f32 {
    var sum: f32 = 0;
    for (b, 0..) |y, i| sum += bf16ToF32(a[i]) * y;
    return sum;
}

/// `dotF16` of one row against `n` activation vectors at once, each result bit-identical to
/// `dotF16(a, xs[k])` (the same FMAs in the same order per token): the row's halves are widened
/// once per chunk for all n, and the n accumulators are independent FMA chains, where one token's
/// single chain waits on the FMA latency. For the rows of a step that carries several tokens
/// (speculative drafts on an F16 target).
pub fn dotF16Many(comptime n: usize, a: [*]align(1) const f16, xs: *const [n][*]const f32, len: usize, out: *[n]f32) void {
    var acc: [n]F32v = @splat(@splat(0));
    var i: usize = 0;
    while (i + f32_lanes <= len) : (i += f32_lanes) {
        const h: @Vector(f32_lanes, f16) = a[i..][0..f32_lanes].*;
        const x: F32v = @floatCast(h);
        inline for (0..n) |k| {
            const y: F32v = xs[k][i..][0..f32_lanes].*;
            acc[k] = @mulAdd(F32v, x, y, acc[k]);
        }
    }
    inline for (0..n) |k| {
        var sum: f32 = @reduce(.Add, acc[k]);
        var j = i;
        while (j < len) : (j += 1) sum = @mulAdd(f32, @floatCast(a[j]), xs[k][j], sum);
        out[k] = sum;
    }
}

test "dotF16Many equals dotF16 per token, bit for bit" {
    var prng = std.Random.DefaultPrng.init(7);
    const r = prng.random();
    inline for (.{ 1, 3, 4 }) |n| {
        for ([_]usize{ 1, 7, f32_lanes, 3 * f32_lanes + 5, 576 }) |len| {
            var w: [600]f16 = undefined;
            var x: [4][600]f32 = undefined;
            for (&w) |*v| v.* = @floatCast(r.float(f32) * 2 - 1);
            for (&x) |*row| for (row) |*v| {
                v.* = r.float(f32) * 2 - 1;
            };
            var ptrs: [n][*]const f32 = undefined;
            inline for (0..n) |k| ptrs[k] = &x[k];
            var got: [n]f32 = undefined;
            dotF16Many(n, &w, &ptrs, len, &got);
            inline for (0..n) |k| {
                try std.testing.expectEqual(dotF16(&w, x[k][0..len]), got[k]);
                try std.testing.expectApproxEqAbs(dotScalar(f16, &w, x[k][0..len]), got[k], 1e-3);
            }
        }
    }
}

/// Scalar twin of `dotF32` / `dotF16`.
pub fn dotScalar(comptime T: type, a: [*]align(1) const T, b: []const f32) f32 {
    var sum: f32 = 0;
    for (b, 0..) |y, i| sum += @as(f32, @floatCast(a[i])) * y;
    return sum;
}

test "isa matches the target" {
    if (builtin.cpu.arch == .x86_64 and std.Target.x86.featureSetHas(builtin.cpu.features, .avx2))
        try std.testing.expect(isa == .avx2 or isa == .avx512);
    if (builtin.cpu.arch == .aarch64) try std.testing.expectEqual(Isa.neon, isa);
    try std.testing.expect(f32_lanes >= 1);
}

test "copyVector equals copyScalar for every size and offset up to 3 vectors" {
    var src: [3 * vector_bytes * copy_unroll + 7]u8 = undefined;
    for (&src, 0..) |*b, i| b.* = @truncate(i *% 131 +% 7);
    var d1: [src.len]u8 = undefined;
    var d2: [src.len]u8 = undefined;
    for (0..5) |off| {
        var n: usize = 0;
        while (off + n <= src.len) : (n += 1) {
            @memset(&d1, 0xAA);
            @memset(&d2, 0xAA);
            copyVector(d1[off..][0..n], src[off..][0..n]);
            copyScalar(d2[off..][0..n], src[off..][0..n]);
            try std.testing.expectEqualSlices(u8, &d2, &d1);
            copy(d1[off..][0..n], src[off..][0..n]);
            try std.testing.expectEqualSlices(u8, &d2, &d1);
        }
    }
}

test "readSum sums whole u64 words, then the last bytes, whatever the vector width" {
    // 1003 bytes: 125 whole words (some in vectors, some in the word tail) and 3 bytes.
    const ones: [1003]u8 = @splat(1);
    const per_u64: u64 = 0x0101010101010101;
    try std.testing.expectEqual(per_u64 *% 125 +% 3, readSum(&ones));
    // Split at any word boundary, the parts add up to the whole (the read sweep splits by thread).
    var buf: [1024]u8 = undefined;
    for (&buf, 0..) |*b, i| b.* = @truncate(i * 7 + 3);
    const whole = readSum(&buf);
    var cut: usize = 0;
    while (cut <= buf.len) : (cut += 8) {
        try std.testing.expectEqual(whole, readSum(buf[0..cut]) +% readSum(buf[cut..]));
    }
}

test "dotF32, dotF16 and dotBf16 agree with the scalar twin" {
    var prng = std.Random.DefaultPrng.init(1);
    const r = prng.random();
    var a: [203]f32 = undefined;
    var h: [203]f16 = undefined;
    var b: [203]f32 = undefined;
    for (&a, &h, &b) |*x, *y, *z| {
        x.* = r.float(f32) * 2 - 1;
        y.* = @floatCast(x.*);
        z.* = r.float(f32) * 2 - 1;
    }
    for ([_]usize{ 0, 1, 7, 8, 17, 64, 203 }) |n| {
        const want = dotScalar(f32, &a, b[0..n]);
        try std.testing.expectApproxEqAbs(want, dotF32(a[0..n], b[0..n]), 1e-4);
        const want16 = dotScalar(f16, &h, b[0..n]);
        try std.testing.expectApproxEqAbs(want16, dotF16(&h, b[0..n]), 1e-4);
        var bf: [203]u16 = undefined;
        for (&bf, a) |*o, v| o.* = @truncate(@as(u32, @bitCast(v)) >> 16);
        try std.testing.expectApproxEqAbs(dotBf16Scalar(&bf, b[0..n]), dotBf16(&bf, b[0..n]), 1e-4);
    }
}
