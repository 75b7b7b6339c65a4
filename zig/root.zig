//! The C ABI of libhearth: every `export fn` lives here and only here.
const std = @import("std");
const status = @import("status.zig");
const limits = @import("limits.zig");
const model = @import("model/model.zig");
const kv = @import("kv/pages.zig");
const quant = @import("quant.zig");
const ops = @import("ops.zig");
const sampling = @import("sampling.zig");
const simd = @import("simd.zig");
const matmul_mod = @import("matmul.zig");
const interleave = @import("interleave.zig");
const Pool = @import("pool.zig").Pool;
const PoolStats = @import("pool.zig").Stats;

const fail = status.fail;
const BlockQ8Act = quant.BlockQ8Act;
const kv_abi = @import("kv/abi.zig");
const kv_prefix = @import("kv/prefix.zig");
const kv_evict = @import("kv/evict.zig");

/// Bumped whenever an export's signature or meaning changes; checked by src/native at load.
pub const abi_version: u32 = 14;

export fn hearth_abi_version() u32 {
    return abi_version;
}

export fn hearth_last_error(buf: ?[*]u8, cap: usize) usize {
    return status.copyLastError(buf, cap);
}

/// The limits, page size and status codes TypeScript reads once at load (zig/limits.zig).
export fn hearth_limits(out: ?*limits.Limits) i32 {
    const o = out orelse return fail(.null_pointer, "limits output is null", .{});
    if (!aligned(limits.Limits, o)) return fail(.misaligned, "limits output must be 4-byte aligned", .{});
    o.* = .{};
    return 0;
}

/// Field names of the extern struct `id`, comma-separated; returns the bytes written.
export fn hearth_layout_names(id: u32, out: ?[*]u8, cap: u32) i32 {
    const o = out orelse return fail(.null_pointer, "layout names output is null", .{});
    const n = limits.layoutNames(id, o[0..cap]);
    if (n < 0) return fail(.invalid_argument, "layout {d} is unknown or {d} bytes are too few", .{ id, cap });
    return n;
}

/// Size and field offsets of the extern struct `id` (limits.layouts), checked by TypeScript at load.
export fn hearth_layout(id: u32, out: ?[*]u32, cap: u32) i32 {
    const o = out orelse return fail(.null_pointer, "layout output is null", .{});
    if (!aligned(u32, o)) return fail(.misaligned, "layout output must be 4-byte aligned", .{});
    const n = limits.layout(id, o[0..cap]);
    if (n < 0) return fail(.invalid_argument, "layout {d} is unknown or {d} entries are too few", .{ id, cap });
    return n;
}

// ---------------------------------------------------------------- kernels: argument checks

fn checkType(t: u32) ?quant.GgmlType {
    const ty: quant.GgmlType = @fromBackingInt(@intCast(t));
    return if (ty.isSupported()) ty else null;
}

/// Row of `cols` elements of type `t`: the type is supported and cols a positive multiple of its block.
fn checkRow(t: u32, cols: usize) i32 {
    const ty = checkType(t) orelse return fail(.unsupported, "ggml type {d} is not supported (f32=0, f16=1, q4_0=2, q4_1=3, q5_0=6, q5_1=7, q8_0=8, q4_K=12, q6_K=14)", .{t});
    if (cols == 0) return fail(.invalid_argument, "cols must be > 0", .{});
    if (cols % ty.blockElems() != 0) return fail(.invalid_argument, "cols {d} is not a multiple of {d} for {s}", .{ cols, ty.blockElems(), @tagName(ty) });
    return 0;
}

fn checkF32(p: ?*const anyopaque, comptime what: []const u8) i32 {
    const addr = @intFromPtr(p orelse return fail(.null_pointer, what ++ " is null", .{}));
    if (addr % @alignOf(f32) != 0) return fail(.misaligned, what ++ " is not 4-byte aligned", .{});
    return 0;
}

fn checkBytes(p: ?*const anyopaque, len_bytes: usize, need_bytes: usize, comptime what: []const u8) i32 {
    if (p == null) return fail(.null_pointer, what ++ " is null", .{});
    if (len_bytes < need_bytes) return fail(.out_of_range, what ++ " holds {d} bytes, {d} needed", .{ len_bytes, need_bytes });
    return 0;
}

fn asPool(p: ?*anyopaque) ?*Pool {
    return @ptrCast(@alignCast(p));
}

// ---------------------------------------------------------------- kernels: exports

/// Bytes of one row of `cols` elements of `ggml_type`, or a negative status.
export fn hearth_row_size_bytes(ggml_type: u32, cols: usize) i64 {
    const rc = checkRow(ggml_type, cols);
    if (rc < 0) return rc;
    return @intCast(quant.rowSizeBytes(@fromBackingInt(@intCast(ggml_type)), cols));
}

/// Creates a persistent pool of `n_threads` (the calling thread included) and stores it in `out_pool`.
export fn hearth_pool_create(n_threads: u32, out_pool: ?*?*anyopaque) i32 {
    const out = out_pool orelse return fail(.null_pointer, "out_pool is null", .{});
    if (n_threads == 0 or n_threads > @import("pool.zig").max_threads)
        return fail(.invalid_argument, "threads must be in 1..{d}, got {d}", .{ @import("pool.zig").max_threads, n_threads });
    const pool = Pool.init(std.heap.c_allocator, n_threads) catch |e|
        return fail(.out_of_memory, "cannot start {d} threads: {s}", .{ n_threads, @errorName(e) });
    out.* = pool;
    return 0;
}

