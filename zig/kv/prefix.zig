//! Prefix sharing over the paged KV cache, and the hot tier that spills to the cold tier (kv/tier.zig).
//!
//! Each page of a published sequence is an entry keyed by a hash chain: key(i) = hash(key(i-1),
//! tokens of page i), key(-1) = the model tag, so equal keys mean equal tokens at equal
//! positions, hence equal K and V (the forward pass is batch invariant). A full page is shared by
//! reference count: a new sequence with a known prefix appends the page to its block table and
//! never writes it (its next token goes to a fresh page). The last, partial page is shared by
//! copy-on-write: the new sequence gets a private copy, because it will append into it.
//! A context shift rewrites pages, so `makePrivate` copies any shared page a shift would touch.
//!
//! Hot tier: entries holding a reference on a pool page, at most hot_budget_bytes of them,
//! chosen by ARC (kv/evict.zig). An entry pushed out of the hot tier is written to the cold tier
//! (if there is one) and its reference is dropped; when the pool runs out, `reclaim` does the same
//! to pages only the index still holds. A cold entry is read back (and verified) on its next use;
//! a bad or missing record ends the reused prefix there and the caller recomputes the rest.
//! `persist` writes every entry to the cold tier plus a manifest (temp file, fsync, rename), which
//! `init` reads back so the prefix cache survives a restart; a torn manifest is ignored.
const std = @import("std");
const kv = @import("pages.zig");
const tier = @import("tier.zig");
const ops = @import("../ops.zig");
const evict = @import("evict.zig");
const portable = @import("portable.zig");
const c = std.c;
const simd = @import("../simd.zig");

const none: u32 = std.math.maxInt(u32);
const page_tokens = kv.page_tokens;

pub fn chainKey(parent: u64, tokens: []const u32) u64 {
    std.debug.assert(tokens.len >= 1 and tokens.len <= page_tokens);
    var h = std.hash.Wyhash.init(parent);
    h.update(std.mem.sliceAsBytes(tokens));
    // Length is folded in so a partial page never collides with a full one of the same prefix.
    h.update(std.mem.asBytes(&@as(u32, @intCast(tokens.len))));
    return h.final();
}

pub const Entry = struct {
    key: u64,
    parent: u64,
    n_tokens: u32,
    tokens: [page_tokens]u32,
    /// Pool page the index holds a reference on (hot), or none.
    page: u32 = none,
    /// Cold-tier slot, or none.
    slot: u32 = none,
    /// Imported for a request not yet admitted (importPage .. unpin): the page holds a second
    /// reference (the pin's) and the entry is outside the eviction policy, so neither the policy
    /// nor `reclaim` can push it out before the request attaches it.
    pinned: bool = false,
};

pub const Config = struct {
    hot_budget_bytes: u64,
    /// Root of every hash chain: distinguishes models (and KV types) sharing a cache directory.
    model_tag: u64,
    /// Cold tier directory; null = RAM only (entries pushed out of the hot tier are dropped).
    dir: ?[]const u8 = null,
    cold_max_bytes: u64 = 0,
    max_entries: u32 = 1 << 16,
};

pub const Stats = extern struct {
    lookups: u64 = 0,
    tokens_reused: u64 = 0,
    pages_shared: u64 = 0,
    pages_copied: u64 = 0,
    hot_hits: u64 = 0,
    cold_hits: u64 = 0,
    cold_misses: u64 = 0,
    spilled: u64 = 0,
    dropped: u64 = 0,
    reclaimed: u64 = 0,
    hot_pages: u64 = 0,
    hot_capacity_pages: u64 = 0,
    entries: u64 = 0,
    manifest_entries_loaded: u64 = 0,
    /// 1 when a manifest was found but rejected (torn, wrong model, bad checksum).
    manifest_rejected: u64 = 0,
    cold: tier.Stats = .{},
};

