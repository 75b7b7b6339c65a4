//! Persistent thread pool: workers are created once at init, spin briefly, then park on a futex; `run` is a blocking parallel-for.
const std = @import("std");
const builtin = @import("builtin");

const Atomic = std.atomic.Value;

/// Upper bound on threads (caller included); keeps the worker array and loops bounded.
pub const max_threads = 256;
/// Spin iterations before a worker parks (about 0.5 ms on Zen 3, where a pause takes ~80 cycles:
/// back-to-back kernel calls of one forward pass find the workers awake, idle pools stop burning
/// CPU). Shorter, time-based spinning with the caller sleeping on a futex was tried: with another
/// process taking ~30% of a core, 16-row decode steps got slower (mean 35-36 vs 30-32 ms).
const spin_iterations = 20_000;

/// Task-claim word layout: job id (24 bits) | task count (20 bits) | next index (20 bits).
/// Packing the count and the job id with the index lets a worker claim a task with one CAS
/// and never touch a job that already finished (see `drain`).
const index_bits = 20;
const index_mask: u64 = (1 << index_bits) - 1;
/// Tasks per posted job; `run` posts larger loops in slices of this many.
pub const max_tasks_per_job: usize = (1 << index_bits) - 1;

pub const Pool = struct {
    allocator: std.mem.Allocator,
    /// Threads that execute tasks, the caller of `run` included.
    n_threads: usize,
    workers: []std.Thread,

    /// Futex word: bumped once per posted job (and at shutdown) to release the workers.
    generation: Atomic(u32) = .init(0),
    /// Workers currently parked on `generation` (the caller wakes them only when > 0).
    sleepers: Atomic(u32) = .init(0),
    /// The claim word of the current job (layout above).
    claim: Atomic(u64) = .init(0),
    /// Tasks of the current job that have finished; the caller waits for all of them, not
    /// for the workers: a worker that is descheduled (a loaded machine) and claims nothing
    /// costs nothing.
    done: Atomic(usize) = .init(0),
    /// Set while a `run` is in flight; a second concurrent caller runs its job alone.
    busy: Atomic(bool) = .init(false),
    shutdown: Atomic(bool) = .init(false),
    job_id: u64 = 0,

    // Read by a worker only after it claimed a task of the job (so they are this job's).
    job_base: usize = 0,
    job_ctx: *const anyopaque = undefined,
    job_fn: *const fn (*const anyopaque, usize) void = undefined,

    /// Starts `n_threads - 1` workers (the caller of `run` is the n-th thread).
    pub fn init(allocator: std.mem.Allocator, n_threads: usize) !*Pool {
        if (n_threads == 0 or n_threads > max_threads) return error.InvalidThreadCount;
        const self = try allocator.create(Pool);
        errdefer allocator.destroy(self);
        const workers = try allocator.alloc(std.Thread, n_threads - 1);
        errdefer allocator.free(workers);
        self.* = .{ .allocator = allocator, .n_threads = n_threads, .workers = workers };
        var started: usize = 0;
        errdefer self.stopWorkers(started);
        while (started < workers.len) : (started += 1) {
            workers[started] = try std.Thread.spawn(.{ .stack_size = 1 << 20 }, workerMain, .{self});
        }
        return self;
    }

    pub fn deinit(self: *Pool) void {
        self.stopWorkers(self.workers.len);
        const allocator = self.allocator;
        allocator.free(self.workers);
        allocator.destroy(self);
    }

    fn stopWorkers(self: *Pool, started: usize) void {
        self.shutdown.store(true, .seq_cst);
        _ = self.generation.fetchAdd(1, .seq_cst);
        wakeAll(&self.generation);
        for (self.workers[0..started]) |t| t.join();
    }

    /// Calls `func(ctx, i)` for every i in [0, n_tasks) across the pool and returns when all
    /// are done. Tasks are claimed dynamically; the calling thread works too.
    pub fn run(self: *Pool, n_tasks: usize, ctx: anytype, comptime func: fn (@TypeOf(ctx), usize) void) void {
        const Ctx = @TypeOf(ctx);
        const Wrap = struct {
            fn call(p: *const anyopaque, i: usize) void {
                const c: *const Ctx = @ptrCast(@alignCast(p));
                func(c.*, i);
            }
        };
        if (n_tasks == 0) return;
        if (self.workers.len == 0 or n_tasks == 1 or self.busy.swap(true, .acquire)) {
            for (0..n_tasks) |i| func(ctx, i);
            return;
        }
        defer self.busy.store(false, .release);
        var base: usize = 0;
        while (base < n_tasks) : (base += max_tasks_per_job) {
            self.post(base, @min(max_tasks_per_job, n_tasks - base), @ptrCast(&ctx), Wrap.call);
        }
    }

    fn post(self: *Pool, base: usize, n: usize, ctx: *const anyopaque, func: *const fn (*const anyopaque, usize) void) void {
        std.debug.assert(n > 0 and n <= max_tasks_per_job);
        self.job_base = base;
        self.job_ctx = ctx;
        self.job_fn = func;
        self.done.store(0, .monotonic);
        self.job_id = (self.job_id + 1) & ((1 << 24) - 1);
        // Publishes the job fields above (release) together with index 0.
        self.claim.store((self.job_id << (2 * index_bits)) | (@as(u64, n) << index_bits), .seq_cst);
        _ = self.generation.fetchAdd(1, .seq_cst);
        if (self.sleepers.load(.seq_cst) > 0) wakeAll(&self.generation);

        self.drain();
        var spins: usize = 0;
        while (self.done.load(.acquire) != n) {
            spins += 1;
            if (spins < spin_iterations) std.atomic.spinLoopHint() else std.Thread.yield() catch {};
        }
    }

    /// Claims and runs tasks until the current job has none left.
    fn drain(self: *Pool) void {
        var c = self.claim.load(.acquire);
        while (true) {
            const index = c & index_mask;
            const count = (c >> index_bits) & index_mask;
            if (index >= count) return;
            if (self.claim.cmpxchgWeak(c, c + 1, .acq_rel, .acquire)) |now| {
                c = now;
                continue;
            }
            // Task `index` is ours, so its job cannot finish before we do: the fields are its.
            self.job_fn(self.job_ctx, self.job_base + @as(usize, @intCast(index)));
            _ = self.done.fetchAdd(1, .acq_rel);
            c = self.claim.load(.acquire);
        }
    }

    fn workerMain(self: *Pool) void {
        var seen: u32 = 0;
        while (true) {
            var spins: usize = 0;
            var now = self.generation.load(.acquire);
            while (now == seen) : (now = self.generation.load(.acquire)) {
                spins += 1;
                if (spins < spin_iterations) {
                    std.atomic.spinLoopHint();
                } else {
                    _ = self.sleepers.fetchAdd(1, .seq_cst);
                    if (self.generation.load(.seq_cst) == seen) waitWhile(&self.generation, seen);
                    _ = self.sleepers.fetchSub(1, .seq_cst);
                    spins = 0;
                }
            }
            seen = now;
            if (self.shutdown.load(.acquire)) return;
            self.drain();
        }
    }
};

