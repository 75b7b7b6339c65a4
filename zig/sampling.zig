//! Kernels over one logits row for sampling and log-probabilities (log-softmax normalizer, top
//! ids, sampling weights, the top-p nucleus), each with a scalar twin. The greedy argmax is in
//! ops.zig beside the forward pass's other row ops.
const std = @import("std");
const ops = @import("ops.zig");

const vlen = ops.vlen;
const V = ops.V;

const load = ops.load;
const store = ops.store;

/// log(sum(exp(x))), the log-softmax normalizer of a logits row: the maximum, then exp of each
/// value minus it summed in f64 (exact enough for a 49k vocabulary whatever the order). -inf for
/// an empty or all -inf row; NaN if any value is NaN or +inf.
pub fn logSumExp(x: []const f32) f64 {
    if (x.len == 0) return -std.math.inf(f64);
    var vmax: V = @splat(-std.math.inf(f32));
    var i: usize = 0;
    var bad = false;
    while (i + vlen <= x.len) : (i += vlen) {
        const v = load(x, i);
        bad = bad or @reduce(.Or, v != v) or @reduce(.Or, v == @as(V, @splat(std.math.inf(f32))));
        vmax = @max(vmax, v);
    }
    var m = @reduce(.Max, vmax);
    while (i < x.len) : (i += 1) {
        bad = bad or std.math.isNan(x[i]) or x[i] == std.math.inf(f32);
        m = @max(m, x[i]);
    }
    if (bad) return std.math.nan(f64);
    if (m == -std.math.inf(f32)) return -std.math.inf(f64);
    const D = @Vector(vlen, f64);
    const mv: V = @splat(m);
    var acc: D = @splat(0);
    i = 0;
    while (i + vlen <= x.len) : (i += vlen) acc += @as(D, @floatCast(ops.expV(vlen, load(x, i) - mv)));
    var sum: f64 = @reduce(.Add, acc);
    while (i < x.len) : (i += 1) sum += ops.expScalar(x[i] - m);
    return @as(f64, m) + @log(sum);
}

/// Scalar twin of logSumExp (libm exp, one f64 sum in index order).
pub fn logSumExpScalar(x: []const f32) f64 {
    var m = -std.math.inf(f64);
    for (x) |v| {
        if (std.math.isNan(v) or v == std.math.inf(f32)) return std.math.nan(f64);
        m = @max(m, @as(f64, v));
    }
    if (m == -std.math.inf(f64)) return m;
    var sum: f64 = 0;
    for (x) |v| sum += @exp(@as(f64, v) - m);
    return m + @log(sum);
}

/// Sampling weights at temperature 1/inv_t relative to `max`: out[i] = exp((x[i] - max) * inv_t),
/// exactly 1 where x[i] == max (so an infinite inv_t leaves the best at 1, not NaN) and 0 for
/// -inf. Returns their sum in f64. `max` must be at least every x[i].
pub fn expWeights(x: []const f32, max: f32, inv_t: f32, out: []f32) f64 {
    std.debug.assert(out.len >= x.len);
    const D = @Vector(vlen, f64);
    const mv: V = @splat(max);
    const tv: V = @splat(inv_t);
    const zero: V = @splat(0);
    var acc: D = @splat(0);
    var i: usize = 0;
    while (i + vlen <= x.len) : (i += vlen) {
        const d = load(x, i) - mv;
        const w = @select(f32, d == zero, @as(V, @splat(1)), ops.expV(vlen, @select(f32, d == zero, zero, d * tv)));
        store(out, i, w);
        acc += @as(D, @floatCast(w));
    }
    var sum: f64 = @reduce(.Add, acc);
    while (i < x.len) : (i += 1) {
        const d = x[i] - max;
        out[i] = if (d == 0) 1 else ops.expScalar(d * inv_t);
        sum += out[i];
    }
    return sum;
}

/// Scalar twin of expWeights (the same f32 argument, libm exp in f64, rounded to f32).
pub fn expWeightsScalar(x: []const f32, max: f32, inv_t: f32, out: []f32) f64 {
    var sum: f64 = 0;
    for (x, 0..) |v, i| {
        const d = v - max;
        out[i] = if (d == 0) 1 else @floatCast(@exp(@as(f64, d * inv_t)));
        sum += out[i];
    }
    return sum;
}

/// Writes the indices of the `out.len` largest values of `x` (at most x.len), largest first,
/// lower index first on ties, and returns how many it wrote. NaN never counts as large. One
/// vector pass: a vector whose lanes are all at or below the current k-th value is skipped.
pub fn topK(x: []const f32, out: []u32) usize {
    std.debug.assert(x.len <= std.math.maxInt(u32));
    const k = @min(out.len, x.len);
    if (k == 0) return 0;
    var vals: [max_top_k]f32 = undefined;
    std.debug.assert(k <= max_top_k);
    var have: usize = 0;
    var i: usize = 0;
    while (i + vlen <= x.len) : (i += vlen) {
        const v = load(x, i);
        if (have == k and !@reduce(.Or, v > @as(V, @splat(vals[k - 1])))) continue;
        inline for (0..vlen) |l| topInsert(&vals, out, &have, k, v[l], i + l);
    }
    while (i < x.len) : (i += 1) topInsert(&vals, out, &have, k, x[i], i);
    return have;
}

