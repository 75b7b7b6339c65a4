//! Eviction policies for KV pages keyed by u64: plain LRU and ARC (adaptive: recency + frequency), plus a seeded multi-session trace to compare them.
//!
//! Both policies are sized once at init (no allocation per access). `access(key)` reports a hit
//! or a miss and, when a resident key had to make room, which one (the caller demotes that page).
//! ARC (Megiddo & Modha, FAST '03) keeps two resident lists, T1 (seen once lately) and T2 (seen at
//! least twice), and two ghost lists of recently evicted keys, B1 and B2, whose hits steer the
//! target size `p` of T1. A long run of one-off pages therefore flushes only T1, not the shared
//! system prompts that live in T2, which is where it beats LRU on chat traffic.
const std = @import("std");

const none: u32 = std.math.maxInt(u32);

pub const Access = struct {
    hit: bool,
    /// A resident key pushed out to make room (its page leaves the hot tier).
    evicted: ?u64 = null,
};

/// Doubly linked lists threaded through one node array; a node is on at most one list.
fn Lists(comptime n_lists: usize) type {
    return struct {
        const Self = @This();
        const Node = struct { key: u64, prev: u32, next: u32, list: u8 };

        nodes: []Node,
        free_head: u32,
        head: [n_lists]u32 = @splat(none), // MRU end
        tail: [n_lists]u32 = @splat(none), // LRU end
        len: [n_lists]usize = @splat(0),
        index: std.AutoHashMapUnmanaged(u64, u32) = .empty,

        fn init(allocator: std.mem.Allocator, capacity: usize) !Self {
            const nodes = try allocator.alloc(Node, capacity);
            errdefer allocator.free(nodes);
            for (nodes, 0..) |*n, i| n.* = .{ .key = 0, .prev = none, .next = if (i + 1 < capacity) @intCast(i + 1) else none, .list = 0 };
            var self: Self = .{ .nodes = nodes, .free_head = if (capacity > 0) 0 else none };
            try self.index.ensureTotalCapacity(allocator, @intCast(capacity));
            return self;
        }

        fn deinit(self: *Self, allocator: std.mem.Allocator) void {
            allocator.free(self.nodes);
            self.index.deinit(allocator);
        }

        fn find(self: *const Self, key: u64) ?u32 {
            return self.index.get(key);
        }

        fn unlink(self: *Self, i: u32) void {
            const n = &self.nodes[i];
            const l = n.list;
            if (n.prev != none) self.nodes[n.prev].next = n.next else self.head[l] = n.next;
            if (n.next != none) self.nodes[n.next].prev = n.prev else self.tail[l] = n.prev;
            self.len[l] -= 1;
        }

        fn pushHead(self: *Self, i: u32, l: u8) void {
            const n = &self.nodes[i];
            n.list = l;
            n.prev = none;
            n.next = self.head[l];
            if (self.head[l] != none) self.nodes[self.head[l]].prev = i else self.tail[l] = i;
            self.head[l] = i;
            self.len[l] += 1;
        }

        fn moveHead(self: *Self, i: u32, l: u8) void {
            self.unlink(i);
            self.pushHead(i, l);
        }

        /// A new node at the MRU end of list l; the capacity was sized so this cannot run out.
        fn insert(self: *Self, key: u64, l: u8) u32 {
            const i = self.free_head;
            std.debug.assert(i != none);
            self.free_head = self.nodes[i].next;
            self.nodes[i].key = key;
            self.pushHead(i, l);
            self.index.putAssumeCapacity(key, i);
            return i;
        }

        fn remove(self: *Self, i: u32) u64 {
            self.unlink(i);
            const key = self.nodes[i].key;
            _ = self.index.remove(key);
            self.nodes[i].next = self.free_head;
            self.free_head = i;
            return key;
        }
    };
}

/// Least recently used: the baseline.
pub const Lru = struct {
    lists: Lists(1),
    capacity: usize,

    pub fn init(allocator: std.mem.Allocator, capacity: usize) !Lru {
        std.debug.assert(capacity > 0);
        return .{ .lists = try Lists(1).init(allocator, capacity), .capacity = capacity };
    }
    pub fn deinit(self: *Lru, allocator: std.mem.Allocator) void {
        self.lists.deinit(allocator);
    }
    pub fn contains(self: *const Lru, key: u64) bool {
        return self.lists.find(key) != null;
    }
    pub fn access(self: *Lru, key: u64) Access {
        if (self.lists.find(key)) |i| {
            self.lists.moveHead(i, 0);
            return .{ .hit = true };
        }
        var out: Access = .{ .hit = false };
        if (self.lists.len[0] == self.capacity) out.evicted = self.lists.remove(self.lists.tail[0]);
        _ = self.lists.insert(key, 0);
        return out;
    }
    /// Forgets a key (its page was dropped by someone else).
    pub fn remove(self: *Lru, key: u64) void {
        if (self.lists.find(key)) |i| _ = self.lists.remove(i);
    }
    pub fn residentCount(self: *const Lru) usize {
        return self.lists.len[0];
    }
};

