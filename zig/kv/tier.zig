//! Cold KV tier: page records in page-aligned slab files on SSD, written by a background thread, verified on every read.
//!
//! A record is one KV page (the contiguous blob kv/pages.zig keeps per page) behind a 64-byte
//! header (magic, version, kv type, page bytes, token count, slot, hash-chain key, checksum),
//! padded to a multiple of 4096 bytes. Slot s lives in slab file `slab-<s / slots_per_slab>.kv`
//! at offset (s % slots_per_slab) * record_bytes. `put` only copies the page into a staging
//! buffer and queues it, so the decode path never waits for the disk; the writer thread drains
//! the queue in batches, checksums and pwrites. A read that finds a bad magic, a wrong key or
//! slot, a short file or a checksum mismatch is a miss: the slot is freed and the caller
//! recomputes the page. A failed write (disk full, quota, I/O error) frees the slot too; nothing
//! here is fatal to the process.
//!
//! Faults are counted by kind (Stats.faults_*, /metrics): a write that finds the disk full
//! (ENOSPC, EDQUOT, EFBIG), a read-only file system or directory (EROFS, EACCES, EPERM; a slab
//! that opens only read-only still serves reads), another I/O error, a slab file that is missing
//! (deleted while the server ran, or since the manifest was written), a record cut short by a
//! truncated file, and a record that fails verification (checksum, magic, wrong page: a torn or
//! overwritten write). A slab file deleted while its descriptor is open is still readable through
//! it, but would be gone after a restart: `get` and `checkFiles` (run before each manifest) notice
//! its link count of 0, retire the descriptor and drop its pages, and the next write recreates the
//! file (and the directory, if that went too).
const std = @import("std");
const c = std.c;
const simd = @import("../simd.zig");

pub const record_magic: u32 = 0x5056_4b48; // "HKVP"
pub const record_version: u16 = 1;
pub const header_bytes: usize = 64;
pub const align_bytes: usize = 4096;

pub const Header = extern struct {
    magic: u32,
    version: u16,
    kv_type: u16,
    page_bytes: u32,
    n_tokens: u32,
    slot: u64,
    key: u64,
    /// Wyhash of the header (with this field zero) followed by the payload.
    checksum: u64,
    reserved: [24]u8 = @splat(0),
};

comptime {
    std.debug.assert(@sizeOf(Header) == header_bytes);
}

pub fn recordBytes(page_bytes: usize) usize {
    return std.mem.alignForward(usize, header_bytes + page_bytes, align_bytes);
}

/// Wyhash, not XxHash3: measured in Zig 0.17's std on this machine, Wyhash checks a page at
/// ~2.5 GB/s and XxHash3 at ~50 MB/s, which would make the checksum, not the disk, the bottleneck.
pub fn checksumOf(h: Header, payload: []const u8) u64 {
    var hh = h;
    hh.checksum = 0;
    var x = std.hash.Wyhash.init(0x6865_6172_7468);
    x.update(std.mem.asBytes(&hh));
    x.update(payload);
    return x.final();
}

pub fn makeHeader(kv_type: u16, slot: u64, key: u64, n_tokens: u32, payload: []const u8) Header {
    var h: Header = .{ .magic = record_magic, .version = record_version, .kv_type = kv_type, .page_bytes = @intCast(payload.len), .n_tokens = n_tokens, .slot = slot, .key = key, .checksum = 0 };
    h.checksum = checksumOf(h, payload);
    return h;
}

pub const VerifyError = error{ BadMagic, BadVersion, WrongPage, BadChecksum };

/// Checks a record read back from disk against what the caller expects it to hold.
pub fn verify(h: Header, payload: []const u8, kv_type: u16, slot: u64, key: u64) VerifyError!void {
    if (h.magic != record_magic) return error.BadMagic;
    if (h.version != record_version) return error.BadVersion;
    if (h.kv_type != kv_type or h.page_bytes != payload.len or h.slot != slot or h.key != key) return error.WrongPage;
    if (checksumOf(h, payload) != h.checksum) return error.BadChecksum;
}

// ---------------------------------------------------------------- small libc helpers

pub const max_path = 1024;

pub fn pathZ(buf: *[max_path]u8, comptime fmt: []const u8, args: anytype) ?[*:0]const u8 {
    const s = std.fmt.bufPrint(buf[0 .. max_path - 1], fmt, args) catch return null;
    buf[s.len] = 0;
    return buf[0..s.len :0].ptr;
}

/// pwrite of the whole buffer; false on any error or short write (ENOSPC, EFBIG, EIO).
pub fn pwriteAll(fd: c_int, buf: []const u8, offset: u64) bool {
    return pwriteErrno(fd, buf, offset) == null;
}

/// pwrite of the whole buffer; null when all of it was written, else the error (a write that
/// makes no progress without one is a full device: ENOSPC).
pub fn pwriteErrno(fd: c_int, buf: []const u8, offset: u64) ?c.E {
    var done: usize = 0;
    while (done < buf.len) {
        const n = c.pwrite(fd, buf.ptr + done, buf.len - done, @intCast(offset + done));
        if (n <= 0) {
            if (n == 0) return .NOSPC;
            const e: c.E = @fromBackingInt(@intCast(c._errno().*));
            if (e == .INTR) continue;
            return e;
        }
        done += @intCast(n);
    }
    return null;
}

