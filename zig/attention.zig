//! Causal attention of a batch of query rows over the paged KV cache, grouped-query (GQA).
//!
//! One work item is (row, kv head): the `group` query heads that share a kv head walk the
//! sequence's pages together, so each K/V row is read (and converted to f32) once for all of
//! them. The first walk finds each query's max and softmax sum online (rescaled per page); the
//! second accumulates V with the weights rounded as ggml's non-flash path rounds them.
//! An item's arithmetic depends only on its own row and sequence: batch invariant.
//! A sliding-window layer (Gemma 3) gives each query only its last `window` keys.
const std = @import("std");
const ops = @import("ops.zig");
const kv = @import("kv/pages.zig");

pub const max_group = 16;
pub const supported_head_dims = [_]usize{ 32, 64, 80, 96, 128, 256 };

pub fn headDimSupported(hd: usize) bool {
    for (supported_head_dims) |d| if (d == hd) return true;
    return false;
}

/// Consecutive batch rows of one sequence with consecutive token indices (a prefill run),
/// attended together so each K/V row is converted once for all of them.
pub const Tile = struct { row: u32, count: u32 };
pub const max_queries = 64;

/// Rows per tile for `group` query heads per kv head (a tile holds at most max_queries queries).
pub fn tileRows(group: usize) usize {
    return @max(1, @min(16, max_queries / group));
}

/// Splits rows into tiles of at most `max_rows`; returns the number of tiles written.
pub fn makeTiles(seq_ids: []const i32, indices: []const u32, max_rows: usize, tiles: []Tile) usize {
    var n_tiles: usize = 0;
    var i: usize = 0;
    while (i < seq_ids.len) {
        var c: usize = 1;
        while (c < max_rows and i + c < seq_ids.len and seq_ids[i + c] == seq_ids[i] and indices[i + c] == indices[i] + c) c += 1;
        tiles[n_tiles] = .{ .row = @intCast(i), .count = @intCast(c) };
        n_tiles += 1;
        i += c;
    }
    return n_tiles;
}

pub const Job = struct {
    cache: *const kv.Cache,
    layer: usize,
    /// n rows of n_head * head_dim query values (already roped).
    q: []const f32,
    /// n rows of n_head * head_dim outputs.
    out: []f32,
    seq_ids: []const i32,
    /// Token index of each row within its sequence; the row attends to keys [0, index].
    indices: []const u32,
    tiles: []const Tile,
    n_head: usize,
    scale: f32,
    /// Keys a query sees, itself included (sliding-window layers); 0: all keys up to itself.
    window: usize = 0,
    /// Pages of scores kept between the walks on the stack (at most `stored_pages`); tests lower
    /// it to exercise the split and score-again paths.
    store_cap: usize = stored_pages,
    /// Larger score stores on the heap, one per thread at a time: a row deep in a long context
    /// keeps all its tile's queries in one walk over the keys instead of one walk per few.
    stores: ?*const Stores = null,

    pub fn items(self: *const Job) usize {
        return self.tiles.len * self.cache.shape.n_head_kv;
    }

    /// Computes item (tile, kv head) = (item / n_head_kv, item % n_head_kv).
    pub fn run(self: *const Job, item: usize) void {
        switch (self.cache.shape.head_dim) {
            inline 32, 64, 80, 96, 128, 256 => |hd| self.runHd(hd, item),
            else => unreachable, // rejected at model create
        }
    }

    fn runHd(self: *const Job, comptime hd: usize, item: usize) void {
        const sh = self.cache.shape;
        const tile = self.tiles[item / sh.n_head_kv];
        const g = item % sh.n_head_kv;
        const group = self.n_head / sh.n_head_kv;
        const width = self.n_head * hd;
        const first_head = g * group;
        var qs: [max_queries][*]const f32 = undefined;
        var outs: [max_queries][*]f32 = undefined;
        var limits: [max_queries]usize = undefined;
        var firsts: [max_queries]usize = undefined;
        var nq: usize = 0;
        for (tile.row..tile.row + tile.count) |row| {
            for (0..group) |h| {
                qs[nq] = self.q[row * width + (first_head + h) * hd ..].ptr;
                outs[nq] = self.out[row * width + (first_head + h) * hd ..].ptr;
                limits[nq] = @as(usize, self.indices[row]) + 1;
                firsts[nq] = firstKey(limits[nq], self.window);
                nq += 1;
            }
        }
        const seq: u32 = @intCast(self.seq_ids[tile.row]);
        const ranges: KeyRanges = .{ .firsts = firsts[0..nq], .limits = limits[0..nq] };
        // The stack's store when it holds every query of the tile; else a heap store if one is free.
        var n_keys: usize = 0;
        for (limits[0..nq]) |lim| n_keys = @max(n_keys, lim);
        const want = 2 * nq * (std.math.divCeil(usize, n_keys, kv.page_tokens) catch unreachable);
        if (want > self.store_cap) if (self.stores) |st| if (st.claim()) |slot| {
            defer st.release(slot);
            return attendQueries(hd, self.cache, self.layer, seq, g, qs[0..nq], outs[0..nq], ranges, self.scale, st.slot(slot));
        };
        var store: [stored_pages]S = undefined;
        attendQueries(hd, self.cache, self.layer, seq, g, qs[0..nq], outs[0..nq], ranges, self.scale, store[0..@min(self.store_cap, stored_pages)]);
    }
};