export fn hearth_pool_destroy(pool: ?*anyopaque) i32 {
    const p = asPool(pool) orelse return fail(.null_pointer, "pool is null", .{});
    p.deinit();
    return 0;
}

/// Threads of the pool (caller included), or a negative status.
export fn hearth_pool_threads(pool: ?*anyopaque) i32 {
    const p = asPool(pool) orelse return fail(.null_pointer, "pool is null", .{});
    return @intCast(p.n_threads);
}

/// The pool's counters (pool.Stats: stalls, solo periods, who ran the tasks) into `out`.
export fn hearth_pool_stats(pool: ?*anyopaque, out: ?*PoolStats) i32 {
    const p = asPool(pool) orelse return fail(.null_pointer, "pool is null", .{});
    const o = out orelse return fail(.null_pointer, "stats output is null", .{});
    if (!aligned(PoolStats, o)) return fail(.misaligned, "stats output must be 8-byte aligned", .{});
    o.* = p.stats();
    return 0;
}

/// Dequantizes one row of `n` elements of `ggml_type` from `src` (`src_len_bytes` readable) into `out`.
export fn hearth_dequantize_row(ggml_type: u32, src: ?[*]const u8, src_len_bytes: usize, out: ?[*]f32, n: usize) i32 {
    var rc = checkRow(ggml_type, n);
    if (rc < 0) return rc;
    const t: quant.GgmlType = @fromBackingInt(@intCast(ggml_type));
    rc = checkBytes(src, src_len_bytes, quant.rowSizeBytes(t, n), "src");
    if (rc < 0) return rc;
    rc = checkF32(out, "out");
    if (rc < 0) return rc;
    quant.dequantizeRow(t, src.?, out.?[0..n]);
    return 0;
}

/// Quantizes `n` floats from `x` into one row of `ggml_type` at `dst` (`dst_len_bytes` writable).
export fn hearth_quantize_row(ggml_type: u32, x: ?[*]const f32, n: usize, dst: ?[*]u8, dst_len_bytes: usize) i32 {
    var rc = checkRow(ggml_type, n);
    if (rc < 0) return rc;
    const t: quant.GgmlType = @fromBackingInt(@intCast(ggml_type));
    if (!quant.canQuantize(t)) return fail(.unsupported, "hearth reads {s} but does not quantize to it", .{t.name().?});
    rc = checkF32(x, "x");
    if (rc < 0) return rc;
    rc = checkBytes(dst, dst_len_bytes, quant.rowSizeBytes(t, n), "dst");
    if (rc < 0) return rc;
    quant.quantizeRow(t, x.?[0..n], dst.?);
    return 0;
}

/// Quantizes `n` activations (a multiple of 32) into n/32 BlockQ8Act (40 bytes each) at `out`,
/// rounded for Q4_1 / Q8_0 weights (ggml's Q8_1: `s` rounded to f16).
export fn hearth_quantize_act(x: ?[*]const f32, n: usize, out: ?[*]BlockQ8Act, out_len_bytes: usize) i32 {
    return quantizeActFor(.q4_1, x, n, out, out_len_bytes);
}

/// As hearth_quantize_act, for the weights of GGML type `ggml_type` (Q4_0 / Q5_0 want an exact `s`;
/// the K-quants want Q8_K: n a multiple of 256, each 256 values one 320-byte block (ggml's
/// block_q8_K, 292 bytes, then padding) in the place of 8 BlockQ8Act).
export fn hearth_quantize_act_for(ggml_type: u32, x: ?[*]const f32, n: usize, out: ?[*]BlockQ8Act, out_len_bytes: usize) i32 {
    const t: quant.GgmlType = @fromBackingInt(ggml_type);
    if (!t.isQuantized()) return status.fail(.unsupported, "activations are quantized only for quantized weight types, not type {d}", .{ggml_type});
    return quantizeActFor(t, x, n, out, out_len_bytes);
}

fn quantizeActFor(t: quant.GgmlType, x: ?[*]const f32, n: usize, out: ?[*]BlockQ8Act, out_len_bytes: usize) i32 {
    var rc = checkRow(@backingInt(if (t.isK()) quant.GgmlType.q4_k else quant.GgmlType.q8_0), n);
    if (rc < 0) return rc;
    rc = checkF32(x, "x");
    if (rc < 0) return rc;
    rc = checkF32(out, "out");
    if (rc < 0) return rc;
    const nb = n / quant.block_elems;
    rc = checkBytes(out, out_len_bytes, nb * @sizeOf(BlockQ8Act), "out");
    if (rc < 0) return rc;
    quant.quantizeActAs(quant.actSumFor(t), x.?[0..n], out.?[0..nb]);
    return 0;
}

/// One row dot product on the calling thread: quantized `w` against `act` (cols/32 blocks),
/// f32/f16 `w` against `x` (cols floats); the result goes to `out[0]`.
export fn hearth_dot(ggml_type: u32, w: ?[*]const u8, w_len_bytes: usize, cols: usize, x: ?[*]const f32, act: ?[*]const BlockQ8Act, out: ?*f32) i32 {
    var rc = checkRow(ggml_type, cols);
    if (rc < 0) return rc;
    const t: quant.GgmlType = @fromBackingInt(@intCast(ggml_type));
    rc = checkBytes(w, w_len_bytes, quant.rowSizeBytes(t, cols), "w");
    if (rc < 0) return rc;
    rc = checkF32(out, "out");
    if (rc < 0) return rc;
    rc = if (t.isQuantized()) checkF32(act, "act") else checkF32(x, "x");
    if (rc < 0) return rc;
    out.?.* = switch (t) {
        .f32 => simd.dotF32(@as([*]align(1) const f32, @ptrCast(w.?))[0..cols], x.?[0..cols]),
        .f16 => simd.dotF16(@ptrCast(w.?), x.?[0..cols]),
        .bf16 => simd.dotBf16(@ptrCast(w.?), x.?[0..cols]),
        else => quant.dotQuant(t, w.?, act.?[0 .. cols / quant.block_elems]),
    };
    return 0;
}