/// Why a pread of a whole buffer failed: the file ends before it (truncated) or an I/O error.
pub const ReadFailure = enum { short, io };

/// pread of the whole buffer; null when all of it was read.
pub fn preadFailure(fd: c_int, buf: []u8, offset: u64) ?ReadFailure {
    var done: usize = 0;
    while (done < buf.len) {
        const n = c.pread(fd, buf.ptr + done, buf.len - done, @intCast(offset + done));
        if (n == 0) return .short;
        if (n < 0) {
            if (c._errno().* == @backingInt(c.E.INTR)) continue;
            return .io;
        }
        done += @intCast(n);
    }
    return null;
}

/// pread of the whole buffer; false on error or end of file (a truncated file).
pub fn preadAll(fd: c_int, buf: []u8, offset: u64) bool {
    var done: usize = 0;
    while (done < buf.len) {
        const n = c.pread(fd, buf.ptr + done, buf.len - done, @intCast(offset + done));
        if (n <= 0) {
            if (n < 0 and c._errno().* == @backingInt(c.E.INTR)) continue;
            return false;
        }
        done += @intCast(n);
    }
    return true;
}

pub fn mkdirP(path: []const u8) bool {
    var buf: [max_path]u8 = undefined;
    if (path.len == 0 or path.len >= max_path) return false;
    @memcpy(buf[0..path.len], path);
    var i: usize = 1;
    while (i <= path.len) : (i += 1) {
        if (i == path.len or buf[i] == '/') {
            const saved = buf[i];
            buf[i] = 0;
            const rc = c.mkdir(@ptrCast(&buf), 0o755);
            if (rc != 0 and c._errno().* != @backingInt(c.E.EXIST)) return false;
            buf[i] = saved;
        }
    }
    return true;
}

pub fn fsyncDir(path: []const u8) void {
    var buf: [max_path]u8 = undefined;
    const p = pathZ(&buf, "{s}", .{path}) orelse return;
    const fd = c.open(p, .{ .ACCMODE = .RDONLY, .DIRECTORY = true, .CLOEXEC = true });
    if (fd < 0) return;
    _ = c.fsync(fd);
    _ = c.close(fd);
}

// ---------------------------------------------------------------- pthread wrappers

const Mutex = struct {
    m: c.pthread_mutex_t = .{},
    fn lock(self: *Mutex) void {
        _ = c.pthread_mutex_lock(&self.m);
    }
    fn unlock(self: *Mutex) void {
        _ = c.pthread_mutex_unlock(&self.m);
    }
};

const Cond = struct {
    cv: c.pthread_cond_t = .{},
    fn wait(self: *Cond, m: *Mutex) void {
        _ = c.pthread_cond_wait(&self.cv, &m.m);
    }
    fn broadcast(self: *Cond) void {
        _ = c.pthread_cond_broadcast(&self.cv);
    }
};

// ---------------------------------------------------------------- the cold tier

pub const SlotState = enum(u8) { free, pending, stored };

/// The kinds of SSD fault the tier counts (one Stats field each, one /metrics label each).
pub const Fault = enum { enospc, readonly, io, missing, truncated, checksum };

/// The fault a failed write or open is: a full disk or quota, a read-only place, or another error.
pub fn writeFault(e: c.E) Fault {
    return switch (e) {
        .NOSPC, .DQUOT, .FBIG => .enospc,
        // EBADF: the slab could be opened read-only only.
        .ROFS, .ACCES, .PERM, .BADF => .readonly,
        else => .io,
    };
}

/// Size and link count of an open file (null when it cannot be asked).
const FileState = struct { size_bytes: u64, links: u64 };

fn fileState(fd: c_int) ?FileState {
    if (@import("builtin").os.tag == .linux) {
        const linux = std.os.linux;
        var st: linux.Statx = undefined;
        if (linux.errno(linux.statx(fd, "", linux.AT.EMPTY_PATH, .{ .SIZE = true, .NLINK = true }, &st)) != .SUCCESS) return null;
        return .{ .size_bytes = st.size, .links = st.nlink };
    }
    return null;
}

/// Test-only fault hook: with HEARTH_TEST_KV_PAUSE=<point> in the environment, the thread that
/// reaches <point> ("spill": a page record half written; "manifest": a manifest half written)
/// creates `<dir>/test-paused-<point>` and sleeps forever, so a test can `kill -9` the process
/// exactly there. Read once per tier; never set outside the fault tests (test/kv-faults.test.ts).
pub fn testPauseWanted(point: []const u8) bool {
    const v = c.getenv("HEARTH_TEST_KV_PAUSE") orelse return false;
    return std.mem.eql(u8, std.mem.span(v), point);
}

pub fn testPause(dir: []const u8, point: []const u8) noreturn {
    var buf: [max_path]u8 = undefined;
    if (pathZ(&buf, "{s}/test-paused-{s}", .{ dir, point })) |p| {
        const fd = c.open(p, .{ .ACCMODE = .WRONLY, .CREAT = true, .CLOEXEC = true }, @as(c_uint, 0o644));
        if (fd >= 0) _ = c.close(fd);
    }
    while (true) _ = sleep(1000);
}

extern "c" fn sleep(seconds: c_uint) c_uint;

