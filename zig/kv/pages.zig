//! Paged KV cache: one pool of 16-token pages sized once at create, a block table per sequence, F16 or Q8_0 rows.
//!
//! A page holds 16 tokens of every layer: block (layer, kind, kv head) is `page_tokens` rows of
//! `head_dim` values, at byte offset (((layer * 2 + kind) * n_head_kv + head) * block_bytes) in the
//! page, kind 0 = K, 1 = V. Keeping a whole page contiguous lets a tier spill or checksum it as one
//! blob. Nothing here allocates after `init`: pages are rented from a free stack and returned.
//!
//! Row layouts inside a block: V is token-major ([16][head_dim]) in both formats; Q8_0 K is
//! token-major too (its blocks run along head_dim). F16 K is dimension-major ([head_dim][16]):
//! attention then scores 16 keys with one vector FMA per dimension, no horizontal sums.
//! Use readRow / writeRow to move one token's row in or out whatever the layout.
const std = @import("std");
const hugemem = @import("../hugemem.zig");
const ops = @import("../ops.zig");

pub const page_tokens: usize = 16;

pub const KvType = enum(u32) { f16 = 1, q8_0 = 8 };

/// One Q8_0 block of a KV row: the GGML Q8_0 layout (f16 scale, then 32 int8), 34 bytes.
pub const KvBlockQ8 = extern struct {
    d: f16 align(1),
    qs: [32]i8,
};

comptime {
    std.debug.assert(@sizeOf(KvBlockQ8) == 34);
}

pub const Kind = enum(u1) { k = 0, v = 1 };

pub const Shape = struct {
    n_layer: usize,
    n_head_kv: usize,
    head_dim: usize,
    kv_type: KvType,

    /// Bytes of one token's row for one kv head.
    pub fn rowBytes(s: Shape) usize {
        return switch (s.kv_type) {
            .f16 => s.head_dim * 2,
            .q8_0 => s.head_dim / 32 * @sizeOf(KvBlockQ8),
        };
    }
    pub fn blockBytes(s: Shape) usize {
        return page_tokens * s.rowBytes();
    }
    pub fn pageSizeBytes(s: Shape) usize {
        return s.n_layer * 2 * s.n_head_kv * s.blockBytes();
    }
};

pub const Error = error{ OutOfMemory, InvalidShape };

pub const Seq = struct {
    active: bool = false,
    len_tokens: u32 = 0,
    n_pages: u32 = 0,
};

pub const Stats = extern struct {
    page_tokens: u32,
    pages_total: u32,
    pages_free: u32,
    sequences_active: u32,
    page_size_bytes: u64,
};