pub const PrefixCache = struct {
    allocator: std.mem.Allocator,
    cache: *kv.Cache,
    cold: ?*tier.ColdTier,
    entries: []Entry,
    free_idx: []u32,
    n_free_idx: usize,
    map: std.AutoHashMapUnmanaged(u64, u32),
    policy: evict.Arc,
    victim_buf: []u64,
    hot_capacity_pages: usize,
    /// Entries pinned now; at most hot_capacity_pages (the hot tier's size bounds what waits).
    pinned_pages: usize = 0,
    model_tag: u64,
    /// Sequences whose pages were re-roped by a shift: their pages no longer match their tokens.
    shifted: []bool,
    stats: Stats = .{},

    pub fn init(allocator: std.mem.Allocator, cache: *kv.Cache, cfg: Config) !*PrefixCache {
        const page_bytes = cache.shape.pageSizeBytes();
        // The hot tier holds pool pages, so a budget past the pool buys nothing (and would size
        // the policy's tables by the budget: a huge one exhausted memory).
        const hot_pages: usize = @max(1, @min(cfg.hot_budget_bytes / page_bytes, cache.pages_total));
        const self = try allocator.create(PrefixCache);
        errdefer allocator.destroy(self);
        const entries = try allocator.alloc(Entry, cfg.max_entries);
        errdefer allocator.free(entries);
        const free_idx = try allocator.alloc(u32, cfg.max_entries);
        errdefer allocator.free(free_idx);
        for (free_idx, 0..) |*f, i| f.* = @intCast(cfg.max_entries - 1 - i);
        var map: std.AutoHashMapUnmanaged(u64, u32) = .empty;
        try map.ensureTotalCapacity(allocator, cfg.max_entries);
        errdefer map.deinit(allocator);
        var policy = try evict.Arc.init(allocator, hot_pages);
        errdefer policy.deinit(allocator);
        const victim_buf = try allocator.alloc(u64, hot_pages);
        errdefer allocator.free(victim_buf);
        const shifted = try allocator.alloc(bool, cache.seqs.len);
        errdefer allocator.free(shifted);
        @memset(shifted, false);
        const cold: ?*tier.ColdTier = if (cfg.dir) |d|
            try tier.ColdTier.open(allocator, d, @intCast(@backingInt(cache.shape.kv_type)), page_bytes, .{ .max_bytes = cfg.cold_max_bytes })
        else
            null;
        self.* = .{
            .allocator = allocator,
            .cache = cache,
            .cold = cold,
            .entries = entries,
            .free_idx = free_idx,
            .n_free_idx = cfg.max_entries,
            .map = map,
            .policy = policy,
            .victim_buf = victim_buf,
            .hot_capacity_pages = hot_pages,
            .model_tag = cfg.model_tag,
            .shifted = shifted,
        };
        self.stats.hot_capacity_pages = hot_pages;
        if (cold != null) self.loadManifest();
        return self;
    }

    /// Drops every reference the index holds (pages still used by sequences stay with them).
    pub fn deinit(self: *PrefixCache) void {
        var it = self.map.valueIterator();
        while (it.next()) |idx| {
            const e = &self.entries[idx.*];
            if (e.page != none) releasePage(self.cache, e.page);
            if (e.pinned) releasePage(self.cache, e.page);
        }
        if (self.cold) |t| t.close();
        const a = self.allocator;
        a.free(self.entries);
        a.free(self.free_idx);
        self.map.deinit(a);
        self.policy.deinit(a);
        a.free(self.victim_buf);
        a.free(self.shifted);
        a.destroy(self);
    }

    fn pageBytes(self: *const PrefixCache, page: u32) []u8 {
        const n = self.cache.shape.pageSizeBytes();
        return self.cache.data[@as(usize, page) * n ..][0..n];
    }

    // ------------------------------------------------ pool plumbing

    fn rentPage(cache: *kv.Cache) ?u32 {
        if (cache.n_free == 0) return null;
        cache.n_free -= 1;
        const page = cache.free_stack[cache.n_free];
        std.debug.assert(cache.refcount[page] == 0);
        cache.refcount[page] = 1;
        return page;
    }

    fn releasePage(cache: *kv.Cache, page: u32) void {
        std.debug.assert(cache.refcount[page] > 0);
        cache.refcount[page] -= 1;
        if (cache.refcount[page] == 0) {
            cache.free_stack[cache.n_free] = page;
            cache.n_free += 1;
        }
    }

    fn appendPage(cache: *kv.Cache, seq: u32, page: u32) void {
        const s = &cache.seqs[seq];
        cache.tables[@as(usize, seq) * cache.pages_total + s.n_pages] = page;
        s.n_pages += 1;
    }

    // ------------------------------------------------ entries

    fn removeEntry(self: *PrefixCache, idx: u32) void {
        const e = &self.entries[idx];
        std.debug.assert(!e.pinned);
        if (e.page != none) {
            self.policy.remove(e.key);
            releasePage(self.cache, e.page);
            self.stats.hot_pages -= 1;
        }
        if (e.slot != none) if (self.cold) |t| t.release(e.slot, e.key);
        _ = self.map.remove(e.key);
        self.free_idx[self.n_free_idx] = idx;
        self.n_free_idx += 1;
        self.stats.entries -= 1;
    }

    /// Moves an entry out of the hot tier: to the cold tier when it takes the page, else dropped.
    fn demote(self: *PrefixCache, key: u64) void {
        const idx = self.map.get(key) orelse return;
        const e = &self.entries[idx];
        if (e.page == none) return;
        if (e.slot == none) if (self.cold) |t| {
            if (t.put(e.key, e.n_tokens, self.pageBytes(e.page))) |slot| {
                e.slot = slot;
                self.stats.spilled += 1;
            }
        };
        if (e.slot == none) {
            self.stats.dropped += 1;
            self.removeEntry(idx);
            return;
        }
        releasePage(self.cache, e.page);
        e.page = none;
        self.stats.hot_pages -= 1;
    }

    /// Records a use of a hot entry with the policy; demotes whatever the policy pushes out.
    /// A pinned entry is outside the policy until `unpin` hands it over.
    fn touch(self: *PrefixCache, key: u64) void {
        if (self.map.get(key)) |idx| if (self.entries[idx].pinned) return;
        const a = self.policy.access(key);
        if (a.evicted) |ev| if (ev != key) self.demote(ev);
    }

    /// The entry's pool page, reading it back from the cold tier when needed; null on a miss
    /// (the entry is then removed) or when no page is free.
    fn ensureHot(self: *PrefixCache, idx: u32) ?u32 {
        const e = &self.entries[idx];
        if (e.page != none) {
            self.stats.hot_hits += 1;
            self.touch(e.key);
            return e.page;
        }
        const t = self.cold orelse return null;
        if (self.cache.n_free == 0) self.reclaim(1);
        const page = rentPage(self.cache) orelse return null;
        if (!t.get(e.slot, e.key, self.pageBytes(page))) {
            releasePage(self.cache, page);
            self.stats.cold_misses += 1;
            e.slot = none; // the tier freed it
            self.removeEntry(idx);
            return null;
        }
        self.stats.cold_hits += 1;
        e.page = page;
        self.stats.hot_pages += 1;
        self.touch(e.key);
        return page;
    }

    fn findEntry(self: *const PrefixCache, parent: u64, tokens: []const u32) ?u32 {
        const key = chainKey(parent, tokens);
        const idx = self.map.get(key) orelse return null;
        const e = &self.entries[idx];
        // A hash collision must never hand out someone else's KV.
        if (e.parent != parent or e.n_tokens != tokens.len or !std.mem.eql(u32, e.tokens[0..tokens.len], tokens)) return null;
        return idx;
    }

    // ------------------------------------------------ the public operations

    /// Fills the empty sequence `seq` with the longest cached prefix of `tokens`, leaving at least
    /// one token for the caller to compute (it needs logits). Returns the tokens reused.
    pub fn attach(self: *PrefixCache, seq: u32, tokens: []const u32) usize {
        const cache = self.cache;
        std.debug.assert(cache.seqs[seq].active and cache.seqs[seq].n_pages == 0);
        self.shifted[seq] = false;
        self.stats.lookups += 1;
        if (tokens.len < 2) return 0;
        const limit = tokens.len - 1;
        var parent = self.model_tag;
        var reused: usize = 0;
        while (reused + page_tokens <= limit) {
            const idx = self.findEntry(parent, tokens[reused..][0..page_tokens]) orelse break;
            const page = self.ensureHot(idx) orelse break;
            cache.refcount[page] += 1;
            appendPage(cache, seq, page);
            parent = self.entries[idx].key;
            reused += page_tokens;
            self.stats.pages_shared += 1;
        }
        // Copy-on-write of the last partial page. A whole cached page whose first tokens are the
        // rest of the prompt serves too (the same prompt sent twice), else the longest registered
        // partial page that fits.
        const rest = limit - reused;
        if (rest > 0) {
            var found: ?struct { idx: u32, n: usize } = null;
            if (reused + page_tokens <= tokens.len) {
                if (self.findEntry(parent, tokens[reused..][0..page_tokens])) |idx| found = .{ .idx = idx, .n = rest };
            }
            if (found == null) {
                var n: usize = @min(page_tokens - 1, tokens.len - reused);
                while (n >= 1) : (n -= 1) {
                    if (self.findEntry(parent, tokens[reused..][0..n])) |idx| {
                        found = .{ .idx = idx, .n = @min(n, rest) };
                        break;
                    }
                }
            }
            if (found) |f| cow: {
                const src = self.ensureHot(f.idx) orelse break :cow;
                if (cache.n_free == 0) self.reclaim(1);
                const page = rentPage(cache) orelse break :cow;
                simd.copy(self.pageBytes(page), self.pageBytes(src));
                appendPage(cache, seq, page);
                reused += f.n;
                self.stats.pages_copied += 1;
            }
        }
        cache.seqs[seq].len_tokens = @intCast(reused);
        self.stats.tokens_reused += reused;
        return reused;
    }

    /// Registers the pages of `seq` holding `tokens` (its first tokens.len tokens: all of them, or a
    /// prefix) so later sequences can reuse them. Returns the number of pages registered or
    /// refreshed; 0 for a shifted sequence.
    pub fn publish(self: *PrefixCache, seq: u32, tokens: []const u32) usize {
        const cache = self.cache;
        const s = cache.seqs[seq];
        std.debug.assert(s.active and tokens.len <= s.len_tokens);
        if (self.shifted[seq]) return 0;
        const table = cache.table(seq);
        var parent = self.model_tag;
        var done: usize = 0;
        var i: usize = 0;
        while (i < tokens.len) : (i += page_tokens) {
            const chunk = tokens[i..@min(i + page_tokens, tokens.len)];
            const page = table[i / page_tokens];
            const key = chainKey(parent, chunk);
            if (self.map.get(key)) |idx| {
                const e = &self.entries[idx];
                if (e.parent != parent or e.n_tokens != chunk.len or !std.mem.eql(u32, e.tokens[0..chunk.len], chunk)) break;
                if (e.page == none) {
                    cache.refcount[page] += 1;
                    e.page = page;
                    self.stats.hot_pages += 1;
                }
                self.touch(key);
            } else {
                if (self.n_free_idx == 0) break;
                self.n_free_idx -= 1;
                const idx = self.free_idx[self.n_free_idx];
                var e: Entry = .{ .key = key, .parent = parent, .n_tokens = @intCast(chunk.len), .tokens = @splat(0), .page = page };
                @memcpy(e.tokens[0..chunk.len], chunk);
                self.entries[idx] = e;
                self.map.putAssumeCapacity(key, idx);
                cache.refcount[page] += 1;
                self.stats.entries += 1;
                self.stats.hot_pages += 1;
                self.touch(key);
            }
            parent = key;
            done += 1;
        }
        return done;
    }

    /// Frees pool pages until `need` are free (or nothing more can go), demoting pages that only
    /// the index holds, least valuable first.
    pub fn reclaim(self: *PrefixCache, need: usize) void {
        while (self.cache.n_free < need) {
            const n = self.policy.victims(self.victim_buf);
            var freed = false;
            for (self.victim_buf[0..n]) |key| {
                const idx = self.map.get(key) orelse continue;
                const page = self.entries[idx].page;
                if (page == none or self.cache.refcount[page] != 1) continue;
                self.policy.remove(key);
                self.demote(key);
                self.stats.reclaimed += 1;
                freed = true;
                if (self.cache.n_free >= need) return;
            }
            if (!freed) return;
        }
    }

    /// Moves the hot pages on the hash chain of `tokens`, from page `from_page` on, to the cold tier
    /// now (a conversation that went idle), freeing their pool pages. Pages a sequence still uses
    /// stay, and so does a page the tier cannot take (it is kept hot rather than lost). Returns
    /// the pages that left RAM.
    pub fn spill(self: *PrefixCache, tokens: []const u32, from_page: usize) usize {
        const t = self.cold orelse return 0;
        var parent = self.model_tag;
        var moved: usize = 0;
        var i: usize = 0;
        var page_i: usize = 0;
        while (i < tokens.len) : ({
            i += page_tokens;
            page_i += 1;
        }) {
            const chunk = tokens[i..@min(i + page_tokens, tokens.len)];
            const idx = self.findEntry(parent, chunk) orelse break;
            const e = &self.entries[idx];
            parent = e.key;
            if (page_i < from_page or e.page == none or self.cache.refcount[e.page] != 1) continue;
            if (e.slot == none) {
                var slot = t.put(e.key, e.n_tokens, self.pageBytes(e.page));
                if (slot == null) {
                    // Writer behind (an idle spill is off the decode path): wait for it, try once more.
                    t.flush();
                    slot = t.put(e.key, e.n_tokens, self.pageBytes(e.page));
                }
                e.slot = slot orelse continue;
                self.stats.spilled += 1;
            }
            self.policy.remove(e.key);
            releasePage(self.cache, e.page);
            e.page = none;
            self.stats.hot_pages -= 1;
            moved += 1;
        }
        return moved;
    }

    // ------------------------------------------------ portable pages (a tier shared by replicas)

    /// Writes the chain keys of the whole pages of `tokens` to `keys` (at most keys.len pages).
    /// Returns the pages written and how many leading ones this cache holds (in RAM or on SSD).
    pub fn chain(self: *const PrefixCache, tokens: []const u32, keys: []u64) struct { pages: usize, local: usize } {
        const n = @min(tokens.len / page_tokens, keys.len);
        var parent = self.model_tag;
        var local: usize = 0;
        for (0..n) |p| {
            const chunk = tokens[p * page_tokens ..][0..page_tokens];
            if (local == p and self.findEntry(parent, chunk) != null) local += 1;
            parent = chainKey(parent, chunk);
            keys[p] = parent;
        }
        return .{ .pages = n, .local = local };
    }

    fn portableExpect(self: *const PrefixCache, parent: u64, key: u64, tokens: []const u32) portable.Expect {
        return .{
            .kv_type = @intCast(@backingInt(self.cache.shape.kv_type)),
            .page_bytes = self.cache.shape.pageSizeBytes(),
            .model_tag = self.model_tag,
            .parent = parent,
            .key = key,
            .tokens = tokens,
        };
    }

    /// Writes whole page `page_i` of the cached chain of `tokens` as a portable record into `out`
    /// (portable.recordBytes(page bytes) long). A page on SSD is read back (and verified) first.
    pub fn exportPage(self: *PrefixCache, tokens: []const u32, page_i: usize, out: []u8) error{ NotCached, BadSize }!void {
        if (out.len != portable.recordBytes(self.cache.shape.pageSizeBytes())) return error.BadSize;
        if ((page_i + 1) * page_tokens > tokens.len) return error.NotCached;
        var parent = self.model_tag;
        var idx: u32 = undefined;
        for (0..page_i + 1) |p| {
            if (p > 0) parent = self.entries[idx].key;
            idx = self.findEntry(parent, tokens[p * page_tokens ..][0..page_tokens]) orelse return error.NotCached;
        }
        // A hot page is read in place, without counting a use: exporting is not reuse.
        const page = if (self.entries[idx].page != none) self.entries[idx].page else self.ensureHot(idx) orelse return error.NotCached;
        const e = &self.entries[idx];
        portable.write(out, self.portableExpect(e.parent, e.key, e.tokens[0..e.n_tokens]), self.pageBytes(page));
    }

    /// Adds whole page `page_i` of `tokens` from a portable record to the hot tier, after checking
    /// it against the chain of `tokens` and this model (error.Corrupt: not used), pinned until
    /// `unpin`: the request that asked for it waits for admission meanwhile, and in a full cache a
    /// page used once so far is the first the policy would push out (each page of an import
    /// would push out the one before, the chain's head first). Returns false when the page was
    /// already cached (not pinned); error.PinLimit when as many pages as the hot tier holds are
    /// pinned already.
    pub fn importPage(self: *PrefixCache, tokens: []const u32, page_i: usize, rec: []const u8) error{ Corrupt, OutOfRange, KvFull, NoEntrySlot, PinLimit }!bool {
        if ((page_i + 1) * page_tokens > tokens.len) return error.OutOfRange;
        var parent = self.model_tag;
        for (0..page_i) |p| parent = chainKey(parent, tokens[p * page_tokens ..][0..page_tokens]);
        const chunk = tokens[page_i * page_tokens ..][0..page_tokens];
        const key = chainKey(parent, chunk);
        const payload = portable.verify(rec, self.portableExpect(parent, key, chunk)) catch return error.Corrupt;
        if (self.map.contains(key)) return false;
        if (self.pinned_pages >= self.hot_capacity_pages) return error.PinLimit;
        if (self.n_free_idx == 0) return error.NoEntrySlot;
        if (self.cache.n_free == 0) self.reclaim(1);
        const page = rentPage(self.cache) orelse return error.KvFull;
        simd.copy(self.pageBytes(page), payload);
        self.n_free_idx -= 1;
        const idx = self.free_idx[self.n_free_idx];
        var e: Entry = .{ .key = key, .parent = parent, .n_tokens = page_tokens, .tokens = @splat(0), .page = page, .pinned = true };
        @memcpy(e.tokens[0..page_tokens], chunk);
        self.entries[idx] = e;
        self.map.putAssumeCapacity(key, idx);
        // The rented page's reference is the index's; the pin holds a second one.
        self.cache.refcount[page] += 1;
        self.pinned_pages += 1;
        self.stats.entries += 1;
        self.stats.hot_pages += 1;
        std.debug.assert(self.pinned_pages <= self.hot_capacity_pages);
        return true;
    }

    /// Ends the pin of imported page `page_i` of `tokens`: the entry joins the eviction policy,
    /// as a page used twice when `used` (the import and the request that attached it), else
    /// once (its request was cancelled before admission). Returns false when it was not pinned.
    pub fn unpin(self: *PrefixCache, tokens: []const u32, page_i: usize, used: bool) bool {
        if ((page_i + 1) * page_tokens > tokens.len) return false;
        var parent = self.model_tag;
        for (0..page_i) |p| parent = chainKey(parent, tokens[p * page_tokens ..][0..page_tokens]);
        const idx = self.findEntry(parent, tokens[page_i * page_tokens ..][0..page_tokens]) orelse return false;
        const e = &self.entries[idx];
        if (!e.pinned) return false;
        std.debug.assert(e.page != none and self.cache.refcount[e.page] >= 2);
        e.pinned = false;
        self.pinned_pages -= 1;
        releasePage(self.cache, e.page);
        const key = e.key;
        const a = if (used) self.policy.accessReused(key) else self.policy.access(key);
        if (a.evicted) |ev| if (ev != key) self.demote(ev);
        return true;
    }

    /// Pool pages only the index holds: what `reclaim` could free for new sequences.
    pub fn reclaimable(self: *const PrefixCache) usize {
        var n: usize = 0;
        var it = self.map.valueIterator();
        while (it.next()) |idx| {
            const page = self.entries[idx.*].page;
            if (page != none and self.cache.refcount[page] == 1) n += 1;
        }
        return n;
    }

    /// Before a shift of `seq` (keep `keep` tokens, drop `drop`): shared pages that the shift
    /// rewrites, or that stay and will be appended into, get a private copy, so the shift never
    /// changes another sequence's (or the index's) KV. Pages dropped whole are not copied.
    /// False if the pool ran out.
    pub fn makePrivate(self: *PrefixCache, seq: u32, keep: usize, drop: usize) bool {
        const cache = self.cache;
        if (drop == 0) return true;
        // Only rows after the dropped range move (and re-rope); dropping the tail (rejected
        // speculative drafts) leaves every kept row as it was, so the sequence stays publishable.
        if (keep + drop < cache.seqs[seq].len_tokens) self.shifted[seq] = true;
        const base = @as(usize, seq) * cache.pages_total;
        const new_len = cache.seqs[seq].len_tokens - drop;
        const first = keep / page_tokens;
        const end = @max((new_len + page_tokens - 1) / page_tokens, if (keep % page_tokens != 0) first + 1 else first);
        for (first..@min(end, cache.seqs[seq].n_pages)) |i| {
            const page = cache.tables[base + i];
            if (cache.refcount[page] <= 1) continue;
            if (cache.n_free == 0) self.reclaim(1);
            // The reclaim may have dropped the index's reference: check again.
            if (cache.refcount[page] <= 1) continue;
            const copy = rentPage(cache) orelse return false;
            simd.copy(self.pageBytes(copy), self.pageBytes(page));
            releasePage(cache, page);
            cache.tables[base + i] = copy;
        }
        return true;
    }

    pub fn snapshot(self: *PrefixCache) Stats {
        var s = self.stats;
        if (self.cold) |t| s.cold = t.statsSnapshot();
        return s;
    }

    // ------------------------------------------------ manifest

    const manifest_magic: u32 = 0x4d56_4b48; // "HKVM"
    const manifest_version: u32 = 1;

    const ManifestHeader = extern struct {
        magic: u32,
        version: u32,
        kv_type: u32,
        page_bytes: u32,
        model_tag: u64,
        n_entries: u64,
        /// Wyhash of this header (checksum zero) and the entry records.
        checksum: u64,
    };

    const ManifestEntry = extern struct {
        key: u64,
        parent: u64,
        slot: u32,
        n_tokens: u32,
        tokens: [page_tokens]u32,
    };

    fn manifestChecksum(h: ManifestHeader, body: []const u8) u64 {
        var hh = h;
        hh.checksum = 0;
        var x = std.hash.Wyhash.init(0x4d41_4e49);
        x.update(std.mem.asBytes(&hh));
        x.update(body);
        return x.final();
    }

    /// Writes every entry to the cold tier and the manifest crash-safely. Returns the entries listed.
    pub fn persist(self: *PrefixCache) !usize {
        const t = self.cold orelse return error.NoColdTier;
        var it = self.map.valueIterator();
        while (it.next()) |idx| {
            const e = &self.entries[idx.*];
            if (e.slot == none and e.page != none) {
                if (t.put(e.key, e.n_tokens, self.pageBytes(e.page))) |slot| e.slot = slot else {
                    // Writer behind: wait for it and try once more.
                    t.flush();
                    if (t.put(e.key, e.n_tokens, self.pageBytes(e.page))) |slot| e.slot = slot;
                }
            }
        }
        return self.checkpoint();
    }

    /// Writes the manifest of the entries already on the cold tier (waiting for queued writes and
    /// fsyncing the slabs first), without writing hot pages: cheap enough to run while serving,
    /// so a crash loses at most what went to SSD since. Returns the entries listed.
    pub fn checkpoint(self: *PrefixCache) !usize {
        const t = self.cold orelse return error.NoColdTier;
        t.flush();
        // A slab deleted or truncated under the server must not be listed: after a restart
        // its pages would be gone.
        t.checkFiles();
        t.sync();
        var list: std.ArrayList(ManifestEntry) = .empty;
        defer list.deinit(self.allocator);
        var it = self.map.valueIterator();
        while (it.next()) |idx| {
            const e = &self.entries[idx.*];
            if (e.slot == none or !t.isStored(e.slot, e.key)) continue;
            try list.append(self.allocator, .{ .key = e.key, .parent = e.parent, .slot = e.slot, .n_tokens = e.n_tokens, .tokens = e.tokens });
        }
        const body = std.mem.sliceAsBytes(list.items);
        var h: ManifestHeader = .{ .magic = manifest_magic, .version = manifest_version, .kv_type = @backingInt(self.cache.shape.kv_type), .page_bytes = @intCast(t.page_bytes), .model_tag = self.model_tag, .n_entries = list.items.len, .checksum = 0 };
        h.checksum = manifestChecksum(h, body);
        var tmp_buf: [tier.max_path]u8 = undefined;
        var dst_buf: [tier.max_path]u8 = undefined;
        const tmp = tier.pathZ(&tmp_buf, "{s}/manifest.tmp", .{t.dir}) orelse return error.PathTooLong;
        const dst = tier.pathZ(&dst_buf, "{s}/manifest", .{t.dir}) orelse return error.PathTooLong;
        const flags: c.O = .{ .ACCMODE = .WRONLY, .CREAT = true, .TRUNC = true, .CLOEXEC = true };
        var fd = c.open(tmp, flags, @as(c_uint, 0o644));
        // The directory was deleted under the server: make it again.
        if (fd < 0 and c._errno().* == @backingInt(c.E.NOENT) and tier.mkdirP(t.dir)) fd = c.open(tmp, flags, @as(c_uint, 0o644));
        if (fd < 0) return error.CannotWriteManifest;
        if (tier.testPauseWanted("manifest")) {
            _ = tier.pwriteAll(fd, std.mem.asBytes(&h), 0);
            _ = tier.pwriteAll(fd, body[0 .. body.len / 2], @sizeOf(ManifestHeader));
            tier.testPause(t.dir, "manifest");
        }
        const ok = tier.pwriteAll(fd, std.mem.asBytes(&h), 0) and tier.pwriteAll(fd, body, @sizeOf(ManifestHeader)) and c.fsync(fd) == 0;
        _ = c.close(fd);
        if (!ok or c.rename(tmp, dst) != 0) {
            _ = c.unlink(tmp);
            return error.CannotWriteManifest;
        }
        tier.fsyncDir(t.dir);
        return list.items.len;
    }

    /// Reads the manifest, if any, and adopts its entries as cold. Anything wrong: ignored.
    fn loadManifest(self: *PrefixCache) void {
        const t = self.cold.?;
        var path_buf: [tier.max_path]u8 = undefined;
        const path = tier.pathZ(&path_buf, "{s}/manifest", .{t.dir}) orelse return;
        const fd = c.open(path, .{ .ACCMODE = .RDONLY, .CLOEXEC = true });
        if (fd < 0) return; // no manifest: a fresh cache
        defer _ = c.close(fd);
        var h: ManifestHeader = undefined;
        const rejected = blk: {
            if (!tier.preadAll(fd, std.mem.asBytes(&h), 0)) break :blk true;
            if (h.magic != manifest_magic or h.version != manifest_version or h.model_tag != self.model_tag or
                h.kv_type != @backingInt(self.cache.shape.kv_type) or h.page_bytes != t.page_bytes) break :blk true;
            if (h.n_entries > self.n_free_idx) break :blk true;
            const body = self.allocator.alloc(ManifestEntry, @intCast(h.n_entries)) catch break :blk true;
            defer self.allocator.free(body);
            const bytes = std.mem.sliceAsBytes(body);
            if (!tier.preadAll(fd, bytes, @sizeOf(ManifestHeader))) break :blk true;
            // Trailing bytes mean a different (torn or mixed) file.
            var extra: [1]u8 = undefined;
            if (c.pread(fd, &extra, 1, @intCast(@sizeOf(ManifestHeader) + bytes.len)) != 0) break :blk true;
            if (manifestChecksum(h, bytes) != h.checksum) break :blk true;
            for (body) |me| {
                if (me.n_tokens == 0 or me.n_tokens > page_tokens or self.map.contains(me.key)) continue;
                if (!t.adopt(me.slot, me.key)) continue;
                self.n_free_idx -= 1;
                const idx = self.free_idx[self.n_free_idx];
                self.entries[idx] = .{ .key = me.key, .parent = me.parent, .n_tokens = me.n_tokens, .tokens = me.tokens, .slot = me.slot };
                self.map.putAssumeCapacity(me.key, idx);
                self.stats.entries += 1;
                self.stats.manifest_entries_loaded += 1;
            }
            break :blk false;
        };
        if (rejected) self.stats.manifest_rejected = 1;
    }
};