/// Adaptive Replacement Cache.
pub const Arc = struct {
    const t1 = 0;
    const t2 = 1;
    const b1 = 2;
    const b2 = 3;

    lists: Lists(4),
    capacity: usize,
    /// Target size of T1 in keys, adapted by ghost hits.
    p: usize = 0,

    pub fn init(allocator: std.mem.Allocator, capacity: usize) !Arc {
        std.debug.assert(capacity > 0);
        // Resident + ghost keys never exceed 2c (the ARC invariant); +1 for the node inserted before its ghost is dropped.
        return .{ .lists = try Lists(4).init(allocator, 2 * capacity + 1), .capacity = capacity };
    }
    pub fn deinit(self: *Arc, allocator: std.mem.Allocator) void {
        self.lists.deinit(allocator);
    }

    pub fn contains(self: *const Arc, key: u64) bool {
        const i = self.lists.find(key) orelse return false;
        const l = self.lists.nodes[i].list;
        return l == t1 or l == t2;
    }

    pub fn residentCount(self: *const Arc) usize {
        return self.lists.len[t1] + self.lists.len[t2];
    }

    /// Moves the LRU key of T1 or T2 to its ghost list; returns it (it leaves the hot tier).
    fn replace(self: *Arc, in_b2: bool) u64 {
        const l = &self.lists;
        const from_t1 = l.len[t1] >= 1 and (l.len[t1] > self.p or (in_b2 and l.len[t1] == self.p));
        if (from_t1 or l.len[t2] == 0) {
            const i = l.tail[t1];
            l.moveHead(i, b1);
            return l.nodes[i].key;
        }
        const i = l.tail[t2];
        l.moveHead(i, b2);
        return l.nodes[i].key;
    }

    pub fn access(self: *Arc, key: u64) Access {
        const l = &self.lists;
        const c = self.capacity;
        if (l.find(key)) |i| {
            switch (l.nodes[i].list) {
                t1, t2 => {
                    l.moveHead(i, t2);
                    return .{ .hit = true };
                },
                b1 => {
                    const delta = @max(1, l.len[b2] / l.len[b1]);
                    self.p = @min(c, self.p + delta);
                    const ev = if (self.residentCount() >= c) self.replace(false) else null;
                    l.moveHead(i, t2);
                    return .{ .hit = false, .evicted = ev };
                },
                else => {
                    const delta = @max(1, l.len[b1] / l.len[b2]);
                    self.p -|= delta;
                    const ev = if (self.residentCount() >= c) self.replace(true) else null;
                    l.moveHead(i, t2);
                    return .{ .hit = false, .evicted = ev };
                },
            }
        }
        var out: Access = .{ .hit = false };
        const l1 = l.len[t1] + l.len[b1];
        const total = l1 + l.len[t2] + l.len[b2];
        if (l1 == c) {
            if (l.len[t1] < c) {
                _ = l.remove(l.tail[b1]);
                if (self.residentCount() >= c) out.evicted = self.replace(false);
            } else {
                out.evicted = l.remove(l.tail[t1]);
            }
        } else if (total >= c) {
            if (total >= 2 * c and l.len[b2] > 0) _ = l.remove(l.tail[b2]);
            if (self.residentCount() >= c) out.evicted = self.replace(false);
        }
        _ = l.insert(key, t1);
        return out;
    }

    /// A key used twice at once: a page imported for a request that then used it (the import is
    /// one use, the request's the second). As `access`, but a new key goes to T2, not T1: among
    /// pages used once (T1) it would be the first pushed out, however soon it is used again.
    pub fn accessReused(self: *Arc, key: u64) Access {
        const a = self.access(key);
        const i = self.lists.find(key).?;
        if (self.lists.nodes[i].list == t1) self.lists.moveHead(i, t2);
        return a;
    }

    /// Forgets a resident key (its page was dropped or went bad); ghosts are left alone.
    pub fn remove(self: *Arc, key: u64) void {
        const i = self.lists.find(key) orelse return;
        const l = self.lists.nodes[i].list;
        if (l == t1 or l == t2) _ = self.lists.remove(i);
    }

    /// Resident keys in eviction order (T1 from its LRU end, then T2): up to out.len of them.
    pub fn victims(self: *const Arc, out: []u64) usize {
        var n: usize = 0;
        for ([_]u8{ t1, t2 }) |lst| {
            var i = self.lists.tail[lst];
            while (i != none and n < out.len) : (i = self.lists.nodes[i].prev) {
                out[n] = self.lists.nodes[i].key;
                n += 1;
            }
        }
        return n;
    }
};

