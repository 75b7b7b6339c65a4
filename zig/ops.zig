//! Elementwise and per-row ops of the forward pass (rmsnorm, rope, softmax, swiglu, geglu, add), each with a scalar twin.
const std = @import("std");
const simd = @import("simd.zig");

/// f32 lanes per vector on this target (8 on AVX2, 16 on AVX-512, 4 on NEON/SSE).
pub const vlen: comptime_int = std.simd.suggestVectorLength(f32) orelse 4;
pub const V = @Vector(vlen, f32);

/// One vector of `s` at `i` (also sampling.zig's).
pub inline fn load(s: []const f32, i: usize) V {
    return s[i..][0..vlen].*;
}

/// Stores one vector into `d` at `i` (also sampling.zig's).
pub inline fn store(d: []f32, i: usize, v: V) void {
    d[i..][0..vlen].* = v;
}

// ---------------------------------------------------------------- exp

// exp(x) = 2^n * exp(r), n = round(x / ln2), |r| <= ln2/2; exp(r) by its Taylor series to r^7
// (truncation error below 1e-8 relative; rounding leaves about two f32 ulp). Libm's expf does not vectorize,
// and silu over a 512-token prefill needs ~25M of them, so both twins use this same recipe.
const exp_hi: f32 = 88.3762626647949;
const exp_lo: f32 = -87.3365447504019;
const log2e: f32 = 1.44269504088896341;
const ln2_hi: f32 = 0.693359375;
const ln2_lo: f32 = -2.12194440e-4;
const exp_c = [_]f32{ 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0 };

/// Vector exp; inputs below -87.34 give 0, above 88.38 give the largest power-of-two result.
pub inline fn expV(comptime n: comptime_int, x_in: @Vector(n, f32)) @Vector(n, f32) {
    const F = @Vector(n, f32);
    const I = @Vector(n, i32);
    const x = @min(@max(x_in, @as(F, @splat(exp_lo))), @as(F, @splat(exp_hi)));
    const k = @round(x * @as(F, @splat(log2e)));
    var r = @mulAdd(F, k, @as(F, @splat(-ln2_hi)), x);
    r = @mulAdd(F, k, @as(F, @splat(-ln2_lo)), r);
    var p: F = @splat(exp_c[0]);
    inline for (exp_c[1..]) |c| p = @mulAdd(F, p, r, @as(F, @splat(c)));
    const ki: I = @intFromFloat(k);
    const two_k: F = @bitCast((ki + @as(I, @splat(127))) << @splat(23));
    const y = p * two_k;
    return @select(f32, x_in < @as(F, @splat(exp_lo)), @as(F, @splat(0)), y);
}

/// Scalar twin of expV (same recipe, one lane).
pub fn expScalar(x: f32) f32 {
    return expV(1, @as(@Vector(1, f32), @splat(x)))[0];
}

// ---------------------------------------------------------------- rmsnorm

/// out = x / sqrt(mean(x^2) + eps) * weight. The sum runs in a fixed order (vlen partial sums,
/// then the tail), so a row's result never depends on the batch it is in.
pub fn rmsnorm(out: []f32, x: []const f32, weight: []const f32, eps: f32) void {
    std.debug.assert(out.len == x.len and weight.len == x.len);
    const n = x.len;
    // As ggml: each square rounded to f32, summed in order in f64; mean and scale in f32.
    var ss: f64 = 0;
    for (x) |v| ss += @as(f64, v * v);
    const mean: f32 = @floatCast(ss / @as(f64, @floatFromInt(n)));
    const scale: f32 = 1.0 / @sqrt(mean + eps);
    const sv: V = @splat(scale);
    var i: usize = 0;
    while (i + vlen <= n) : (i += vlen) store(out, i, load(x, i) * sv * load(weight, i));
    while (i < n) : (i += 1) out[i] = x[i] * scale * weight[i];
}

/// Scalar twin of rmsnorm (sums in f64).
pub fn rmsnormScalar(out: []f32, x: []const f32, weight: []const f32, eps: f32) void {
    var ss: f64 = 0;
    for (x) |v| ss += @as(f64, v) * v;
    const scale: f32 = @floatCast(1.0 / @sqrt(ss / @as(f64, @floatFromInt(x.len)) + eps));
    for (out, x, weight) |*o, v, w| o.* = v * scale * w;
}

