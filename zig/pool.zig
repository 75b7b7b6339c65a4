//! Persistent thread pool: workers are created once at init, spin briefly, then park on a futex; `run` is a blocking parallel-for.
//!
//! A busy machine: when another process keeps a core busy, the kernel time-shares that core
//! between it and a worker, and a worker preempted while it holds a claimed task makes the caller
//! wait for the rest of the other process's time slice (milliseconds, against a job of tens or
//! hundreds of microseconds): 2-thread decode became slower than 1-thread decode. Tasks already
//! claimed cannot be taken back: re-running one on the caller would need every task to be
//! idempotent (not so: RepackJob releases its source pages as it copies them) and the preempted
//! worker would still write its (stale) rows later, into buffers the forward pass has moved on
//! to reuse. Unclaimed tasks are never stuck (the caller claims them itself); only the claimed
//! one is. Moving the caller to sleep so the kernel migrates the worker to its core was tried:
//! the scheduler does not migrate a task that ran within the last ~0.5 ms (cache-hot), so it
//! waited as long. So the pool measures instead: a job where the caller, after its own share,
//! waited longer for a late worker than it worked itself (and more than `stall_min_ns`) is a
//! stall, because running it alone would have cost about twice its own share, less than what it
//! paid. After a second stall within `stall_repeat_ns` (one alone is an interrupt, not a busy
//! machine) the caller runs jobs alone for a while (`solo_min_ns`, doubling on each
//! stall up to `solo_max_ns`), then tries the workers again; a first parallel job that is on time
//! halves the next period. Under steady contention the periods grow and the workers are tried a
//! few times a second, each try costing at most one stall.
//!
//! Stalls are not the whole cost. On a machine with more runnable threads than cores, a worker
//! is descheduled most of the time, and when it runs it spins for the next job on a core the
//! caller (or someone) could use: measured with the load at ~9 on 2 cores, the worker ran 5.5%
//! of the tasks over 20,000 jobs, only 2 jobs stalled and the caller waited 168 ms in all, yet
//! 2-thread decode was 20-40% slower than 1-thread. So the pool also counts who ran the tasks:
//! over each `share_window_jobs` parallel jobs, workers that ran less than half their fair share
//! ((n-1)/n of the tasks) count as a stall too, and the caller goes solo (workers park after
//! their spin) until the next try. On a quiet machine no job stalls and nothing changes; on a busy one
//! the pool is never much slower than one thread.
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

/// A wait for late workers shorter than this is never a stall (a worker waking from its futex
/// takes tens of microseconds; a preempted one, milliseconds).
const stall_min_ns: u64 = 100 * std.time.ns_per_us;
/// A stall sends the caller solo only when another one came less than this before it (or during
/// a try after a solo period): with the machine to itself a worker is still interrupted now
/// and then (about once a second here, chrt -f), and a solo period of 10 ms or more after each
/// cost more than the stall did. Under contention stalls come every few milliseconds.
const stall_repeat_ns: u64 = 50 * std.time.ns_per_ms;
/// How long the caller runs jobs alone after a stall: from this, doubling per stall, to the max.
const solo_min_ns: u64 = 10 * std.time.ns_per_ms;
const solo_max_ns: u64 = 320 * std.time.ns_per_ms;
/// Parallel jobs over which the workers' share of the tasks is judged.
const share_window_jobs: u32 = 64;

/// Task-claim word layout: job id (24 bits) | task count (20 bits) | next index (20 bits).
/// Packing the count and the job id with the index lets a worker claim a task with one CAS
/// and never touch a job that already finished (see `drain`).
const index_bits = 20;
const index_mask: u64 = (1 << index_bits) - 1;
/// Tasks per posted job; `run` posts larger loops in slices of this many.
pub const max_tasks_per_job: usize = (1 << index_bits) - 1;

