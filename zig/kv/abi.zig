//! The KV-tier operations behind root.zig's exports: argument checks, status codes, and calls into prefix.zig / snapshot.zig.
const std = @import("std");
const status = @import("../status.zig");
const pages = @import("pages.zig");
const Pool = @import("../pool.zig").Pool;
const prefix = @import("prefix.zig");
const snapshot = @import("snapshot.zig");
const evict = @import("evict.zig");
const portable = @import("portable.zig");

/// What the tier operations need of a model (root.zig builds it from one): its KV cache, the slot
/// that holds its prefix cache once opened, and its thread pool. The KV layer knows no model.
pub const KvModel = struct {
    cache: *pages.Cache,
    tier: *?*prefix.PrefixCache,
    pool: *Pool,
};

fn tokensOf(tokens: ?[*]const i32, n: u32) ?[]const u32 {
    if (n == 0) return &.{};
    const t = tokens orelse return null;
    if (!std.mem.isAligned(@intFromPtr(t), 4)) return null;
    return @as([*]const u32, @ptrCast(t))[0..n];
}

pub fn tierOpen(m: KvModel, dir: []const u8, hot_budget_bytes: u64, cold_max_bytes: u64, model_tag: u64) i32 {
    if (dir.len >= 900) return status.fail(.invalid_argument, "cache directory path is {d} bytes (at most 900)", .{dir.len});
    if (std.mem.indexOfScalar(u8, dir, 0) != null) return status.fail(.invalid_argument, "cache directory contains a NUL byte", .{});
    if (hot_budget_bytes == 0) return status.fail(.invalid_argument, "hot budget must be positive", .{});
    if (m.tier.*) |old| {
        old.deinit();
        m.tier.* = null;
    }
    const entries: u64 = @min(1 << 20, @as(u64, m.cache.pages_total) + cold_max_bytes / m.cache.shape.pageSizeBytes() + 64);
    const t = prefix.PrefixCache.init(std.heap.c_allocator, m.cache, .{
        .hot_budget_bytes = hot_budget_bytes,
        .model_tag = model_tag,
        .dir = if (dir.len > 0 and cold_max_bytes > 0) dir else null,
        .cold_max_bytes = cold_max_bytes,
        .max_entries = @intCast(entries),
    }) catch |err| return status.fail(.io_error, "cannot open the KV tier in {f}: {s}", .{ status.quoted(dir), @errorName(err) });
    m.tier.* = t;
    return 0;
}

fn tierOf(m: KvModel) ?*prefix.PrefixCache {
    return m.tier.*;
}

pub fn tierStats(m: KvModel, out: *prefix.Stats) i32 {
    const t = tierOf(m) orelse return status.fail(.invalid_argument, "KV tier is not open (call kvTierOpen first)", .{});
    out.* = t.snapshot();
    return 0;
}

pub fn tierPersist(m: KvModel) i32 {
    const t = tierOf(m) orelse return status.fail(.invalid_argument, "KV tier is not open", .{});
    const n = t.persist() catch |err| return status.fail(.io_error, "cannot persist the prefix cache: {s}", .{@errorName(err)});
    return @intCast(@min(n, std.math.maxInt(i32)));
}

/// Writes the manifest of what is already on SSD (no hot pages written); returns the entries listed.
pub fn tierCheckpoint(m: KvModel) i32 {
    const t = tierOf(m) orelse return status.fail(.invalid_argument, "KV tier is not open", .{});
    const n = t.checkpoint() catch |err| return status.fail(.io_error, "cannot write the prefix cache manifest: {s}", .{@errorName(err)});
    return @intCast(@min(n, std.math.maxInt(i32)));
}

/// New sequence filled with the longest cached prefix of `tokens`; reused token count to `out_reused`.
pub fn seqCreatePrefix(m: KvModel, tokens: ?[*]const i32, n: u32, out_reused: *u32) i32 {
    const toks = tokensOf(tokens, n) orelse return status.fail(.null_pointer, "tokens are null or misaligned", .{});
    const seq = m.cache.seqCreate() orelse return status.fail(.out_of_range, "all {d} sequence slots are in use", .{m.cache.seqs.len});
    out_reused.* = if (tierOf(m)) |t| @intCast(t.attach(seq, toks)) else 0;
    return @intCast(seq);
}

