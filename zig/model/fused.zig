//! Several weight matrices that read the same activations, computed in one pool run (one barrier):
//! Q/K/V after the attention norm, gate/up after the FFN norm. Rows of every weight are cut into
//! tasks; each (token, row) is the kernels' dotRows, exactly as matmul.matmul computes it.
const std = @import("std");
const quant = @import("../quant.zig");
const matmul = @import("../matmul.zig");
const Pool = @import("../pool.zig").Pool;

pub const max_weights = 4;
/// Tokens sharing one pass over a weight row (as matmul.zig: the same grouping keeps results identical).
const tokens_per_pass = 4;

pub const Part = struct { w: matmul.Weight, out: []f32 };

const Job = struct {
    parts: []const Part,
    x: []const f32,
    act: []const quant.BlockQ8Act,
    n_tokens: usize,
    rows_per_task: usize,
    /// First task index of each part (prefix sums), plus the total at [parts.len].
    first_task: [max_weights + 1]usize,

    fn run(self: *const Job, task: usize) void {
        var p: usize = 0;
        while (task >= self.first_task[p + 1]) p += 1;
        const part = self.parts[p];
        const r0 = (task - self.first_task[p]) * self.rows_per_task;
        const r1 = @min(part.w.rows, r0 + self.rows_per_task);
        switch (part.w.type) {
            .q4_0 => rows(.q4_0, self, part, r0, r1),
            .q4_1 => rows(.q4_1, self, part, r0, r1),
            .q8_0 => rows(.q8_0, self, part, r0, r1),
            else => floatRows(self, part, r0, r1),
        }
    }
};

fn rows(comptime f: quant.QuantFormat, job: *const Job, part: Part, r0: usize, r1: usize) void {
    const w = part.w;
    const nb = w.cols / 32;
    const row_bytes = quant.rowSizeBytes(w.type, w.cols);
    var t: usize = 0;
    while (t + tokens_per_pass <= job.n_tokens) : (t += tokens_per_pass) {
        var acts: [tokens_per_pass][*]const quant.BlockQ8Act = undefined;
        inline for (0..tokens_per_pass) |k| acts[k] = job.act.ptr + (t + k) * nb;
        for (r0..r1) |r| {
            var res: [tokens_per_pass]f32 = undefined;
            quant.dotRows(f, tokens_per_pass, w.data + r * row_bytes, nb, acts, &res);
            inline for (0..tokens_per_pass) |k| part.out[(t + k) * w.rows + r] = res[k];
        }
    }
    while (t < job.n_tokens) : (t += 1) {
        const acts = [1][*]const quant.BlockQ8Act{job.act.ptr + t * nb};
        for (r0..r1) |r| {
            var res: [1]f32 = undefined;
            quant.dotRows(f, 1, w.data + r * row_bytes, nb, acts, &res);
            part.out[t * w.rows + r] = res[0];
        }
    }
}

/// F32 / F16 weights (not in the default model): widen the row, then a plain dot.
fn floatRows(job: *const Job, part: Part, r0: usize, r1: usize) void {
    const w = part.w;
    var buf: [8192]f32 = undefined;
    std.debug.assert(w.cols <= buf.len);
    const row_bytes = quant.rowSizeBytes(w.type, w.cols);
    for (r0..r1) |r| {
        quant.dequantizeRow(w.type, w.data + r * row_bytes, buf[0..w.cols]);
        for (0..job.n_tokens) |t| {
            const xt = job.x[t * w.cols ..][0..w.cols];
            var s: f32 = 0;
            for (xt, buf[0..w.cols]) |a, b| s += a * b;
            part.out[t * w.rows + r] = s;
        }
    }
}

/// out_i = W_i · x for every part, all weights sharing `x` / `act` (n_tokens rows), one barrier.
pub fn matmulMany(pool: *Pool, parts: []const Part, x: []const f32, act: []const quant.BlockQ8Act, n_tokens: usize) void {
    std.debug.assert(parts.len >= 1 and parts.len <= max_weights);
    var total_rows: usize = 0;
    for (parts) |p| {
        std.debug.assert(p.w.cols == parts[0].w.cols and p.out.len >= n_tokens * p.w.rows);
        total_rows += p.w.rows;
    }
    // About 8 tasks per thread (dynamic claiming evens out the rest), at least 16 rows each.
    const rows_per_task = @max(16, std.math.divCeil(usize, total_rows, pool.n_threads * 8) catch unreachable);
    var job: Job = .{ .parts = parts, .x = x, .act = act, .n_tokens = n_tokens, .rows_per_task = rows_per_task, .first_task = undefined };
    job.first_task[0] = 0;
    for (parts, 0..) |p, i| job.first_task[i + 1] = job.first_task[i] + (std.math.divCeil(usize, p.w.rows, rows_per_task) catch unreachable);
    pool.run(job.first_task[parts.len], &job, Job.run);
}