// ---------------------------------------------------------------- tests

const testing = std.testing;

fn testCache(pages: u32) !*kv.Cache {
    return kv.Cache.init(testing.allocator, .{ .n_layer = 2, .n_head_kv = 1, .head_dim = 32, .kv_type = .f16 }, pages, 4);
}

/// Writes a recognisable pattern into every page of `seq`: token j's V row is filled with f(j).
fn fillSeq(cache: *kv.Cache, seq: u32, tokens: []const u32) void {
    cache.grow(seq, tokens.len);
    var row: [32]f32 = undefined;
    for (tokens, 0..) |tok, j| for (0..2) |l| {
        @memset(&row, @floatFromInt((tok % 97) * 10 + l)); // exact in f16
        cache.writeRow(seq, l, .v, 0, j, &row);
        cache.writeRow(seq, l, .k, 0, j, &row);
    };
}

fn expectSeq(cache: *kv.Cache, seq: u32, tokens: []const u32, n: usize) !void {
    var row: [32]f32 = undefined;
    for (tokens[0..n], 0..) |tok, j| for (0..2) |l| {
        cache.readRow(seq, l, .v, 0, j, &row);
        try testing.expectEqual(@as(f32, @floatFromInt((tok % 97) * 10 + l)), row[5]);
        cache.readRow(seq, l, .k, 0, j, &row);
        try testing.expectEqual(@as(f32, @floatFromInt((tok % 97) * 10 + l)), row[7]);
    };
}