pub const Stats = extern struct {
    writes_queued: u64 = 0,
    writes_ok: u64 = 0,
    writes_failed: u64 = 0,
    writes_dropped: u64 = 0,
    bytes_written: u64 = 0,
    reads_ok: u64 = 0,
    reads_bad: u64 = 0,
    bytes_read: u64 = 0,
    slots_used: u64 = 0,
    slots_total: u64 = 0,
    /// Faults by kind (see Fault): pages written or read that the disk failed.
    faults_enospc: u64 = 0,
    faults_readonly: u64 = 0,
    faults_io: u64 = 0,
    faults_missing: u64 = 0,
    faults_truncated: u64 = 0,
    faults_checksum: u64 = 0,
};

const Job = struct { slot: u32, key: u64, n_tokens: u32, staging: u32 };

pub const Options = struct {
    /// Most bytes of slab files (a quota: a put beyond it is dropped, as on a full disk).
    max_bytes: u64,
    /// Pages that may wait for the writer at once; beyond that a put is dropped.
    staging_pages: u32 = 32,
    slots_per_slab: u32 = 64,
};

pub const ColdTier = struct {
    allocator: std.mem.Allocator,
    dir: []u8,
    kv_type: u16,
    page_bytes: usize,
    record_bytes: usize,
    slots_per_slab: u32,

    mutex: Mutex = .{},
    cond: Cond = .{},
    thread: ?std.Thread = null,
    stopping: bool = false,

    // Under mutex.
    state: []SlotState,
    slot_key: []u64,
    /// Bumped when a slot is released, so a write that finishes after the release is not mistaken for the new owner's.
    slot_gen: []u32,
    free_slots: []u32,
    n_free_slots: usize,
    slab_fds: []c_int,
    /// The slab could be opened read-only only (a read-only file system or directory).
    slab_ro: []bool,
    /// Descriptors of slabs found deleted while the writer may still be using them: closed by
    /// the writer after its batch (bounded; beyond it one stays open until close()).
    retired: [16]c_int = undefined,
    n_retired: usize = 0,
    queue: []Job,
    q_head: usize = 0,
    q_len: usize = 0,
    in_flight: usize = 0,
    staging: []align(align_bytes) u8,
    staging_free: []u32,
    n_staging_free: usize,
    stats: Stats = .{},

    /// Reader scratch (one record), used only by the thread that calls get.
    read_buf: []align(align_bytes) u8,
    /// HEARTH_TEST_KV_PAUSE=spill (testPause): the writer stops halfway through its first record.
    pause_spill: bool = false,

    pub fn open(allocator: std.mem.Allocator, dir: []const u8, kv_type: u16, page_bytes: usize, opts: Options) !*ColdTier {
        if (!mkdirP(dir)) return error.CannotCreateDirectory;
        const record_bytes = recordBytes(page_bytes);
        const n_slots: usize = @intCast(@min(opts.max_bytes / record_bytes, std.math.maxInt(u32) - 1));
        const n_slabs = (n_slots + opts.slots_per_slab - 1) / opts.slots_per_slab;
        const self = try allocator.create(ColdTier);
        errdefer allocator.destroy(self);
        const dir_copy = try allocator.dupe(u8, dir);
        errdefer allocator.free(dir_copy);
        const state = try allocator.alloc(SlotState, n_slots);
        errdefer allocator.free(state);
        const slot_key = try allocator.alloc(u64, n_slots);
        errdefer allocator.free(slot_key);
        const slot_gen = try allocator.alloc(u32, n_slots);
        errdefer allocator.free(slot_gen);
        const free_slots = try allocator.alloc(u32, n_slots);
        errdefer allocator.free(free_slots);
        const slab_fds = try allocator.alloc(c_int, n_slabs);
        errdefer allocator.free(slab_fds);
        const slab_ro = try allocator.alloc(bool, n_slabs);
        errdefer allocator.free(slab_ro);
        const queue = try allocator.alloc(Job, opts.staging_pages);
        errdefer allocator.free(queue);
        const staging = try allocator.alignedAlloc(u8, .fromByteUnits(align_bytes), @as(usize, opts.staging_pages) * record_bytes);
        errdefer allocator.free(staging);
        const staging_free = try allocator.alloc(u32, opts.staging_pages);
        errdefer allocator.free(staging_free);
        const read_buf = try allocator.alignedAlloc(u8, .fromByteUnits(align_bytes), record_bytes);
        errdefer allocator.free(read_buf);
        @memset(state, .free);
        @memset(slot_gen, 0);
        // Low slots on top: a small cache uses the first slab only.
        for (free_slots, 0..) |*s, i| s.* = @intCast(n_slots - 1 - i);
        @memset(slab_fds, -1);
        @memset(slab_ro, false);
        for (staging_free, 0..) |*s, i| s.* = @intCast(i);
        self.* = .{
            .allocator = allocator,
            .dir = dir_copy,
            .kv_type = kv_type,
            .page_bytes = page_bytes,
            .record_bytes = record_bytes,
            .slots_per_slab = opts.slots_per_slab,
            .state = state,
            .slot_key = slot_key,
            .slot_gen = slot_gen,
            .free_slots = free_slots,
            .n_free_slots = n_slots,
            .slab_fds = slab_fds,
            .slab_ro = slab_ro,
            .queue = queue,
            .staging = staging,
            .staging_free = staging_free,
            .n_staging_free = opts.staging_pages,
            .read_buf = read_buf,
            .pause_spill = testPauseWanted("spill"),
        };
        self.stats.slots_total = n_slots;
        self.thread = try std.Thread.spawn(.{}, writerMain, .{self});
        return self;
    }

    pub fn close(self: *ColdTier) void {
        self.mutex.lock();
        self.stopping = true;
        self.cond.broadcast();
        self.mutex.unlock();
        if (self.thread) |t| t.join();
        for (self.slab_fds) |fd| if (fd >= 0) {
            _ = c.close(fd);
        };
        for (self.retired[0..self.n_retired]) |fd| _ = c.close(fd);
        const a = self.allocator;
        a.free(self.dir);
        a.free(self.state);
        a.free(self.slot_key);
        a.free(self.slot_gen);
        a.free(self.free_slots);
        a.free(self.slab_fds);
        a.free(self.slab_ro);
        a.free(self.queue);
        a.free(self.staging);
        a.free(self.staging_free);
        a.free(self.read_buf);
        a.destroy(self);
    }

    const Opened = struct { fd: c_int = -1, err: c.E = .SUCCESS };

    /// The slab fd of a slot, opened on first use (created when `create`, with the directory if
    /// it went away); read-only when that is all the file system allows. Caller holds the mutex.
    fn slabFd(self: *ColdTier, slot: u32, create: bool) Opened {
        const slab = slot / self.slots_per_slab;
        if (self.slab_fds[slab] >= 0) return .{ .fd = self.slab_fds[slab] };
        var buf: [max_path]u8 = undefined;
        const p = pathZ(&buf, "{s}/slab-{d}.kv", .{ self.dir, slab }) orelse return .{ .err = .NAMETOOLONG };
        const flags: c.O = .{ .ACCMODE = .RDWR, .CREAT = create, .CLOEXEC = true };
        var fd = c.open(p, flags, @as(c_uint, 0o644));
        var err: c.E = if (fd < 0) @fromBackingInt(@intCast(c._errno().*)) else .SUCCESS;
        if (fd < 0 and create and err == .NOENT and mkdirP(self.dir)) {
            fd = c.open(p, flags, @as(c_uint, 0o644));
            err = if (fd < 0) @fromBackingInt(@intCast(c._errno().*)) else .SUCCESS;
        }
        var read_only = false;
        if (fd < 0 and writeFault(err) == .readonly) {
            fd = c.open(p, .{ .ACCMODE = .RDONLY, .CLOEXEC = true });
            read_only = fd >= 0;
        }
        if (fd < 0) return .{ .err = err };
        self.slab_fds[slab] = fd;
        self.slab_ro[slab] = read_only;
        return .{ .fd = fd };
    }

    fn countFault(self: *ColdTier, kind: Fault) void {
        switch (kind) {
            .enospc => self.stats.faults_enospc += 1,
            .readonly => self.stats.faults_readonly += 1,
            .io => self.stats.faults_io += 1,
            .missing => self.stats.faults_missing += 1,
            .truncated => self.stats.faults_truncated += 1,
            .checksum => self.stats.faults_checksum += 1,
        }
    }

    /// Stops using a slab's descriptor (its file was deleted or replaced). The writer may be
    /// writing through it right now, so unless nothing is in flight it is closed after the
    /// writer's batch. Caller holds the mutex.
    fn retireSlabLocked(self: *ColdTier, slab: usize) void {
        const fd = self.slab_fds[slab];
        self.slab_fds[slab] = -1;
        self.slab_ro[slab] = false;
        if (fd < 0) return;
        if (self.in_flight == 0) {
            _ = c.close(fd);
        } else if (self.n_retired < self.retired.len) {
            self.retired[self.n_retired] = fd;
            self.n_retired += 1;
        } // else: more retirements than one batch can see: this descriptor stays open, harmlessly.
    }

    /// Drops every page of a slab whose file is gone (each stored one counted as `kind`) and
    /// retires its descriptor; the next write makes a new file. Caller holds the mutex.
    fn dropSlabLocked(self: *ColdTier, slab: usize, kind: Fault) void {
        const first = slab * self.slots_per_slab;
        for (first..@min(first + self.slots_per_slab, self.state.len)) |slot| {
            if (self.state[slot] == .stored) self.countFault(kind);
            if (self.state[slot] != .free) self.freeSlotLocked(@intCast(slot));
        }
        self.retireSlabLocked(slab);
    }

    /// Checks the slab files against what the tier believes is on them (before a manifest lists
    /// it): a file deleted under the server (its descriptor still reads the old data, a restart
    /// would not) or never there (a manifest of files since deleted) drops its pages as missing;
    /// records past the end of a truncated file are dropped as truncated. Run on the thread that
    /// calls get, after flush().
    pub fn checkFiles(self: *ColdTier) void {
        self.mutex.lock();
        defer self.mutex.unlock();
        for (0..self.slab_fds.len) |slab| {
            const first: u32 = @intCast(slab * self.slots_per_slab);
            const end: u32 = @intCast(@min(first + self.slots_per_slab, self.state.len));
            const stored = std.mem.indexOfScalar(SlotState, self.state[first..end], .stored) != null;
            if (self.slab_fds[slab] < 0 and !stored) continue;
            const o = self.slabFd(first, false);
            if (o.fd < 0) {
                if (o.err == .NOENT) self.dropSlabLocked(slab, .missing);
                continue;
            }
            const fs = fileState(o.fd) orelse continue;
            if (fs.links == 0) {
                self.dropSlabLocked(slab, .missing);
                continue;
            }
            for (first..end) |slot| {
                if (self.state[slot] != .stored) continue;
                if (self.offsetOf(@intCast(slot)) + self.record_bytes > fs.size_bytes) {
                    self.countFault(.truncated);
                    self.freeSlotLocked(@intCast(slot));
                }
            }
        }
    }

    fn offsetOf(self: *const ColdTier, slot: u32) u64 {
        return @as(u64, slot % self.slots_per_slab) * self.record_bytes;
    }

    fn stagingBuf(self: *ColdTier, i: u32) []u8 {
        return self.staging[@as(usize, i) * self.record_bytes ..][0..self.record_bytes];
    }

    /// Queues a page for writing; returns its slot, or null when the tier is full, the quota
    /// is spent or the writer is behind (the page is then simply not kept on SSD).
    pub fn put(self: *ColdTier, key: u64, n_tokens: u32, page: []const u8) ?u32 {
        std.debug.assert(page.len == self.page_bytes);
        self.mutex.lock();
        defer self.mutex.unlock();
        if (self.n_free_slots == 0 or self.n_staging_free == 0 or self.q_len == self.queue.len) {
            self.stats.writes_dropped += 1;
            return null;
        }
        self.n_free_slots -= 1;
        const slot = self.free_slots[self.n_free_slots];
        self.n_staging_free -= 1;
        const st = self.staging_free[self.n_staging_free];
        // The one copy on the decode path; checksum and I/O happen on the writer thread.
        simd.copy(self.stagingBuf(st)[header_bytes..][0..page.len], page);
        self.state[slot] = .pending;
        self.slot_key[slot] = key;
        self.queue[(self.q_head + self.q_len) % self.queue.len] = .{ .slot = slot, .key = key, .n_tokens = n_tokens, .staging = st };
        self.q_len += 1;
        self.stats.writes_queued += 1;
        self.stats.slots_used += 1;
        self.cond.broadcast();
        return slot;
    }

    fn writerMain(self: *ColdTier) void {
        var batch: [64]Job = undefined;
        var gens: [64]u32 = undefined;
        self.mutex.lock();
        while (true) {
            while (self.q_len == 0 and !self.stopping) self.cond.wait(&self.mutex);
            if (self.q_len == 0 and self.stopping) break;
            // Take the whole queue (up to 64) as one batch, in slot order so slab writes are sequential.
            const n = @min(self.q_len, batch.len);
            for (0..n) |i| {
                batch[i] = self.queue[(self.q_head + i) % self.queue.len];
                gens[i] = self.slot_gen[batch[i].slot];
            }
            self.q_head = (self.q_head + n) % self.queue.len;
            self.q_len -= n;
            self.in_flight += n;
            var fds: [64]c_int = undefined;
            var errs: [64]c.E = undefined;
            for (0..n) |i| {
                const o = self.slabFd(batch[i].slot, true);
                fds[i] = o.fd;
                errs[i] = o.err;
                if (o.fd >= 0 and self.slab_ro[batch[i].slot / self.slots_per_slab]) {
                    fds[i] = -1;
                    errs[i] = .ROFS;
                }
            }
            self.mutex.unlock();

            var ok: [64]bool = undefined;
            for (0..n) |i| {
                const j = batch[i];
                const buf = self.stagingBuf(j.staging);
                const payload = buf[header_bytes..][0..self.page_bytes];
                const h = makeHeader(self.kv_type, j.slot, j.key, j.n_tokens, payload);
                @memcpy(buf[0..header_bytes], std.mem.asBytes(&h));
                @memset(buf[header_bytes + self.page_bytes ..], 0);
                if (fds[i] >= 0 and self.pause_spill) {
                    _ = pwriteAll(fds[i], buf[0 .. buf.len / 2], self.offsetOf(j.slot));
                    testPause(self.dir, "spill");
                }
                if (fds[i] >= 0) errs[i] = pwriteErrno(fds[i], buf, self.offsetOf(j.slot)) orelse .SUCCESS;
                ok[i] = fds[i] >= 0 and errs[i] == .SUCCESS;
            }

            self.mutex.lock();
            for (0..n) |i| {
                const j = batch[i];
                const still_ours = self.slot_gen[j.slot] == gens[i];
                if (ok[i]) {
                    self.stats.writes_ok += 1;
                    self.stats.bytes_written += self.record_bytes;
                } else {
                    self.stats.writes_failed += 1;
                    self.countFault(writeFault(errs[i]));
                }
                if (still_ours) {
                    if (ok[i]) self.state[j.slot] = .stored else self.freeSlotLocked(j.slot);
                }
                self.staging_free[self.n_staging_free] = j.staging;
                self.n_staging_free += 1;
            }
            self.in_flight -= n;
            // Descriptors retired during the batch: no write uses them any more.
            for (self.retired[0..self.n_retired]) |fd| _ = c.close(fd);
            self.n_retired = 0;
            self.cond.broadcast();
        }
        self.mutex.unlock();
    }

    fn freeSlotLocked(self: *ColdTier, slot: u32) void {
        std.debug.assert(self.state[slot] != .free);
        self.state[slot] = .free;
        self.slot_gen[slot] +%= 1;
        self.free_slots[self.n_free_slots] = slot;
        self.n_free_slots += 1;
        self.stats.slots_used -= 1;
    }

    /// Forgets a slot (its page is no longer wanted); a slot since reused for another key is left alone.
    pub fn release(self: *ColdTier, slot: u32, key: u64) void {
        self.mutex.lock();
        defer self.mutex.unlock();
        if (slot < self.state.len and self.state[slot] != .free and self.slot_key[slot] == key) self.freeSlotLocked(slot);
    }

    /// Blocks until every queued write has finished (before a manifest is written).
    pub fn flush(self: *ColdTier) void {
        self.mutex.lock();
        while (self.q_len > 0 or self.in_flight > 0) self.cond.wait(&self.mutex);
        self.mutex.unlock();
    }

    /// fsyncs every open slab file.
    pub fn sync(self: *ColdTier) void {
        self.mutex.lock();
        defer self.mutex.unlock();
        for (self.slab_fds) |fd| if (fd >= 0) {
            _ = c.fsync(fd);
        };
    }

    /// Reads the page of `slot` into `dst` if it is there and intact; false is a miss (the slot
    /// is freed). Waits for the slot's write if it is still queued.
    pub fn get(self: *ColdTier, slot: u32, key: u64, dst: []u8) bool {
        std.debug.assert(dst.len == self.page_bytes);
        self.mutex.lock();
        if (slot >= self.state.len or self.state[slot] == .free or self.slot_key[slot] != key) {
            self.mutex.unlock();
            return false;
        }
        while (self.state[slot] == .pending) self.cond.wait(&self.mutex);
        if (self.state[slot] != .stored or self.slot_key[slot] != key) {
            self.mutex.unlock();
            return false;
        }
        const o = self.slabFd(slot, false);
        const slab = slot / self.slots_per_slab;
        const gone = if (o.fd >= 0) if (fileState(o.fd)) |fs| fs.links == 0 else false else o.err == .NOENT;
        if (gone) {
            // Deleted (under the server, or before it started): every page of the slab is lost.
            self.stats.reads_bad += 1;
            self.dropSlabLocked(slab, .missing);
            self.mutex.unlock();
            return false;
        }
        self.mutex.unlock();
        const fault: ?Fault = if (o.fd < 0) .io else if (preadFailure(o.fd, self.read_buf, self.offsetOf(slot))) |f|
            (if (f == .short) .truncated else .io)
        else blk: {
            const h = std.mem.bytesToValue(Header, self.read_buf[0..header_bytes]);
            verify(h, self.read_buf[header_bytes..][0..self.page_bytes], self.kv_type, slot, key) catch break :blk .checksum;
            break :blk null;
        };
        self.mutex.lock();
        defer self.mutex.unlock();
        if (fault) |f| {
            self.stats.reads_bad += 1;
            self.countFault(f);
            if (self.state[slot] != .free and self.slot_key[slot] == key) self.freeSlotLocked(slot);
            return false;
        }
        self.stats.reads_ok += 1;
        self.stats.bytes_read += self.record_bytes;
        simd.copy(dst, self.read_buf[header_bytes..][0..self.page_bytes]);
        return true;
    }

    /// True when the slot's record for `key` is on disk (written, not failed or released).
    pub fn isStored(self: *ColdTier, slot: u32, key: u64) bool {
        self.mutex.lock();
        defer self.mutex.unlock();
        return slot < self.state.len and self.state[slot] == .stored and self.slot_key[slot] == key;
    }

    /// Marks a slot as holding `key` on disk (from a manifest at start-up); false if taken or out of range.
    pub fn adopt(self: *ColdTier, slot: u32, key: u64) bool {
        self.mutex.lock();
        defer self.mutex.unlock();
        if (slot >= self.state.len or self.state[slot] != .free) return false;
        // Pull the slot out of the free stack.
        const i = std.mem.indexOfScalar(u32, self.free_slots[0..self.n_free_slots], slot) orelse return false;
        self.free_slots[i] = self.free_slots[self.n_free_slots - 1];
        self.n_free_slots -= 1;
        self.state[slot] = .stored;
        self.slot_key[slot] = key;
        self.stats.slots_used += 1;
        return true;
    }

    pub fn statsSnapshot(self: *ColdTier) Stats {
        self.mutex.lock();
        defer self.mutex.unlock();
        return self.stats;
    }

    /// Path of a slot's slab file (fault-injection tests corrupt, truncate or delete it).
    pub fn slabPath(self: *const ColdTier, buf: *[max_path]u8, slot: u32) ?[*:0]const u8 {
        return pathZ(buf, "{s}/slab-{d}.kv", .{ self.dir, slot / self.slots_per_slab });
    }

    /// Stops using the cached fd of a slot's slab (after a test replaced the file underneath).
    pub fn forgetFd(self: *ColdTier, slot: u32) void {
        self.mutex.lock();
        defer self.mutex.unlock();
        self.retireSlabLocked(slot / self.slots_per_slab);
    }
};