// ---------------------------------------------------------------- rope

pub const RopeType = enum(u32) {
    /// Adjacent pairs (x[2i], x[2i+1]): llama as converted to GGUF.
    normal = 0,
    /// Split halves (x[i], x[i + d/2]): gpt-neox, qwen, gemma.
    neox = 2,
};

/// Rotary embedding of the first `rope_dims` dimensions of each head.
pub const Rope = struct {
    kind: RopeType,
    rope_dims: usize,
    /// inv_freq[i] = freq_scale * base^(-2i / rope_dims), i < rope_dims / 2.
    inv_freq: [max_pairs]f64,

    pub const max_pairs = 256;

    pub fn init(kind: RopeType, rope_dims: usize, freq_base: f32, freq_scale: f32) Rope {
        return initFactors(kind, rope_dims, freq_base, freq_scale, null);
    }

    /// As init, each pair's frequency divided by its factor (Llama 3's `rope_freqs` tensor:
    /// long wavelengths slowed down, as ggml's rope reads its freq_factors).
    pub fn initFactors(kind: RopeType, rope_dims: usize, freq_base: f32, freq_scale: f32, factors: ?[]const f32) Rope {
        std.debug.assert(rope_dims % 2 == 0 and rope_dims / 2 <= max_pairs);
        if (factors) |f| std.debug.assert(f.len == rope_dims / 2);
        var r: Rope = .{ .kind = kind, .rope_dims = rope_dims, .inv_freq = undefined };
        const d: f64 = @floatFromInt(rope_dims);
        for (0..rope_dims / 2) |i| {
            const e: f64 = -2.0 * @as(f64, @floatFromInt(i)) / d;
            const factor: f64 = if (factors) |f| f[i] else 1.0;
            r.inv_freq[i] = @as(f64, freq_scale) * std.math.pow(f64, freq_base, e) / factor;
        }
        return r;
    }

    /// Fills cos/sin (rope_dims / 2 each) for rope position `pos` (may be negative: a re-rope by -drop).
    pub fn angles(self: *const Rope, pos: i64, cos: []f32, sin: []f32) void {
        const p: f64 = @floatFromInt(pos);
        for (0..self.rope_dims / 2) |i| {
            const theta = p * self.inv_freq[i];
            cos[i] = @floatCast(@cos(theta));
            sin[i] = @floatCast(@sin(theta));
        }
    }

    /// Rotates `n_heads` consecutive heads of `head_dim` floats in place.
    pub fn apply(self: *const Rope, x: []f32, n_heads: usize, head_dim: usize, cos: []const f32, sin: []const f32) void {
        std.debug.assert(x.len == n_heads * head_dim and self.rope_dims <= head_dim);
        const half = self.rope_dims / 2;
        for (0..n_heads) |h| {
            const v = x[h * head_dim ..][0..head_dim];
            switch (self.kind) {
                .normal => for (0..half) |i| {
                    const a = v[2 * i];
                    const b = v[2 * i + 1];
                    v[2 * i] = a * cos[i] - b * sin[i];
                    v[2 * i + 1] = a * sin[i] + b * cos[i];
                },
                .neox => for (0..half) |i| {
                    const a = v[i];
                    const b = v[i + half];
                    v[i] = a * cos[i] - b * sin[i];
                    v[i + half] = a * sin[i] + b * cos[i];
                },
            }
        }
    }
};

// ---------------------------------------------------------------- softmax

/// In-place softmax with max subtraction.
pub fn softmax(x: []f32) void {
    if (x.len == 0) return;
    var m: f32 = -std.math.inf(f32);
    for (x) |v| m = @max(m, v);
    const mv: V = @splat(m);
    var acc: V = @splat(0);
    var i: usize = 0;
    while (i + vlen <= x.len) : (i += vlen) {
        const e = expV(vlen, load(x, i) - mv);
        store(x, i, e);
        acc += e;
    }
    var sum: f32 = @reduce(.Add, acc);
    while (i < x.len) : (i += 1) {
        x[i] = expScalar(x[i] - m);
        sum += x[i];
    }
    const inv: V = @splat(1.0 / sum);
    i = 0;
    while (i + vlen <= x.len) : (i += vlen) store(x, i, load(x, i) * inv);
    while (i < x.len) : (i += 1) x[i] *= 1.0 / sum;
}

