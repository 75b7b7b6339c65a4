//! Weight × activations (matvec and batched matmul) split by output rows across the thread pool; batch invariant.
const std = @import("std");
const quant = @import("quant.zig");
const interleave = @import("interleave.zig");
const simd = @import("simd.zig");
const Pool = @import("pool.zig").Pool;

const BlockQ8Act = quant.BlockQ8Act;

/// A weight matrix: `rows` rows of `cols` elements, row-major, GGML encoding `type`.
pub const Weight = struct {
    data: [*]const u8,
    type: quant.GgmlType,
    rows: usize,
    cols: usize,
    /// Rows repacked eight at a time (interleave.zig): quantized types with rows % 8 == 0 only.
    interleaved: bool = false,

    pub fn rowSizeBytes(w: Weight) usize {
        return quant.rowSizeBytes(w.type, w.cols);
    }
};

/// Rows per task for `total_rows` rows and `n_tokens` tokens over the pool: 2 tasks per thread
/// for a few tokens (a task is mostly streaming its rows from memory: long contiguous runs keep
/// the hardware prefetcher going, and each claim is a contended atomic; with 8, a decode job
/// of SmolLM2 took 22 us on 2 threads, with 2, 18 us, and 2-thread decode went from ~305 to ~335
/// t/s with the machine to itself), 24 for 8 tokens or more: a task is then compute-bound and long, and the
/// thread that finishes first idles for about half of the other's last task, so smaller tasks
/// shorten that tail. At least 16 rows, whole interleaved groups. Results never depend on it.
pub fn rowsPerTask(total_rows: usize, n_tokens: usize, n_threads: usize) usize {
    const tasks_per_thread: usize = if (n_tokens >= 8) 24 else 2;
    const want = @max(min_rows_per_task, std.math.divCeil(usize, total_rows, n_threads * tasks_per_thread) catch unreachable);
    return std.mem.alignForward(usize, want, interleave.group_rows);
}

/// Tokens that share one pass over a weight row (the row is decoded once for all of them).
pub const tokens_per_pass = 4;
/// Minimum rows per task: enough work to amortize claiming a task.
const min_rows_per_task = 16;

/// Memory to pull toward the caches while a matmul runs: each task, after its rows, prefetches
/// its share (part `task` of `n_tasks`). A batched matmul is bound by arithmetic and leaves the
/// memory bus idle, so data the next step of the forward pass reads (the next layer's KV pages)
/// can stream in meanwhile. Results never depend on it.
pub const Prefetch = struct {
    ctx: *const anyopaque,
    issue: *const fn (ctx: *const anyopaque, part: usize, parts: usize) void,

    pub inline fn run(self: Prefetch, part: usize, parts: usize) void {
        self.issue(self.ctx, part, parts);
    }
};

const Job = struct {
    w: Weight,
    x: []const f32,
    act: []const BlockQ8Act,
    n_tokens: usize,
    out: []f32,
    rows_per_task: usize,
    n_tasks: usize,
    prefetch: ?Prefetch,
};

/// out[t*rows + r] = dot(W[r,:], x[t*cols..]) for every token t < n_tokens.
/// Quantized weights read `act` (x quantized by the caller with quant.quantizeActAs(actSumFor(type)),
/// cols/32 blocks per token; Q8_K for the K-quants, written over the same memory); f32/f16 weights read `x`. One (token, row) value never depends on
/// n_tokens or on the thread count.
pub fn matmul(pool: *Pool, w: Weight, x: []const f32, act: []const BlockQ8Act, n_tokens: usize, out: []f32) void {
    matmulPrefetch(pool, w, x, act, n_tokens, out, null);
}

/// `matmul`, with its tasks also issuing `prefetch` (see Prefetch).
pub fn matmulPrefetch(pool: *Pool, w: Weight, x: []const f32, act: []const BlockQ8Act, n_tokens: usize, out: []f32, prefetch: ?Prefetch) void {
    std.debug.assert(out.len >= n_tokens * w.rows);
    if (w.type.isQuantized()) {
        std.debug.assert(w.cols % quant.block_elems == 0);
        std.debug.assert(act.len >= n_tokens * (w.cols / quant.block_elems));
    } else {
        std.debug.assert(x.len >= n_tokens * w.cols);
    }
    if (w.rows == 0 or n_tokens == 0) return;
    const rows_per_task = rowsPerTask(w.rows, n_tokens, pool.n_threads);
    const n_tasks = std.math.divCeil(usize, w.rows, rows_per_task) catch unreachable;
    const job = Job{ .w = w, .x = x, .act = act, .n_tokens = n_tokens, .out = out, .rows_per_task = rows_per_task, .n_tasks = n_tasks, .prefetch = prefetch };
    pool.run(n_tasks, &job, runTask);
}