// ---------------------------------------------------------------- tests

const testing = std.testing;

pub fn testDir(buf: *[max_path]u8, name: []const u8) []const u8 {
    const pid = std.c.getpid();
    const s = std.fmt.bufPrint(buf, "/tmp/hearth-kvtest-{d}-{s}", .{ pid, name }) catch unreachable;
    return s;
}

pub fn removeTree(path: []const u8) void {
    // Slab files and the manifest are the only entries; remove what a test may have made.
    var buf: [max_path]u8 = undefined;
    var i: usize = 0;
    while (i < 64) : (i += 1) {
        if (pathZ(&buf, "{s}/slab-{d}.kv", .{ path, i })) |p| _ = c.unlink(p);
    }
    for ([_][]const u8{ "manifest", "manifest.tmp" }) |n| {
        if (pathZ(&buf, "{s}/{s}", .{ path, n })) |p| _ = c.unlink(p);
    }
    if (pathZ(&buf, "{s}", .{path})) |p| _ = c.rmdir(p);
}

fn fillPage(page: []u8, seed: u64) void {
    var prng = std.Random.DefaultPrng.init(seed);
    prng.random().bytes(page);
}

test "records round-trip through slab files; writes happen on the writer thread" {
    var dbuf: [max_path]u8 = undefined;
    const dir = testDir(&dbuf, "roundtrip");
    defer removeTree(dir);
    const page_bytes = 5000;
    const t = try ColdTier.open(testing.allocator, dir, 1, page_bytes, .{ .max_bytes = 1 << 20, .slots_per_slab = 4 });
    defer t.close();
    var pages: [10][page_bytes]u8 = undefined;
    var slots: [10]u32 = undefined;
    for (&pages, 0..) |*p, i| {
        fillPage(p, i);
        slots[i] = t.put(1000 + i, 16, p).?;
    }
    t.flush();
    var got: [page_bytes]u8 = undefined;
    for (pages, 0..) |p, i| {
        try testing.expect(t.get(slots[i], 1000 + i, &got));
        try testing.expectEqualSlices(u8, &p, &got);
    }
    // Wrong key: a miss, never someone else's page.
    try testing.expect(!t.get(slots[0], 999, &got));
    const st = t.statsSnapshot();
    try testing.expectEqual(@as(u64, 10), st.writes_ok);
    try testing.expectEqual(@as(u64, 10), st.reads_ok);
    try testing.expectEqual(@as(usize, 8192), t.record_bytes);
}