/// Scalar twin of softmax (libm exp, f64 sum).
pub fn softmaxScalar(x: []f32) void {
    var m: f32 = -std.math.inf(f32);
    for (x) |v| m = @max(m, v);
    var sum: f64 = 0;
    for (x) |*v| {
        v.* = @exp(v.* - m);
        sum += v.*;
    }
    for (x) |*v| v.* = @floatCast(v.* / sum);
}

// ---------------------------------------------------------------- silu / swiglu / add

/// out = silu(gate) * up, silu(g) = g / (1 + exp(-g)).
pub fn swiglu(out: []f32, gate: []const f32, up: []const f32) void {
    std.debug.assert(out.len == gate.len and up.len == gate.len);
    const one: V = @splat(1);
    var i: usize = 0;
    while (i + vlen <= out.len) : (i += vlen) {
        const g = load(gate, i);
        store(out, i, g / (one + expV(vlen, -g)) * load(up, i));
    }
    while (i < out.len) : (i += 1) out[i] = gate[i] / (1 + expScalar(-gate[i])) * up[i];
}

/// Scalar twin of swiglu (libm exp).
pub fn swigluScalar(out: []f32, gate: []const f32, up: []const f32) void {
    for (out, gate, up) |*o, g, u| o.* = g / (1 + @exp(-g)) * u;
}

/// x = silu(x) in place.
pub fn silu(x: []f32) void {
    const one: V = @splat(1);
    var i: usize = 0;
    while (i + vlen <= x.len) : (i += vlen) {
        const g = load(x, i);
        store(x, i, g / (one + expV(vlen, -g)));
    }
    while (i < x.len) : (i += 1) x[i] = x[i] / (1 + expScalar(-x[i]));
}

/// GELU (tanh form) of every f16 value, rounded to f16: ggml computes GELU through this table
/// (GGML_GELU_FP16), so its GeGLU reads gelu(f16(x)) rounded to f16. 128 KiB, built once per model.
pub const GeluTable = struct {
    h: [1 << 16]f16,

    pub fn init(self: *GeluTable) void {
        for (&self.h, 0..) |*o, i| {
            const x: f32 = @as(f16, @bitCast(@as(u16, @intCast(i))));
            o.* = @floatCast(geluScalar(x));
        }
    }

    /// gelu(x) as ggml's table gives it (x <= -10: 0, x >= 10: x).
    pub inline fn at(self: *const GeluTable, x: f32) f32 {
        if (x <= -10.0) return 0;
        if (x >= 10.0) return x;
        const h: f16 = @floatCast(x);
        return self.h[@as(u16, @bitCast(h))];
    }
};

const gelu_coef_a: f32 = 0.044715;
const sqrt_2_over_pi: f32 = 0.79788456080286535587989211986876;

/// gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2))), in f32 as ggml writes it.
pub fn geluScalar(x: f32) f32 {
    return 0.5 * x * (1.0 + std.math.tanh(sqrt_2_over_pi * x * (1.0 + gelu_coef_a * x * x)));
}

/// out = gelu(gate) * up through the table (Gemma's feed-forward).
pub fn geglu(out: []f32, gate: []const f32, up: []const f32, table: *const GeluTable) void {
    std.debug.assert(out.len == gate.len and up.len == gate.len);
    for (out, gate, up) |*o, g, u| o.* = table.at(g) * u;
}

/// Scalar twin of geglu: the table's value computed directly (f16 in, f16 out).
pub fn gegluScalar(out: []f32, gate: []const f32, up: []const f32) void {
    for (out, gate, up) |*o, g, u| {
        const x: f32 = @as(f16, @floatCast(g));
        const y: f32 = if (g <= -10.0) 0 else if (g >= 10.0) g else @as(f16, @floatCast(geluScalar(x)));
        o.* = y * u;
    }
}

