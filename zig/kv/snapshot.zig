//! Session files: one sequence's tokens and KV pages saved to disk, and restored into the pool in a later process.
//!
//! Layout: a 4096-byte header block (FileHeader, checksummed), the tokens (u32 each, checksummed)
//! padded to 4096, then one record per page in the cold tier's format (kv/tier.zig: 64-byte
//! header with the page's own checksum, payload, padded to 4096). Pages are written straight
//! from and read straight into pool memory (no staging copy). The file is written as
//! `<path>.tmp`, fsynced, then renamed over `<path>`, so a crash leaves the old file or the new
//! one, never half of each. Restore checks every checksum and the model shape before the
//! sequence becomes visible; any mismatch is `error.Corrupt` and the caller re-prefills.
const std = @import("std");
const kv = @import("pages.zig");
const tier = @import("tier.zig");
const c = std.c;
const Pool = @import("../pool.zig").Pool;

const file_magic: u32 = 0x5356_4b48; // "HKVS"
const file_version: u32 = 1;
const block_bytes = tier.align_bytes;

pub const FileHeader = extern struct {
    magic: u32,
    version: u32,
    kv_type: u32,
    n_layer: u32,
    n_head_kv: u32,
    head_dim: u32,
    page_bytes: u64,
    model_tag: u64,
    n_tokens: u64,
    n_pages: u64,
    tokens_checksum: u64,
    /// Wyhash of this header with the field zero.
    checksum: u64,
};

fn headerChecksum(h: FileHeader) u64 {
    var hh = h;
    hh.checksum = 0;
    return std.hash.Wyhash.hash(0x5345_5353, std.mem.asBytes(&hh));
}

fn recordsOffset(n_tokens: usize) u64 {
    return std.mem.alignForward(u64, block_bytes + n_tokens * 4, block_bytes);
}

pub const Error = error{ PathTooLong, Io, DiskFull, ReadOnly, Corrupt, ShapeMismatch, TooManyTokens, KvFull, NoSequenceSlot };

/// The save error of a failed write or open: a full disk, a read-only place, or another I/O error.
fn writeError(e: c.E) Error {
    return switch (tier.writeFault(e)) {
        .enospc => error.DiskFull,
        .readonly => error.ReadOnly,
        else => error.Io,
    };
}

fn lastWriteError() Error {
    return writeError(@fromBackingInt(@intCast(c._errno().*)));
}

/// Writes sequence `seq` (its KV holds exactly `tokens`) to `path`. Returns the bytes written.
pub fn save(cache: *const kv.Cache, seq: u32, tokens: []const u32, model_tag: u64, path: []const u8) Error!u64 {
    const s = cache.seqs[seq];
    std.debug.assert(s.active and tokens.len == s.len_tokens);
    const sh = cache.shape;
    const page_bytes = sh.pageSizeBytes();
    const record_bytes = tier.recordBytes(page_bytes);
    var h: FileHeader = .{
        .magic = file_magic,
        .version = file_version,
        .kv_type = @backingInt(sh.kv_type),
        .n_layer = @intCast(sh.n_layer),
        .n_head_kv = @intCast(sh.n_head_kv),
        .head_dim = @intCast(sh.head_dim),
        .page_bytes = page_bytes,
        .model_tag = model_tag,
        .n_tokens = tokens.len,
        .n_pages = s.n_pages,
        .tokens_checksum = std.hash.Wyhash.hash(0, std.mem.sliceAsBytes(tokens)),
        .checksum = 0,
    };
    h.checksum = headerChecksum(h);

    var tmp_buf: [tier.max_path]u8 = undefined;
    var dst_buf: [tier.max_path]u8 = undefined;
    const tmp = tier.pathZ(&tmp_buf, "{s}.tmp", .{path}) orelse return error.PathTooLong;
    const dst = tier.pathZ(&dst_buf, "{s}", .{path}) orelse return error.PathTooLong;
    const fd = c.open(tmp, .{ .ACCMODE = .WRONLY, .CREAT = true, .TRUNC = true, .CLOEXEC = true }, @as(c_uint, 0o644));
    if (fd < 0) return lastWriteError();
    var ok = false;
    defer if (!ok) {
        _ = c.unlink(tmp);
    };
    defer _ = c.close(fd);

    if (tier.pwriteErrno(fd, std.mem.asBytes(&h), 0)) |e| return writeError(e);
    if (tier.pwriteErrno(fd, std.mem.sliceAsBytes(tokens), block_bytes)) |e| return writeError(e);
    const base = recordsOffset(tokens.len);
    const table = cache.table(seq);
    for (table, 0..) |page, i| {
        const payload = cache.data[@as(usize, page) * page_bytes ..][0..page_bytes];
        const n_in_page: u32 = @intCast(@min(kv.page_tokens, tokens.len - i * kv.page_tokens));
        const rh = tier.makeHeader(@intCast(h.kv_type), i, model_tag, n_in_page, payload);
        var iov = [_]std.posix.iovec_const{
            .{ .base = std.mem.asBytes(&rh), .len = tier.header_bytes },
            .{ .base = payload.ptr, .len = payload.len },
        };
        const off = base + i * record_bytes;
        const n = c.pwritev(fd, &iov, 2, @intCast(off));
        if (n != tier.header_bytes + page_bytes) {
            // Short or failed vectored write (rare): fall back to plain writes.
            if (tier.pwriteErrno(fd, std.mem.asBytes(&rh), off)) |e| return writeError(e);
            if (tier.pwriteErrno(fd, payload, off + tier.header_bytes)) |e| return writeError(e);
        }
    }
    const end = base + table.len * record_bytes;
    if (c.ftruncate(fd, @intCast(end)) != 0) return lastWriteError();
    // On a file system that allocates at writeback (a full disk can surface only here).
    if (c.fsync(fd) != 0) return lastWriteError();
    if (c.rename(tmp, dst) != 0) return lastWriteError();
    ok = true;
    if (std.fs.path.dirname(path)) |d| tier.fsyncDir(d);
    return end;
}

