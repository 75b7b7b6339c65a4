//! The C ABI of libhearth: every `export fn` lives here and only here.
const std = @import("std");
const status = @import("status.zig");
const llama = @import("model/llama.zig");
const kv = @import("kv/pages.zig");
const kv_abi = @import("kv/abi.zig");
const kv_prefix = @import("kv/prefix.zig");
const kv_evict = @import("kv/evict.zig");

/// Bumped whenever an export's signature or meaning changes; checked by src/native at load.
pub const abi_version: u32 = 1;

export fn hearth_abi_version() u32 {
    return abi_version;
}

export fn hearth_last_error(buf: ?[*]u8, cap: usize) usize {
    return status.copyLastError(buf, cap);
}

// ---------------------------------------------------------------- model (model/llama.zig)

fn modelOf(handle: ?*llama.Model) ?*llama.Model {
    const m = handle orelse return null;
    if (!std.mem.isAligned(@intFromPtr(m), @alignOf(llama.Model)) or !m.isValid()) return null;
    return m;
}

fn aligned(comptime T: type, p: anytype) bool {
    return std.mem.isAligned(@intFromPtr(p), @alignOf(T));
}

/// Maps the GGUF at `path` and builds the model from the tensor table TS validated
/// (order: llama.global_tensors, then llama.layer_tensors per layer). Handle goes to `out`.
export fn hearth_model_create(
    path: ?[*]const u8,
    path_len: usize,
    hp: ?*const llama.Hparams,
    opts: ?*const llama.Options,
    tensors: ?[*]const llama.TensorDesc,
    n_tensors: usize,
    out: ?*?*llama.Model,
) i32 {
    const p = path orelse return status.fail(.null_pointer, "model path is null", .{});
    const h = hp orelse return status.fail(.null_pointer, "hyperparameters are null", .{});
    const o = opts orelse return status.fail(.null_pointer, "options are null", .{});
    const t = tensors orelse return status.fail(.null_pointer, "tensor table is null", .{});
    const dst = out orelse return status.fail(.null_pointer, "out handle is null", .{});
    if (!aligned(llama.Hparams, h) or !aligned(llama.Options, o) or !aligned(llama.TensorDesc, t) or !aligned(?*llama.Model, dst))
        return status.fail(.misaligned, "model create arguments are misaligned", .{});
    var m: *llama.Model = undefined;
    const rc = llama.create(std.heap.c_allocator, p[0..path_len], h, o, t[0..n_tensors], &m);
    if (rc < 0) return rc;
    dst.* = m;
    return 0;
}

export fn hearth_model_destroy(handle: ?*llama.Model) void {
    const m = modelOf(handle) orelse return;
    m.destroy();
}

/// One forward step over `n_rows` rows; returns the number of logits rows written, or a status.
export fn hearth_model_decode(
    handle: ?*llama.Model,
    n_rows: u32,
    tokens: ?[*]const i32,
    positions: ?[*]const i32,
    seq_ids: ?[*]const i32,
    want_logits: ?[*]const u8,
    out: ?[*]f32,
    out_rows_cap: u32,
) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    if (n_rows == 0) return 0;
    const tk = tokens orelse return status.fail(.null_pointer, "tokens is null", .{});
    const ps = positions orelse return status.fail(.null_pointer, "positions is null", .{});
    const sq = seq_ids orelse return status.fail(.null_pointer, "seq ids is null", .{});
    const wl = want_logits orelse return status.fail(.null_pointer, "want logits is null", .{});
    if (!aligned(i32, tk) or !aligned(i32, ps) or !aligned(i32, sq)) return status.fail(.misaligned, "batch arrays must be 4-byte aligned", .{});
    if (out) |o| if (!aligned(f32, o)) return status.fail(.misaligned, "logits output must be 4-byte aligned", .{});
    return llama.decode(m, tk[0..n_rows], ps[0..n_rows], sq[0..n_rows], wl[0..n_rows], out, out_rows_cap);
}

export fn hearth_seq_create(handle: ?*llama.Model) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    const s = m.cache.seqCreate() orelse return status.fail(.out_of_range, "all {d} sequence slots are in use", .{m.cache.seqs.len});
    kv_abi.seqCreated(m, s);
    return @intCast(s);
}

export fn hearth_seq_free(handle: ?*llama.Model, seq: i32) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    if (!m.cache.isActive(seq)) return status.fail(.invalid_argument, "sequence {d} is not open", .{seq});
    m.cache.seqFree(@intCast(seq));
    return 0;
}

export fn hearth_seq_length(handle: ?*llama.Model, seq: i32) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    if (!m.cache.isActive(seq)) return status.fail(.invalid_argument, "sequence {d} is not open", .{seq});
    return @intCast(m.cache.seqs[@intCast(seq)].len_tokens);
}