/// x *= s.
pub fn scaleBy(x: []f32, s: f32) void {
    const sv: V = @splat(s);
    var i: usize = 0;
    while (i + vlen <= x.len) : (i += vlen) store(x, i, load(x, i) * sv);
    while (i < x.len) : (i += 1) x[i] *= s;
}

/// Each of the `n_heads` heads of `x` (head_dim floats each) replaced by rmsnorm(head) * weight
/// (Qwen 3's and Gemma 3's per-head Q/K norms; `weight` has head_dim values).
pub fn rmsnormHeads(x: []f32, n_heads: usize, weight: []const f32, eps: f32) void {
    const hd = weight.len;
    std.debug.assert(x.len == n_heads * hd);
    for (0..n_heads) |h| {
        const v = x[h * hd ..][0..hd];
        rmsnorm(v, v, weight, eps);
    }
}

/// x = f32(f16(x)) in place, round to nearest even (what ggml's f32 -> f16 conversion does).
/// Rounds each value to bf16 and back (round to nearest even, as ggml converts the activations
/// of a BF16 dot product).
pub fn roundToBf16(x: []f32) void {
    for (x) |*v| v.* = simd.bf16ToF32(simd.f32ToBf16(v.*));
}

pub fn roundToF16(x: []f32) void {
    var i: usize = 0;
    while (i + vlen <= x.len) : (i += vlen) {
        const h: @Vector(vlen, f16) = @floatCast(load(x, i));
        store(x, i, @floatCast(h));
    }
    while (i < x.len) : (i += 1) x[i] = @as(f16, @floatCast(x[i]));
}

/// dst += src.
pub fn add(dst: []f32, src: []const f32) void {
    std.debug.assert(dst.len == src.len);
    var i: usize = 0;
    while (i + vlen <= dst.len) : (i += vlen) store(dst, i, load(dst, i) + load(src, i));
    while (i < dst.len) : (i += 1) dst[i] += src[i];
}

/// Scalar twin of add.
pub fn addScalar(dst: []f32, src: []const f32) void {
    for (dst, src) |*d, s| d.* += s;
}

// ---------------------------------------------------------------- argmax

/// What greedy sampling finds in a logits row. `index` is the chosen token for `.ok`, the first
/// NaN for `.nan`, the first +inf for `.pos_inf`; `.all_neg_inf` means nothing can be chosen.
pub const Argmax = struct {
    pub const Kind = enum(i32) { ok = 0, nan = 1, all_neg_inf = 2, pos_inf = 3 };
    kind: Kind,
    index: usize,
};

/// The highest value's index, the lowest index on ties: one vector pass for the maximum (and any
/// NaN), one for its first position. Same answer as `argmaxScalar`.
pub fn argmax(x: []const f32) Argmax {
    const n = x.len;
    var vmax: V = @splat(-std.math.inf(f32));
    var nan_seen: @Vector(vlen, bool) = @splat(false);
    var i: usize = 0;
    while (i + vlen <= n) : (i += vlen) {
        const v = load(x, i);
        nan_seen = nan_seen | (v != v);
        vmax = @max(vmax, v);
    }
    var max = @reduce(.Max, vmax);
    var tail_nan = false;
    while (i < n) : (i += 1) {
        tail_nan = tail_nan or std.math.isNan(x[i]);
        if (x[i] > max) max = x[i];
    }
    if (@reduce(.Or, nan_seen) or tail_nan) {
        for (x, 0..) |v, k| if (std.math.isNan(v)) return .{ .kind = .nan, .index = k };
    }
    if (max == -std.math.inf(f32)) return .{ .kind = .all_neg_inf, .index = 0 };
    const target: V = @splat(max);
    i = 0;
    while (i + vlen <= n) : (i += vlen) {
        if (@reduce(.Or, load(x, i) == target)) break;
    }
    while (x[i] != max) i += 1;
    return .{ .kind = if (max == std.math.inf(f32)) .pos_inf else .ok, .index = i };
}

/// Scalar twin of argmax.
pub fn argmaxScalar(x: []const f32) Argmax {
    for (x, 0..) |v, k| if (std.math.isNan(v)) return .{ .kind = .nan, .index = k };
    var best: ?usize = null;
    var max = -std.math.inf(f32);
    for (x, 0..) |v, k| if (v > max) {
        max = v;
        best = k;
    };
    const b = best orelse return .{ .kind = .all_neg_inf, .index = 0 };
    return .{ .kind = if (max == std.math.inf(f32)) .pos_inf else .ok, .index = b };
}