/// Heap score stores, each `pages_each` pages of 16 scores, claimed by an attention item for its
/// duration (at most one per thread runs at a time, so `n_slots` = threads never runs out; if it
/// did, the item falls back to the stack's store). Untouched pages of a slot cost no memory.
pub const Stores = struct {
    pages_each: usize,
    mem: []S,
    taken: []std.atomic.Value(bool),

    /// Most pages a slot holds (2 MiB): 48 queries over 682 pages (10,900 keys).
    pub const max_pages_each = 32768;

    pub fn init(allocator: std.mem.Allocator, n_slots: usize, pages_each: usize) !Stores {
        const mem = try allocator.alloc(S, n_slots * pages_each);
        errdefer allocator.free(mem);
        const taken = try allocator.alloc(std.atomic.Value(bool), n_slots);
        for (taken) |*t| t.* = .init(false);
        return .{ .pages_each = pages_each, .mem = mem, .taken = taken };
    }

    pub fn deinit(self: *Stores, allocator: std.mem.Allocator) void {
        allocator.free(self.mem);
        allocator.free(self.taken);
    }

    fn claim(self: *const Stores) ?usize {
        for (self.taken, 0..) |*t, i| if (!t.swap(true, .acquire)) return i;
        return null;
    }

    fn release(self: *const Stores, i: usize) void {
        self.taken[i].store(false, .release);
    }

    fn slot(self: *const Stores, i: usize) []S {
        return self.mem[i * self.pages_each ..][0..self.pages_each];
    }
};

/// First key a query with keys [0, limit) sees through a window of `window` keys (0: no window).
pub fn firstKey(limit: usize, window: usize) usize {
    return if (window > 0 and limit > window) limit - window else 0;
}

/// Query q of a group sees keys [firsts[q], limits[q]).
const KeyRanges = struct {
    firsts: []const usize,
    limits: []const usize,

    fn slice(self: KeyRanges, lo: usize, hi: usize) KeyRanges {
        return .{ .firsts = self.firsts[lo..hi], .limits = self.limits[lo..hi] };
    }
};

const V8 = @Vector(8, f32);
const S = @Vector(kv.page_tokens, f32);