test "a flipped bit, a truncated slab and a deleted slab are misses" {
    var dbuf: [max_path]u8 = undefined;
    const dir = testDir(&dbuf, "faults");
    defer removeTree(dir);
    const page_bytes = 3000;
    const t = try ColdTier.open(testing.allocator, dir, 8, page_bytes, .{ .max_bytes = 1 << 20, .slots_per_slab = 2 });
    defer t.close();
    var page: [page_bytes]u8 = undefined;
    var got: [page_bytes]u8 = undefined;
    var slots: [6]u32 = undefined;
    for (&slots, 0..) |*s, i| {
        fillPage(&page, i);
        s.* = t.put(i, 16, &page).?;
    }
    t.flush();
    var pbuf: [max_path]u8 = undefined;
    // Bit flip in slot 0's payload (slab 0).
    {
        const fd = c.open(t.slabPath(&pbuf, slots[0]).?, .{ .ACCMODE = .RDWR });
        try testing.expect(fd >= 0);
        const off = t.offsetOf(slots[0]) + header_bytes + 100;
        var b: [1]u8 = undefined;
        try testing.expect(preadAll(fd, &b, off));
        b[0] ^= 0x10;
        try testing.expect(pwriteAll(fd, &b, off));
        _ = c.close(fd);
    }
    // Truncate slab 1 in the middle of its first record.
    {
        const fd = c.open(t.slabPath(&pbuf, slots[2]).?, .{ .ACCMODE = .RDWR });
        try testing.expect(fd >= 0);
        try testing.expectEqual(@as(c_int, 0), c.ftruncate(fd, 1000));
        _ = c.close(fd);
    }
    // Delete slab 2.
    try testing.expectEqual(@as(c_int, 0), c.unlink(t.slabPath(&pbuf, slots[4]).?));
    t.forgetFd(slots[4]);
    try testing.expect(!t.get(slots[0], 0, &got));
    try testing.expect(t.get(slots[1], 1, &got)); // same slab, untouched record
    try testing.expect(!t.get(slots[2], 2, &got));
    try testing.expect(!t.get(slots[3], 3, &got));
    try testing.expect(!t.get(slots[4], 4, &got));
    try testing.expect(!t.get(slots[5], 5, &got));
    // A miss frees the slot: it is gone for good, and reusable.
    try testing.expect(!t.get(slots[0], 0, &got));
    // Slot 5's slab was dropped whole when slot 4's read found it deleted: one bad read, two pages lost.
    const st = t.statsSnapshot();
    try testing.expectEqual(@as(u64, 4), st.reads_bad);
    try testing.expectEqual(@as(u64, 1), st.faults_checksum);
    try testing.expectEqual(@as(u64, 2), st.faults_truncated);
    try testing.expectEqual(@as(u64, 2), st.faults_missing);
    try testing.expectEqual(@as(u64, 0), st.faults_enospc + st.faults_readonly + st.faults_io);
}