test "a new sequence reuses full pages by reference and the partial page by copy" {
    const cache = try testCache(32);
    defer cache.deinit();
    const pc = try PrefixCache.init(testing.allocator, cache, .{ .hot_budget_bytes = 1 << 20, .model_tag = 7 });
    defer pc.deinit();
    var toks: [40]u32 = undefined;
    for (&toks, 0..) |*t, i| t.* = @intCast(i + 1);
    const a = cache.seqCreate().?;
    fillSeq(cache, a, toks[0..37]);
    try testing.expectEqual(@as(usize, 3), pc.publish(a, toks[0..37]));
    const b = cache.seqCreate().?;
    // Same 37 tokens then more: 32 shared + 5 copied (37 - 32), leaving token 38 onward.
    const reused = pc.attach(b, &toks);
    try testing.expectEqual(@as(usize, 37), reused);
    try expectSeq(cache, b, &toks, 37);
    const ta = cache.table(a);
    const tb = cache.table(b);
    try testing.expectEqual(ta[0], tb[0]);
    try testing.expectEqual(ta[1], tb[1]);
    try testing.expect(ta[2] != tb[2]);
    try testing.expectEqual(@as(u16, 3), cache.refcount[ta[0]]); // a, b, index
    // The copy is b's own: b appends, a's page is unchanged.
    cache.grow(b, 40);
    var row: [32]f32 = @splat(-1);
    cache.writeRow(b, 0, .v, 0, 37, &row);
    try expectSeq(cache, a, toks[0..37], 37);
    // A diverging prompt reuses only the common full pages, and always leaves one token to compute.
    const d = cache.seqCreate().?;
    var other = toks;
    other[20] = 999;
    try testing.expectEqual(@as(usize, 16), pc.attach(d, &other));
    cache.seqFree(d);
    const e = cache.seqCreate().?;
    try testing.expectEqual(@as(usize, 31), pc.attach(e, toks[0..32]));
    cache.seqFree(e);
    cache.seqFree(a);
    cache.seqFree(b);
    // Only the index holds pages now.
    try testing.expectEqual(@as(u32, 32 - 3), cache.n_free);
}