pub fn seqPublish(m: KvModel, seq: i32, tokens: ?[*]const i32, n: u32) i32 {
    const t = tierOf(m) orelse return status.fail(.invalid_argument, "KV tier is not open", .{});
    if (!m.cache.isActive(seq)) return status.fail(.invalid_argument, "sequence {d} is not open", .{seq});
    const toks = tokensOf(tokens, n) orelse return status.fail(.null_pointer, "tokens are null or misaligned", .{});
    const len = m.cache.seqs[@intCast(seq)].len_tokens;
    if (n > len) return status.fail(.invalid_argument, "publish: {d} tokens given, sequence {d} holds {d}", .{ n, seq, len });
    return @intCast(t.publish(@intCast(seq), toks));
}

/// Moves the hot pages of the cached chain of `tokens` (from token `from_tokens` on, rounded down to
/// a page) to the SSD tier; returns the pages that left RAM (0 without an SSD tier).
pub fn tierSpill(m: KvModel, tokens: ?[*]const i32, n: u32, from_tokens: u32) i32 {
    const t = tierOf(m) orelse return status.fail(.invalid_argument, "KV tier is not open", .{});
    const toks = tokensOf(tokens, n) orelse return status.fail(.null_pointer, "tokens are null or misaligned", .{});
    return @intCast(@min(t.spill(toks, from_tokens / pages.page_tokens), std.math.maxInt(i32)));
}

/// Pool pages only the prefix cache holds (free for new sequences on demand); 0 without a tier.
pub fn tierReclaimable(m: KvModel) i32 {
    const t = tierOf(m) orelse return 0;
    return @intCast(@min(t.reclaimable(), std.math.maxInt(i32)));
}

/// Bytes of one portable page record (kv/portable.zig) of this model.
pub fn recordBytes(m: KvModel) i32 {
    return @intCast(portable.recordBytes(m.cache.shape.pageSizeBytes()));
}

/// Chain keys of the whole pages of `tokens` (at most `cap`) to `keys_out`; pages the prefix
/// cache holds from the start to `out_local`. Returns the pages written.
pub fn chain(m: KvModel, tokens: ?[*]const i32, n: u32, keys_out: [*]u64, cap: u32, out_local: *u32) i32 {
    const t = tierOf(m) orelse return status.fail(.invalid_argument, "KV tier is not open", .{});
    const toks = tokensOf(tokens, n) orelse return status.fail(.null_pointer, "tokens are null or misaligned", .{});
    const r = t.chain(toks, keys_out[0..cap]);
    out_local.* = @intCast(r.local);
    return @intCast(r.pages);
}

/// Writes whole page `page_i` of the cached chain of `tokens` as a portable record.
pub fn pageExport(m: KvModel, tokens: ?[*]const i32, n: u32, page_i: u32, out: []u8) i32 {
    const t = tierOf(m) orelse return status.fail(.invalid_argument, "KV tier is not open", .{});
    const toks = tokensOf(tokens, n) orelse return status.fail(.null_pointer, "tokens are null or misaligned", .{});
    t.exportPage(toks, page_i, out) catch |err| return switch (err) {
        error.BadSize => status.fail(.invalid_argument, "record buffer is {d} bytes, a record is {d}", .{ out.len, portable.recordBytes(m.cache.shape.pageSizeBytes()) }),
        error.NotCached => status.fail(.io_error, "page {d} of these tokens is not in the prefix cache", .{page_i}),
    };
    return 0;
}

/// Adds whole page `page_i` of `tokens` from a portable record to the prefix cache: 1 added,
/// 0 already there; `corrupt` when the record does not check out against the tokens and model.
pub fn pageImport(m: KvModel, tokens: ?[*]const i32, n: u32, page_i: u32, rec: []const u8) i32 {
    const t = tierOf(m) orelse return status.fail(.invalid_argument, "KV tier is not open", .{});
    const toks = tokensOf(tokens, n) orelse return status.fail(.null_pointer, "tokens are null or misaligned", .{});
    const added = t.importPage(toks, page_i, rec) catch |err| return switch (err) {
        error.Corrupt => status.fail(.corrupt, "KV page record {d} is damaged or from another model, build or prompt", .{page_i}),
        error.OutOfRange => status.fail(.out_of_range, "page {d} is past the {d} tokens given", .{ page_i, n }),
        error.KvFull => status.fail(.kv_full, "no free KV page for an imported page", .{}),
        error.NoEntrySlot => status.fail(.kv_full, "the prefix cache's entry table is full", .{}),
        error.PinLimit => status.fail(.kv_full, "as many imported pages as the hot tier holds wait for their requests already", .{}),
    };
    return @intFromBool(added);
}