// ---------------------------------------------------------------- trace

/// Shape of the replayed multi-session chat trace (all sizes in pages of 16 tokens).
pub const TraceConfig = struct {
    seed: u64 = 42,
    events: usize = 4000,
    system_prompts: usize = 6,
    system_pages_min: usize = 4,
    system_pages_max: usize = 24,
    users: usize = 120,
    /// Percent of events that are a returning user's next turn / a one-off session / a new user.
    returning_pct: u32 = 55,
    one_off_pct: u32 = 35,
    one_off_pages_max: usize = 48,
};

/// Generates the page-key access sequence into `out` (appended), deterministic for a seed.
/// Returning users re-read their system prompt and their whole history and append 1-3 pages;
/// one-off sessions read a (popular) system prompt then a run of pages never seen again.
pub fn generateTrace(allocator: std.mem.Allocator, cfg: TraceConfig, out: *std.ArrayList(u64)) !void {
    var prng = std.Random.DefaultPrng.init(cfg.seed);
    const rnd = prng.random();
    const sys_len = try allocator.alloc(usize, cfg.system_prompts);
    defer allocator.free(sys_len);
    for (sys_len) |*s| s.* = rnd.intRangeAtMost(usize, cfg.system_pages_min, cfg.system_pages_max);
    const user_sys = try allocator.alloc(usize, cfg.users);
    defer allocator.free(user_sys);
    const user_len = try allocator.alloc(usize, cfg.users);
    defer allocator.free(user_len);
    var n_users: usize = 0;
    var fresh: u64 = 1 << 40; // one-off keys, never repeated
    // Zipf-like popularity of system prompts: prompt i is chosen with weight 1/(i+1).
    const pickSys = struct {
        fn f(r: std.Random, n: usize) usize {
            var total: f64 = 0;
            for (0..n) |i| total += 1.0 / @as(f64, @floatFromInt(i + 1));
            var x = r.float(f64) * total;
            for (0..n) |i| {
                x -= 1.0 / @as(f64, @floatFromInt(i + 1));
                if (x <= 0) return i;
            }
            return n - 1;
        }
    }.f;
    for (0..cfg.events) |_| {
        const roll = rnd.uintLessThan(u32, 100);
        if (roll < cfg.returning_pct and n_users > 0) {
            // Recent users come back more often: pick from the newest half with 2/3 chance.
            const u = if (rnd.uintLessThan(u32, 3) < 2 and n_users > 1) n_users - 1 - rnd.uintLessThan(usize, @max(1, n_users / 2)) else rnd.uintLessThan(usize, n_users);
            const s = user_sys[u];
            for (0..sys_len[s]) |p| try out.append(allocator, (@as(u64, s) << 32) | p);
            user_len[u] += rnd.intRangeAtMost(usize, 1, 3);
            for (0..user_len[u]) |p| try out.append(allocator, (@as(u64, 1) << 48) | (@as(u64, u) << 20) | p);
        } else if (roll < cfg.returning_pct + cfg.one_off_pct or n_users == cfg.users) {
            const s = pickSys(rnd, cfg.system_prompts);
            for (0..sys_len[s]) |p| try out.append(allocator, (@as(u64, s) << 32) | p);
            const n = rnd.intRangeAtMost(usize, 8, cfg.one_off_pages_max);
            for (0..n) |_| {
                try out.append(allocator, fresh);
                fresh += 1;
            }
        } else {
            const u = n_users;
            n_users += 1;
            user_sys[u] = pickSys(rnd, cfg.system_prompts);
            user_len[u] = rnd.intRangeAtMost(usize, 2, 8);
            const s = user_sys[u];
            for (0..sys_len[s]) |p| try out.append(allocator, (@as(u64, s) << 32) | p);
            for (0..user_len[u]) |p| try out.append(allocator, (@as(u64, 1) << 48) | (@as(u64, u) << 20) | p);
        }
    }
}

pub const ReplayResult = extern struct {
    accesses: u64,
    lru_hits: u64,
    arc_hits: u64,
    capacity_pages: u64,

    pub fn lruHitRate(r: ReplayResult) f64 {
        return @as(f64, @floatFromInt(r.lru_hits)) / @as(f64, @floatFromInt(r.accesses));
    }
    pub fn arcHitRate(r: ReplayResult) f64 {
        return @as(f64, @floatFromInt(r.arc_hits)) / @as(f64, @floatFromInt(r.accesses));
    }
};