inline fn loadRow(comptime hd: usize, t: kv.KvType, src: [*]const u8, dst: *[hd / 8]V8) void {
    switch (t) {
        .f16 => {
            const h: [*]align(2) const f16 = @ptrCast(@alignCast(src));
            inline for (0..hd / 8) |i| {
                const v: @Vector(8, f16) = h[i * 8 ..][0..8].*;
                dst[i] = @floatCast(v);
            }
        },
        .q8_0 => {
            const blocks: [*]align(1) const kv.KvBlockQ8 = @ptrCast(src);
            inline for (0..hd / 8) |i| {
                const b = &blocks[i / 4];
                const q: @Vector(8, i8) = b.qs[(i % 4) * 8 ..][0..8].*;
                const d: f32 = b.d;
                dst[i] = @as(V8, @floatFromInt(q)) * @as(V8, @splat(d));
            }
        },
    }
}

/// K of one page block as f32, dimension-major: kt[d] holds dimension d of the 16 keys.
fn loadKt(comptime hd: usize, cache: *const kv.Cache, kblock: [*]const u8, count: usize, kt: *[hd][2]V8) void {
    if (cache.kTransposed()) {
        const h: [*]const f16 = @ptrCast(@alignCast(kblock));
        for (0..hd) |d| {
            const lo: @Vector(8, f16) = h[d * kv.page_tokens ..][0..8].*;
            const hi: @Vector(8, f16) = h[d * kv.page_tokens + 8 ..][0..8].*;
            kt[d] = .{ @floatCast(lo), @floatCast(hi) };
        }
        return;
    }
    // Token-major rows (Q8_0): decode each and scatter it into the columns.
    var row: [hd]f32 = undefined;
    const rb = cache.shape.rowBytes();
    for (0..count) |j| {
        kv.decodeRow(cache.shape.kv_type, kblock + j * rb, &row);
        for (0..hd) |d| {
            const cols: *[16]f32 = @ptrCast(&kt[d]);
            cols[j] = row[d];
        }
    }
}

/// Where a page's K comes from for scoring: the f32 copy `loadKt` made (dimension-major), or the
/// page's own dimension-major f16 block, converted one dimension at a time.
fn KeySource(comptime hd: usize) type {
    return union(enum) {
        kt: *const [hd][2]V8,
        f16: [*]const f16,

        /// The 16 keys' values of dimension d, as f32.
        inline fn dim(self: @This(), d: usize) [2]V8 {
            return switch (self) {
                .kt => |kt| kt[d],
                .f16 => |h| .{
                    @floatCast(@as(@Vector(8, f16), h[d * kv.page_tokens ..][0..8].*)),
                    @floatCast(@as(@Vector(8, f16), h[d * kv.page_tokens + 8 ..][0..8].*)),
                },
            };
        }
    };
}

/// Raw scores of C queries against the 16 keys of a page: one FMA per dimension and 8 keys,
/// summed over dimensions in order 0..hd (the same order for every query, alone or tiled, and
/// the same numbers from either key source).
inline fn scoreChunk(comptime hd: usize, comptime C: usize, keys: KeySource(hd), qs: []const [*]const f32, out: [][kv.page_tokens]f32) void {
    var a: [C][2]V8 = @splat(.{ @splat(0), @splat(0) });
    for (0..hd) |d| {
        const k = keys.dim(d);
        inline for (0..C) |c| {
            const b: V8 = @splat(qs[c][d]);
            a[c][0] = @mulAdd(V8, k[0], b, a[c][0]);
            a[c][1] = @mulAdd(V8, k[1], b, a[c][1]);
        }
    }
    inline for (0..C) |c| {
        out[c][0..8].* = a[c][0];
        out[c][8..16].* = a[c][1];
    }
}

/// Raw scores of every query against one page's keys into s[q]. Up to four queries read f16 K
/// straight from the page; more share one conversion into `kt`.
fn scorePage(comptime hd: usize, cache: *const kv.Cache, kblock: [*]const u8, count: usize, kt: *[hd][2]V8, qs: []const [*]const f32, s: [][kv.page_tokens]f32) void {
    const nq = qs.len;
    var keys: KeySource(hd) = .{ .kt = kt };
    if (cache.kTransposed() and nq <= 4) {
        keys = .{ .f16 = @ptrCast(@alignCast(kblock)) };
    } else loadKt(hd, cache, kblock, count, kt);
    var qi: usize = 0;
    while (qi + 4 <= nq) : (qi += 4) scoreChunk(hd, 4, keys, qs[qi..], s[qi..]);
    switch (nq - qi) {
        inline 1, 2, 3 => |c| scoreChunk(hd, c, keys, qs[qi..], s[qi..]),
        else => {},
    }
}