pub const Cache = struct {
    allocator: std.mem.Allocator,
    shape: Shape,
    pages_total: u32,
    /// pages_total * pageSizeBytes, on huge pages where offered (hugemem); untouched pages cost no RSS.
    data: []align(std.heap.page_size_min) u8,
    free_stack: []u32,
    n_free: u32,
    /// Owners of each page (sequences sharing it); a page is free at 0.
    refcount: []u16,
    seqs: []Seq,
    /// Block tables: seq s owns tables[s * pages_total ..][0..seqs[s].n_pages].
    tables: []u32,

    pub fn init(allocator: std.mem.Allocator, shape: Shape, pages_total: u32, max_seqs: u32) Error!*Cache {
        if (shape.n_layer == 0 or shape.n_head_kv == 0 or shape.head_dim == 0 or pages_total == 0 or max_seqs == 0)
            return error.InvalidShape;
        if (shape.kv_type == .q8_0 and shape.head_dim % 32 != 0) return error.InvalidShape;
        if (shape.head_dim % 8 != 0) return error.InvalidShape;
        const self = try allocator.create(Cache);
        errdefer allocator.destroy(self);
        const size_bytes = std.math.mul(usize, shape.pageSizeBytes(), pages_total) catch return error.OutOfMemory;
        const data = try hugemem.alloc(size_bytes);
        errdefer hugemem.free(data);
        const free_stack = try allocator.alloc(u32, pages_total);
        errdefer allocator.free(free_stack);
        const refcount = try allocator.alloc(u16, pages_total);
        errdefer allocator.free(refcount);
        const seqs = try allocator.alloc(Seq, max_seqs);
        errdefer allocator.free(seqs);
        const n_table = std.math.mul(usize, max_seqs, pages_total) catch return error.OutOfMemory;
        const tables = try allocator.alloc(u32, n_table);
        // Low page ids on top of the stack: a short run touches the start of the pool only.
        for (free_stack, 0..) |*p, i| p.* = pages_total - 1 - @as(u32, @intCast(i));
        @memset(refcount, 0);
        @memset(seqs, .{});
        self.* = .{
            .allocator = allocator,
            .shape = shape,
            .pages_total = pages_total,
            .data = data,
            .free_stack = free_stack,
            .n_free = pages_total,
            .refcount = refcount,
            .seqs = seqs,
            .tables = tables,
        };
        return self;
    }

    pub fn deinit(self: *Cache) void {
        const a = self.allocator;
        hugemem.free(self.data);
        a.free(self.free_stack);
        a.free(self.refcount);
        a.free(self.seqs);
        a.free(self.tables);
        a.destroy(self);
    }

    pub fn stats(self: *const Cache) Stats {
        var active: u32 = 0;
        for (self.seqs) |s| active += @intFromBool(s.active);
        return .{
            .page_tokens = page_tokens,
            .pages_total = self.pages_total,
            .pages_free = self.n_free,
            .sequences_active = active,
            .page_size_bytes = self.shape.pageSizeBytes(),
        };
    }

    pub fn isActive(self: *const Cache, seq: i64) bool {
        return seq >= 0 and seq < self.seqs.len and self.seqs[@intCast(seq)].active;
    }

    /// Opens an empty sequence; null when every slot is taken.
    pub fn seqCreate(self: *Cache) ?u32 {
        for (self.seqs, 0..) |*s, i| {
            if (!s.active) {
                s.* = .{ .active = true };
                return @intCast(i);
            }
        }
        return null;
    }

    /// Returns every page of the sequence and closes it.
    pub fn seqFree(self: *Cache, seq: u32) void {
        std.debug.assert(self.seqs[seq].active);
        self.truncatePages(seq, 0);
        self.seqs[seq] = .{};
    }

    pub fn table(self: *const Cache, seq: u32) []u32 {
        return self.tables[@as(usize, seq) * self.pages_total ..][0..self.seqs[seq].n_pages];
    }

    fn pagesFor(len_tokens: usize) usize {
        return (len_tokens + page_tokens - 1) / page_tokens;
    }

    /// Pages a sequence must rent to hold `add_tokens` more tokens.
    pub fn pagesNeeded(self: *const Cache, seq: u32, add_tokens: usize) usize {
        const s = self.seqs[seq];
        return pagesFor(s.len_tokens + add_tokens) -| s.n_pages;
    }

    /// Grows the sequence to `new_len` tokens, renting pages; the caller checked pagesNeeded <= n_free.
    pub fn grow(self: *Cache, seq: u32, new_len: usize) void {
        const s = &self.seqs[seq];
        std.debug.assert(new_len >= s.len_tokens);
        const want = pagesFor(new_len);
        std.debug.assert(want - s.n_pages <= self.n_free);
        const base = @as(usize, seq) * self.pages_total;
        while (s.n_pages < want) {
            self.n_free -= 1;
            const page = self.free_stack[self.n_free];
            std.debug.assert(self.refcount[page] == 0);
            self.refcount[page] = 1;
            self.tables[base + s.n_pages] = page;
            s.n_pages += 1;
        }
        s.len_tokens = @intCast(new_len);
    }

    /// Drops pages beyond the first `keep_pages` of a sequence (a page returns to the pool at refcount 0).
    fn truncatePages(self: *Cache, seq: u32, keep_pages: usize) void {
        const s = &self.seqs[seq];
        const base = @as(usize, seq) * self.pages_total;
        while (s.n_pages > keep_pages) {
            s.n_pages -= 1;
            const page = self.tables[base + s.n_pages];
            std.debug.assert(self.refcount[page] > 0);
            self.refcount[page] -= 1;
            if (self.refcount[page] == 0) {
                self.free_stack[self.n_free] = page;
                self.n_free += 1;
            }
        }
    }

    pub fn blockPtr(self: *const Cache, page: u32, layer: usize, kind: Kind, head: usize) [*]u8 {
        const sh = self.shape;
        const idx = ((@as(usize, page) * sh.n_layer + layer) * 2 + @backingInt(kind)) * sh.n_head_kv + head;
        return self.data.ptr + idx * sh.blockBytes();
    }

    /// True when K blocks are dimension-major ([head_dim][16] f16).
    pub fn kTransposed(self: *const Cache) bool {
        return self.shape.kv_type == .f16;
    }

    pub fn pageOf(self: *const Cache, seq: u32, index: usize) u32 {
        return self.tables[@as(usize, seq) * self.pages_total + index / page_tokens];
    }

    /// Writes one token's row (head_dim floats) of (layer, kind, head) for token `index` of `seq`.
    pub fn writeRow(self: *Cache, seq: u32, layer: usize, kind: Kind, head: usize, index: usize, src: []const f32) void {
        std.debug.assert(src.len == self.shape.head_dim);
        if (kind == .k and self.kTransposed()) {
            const blk: [*]f16 = @ptrCast(@alignCast(self.blockPtr(self.pageOf(seq, index), layer, .k, head)));
            const slot = index % page_tokens;
            for (src, 0..) |v, d| blk[d * page_tokens + slot] = @floatCast(v);
            return;
        }
        encodeRow(self.shape.kv_type, src, self.rowPtr(seq, layer, kind, head, index));
    }

    /// Reads one token's row back as f32.
    pub fn readRow(self: *const Cache, seq: u32, layer: usize, kind: Kind, head: usize, index: usize, dst: []f32) void {
        std.debug.assert(dst.len == self.shape.head_dim);
        if (kind == .k and self.kTransposed()) {
            const blk: [*]const f16 = @ptrCast(@alignCast(self.blockPtr(self.pageOf(seq, index), layer, .k, head)));
            const slot = index % page_tokens;
            for (dst, 0..) |*v, d| v.* = blk[d * page_tokens + slot];
            return;
        }
        decodeRow(self.shape.kv_type, self.rowPtr(seq, layer, kind, head, index), dst);
    }

    /// Start of token `index`'s row in a token-major block (V, or K when stored as Q8_0).
    pub fn rowPtr(self: *const Cache, seq: u32, layer: usize, kind: Kind, head: usize, index: usize) [*]u8 {
        const page = self.tables[@as(usize, seq) * self.pages_total + index / page_tokens];
        return self.blockPtr(page, layer, kind, head) + (index % page_tokens) * self.shape.rowBytes();
    }

    /// The batched store: scatters n token rows of K and V (n * n_head_kv * head_dim floats each)
    /// of one layer into their pages. Row i goes to sequence seq_ids[i] at token index indices[i].
    pub fn storeBatch(self: *Cache, layer: usize, k: []const f32, v: []const f32, seq_ids: []const i32, indices: []const u32) void {
        const sh = self.shape;
        const kv_dim = sh.n_head_kv * sh.head_dim;
        std.debug.assert(k.len == seq_ids.len * kv_dim and v.len == k.len and indices.len == seq_ids.len);
        for (seq_ids, indices, 0..) |seq_i, index, i| {
            const seq: u32 = @intCast(seq_i);
            std.debug.assert(index < self.seqs[seq].len_tokens);
            for (0..sh.n_head_kv) |h| {
                const off = i * kv_dim + h * sh.head_dim;
                self.writeRow(seq, layer, .k, h, index, k[off..][0..sh.head_dim]);
                self.writeRow(seq, layer, .v, h, index, v[off..][0..sh.head_dim]);
            }
        }
    }

    /// Context shift: keeps tokens [0, keep), drops [keep, keep + drop), moves the rest down by
    /// `drop` and rotates their K by -drop positions so rope positions stay contiguous.
    /// `ropes` holds one rope for every layer, or one per layer (Gemma 3's sliding layers have
    /// their own base; null: a layer without RoPE, whose K only moves).
    pub fn shift(self: *Cache, seq: u32, keep: usize, drop: usize, ropes: []const ?*const ops.Rope) void {
        const sh = self.shape;
        const len = self.seqs[seq].len_tokens;
        std.debug.assert(keep + drop <= len);
        std.debug.assert(ropes.len == 1 or ropes.len == sh.n_layer);
        if (drop == 0) return;
        var row: [max_head_dim]f32 = undefined;
        const r = row[0..sh.head_dim];
        // Ascending order: the destination j - drop was read before (or is a dropped row).
        for (0..sh.n_layer) |l| {
            const rope = ropes[if (ropes.len == 1) 0 else l];
            var cos: [ops.Rope.max_pairs]f32 = undefined;
            var sin: [ops.Rope.max_pairs]f32 = undefined;
            if (rope) |ro| ro.angles(-@as(i64, @intCast(drop)), cos[0 .. ro.rope_dims / 2], sin[0 .. ro.rope_dims / 2]);
            for (keep + drop..len) |j| {
                for (0..sh.n_head_kv) |h| {
                    self.readRow(seq, l, .k, h, j, r);
                    if (rope) |ro| ro.apply(r, 1, sh.head_dim, cos[0 .. ro.rope_dims / 2], sin[0 .. ro.rope_dims / 2]);
                    self.writeRow(seq, l, .k, h, j - drop, r);
                    const rb = sh.rowBytes();
                    @memcpy(self.rowPtr(seq, l, .v, h, j - drop)[0..rb], self.rowPtr(seq, l, .v, h, j)[0..rb]);
                }
            }
        }
        const new_len = len - drop;
        self.truncatePages(seq, pagesFor(new_len));
        self.seqs[seq].len_tokens = @intCast(new_len);
    }
};