/// out[t*rows + r] = W[r,:] · token t, for n_tokens tokens (see matmul.matmul). Quantized
/// weights read `act` (n_tokens * cols/32 BlockQ8Act); f32/f16 weights read `x`
/// (n_tokens * cols floats). The unused one of x/act may be null. `layout` 0 is GGML's row
/// order, 1 is rows interleaved eight at a time (hearth_interleave; quantized, rows % 8 == 0).
export fn hearth_matmul(
    pool: ?*anyopaque,
    ggml_type: u32,
    layout: u32,
    w: ?[*]const u8,
    w_len_bytes: usize,
    rows: usize,
    cols: usize,
    x: ?[*]const f32,
    act: ?[*]const BlockQ8Act,
    n_tokens: usize,
    out: ?[*]f32,
    out_len: usize,
) i32 {
    const p = asPool(pool) orelse return fail(.null_pointer, "pool is null", .{});
    var rc = checkRow(ggml_type, cols);
    if (rc < 0) return rc;
    const t: quant.GgmlType = @fromBackingInt(@intCast(ggml_type));
    if (rows == 0 or n_tokens == 0) return fail(.invalid_argument, "rows and n_tokens must be > 0 (got {d}, {d})", .{ rows, n_tokens });
    const row_bytes = quant.rowSizeBytes(t, cols);
    const need_w = std.math.mul(usize, rows, row_bytes) catch return fail(.out_of_range, "rows * row size overflows", .{});
    rc = checkBytes(w, w_len_bytes, need_w, "w");
    if (rc < 0) return rc;
    rc = checkF32(out, "out");
    if (rc < 0) return rc;
    const need_out = std.math.mul(usize, rows, n_tokens) catch return fail(.out_of_range, "rows * n_tokens overflows", .{});
    if (out_len < need_out) return fail(.out_of_range, "out holds {d} floats, {d} needed", .{ out_len, need_out });
    rc = checkLayout(layout, t, rows, cols);
    if (rc < 0) return rc;
    const weight = matmul_mod.Weight{ .data = w.?, .type = t, .rows = rows, .cols = cols, .interleaved = layout == 1 };
    if (t.isQuantized()) {
        rc = checkF32(act, "act");
        if (rc < 0) return rc;
        const n_act = n_tokens * (cols / quant.block_elems);
        matmul_mod.matmul(p, weight, &.{}, act.?[0..n_act], n_tokens, out.?[0..need_out]);
    } else {
        rc = checkF32(x, "x");
        if (rc < 0) return rc;
        matmul_mod.matmul(p, weight, x.?[0 .. n_tokens * cols], &.{}, n_tokens, out.?[0..need_out]);
    }
    return 0;
}

fn checkLayout(layout: u32, t: quant.GgmlType, rows: usize, cols: usize) i32 {
    if (layout > 1) return fail(.invalid_argument, "layout {d} (0 plain, 1 interleaved)", .{layout});
    if (layout == 1 and !interleave.canInterleave(t, rows, cols))
        return fail(.invalid_argument, "an interleaved weight needs a quantized type and rows in whole groups of {d} (got {d} rows)", .{ interleave.group_rows, rows });
    return 0;
}

/// Repacks a plain quantized matrix (`rows` x `cols`, rows % 8 == 0) into the interleaved
/// layout hearth_matmul's layout 1 reads; `dst` has the same size as `src`.
export fn hearth_interleave(ggml_type: u32, src: ?[*]const u8, src_len_bytes: usize, rows: usize, cols: usize, dst: ?[*]u8, dst_len_bytes: usize) i32 {
    var rc = checkRow(ggml_type, cols);
    if (rc < 0) return rc;
    const t: quant.GgmlType = @fromBackingInt(@intCast(ggml_type));
    rc = checkLayout(1, t, rows, cols);
    if (rc < 0) return rc;
    const need = std.math.mul(usize, rows, quant.rowSizeBytes(t, cols)) catch return fail(.out_of_range, "rows * row size overflows", .{});
    rc = checkBytes(src, src_len_bytes, need, "src");
    if (rc < 0) return rc;
    const d = dst orelse return fail(.null_pointer, "dst is null", .{});
    if (dst_len_bytes < need) return fail(.out_of_range, "dst holds {d} bytes, {d} needed", .{ dst_len_bytes, need });
    interleave.repackGroups(t, src.?, d, cols, 0, rows / interleave.group_rows);
    return 0;
}

/// Greedy choice over `n` logits: writes the index of the highest (lowest on ties) to `out_index`
/// and returns 0; returns 1 with the first NaN's index, 3 with the first +inf's, 2 when every
/// value is -inf (nothing to choose) or n is 0.
export fn hearth_argmax(x: ?[*]const f32, n: usize, out_index: ?*u32) i32 {
    const o = out_index orelse return status.fail(.null_pointer, "out_index is null", .{});
    if (n == 0) return @backingInt(ops.Argmax.Kind.all_neg_inf);
    const p = x orelse return status.fail(.null_pointer, "logits are null", .{});
    if (!aligned(f32, p)) return status.fail(.invalid_argument, "logits are not 4-byte aligned", .{});
    if (n > std.math.maxInt(u32)) return status.fail(.invalid_argument, "{d} logits is more than 2^32 - 1", .{n});
    const r = ops.argmax(p[0..n]);
    o.* = @intCast(r.index);
    return @backingInt(r.kind);
}

