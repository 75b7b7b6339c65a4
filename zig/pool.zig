//! STAND-IN until the kernels branch lands (same interface as COMMON.md): a persistent thread pool,
//! workers spin then park on a futex; `run` is a blocking parallel-for the caller works in too.
const std = @import("std");
const linux = std.os.linux;

const Job = struct {
    func: *const fn (*const anyopaque, usize) void,
    ctx: *const anyopaque,
    n_tasks: usize,
};

/// Spin iterations before a worker parks (about 100-200 us on a desktop core).
const spin_iterations = 1 << 15;

pub const Pool = struct {
    allocator: std.mem.Allocator,
    n_threads: usize,
    threads: []std.Thread,
    /// Futex word: bumped once per job (and at shutdown).
    generation: std.atomic.Value(u32) = .init(0),
    /// (generation << 32) | next task index: a claim only succeeds for the current job.
    claim: std.atomic.Value(u64) = .init(0),
    done: std.atomic.Value(usize) = .init(0),
    sleepers: std.atomic.Value(u32) = .init(0),
    stop: std.atomic.Value(bool) = .init(false),
    job: Job = undefined,

    pub fn init(allocator: std.mem.Allocator, n_threads: usize) !*Pool {
        std.debug.assert(n_threads >= 1);
        const p = try allocator.create(Pool);
        errdefer allocator.destroy(p);
        p.* = .{ .allocator = allocator, .n_threads = n_threads, .threads = try allocator.alloc(std.Thread, n_threads - 1) };
        errdefer allocator.free(p.threads);
        var spawned: usize = 0;
        errdefer {
            p.shutdown();
            for (p.threads[0..spawned]) |t| t.join();
        }
        for (p.threads) |*t| {
            t.* = try std.Thread.spawn(.{ .stack_size = 1 << 20 }, worker, .{p});
            spawned += 1;
        }
        return p;
    }

    fn shutdown(self: *Pool) void {
        self.stop.store(true, .seq_cst);
        _ = self.generation.fetchAdd(1, .seq_cst);
        _ = linux.futex_3arg(&self.generation.raw, .{ .cmd = .WAKE, .private = true }, std.math.maxInt(i32));
    }

    pub fn deinit(self: *Pool) void {
        self.shutdown();
        for (self.threads) |t| t.join();
        self.allocator.free(self.threads);
        self.allocator.destroy(self);
    }

    pub fn run(self: *Pool, n_tasks: usize, ctx: anytype, comptime func: fn (@TypeOf(ctx), usize) void) void {
        if (n_tasks == 0) return;
        if (self.n_threads == 1 or n_tasks == 1) {
            for (0..n_tasks) |i| func(ctx, i);
            return;
        }
        const C = @TypeOf(ctx);
        const Wrap = struct {
            fn call(p: *const anyopaque, i: usize) void {
                const c: *const C = @ptrCast(@alignCast(p));
                func(c.*, i);
            }
        };
        const local = ctx;
        self.job = .{ .func = Wrap.call, .ctx = @ptrCast(&local), .n_tasks = n_tasks };
        self.done.store(0, .seq_cst);
        const gen = self.generation.load(.monotonic) +% 1;
        self.claim.store(@as(u64, gen) << 32, .seq_cst);
        self.generation.store(gen, .seq_cst);
        if (self.sleepers.load(.seq_cst) > 0) {
            _ = linux.futex_3arg(&self.generation.raw, .{ .cmd = .WAKE, .private = true }, std.math.maxInt(i32));
        }
        self.work(gen, self.job);
        while (self.done.load(.acquire) < n_tasks) std.atomic.spinLoopHint();
    }

    fn work(self: *Pool, gen: u32, job: Job) void {
        while (true) {
            const cur = self.claim.load(.acquire);
            if (@as(u32, @truncate(cur >> 32)) != gen) return;
            const idx: usize = @as(u32, @truncate(cur));
            if (idx >= job.n_tasks) return;
            if (self.claim.cmpxchgWeak(cur, cur + 1, .acq_rel, .acquire) != null) continue;
            job.func(job.ctx, idx);
            _ = self.done.fetchAdd(1, .release);
        }
    }

    fn worker(self: *Pool) void {
        var seen: u32 = 0;
        while (true) {
            var spins: usize = 0;
            var gen = self.generation.load(.acquire);
            while (gen == seen) : (gen = self.generation.load(.acquire)) {
                if (spins < spin_iterations) {
                    spins += 1;
                    std.atomic.spinLoopHint();
                    continue;
                }
                _ = self.sleepers.fetchAdd(1, .seq_cst);
                _ = linux.futex_4arg(&self.generation.raw, .{ .cmd = .WAIT, .private = true }, seen, null);
                _ = self.sleepers.fetchSub(1, .seq_cst);
            }
            seen = gen;
            if (self.stop.load(.acquire)) return;
            self.work(gen, self.job);
        }
    }
};

test "pool runs every task exactly once, many times over, and shuts down" {
    const p = try Pool.init(std.testing.allocator, 3);
    defer p.deinit();
    var counts: [1000]std.atomic.Value(u32) = undefined;
    for (&counts) |*c| c.* = .init(0);
    const Ctx = struct {
        counts: []std.atomic.Value(u32),
        fn f(self: *const @This(), i: usize) void {
            _ = self.counts[i].fetchAdd(1, .monotonic);
        }
    };
    const ctx: Ctx = .{ .counts = &counts };
    for (0..200) |round| {
        const n = 1 + (round * 37) % counts.len;
        p.run(n, &ctx, Ctx.f);
    }
    var total: usize = 0;
    for (counts) |c| total += c.load(.monotonic);
    var want: usize = 0;
    for (0..200) |round| want += 1 + (round * 37) % counts.len;
    try std.testing.expectEqual(want, total);
}