fn runTask(job: *const Job, task: usize) void {
    const r0 = task * job.rows_per_task;
    const r1 = @min(job.w.rows, r0 + job.rows_per_task);
    computeRows(job.w, job.x, job.act, job.n_tokens, job.out, r0, r1);
    if (job.prefetch) |p| p.run(task, job.n_tasks);
}

/// out[t*rows + r] for rows [r0, r1) and every token: the one place a weight row meets the
/// activations (matmul and fused.matmulMany both call it, so their results are identical).
/// For interleaved weights r0 and r1 must be whole groups (or r1 = rows).
pub fn computeRows(w: Weight, x: []const f32, act: []const BlockQ8Act, n_tokens: usize, out: []f32, r0: usize, r1: usize) void {
    switch (w.type) {
        .f32, .f16, .bf16 => floatRows(w, x, n_tokens, out, r0, r1),
        else => switch (quant.formatOf(w.type).?) {
            inline else => |f| if (w.interleaved) groupRows(f, w, act, n_tokens, out, r0, r1) else quantRows(f, w, act, n_tokens, out, r0, r1),
        },
    }
}

fn quantRows(comptime f: quant.QuantFormat, w: Weight, act: []const BlockQ8Act, n_tokens: usize, out: []f32, r0: usize, r1: usize) void {
    const nb = w.cols / quant.block_elems;
    const row_bytes = w.rowSizeBytes();
    const rows = w.rows;
    var t: usize = 0;
    // Token groups outside, rows inside: this task's rows stay in L1/L2 across the groups.
    while (t + tokens_per_pass <= n_tokens) : (t += tokens_per_pass) {
        var acts: [tokens_per_pass][*]const BlockQ8Act = undefined;
        inline for (0..tokens_per_pass) |k| acts[k] = act.ptr + (t + k) * nb;
        for (r0..r1) |r| {
            var res: [tokens_per_pass]f32 = undefined;
            quant.dotRows(f, tokens_per_pass, w.data + r * row_bytes, nb, acts, &res);
            inline for (0..tokens_per_pass) |k| out[(t + k) * rows + r] = res[k];
        }
    }
    while (t < n_tokens) : (t += 1) {
        const acts = [1][*]const BlockQ8Act{act.ptr + t * nb};
        for (r0..r1) |r| {
            var res: [1]f32 = undefined;
            quant.dotRows(f, 1, w.data + r * row_bytes, nb, acts, &res);
            out[t * rows + r] = res[0];
        }
    }
}

/// Weight bytes a task keeps hot while every token group passes over them (about L1d).
const hot_weight_bytes = 32 * 1024;

/// Interleaved weights: eight rows per pass, up to eight tokens per decode of a record.
/// Groups go in slices of about `hot_weight_bytes`, each slice meeting every token before the
/// next, so a large matrix (the output layer) streams from memory once per step, not once per
/// token group.
fn groupRows(comptime f: quant.QuantFormat, w: Weight, act: []const BlockQ8Act, n_tokens: usize, out: []f32, r0: usize, r1: usize) void {
    const G = interleave.group_rows;
    std.debug.assert(r0 % G == 0 and r1 % G == 0);
    const nb = w.cols / quant.block_elems;
    const group_bytes = G * w.rowSizeBytes();
    const slice_groups = @max(1, hot_weight_bytes / group_bytes);
    var s0 = r0 / G;
    while (s0 < r1 / G) : (s0 += slice_groups) {
        const s1 = @min(r1 / G, s0 + slice_groups);
        // Eight tokens per decoded record, then four, two, one: the per-token arithmetic is the
        // same in each, so the grouping never changes a result. (Two sessions decoding together
        // once decoded every record twice, one token at a time: their step cost two single steps.)
        var t: usize = 0;
        while (t + 8 <= n_tokens) : (t += 8) groupTokens(f, 8, w, act, t, out, s0, s1, nb, group_bytes);
        while (t + 4 <= n_tokens) : (t += 4) groupTokens(f, 4, w, act, t, out, s0, s1, nb, group_bytes);
        while (t + 2 <= n_tokens) : (t += 2) groupTokens(f, 2, w, act, t, out, s0, s1, nb, group_bytes);
        while (t < n_tokens) : (t += 1) groupTokens(f, 1, w, act, t, out, s0, s1, nb, group_bytes);
    }
}