/// A logits row's log-softmax normalizer and its `top` largest entries (OpenAI's logprobs):
/// out_lse = log(sum(exp(x))), out_ids = the `top` largest indices, largest first, lower index
/// first on ties; out_count = how many were written (min(top, n)). An id's log-probability is
/// x[id] - out_lse. NaN or +inf in the row gives a NaN normalizer.
export fn hearth_logprobs(x: ?[*]const f32, n: usize, top: u32, out_ids: ?[*]u32, out_lse: ?*f64, out_count: ?*u32) i32 {
    const lse = out_lse orelse return status.fail(.null_pointer, "out_lse is null", .{});
    const count = out_count orelse return status.fail(.null_pointer, "out_count is null", .{});
    if (top > sampling.max_top_k) return status.fail(.invalid_argument, "top {d} is more than {d}", .{ top, sampling.max_top_k });
    if (n > std.math.maxInt(u32)) return status.fail(.invalid_argument, "{d} logits is more than 2^32 - 1", .{n});
    if (n == 0) {
        lse.* = -std.math.inf(f64);
        count.* = 0;
        return 0;
    }
    const p = x orelse return status.fail(.null_pointer, "logits are null", .{});
    if (!aligned(f32, p)) return status.fail(.invalid_argument, "logits are not 4-byte aligned", .{});
    const ids: []u32 = if (top == 0) &.{} else (out_ids orelse return status.fail(.null_pointer, "out_ids is null", .{}))[0..top];
    if (top > 0 and !aligned(u32, ids.ptr)) return status.fail(.invalid_argument, "out_ids is not 4-byte aligned", .{});
    lse.* = sampling.logSumExp(p[0..n]);
    count.* = @intCast(sampling.topK(p[0..n], ids));
    return 0;
}

/// Sampling weights of a logits row at temperature 1 / inv_t (sampling.expWeights): out[i] =
/// exp((x[i] - max) * inv_t), their f64 sum in out_sum. `max` must be the row's maximum.
export fn hearth_exp_weights(x: ?[*]const f32, n: usize, max: f32, inv_t: f32, out: ?[*]f32, out_sum: ?*f64) i32 {
    const sum = out_sum orelse return status.fail(.null_pointer, "out_sum is null", .{});
    if (n == 0) {
        sum.* = 0;
        return 0;
    }
    const p = x orelse return status.fail(.null_pointer, "logits are null", .{});
    const o = out orelse return status.fail(.null_pointer, "out is null", .{});
    if (!aligned(f32, p) or !aligned(f32, o)) return status.fail(.invalid_argument, "logits or out are not 4-byte aligned", .{});
    if (!(inv_t > 0)) return status.fail(.invalid_argument, "inv_t must be positive, got {d}", .{inv_t});
    sum.* = sampling.expWeights(p[0..n], max, inv_t, o[0..n]);
    return 0;
}

/// Top-p over a whole logits row at temperature 1 (sampling.nucleus): the ids of the smallest
/// best-first set with mass >= p into out_ids (n), their count in out_count; `weights` (n f32)
/// gets exp(x - max) and `bucket_of` (n u16) is scratch. `max` must be the row's finite maximum.
export fn hearth_top_p(x: ?[*]const f32, n: usize, max: f32, p: f64, weights: ?[*]f32, bucket_of: ?[*]u16, out_ids: ?[*]u32, out_count: ?*u32) i32 {
    const count = out_count orelse return status.fail(.null_pointer, "out_count is null", .{});
    if (n == 0 or n > std.math.maxInt(u32)) return status.fail(.invalid_argument, "a row of {d} logits", .{n});
    if (!(p > 0 and p < 1)) return status.fail(.invalid_argument, "p must be in (0, 1), got {d}", .{p});
    if (!std.math.isFinite(max)) return status.fail(.invalid_argument, "max must be finite", .{});
    const row = x orelse return status.fail(.null_pointer, "logits are null", .{});
    const w = weights orelse return status.fail(.null_pointer, "weights are null", .{});
    const b = bucket_of orelse return status.fail(.null_pointer, "bucket_of is null", .{});
    const ids = out_ids orelse return status.fail(.null_pointer, "out_ids is null", .{});
    if (!aligned(f32, row) or !aligned(f32, w) or !aligned(u16, b) or !aligned(u32, ids))
        return status.fail(.invalid_argument, "a buffer is misaligned", .{});
    count.* = @intCast(sampling.nucleus(row[0..n], max, p, w[0..n], b[0..n], ids[0..n]));
    return 0;
}

// ---------------------------------------------------------------- model (model/model.zig)

fn modelOf(handle: ?*model.Model) ?*model.Model {
    const m = handle orelse return null;
    if (!std.mem.isAligned(@intFromPtr(m), @alignOf(model.Model)) or !m.isValid()) return null;
    return m;
}

/// The model's KV side as the tier operations see it (zig/kv knows no model).
fn kvOf(m: *model.Model) kv_abi.KvModel {
    return .{ .cache = m.cache, .tier = &m.kv_tier, .pool = m.pool };
}

fn aligned(comptime T: type, p: anytype) bool {
    return std.mem.isAligned(@intFromPtr(p), @alignOf(T));
}