pub const Restored = struct { seq: u32, n_tokens: usize };

/// Reads a session file into a new sequence, tokens into `tokens_out`. `free_pages` is called
/// when the pool is short (a prefix cache can give pages back). Nothing is visible on error.
/// With a `pool`, pages are read and verified on its threads (a page per task).
pub fn restore(cache: *kv.Cache, path: []const u8, model_tag: u64, tokens_out: []u32, free_pages: ?FreePages, pool: ?*Pool) Error!Restored {
    var path_buf: [tier.max_path]u8 = undefined;
    const p = tier.pathZ(&path_buf, "{s}", .{path}) orelse return error.PathTooLong;
    const fd = c.open(p, .{ .ACCMODE = .RDONLY, .CLOEXEC = true });
    if (fd < 0) return error.Io;
    defer _ = c.close(fd);
    var h: FileHeader = undefined;
    if (!tier.preadAll(fd, std.mem.asBytes(&h), 0)) return error.Corrupt;
    if (h.magic != file_magic or h.version != file_version or headerChecksum(h) != h.checksum) return error.Corrupt;
    const sh = cache.shape;
    const page_bytes = sh.pageSizeBytes();
    if (h.kv_type != @backingInt(sh.kv_type) or h.n_layer != sh.n_layer or h.n_head_kv != sh.n_head_kv or
        h.head_dim != sh.head_dim or h.page_bytes != page_bytes or h.model_tag != model_tag) return error.ShapeMismatch;
    if (h.n_tokens > tokens_out.len) return error.TooManyTokens;
    const n_tokens: usize = @intCast(h.n_tokens);
    if (h.n_pages != (n_tokens + kv.page_tokens - 1) / kv.page_tokens) return error.Corrupt;
    const n_pages: usize = @intCast(h.n_pages);
    if (n_pages > cache.pages_total) return error.KvFull;
    const toks = tokens_out[0..n_tokens];
    if (!tier.preadAll(fd, std.mem.sliceAsBytes(toks), block_bytes)) return error.Corrupt;
    if (std.hash.Wyhash.hash(0, std.mem.sliceAsBytes(toks)) != h.tokens_checksum) return error.Corrupt;

    if (cache.n_free < n_pages) if (free_pages) |f| f.func(f.ctx, n_pages);
    if (cache.n_free < n_pages) return error.KvFull;
    const seq = cache.seqCreate() orelse return error.NoSequenceSlot;
    errdefer cache.seqFree(seq);
    cache.grow(seq, n_tokens);
    const base = recordsOffset(n_tokens);
    const record_bytes = tier.recordBytes(page_bytes);
    // A sequential read: the kernel's readahead (doubled by this hint) keeps the disk busy while
    // pages are copied and verified. POSIX_FADV_WILLNEED on the whole range was slower: it reads
    // everything before returning, so the copying waited for the disk (a cold 46 MB restore took
    // 43-72 ms against 22-28 ms for a plain read; without it, 18-25 ms).
    if (@import("builtin").os.tag == .linux) {
        const linux = std.os.linux;
        _ = linux.fadvise(fd, @intCast(base), @intCast(n_pages * record_bytes), linux.POSIX_FADV.SEQUENTIAL);
    }
    // Copying a page out of the page cache and hashing it is CPU work (~3 GB/s on one thread):
    // on the pool, two threads keep two reads in flight (a warm 46 MB restore: 15 -> 6 ms).
    // Tasks are claimed in index order, so the reads stay near file order for the readahead.
    var failed: std.atomic.Value(bool) = .init(false);
    const job: ReadPages = .{
        .cache = cache,
        .table = cache.table(seq),
        .fd = fd,
        .base = base,
        .record_bytes = record_bytes,
        .kv_type = @intCast(h.kv_type),
        .model_tag = model_tag,
        .failed = &failed,
    };
    if (pool) |workers| workers.run(job.table.len, &job, ReadPages.run) else for (0..job.table.len) |i| ReadPages.run(&job, i);
    if (failed.load(.acquire)) return error.Corrupt;
    return .{ .seq = seq, .n_tokens = n_tokens };
}