/// Largest lane, by a fixed tree of halvings (exact for max).
inline fn maxLanes(v: S) f32 {
    const a: @Vector(8, f32) = @max(@shuffle(f32, v, undefined, [8]i32{ 0, 1, 2, 3, 4, 5, 6, 7 }), @shuffle(f32, v, undefined, [8]i32{ 8, 9, 10, 11, 12, 13, 14, 15 }));
    const b: @Vector(4, f32) = @max(@shuffle(f32, a, undefined, [4]i32{ 0, 1, 2, 3 }), @shuffle(f32, a, undefined, [4]i32{ 4, 5, 6, 7 }));
    const c: @Vector(2, f32) = @max(@shuffle(f32, b, undefined, [2]i32{ 0, 1 }), @shuffle(f32, b, undefined, [2]i32{ 2, 3 }));
    return @max(c[0], c[1]);
}

/// Sum of the lanes by a fixed tree of halvings (the same order every time).
inline fn sumLanes(v: S) f32 {
    const a: @Vector(8, f32) = @shuffle(f32, v, undefined, [8]i32{ 0, 1, 2, 3, 4, 5, 6, 7 }) + @shuffle(f32, v, undefined, [8]i32{ 8, 9, 10, 11, 12, 13, 14, 15 });
    const b: @Vector(4, f32) = @shuffle(f32, a, undefined, [4]i32{ 0, 1, 2, 3 }) + @shuffle(f32, a, undefined, [4]i32{ 4, 5, 6, 7 });
    const c: @Vector(2, f32) = @shuffle(f32, b, undefined, [2]i32{ 0, 1 }) + @shuffle(f32, b, undefined, [2]i32{ 2, 3 });
    return c[0] + c[1];
}

/// Attention of several queries (each hd floats) over kv head g of one sequence; query qi sees
/// keys [0, limits[qi]). Each query's arithmetic is the same whichever queries share its tile
/// (pages past its limit are skipped, masked keys are -inf), so results are bit-identical.
///
/// The weights follow ggml's non-flash path (what llama.cpp runs with flash attention off):
/// softmax over the whole row, then each weight rounded to f16 before it meets V (ggml converts
/// the softmax row to V's f16 for the KQV product). The weights need the row's max and sum
/// first, so the keys are walked twice: walk 1 scores and finds the max and the sum (online, per
/// page), walk 2 accumulates V with the rounded weights. Walk 1's scores, and the exponentials it
/// took, are kept for walk 2 when they fit (queries are split into smaller groups to make them
/// fit): from the page where a query's max last grew on, those exponentials were taken against
/// the final max and are read as they are; the pages before it take theirs again. Only rows
/// longer than the store score twice. The numbers are the same either way, so the split never
/// changes a result (and equal the single-store code's before 6d4d76b bit for bit).
fn attendQueries(
    comptime hd: usize,
    cache: *const kv.Cache,
    layer: usize,
    seq: u32,
    g: usize,
    qs: []const [*]const f32,
    outs: []const [*]f32,
    keys: KeyRanges,
    scale: f32,
    store: []S,
) void {
    const nq = qs.len;
    std.debug.assert(nq <= max_queries and nq > 0);
    var n_keys: usize = 0;
    for (keys.limits) |lim| n_keys = @max(n_keys, lim);
    const n_pages = std.math.divCeil(usize, n_keys, kv.page_tokens) catch unreachable;
    // Each query keeps a page's scores and their exponentials: two halves of the store.
    if (2 * n_pages > store.len) return attendGroup(hd, cache, layer, seq, g, qs, outs, keys, scale, null);
    const per_group = @min(nq, store.len / (2 * n_pages));
    var q0: usize = 0;
    while (q0 < nq) : (q0 += per_group) {
        const q1 = @min(nq, q0 + per_group);
        attendGroup(hd, cache, layer, seq, g, qs[q0..q1], outs[q0..q1], keys.slice(q0, q1), scale, store[0 .. 2 * (q1 - q0) * n_pages]);
    }
}