pub const max_head_dim = 512;

/// f32 row -> stored KV row (F16: round to nearest; Q8_0: per 32 values, d = amax / 127).
pub fn encodeRow(t: KvType, src: []const f32, dst: [*]u8) void {
    switch (t) {
        .f16 => {
            const out: [*]align(1) f16 = @ptrCast(dst);
            var i: usize = 0;
            while (i + 8 <= src.len) : (i += 8) {
                const v: @Vector(8, f32) = src[i..][0..8].*;
                const h: @Vector(8, f16) = @floatCast(v);
                out[i..][0..8].* = h;
            }
            while (i < src.len) : (i += 1) out[i] = @floatCast(src[i]);
        },
        .q8_0 => {
            const blocks: [*]align(1) KvBlockQ8 = @ptrCast(dst);
            for (0..src.len / 32) |b| {
                const x = src[b * 32 ..][0..32];
                var amax: f32 = 0;
                for (x) |v| amax = @max(amax, @abs(v));
                const d = amax / 127.0;
                const id: f32 = if (d != 0) 1.0 / d else 0;
                blocks[b].d = @floatCast(d);
                for (x, 0..) |v, i| blocks[b].qs[i] = @intFromFloat(@round(v * id));
            }
        },
    }
}

/// Stored KV row -> f32 row.
pub fn decodeRow(t: KvType, src: [*]const u8, dst: []f32) void {
    switch (t) {
        .f16 => {
            const in: [*]align(1) const f16 = @ptrCast(src);
            for (dst, 0..) |*o, i| o.* = in[i];
        },
        .q8_0 => {
            const blocks: [*]align(1) const KvBlockQ8 = @ptrCast(src);
            for (0..dst.len / 32) |b| {
                const d: f32 = blocks[b].d;
                for (0..32) |i| dst[b * 32 + i] = d * @as(f32, @floatFromInt(blocks[b].qs[i]));
            }
        },
    }
}