/// Maps the GGUF at `path` and builds the model from the tensor table TS validated
/// (order: model.global_tensors, then model.layer_tensors per layer). Handle goes to `out`.
export fn hearth_model_create(
    path: ?[*]const u8,
    path_len: usize,
    hp: ?*const model.Hparams,
    opts: ?*const model.Options,
    tensors: ?[*]const model.TensorDesc,
    n_tensors: usize,
    out: ?*?*model.Model,
) i32 {
    const p = path orelse return status.fail(.null_pointer, "model path is null", .{});
    const h = hp orelse return status.fail(.null_pointer, "hyperparameters are null", .{});
    const o = opts orelse return status.fail(.null_pointer, "options are null", .{});
    const t = tensors orelse return status.fail(.null_pointer, "tensor table is null", .{});
    const dst = out orelse return status.fail(.null_pointer, "out handle is null", .{});
    if (!aligned(model.Hparams, h) or !aligned(model.Options, o) or !aligned(model.TensorDesc, t) or !aligned(?*model.Model, dst))
        return status.fail(.misaligned, "model create arguments are misaligned", .{});
    var m: *model.Model = undefined;
    const rc = model.create(std.heap.c_allocator, p[0..path_len], h, o, t[0..n_tensors], &m);
    if (rc < 0) return rc;
    dst.* = m;
    return 0;
}

export fn hearth_model_destroy(handle: ?*model.Model) void {
    const m = modelOf(handle) orelse return;
    m.destroy();
}

/// One forward step over `n_rows` rows; returns the number of logits rows written, or a status.
export fn hearth_model_decode(
    handle: ?*model.Model,
    n_rows: u32,
    tokens: ?[*]const i32,
    positions: ?[*]const i32,
    seq_ids: ?[*]const i32,
    want_logits: ?[*]const u8,
    out: ?[*]f32,
    out_rows_cap: u32,
) i32 {
    return decodeChecked(handle, n_rows, tokens, positions, seq_ids, want_logits, out, out_rows_cap, .logits);
}

/// The step of hearth_model_decode, writing for each row that wants output its final hidden state
/// after the output norm (n_embd floats; what embeddings pool) instead of logits.
export fn hearth_model_decode_hidden(
    handle: ?*model.Model,
    n_rows: u32,
    tokens: ?[*]const i32,
    positions: ?[*]const i32,
    seq_ids: ?[*]const i32,
    want: ?[*]const u8,
    out: ?[*]f32,
    out_rows_cap: u32,
) i32 {
    return decodeChecked(handle, n_rows, tokens, positions, seq_ids, want, out, out_rows_cap, .hidden);
}

/// The argument checks both decode exports share, then the step writing `output` rows.
fn decodeChecked(
    handle: ?*model.Model,
    n_rows: u32,
    tokens: ?[*]const i32,
    positions: ?[*]const i32,
    seq_ids: ?[*]const i32,
    want: ?[*]const u8,
    out: ?[*]f32,
    out_rows_cap: u32,
    comptime output: model.Output,
) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    if (n_rows == 0) return 0;
    const tk = tokens orelse return status.fail(.null_pointer, "tokens is null", .{});
    const ps = positions orelse return status.fail(.null_pointer, "positions is null", .{});
    const sq = seq_ids orelse return status.fail(.null_pointer, "seq ids is null", .{});
    const wl = want orelse return status.fail(.null_pointer, "want " ++ @tagName(output) ++ " is null", .{});
    if (!aligned(i32, tk) or !aligned(i32, ps) or !aligned(i32, sq)) return status.fail(.misaligned, "batch arrays must be 4-byte aligned", .{});
    if (out) |o| if (!aligned(f32, o)) return status.fail(.misaligned, @tagName(output) ++ " output must be 4-byte aligned", .{});
    return model.decode(m, tk[0..n_rows], ps[0..n_rows], sq[0..n_rows], wl[0..n_rows], out, out_rows_cap, output);
}

/// Greedy drafting for speculative decoding in one call (model.draft): a decode of the batch, then
/// per drafting sequence (each row with want = 1, in row order) up to depths[j] tokens, each fed
/// back as the next row. out_tokens holds n_draft * max_depth ids, out_counts n_draft counts;
/// `logits` is scratch for logits_rows vocabulary rows (at least n_draft). Returns the rounds run.
export fn hearth_model_draft(
    handle: ?*model.Model,
    n_rows: u32,
    tokens: ?[*]const i32,
    positions: ?[*]const i32,
    seq_ids: ?[*]const i32,
    want: ?[*]const u8,
    depths: ?[*]const u8,
    n_draft: u32,
    max_depth: u32,
    logits: ?[*]f32,
    logits_rows: u32,
    out_tokens: ?[*]i32,
    out_counts: ?[*]i32,
) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    if (n_rows == 0 or n_draft == 0) return status.fail(.invalid_argument, "draft: a batch of {d} rows with {d} drafting sequences", .{ n_rows, n_draft });
    const tk = tokens orelse return status.fail(.null_pointer, "tokens is null", .{});
    const ps = positions orelse return status.fail(.null_pointer, "positions is null", .{});
    const sq = seq_ids orelse return status.fail(.null_pointer, "seq ids is null", .{});
    const wl = want orelse return status.fail(.null_pointer, "want logits is null", .{});
    const dp = depths orelse return status.fail(.null_pointer, "depths is null", .{});
    const lg = logits orelse return status.fail(.null_pointer, "logits is null", .{});
    const ot = out_tokens orelse return status.fail(.null_pointer, "out tokens is null", .{});
    const oc = out_counts orelse return status.fail(.null_pointer, "out counts is null", .{});
    if (!aligned(i32, tk) or !aligned(i32, ps) or !aligned(i32, sq) or !aligned(f32, lg) or !aligned(i32, ot) or !aligned(i32, oc))
        return status.fail(.misaligned, "draft arrays must be 4-byte aligned", .{});
    var wanted: usize = 0;
    for (wl[0..n_rows]) |w| wanted += @intFromBool(w != 0);
    if (wanted != n_draft) return status.fail(.invalid_argument, "draft: {d} rows want logits but {d} sequences draft", .{ wanted, n_draft });
    if (logits_rows < n_draft) return status.fail(.invalid_argument, "draft: {d} sequences but logits for {d} rows", .{ n_draft, logits_rows });
    for (dp[0..n_draft], 0..) |d, j| if (d < 1 or d > max_depth)
        return status.fail(.out_of_range, "draft: sequence {d} asks depth {d}, outside [1, {d}]", .{ j, d, max_depth });
    return model.draft(m, tk[0..n_rows], ps[0..n_rows], sq[0..n_rows], wl[0..n_rows], dp[0..n_draft], max_depth, lg, logits_rows, ot, oc);
}

