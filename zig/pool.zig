//! STAND-IN until the kernels branch lands: runs every task on the calling thread.
const std = @import("std");

pub const Pool = struct {
    allocator: std.mem.Allocator,
    n_threads: usize,

    pub fn init(allocator: std.mem.Allocator, n_threads: usize) !*Pool {
        const p = try allocator.create(Pool);
        p.* = .{ .allocator = allocator, .n_threads = n_threads };
        return p;
    }
    pub fn deinit(self: *Pool) void {
        self.allocator.destroy(self);
    }
    pub fn run(self: *Pool, n_tasks: usize, ctx: anytype, comptime func: fn (@TypeOf(ctx), usize) void) void {
        _ = self;
        for (0..n_tasks) |i| func(ctx, i);
    }
};