/// Pages of scores (16 per page, per query) attendQueries keeps between its passes: 96 KiB of
/// stack, a 512-key prefill tile of 48 queries.
const stored_pages = 1536;

fn attendGroup(
    comptime hd: usize,
    cache: *const kv.Cache,
    layer: usize,
    seq: u32,
    g: usize,
    qs: []const [*]const f32,
    outs: []const [*]f32,
    keys: KeyRanges,
    scale: f32,
    /// Query q's page p: its scaled, masked scores at [q * n_pages + p] and walk 1's
    /// exponentials of them half the store later. Null: walk 2 scores the page again.
    store: ?[]S,
) void {
    const nv = hd / 8;
    const nq = qs.len;
    const t = cache.shape.kv_type;
    const rb = cache.shape.rowBytes();
    const pages = cache.table(seq);
    const limits = keys.limits;
    const firsts = keys.firsts;
    var n_keys: usize = 0;
    var first_key: usize = std.math.maxInt(usize);
    for (limits, firsts) |lim, f| {
        n_keys = @max(n_keys, lim);
        first_key = @min(first_key, f);
    }
    std.debug.assert(pages.len * kv.page_tokens >= n_keys and n_keys >= 1);
    const n_pages = std.math.divCeil(usize, n_keys, kv.page_tokens) catch unreachable;
    // Pages before every query's window are never read.
    const p_first = first_key / kv.page_tokens;

    // Walk 1: scores, each query's max and softmax sum online (rescaled per page). The stored
    // exponentials of the pages from the one where the max last grew were taken against the
    // final max: walk 2 reads them instead of taking them again.
    var m: [max_queries]f32 = @splat(-std.math.floatMax(f32));
    var l: [max_queries]S = @splat(@splat(0));
    var p_final: [max_queries]usize = @splat(0);
    var kt: [hd][2]V8 = undefined;
    var s: [max_queries][kv.page_tokens]f32 = undefined;
    const half = if (store) |st| st.len / 2 else 0;
    for (p_first..n_pages) |p_idx| {
        const base = p_idx * kv.page_tokens;
        const count = @min(kv.page_tokens, n_keys - base);
        prefetchAhead(cache, pages[0..n_pages], layer, g, p_idx, 0, store == null);
        scorePage(hd, cache, cache.blockPtr(pages[p_idx], layer, .k, g), count, &kt, qs, s[0..nq]);
        for (0..nq) |q| {
            // This page is past the query's last key, or before its window.
            if (limits[q] <= base or firsts[q] >= base + count) continue;
            const sv = maskedScores(s[q], firsts[q] -| base, @min(count, limits[q] - base), scale);
            const m_new = @max(m[q], maxLanes(sv));
            // The running max grew: rescale what was summed so far.
            if (m_new > m[q]) {
                l[q] *= @as(S, @splat(ops.expScalar(m[q] - m_new)));
                p_final[q] = p_idx;
            }
            m[q] = m_new;
            const e = ops.expV(kv.page_tokens, sv - @as(S, @splat(m_new)));
            l[q] += e;
            if (store) |st| {
                st[q * n_pages + p_idx] = sv;
                st[half + q * n_pages + p_idx] = e;
            }
        }
    }
    var inv: [max_queries]f32 = undefined;
    for (0..nq) |q| inv[q] = 1.0 / sumLanes(l[q]);

    // Walk 2: V, with each weight rounded to f16.
    var acc: [max_queries][nv]V8 = undefined;
    for (0..nq) |qi| acc[qi] = @splat(@splat(0));
    var vf: [kv.page_tokens][nv]V8 = undefined;
    for (p_first..n_pages) |p_idx| {
        const base = p_idx * kv.page_tokens;
        const count = @min(kv.page_tokens, n_keys - base);
        prefetchAhead(cache, pages[0..n_pages], layer, g, p_idx, 1, store == null);
        if (store == null)
            scorePage(hd, cache, cache.blockPtr(pages[p_idx], layer, .k, g), count, &kt, qs, s[0..nq]);
        const vblock = cache.blockPtr(pages[p_idx], layer, .v, g);
        for (0..count) |j| loadRow(hd, t, vblock + j * rb, &vf[j]);
        for (0..nq) |q| {
            if (limits[q] <= base or firsts[q] >= base + count) continue;
            const valid = @min(count, limits[q] - base);
            const e = if (store) |st|
                (if (p_idx >= p_final[q]) st[half + q * n_pages + p_idx] else ops.expV(kv.page_tokens, st[q * n_pages + p_idx] - @as(S, @splat(m[q]))))
            else
                ops.expV(kv.page_tokens, maskedScores(s[q], firsts[q] -| base, valid, scale) - @as(S, @splat(m[q])));
            const p = e * @as(S, @splat(inv[q]));
            const pa: [kv.page_tokens]f32 = @as(S, @floatCast(@as(@Vector(kv.page_tokens, f16), @floatCast(p))));
            const a = &acc[q];
            for (0..valid) |j| {
                const pj: V8 = @splat(pa[j]);
                inline for (0..nv) |i| a[i] = @mulAdd(V8, vf[j][i], pj, a[i]);
            }
        }
    }
    for (0..nq) |qi| {
        inline for (0..nv) |i| outs[qi][i * 8 ..][0..8].* = acc[qi][i];
    }
}