test "a shift copies shared pages first, and a shifted sequence is not published" {
    const cache = try testCache(16);
    defer cache.deinit();
    const pc = try PrefixCache.init(testing.allocator, cache, .{ .hot_budget_bytes = 1 << 20, .model_tag = 1 });
    defer pc.deinit();
    var toks: [48]u32 = undefined;
    for (&toks, 0..) |*t, i| t.* = @intCast(i + 100);
    const a = cache.seqCreate().?;
    fillSeq(cache, a, &toks);
    _ = pc.publish(a, &toks);
    const before = .{ cache.table(a)[0], cache.table(a)[1], cache.table(a)[2] };
    try testing.expectEqual(@as(u16, 2), cache.refcount[before[1]]);
    try testing.expect(pc.makePrivate(a, 20, 4));
    // Page 0 is before the shift point and stays shared; pages 1 and 2 are now a's own copies.
    try testing.expectEqual(before[0], cache.table(a)[0]);
    try testing.expect(cache.table(a)[1] != before[1] and cache.table(a)[2] != before[2]);
    try testing.expectEqual(@as(u16, 1), cache.refcount[before[1]]);
    try testing.expectEqual(@as(u16, 1), cache.refcount[cache.table(a)[1]]);
    try expectSeq(cache, a, &toks, 48);
    try testing.expectEqual(@as(usize, 0), pc.publish(a, &toks));
}