// ---------------------------------------------------------------- tests

/// Test helper (also sampling.zig's): uniform values in [-scale, scale].
pub fn randomFill(rng: std.Random, x: []f32, scale: f32) void {
    for (x) |*v| v.* = (rng.float(f32) * 2 - 1) * scale;
}

/// Test helper (also sampling.zig's): |want - got| <= abs + rel * |want| everywhere.
pub fn expectClose(want: []const f32, got: []const f32, rel: f32, abs: f32) !void {
    for (want, got, 0..) |w, g, i| {
        if (@abs(w - g) > abs + rel * @abs(w)) {
            std.debug.print("index {d}: want {e} got {e}\n", .{ i, w, g });
            return error.TestExpectedApproxEq;
        }
    }
}

test "expV matches libm exp within 2.5e-7 relative over the whole range" {
    var x: f32 = -87.0;
    while (x < 88.0) : (x += 0.0137) {
        const want: f32 = @exp(x);
        const got = expScalar(x);
        try std.testing.expect(@abs(got - want) <= 2.5e-7 * want);
    }
    try std.testing.expectEqual(@as(f32, 0), expScalar(-1000));
    try std.testing.expectEqual(@as(f32, 1), expScalar(0));
    try std.testing.expect(std.math.isFinite(expScalar(1000)));
}

test "rmsnorm SIMD matches scalar twin on odd lengths" {
    var prng = std.Random.DefaultPrng.init(1);
    const rng = prng.random();
    for ([_]usize{ 1, 7, 8, 9, 31, 64, 576, 1001 }) |n| {
        const x = try std.testing.allocator.alloc(f32, n * 4);
        defer std.testing.allocator.free(x);
        randomFill(rng, x, 3);
        const xs, const w, const a, const b = .{ x[0..n], x[n .. 2 * n], x[2 * n .. 3 * n], x[3 * n ..] };
        rmsnorm(a, xs, w, 1e-5);
        rmsnormScalar(b, xs, w, 1e-5);
        try expectClose(b, a, 1e-5, 1e-6);
    }
}

test "softmax SIMD matches scalar twin and sums to one" {
    var prng = std.Random.DefaultPrng.init(2);
    const rng = prng.random();
    for ([_]usize{ 1, 5, 16, 17, 100, 2049 }) |n| {
        const a = try std.testing.allocator.alloc(f32, n);
        defer std.testing.allocator.free(a);
        const b = try std.testing.allocator.alloc(f32, n);
        defer std.testing.allocator.free(b);
        randomFill(rng, a, 20);
        @memcpy(b, a);
        softmax(a);
        softmaxScalar(b);
        try expectClose(b, a, 2e-6, 1e-9);
        var s: f64 = 0;
        for (a) |v| s += v;
        try std.testing.expectApproxEqAbs(@as(f64, 1), s, 1e-5);
    }
}

test "swiglu, silu and add SIMD match scalar twins" {
    var prng = std.Random.DefaultPrng.init(3);
    const rng = prng.random();
    for ([_]usize{ 3, 8, 13, 1536 }) |n| {
        const buf = try std.testing.allocator.alloc(f32, n * 5);
        defer std.testing.allocator.free(buf);
        randomFill(rng, buf, 12);
        const g, const u, const a, const b, const c = .{ buf[0..n], buf[n .. 2 * n], buf[2 * n .. 3 * n], buf[3 * n .. 4 * n], buf[4 * n ..] };
        swiglu(a, g, u);
        swigluScalar(b, g, u);
        try expectClose(b, a, 1e-6, 1e-6);
        @memcpy(a, g);
        silu(a);
        @memset(c, 1);
        swigluScalar(b, g, c);
        try expectClose(b, a, 1e-6, 1e-6);
        @memcpy(a, g);
        @memcpy(b, g);
        add(a, u);
        addScalar(b, u);
        try std.testing.expectEqualSlices(f32, b, a);
    }
}