/// The most values `topK` selects at once (OpenAI's top_logprobs limit is 20).
pub const max_top_k = 64;

inline fn topInsert(vals: *[max_top_k]f32, ids: []u32, have: *usize, k: usize, v: f32, idx: usize) void {
    if (std.math.isNan(v)) return;
    if (have.* == k and !(v > vals[k - 1])) return;
    var at = if (have.* == k) k - 1 else have.*;
    while (at > 0 and v > vals[at - 1]) : (at -= 1) {
        vals[at] = vals[at - 1];
        ids[at] = ids[at - 1];
    }
    vals[at] = v;
    ids[at] = @intCast(idx);
    if (have.* < k) have.* += 1;
}

/// Scalar twin of topK: k passes, each taking the largest value not yet taken (first on ties).
pub fn topKScalar(x: []const f32, out: []u32) usize {
    const k = @min(out.len, x.len);
    var n: usize = 0;
    while (n < k) : (n += 1) {
        var best: ?usize = null;
        for (x, 0..) |v, idx| {
            if (std.math.isNan(v)) continue;
            if (std.mem.indexOfScalar(u32, out[0..n], @intCast(idx)) != null) continue;
            if (best == null or v > x[best.?]) best = idx;
        }
        out[n] = @intCast(best orelse break);
    }
    return n;
}

/// Logit range below the maximum that the nucleus histogram spans (lower logits share bucket 0).
pub const nucleus_logit_range: f32 = 40;
/// Histogram buckets of the nucleus search.
pub const nucleus_buckets = 4096;

/// Top-p over a whole row at temperature 1: the smallest best-first set of tokens whose
/// probability mass reaches p. Writes their ids to `out_ids` (the tokens above the boundary
/// bucket in index order, then the boundary bucket's best-first, lower id first on ties) and
/// returns how many. A histogram of mass over logit buckets finds the bucket where the mass
/// crosses p, so only that bucket is sorted. `weights` (n) gets exp(x - max); `bucket_of` (n)
/// is scratch. `max` must be the row's maximum (finite), 0 < p < 1.
pub fn nucleus(x: []const f32, max: f32, p: f64, weights: []f32, bucket_of: []u16, out_ids: []u32) usize {
    const n = x.len;
    std.debug.assert(weights.len >= n and bucket_of.len >= n and out_ids.len >= n);
    const z = expWeights(x, max, 1, weights);
    var mass: [nucleus_buckets]f64 = @splat(0);
    const scale: f32 = nucleus_buckets / nucleus_logit_range;
    const floor = max - nucleus_logit_range;
    for (x, 0..) |v, i| {
        // Monotonic in v, which is all the search needs: the boundary bucket is sorted exactly.
        const b: u16 = if (!(v > floor)) 0 else @intFromFloat(@min(@as(f32, nucleus_buckets - 1), @floor((v - floor) * scale)));
        bucket_of[i] = b;
        mass[b] += weights[i];
    }
    const target = p * z;
    var cum: f64 = 0;
    var boundary: usize = 0;
    var b: usize = nucleus_buckets;
    while (b > 0) {
        b -= 1;
        if (cum + mass[b] >= target) {
            boundary = b;
            break;
        }
        cum += mass[b];
    }
    var count: usize = 0;
    var tail: usize = n;
    for (0..n) |i| {
        const bi = bucket_of[i];
        if (bi > boundary) {
            out_ids[count] = @intCast(i);
            count += 1;
        } else if (bi == boundary) {
            tail -= 1;
            out_ids[tail] = @intCast(i);
        }
    }
    const edge = out_ids[tail..n];
    std.sort.pdq(u32, edge, x, bestFirst);
    for (edge) |id| {
        if (cum >= target) break;
        cum += weights[id];
        out_ids[count] = id;
        count += 1;
    }
    return count;
}

/// Sort order of token ids over a row: higher logit first, lower id first on ties.
fn bestFirst(row: []const f32, a: u32, c: u32) bool {
    return row[a] > row[c] or (row[a] == row[c] and a < c);
}

/// Scalar twin of nucleus: sort every token best-first, take until the mass reaches p.
pub fn nucleusScalar(allocator: std.mem.Allocator, x: []const f32, max: f32, p: f64) ![]u32 {
    const order = try allocator.alloc(u32, x.len);
    defer allocator.free(order);
    for (order, 0..) |*o, i| o.* = @intCast(i);
    std.sort.pdq(u32, order, x, bestFirst);
    var z: f64 = 0;
    for (x) |v| z += @exp(@as(f64, v - max));
    var cum: f64 = 0;
    var k: usize = 0;
    while (k < order.len and cum < p * z) : (k += 1) cum += @exp(@as(f64, x[order[k]] - max));
    return allocator.dupe(u32, order[0..k]);
}