test "dropping a sequence's tail (rejected drafts) keeps it publishable" {
    const cache = try testCache(16);
    defer cache.deinit();
    const pc = try PrefixCache.init(testing.allocator, cache, .{ .hot_budget_bytes = 1 << 20, .model_tag = 3 });
    defer pc.deinit();
    var toks: [40]u32 = undefined;
    for (&toks, 0..) |*t, i| t.* = @intCast(i + 7);
    const a = cache.seqCreate().?;
    fillSeq(cache, a, &toks);
    const rope = ops.Rope.init(.normal, 32, 10000, 1);
    try testing.expect(pc.makePrivate(a, 35, 5));
    cache.shift(a, 35, 5, &.{&rope});
    try expectSeq(cache, a, &toks, 35);
    try testing.expectEqual(@as(usize, 3), pc.publish(a, toks[0..35]));
    // A later prompt with the same 35 tokens reuses them.
    const b = cache.seqCreate().?;
    try testing.expectEqual(@as(usize, 35), pc.attach(b, &toks));
    try expectSeq(cache, b, &toks, 35);
    cache.seqFree(b);
    cache.seqFree(a);
}

test "tiny hot budget spills to SSD; cold pages come back verified; a corrupt one is recomputed" {
    var dbuf: [tier.max_path]u8 = undefined;
    const dir = tier.testDir(&dbuf, "prefix");
    defer tier.removeTree(dir);
    const cache = try testCache(64);
    defer cache.deinit();
    const page_bytes = cache.shape.pageSizeBytes();
    // Hot tier of 2 pages.
    const pc = try PrefixCache.init(testing.allocator, cache, .{ .hot_budget_bytes = 2 * page_bytes, .model_tag = 3, .dir = dir, .cold_max_bytes = 1 << 24 });
    defer pc.deinit();
    var toks: [97]u32 = undefined;
    for (&toks, 0..) |*t, i| t.* = @intCast(i * 3 + 1);
    const a = cache.seqCreate().?;
    fillSeq(cache, a, &toks);
    try testing.expectEqual(@as(usize, 7), pc.publish(a, &toks));
    cache.seqFree(a);
    try testing.expect(pc.stats.hot_pages <= 2);
    try testing.expect(pc.stats.spilled >= 5);
    pc.cold.?.flush();
    const b = cache.seqCreate().?;
    try testing.expectEqual(@as(usize, 96), pc.attach(b, &toks));
    try expectSeq(cache, b, &toks, 96);
    try testing.expect(pc.stats.cold_hits >= 4);
    cache.seqFree(b);
    // Flip a bit in the record of page 3 on disk: reuse stops at page 3.
    const idx = pc.map.get(blk: {
        var parent: u64 = 3;
        for (0..4) |p| parent = chainKey(parent, toks[p * 16 ..][0..16]);
        break :blk parent;
    }).?;
    // Push it out of RAM first.
    pc.reclaim(64);
    const e = pc.entries[idx];
    try testing.expect(e.page == none and e.slot != none);
    var pbuf: [tier.max_path]u8 = undefined;
    const fd = c.open(pc.cold.?.slabPath(&pbuf, e.slot).?, .{ .ACCMODE = .RDWR });
    const off = @as(u64, e.slot % pc.cold.?.slots_per_slab) * pc.cold.?.record_bytes + tier.header_bytes + 77;
    var byte: [1]u8 = undefined;
    try testing.expect(tier.preadAll(fd, &byte, off));
    byte[0] ^= 1;
    try testing.expect(tier.pwriteAll(fd, &byte, off));
    _ = c.close(fd);
    const d = cache.seqCreate().?;
    try testing.expectEqual(@as(usize, 48), pc.attach(d, &toks));
    try expectSeq(cache, d, &toks, 48);
    try testing.expectEqual(@as(u64, 1), pc.stats.cold_misses);
    cache.seqFree(d);
}

