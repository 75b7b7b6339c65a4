//! Portable KV page records: one prefix-cache page with all it takes to check it far from the process that wrote it (a shared tier such as Redis).
//!
//! An SSD record (kv/tier.zig) is checked against the entry its own process kept (slot, key);
//! a portable record is read by another replica that knows only the prompt. So the record names
//! its model tag, its parent chain key and its own, the tokens of the page, the KV type, the page
//! size and the SIMD level of the build that computed it (another level may round differently, and
//! the promise is output identical to recomputing), and a checksum over all of it. The reader
//! derives every expected field from its own prompt and model and accepts the page only when all
//! match; anything else is `error.Corrupt` and the caller recomputes the page.
//!
//! Layout (little-endian, as in memory): a 128-byte `Header`, then the page's bytes.
const std = @import("std");
const simd = @import("../simd.zig");
const page_tokens = @import("pages.zig").page_tokens;

pub const magic: u32 = 0x5258_4b48; // "HKXR"
pub const version: u16 = 1;
pub const header_bytes: usize = 128;

pub const Header = extern struct {
    magic: u32,
    version: u16,
    kv_type: u16,
    page_bytes: u32,
    n_tokens: u32,
    model_tag: u64,
    parent: u64,
    key: u64,
    /// Wyhash of the header (with this field zero) followed by the page.
    checksum: u64,
    tokens: [page_tokens]u32,
    /// simd.Isa of the build that computed the page.
    isa: u32,
    reserved: [12]u8 = @splat(0),
};

comptime {
    std.debug.assert(@sizeOf(Header) == header_bytes);
    std.debug.assert(page_tokens == 16);
}

/// What the reader expects, derived from its own model and prompt.
pub const Expect = struct {
    kv_type: u16,
    page_bytes: usize,
    model_tag: u64,
    parent: u64,
    key: u64,
    tokens: []const u32,
};

pub fn recordBytes(page_bytes: usize) usize {
    return header_bytes + page_bytes;
}

fn checksumOf(h: Header, payload: []const u8) u64 {
    var hh = h;
    hh.checksum = 0;
    var x = std.hash.Wyhash.init(0x6b76_7368_6172_6564); // "kvshared"
    x.update(std.mem.asBytes(&hh));
    x.update(payload);
    return x.final();
}

/// Writes the record of `payload` (one page) into `out` (exactly recordBytes(payload.len) bytes).
pub fn write(out: []u8, e: Expect, payload: []const u8) void {
    std.debug.assert(out.len == recordBytes(payload.len) and payload.len == e.page_bytes);
    std.debug.assert(e.tokens.len >= 1 and e.tokens.len <= page_tokens);
    var h: Header = .{
        .magic = magic,
        .version = version,
        .kv_type = e.kv_type,
        .page_bytes = @intCast(payload.len),
        .n_tokens = @intCast(e.tokens.len),
        .model_tag = e.model_tag,
        .parent = e.parent,
        .key = e.key,
        .checksum = 0,
        .tokens = @splat(0),
        .isa = @backingInt(simd.isa),
    };
    @memcpy(h.tokens[0..e.tokens.len], e.tokens);
    h.checksum = checksumOf(h, payload);
    @memcpy(out[0..header_bytes], std.mem.asBytes(&h));
    simd.copy(out[header_bytes..], payload);
}

pub const VerifyError = error{Corrupt};

/// The page inside `rec` when every field matches `e` and the checksum holds; else error.Corrupt.
pub fn verify(rec: []const u8, e: Expect) VerifyError![]const u8 {
    if (rec.len != recordBytes(e.page_bytes)) return error.Corrupt;
    // The record may sit anywhere in the caller's buffer: copy the header out rather than cast.
    var h: Header = undefined;
    @memcpy(std.mem.asBytes(&h), rec[0..header_bytes]);
    const payload = rec[header_bytes..];
    if (h.magic != magic or h.version != version or h.kv_type != e.kv_type or h.page_bytes != e.page_bytes) return error.Corrupt;
    if (h.isa != @backingInt(simd.isa) or h.model_tag != e.model_tag or h.parent != e.parent or h.key != e.key) return error.Corrupt;
    if (h.n_tokens != e.tokens.len or !std.mem.eql(u32, h.tokens[0..e.tokens.len], e.tokens)) return error.Corrupt;
    for (h.tokens[e.tokens.len..]) |t| if (t != 0) return error.Corrupt;
    if (!std.mem.allEqual(u8, &h.reserved, 0)) return error.Corrupt;
    if (checksumOf(h, payload) != h.checksum) return error.Corrupt;
    return payload;
}

test "a portable record round-trips, and any changed byte or expectation is refused" {
    const testing = std.testing;
    var page: [256]u8 = undefined;
    for (&page, 0..) |*b, i| b.* = @truncate(i * 7 + 1);
    var toks: [16]u32 = undefined;
    for (&toks, 0..) |*t, i| t.* = @intCast(i + 100);
    const e: Expect = .{ .kv_type = 1, .page_bytes = page.len, .model_tag = 42, .parent = 9, .key = 10, .tokens = &toks };
    var rec: [header_bytes + 256]u8 = undefined;
    write(&rec, e, &page);
    const got = try verify(&rec, e);
    try testing.expectEqualSlices(u8, &page, got);
    // Every single bit flip anywhere in the record is caught.
    for (0..rec.len) |i| {
        rec[i] ^= 0x10;
        try testing.expectError(error.Corrupt, verify(&rec, e));
        rec[i] ^= 0x10;
    }
    // Another model, parent, key, KV type, size or token list: refused.
    var other = e;
    other.model_tag = 43;
    try testing.expectError(error.Corrupt, verify(&rec, other));
    other = e;
    other.parent = 8;
    try testing.expectError(error.Corrupt, verify(&rec, other));
    other = e;
    other.key = 11;
    try testing.expectError(error.Corrupt, verify(&rec, other));
    other = e;
    other.kv_type = 0;
    try testing.expectError(error.Corrupt, verify(&rec, other));
    var toks2 = toks;
    toks2[15] = 1;
    other = e;
    other.tokens = &toks2;
    try testing.expectError(error.Corrupt, verify(&rec, other));
    try testing.expectError(error.Corrupt, verify(rec[0 .. rec.len - 1], e));
    _ = try verify(&rec, e);
}