// ---------------------------------------------------------------- tests

const testing = std.testing;

fn testShape(t: KvType) Shape {
    return .{ .n_layer = 2, .n_head_kv = 2, .head_dim = 64, .kv_type = t };
}

test "pages are rented per 16 tokens, shared by nobody, and all come back on free" {
    const c = try Cache.init(testing.allocator, testShape(.f16), 8, 4);
    defer c.deinit();
    const a = c.seqCreate().?;
    const b = c.seqCreate().?;
    try testing.expect(a != b);
    try testing.expectEqual(@as(usize, 1), c.pagesNeeded(a, 1));
    try testing.expectEqual(@as(usize, 2), c.pagesNeeded(a, 17));
    c.grow(a, 17);
    try testing.expectEqual(@as(u32, 6), c.n_free);
    try testing.expectEqual(@as(usize, 0), c.pagesNeeded(a, 15));
    c.grow(b, 40);
    try testing.expectEqual(@as(u32, 3), c.n_free);
    // No page is in two tables.
    for (c.table(a)) |pa| for (c.table(b)) |pb| try testing.expect(pa != pb);
    c.seqFree(a);
    try testing.expectEqual(@as(u32, 5), c.n_free);
    try testing.expect(!c.isActive(a));
    c.seqFree(b);
    try testing.expectEqual(@as(u32, 8), c.n_free);
    try testing.expectEqual(@as(u32, 0), c.stats().sequences_active);
}