test "the prefix cache survives a restart through the manifest; a torn manifest is ignored" {
    var dbuf: [tier.max_path]u8 = undefined;
    const dir = tier.testDir(&dbuf, "manifest");
    defer tier.removeTree(dir);
    var toks: [50]u32 = undefined;
    for (&toks, 0..) |*t, i| t.* = @intCast(i + 9);
    {
        const cache = try testCache(16);
        defer cache.deinit();
        const pc = try PrefixCache.init(testing.allocator, cache, .{ .hot_budget_bytes = 1 << 20, .model_tag = 5, .dir = dir, .cold_max_bytes = 1 << 22 });
        defer pc.deinit();
        const a = cache.seqCreate().?;
        fillSeq(cache, a, &toks);
        _ = pc.publish(a, &toks);
        try testing.expectEqual(@as(usize, 4), try pc.persist());
    }
    {
        const cache = try testCache(16);
        defer cache.deinit();
        const pc = try PrefixCache.init(testing.allocator, cache, .{ .hot_budget_bytes = 1 << 20, .model_tag = 5, .dir = dir, .cold_max_bytes = 1 << 22 });
        defer pc.deinit();
        try testing.expectEqual(@as(u64, 4), pc.stats.manifest_entries_loaded);
        const b = cache.seqCreate().?;
        try testing.expectEqual(@as(usize, 49), pc.attach(b, &toks));
        try expectSeq(cache, b, &toks, 49);
    }
    // Tear the manifest (cut in the middle of an entry): start-up ignores it.
    var pbuf: [tier.max_path]u8 = undefined;
    const mp = tier.pathZ(&pbuf, "{s}/manifest", .{dir}).?;
    const fd = c.open(mp, .{ .ACCMODE = .RDWR });
    try testing.expectEqual(@as(c_int, 0), c.ftruncate(fd, 100));
    _ = c.close(fd);
    {
        const cache = try testCache(16);
        defer cache.deinit();
        const pc = try PrefixCache.init(testing.allocator, cache, .{ .hot_budget_bytes = 1 << 20, .model_tag = 5, .dir = dir, .cold_max_bytes = 1 << 22 });
        defer pc.deinit();
        try testing.expectEqual(@as(u64, 1), pc.stats.manifest_rejected);
        const b = cache.seqCreate().?;
        try testing.expectEqual(@as(usize, 0), pc.attach(b, &toks));
    }
}

test "spill moves an idle chain's hot pages to SSD, keeps shared and unwritable ones, and they come back" {
    var dbuf: [tier.max_path]u8 = undefined;
    const dir = tier.testDir(&dbuf, "spill");
    defer tier.removeTree(dir);
    const cache = try testCache(32);
    defer cache.deinit();
    const pc = try PrefixCache.init(testing.allocator, cache, .{ .hot_budget_bytes = 1 << 20, .model_tag = 11, .dir = dir, .cold_max_bytes = 1 << 24 });
    defer pc.deinit();
    var toks: [60]u32 = undefined;
    for (&toks, 0..) |*t, i| t.* = @intCast(i * 7 + 2);
    const a = cache.seqCreate().?;
    fillSeq(cache, a, &toks);
    try testing.expectEqual(@as(usize, 4), pc.publish(a, &toks));
    // While `a` holds its pages nothing can leave RAM.
    try testing.expectEqual(@as(usize, 0), pc.reclaimable());
    try testing.expectEqual(@as(usize, 0), pc.spill(&toks, 0));
    cache.seqFree(a);
    try testing.expectEqual(@as(usize, 4), pc.reclaimable());
    const free_before = cache.n_free;
    // The first page is shared with a live conversation: spill from page 1 on.
    try testing.expectEqual(@as(usize, 3), pc.spill(&toks, 1));
    try testing.expectEqual(free_before + 3, cache.n_free);
    try testing.expectEqual(@as(u64, 1), pc.stats.hot_pages);
    try testing.expectEqual(@as(u64, 3), pc.stats.spilled);
    try testing.expectEqual(@as(usize, 1), pc.reclaimable());
    // A second spill finds nothing hot past page 0.
    try testing.expectEqual(@as(usize, 0), pc.spill(&toks, 1));
    // A different chain spills nothing.
    var other = toks;
    other[0] = 5;
    try testing.expectEqual(@as(usize, 0), pc.spill(&other, 0));
    const b = cache.seqCreate().?;
    try testing.expectEqual(@as(usize, 59), pc.attach(b, &toks));
    try expectSeq(cache, b, &toks, 59);
    try testing.expectEqual(@as(u64, 3), pc.stats.cold_hits);
    cache.seqFree(b);
}

test "a checkpoint lists only what is on SSD, without writing hot pages" {
    var dbuf: [tier.max_path]u8 = undefined;
    const dir = tier.testDir(&dbuf, "checkpoint");
    defer tier.removeTree(dir);
    var toks: [64]u32 = undefined;
    for (&toks, 0..) |*t, i| t.* = @intCast(i + 300);
    {
        const cache = try testCache(16);
        defer cache.deinit();
        const pc = try PrefixCache.init(testing.allocator, cache, .{ .hot_budget_bytes = 1 << 20, .model_tag = 9, .dir = dir, .cold_max_bytes = 1 << 22 });
        defer pc.deinit();
        const a = cache.seqCreate().?;
        fillSeq(cache, a, &toks);
        try testing.expectEqual(@as(usize, 4), pc.publish(a, &toks));
        cache.seqFree(a);
        // Nothing on SSD yet: an empty manifest, and no page written.
        try testing.expectEqual(@as(usize, 0), try pc.checkpoint());
        try testing.expectEqual(@as(u64, 0), pc.snapshot().cold.writes_queued);
        // Pages 2 and 3 go idle: the checkpoint lists exactly those.
        try testing.expectEqual(@as(usize, 2), pc.spill(&toks, 2));
        try testing.expectEqual(@as(usize, 2), try pc.checkpoint());
        try testing.expectEqual(@as(u64, 2), pc.snapshot().cold.writes_ok);
    }
    {
        const cache = try testCache(16);
        defer cache.deinit();
        const pc = try PrefixCache.init(testing.allocator, cache, .{ .hot_budget_bytes = 1 << 20, .model_tag = 9, .dir = dir, .cold_max_bytes = 1 << 22 });
        defer pc.deinit();
        try testing.expectEqual(@as(u64, 2), pc.stats.manifest_entries_loaded);
        // Pages 0 and 1 were never on SSD, so the chain cannot start: nothing is reused...
        const b = cache.seqCreate().?;
        try testing.expectEqual(@as(usize, 0), pc.attach(b, &toks));
        // ...until they are recomputed and published; then pages 2 and 3 come from SSD.
        fillSeq(cache, b, toks[0..32]);
        _ = pc.publish(b, toks[0..32]);
        cache.seqFree(b);
        const d = cache.seqCreate().?;
        try testing.expectEqual(@as(usize, 63), pc.attach(d, &toks));
        try expectSeq(cache, d, &toks, 63);
        try testing.expectEqual(@as(u64, 2), pc.stats.cold_hits);
        cache.seqFree(d);
    }
}