/// Reads record i of a session file into the i-th page of the restored sequence and verifies it.
const ReadPages = struct {
    cache: *kv.Cache,
    table: []const u32,
    fd: c.fd_t,
    base: usize,
    record_bytes: usize,
    kv_type: u16,
    model_tag: u64,
    failed: *std.atomic.Value(bool),

    fn run(self: *const ReadPages, i: usize) void {
        if (self.failed.load(.monotonic)) return; // the file is bad already: skip the rest
        const page_bytes = self.cache.shape.pageSizeBytes();
        const payload = self.cache.data[@as(usize, self.table[i]) * page_bytes ..][0..page_bytes];
        var rh: tier.Header = undefined;
        var iov = [_]std.posix.iovec{
            .{ .base = std.mem.asBytes(&rh), .len = tier.header_bytes },
            .{ .base = payload.ptr, .len = payload.len },
        };
        const off = self.base + i * self.record_bytes;
        const n = c.preadv(self.fd, &iov, 2, @intCast(off));
        const ok = n == tier.header_bytes + page_bytes or
            (tier.preadAll(self.fd, std.mem.asBytes(&rh), off) and tier.preadAll(self.fd, payload, off + tier.header_bytes));
        if (!ok) return self.failed.store(true, .release);
        tier.verify(rh, payload, self.kv_type, i, self.model_tag) catch self.failed.store(true, .release);
    }
};

pub const FreePages = struct {
    ctx: *anyopaque,
    func: *const fn (*anyopaque, usize) void,
};

// ---------------------------------------------------------------- tests

const testing = std.testing;

test "a saved sequence restores bit-identically; any damage is Corrupt and leaves the pool as it was" {
    var dbuf: [tier.max_path]u8 = undefined;
    const dir = tier.testDir(&dbuf, "snapshot");
    try testing.expect(tier.mkdirP(dir));
    defer tier.removeTree(dir);
    var pbuf: [tier.max_path]u8 = undefined;
    const path = std.fmt.bufPrint(&pbuf, "{s}/manifest", .{dir}) catch unreachable; // a name removeTree cleans
    const pool = try Pool.init(testing.allocator, 2);
    defer pool.deinit();
    for ([_]kv.KvType{ .f16, .q8_0 }) |t| {
        const cache = try kv.Cache.init(testing.allocator, .{ .n_layer = 2, .n_head_kv = 2, .head_dim = 32, .kv_type = t }, 16, 4);
        defer cache.deinit();
        const a = cache.seqCreate().?;
        var toks: [45]u32 = undefined;
        for (&toks, 0..) |*x, i| x.* = @intCast(i * 7 + 3);
        cache.grow(a, toks.len);
        var prng = std.Random.DefaultPrng.init(1);
        for (cache.table(a)) |page| prng.random().bytes(cache.data[page * cache.shape.pageSizeBytes() ..][0..cache.shape.pageSizeBytes()]);
        const written = try save(cache, a, &toks, 11, path);
        try testing.expect(written > 3 * cache.shape.pageSizeBytes());
        var out: [64]u32 = undefined;
        const r = try restore(cache, path, 11, &out, null, pool);
        try testing.expectEqual(@as(usize, 45), r.n_tokens);
        try testing.expectEqualSlices(u32, &toks, out[0..45]);
        for (cache.table(a), cache.table(r.seq)) |pa, pb| {
            const n = cache.shape.pageSizeBytes();
            try testing.expectEqualSlices(u8, cache.data[pa * n ..][0..n], cache.data[pb * n ..][0..n]);
        }
        cache.seqFree(r.seq);
        // Wrong model tag, too small a token buffer.
        try testing.expectError(error.ShapeMismatch, restore(cache, path, 12, &out, null, pool));
        try testing.expectError(error.TooManyTokens, restore(cache, path, 11, out[0..10], null, null));
        // A flipped bit in the last page's payload.
        var zbuf: [tier.max_path]u8 = undefined;
        const pz = tier.pathZ(&zbuf, "{s}", .{path}).?;
        const size: u64 = written;
        const fd = c.open(pz, .{ .ACCMODE = .RDWR });
        var b: [1]u8 = undefined;
        try testing.expect(tier.preadAll(fd, &b, size - 4096 - 9));
        b[0] ^= 4;
        try testing.expect(tier.pwriteAll(fd, &b, size - 4096 - 9));
        const free_before = cache.n_free;
        try testing.expectError(error.Corrupt, restore(cache, path, 11, &out, null, null));
        try testing.expectEqual(free_before, cache.n_free);
        try testing.expectError(error.Corrupt, restore(cache, path, 11, &out, null, pool));
        try testing.expectEqual(free_before, cache.n_free);
        // Truncated file.
        try testing.expectEqual(@as(c_int, 0), c.ftruncate(fd, @intCast(size / 2)));
        _ = c.close(fd);
        try testing.expectError(error.Corrupt, restore(cache, path, 11, &out, null, pool));
        try testing.expectEqual(free_before, cache.n_free);
        // Deleted file.
        _ = c.unlink(pz);
        try testing.expectError(error.Io, restore(cache, path, 11, &out, null, null));
        cache.seqFree(a);
    }
}