// ---------------------------------------------------------------- tests

const randomFill = ops.randomFill;
const expectClose = ops.expectClose;

test "logSumExp and topK match their scalar twins: ties, -inf, NaN, +inf, odd lengths" {
    var prng = std.Random.DefaultPrng.init(12);
    const rng = prng.random();
    var buf: [517]f32 = undefined;
    var got_ids: [20]u32 = undefined;
    var want_ids: [20]u32 = undefined;
    for (0..300) |round| {
        const n = 1 + rng.uintLessThan(usize, buf.len);
        const x = buf[0..n];
        if (round % 2 == 0) {
            for (x) |*v| v.* = @floatFromInt(rng.uintLessThan(u8, 9)); // many ties
        } else randomFill(rng, x, 30);
        switch (round % 7) {
            1 => x[rng.uintLessThan(usize, n)] = -std.math.inf(f32),
            2 => x[rng.uintLessThan(usize, n)] = std.math.nan(f32),
            3 => x[rng.uintLessThan(usize, n)] = std.math.inf(f32),
            4 => @memset(x, -std.math.inf(f32)),
            else => {},
        }
        const want = logSumExpScalar(x);
        const got = logSumExp(x);
        if (std.math.isNan(want)) {
            try std.testing.expect(std.math.isNan(got));
        } else if (std.math.isInf(want)) {
            try std.testing.expectEqual(want, got);
        } else try std.testing.expectApproxEqRel(want, got, 1e-6);
        const k = rng.uintLessThan(usize, 21);
        const nw = topKScalar(x, want_ids[0..k]);
        const ng = topK(x, got_ids[0..k]);
        try std.testing.expectEqual(nw, ng);
        try std.testing.expectEqualSlices(u32, want_ids[0..nw], got_ids[0..ng]);
    }
}

test "expWeights matches its scalar twin: max exactly 1, -inf 0, an infinite inverse temperature" {
    var prng = std.Random.DefaultPrng.init(13);
    const rng = prng.random();
    var x: [333]f32 = undefined;
    var got: [333]f32 = undefined;
    var want: [333]f32 = undefined;
    for ([_]f32{ 1, 1.0 / 0.7, 0.5, 50, std.math.inf(f32) }) |inv_t| {
        randomFill(rng, &x, 20);
        x[17] = -std.math.inf(f32);
        x[40] = 25; // the maximum, twice
        x[300] = 25;
        const sg = expWeights(&x, 25, inv_t, &got);
        const sw = expWeightsScalar(&x, 25, inv_t, &want);
        try std.testing.expectEqual(@as(f32, 1), got[40]);
        try std.testing.expectEqual(@as(f32, 1), got[300]);
        try std.testing.expectEqual(@as(f32, 0), got[17]);
        try expectClose(&want, &got, 3e-7, 1e-30);
        try std.testing.expectApproxEqRel(sw, sg, 1e-6);
    }
}

test "nucleus selects the same tokens as sorting the whole row (ties, -inf, flat and peaked rows)" {
    var prng = std.Random.DefaultPrng.init(14);
    const rng = prng.random();
    var x: [3000]f32 = undefined;
    var w: [3000]f32 = undefined;
    var bo: [3000]u16 = undefined;
    var ids: [3000]u32 = undefined;
    for (0..60) |round| {
        const scale: f32 = switch (round % 3) {
            0 => 0.5, // flat: the nucleus is most of the row
            1 => 8,
            else => 30, // peaked: a few tokens
        };
        randomFill(rng, &x, scale);
        if (round % 4 == 0) for (x[0..500]) |*v| {
            v.* = @round(v.*); // many ties
        };
        x[rng.uintLessThan(usize, x.len)] = -std.math.inf(f32);
        var max = -std.math.inf(f32);
        for (x) |v| max = @max(max, v);
        const p: f64 = 0.05 + 0.9 * rng.float(f64);
        const n = nucleus(&x, max, p, &w, &bo, &ids);
        const want = try nucleusScalar(std.testing.allocator, &x, max, p);
        defer std.testing.allocator.free(want);
        // The same set (the two sum their mass in different orders: allow one token at the cut).
        try std.testing.expect(@max(n, want.len) - @min(n, want.len) <= 1);
        const common = @min(n, want.len);
        std.sort.pdq(u32, ids[0..n], {}, std.sort.asc(u32));
        const sorted_want = try std.testing.allocator.dupe(u32, want[0..common]);
        defer std.testing.allocator.free(sorted_want);
        std.sort.pdq(u32, sorted_want, {}, std.sort.asc(u32));
        var hits: usize = 0;
        for (sorted_want) |id| {
            if (std.sort.binarySearch(u32, ids[0..n], id, struct {
                fn cmp(a: u32, b: u32) std.math.Order {
                    return std.math.order(a, b);
                }
            }.cmp) != null) hits += 1;
        }
        try std.testing.expectEqual(common, hits);
    }
}