/// What the pool did since it started (hearth_pool_stats): how often the stall rules fired and
/// how the work was shared. Jobs of one task, and jobs a second concurrent caller ran alone, are
/// not counted.
pub const Stats = extern struct {
    /// Jobs posted to the workers, and their wall time on the caller (post to last task done).
    parallel_jobs: u64 = 0,
    parallel_ns: u64 = 0,
    /// Tasks of those jobs, and how many of them the caller ran itself.
    parallel_tasks: u64 = 0,
    caller_tasks: u64 = 0,
    /// Time the caller spent waiting for late workers after it ran out of tasks to claim.
    wait_ns: u64 = 0,
    /// Jobs where that wait was a stall (see the top of the file).
    stalls: u64 = 0,
    /// Windows of `share_window_jobs` where the workers ran under half their share.
    idle_windows: u64 = 0,
    /// Solo periods started (after a stall or an idle window).
    solo_periods: u64 = 0,
    /// Jobs the caller ran alone in a solo period, and their wall time.
    solo_jobs: u64 = 0,
    solo_ns: u64 = 0,
};

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

    // Stall detection (see the top of the file). Touched only by the caller holding `busy`.
    /// Monotonic time until which `run` executes jobs on the caller alone.
    solo_until_ns: u64 = 0,
    /// The next solo period.
    solo_window_ns: u64 = solo_min_ns,
    /// When the last stall happened (0: never).
    last_stall_ns: u64 = 0,
    /// Counters (`stats()`): stalls, solo and parallel jobs, who ran the tasks, time spent.
    counts: Stats = .{},
    /// The parallel jobs since a solo period are a try: if on time, they shrink the next period.
    probing: bool = false,
    /// Parallel jobs, their tasks and the tasks the caller ran itself, since the last judgement.
    window_jobs: u32 = 0,
    window_tasks: u64 = 0,
    window_caller_tasks: u64 = 0,

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
        const start_ns = monotonicNs();
        if (self.solo_until_ns != 0) {
            if (start_ns < self.solo_until_ns) {
                for (0..n_tasks) |i| func(ctx, i);
                self.counts.solo_jobs += 1;
                self.counts.solo_ns += monotonicNs() -| start_ns;
                return;
            }
            self.solo_until_ns = 0;
            self.probing = true;
        }
        var stalled = false;
        var base: usize = 0;
        while (base < n_tasks) : (base += max_tasks_per_job) {
            const n = @min(max_tasks_per_job, n_tasks - base);
            const r = self.post(base, n, @ptrCast(&ctx), Wrap.call, start_ns);
            if (r.stalled) stalled = true;
            self.window_tasks += n;
            self.window_caller_tasks += r.caller_tasks;
            self.counts.parallel_tasks += n;
            self.counts.caller_tasks += r.caller_tasks;
            self.counts.wait_ns += r.waited_ns;
        }
        self.counts.parallel_jobs += 1;
        self.counts.parallel_ns += monotonicNs() -| start_ns;
        var stall_repeated = false;
        if (stalled) {
            self.counts.stalls += 1;
            const now_ns = monotonicNs();
            stall_repeated = self.probing or (self.last_stall_ns != 0 and now_ns -| self.last_stall_ns < stall_repeat_ns);
            self.last_stall_ns = now_ns;
        }
        self.window_jobs += 1;
        var idle = false;
        if (self.window_jobs >= share_window_jobs) {
            // Workers' tasks * 2n < (n-1) * tasks: less than half of their fair share.
            const worker_tasks = self.window_tasks - self.window_caller_tasks;
            idle = worker_tasks * 2 * self.n_threads < (self.n_threads - 1) * self.window_tasks;
            if (idle) self.counts.idle_windows += 1;
            self.window_jobs = 0;
            self.window_tasks = 0;
            self.window_caller_tasks = 0;
        }
        if (stall_repeated or idle) {
            self.counts.solo_periods += 1;
            self.solo_until_ns = monotonicNs() + self.solo_window_ns;
            self.solo_window_ns = @min(solo_max_ns, 2 * self.solo_window_ns);
            self.probing = false;
            self.window_jobs = 0;
            self.window_tasks = 0;
            self.window_caller_tasks = 0;
        } else if (self.probing and self.window_jobs == 0) {
            // A whole window on time after a solo period.
            self.solo_window_ns = @max(solo_min_ns, self.solo_window_ns / 2);
            self.probing = false;
        }
    }

    /// The counters so far. Call it between runs, from the thread that calls `run`.
    pub fn stats(self: *const Pool) Stats {
        return self.counts;
    }

    const Posted = struct { stalled: bool, caller_tasks: usize, waited_ns: u64 };

    /// Posts one job, works on it, waits for it; says whether the wait for late workers was a
    /// stall and how many tasks the caller ran.
    fn post(self: *Pool, base: usize, n: usize, ctx: *const anyopaque, func: *const fn (*const anyopaque, usize) void, start_ns: u64) Posted {
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

        const caller_tasks = self.drain();
        if (self.done.load(.acquire) == n) return .{ .stalled = false, .caller_tasks = caller_tasks, .waited_ns = 0 };
        // Every task is claimed; some worker still runs one.
        const drained_ns = monotonicNs();
        var spins: usize = 0;
        while (self.done.load(.acquire) != n) {
            spins += 1;
            if (spins < spin_iterations) std.atomic.spinLoopHint() else std.Thread.yield() catch {};
        }
        const waited_ns = monotonicNs() -| drained_ns;
        return .{ .stalled = waited_ns > stall_min_ns and waited_ns > drained_ns -| start_ns, .caller_tasks = caller_tasks, .waited_ns = waited_ns };
    }

    /// Claims and runs tasks until the current job has none left; returns how many it ran.
    fn drain(self: *Pool) usize {
        var ran: usize = 0;
        var c = self.claim.load(.acquire);
        while (true) {
            const index = c & index_mask;
            const count = (c >> index_bits) & index_mask;
            if (index >= count) return ran;
            if (self.claim.cmpxchgWeak(c, c + 1, .acq_rel, .acquire)) |now| {
                c = now;
                continue;
            }
            // Task `index` is ours, so its job cannot finish before we do: the fields are its.
            self.job_fn(self.job_ctx, self.job_base + @as(usize, @intCast(index)));
            _ = self.done.fetchAdd(1, .acq_rel);
            ran += 1;
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
            _ = self.drain();
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

fn monotonicNs() u64 {
    var ts: std.c.timespec = undefined;
    if (std.c.clock_gettime(.MONOTONIC, &ts) != 0) return 0;
    return @as(u64, @intCast(ts.sec)) * std.time.ns_per_s + @as(u64, @intCast(ts.nsec));
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

const StallCtx = struct {
    hits: []Atomic(u32),
    caller: std.Thread.Id,
    /// Tasks a worker (not the caller) runs sleep this long: a worker preempted mid-task.
    worker_sleep_ns: u64,
};

fn stallTask(ctx: StallCtx, i: usize) void {
    if (std.Thread.getCurrentId() != ctx.caller and ctx.worker_sleep_ns > 0) {
        var ts: std.c.timespec = .{ .sec = 0, .nsec = @intCast(ctx.worker_sleep_ns) };
        _ = std.c.nanosleep(&ts, null);
    } else {
        // The caller's tasks take ~20 us, so the worker finds tasks left to claim.
        const until = monotonicNs() + 20 * std.time.ns_per_us;
        while (monotonicNs() < until) std.atomic.spinLoopHint();
    }
    _ = ctx.hits[i].fetchAdd(1, .monotonic);
}

test "a worker late with its task makes the caller run the next jobs alone, then try the workers again" {
    const pool = try Pool.init(testing.allocator, 2);
    defer pool.deinit();
    var hits: [64]Atomic(u32) = undefined;
    for (&hits) |*h| h.* = .init(0);
    const me = std.Thread.getCurrentId();
    // Any task the worker claims takes 5 ms, the caller's 20 us: the caller waits for the worker.
    var rounds: usize = 0;
    while (pool.solo_until_ns == 0 and rounds < 200) : (rounds += 1) {
        pool.run(hits.len, StallCtx{ .hits = &hits, .caller = me, .worker_sleep_ns = 5 * std.time.ns_per_ms }, stallTask);
    }
    try testing.expect(pool.counts.stalls >= 2);
    try testing.expectEqual(2 * solo_min_ns, pool.solo_window_ns);
    // Within the solo period every task runs on the caller, each exactly once (the period is
    // stretched so a preempted test thread cannot outlive it).
    try testing.expect(pool.solo_until_ns > 0);
    pool.solo_until_ns = std.math.maxInt(u64);
    for (&hits) |*h| h.store(0, .monotonic);
    const solo_before = pool.counts.solo_jobs;
    pool.run(hits.len, StallCtx{ .hits = &hits, .caller = me, .worker_sleep_ns = 5 * std.time.ns_per_ms }, stallTask);
    try testing.expectEqual(solo_before + 1, pool.counts.solo_jobs);
    for (hits) |h| try testing.expectEqual(@as(u32, 1), h.load(.monotonic));
    // Once it is over, jobs go to the workers again; a window of them on time shrinks the next
    // solo period (unless this machine is so busy that the worker stalls or idles again).
    pool.solo_until_ns = 1;
    const stalls_before = pool.counts.stalls;
    const idle_before = pool.counts.idle_windows;
    for (0..share_window_jobs) |_| {
        for (&hits) |*h| h.store(0, .monotonic);
        pool.run(hits.len, StallCtx{ .hits = &hits, .caller = me, .worker_sleep_ns = 0 }, stallTask);
        for (hits) |h| try testing.expectEqual(@as(u32, 1), h.load(.monotonic));
        if (pool.solo_until_ns != 0) break;
    }
    if (pool.counts.stalls == stalls_before and pool.counts.idle_windows == idle_before) {
        try testing.expectEqual(solo_min_ns, pool.solo_window_ns);
        try testing.expectEqual(solo_before + 1, pool.counts.solo_jobs);
    }
}

const SlowWorkerCtx = struct {
    caller: std.Thread.Id,
    /// Worker tasks take this long, the caller's 20 us: the worker runs few of them but is never
    /// waited for long (its last task ends well within the caller's share).
    worker_ns: u64,
};

fn spinFor(ns: u64) void {
    const until = monotonicNs() + ns;
    while (monotonicNs() < until) std.atomic.spinLoopHint();
}

fn slowWorkerTask(ctx: SlowWorkerCtx, _: usize) void {
    spinFor(if (std.Thread.getCurrentId() == ctx.caller) 20 * std.time.ns_per_us else ctx.worker_ns);
}

test "workers that run far less than their share of the tasks make the caller run alone" {
    // Timing-based: it needs threads that run at native speed. The aarch64 build is tested
    // under qemu-user here, where the worker's share follows the emulator, not this pool.
    if (builtin.cpu.arch != .x86_64) return error.SkipZigTest;
    const pool = try Pool.init(testing.allocator, 2);
    defer pool.deinit();
    const me = std.Thread.getCurrentId();
    var jobs: usize = 0;
    // On a busy machine the worker may instead be preempted mid-task: that is a stall, the other
    // way into a solo period, and as good an answer here (the idle rule alone is checked when
    // nothing stalled).
    while (pool.solo_until_ns == 0 and jobs < 4 * share_window_jobs) : (jobs += 1) {
        pool.run(64, SlowWorkerCtx{ .caller = me, .worker_ns = 150 * std.time.ns_per_us }, slowWorkerTask);
    }
    if (pool.counts.stalls < 2) try testing.expect(pool.counts.idle_windows >= 1);
    try testing.expect(pool.solo_until_ns > 0);
}

const OnceCtx = struct {
    caller: std.Thread.Id,
    /// The first worker task that finds it set sleeps 5 ms: one interrupt, not a busy machine.
    armed: *Atomic(bool),
};

fn onceTask(ctx: OnceCtx, _: usize) void {
    if (std.Thread.getCurrentId() != ctx.caller and ctx.armed.swap(false, .acq_rel)) {
        var ts: std.c.timespec = .{ .sec = 0, .nsec = 5 * std.time.ns_per_ms };
        _ = std.c.nanosleep(&ts, null);
    } else spinFor(20 * std.time.ns_per_us);
}

test "one stall alone does not make the caller run alone" {
    const pool = try Pool.init(testing.allocator, 2);
    defer pool.deinit();
    const me = std.Thread.getCurrentId();
    var armed: Atomic(bool) = .init(false);
    var rounds: usize = 0;
    while (pool.counts.stalls == 0 and rounds < 50) : (rounds += 1) {
        armed.store(true, .release);
        pool.run(64, OnceCtx{ .caller = me, .armed = &armed }, onceTask);
    }
    try testing.expectEqual(@as(u64, 1), pool.counts.stalls);
    // (A window of idle workers, on a machine busy enough to starve the worker, is the other
    // way into a solo period; only the stall rule is checked here.)
    if (pool.counts.idle_windows == 0) try testing.expectEqual(@as(u64, 0), pool.solo_until_ns);
}