/// Pages a pass looks ahead: the blocks it will read `prefetch_pages` pages from now are
/// requested before this page's arithmetic. A sequence's pages are scattered over the pool,
/// so the hardware prefetcher, which follows one address stream, never sees the next one coming;
/// without this every page's first lines are cache misses (the batched decode step spent most
/// of its attention time waiting on them).
const prefetch_pages = 2;

/// Prefetches the block that page `p_idx + prefetch_pages` of this pass will read: K in pass 0
/// (the scoring walks, and pass 1 when it scores again), V in pass 1 (the V walk); near the end
/// of pass 0 it runs on into the first V blocks.
inline fn prefetchAhead(cache: *const kv.Cache, pages: []const u32, layer: usize, g: usize, p_idx: usize, pass: usize, score_twice: bool) void {
    const ahead = p_idx + prefetch_pages;
    if (ahead < pages.len) {
        if (pass == 0 or score_twice) prefetchBlock(cache, cache.blockPtr(pages[ahead], layer, .k, g));
        if (pass == 1) prefetchBlock(cache, cache.blockPtr(pages[ahead], layer, .v, g));
    } else if (pass == 0 and ahead - pages.len < pages.len) {
        prefetchBlock(cache, cache.blockPtr(pages[ahead - pages.len], layer, .v, g));
    }
}

inline fn prefetchBlock(cache: *const kv.Cache, block: [*]const u8) void {
    var off: usize = 0;
    const bytes = cache.shape.blockBytes();
    while (off < bytes) : (off += 64) @prefetch(block + off, .{ .rw = .read, .locality = 3, .cache = .data });
}

/// Scaled scores of one page with the keys before `first` and at or past `valid` masked to -inf.
inline fn maskedScores(raw: [kv.page_tokens]f32, first: usize, valid: usize, scale: f32) S {
    const lane: S = std.simd.iota(f32, kv.page_tokens);
    const v: S = raw;
    const seen = (lane < @as(S, @splat(@floatFromInt(valid)))) & (lane >= @as(S, @splat(@floatFromInt(first))));
    return @select(f32, seen, v * @as(S, @splat(scale)), @as(S, @splat(-std.math.inf(f32))));
}

