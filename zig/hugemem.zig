//! Large, long-lived buffers (the interleaved weights, the KV pool) placed so Linux can back them
//! with transparent huge pages.
//!
//! A decode step streams every weight and a step of 16 sequences reads tens of MiB of KV pages
//! scattered over the pool: with 4 KiB pages nearly every 4 KiB costs a TLB miss and a page walk,
//! and the hardware prefetchers stop at each 4 KiB boundary. Most distributions ship THP in
//! `madvise` mode, where only regions that ask get 2 MiB pages, so the buffer is mapped 2 MiB-
//! aligned and asks (MADV_HUGEPAGE). Where that is refused, or on other systems, it is an
//! ordinary page-allocator mapping; untouched memory still costs no RSS either way (a huge page
//! is faulted in on first touch, so RSS grows in 2 MiB steps).
const std = @import("std");
const builtin = @import("builtin");

const page = std.heap.page_size_min;
pub const huge_page: usize = 2 << 20;

/// Buffers smaller than this stay on ordinary pages (a huge page would be mostly empty).
const min_huge_len: usize = 4 * huge_page;

/// Whether a buffer of `len` bytes goes on the huge-page path (alloc and free must agree).
/// 2 MiB is a huge page only on 4 KiB-page Linux kernels (on 64 KiB-page arm64 kernels it is
/// 512 MiB): elsewhere, and for small buffers, ordinary pages.
fn onHugePages(len: usize) bool {
    if (comptime builtin.os.tag != .linux) return false;
    return len >= min_huge_len and std.heap.pageSize() == 4096;
}

/// A zero-filled buffer of `len` bytes (page-aligned); free with `free` and the same slice.
pub fn alloc(len: usize) error{OutOfMemory}![]align(page) u8 {
    if (!onHugePages(len)) return plainAlloc(len);
    const len_pages = std.mem.alignForward(usize, len, 4096);
    const span = std.math.add(usize, len_pages, huge_page) catch return error.OutOfMemory;
    const raw = std.posix.mmap(null, span, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0) catch return error.OutOfMemory;
    const start = std.mem.alignForward(usize, @intFromPtr(raw.ptr), huge_page);
    const lead = start - @intFromPtr(raw.ptr);
    const trail = span - lead - len_pages;
    // Trim the unaligned head and the tail (both whole pages) so `free` unmaps exactly the rest.
    if (lead > 0) _ = std.os.linux.munmap(raw.ptr, lead);
    if (trail > 0) _ = std.os.linux.munmap(@ptrFromInt(start + len_pages), trail);
    const buf: [*]align(page) u8 = @ptrFromInt(start);
    std.posix.madvise(buf, len_pages, std.os.linux.MADV.HUGEPAGE) catch {}; // THP off: 4 KiB pages
    return buf[0..len];
}

pub fn free(buf: []align(page) u8) void {
    if (!onHugePages(buf.len)) return plainFree(buf);
    _ = std.os.linux.munmap(buf.ptr, std.mem.alignForward(usize, buf.len, 4096));
}

/// Fresh pages from the page allocator. Its raw interface, because `alignedAlloc` fills the
/// memory with 0xAA in safe builds (touching every page and breaking the zero fill).
fn plainAlloc(len: usize) error{OutOfMemory}![]align(page) u8 {
    if (len == 0) return &.{};
    const p = std.heap.page_allocator.rawAlloc(len, .fromByteUnits(page), @returnAddress()) orelse return error.OutOfMemory;
    return @as([*]align(page) u8, @alignCast(p))[0..len];
}

fn plainFree(buf: []align(page) u8) void {
    if (buf.len == 0) return;
    std.heap.page_allocator.rawFree(buf, .fromByteUnits(page), @returnAddress());
}

test "huge buffers are 2 MiB aligned, zeroed, writable end to end, and small ones work too" {
    const empty = try alloc(0);
    free(empty);
    for ([_]usize{ 100, 3 * page + 5, min_huge_len + 12345 }) |len| {
        const b = try alloc(len);
        defer free(b);
        try std.testing.expectEqual(len, b.len);
        if (onHugePages(len)) try std.testing.expect(@intFromPtr(b.ptr) % huge_page == 0);
        try std.testing.expectEqual(@as(u8, 0), b[0]);
        try std.testing.expectEqual(@as(u8, 0), b[len - 1]);
        b[0] = 1;
        b[len - 1] = 2;
    }
}