inline fn groupTokens(comptime f: quant.QuantFormat, comptime n: usize, w: Weight, act: []const BlockQ8Act, t: usize, out: []f32, g0: usize, g1: usize, nb: usize, group_bytes: usize) void {
    const G = interleave.group_rows;
    var acts: [n][*]const BlockQ8Act = undefined;
    inline for (0..n) |k| acts[k] = act.ptr + (t + k) * nb;
    for (g0..g1) |g| {
        var res: [n]@Vector(G, f32) = undefined;
        interleave.dotGroup(f, n, w.data + g * group_bytes, nb, acts, &res);
        inline for (0..n) |k| out[(t + k) * w.rows + g * G ..][0..G].* = res[k];
    }
}

fn floatRows(w: Weight, x: []const f32, n_tokens: usize, out: []f32, r0: usize, r1: usize) void {
    const cols = w.cols;
    if (w.type == .f16 and n_tokens > 1) return f16RowsMany(w, x, n_tokens, out, r0, r1);
    for (0..n_tokens) |t| {
        const xt = x[t * cols ..][0..cols];
        for (r0..r1) |r| {
            out[t * w.rows + r] = switch (w.type) {
                .f32 => simd.dotF32(@as([*]align(1) const f32, @ptrCast(w.data + r * cols * 4))[0..cols], xt),
                .f16 => simd.dotF16(@ptrCast(w.data + r * cols * 2), xt),
                .bf16 => simd.dotBf16(@ptrCast(w.data + r * cols * 2), xt),
                else => unreachable,
            };
        }
    }
}

/// F16 rows for a step of several tokens: rows outside (each read from memory once per step),
/// tokens inside in passes of `tokens_per_pass` (then one of the 1-3 left) through simd.dotF16Many, whose results equal
/// dotF16's bit for bit, so a (token, row) value does not depend on n_tokens.
fn f16RowsMany(w: Weight, x: []const f32, n_tokens: usize, out: []f32, r0: usize, r1: usize) void {
    const cols = w.cols;
    const P = tokens_per_pass;
    for (r0..r1) |r| {
        const row: [*]align(1) const f16 = @ptrCast(w.data + r * cols * 2);
        var t: usize = 0;
        while (t + P <= n_tokens) : (t += P) {
            var xs: [P][*]const f32 = undefined;
            inline for (0..P) |k| xs[k] = x[(t + k) * cols ..].ptr;
            var res: [P]f32 = undefined;
            simd.dotF16Many(P, row, &xs, cols, &res);
            inline for (0..P) |k| out[(t + k) * w.rows + r] = res[k];
        }
        switch (n_tokens - t) {
            inline 2, 3 => |m| {
                var xs: [m][*]const f32 = undefined;
                inline for (0..m) |k| xs[k] = x[(t + k) * cols ..].ptr;
                var res: [m]f32 = undefined;
                simd.dotF16Many(m, row, &xs, cols, &res);
                inline for (0..m) |k| out[(t + k) * w.rows + r] = res[k];
            },
            1 => out[t * w.rows + r] = simd.dotF16(row, x[t * cols ..][0..cols]),
            else => {},
        }
    }
}

