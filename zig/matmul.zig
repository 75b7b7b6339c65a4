//! STAND-IN until the kernels branch lands (scalar dots, rows split across the pool; same interface as COMMON.md).
const std = @import("std");
const quant = @import("quant.zig");
const Pool = @import("pool.zig").Pool;

pub const Weight = struct { data: [*]const u8, type: quant.GgmlType, rows: usize, cols: usize };

const rows_per_task = 64;

const Task = struct {
    w: Weight,
    x: []const f32,
    act: []const quant.BlockQ8Act,
    n_tokens: usize,
    out: []f32,
    fn run(self: *const Task, task: usize) void {
        const w = self.w;
        const rb = quant.rowSizeBytes(w.type, w.cols);
        const lo = task * rows_per_task;
        const hi = @min(lo + rows_per_task, w.rows);
        for (0..self.n_tokens) |t| {
            for (lo..hi) |r| {
                self.out[t * w.rows + r] = quant.dotRow(w.type, w.data + r * rb, self.x[t * w.cols ..][0..w.cols], self.act[t * w.cols / 32 ..][0 .. w.cols / 32]);
            }
        }
    }
};

pub fn matmul(pool: *Pool, w: Weight, x: []const f32, act: []const quant.BlockQ8Act, n_tokens: usize, out: []f32) void {
    const task: Task = .{ .w = w, .x = x, .act = act, .n_tokens = n_tokens, .out = out };
    pool.run((w.rows + rows_per_task - 1) / rows_per_task, &task, Task.run);
}
