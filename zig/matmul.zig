//! STAND-IN until the kernels branch lands (scalar, same interface as COMMON.md).
const std = @import("std");
const quant = @import("quant.zig");
const Pool = @import("pool.zig").Pool;

pub const Weight = struct { data: [*]const u8, type: quant.GgmlType, rows: usize, cols: usize };

pub fn matmul(pool: *Pool, w: Weight, x: []const f32, act: []const quant.BlockQ8Act, n_tokens: usize, out: []f32) void {
    _ = pool;
    const rb = quant.rowSizeBytes(w.type, w.cols);
    for (0..n_tokens) |t| {
        for (0..w.rows) |r| {
            out[t * w.rows + r] = quant.dotRow(w.type, w.data + r * rb, x[t * w.cols ..][0..w.cols], act[t * w.cols / 32 ..][0 .. w.cols / 32]);
        }
    }
}