/// Scalar twin: plain two-pass softmax attention over decoded rows, f64 sums, the weights
/// rounded to f16 as in the SIMD path.
pub fn attendScalar(job: *const Job, item: usize) void {
    const sh = job.cache.shape;
    const tile = job.tiles[item / sh.n_head_kv];
    for (tile.row..tile.row + tile.count) |row| attendScalarRow(job, row, item % sh.n_head_kv);
}

fn attendScalarRow(job: *const Job, row: usize, g: usize) void {
    const cache = job.cache;
    const sh = cache.shape;
    const hd = sh.head_dim;
    const group = job.n_head / sh.n_head_kv;
    const seq: u32 = @intCast(job.seq_ids[row]);
    const n_keys = @as(usize, job.indices[row]) + 1;
    const first = firstKey(n_keys, job.window);
    var krow: [kv.max_head_dim]f32 = undefined;
    var vrow: [kv.max_head_dim]f32 = undefined;
    var scores: [4096]f64 = undefined;
    std.debug.assert(n_keys <= scores.len);
    for (0..group) |hh| {
        const h = g * group + hh;
        const q = job.q[row * job.n_head * hd + h * hd ..][0..hd];
        var mx: f64 = -std.math.inf(f64);
        for (first..n_keys) |j| {
            cache.readRow(seq, job.layer, .k, g, j, krow[0..hd]);
            var d: f64 = 0;
            for (q, krow[0..hd]) |a, b| d += @as(f64, a) * b;
            scores[j] = d * job.scale;
            mx = @max(mx, scores[j]);
        }
        var sum: f64 = 0;
        for (scores[first..n_keys]) |*sc| {
            sc.* = @exp(sc.* - mx);
            sum += sc.*;
        }
        const o = job.out[row * job.n_head * hd + h * hd ..][0..hd];
        var acc: [kv.max_head_dim]f64 = @splat(0);
        for (first..n_keys) |j| {
            cache.readRow(seq, job.layer, .v, g, j, vrow[0..hd]);
            const w: f16 = @floatCast(scores[j] / sum);
            for (0..hd) |i| acc[i] += @as(f64, w) * vrow[i];
        }
        for (o, 0..) |*x, i| x.* = @floatCast(acc[i]);
    }
}