export fn hearth_seq_create(handle: ?*model.Model) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    const s = m.cache.seqCreate() orelse return status.fail(.out_of_range, "all {d} sequence slots are in use", .{m.cache.seqs.len});
    kv_abi.seqCreated(kvOf(m), s);
    return @intCast(s);
}

export fn hearth_seq_free(handle: ?*model.Model, seq: i32) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    if (!m.cache.isActive(seq)) return status.fail(.invalid_argument, "sequence {d} is not open", .{seq});
    m.cache.seqFree(@intCast(seq));
    return 0;
}

export fn hearth_seq_length(handle: ?*model.Model, seq: i32) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    if (!m.cache.isActive(seq)) return status.fail(.invalid_argument, "sequence {d} is not open", .{seq});
    return @intCast(m.cache.seqs[@intCast(seq)].len_tokens);
}

/// Context shift: keep the first `keep` tokens, drop the next `drop`, re-rope the rest.
export fn hearth_seq_shift(handle: ?*model.Model, seq: i32, keep: i32, drop: i32) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    if (!m.cache.isActive(seq)) return status.fail(.invalid_argument, "sequence {d} is not open", .{seq});
    const len = m.cache.seqs[@intCast(seq)].len_tokens;
    if (keep < 0 or drop < 0 or @as(i64, keep) + drop > len)
        return status.fail(.out_of_range, "shift keep {d} + drop {d} exceeds the sequence length {d}", .{ keep, drop, len });
    const rc = kv_abi.beforeShift(kvOf(m), @intCast(seq), @intCast(keep), @intCast(drop));
    if (rc < 0) return rc;
    model.seqShift(m, @intCast(seq), @intCast(keep), @intCast(drop));
    return 0;
}

export fn hearth_kv_stats(handle: ?*model.Model, out: ?*kv.Stats) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    const o = out orelse return status.fail(.null_pointer, "stats output is null", .{});
    if (!aligned(kv.Stats, o)) return status.fail(.misaligned, "stats output must be 8-byte aligned", .{});
    o.* = m.cache.stats();
    return 0;
}

/// The counters of the model's thread pool (pool.Stats) into `out`.
export fn hearth_model_pool_stats(handle: ?*model.Model, out: ?*PoolStats) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    const o = out orelse return status.fail(.null_pointer, "stats output is null", .{});
    if (!aligned(PoolStats, o)) return status.fail(.misaligned, "stats output must be 8-byte aligned", .{});
    o.* = m.pool.stats();
    return 0;
}

// ---------------------------------------------------------------- KV tiers (kv/abi.zig)

/// Opens prefix sharing with a hot budget; with a directory and cold_max_bytes > 0 also the SSD tier
/// (and loads its manifest). `model_tag` roots every hash chain (one per model file and KV type).
export fn hearth_kv_tier_open(handle: ?*model.Model, dir: ?[*]const u8, dir_len: usize, hot_budget_bytes: u64, cold_max_bytes: u64, model_tag: u64) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    if (dir_len > 0 and dir == null) return status.fail(.null_pointer, "cache directory is null", .{});
    return kv_abi.tierOpen(kvOf(m), if (dir) |d| d[0..dir_len] else "", hot_budget_bytes, cold_max_bytes, model_tag);
}

export fn hearth_kv_tier_stats(handle: ?*model.Model, out: ?*kv_prefix.Stats) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    const o = out orelse return status.fail(.null_pointer, "stats output is null", .{});
    if (!aligned(kv_prefix.Stats, o)) return status.fail(.misaligned, "stats output must be 8-byte aligned", .{});
    return kv_abi.tierStats(kvOf(m), o);
}

/// Writes the prefix cache to SSD with a crash-safe manifest; returns the entries listed.
export fn hearth_kv_tier_persist(handle: ?*model.Model) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    return kv_abi.tierPersist(kvOf(m));
}

/// Writes the manifest of the prefix-cache pages already on SSD (no hot pages written); returns the entries listed.
export fn hearth_kv_tier_checkpoint(handle: ?*model.Model) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    return kv_abi.tierCheckpoint(kvOf(m));
}

/// Opens a sequence holding the longest cached prefix of tokens; returns its id, reused count to out.
export fn hearth_seq_create_prefix(handle: ?*model.Model, tokens: ?[*]const i32, n: u32, out_reused: ?*u32) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    const o = out_reused orelse return status.fail(.null_pointer, "reused output is null", .{});
    if (!aligned(u32, o)) return status.fail(.misaligned, "reused output must be 4-byte aligned", .{});
    return kv_abi.seqCreatePrefix(kvOf(m), tokens, n, o);
}