test "sequence slots run out with a null, and are reused after free" {
    const c = try Cache.init(testing.allocator, testShape(.f16), 2, 2);
    defer c.deinit();
    const a = c.seqCreate().?;
    _ = c.seqCreate().?;
    try testing.expectEqual(@as(?u32, null), c.seqCreate());
    c.seqFree(a);
    try testing.expectEqual(@as(?u32, a), c.seqCreate());
}

test "storeBatch scatters rows into pages; F16 exact to f16 rounding, Q8_0 within half a step" {
    for ([_]KvType{ .f16, .q8_0 }) |t| {
        const sh = testShape(t);
        const c = try Cache.init(testing.allocator, sh, 16, 4);
        defer c.deinit();
        const a = c.seqCreate().?;
        const b = c.seqCreate().?;
        c.grow(a, 20);
        c.grow(b, 3);
        const kv_dim = sh.n_head_kv * sh.head_dim;
        const n = 5;
        var k: [n * 128]f32 = undefined;
        var v: [n * 128]f32 = undefined;
        var prng = std.Random.DefaultPrng.init(9);
        for (&k, &v) |*x, *y| {
            x.* = prng.random().float(f32) * 4 - 2;
            y.* = prng.random().float(f32) * 4 - 2;
        }
        const seq_ids = [_]i32{ @intCast(a), @intCast(b), @intCast(a), @intCast(a), @intCast(b) };
        const indices = [_]u32{ 0, 0, 15, 16, 2 };
        c.storeBatch(1, &k, &v, &seq_ids, &indices);
        var row: [64]f32 = undefined;
        for (0..n) |i| for (0..sh.n_head_kv) |h| {
            const seq: u32 = @intCast(seq_ids[i]);
            const want_k = k[i * kv_dim + h * 64 ..][0..64];
            c.readRow(seq, 1, .k, h, indices[i], &row);
            const tol: f32 = if (t == .f16) 2.0 / 1024.0 else 2.0 / 254.0 + 2.0 / 1024.0; // half a step plus the f16 rounding of d
            for (want_k, row) |w, g| try testing.expect(@abs(w - g) <= tol);
            const want_v = v[i * kv_dim + h * 64 ..][0..64];
            c.readRow(seq, 1, .v, h, indices[i], &row);
            for (want_v, row) |w, g| try testing.expect(@abs(w - g) <= tol);
        };
    }
}

test "shift keeps the head, drops the middle, moves and re-ropes the tail, returns pages" {
    const sh = testShape(.f16);
    const c = try Cache.init(testing.allocator, sh, 8, 2);
    defer c.deinit();
    const rope = ops.Rope.init(.normal, 64, 10000, 1);
    const s = c.seqCreate().?;
    const len = 40;
    c.grow(s, len);
    // Token j's K is a unit vector roped to position j; V holds j.
    var cos: [32]f32 = undefined;
    var sin: [32]f32 = undefined;
    var row: [64]f32 = undefined;
    for (0..len) |j| for (0..sh.n_layer) |l| for (0..sh.n_head_kv) |h| {
        @memset(&row, 0.125);
        rope.angles(@intCast(j), &cos, &sin);
        rope.apply(&row, 1, 64, &cos, &sin);
        c.writeRow(s, l, .k, h, j, &row);
        @memset(&row, @floatFromInt(j));
        c.writeRow(s, l, .v, h, j, &row);
    };
    c.shift(s, 4, 20, &.{&rope});
    try testing.expectEqual(@as(u32, 20), c.seqs[s].len_tokens);
    try testing.expectEqual(@as(u32, 2), c.seqs[s].n_pages);
    try testing.expectEqual(@as(u32, 6), c.n_free);
    var want: [64]f32 = undefined;
    for (0..20) |j| for (0..sh.n_layer) |l| for (0..sh.n_head_kv) |h| {
        const orig: usize = if (j < 4) j else j + 20;
        c.readRow(s, l, .v, h, j, &row);
        try testing.expectEqual(@as(f32, @floatFromInt(orig)), row[0]);
        // After the shift, K at index j is roped to position j.
        @memset(&want, 0.125);
        rope.angles(@intCast(j), &cos, &sin);
        rope.apply(&want, 1, 64, &cos, &sin);
        c.readRow(s, l, .k, h, j, &row);
        for (want, row) |w, g| try testing.expect(@abs(w - g) < 2e-3);
    };
}