test "SIMD attention matches the scalar twin over several pages, GQA, both KV types; tiles are bit-identical to single rows" {
    const testing = std.testing;
    for ([_]kv.KvType{ .f16, .q8_0 }) |t| {
        for ([_]usize{ 64, 128 }) |hd| {
            const sh: kv.Shape = .{ .n_layer = 2, .n_head_kv = 2, .head_dim = hd, .kv_type = t };
            const cache = try kv.Cache.init(testing.allocator, sh, 16, 2);
            defer cache.deinit();
            const a = cache.seqCreate().?;
            const b = cache.seqCreate().?;
            const len_a = 53;
            const len_b = 5;
            cache.grow(a, len_a);
            cache.grow(b, len_b);
            var prng = std.Random.DefaultPrng.init(hd);
            const rng = prng.random();
            const kv_dim = 2 * hd;
            const n_store = len_a + len_b;
            const kbuf = try testing.allocator.alloc(f32, n_store * kv_dim);
            defer testing.allocator.free(kbuf);
            const vbuf = try testing.allocator.alloc(f32, n_store * kv_dim);
            defer testing.allocator.free(vbuf);
            for (kbuf, vbuf) |*x, *y| {
                x.* = rng.float(f32) * 2 - 1;
                y.* = rng.float(f32) * 2 - 1;
            }
            var sids: [n_store]i32 = undefined;
            var idx: [n_store]u32 = undefined;
            for (0..n_store) |i| {
                sids[i] = @intCast(if (i < len_a) a else b);
                idx[i] = @intCast(if (i < len_a) i else i - len_a);
            }
            cache.storeBatch(1, kbuf, vbuf, &sids, &idx);
            // Query rows: a at 0, then a run 13..18 (two tiles across a page edge), b at 4, a at 52.
            // 6 query heads over 2 kv heads.
            const n_head = 6;
            const ia: i32 = @intCast(a);
            const rows_sid = [_]i32{ ia, ia, ia, ia, ia, ia, ia, @intCast(b), ia };
            const rows_idx = [_]u32{ 0, 13, 14, 15, 16, 17, 18, 4, 52 };
            var tiles: [rows_sid.len]Tile = undefined;
            const n_tiles = makeTiles(&rows_sid, &rows_idx, 4, &tiles);
            try testing.expectEqual(@as(usize, 5), n_tiles);
            var singles: [rows_sid.len]Tile = undefined;
            for (&singles, 0..) |*tl, i| tl.* = .{ .row = @intCast(i), .count = 1 };
            const q = try testing.allocator.alloc(f32, rows_sid.len * n_head * hd);
            defer testing.allocator.free(q);
            for (q) |*x| x.* = (rng.float(f32) * 2 - 1) * 3;
            const out1 = try testing.allocator.alloc(f32, q.len);
            defer testing.allocator.free(out1);
            const out2 = try testing.allocator.alloc(f32, q.len);
            defer testing.allocator.free(out2);
            const out3 = try testing.allocator.alloc(f32, q.len);
            defer testing.allocator.free(out3);
            var job: Job = .{ .cache = cache, .layer = 1, .q = q, .out = out1, .seq_ids = &rows_sid, .indices = &rows_idx, .tiles = tiles[0..n_tiles], .n_head = n_head, .scale = 1.0 / @sqrt(@as(f32, @floatFromInt(hd))) };
            for (0..job.items()) |it| job.run(it);
            job.out = out2;
            for (0..job.items()) |it| attendScalar(&job, it);
            for (out1, out2) |x, y| try testing.expect(@abs(x - y) <= 1e-4 + 1e-4 * @abs(y));
            // Batch invariance: one row per tile gives bit-identical results.
            job.out = out3;
            job.tiles = &singles;
            for (0..job.items()) |it| job.run(it);
            try testing.expectEqualSlices(f32, out1, out3);
            // So do the smaller score stores: tiles split into query groups (8 pages), and
            // scoring twice (2 pages, shorter than sequence a's 4).
            job.tiles = tiles[0..n_tiles];
            for ([_]usize{ 8, 2 }) |cap| {
                job.store_cap = cap;
                for (0..job.items()) |it| job.run(it);
                try testing.expectEqualSlices(f32, out1, out3);
            }
            // A heap store holds what the stack's (2 pages) cannot: same results; with its only
            // slot taken the item falls back to the stack's store.
            var stores = try Stores.init(testing.allocator, 1, 64);
            defer stores.deinit(testing.allocator);
            job.stores = &stores;
            for ([_]bool{ false, true }) |taken| {
                stores.taken[0].store(taken, .release);
                @memset(out3, 0);
                for (0..job.items()) |it| job.run(it);
                try testing.expectEqualSlices(f32, out1, out3);
            }
            job.stores = null;
            job.store_cap = stored_pages;
            // A sliding window (20 keys: starts mid-page, and skips whole pages for row 52)
            // against the scalar twin, and tiles against single rows again.
            job.window = 20;
            job.out = out1;
            for (0..job.items()) |it| job.run(it);
            job.out = out2;
            for (0..job.items()) |it| attendScalar(&job, it);
            for (out1, out2) |x, y| try testing.expect(@abs(x - y) <= 1e-4 + 1e-4 * @abs(y));
            job.out = out3;
            job.tiles = &singles;
            for (0..job.items()) |it| job.run(it);
            try testing.expectEqualSlices(f32, out1, out3);
            job.window = 0;
        }
    }
}