/// Registers the pages of a sequence (holding exactly these tokens) for reuse; returns pages registered.
export fn hearth_seq_publish(handle: ?*model.Model, seq: i32, tokens: ?[*]const i32, n: u32) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    return kv_abi.seqPublish(kvOf(m), seq, tokens, n);
}

/// Moves the hot pages of the cached chain of tokens (from token from_tokens on) to the SSD tier now;
/// returns the pages that left RAM.
export fn hearth_kv_tier_spill(handle: ?*model.Model, tokens: ?[*]const i32, n: u32, from_tokens: u32) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    return kv_abi.tierSpill(kvOf(m), tokens, n, from_tokens);
}

/// Pool pages only the prefix cache holds (reclaimed on demand); 0 without a tier.
export fn hearth_kv_tier_reclaimable(handle: ?*model.Model) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    return kv_abi.tierReclaimable(kvOf(m));
}

/// Bytes of one portable KV page record (a page for a tier shared by replicas) of this model.
export fn hearth_kv_record_bytes(handle: ?*model.Model) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    return kv_abi.recordBytes(kvOf(m));
}

/// Chain keys of the whole pages of tokens (at most cap) to keys_out, the leading pages cached
/// here to out_local; returns the pages written.
export fn hearth_kv_chain(handle: ?*model.Model, tokens: ?[*]const i32, n: u32, keys_out: ?[*]u64, cap: u32, out_local: ?*u32) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    const k = keys_out orelse return status.fail(.null_pointer, "keys output is null", .{});
    if (!std.mem.isAligned(@intFromPtr(k), 8)) return status.fail(.misaligned, "keys output must be 8-byte aligned", .{});
    const o = out_local orelse return status.fail(.null_pointer, "local count output is null", .{});
    if (!aligned(u32, o)) return status.fail(.misaligned, "local count output must be 4-byte aligned", .{});
    return kv_abi.chain(kvOf(m), tokens, n, k, cap, o);
}

/// Writes whole page page_i of the cached chain of tokens as a portable record into out[0..len].
export fn hearth_kv_page_export(handle: ?*model.Model, tokens: ?[*]const i32, n: u32, page_i: u32, out: ?[*]u8, len: usize) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    const o = out orelse return status.fail(.null_pointer, "record output is null", .{});
    return kv_abi.pageExport(kvOf(m), tokens, n, page_i, o[0..len]);
}

/// Verifies a portable record against page page_i of tokens and adds it to the prefix cache,
/// pinned until hearth_kv_page_unpin: 1 added, 0 already cached, corrupt when it does not check out.
export fn hearth_kv_page_import(handle: ?*model.Model, tokens: ?[*]const i32, n: u32, page_i: u32, rec: ?[*]const u8, len: usize) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    const r = rec orelse return status.fail(.null_pointer, "record is null", .{});
    return kv_abi.pageImport(kvOf(m), tokens, n, page_i, r[0..len]);
}

/// Ends the pin an import put on page page_i of tokens (used != 0: its request attached it):
/// 1 when it was pinned, 0 when not.
export fn hearth_kv_page_unpin(handle: ?*model.Model, tokens: ?[*]const i32, n: u32, page_i: u32, used: u32) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    return kv_abi.pageUnpin(kvOf(m), tokens, n, page_i, used != 0);
}

export fn hearth_seq_save(handle: ?*model.Model, seq: i32, tokens: ?[*]const i32, n: u32, model_tag: u64, path: ?[*]const u8, path_len: usize, out_bytes: ?*u64) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    const p = path orelse return status.fail(.null_pointer, "session path is null", .{});
    const o = out_bytes orelse return status.fail(.null_pointer, "bytes output is null", .{});
    if (!aligned(u64, o)) return status.fail(.misaligned, "bytes output must be 8-byte aligned", .{});
    return kv_abi.seqSave(kvOf(m), seq, tokens, n, model_tag, p[0..path_len], o);
}

/// Restores a saved sequence into a new one; returns its id, tokens to tokens_out, their count to out_n.
export fn hearth_seq_restore(handle: ?*model.Model, path: ?[*]const u8, path_len: usize, model_tag: u64, tokens_out: ?[*]i32, cap: u32, out_n: ?*u32) i32 {
    const m = modelOf(handle) orelse return status.fail(.invalid_argument, "model handle is null or closed", .{});
    const p = path orelse return status.fail(.null_pointer, "session path is null", .{});
    const o = out_n orelse return status.fail(.null_pointer, "count output is null", .{});
    if (!aligned(u32, o)) return status.fail(.misaligned, "count output must be 4-byte aligned", .{});
    return kv_abi.seqRestore(kvOf(m), p[0..path_len], model_tag, tokens_out, cap, o);
}

// ---------------------------------------------------------------- test and benchmark section
// Not the production ABI: scalar twins, bandwidth probes, the FFI-overhead probe and the eviction
// trace replay that test/ and bench/ call and src/ never does (their TS symbols are in
// src/native/symbols/bench.ts). Kept together here so everything above is what the library uses.