/// Parks while `word` still holds `expected` (spurious wake-ups are fine: callers re-check).
fn waitWhile(word: *Atomic(u32), expected: u32) void {
    if (builtin.os.tag == .linux) {
        const linux = std.os.linux;
        _ = linux.futex_4arg(&word.raw, .{ .cmd = .WAIT, .private = true }, expected, null);
    } else {
        std.Thread.yield() catch {};
    }
}

fn wakeAll(word: *Atomic(u32)) void {
    if (builtin.os.tag == .linux) {
        const linux = std.os.linux;
        _ = linux.futex_3arg(&word.raw, .{ .cmd = .WAKE, .private = true }, std.math.maxInt(i32));
    }
}

/// Threads to use by default: the machine's logical CPUs, bounded.
pub fn defaultThreadCount() usize {
    const n = std.Thread.getCpuCount() catch 1;
    return @max(1, @min(n, max_threads));
}

const testing = std.testing;

const SumCtx = struct {
    hits: []Atomic(u32),
    total: *Atomic(usize),
};

fn countTask(ctx: SumCtx, i: usize) void {
    _ = ctx.hits[i].fetchAdd(1, .monotonic);
    _ = ctx.total.fetchAdd(i, .monotonic);
}

test "run visits every task exactly once, repeatedly, across thread counts" {
    for ([_]usize{ 1, 2, 3, 5 }) |n_threads| {
        const pool = try Pool.init(testing.allocator, n_threads);
        defer pool.deinit();
        var hits: [97]Atomic(u32) = undefined;
        for (&hits) |*h| h.* = .init(0);
        var total: Atomic(usize) = .init(0);
        const rounds = 50;
        for (0..rounds) |round| {
            const n_tasks = 1 + (round * 13) % hits.len;
            total.store(0, .monotonic);
            for (&hits) |*h| h.store(0, .monotonic);
            pool.run(n_tasks, SumCtx{ .hits = &hits, .total = &total }, countTask);
            try testing.expectEqual(n_tasks * (n_tasks - 1) / 2, total.load(.monotonic));
            for (hits, 0..) |h, i| try testing.expectEqual(@as(u32, if (i < n_tasks) 1 else 0), h.load(.monotonic));
        }
    }
}

test "workers park and wake up again" {
    const pool = try Pool.init(testing.allocator, 3);
    defer pool.deinit();
    var hits: [4]Atomic(u32) = undefined;
    for (&hits) |*h| h.* = .init(0);
    var total: Atomic(usize) = .init(0);
    pool.run(4, SumCtx{ .hits = &hits, .total = &total }, countTask);
    // Long enough for every worker to pass its spin budget and park.
    var spin: usize = 0;
    while (pool.sleepers.load(.seq_cst) < 2 and spin < 1_000_000_000) : (spin += 1) std.atomic.spinLoopHint();
    pool.run(4, SumCtx{ .hits = &hits, .total = &total }, countTask);
    for (hits) |h| try testing.expectEqual(@as(u32, 2), h.load(.monotonic));
}

fn sumTask(total: *Atomic(usize), i: usize) void {
    _ = total.fetchAdd(i, .monotonic);
}

test "a loop longer than one posted job runs every index once" {
    const pool = try Pool.init(testing.allocator, 2);
    defer pool.deinit();
    var total: Atomic(usize) = .init(0);
    const n = max_tasks_per_job + 3;
    pool.run(n, &total, sumTask);
    try testing.expectEqual(n * (n - 1) / 2, total.load(.monotonic));
}

test "init rejects zero and absurd thread counts" {
    try testing.expectError(error.InvalidThreadCount, Pool.init(testing.allocator, 0));
    try testing.expectError(error.InvalidThreadCount, Pool.init(testing.allocator, max_threads + 1));
}
