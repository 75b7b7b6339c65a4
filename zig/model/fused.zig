//! Several weight matrices that read the same activations, computed in one pool run (one barrier):
//! Q/K/V after the attention norm, gate/up after the FFN norm. Rows of every weight are cut into
//! tasks; each (token, row) goes through matmul.computeRows, exactly as matmul.matmul computes it.
const std = @import("std");
const quant = @import("../quant.zig");
const matmul = @import("../matmul.zig");
const Pool = @import("../pool.zig").Pool;

pub const max_weights = 4;

pub const Part = struct { w: matmul.Weight, out: []f32 };

const Job = struct {
    parts: []const Part,
    x: []const f32,
    act: []const quant.BlockQ8Act,
    n_tokens: usize,
    rows_per_task: usize,
    /// First task index of each part (prefix sums), plus the total at [parts.len].
    first_task: [max_weights + 1]usize,
    prefetch: ?matmul.Prefetch,

    fn run(self: *const Job, task: usize) void {
        var p: usize = 0;
        while (task >= self.first_task[p + 1]) p += 1;
        const part = self.parts[p];
        const r0 = (task - self.first_task[p]) * self.rows_per_task;
        const r1 = @min(part.w.rows, r0 + self.rows_per_task);
        matmul.computeRows(part.w, self.x, self.act, self.n_tokens, part.out, r0, r1);
        if (self.prefetch) |pf| pf.run(task, self.first_task[self.parts.len]);
    }
};

/// out_i = W_i · x for every part, all weights sharing `x` / `act` (n_tokens rows), one barrier;
/// the tasks also issue `prefetch` (matmul.Prefetch) when given.
pub fn matmulMany(pool: *Pool, parts: []const Part, x: []const f32, act: []const quant.BlockQ8Act, n_tokens: usize, prefetch: ?matmul.Prefetch) void {
    std.debug.assert(parts.len >= 1 and parts.len <= max_weights);
    var total_rows: usize = 0;
    for (parts) |p| {
        std.debug.assert(p.w.cols == parts[0].w.cols and p.out.len >= n_tokens * p.w.rows);
        total_rows += p.w.rows;
    }
    const rows_per_task = matmul.rowsPerTask(total_rows, n_tokens, pool.n_threads);
    var job: Job = .{ .parts = parts, .x = x, .act = act, .n_tokens = n_tokens, .rows_per_task = rows_per_task, .first_task = undefined, .prefetch = prefetch };
    job.first_task[0] = 0;
    for (parts, 0..) |p, i| job.first_task[i + 1] = job.first_task[i] + (std.math.divCeil(usize, p.w.rows, rows_per_task) catch unreachable);
    pool.run(job.first_task[parts.len], &job, Job.run);
}