/// Scalar twin of `matmul` (single thread, scalar dots) for the tests.
pub fn matmulScalar(w: Weight, x: []const f32, act: []const BlockQ8Act, n_tokens: usize, out: []f32) void {
    const row_bytes = w.rowSizeBytes();
    if (w.interleaved) {
        const G = interleave.group_rows;
        const nb = w.cols / quant.block_elems;
        for (0..n_tokens) |t| for (0..w.rows / G) |g| {
            out[t * w.rows + g * G ..][0..G].* = interleave.dotGroupScalar(w.type, w.data + g * G * row_bytes, nb, act[t * nb ..][0..nb]);
        };
        return;
    }
    for (0..n_tokens) |t| for (0..w.rows) |r| {
        const row = w.data + r * row_bytes;
        out[t * w.rows + r] = switch (w.type) {
            .f32 => simd.dotScalar(f32, @ptrCast(row), x[t * w.cols ..][0..w.cols]),
            .f16 => simd.dotScalar(f16, @ptrCast(row), x[t * w.cols ..][0..w.cols]),
            .bf16 => simd.dotBf16Scalar(@ptrCast(row), x[t * w.cols ..][0..w.cols]),
            else => blk: {
                const nb = w.cols / quant.block_elems;
                break :blk quant.dotQuantScalar(w.type, row, act[t * nb ..][0..nb]);
            },
        };
    };
}

const testing = std.testing;

/// Random weights (floats, quantized by each test) and activations for `max_tokens` tokens.
fn TestInputs(comptime rows: usize, comptime cols: usize, comptime max_tokens: usize) type {
    return struct {
        wf: [rows * cols]f32,
        x: [max_tokens * cols]f32,
        act: [max_tokens * (cols / quant.block_elems)]BlockQ8Act,

        fn fill(self: *@This(), seed: u64) void {
            var prng = std.Random.DefaultPrng.init(seed);
            const r = prng.random();
            for (&self.wf) |*v| v.* = r.float(f32) * 2 - 1;
            for (&self.x) |*v| v.* = r.float(f32) * 2 - 1;
            quant.quantizeAct(&self.x, &self.act);
        }
    };
}

test "matmul matches the scalar twin and is batch and thread invariant for every format" {
    const rows = 45;
    const cols = 96;
    const max_tokens = 7;
    var in: TestInputs(rows, cols, max_tokens) = undefined;
    in.fill(21);
    const wf = &in.wf;
    const x = &in.x;
    const act = &in.act;
    var wbuf: [rows * cols * 4]u8 = undefined;
    var ref: [max_tokens * rows]f32 = undefined;
    var base: [max_tokens * rows]f32 = undefined;
    var got: [max_tokens * rows]f32 = undefined;

    const pools = [_]*Pool{ try Pool.init(testing.allocator, 1), try Pool.init(testing.allocator, 3) };
    defer for (pools) |p| p.deinit();

    for ([_]quant.GgmlType{ .f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0 }) |t| {
        const rb = quant.rowSizeBytes(t, cols);
        for (0..rows) |i| quant.quantizeRow(t, wf[i * cols ..][0..cols], wbuf[i * rb ..].ptr);
        const w = Weight{ .data = &wbuf, .type = t, .rows = rows, .cols = cols };
        matmulScalar(w, x, act, max_tokens, &ref);
        matmul(pools[0], w, x, act, max_tokens, &base);
        for (ref, base) |a, b| try testing.expectApproxEqAbs(a, b, 1e-4 * (1 + @abs(a)));
        for (pools) |p| for (1..max_tokens + 1) |n| {
            @memset(&got, std.math.nan(f32));
            matmul(p, w, x, act, n, &got);
            // Bit-identical to the 7-token single-thread run whatever n and the thread count.
            try testing.expectEqualSlices(f32, base[0 .. n * rows], got[0 .. n * rows]);
        };
    }
}

test "interleaved matmul equals its scalar twin bit for bit, whatever the token and thread counts" {
    const rows = 40; // five groups: tasks of 16 rows cut them 2 + 2 + 1
    const cols = 128;
    const max_tokens = 9;
    var in: TestInputs(rows, cols, max_tokens) = undefined;
    in.fill(23);
    const wf = &in.wf;
    const x = &in.x;
    const act = &in.act;
    var plain: [rows * cols * 2]u8 = undefined;
    var packed_buf: [rows * cols * 2]u8 = undefined;
    var ref: [max_tokens * rows]f32 = undefined;
    var got: [max_tokens * rows]f32 = undefined;
    var flat: [max_tokens * rows]f32 = undefined;
    const pools = [_]*Pool{ try Pool.init(testing.allocator, 1), try Pool.init(testing.allocator, 3) };
    defer for (pools) |p| p.deinit();
    for ([_]quant.GgmlType{ .q4_0, .q4_1, .q5_0, .q5_1, .q8_0 }) |t| {
        const rb = quant.rowSizeBytes(t, cols);
        for (0..rows) |i| quant.quantizeRow(t, wf[i * cols ..][0..cols], plain[i * rb ..].ptr);
        interleave.repackGroups(t, &plain, &packed_buf, cols, 0, rows / interleave.group_rows);
        const w = Weight{ .data = &packed_buf, .type = t, .rows = rows, .cols = cols, .interleaved = true };
        matmulScalar(w, x, act, max_tokens, &ref);
        matmulScalar(.{ .data = &plain, .type = t, .rows = rows, .cols = cols }, x, act, max_tokens, &flat);
        for (flat, ref) |a, b| try testing.expectApproxEqAbs(a, b, 1e-4 * (1 + @abs(a)));
        for (pools) |p| for (1..max_tokens + 1) |n| {
            @memset(&got, std.math.nan(f32));
            matmul(p, w, x, act, n, &got);
            try testing.expectEqualSlices(f32, ref[0 .. n * rows], got[0 .. n * rows]);
        };
    }
}