/// Ends the pin of imported page `page_i` of `tokens` (used: its request attached it). 1 when
/// it was pinned, 0 when not (already unpinned, or never imported).
pub fn pageUnpin(m: KvModel, tokens: ?[*]const i32, n: u32, page_i: u32, used: bool) i32 {
    const t = tierOf(m) orelse return status.fail(.invalid_argument, "KV tier is not open", .{});
    const toks = tokensOf(tokens, n) orelse return status.fail(.null_pointer, "tokens are null or misaligned", .{});
    return @intFromBool(t.unpin(toks, page_i, used));
}

/// Called before a context shift: shared pages the shift would rewrite get private copies.
pub fn beforeShift(m: KvModel, seq: u32, keep: usize, drop: usize) i32 {
    const t = tierOf(m) orelse return 0;
    if (!t.makePrivate(seq, keep, drop)) return status.fail(.kv_full, "context shift needs private copies of shared pages and the KV pool is full", .{});
    return 0;
}

pub fn seqCreated(m: KvModel, seq: u32) void {
    if (tierOf(m)) |t| t.shifted[seq] = false;
}

pub fn seqSave(m: KvModel, seq: i32, tokens: ?[*]const i32, n: u32, model_tag: u64, path: []const u8, out_bytes: *u64) i32 {
    if (!m.cache.isActive(seq)) return status.fail(.invalid_argument, "sequence {d} is not open", .{seq});
    const toks = tokensOf(tokens, n) orelse return status.fail(.null_pointer, "tokens are null or misaligned", .{});
    const len = m.cache.seqs[@intCast(seq)].len_tokens;
    if (n != len) return status.fail(.invalid_argument, "save: {d} tokens given, sequence {d} holds {d}", .{ n, seq, len });
    if (path.len == 0 or path.len >= 1000 or std.mem.indexOfScalar(u8, path, 0) != null) return status.fail(.invalid_argument, "session path is empty, too long or contains NUL", .{});
    out_bytes.* = snapshot.save(m.cache, @intCast(seq), toks, model_tag, path) catch |err|
        return status.fail(.io_error, "cannot save sequence {d} to {f}: {s}", .{ seq, status.quoted(path), @errorName(err) });
    return 0;
}

fn reclaimThunk(ctx: *anyopaque, need: usize) void {
    const t: *prefix.PrefixCache = @ptrCast(@alignCast(ctx));
    t.reclaim(need);
}

pub fn seqRestore(m: KvModel, path: []const u8, model_tag: u64, tokens_out: ?[*]i32, cap: u32, out_n: *u32) i32 {
    if (path.len == 0 or path.len >= 1000 or std.mem.indexOfScalar(u8, path, 0) != null) return status.fail(.invalid_argument, "session path is empty, too long or contains NUL", .{});
    const out = tokens_out orelse return status.fail(.null_pointer, "token output is null", .{});
    if (!std.mem.isAligned(@intFromPtr(out), 4)) return status.fail(.misaligned, "token output must be 4-byte aligned", .{});
    const buf = @as([*]u32, @ptrCast(out))[0..cap];
    const free: ?snapshot.FreePages = if (tierOf(m)) |t| .{ .ctx = t, .func = reclaimThunk } else null;
    const r = snapshot.restore(m.cache, path, model_tag, buf, free, m.pool) catch |err| return switch (err) {
        error.Corrupt => status.fail(.corrupt, "session file {f} is damaged (checksum, size or header); re-prefill instead", .{status.quoted(path)}),
        error.ShapeMismatch => status.fail(.invalid_argument, "session file {f} was saved by another model or KV type", .{status.quoted(path)}),
        error.KvFull => status.fail(.kv_full, "restoring {f} needs more free KV pages than the pool has", .{status.quoted(path)}),
        error.TooManyTokens => status.fail(.out_of_range, "session file {f} holds more than {d} tokens", .{ status.quoted(path), cap }),
        error.NoSequenceSlot => status.fail(.out_of_range, "all {d} sequence slots are in use", .{m.cache.seqs.len}),
        else => status.fail(.io_error, "cannot read session file {f}: {s}", .{ status.quoted(path), @errorName(err) }),
    };
    seqCreated(m, r.seq);
    out_n.* = @intCast(r.n_tokens);
    return @intCast(r.seq);
}

pub fn traceReplay(seed: u64, events: u32, capacity_pages: u32, out: *evict.ReplayResult) i32 {
    if (events == 0 or events > 1_000_000 or capacity_pages == 0 or capacity_pages > 1 << 20)
        return status.fail(.invalid_argument, "trace events {d} must be in [1, 1e6], capacity {d} in [1, 2^20]", .{ events, capacity_pages });
    out.* = evict.replay(std.heap.c_allocator, .{ .seed = seed, .events = events }, capacity_pages) catch
        return status.fail(.out_of_memory, "trace replay ran out of memory", .{});
    return 0;
}