test "a full disk or spent quota drops writes without failing" {
    var dbuf: [max_path]u8 = undefined;
    const page_bytes = 3000;
    var page: [page_bytes]u8 = undefined;
    fillPage(&page, 7);
    var got: [page_bytes]u8 = undefined;
    {
        // Quota of two records on a healthy disk: the third put is dropped, not failed.
        const dir = testDir(&dbuf, "quota");
        defer removeTree(dir);
        const t = try ColdTier.open(testing.allocator, dir, 1, page_bytes, .{ .max_bytes = 2 * 4096 + 100, .slots_per_slab = 1 });
        defer t.close();
        const a = t.put(1, 16, &page).?;
        const b = t.put(2, 16, &page).?;
        try testing.expect(a != b);
        try testing.expectEqual(@as(?u32, null), t.put(3, 16, &page));
        t.flush();
        try testing.expect(t.get(a, 1, &got));
        try testing.expect(t.get(b, 2, &got));
        const st = t.statsSnapshot();
        try testing.expectEqual(@as(u64, 0), st.writes_failed);
        try testing.expectEqual(@as(u64, 1), st.writes_dropped);
    }
    {
        // slab-1 is /dev/full: every write to it fails with ENOSPC, as on a full disk. The write
        // is asynchronous, so only after flush() is its outcome (and the slot's release) known.
        const dir = testDir(&dbuf, "full");
        defer removeTree(dir);
        const t = try ColdTier.open(testing.allocator, dir, 1, page_bytes, .{ .max_bytes = 2 * 4096 + 100, .slots_per_slab = 1 });
        defer t.close();
        const s0 = t.put(1, 16, &page).?;
        var pbuf: [max_path]u8 = undefined;
        try testing.expectEqual(@as(c_int, 0), c.symlink("/dev/full", t.slabPath(&pbuf, 1).?));
        defer _ = c.unlink(t.slabPath(&pbuf, 1).?);
        const s1 = t.put(2, 16, &page).?;
        try testing.expect(s0 != s1);
        t.flush();
        try testing.expect(t.get(s0, 1, &got));
        try testing.expect(!t.get(s1, 2, &got));
        const st = t.statsSnapshot();
        try testing.expectEqual(@as(u64, 1), st.writes_failed);
        try testing.expectEqual(@as(u64, 1), st.faults_enospc);
        // The failed slot came back: a new put fits again.
        try testing.expect(t.put(4, 16, &page) != null);
    }
}