test "pages exported by one cache are imported by another, which then reuses them; damaged or foreign records are refused" {
    const a_cache = try testCache(32);
    defer a_cache.deinit();
    const b_cache = try testCache(32);
    defer b_cache.deinit();
    const a = try PrefixCache.init(testing.allocator, a_cache, .{ .hot_budget_bytes = 1 << 20, .model_tag = 5 });
    defer a.deinit();
    const b = try PrefixCache.init(testing.allocator, b_cache, .{ .hot_budget_bytes = 1 << 20, .model_tag = 5 });
    defer b.deinit();
    const other = try PrefixCache.init(testing.allocator, b_cache, .{ .hot_budget_bytes = 1 << 20, .model_tag = 6 });
    defer other.deinit();
    var toks: [53]u32 = undefined;
    for (&toks, 0..) |*t, i| t.* = @intCast(i * 5 + 2);
    const s = a_cache.seqCreate().?;
    fillSeq(a_cache, s, &toks);
    _ = a.publish(s, &toks);
    a_cache.seqFree(s);
    var keys_a: [8]u64 = undefined;
    var keys_b: [8]u64 = undefined;
    const ca = a.chain(&toks, &keys_a);
    const cb = b.chain(&toks, &keys_b);
    try testing.expectEqual(@as(usize, 3), ca.pages);
    try testing.expectEqual(@as(usize, 3), ca.local);
    try testing.expectEqual(@as(usize, 0), cb.local);
    try testing.expectEqualSlices(u64, keys_a[0..3], keys_b[0..3]);
    const rec = try testing.allocator.alloc(u8, portable.recordBytes(a_cache.shape.pageSizeBytes()));
    defer testing.allocator.free(rec);
    for (0..3) |p| {
        try a.exportPage(&toks, p, rec);
        // Another model tag roots another chain: the record is not its page.
        try testing.expectError(error.Corrupt, other.importPage(&toks, p, rec));
        if (p == 2) {
            rec[portable.header_bytes + 3] ^= 1;
            try testing.expectError(error.Corrupt, b.importPage(&toks, p, rec));
            continue;
        }
        // The page is checked against the prompt it is imported for.
        var wrong = toks;
        wrong[p * 16 + 1] += 1;
        try testing.expectError(error.Corrupt, b.importPage(&wrong, p, rec));
        try testing.expect(try b.importPage(&toks, p, rec));
        try testing.expect(!(try b.importPage(&toks, p, rec)));
    }
    try testing.expectEqual(@as(usize, 2), b.chain(&toks, &keys_b).local);
    const t = b_cache.seqCreate().?;
    try testing.expectEqual(@as(usize, 32), b.attach(t, &toks));
    try expectSeq(b_cache, t, &toks, 32);
    // Index, pin and sequence hold the page; the pin ends once, after which only the index keeps it.
    const p0 = b_cache.table(t)[0];
    try testing.expectEqual(@as(u16, 3), b_cache.refcount[p0]);
    try testing.expect(b.unpin(&toks, 0, true) and b.unpin(&toks, 1, true));
    try testing.expect(!b.unpin(&toks, 0, true) and !b.unpin(&toks, 2, true));
    try testing.expectEqual(@as(usize, 0), b.pinned_pages);
    b_cache.seqFree(t);
    try testing.expectEqual(@as(u16, 1), b_cache.refcount[p0]);
    try testing.expectError(error.NotCached, b.exportPage(&toks, 2, rec));
}

test "pages imported into a full hot tier stay until their request attaches them, then stay as reused" {
    const a_cache = try testCache(64);
    defer a_cache.deinit();
    const b_cache = try testCache(64);
    defer b_cache.deinit();
    const page_bytes = a_cache.shape.pageSizeBytes();
    const a = try PrefixCache.init(testing.allocator, a_cache, .{ .hot_budget_bytes = 1 << 20, .model_tag = 5 });
    defer a.deinit();
    // b's hot tier holds 8 pages, all of them a conversation of its own used twice.
    const b = try PrefixCache.init(testing.allocator, b_cache, .{ .hot_budget_bytes = 8 * page_bytes, .model_tag = 5 });
    defer b.deinit();
    var own: [8 * 16 + 1]u32 = undefined;
    for (&own, 0..) |*t, i| t.* = @intCast(i + 5000);
    const o = b_cache.seqCreate().?;
    fillSeq(b_cache, o, &own);
    _ = b.publish(o, own[0..128]);
    _ = b.publish(o, own[0..128]);
    b_cache.seqFree(o);
    try testing.expectEqual(@as(u64, 8), b.stats.hot_pages);
    // A 5-page conversation computed by a, imported by b page by page.
    var toks: [5 * 16 + 3]u32 = undefined;
    for (&toks, 0..) |*t, i| t.* = @intCast(i * 3 + 11);
    const s = a_cache.seqCreate().?;
    fillSeq(a_cache, s, &toks);
    _ = a.publish(s, &toks);
    a_cache.seqFree(s);
    const rec = try testing.allocator.alloc(u8, portable.recordBytes(page_bytes));
    defer testing.allocator.free(rec);
    for (0..5) |p| {
        try a.exportPage(&toks, p, rec);
        try testing.expect(try b.importPage(&toks, p, rec));
    }
    // Other traffic while the request waits for admission: b's own pages are used again, and
    // the pool is squeezed; the imported pages are neither evicted nor reclaimed.
    const o2 = b_cache.seqCreate().?;
    try testing.expectEqual(@as(usize, 128), b.attach(o2, &own));
    b_cache.seqFree(o2);
    b.reclaim(64);
    var keys: [8]u64 = undefined;
    try testing.expectEqual(@as(usize, 5), b.chain(&toks, &keys).local);
    const t = b_cache.seqCreate().?;
    try testing.expectEqual(@as(usize, 80), b.attach(t, &toks));
    try expectSeq(b_cache, t, &toks, 80);
    for (0..5) |p| try testing.expect(b.unpin(&toks, p, true));
    b_cache.seqFree(t);
    // Handed to the policy as reused pages: the hot tier is back within its budget, and a run of
    // one-off pages does not push them out.
    try testing.expect(b.stats.hot_pages <= 8);
    var one_off: [6 * 16]u32 = undefined;
    for (&one_off, 0..) |*x, i| x.* = @intCast(i + 90_000);
    const f = b_cache.seqCreate().?;
    fillSeq(b_cache, f, &one_off);
    _ = b.publish(f, &one_off);
    b_cache.seqFree(f);
    const t2 = b_cache.seqCreate().?;
    try testing.expectEqual(@as(usize, 80), b.attach(t2, &toks));
    b_cache.seqFree(t2);
    // The pin limit: no more pages wait than the hot tier holds.
    var other: [9 * 16]u32 = undefined;
    for (&other, 0..) |*x, i| x.* = @intCast(i + 70_000);
    const s2 = a_cache.seqCreate().?;
    fillSeq(a_cache, s2, &other);
    _ = a.publish(s2, &other);
    a_cache.seqFree(s2);
    for (0..9) |p| {
        try a.exportPage(&other, p, rec);
        if (p < 8) try testing.expect(try b.importPage(&other, p, rec)) else try testing.expectError(error.PinLimit, b.importPage(&other, p, rec));
    }
    for (0..8) |p| try testing.expect(b.unpin(&other, p, false));
    try testing.expectEqual(@as(usize, 0), b.pinned_pages);
}