/// Context shift: keep the first `keep` tokens, drop the next `drop`, re-rope the rest.
export fn hearth_seq_shift(handle: ?*llama.Model, seq: i32, keep: i32, drop: i32) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    if (!m.cache.isActive(seq)) return status.fail(.invalid_argument, "sequence {d} is not open", .{seq});
    const len = m.cache.seqs[@intCast(seq)].len_tokens;
    if (keep < 0 or drop < 0 or @as(i64, keep) + drop > len)
        return status.fail(.out_of_range, "shift keep {d} + drop {d} exceeds the sequence length {d}", .{ keep, drop, len });
    const rc = kv_abi.beforeShift(m, @intCast(seq), @intCast(keep));
    if (rc < 0) return rc;
    llama.seqShift(m, @intCast(seq), @intCast(keep), @intCast(drop));
    return 0;
}

export fn hearth_kv_stats(handle: ?*llama.Model, out: ?*kv.Stats) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    const o = out orelse return status.fail(.null_pointer, "stats output is null", .{});
    if (!aligned(kv.Stats, o)) return status.fail(.misaligned, "stats output must be 8-byte aligned", .{});
    o.* = m.cache.stats();
    return 0;
}

// ---------------------------------------------------------------- KV tiers (kv/abi.zig)

/// Opens prefix sharing with a hot budget; with a directory and cold_max_bytes > 0 also the SSD tier
/// (and loads its manifest). `model_tag` roots every hash chain (one per model file and KV type).
export fn hearth_kv_tier_open(handle: ?*llama.Model, dir: ?[*]const u8, dir_len: usize, hot_budget_bytes: u64, cold_max_bytes: u64, model_tag: u64) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    if (dir_len > 0 and dir == null) return status.fail(.null_pointer, "cache directory is null", .{});
    return kv_abi.tierOpen(m, if (dir) |d| d[0..dir_len] else "", hot_budget_bytes, cold_max_bytes, model_tag);
}

export fn hearth_kv_tier_stats(handle: ?*llama.Model, out: ?*kv_prefix.Stats) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    const o = out orelse return status.fail(.null_pointer, "stats output is null", .{});
    if (!aligned(kv_prefix.Stats, o)) return status.fail(.misaligned, "stats output must be 8-byte aligned", .{});
    return kv_abi.tierStats(m, o);
}

/// Writes the prefix cache to SSD with a crash-safe manifest; returns the entries listed.
export fn hearth_kv_tier_persist(handle: ?*llama.Model) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    return kv_abi.tierPersist(m);
}

/// Opens a sequence holding the longest cached prefix of tokens; returns its id, reused count to out.
export fn hearth_seq_create_prefix(handle: ?*llama.Model, tokens: ?[*]const i32, n: u32, out_reused: ?*u32) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    const o = out_reused orelse return status.fail(.null_pointer, "reused output is null", .{});
    if (!aligned(u32, o)) return status.fail(.misaligned, "reused output must be 4-byte aligned", .{});
    return kv_abi.seqCreatePrefix(m, tokens, n, o);
}

/// Registers the pages of a sequence (holding exactly these tokens) for reuse; returns pages registered.
export fn hearth_seq_publish(handle: ?*llama.Model, seq: i32, tokens: ?[*]const i32, n: u32) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    return kv_abi.seqPublish(m, seq, tokens, n);
}

export fn hearth_seq_save(handle: ?*llama.Model, seq: i32, tokens: ?[*]const i32, n: u32, model_tag: u64, path: ?[*]const u8, path_len: usize, out_bytes: ?*u64) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    const p = path orelse return status.fail(.null_pointer, "session path is null", .{});
    const o = out_bytes orelse return status.fail(.null_pointer, "bytes output is null", .{});
    if (!aligned(u64, o)) return status.fail(.misaligned, "bytes output must be 8-byte aligned", .{});
    return kv_abi.seqSave(m, seq, tokens, n, model_tag, p[0..path_len], o);
}

/// Restores a saved sequence into a new one; returns its id, tokens to tokens_out, their count to out_n.
export fn hearth_seq_restore(handle: ?*llama.Model, path: ?[*]const u8, path_len: usize, model_tag: u64, tokens_out: ?[*]i32, cap: u32, out_n: ?*u32) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    const p = path orelse return status.fail(.null_pointer, "session path is null", .{});
    const o = out_n orelse return status.fail(.null_pointer, "count output is null", .{});
    if (!aligned(u32, o)) return status.fail(.misaligned, "count output must be 4-byte aligned", .{});
    return kv_abi.seqRestore(m, p[0..path_len], model_tag, tokens_out, cap, o);
}

/// Replays the seeded multi-session trace through LRU and ARC (bench/kv.ts reports both hit rates).
export fn hearth_kv_trace_replay(seed: u64, events: u32, capacity_pages: u32, out: ?*kv_evict.ReplayResult) i32 {
    const o = out orelse return status.fail(.null_pointer, "replay output is null", .{});
    if (!aligned(kv_evict.ReplayResult, o)) return status.fail(.misaligned, "replay output must be 8-byte aligned", .{});
    return kv_abi.traceReplay(seed, events, capacity_pages, o);
}

test {
    std.testing.refAllDecls(@This());
    _ = status;
    _ = @import("ops.zig");
    _ = @import("kv/pages.zig");
    _ = @import("attention.zig");
    _ = @import("kv/evict.zig");
    _ = @import("kv/tier.zig");
    _ = @import("kv/prefix.zig");
    _ = @import("kv/snapshot.zig");
}