test "geglu through the table matches its scalar twin; gelu itself is the tanh form" {
    const table = try std.testing.allocator.create(GeluTable);
    defer std.testing.allocator.destroy(table);
    table.init();
    var prng = std.Random.DefaultPrng.init(12);
    const rng = prng.random();
    var g: [1031]f32 = undefined;
    var u: [1031]f32 = undefined;
    var a: [1031]f32 = undefined;
    var b: [1031]f32 = undefined;
    randomFill(rng, &g, 12);
    randomFill(rng, &u, 2);
    g[0] = -10;
    g[1] = 10;
    g[2] = 0;
    geglu(&a, &g, &u, table);
    gegluScalar(&b, &g, &u);
    try std.testing.expectEqualSlices(f32, &b, &a);
    try std.testing.expectApproxEqAbs(@as(f32, 0.841192), geluScalar(1.0), 1e-5);
    try std.testing.expectApproxEqAbs(@as(f32, -0.158808), geluScalar(-1.0), 1e-5);
}

test "rmsnormHeads normalizes each head on its own; rope factors divide the frequencies" {
    var x: [8]f32 = .{ 1, 2, 3, 4, 10, 20, 30, 40 };
    const w = [_]f32{ 1, 1, 1, 1 };
    rmsnormHeads(&x, 2, &w, 0);
    try expectClose(x[0..4], x[4..8], 1e-6, 1e-6);
    const plain = Rope.init(.neox, 4, 10000, 1);
    const slowed = Rope.initFactors(.neox, 4, 10000, 1, &.{ 1, 8 });
    try std.testing.expectEqual(plain.inv_freq[0], slowed.inv_freq[0]);
    try std.testing.expectApproxEqRel(plain.inv_freq[1] / 8, slowed.inv_freq[1], 1e-12);
}

test "rope normal and neox rotate pairs; rotating by p then -p restores the input" {
    const hd = 64;
    var x: [2 * hd]f32 = undefined;
    var prng = std.Random.DefaultPrng.init(4);
    randomFill(prng.random(), &x, 1);
    const orig = x;
    for ([_]RopeType{ .normal, .neox }) |kind| {
        const rope = Rope.init(kind, hd, 100000, 1);
        var c: [hd / 2]f32 = undefined;
        var s: [hd / 2]f32 = undefined;
        rope.angles(1234, &c, &s);
        rope.apply(&x, 2, hd, &c, &s);
        // Pair 0 turns by exactly pos radians (inv_freq[0] = 1).
        const a0 = if (kind == .normal) x[1] else x[hd / 2];
        const b0 = if (kind == .normal) orig[1] else orig[hd / 2];
        const want0 = orig[0] * @as(f32, @floatCast(@sin(@as(f64, 1234)))) + b0 * @as(f32, @floatCast(@cos(@as(f64, 1234))));
        try std.testing.expectApproxEqAbs(want0, a0, 1e-5);
        rope.angles(-1234, &c, &s);
        rope.apply(&x, 2, hd, &c, &s);
        try expectClose(&orig, &x, 1e-5, 1e-5);
    }
}

test "argmax matches its scalar twin: ties, NaN, infinities, odd lengths" {
    var prng = std.Random.DefaultPrng.init(11);
    const rng = prng.random();
    var buf: [203]f32 = undefined;
    for (0..400) |round| {
        const n = 1 + rng.uintLessThan(usize, buf.len);
        const x = buf[0..n];
        // Few distinct values, so ties are common.
        for (x) |*v| v.* = @floatFromInt(rng.uintLessThan(u8, 6));
        switch (round % 6) {
            1 => x[rng.uintLessThan(usize, n)] = std.math.nan(f32),
            2 => x[rng.uintLessThan(usize, n)] = std.math.inf(f32),
            3 => @memset(x, -std.math.inf(f32)),
            4 => {
                x[rng.uintLessThan(usize, n)] = std.math.inf(f32);
                x[rng.uintLessThan(usize, n)] = std.math.nan(f32);
            },
            else => {},
        }
        const want = argmaxScalar(x);
        const got = argmax(x);
        try std.testing.expectEqual(want.kind, got.kind);
        if (want.kind != .all_neg_inf) try std.testing.expectEqual(want.index, got.index);
    }
}