/// Scalar twin of hearth_matmul (single thread), for tests and the benchmark.
export fn hearth_matmul_scalar(ggml_type: u32, layout: u32, w: ?[*]const u8, w_len_bytes: usize, rows: usize, cols: usize, x: ?[*]const f32, act: ?[*]const BlockQ8Act, n_tokens: usize, out: ?[*]f32, out_len: usize) i32 {
    var rc = checkRow(ggml_type, cols);
    if (rc < 0) return rc;
    const t: quant.GgmlType = @fromBackingInt(@intCast(ggml_type));
    if (rows == 0 or n_tokens == 0) return fail(.invalid_argument, "rows and n_tokens must be > 0", .{});
    rc = checkBytes(w, w_len_bytes, rows * quant.rowSizeBytes(t, cols), "w");
    if (rc < 0) return rc;
    rc = checkF32(out, "out");
    if (rc < 0) return rc;
    if (out_len < rows * n_tokens) return fail(.out_of_range, "out holds {d} floats, {d} needed", .{ out_len, rows * n_tokens });
    rc = if (t.isQuantized()) checkF32(act, "act") else checkF32(x, "x");
    if (rc < 0) return rc;
    rc = checkLayout(layout, t, rows, cols);
    if (rc < 0) return rc;
    const weight = matmul_mod.Weight{ .data = w.?, .type = t, .rows = rows, .cols = cols, .interleaved = layout == 1 };
    const n_act = n_tokens * (cols / t.blockElems());
    matmul_mod.matmulScalar(
        weight,
        if (t.isQuantized()) &.{} else x.?[0 .. n_tokens * cols],
        if (t.isQuantized()) act.?[0..n_act] else &.{},
        n_tokens,
        out.?[0 .. rows * n_tokens],
    );
    return 0;
}

pub const CopyMode = enum(u32) { ours = 0, builtin_memcpy = 1, vector_only = 2 };

/// Copies `n_bytes` from `src` to `dst` (no overlap) `repeat` times with the chosen routine
/// (0 = ours, 1 = @memcpy, 2 = our vector loop at every size); repeat lets the benchmark time tiny copies.
export fn hearth_memcpy(dst: ?[*]u8, src: ?[*]const u8, n_bytes: usize, mode: u32, repeat: u32) i32 {
    const d = dst orelse return fail(.null_pointer, "dst is null", .{});
    const s = src orelse return fail(.null_pointer, "src is null", .{});
    if (mode > 2) return fail(.invalid_argument, "mode must be 0, 1 or 2, got {d}", .{mode});
    if (n_bytes == 0) return 0;
    const da = @intFromPtr(d);
    const sa = @intFromPtr(s);
    if (da < sa + n_bytes and sa < da + n_bytes) return fail(.invalid_argument, "dst and src overlap", .{});
    for (0..@max(1, repeat)) |_| {
        switch (@as(CopyMode, @fromBackingInt(@intCast(mode)))) {
            .ours => simd.copy(d[0..n_bytes], s[0..n_bytes]),
            .builtin_memcpy => @memcpy(d[0..n_bytes], s[0..n_bytes]),
            .vector_only => simd.copyVector(d[0..n_bytes], s[0..n_bytes]),
        }
        // Keeps the repeats from being folded into one copy.
        asm volatile ("" ::: .{ .memory = true });
    }
    return 0;
}

const ReadJob = struct {
    bytes: []const u8,
    chunk_bytes: usize,
    sums: []std.atomic.Value(u64),
};

fn readTask(job: *const ReadJob, i: usize) void {
    const start = i * job.chunk_bytes;
    const end = @min(job.bytes.len, start + job.chunk_bytes);
    _ = job.sums[0].fetchAdd(simd.readSum(job.bytes[start..end]), .monotonic);
}

/// Read-only sweep of `n_bytes` at `src` split across the pool (the bandwidth limit line);
/// stores the byte sum in `out_sum` so the reads cannot be skipped.
export fn hearth_read_sweep(pool: ?*anyopaque, src: ?[*]const u8, n_bytes: usize, out_sum: ?*u64) i32 {
    const p = asPool(pool) orelse return fail(.null_pointer, "pool is null", .{});
    const s = src orelse return fail(.null_pointer, "src is null", .{});
    const o = out_sum orelse return fail(.null_pointer, "out_sum is null", .{});
    if (n_bytes == 0) return fail(.invalid_argument, "n_bytes must be > 0", .{});
    var sum: [1]std.atomic.Value(u64) = .{.init(0)};
    // One contiguous chunk per thread: each streams its own region like matvec rows do.
    const n_tasks = p.n_threads;
    const chunk = std.mem.alignForward(usize, std.math.divCeil(usize, n_bytes, n_tasks) catch unreachable, 64);
    const job = ReadJob{ .bytes = s[0..n_bytes], .chunk_bytes = chunk, .sums = &sum };
    p.run(std.math.divCeil(usize, n_bytes, chunk) catch unreachable, &job, readTask);
    o.* = sum[0].load(.monotonic);
    return 0;
}

/// Does nothing: the benchmark's FFI call overhead probe.
export fn hearth_noop(a: i32) i32 {
    return a;
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
    _ = limits;
    _ = @import("simd.zig");
    _ = @import("quant.zig");
    _ = @import("pool.zig");
    _ = @import("matmul.zig");
    _ = @import("interleave.zig");
    _ = @import("quant/kquants.zig");
    _ = @import("quant/kquants_x8.zig");
    _ = @import("ops.zig");
    _ = @import("sampling.zig");
    _ = @import("kv/pages.zig");
    _ = @import("attention.zig");
    _ = @import("kv/evict.zig");
    _ = @import("kv/tier.zig");
    _ = @import("kv/prefix.zig");
    _ = @import("kv/snapshot.zig");
    _ = @import("kv/portable.zig");
    _ = @import("hugemem.zig");
}