test "K-quant and IQ4 matmul, plain and interleaved: scalar twins, bit-identical across token and thread counts" {
    const rows = 40;
    const cols = 512;
    const max_tokens = 9;
    const nb = cols / quant.block_elems;
    var prng = std.Random.DefaultPrng.init(29);
    const r = prng.random();
    var x: [max_tokens * cols]f32 = undefined;
    for (&x) |*v| v.* = (r.float(f32) * 2 - 1) * 2;
    var act: [max_tokens * nb]BlockQ8Act = undefined;
    var plain: [rows * cols]u8 = undefined;
    var packed_buf: [rows * cols]u8 = undefined;
    var ref: [max_tokens * rows]f32 = undefined;
    var flat: [max_tokens * rows]f32 = undefined;
    var base: [max_tokens * rows]f32 = undefined;
    var got: [max_tokens * rows]f32 = undefined;
    const pools = [_]*Pool{ try Pool.init(testing.allocator, 1), try Pool.init(testing.allocator, 3) };
    defer for (pools) |p| p.deinit();
    for ([_]quant.GgmlType{ .q2_k, .q3_k, .q4_k, .q5_k, .q6_k, .iq4_xs, .iq4_nl }) |t| {
        quant.quantizeActAs(quant.actSumFor(t), &x, &act);
        const size = rows * quant.rowSizeBytes(t, cols);
        quant.kquants.randomBlocks(t, r, plain[0..size]);
        interleave.repackGroups(t, &plain, &packed_buf, cols, 0, rows / interleave.group_rows);
        // The embedding lookup's interleaved dequantization equals the plain one.
        var deq: [cols]f32 = undefined;
        var deq_plain: [cols]f32 = undefined;
        for (0..rows) |row| {
            interleave.dequantizeRow(t, &packed_buf, cols, row, &deq);
            quant.dequantizeRow(t, plain[row * quant.rowSizeBytes(t, cols) ..].ptr, &deq_plain);
            try testing.expectEqualSlices(f32, &deq_plain, &deq);
        }
        const wp = Weight{ .data = &plain, .type = t, .rows = rows, .cols = cols };
        const wi = Weight{ .data = &packed_buf, .type = t, .rows = rows, .cols = cols, .interleaved = true };
        matmulScalar(wp, &x, &act, max_tokens, &flat);
        matmulScalar(wi, &x, &act, max_tokens, &ref);
        errdefer std.debug.print("type {s}\n", .{@tagName(t)});
        for (flat, ref) |a, b| try testing.expectApproxEqAbs(a, b, 1e-4 * (1 + @abs(a)));
        matmul(pools[0], wp, &x, &act, max_tokens, &base);
        for (flat, base) |a, b| try testing.expectApproxEqAbs(a, b, 1e-4 * (1 + @abs(a)));
        for (pools) |p| for (1..max_tokens + 1) |n| {
            @memset(&got, std.math.nan(f32));
            matmul(p, wi, &x, &act, n, &got);
            try testing.expectEqualSlices(f32, ref[0 .. n * rows], got[0 .. n * rows]);
            @memset(&got, std.math.nan(f32));
            matmul(p, wp, &x, &act, n, &got);
            try testing.expectEqualSlices(f32, base[0 .. n * rows], got[0 .. n * rows]);
        };
    }
}