/// Replays the seeded trace through LRU and ARC of `capacity` pages.
pub fn replay(allocator: std.mem.Allocator, cfg: TraceConfig, capacity: usize) !ReplayResult {
    var trace: std.ArrayList(u64) = .empty;
    defer trace.deinit(allocator);
    try generateTrace(allocator, cfg, &trace);
    var lru = try Lru.init(allocator, capacity);
    defer lru.deinit(allocator);
    var arc = try Arc.init(allocator, capacity);
    defer arc.deinit(allocator);
    var r: ReplayResult = .{ .accesses = trace.items.len, .lru_hits = 0, .arc_hits = 0, .capacity_pages = capacity };
    for (trace.items) |k| {
        r.lru_hits += @intFromBool(lru.access(k).hit);
        r.arc_hits += @intFromBool(arc.access(k).hit);
        std.debug.assert(arc.residentCount() <= capacity);
    }
    return r;
}

// ---------------------------------------------------------------- tests

const testing = std.testing;

test "LRU evicts the least recently used key" {
    var lru = try Lru.init(testing.allocator, 2);
    defer lru.deinit(testing.allocator);
    try testing.expect(!lru.access(1).hit);
    try testing.expect(!lru.access(2).hit);
    try testing.expect(lru.access(1).hit);
    const a = lru.access(3);
    try testing.expect(!a.hit);
    try testing.expectEqual(@as(?u64, 2), a.evicted);
    try testing.expect(lru.contains(1) and lru.contains(3) and !lru.contains(2));
}

test "ARC keeps a frequently used key through a scan of one-off keys" {
    var arc = try Arc.init(testing.allocator, 4);
    defer arc.deinit(testing.allocator);
    _ = arc.access(100);
    try testing.expect(arc.access(100).hit); // now in T2
    var evicted_100 = false;
    for (0..50) |k| {
        const a = arc.access(k);
        try testing.expect(!a.hit);
        if (a.evicted) |e| evicted_100 = evicted_100 or e == 100;
        try testing.expect(arc.residentCount() <= 4);
    }
    try testing.expect(!evicted_100);
    try testing.expect(arc.access(100).hit);
}

test "ARC: one-off keys into a cache full of reused ones push each other out; keys reused at once stay" {
    var arc = try Arc.init(testing.allocator, 8);
    defer arc.deinit(testing.allocator);
    // T2 full of keys used twice (p stays 0: no ghost hit has asked for a larger T1).
    for (0..8) |k| {
        _ = arc.access(k);
        _ = arc.access(k);
    }
    // A run of new keys used once: each pushes the one before it out (what an import did).
    for (100..104) |k| _ = arc.access(k);
    try testing.expect(arc.contains(103) and !arc.contains(100) and !arc.contains(102));
    // The same run as keys reused at once: all of them stay, the oldest reused keys go.
    for (200..204) |k| {
        const e = arc.accessReused(k).evicted orelse return error.TestUnexpectedResult;
        try testing.expect(e < 8 or e == 103);
    }
    for (200..204) |k| try testing.expect(arc.contains(k));
    try testing.expect(arc.residentCount() <= 8);
}

test "ARC reports every eviction exactly once and never holds more than its capacity" {
    var arc = try Arc.init(testing.allocator, 8);
    defer arc.deinit(testing.allocator);
    var resident = std.AutoHashMap(u64, void).init(testing.allocator);
    defer resident.deinit();
    var prng = std.Random.DefaultPrng.init(3);
    for (0..5000) |_| {
        const k = prng.random().uintLessThan(u64, 30);
        const a = if (prng.random().boolean()) arc.access(k) else arc.accessReused(k);
        try testing.expectEqual(resident.contains(k), a.hit);
        if (a.evicted) |e| try testing.expect(resident.remove(e));
        try resident.put(k, {});
        try testing.expectEqual(resident.count(), arc.residentCount());
        try testing.expect(arc.residentCount() <= 8);
    }
}

test "replayed multi-session trace: ARC hit rate is at least LRU's" {
    inline for (.{ 64, 128, 256 }) |cap| {
        const r = try replay(testing.allocator, .{}, cap);
        // Measured (seed 42): 64 pages LRU 0.103 / ARC 0.289; 128: 0.207 / 0.381; 256: 0.320 / 0.424.
        try testing.expect(r.arc_hits >= r.lru_hits);
    }
}

test "trace is deterministic for a seed" {
    var a: std.ArrayList(u64) = .empty;
    defer a.deinit(testing.allocator);
    var b: std.ArrayList(u64) = .empty;
    defer b.deinit(testing.allocator);
    try generateTrace(testing.allocator, .{ .events = 200 }, &a);
    try generateTrace(testing.allocator, .{ .events = 200 }, &b);
    try testing.expectEqualSlices(u64, a.items, b.items);
}