test "a slab deleted or truncated under the tier is noticed before a manifest lists it, and rewritten" {
    var dbuf: [max_path]u8 = undefined;
    const dir = testDir(&dbuf, "checkfiles");
    defer removeTree(dir);
    const page_bytes = 3000;
    const t = try ColdTier.open(testing.allocator, dir, 1, page_bytes, .{ .max_bytes = 1 << 20, .slots_per_slab = 2 });
    defer t.close();
    var page: [page_bytes]u8 = undefined;
    var got: [page_bytes]u8 = undefined;
    var slots: [4]u32 = undefined;
    for (&slots, 0..) |*s, i| {
        fillPage(&page, i);
        s.* = t.put(i, 16, &page).?;
    }
    t.flush();
    var pbuf: [max_path]u8 = undefined;
    // Delete slab 0 (its descriptor stays open: reads would still work) and cut slab 1 after its first record.
    try testing.expectEqual(@as(c_int, 0), c.unlink(t.slabPath(&pbuf, slots[0]).?));
    {
        const fd = c.open(t.slabPath(&pbuf, slots[2]).?, .{ .ACCMODE = .RDWR });
        try testing.expect(fd >= 0);
        try testing.expectEqual(@as(c_int, 0), c.ftruncate(fd, @intCast(t.record_bytes)));
        _ = c.close(fd);
    }
    t.checkFiles();
    const st = t.statsSnapshot();
    try testing.expectEqual(@as(u64, 2), st.faults_missing);
    try testing.expectEqual(@as(u64, 1), st.faults_truncated);
    try testing.expect(!t.isStored(slots[0], 0) and !t.isStored(slots[1], 1));
    try testing.expect(t.isStored(slots[2], 2) and !t.isStored(slots[3], 3));
    fillPage(&page, 2);
    try testing.expect(t.get(slots[2], 2, &got));
    try testing.expectEqualSlices(u8, &page, &got);
    // The next write recreates slab 0's file, and reads back.
    fillPage(&page, 9);
    const s9 = t.put(9, 16, &page).?;
    t.flush();
    try testing.expect(t.get(s9, 9, &got));
    try testing.expectEqualSlices(u8, &page, &got);
    try testing.expect(c.access(t.slabPath(&pbuf, s9).?, 0) == 0);
}

test "a deleted directory is made again by the next write" {
    var dbuf: [max_path]u8 = undefined;
    const dir = testDir(&dbuf, "rmdir");
    defer removeTree(dir);
    const page_bytes = 3000;
    const t = try ColdTier.open(testing.allocator, dir, 1, page_bytes, .{ .max_bytes = 1 << 20, .slots_per_slab = 2 });
    defer t.close();
    var page: [page_bytes]u8 = undefined;
    var got: [page_bytes]u8 = undefined;
    fillPage(&page, 1);
    const a = t.put(1, 16, &page).?;
    t.flush();
    removeTree(dir);
    try testing.expect(!t.get(a, 1, &got));
    const b = t.put(2, 16, &page).?;
    t.flush();
    try testing.expect(t.get(b, 2, &got));
    try testing.expectEqualSlices(u8, &page, &got);
    try testing.expectEqual(@as(u64, 1), t.statsSnapshot().faults_missing);
}
