//! The model every family shares: hyperparameters, tensor table, buffers, the engine step and the
//! per-row ops the forward passes are made of. The forward passes themselves are one file per
//! family: model/llama.zig (Llama, SmolLM2, Llama 3.x, SmolLM3, Qwen 2, Qwen 3) and model/gemma3.zig.
//!
//! Weights stay in the mmapped GGUF file. TypeScript parses and validates the file and hands
//! over the hyperparameters and a fixed-order tensor table; everything is checked again here
//! against the file size and the shapes the hyperparameters imply, so a bad table is an error,
//! never a wild read. One `decode` call is one engine step: like llama_decode it takes rows of
//! (token, position, sequence, wants logits), appends them to their sequences' KV and writes the
//! requested logits rows.
const std = @import("std");
const builtin = @import("builtin");
const status = @import("../status.zig");
const ops = @import("../ops.zig");
const kv = @import("../kv/pages.zig");
const prefix = @import("../kv/prefix.zig");
const attention = @import("../attention.zig");
const quant = @import("../quant.zig");
const matmul_mod = @import("../matmul.zig");
const Pool = @import("../pool.zig").Pool;
const fused = @import("fused.zig");
const hugemem = @import("../hugemem.zig");
const interleave = @import("../interleave.zig");
const llama = @import("llama.zig");
const gemma3 = @import("gemma3.zig");

const Weight = matmul_mod.Weight;
const BlockQ8Act = quant.BlockQ8Act;

/// Hyperparameters, filled by src/native/model.ts from the GGUF metadata.
pub const Hparams = extern struct {
    n_vocab: u32,
    n_embd: u32,
    n_layer: u32,
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    n_ff: u32,
    n_ctx_train: u32,
    rope_dims: u32,
    /// ops.RopeType: 0 normal (llama), 2 neox.
    rope_type: u32,
    rope_freq_base: f32,
    rope_freq_scale: f32,
    rms_eps: f32,
    /// Arch: which forward pass and which optional tensors.
    arch: u32,
    /// Keys a sliding-window layer sees, its own included; 0: no layer slides.
    n_swa: u32,
    /// With n_swa > 0, layer l slides when l % swa_pattern < swa_pattern - 1 (Gemma 3: 6,
    /// five sliding layers then a global one); 0: every layer slides.
    swa_pattern: u32,
    /// RoPE of the sliding layers (Gemma 3: base 10000, no scaling).
    rope_freq_base_swa: f32,
    rope_freq_scale_swa: f32,
    /// Q is multiplied by this after RoPE and scores are not scaled again (Gemma 3); 0: scores are
    /// scaled by 1/sqrt(head_dim).
    q_scale: f32,
    /// Embedding rows are multiplied by this (Gemma 3: sqrt(n_embd)); 1 for the others.
    embd_scale: f32,
    /// With k > 0, layers l with (l + 1) % k == 0 use no RoPE (SmolLM3: 4); 0: every layer ropes.
    no_rope_layer_step: u32,
};

/// The forward pass a model runs (Hparams.arch).
pub const Arch = enum(u32) {
    llama = 0,
    qwen2 = 1,
    qwen3 = 2,
    gemma3 = 3,
    smollm3 = 4,

    /// Per-head RMSNorm of Q and K before RoPE.
    fn hasQkNorm(a: Arch) bool {
        return a == .qwen3 or a == .gemma3;
    }
    /// RMSNorm of the attention and FFN outputs before their residual adds.
    fn hasPostNorms(a: Arch) bool {
        return a == .gemma3;
    }
};

/// Runtime options (sizes fixed for the model's lifetime).
pub const Options = extern struct {
    n_threads: u32,
    kv_pages: u32,
    /// kv.KvType: 1 f16, 8 q8_0.
    kv_type: u32,
    max_batch_tokens: u32,
    max_sequences: u32,
    reserved: u32 = 0,
};

/// One tensor of the GGUF table: absolute file offset, size, GGML type, dims (innermost first).
pub const TensorDesc = extern struct {
    offset: u64,
    size_bytes: u64,
    type: u32,
    n_dims: u32,
    dims: [4]u64,
};

/// `type` of an absent optional tensor (`output.weight` when the embeddings are tied, and the
/// tensors only some families have).
pub const absent_type: u32 = 0xffff_ffff;

pub const global_tensors = [_][]const u8{ "token_embd.weight", "output_norm.weight", "output.weight", "rope_freqs.weight" };
/// Per layer; from attn_q.bias on, each is present only in the families that have it.
pub const layer_tensors = [_][]const u8{
    "attn_norm.weight",     "attn_q.weight",   "attn_k.weight",      "attn_v.weight",      "attn_output.weight",
    "ffn_norm.weight",      "ffn_gate.weight", "ffn_up.weight",      "ffn_down.weight",    "attn_q.bias",
    "attn_k.bias",          "attn_v.bias",     "attn_q_norm.weight", "attn_k_norm.weight", "post_attention_norm.weight",
    "post_ffw_norm.weight",
};
const first_optional_layer_tensor = 9;

pub const Layer = struct {
    attn_norm: []const f32,
    wq: Weight,
    wk: Weight,
    wv: Weight,
    wo: Weight,
    ffn_norm: []const f32,
    w_gate: Weight,
    w_up: Weight,
    w_down: Weight,
    /// Qwen 2's biases of Q, K and V.
    bq: ?[]const f32,
    bk: ?[]const f32,
    bv: ?[]const f32,
    /// Per-head norms of Q and K (head_dim values; Qwen 3, Gemma 3).
    q_norm: ?[]const f32,
    k_norm: ?[]const f32,
    /// Norms of the attention and FFN outputs before their residual adds (Gemma 3).
    post_attn_norm: ?[]const f32,
    post_ffn_norm: ?[]const f32,
    /// Sliding-window layer: attends to the last n_swa keys, with the sliding RoPE.
    swa: bool,
    /// Q and K are rotated (false on SmolLM3's no-RoPE layers).
    rope: bool,
};

/// Limits that keep the fixed-size stack buffers and table sizes honest.
pub const max_layers = 512;
pub const max_threads = 256;
pub const max_batch_tokens_limit = 1 << 16;
pub const max_sequences_limit = 4096;
/// Most KV pages one pool holds (2^24 pages of 16 tokens = 268M tokens).
pub const max_kv_pages = 1 << 24;

const model_magic: u64 = 0x6865_6172_7468_4d31; // "hearthM1"

pub const Model = struct {
    magic: u64,
    allocator: std.mem.Allocator,
    hp: Hparams,
    opts: Options,
    mapping: []align(std.heap.page_size_min) const u8,
    tok_embd: Weight,
    output: Weight,
    output_norm: []const f32,
    layers: []Layer,
    /// Norm weights stored as F16 in the file are widened once into this buffer.
    norm_store: []f32,
    /// Interleaved copies of the quantized matrices (interleave.zig); the file pages they came
    /// from are released after the copy.
    packed_weights: []align(std.heap.page_size_min) u8,
    pool: *Pool,
    cache: *kv.Cache,
    /// Prefix sharing and the hot/cold tiers (kv/prefix.zig), once hearth_kv_tier_open ran.
    kv_tier: ?*prefix.PrefixCache = null,
    arch: Arch,
    rope: ops.Rope,
    /// The sliding layers' RoPE (the same as `rope` when no layer slides).
    rope_swa: ops.Rope,
    /// Each layer's rope (null: the layer uses none), for the rows and the context shift.
    layer_ropes: []?*const ops.Rope,
    attn_scale: f32,
    /// ggml's GELU table (Gemma 3's GeGLU), else null.
    gelu: ?*ops.GeluTable,

    // Scratch sized for max_batch_tokens rows, allocated once; the f32 ones are slices of `slab`.
    slab: []f32,
    x: []f32,
    xb: []f32,
    q: []f32,
    k: []f32,
    v: []f32,
    att: []f32,
    hg: []f32,
    hu: []f32,
    act: []BlockQ8Act,
    rope_cos: []f32,
    rope_sin: []f32,
    /// Angles of the sliding layers' RoPE (empty when no layer slides).
    rope_cos_swa: []f32,
    rope_sin_swa: []f32,
    row_index: []u32,
    tiles: []attention.Tile,
    n_tiles: usize = 0,
    /// Query-key pairs of this step's attention (per layer), to skip the pool when tiny.
    attn_work: usize = 0,
    logit_rows: []u32,
    seq_rows: []u32,
    seq_last_pos: []i64,
    /// This step's sequences' KV pages (at most kv_prefetch_bytes per layer), prefetched for the
    /// next layer while the current one runs its FFN matmuls (KvPrefetch).
    kv_pf_pages: []u32,
    kv_pf_len: usize = 0,
    /// Attention's heap score stores, one per pool thread (attention.Stores).
    attn_stores: attention.Stores,

    pub fn isValid(self: *const Model) bool {
        return self.magic == model_magic;
    }

    pub fn destroy(self: *Model) void {
        const a = self.allocator;
        self.magic = 0;
        self.pool.deinit();
        if (self.kv_tier) |t| t.deinit();
        self.cache.deinit();
        std.posix.munmap(self.mapping);
        a.free(self.layers);
        a.free(self.layer_ropes);
        if (self.gelu) |g| a.destroy(g);
        a.free(self.norm_store);
        hugemem.free(self.packed_weights);
        a.free(self.slab);
        a.free(self.act);
        a.free(self.row_index);
        a.free(self.tiles);
        a.free(self.logit_rows);
        a.free(self.seq_rows);
        a.free(self.seq_last_pos);
        a.free(self.kv_pf_pages);
        self.attn_stores.deinit(a);
        a.destroy(self);
    }

    pub fn qDim(self: *const Model) usize {
        return @as(usize, self.hp.n_head) * self.hp.head_dim;
    }
    pub fn kvDim(self: *const Model) usize {
        return @as(usize, self.hp.n_head_kv) * self.hp.head_dim;
    }
};

fn typeName(t: u32) []const u8 {
    return quant.GgmlType.name(@fromBackingInt(t)) orelse "unsupported";
}

fn isMatrixType(t: u32) bool {
    return quant.GgmlType.isSupported(@fromBackingInt(t));
}

/// Whether weights of type `t` read Q8_K activations (the K-quants) rather than 32-value blocks.
fn readsQ8K(t: u32) bool {
    return quant.actSumFor(@fromBackingInt(t)) == .q8_k;
}

/// Matrices that read one activation buffer (Q/K/V, gate/up) must agree on its encoding, and
/// the attention output, quantized per KV group, must cut into whole Q8_K blocks.
fn checkActivationSharing(t: []const TensorDesc, layer: usize, hp: *const Hparams) i32 {
    if (readsQ8K(t[1].type) != readsQ8K(t[2].type) or readsQ8K(t[1].type) != readsQ8K(t[3].type))
        return status.fail(.unsupported, "blk.{d}: attn_q/k/v mix K-quant and 32-value block types ({s}, {s}, {s})", .{ layer, typeName(t[1].type), typeName(t[2].type), typeName(t[3].type) });
    if (readsQ8K(t[6].type) != readsQ8K(t[7].type))
        return status.fail(.unsupported, "blk.{d}: ffn_gate/up mix K-quant and 32-value block types ({s}, {s})", .{ layer, typeName(t[6].type), typeName(t[7].type) });
    const group_width = @as(u64, hp.n_head / hp.n_head_kv) * hp.head_dim;
    if (readsQ8K(t[4].type) and group_width % quant.kquants.super_elems != 0)
        return status.fail(.unsupported, "blk.{d}: attn_output is {s} but a KV group is {d} values wide (not whole 256-value blocks)", .{ layer, typeName(t[4].type), group_width });
    return 0;
}

/// The GGUF name of a table entry ("token_embd.weight", "blk.3.attn_q.weight") for messages.
const TensorName = struct {
    name: []const u8,
    layer: ?usize,

    pub fn format(self: TensorName, w: *std.Io.Writer) std.Io.Writer.Error!void {
        if (self.layer) |l| try w.print("blk.{d}.{s}", .{ l, self.name }) else try w.writeAll(self.name);
    }
};

/// Checks one tensor against the file and its expected shape; returns a status (negative) on failure.
fn checkTensor(d: TensorDesc, name: []const u8, layer: ?usize, file_size: u64, want: []const u64, matrix: bool) i32 {
    const tn: TensorName = .{ .name = name, .layer = layer };
    if (!isMatrixType(d.type)) {
        return status.fail(.unsupported, "tensor {f}: GGML type {d} is not supported ({s} are)", .{ tn, d.type, quant.GgmlType.supported_list });
    }
    if (d.n_dims != want.len) {
        return status.fail(.bad_model, "tensor {f}: {d} dims, expected {d}", .{ tn, d.n_dims, want.len });
    }
    for (want, 0..) |w, i| {
        if (d.dims[i] != w) return status.fail(.bad_model, "tensor {f}: dim {d} is {d}, expected {d}", .{ tn, i, d.dims[i], w });
    }
    const cols = want[0];
    const rows: u64 = if (want.len > 1) want[1] else 1;
    const t: quant.GgmlType = @fromBackingInt(d.type);
    if (cols % t.blockElems() != 0) {
        return status.fail(.bad_model, "tensor {f}: row length {d} is not a multiple of {d} for {s}", .{ tn, cols, t.blockElems(), typeName(d.type) });
    }
    const want_size = rows * quant.rowSizeBytes(t, @intCast(cols));
    if (d.size_bytes != want_size) {
        return status.fail(.bad_model, "tensor {f}: {d} bytes, expected {d}", .{ tn, d.size_bytes, want_size });
    }
    if (d.offset > file_size or d.size_bytes > file_size - d.offset) {
        return status.fail(.bad_model, "tensor {f}: data [{d}, +{d}) runs past the end of the file ({d} bytes)", .{ tn, d.offset, d.size_bytes, file_size });
    }
    if (!matrix and d.type != 0 and d.type != 1) {
        return status.fail(.unsupported, "tensor {f}: norm weights must be F32 or F16, got {s}", .{ tn, typeName(d.type) });
    }
    const elem_align: u64 = if (d.type == 0) 4 else 2;
    if (d.offset % elem_align != 0) {
        return status.fail(.bad_model, "tensor {f}: offset {d} is misaligned", .{ tn, d.offset });
    }
    return 0;
}

fn checkHparams(hp: *const Hparams, opts: *const Options) i32 {
    if (hp.n_vocab == 0 or hp.n_embd == 0 or hp.n_layer == 0 or hp.n_head == 0 or hp.n_head_kv == 0 or hp.n_ff == 0)
        return status.fail(.bad_model, "hyperparameters must be positive (vocab {d}, embd {d}, layers {d}, heads {d}/{d}, ffn {d})", .{ hp.n_vocab, hp.n_embd, hp.n_layer, hp.n_head, hp.n_head_kv, hp.n_ff });
    if (hp.n_layer > max_layers) return status.fail(.bad_model, "{d} layers is more than the supported {d}", .{ hp.n_layer, max_layers });
    if (hp.n_head % hp.n_head_kv != 0 or hp.n_head / hp.n_head_kv > attention.max_group)
        return status.fail(.unsupported, "{d} heads over {d} kv heads: groups must divide evenly and hold at most {d}", .{ hp.n_head, hp.n_head_kv, attention.max_group });
    if (!attention.headDimSupported(hp.head_dim)) return status.fail(.unsupported, "head dim {d} is not supported (32, 64, 80, 96, 128, 256)", .{hp.head_dim});
    if (hp.n_embd % 32 != 0 or hp.n_ff % 32 != 0) return status.fail(.unsupported, "embedding {d} and ffn {d} must be multiples of 32", .{ hp.n_embd, hp.n_ff });
    if (hp.rope_dims == 0 or hp.rope_dims % 2 != 0 or hp.rope_dims > hp.head_dim)
        return status.fail(.bad_model, "rope dimension count {d} must be even and at most the head dim {d}", .{ hp.rope_dims, hp.head_dim });
    if (hp.rope_type != 0 and hp.rope_type != 2) return status.fail(.unsupported, "rope type {d} (0 normal, 2 neox)", .{hp.rope_type});
    if (!(hp.rope_freq_base > 0) or !(hp.rope_freq_scale > 0) or !std.math.isFinite(hp.rope_freq_base) or !std.math.isFinite(hp.rope_freq_scale))
        return status.fail(.bad_model, "rope freq base {d} / scale {d} must be positive and finite", .{ hp.rope_freq_base, hp.rope_freq_scale });
    if (!(hp.rms_eps > 0) or !std.math.isFinite(hp.rms_eps)) return status.fail(.bad_model, "rms epsilon {d} must be positive", .{hp.rms_eps});
    if (hp.arch > @backingInt(Arch.smollm3)) return status.fail(.unsupported, "architecture {d} (0 llama, 1 qwen2, 2 qwen3, 3 gemma3, 4 smollm3)", .{hp.arch});
    if (hp.n_swa > 0 and (!(hp.rope_freq_base_swa > 0) or !(hp.rope_freq_scale_swa > 0) or !std.math.isFinite(hp.rope_freq_base_swa) or !std.math.isFinite(hp.rope_freq_scale_swa)))
        return status.fail(.bad_model, "sliding rope freq base {d} / scale {d} must be positive and finite", .{ hp.rope_freq_base_swa, hp.rope_freq_scale_swa });
    if (!(hp.q_scale >= 0) or !std.math.isFinite(hp.q_scale)) return status.fail(.bad_model, "query scale {d} must be finite and not negative", .{hp.q_scale});
    if (!(hp.embd_scale > 0) or !std.math.isFinite(hp.embd_scale)) return status.fail(.bad_model, "embedding scale {d} must be positive and finite", .{hp.embd_scale});
    if (opts.n_threads == 0 or opts.n_threads > max_threads) return status.fail(.invalid_argument, "threads {d} must be in [1, {d}]", .{ opts.n_threads, max_threads });
    if (opts.kv_pages == 0 or opts.kv_pages > max_kv_pages) return status.fail(.invalid_argument, "kv pages {d} must be in [1, {d}]", .{ opts.kv_pages, max_kv_pages });
    if (opts.kv_type != 1 and opts.kv_type != 8) return status.fail(.invalid_argument, "kv type {d} (1 f16, 8 q8_0)", .{opts.kv_type});
    if (opts.kv_type == 8 and hp.head_dim % 32 != 0) return status.fail(.unsupported, "q8_0 KV needs a head dim that is a multiple of 32", .{});
    if (opts.max_batch_tokens == 0 or opts.max_batch_tokens > max_batch_tokens_limit)
        return status.fail(.invalid_argument, "max batch tokens {d} must be in [1, {d}]", .{ opts.max_batch_tokens, max_batch_tokens_limit });
    if (opts.max_sequences == 0 or opts.max_sequences > max_sequences_limit)
        return status.fail(.invalid_argument, "max sequences {d} must be in [1, {d}]", .{ opts.max_sequences, max_sequences_limit });
    return 0;
}

fn mapFile(path: []const u8, out: *[]align(std.heap.page_size_min) const u8) i32 {
    var path_z: [4096]u8 = undefined;
    if (path.len == 0 or path.len >= path_z.len) return status.fail(.invalid_argument, "model path length {d} out of range", .{path.len});
    if (std.mem.indexOfScalar(u8, path, 0) != null) return status.fail(.invalid_argument, "model path contains a NUL byte", .{});
    @memcpy(path_z[0..path.len], path);
    path_z[path.len] = 0;
    const fd = std.c.open(@ptrCast(&path_z), .{ .ACCMODE = .RDONLY, .CLOEXEC = true });
    if (fd < 0) return status.fail(.io_error, "cannot open {f}: errno {d}", .{ status.quoted(path), std.c._errno().* });
    defer _ = std.c.close(fd);
    const end = std.c.lseek(fd, 0, std.c.SEEK.END);
    if (end <= 0) return status.fail(.io_error, "cannot size {f} (empty or unseekable)", .{status.quoted(path)});
    const size: usize = @intCast(end);
    // MAP_POPULATE (Linux) reads the file in up front instead of one fault per page.
    const flags: std.posix.MAP = if (builtin.os.tag == .linux) .{ .TYPE = .PRIVATE, .POPULATE = true } else .{ .TYPE = .PRIVATE };
    const mem = std.posix.mmap(null, size, .{ .READ = true }, flags, fd, 0) catch |err|
        return status.fail(.io_error, "cannot mmap {f}: {s}", .{ status.quoted(path), @errorName(err) });
    out.* = mem;
    return 0;
}

fn weightOf(mapping: []const u8, d: TensorDesc) Weight {
    const rows: usize = if (d.n_dims > 1) @intCast(d.dims[1]) else 1;
    return .{ .data = mapping.ptr + @as(usize, @intCast(d.offset)), .type = @fromBackingInt(@intCast(d.type)), .rows = rows, .cols = @intCast(d.dims[0]) };
}

/// Creates a model over the file at `path`. On success stores the handle in `out` and returns 0.
pub fn create(allocator: std.mem.Allocator, path: []const u8, hp: *const Hparams, opts: *const Options, tensors: []const TensorDesc, out: **Model) i32 {
    var rc = checkHparams(hp, opts);
    if (rc < 0) return rc;
    const n_layer: usize = hp.n_layer;
    const want_tensors = global_tensors.len + n_layer * layer_tensors.len;
    if (tensors.len != want_tensors) return status.fail(.invalid_argument, "tensor table has {d} entries, expected {d}", .{ tensors.len, want_tensors });

    var mapping: []align(std.heap.page_size_min) const u8 = undefined;
    rc = mapFile(path, &mapping);
    if (rc < 0) return rc;
    var ok = false;
    defer if (!ok) std.posix.munmap(mapping);
    const file_size: u64 = mapping.len;

    const d: u64 = hp.n_embd;
    const q_dim: u64 = @as(u64, hp.n_head) * hp.head_dim;
    const kv_dim: u64 = @as(u64, hp.n_head_kv) * hp.head_dim;
    rc = checkTensor(tensors[0], global_tensors[0], null, file_size, &.{ d, hp.n_vocab }, true);
    if (rc < 0) return rc;
    rc = checkTensor(tensors[1], global_tensors[1], null, file_size, &.{d}, false);
    if (rc < 0) return rc;
    const tied = tensors[2].type == absent_type;
    if (!tied) {
        rc = checkTensor(tensors[2], global_tensors[2], null, file_size, &.{ d, hp.n_vocab }, true);
        if (rc < 0) return rc;
    }
    if (tensors[3].type != absent_type) {
        rc = checkTensor(tensors[3], global_tensors[3], null, file_size, &.{hp.rope_dims / 2}, false);
        if (rc < 0) return rc;
    }
    const arch: Arch = @fromBackingInt(hp.arch);
    const hd: u64 = hp.head_dim;
    for (0..n_layer) |l| {
        const shapes = [_][]const u64{
            &.{d},     &.{ d, q_dim }, &.{ d, kv_dim }, &.{ d, kv_dim }, &.{ q_dim, d }, &.{d}, &.{ d, hp.n_ff }, &.{ d, hp.n_ff }, &.{ hp.n_ff, d },
            &.{q_dim}, &.{kv_dim},     &.{kv_dim},      &.{hd},          &.{hd},         &.{d}, &.{d},
        };
        for (shapes, layer_tensors, 0..) |shape, name, i| {
            const desc = tensors[global_tensors.len + l * layer_tensors.len + i];
            if (i >= first_optional_layer_tensor) {
                // Biases are optional everywhere; the norms are there exactly in the families that have them.
                const wanted: ?bool = switch (i) {
                    12, 13 => arch.hasQkNorm(),
                    14, 15 => arch.hasPostNorms(),
                    else => null,
                };
                const present = desc.type != absent_type;
                if (wanted) |w| if (w != present) return status.fail(.bad_model, "tensor blk.{d}.{s} is {s} for a {s} model", .{ l, name, if (present) "unexpected" else "missing", @tagName(arch) });
                if (!present) continue;
            }
            rc = checkTensor(desc, name, l, file_size, shape, shape.len == 2);
            if (rc < 0) return rc;
        }
        rc = checkActivationSharing(tensors[global_tensors.len + l * layer_tensors.len ..][0..layer_tensors.len], l, hp);
        if (rc < 0) return rc;
    }

    const m = build(allocator, mapping, hp, opts, tensors, tied) catch |err|
        return status.fail(.out_of_memory, "model buffers (KV {d} pages x {d} bytes, batch {d}, {d} threads): {s}", .{ opts.kv_pages, kvShape(hp, opts).pageSizeBytes(), opts.max_batch_tokens, opts.n_threads, @errorName(err) });
    ok = true;
    out.* = m;
    return 0;
}

fn kvShape(hp: *const Hparams, opts: *const Options) kv.Shape {
    return .{ .n_layer = hp.n_layer, .n_head_kv = hp.n_head_kv, .head_dim = hp.head_dim, .kv_type = @fromBackingInt(@intCast(opts.kv_type)) };
}

/// Allocates everything a validated model needs, once.
fn build(allocator: std.mem.Allocator, mapping: []align(std.heap.page_size_min) const u8, hp: *const Hparams, opts: *const Options, tensors: []const TensorDesc, tied: bool) !*Model {
    const n_layer: usize = hp.n_layer;
    const d: usize = hp.n_embd;
    const q_dim: usize = @as(usize, hp.n_head) * hp.head_dim;
    const kv_dim: usize = @as(usize, hp.n_head_kv) * hp.head_dim;
    const m = try allocator.create(Model);
    errdefer allocator.destroy(m);
    const layers = try allocator.alloc(Layer, n_layer);
    errdefer allocator.free(layers);
    const layer_ropes = try allocator.alloc(?*const ops.Rope, n_layer);
    errdefer allocator.free(layer_ropes);
    // Vectors (norms, biases, rope factors): F32 in the file are used in place; F16 ones are
    // widened into `vectors`.
    const hd: usize = hp.head_dim;
    const norm_store = try allocator.alloc(f32, (1 + 4 * n_layer) * d + n_layer * (2 * hd + q_dim + 2 * kv_dim) + hp.rope_dims / 2);
    errdefer allocator.free(norm_store);
    var vectors: VectorStore = .{ .map = mapping, .store = norm_store };

    var tok_embd = weightOf(mapping, tensors[0]);
    const arch: Arch = @fromBackingInt(hp.arch);
    for (layers, 0..) |*ly, l| {
        const t = tensors[global_tensors.len + l * layer_tensors.len ..][0..layer_tensors.len];
        ly.* = .{
            .attn_norm = vectors.of(t[0], d).?,
            .wq = weightOf(mapping, t[1]),
            .wk = weightOf(mapping, t[2]),
            .wv = weightOf(mapping, t[3]),
            .wo = weightOf(mapping, t[4]),
            .ffn_norm = vectors.of(t[5], d).?,
            .w_gate = weightOf(mapping, t[6]),
            .w_up = weightOf(mapping, t[7]),
            .w_down = weightOf(mapping, t[8]),
            .bq = vectors.of(t[9], q_dim),
            .bk = vectors.of(t[10], kv_dim),
            .bv = vectors.of(t[11], kv_dim),
            .q_norm = vectors.of(t[12], hd),
            .k_norm = vectors.of(t[13], hd),
            .post_attn_norm = vectors.of(t[14], d),
            .post_ffn_norm = vectors.of(t[15], d),
            .swa = hp.n_swa > 0 and (hp.swa_pattern == 0 or l % hp.swa_pattern < hp.swa_pattern - 1),
            .rope = hp.no_rope_layer_step == 0 or (l + 1) % hp.no_rope_layer_step != 0,
        };
    }
    const output_norm = vectors.of(tensors[1], d).?;
    const rope_factors = vectors.of(tensors[3], hp.rope_dims / 2);
    var output = if (tied) tok_embd else weightOf(mapping, tensors[2]);
    const gelu: ?*ops.GeluTable = if (arch == .gemma3) try allocator.create(ops.GeluTable) else null;
    errdefer if (gelu) |g| allocator.destroy(g);
    if (gelu) |g| g.init();

    const cache = try kv.Cache.init(allocator, kvShape(hp, opts), opts.kv_pages, opts.max_sequences);
    errdefer cache.deinit();
    const pool = try Pool.init(allocator, opts.n_threads);
    errdefer pool.deinit();

    // Every quantized matrix with whole row groups is read interleaved (one allocation).
    var matrices: std.ArrayList(*Weight) = .empty;
    defer matrices.deinit(allocator);
    try matrices.append(allocator, &tok_embd);
    if (!tied) try matrices.append(allocator, &output);
    for (layers) |*ly| try matrices.appendSlice(allocator, &.{ &ly.wq, &ly.wk, &ly.wv, &ly.wo, &ly.w_gate, &ly.w_up, &ly.w_down });
    const packed_weights = try interleaveWeights(pool, mapping, matrices.items);
    errdefer hugemem.free(packed_weights);
    if (tied) output = tok_embd;

    const b: usize = opts.max_batch_tokens;
    const widest = @max(d, @max(q_dim, hp.n_ff));
    const half_rope = hp.rope_dims / 2;
    const half_swa = if (hp.n_swa > 0) half_rope else 0;
    // All f32 scratch in one slab, carved into the named buffers.
    const sizes = [_]usize{ b * d, b * d, b * q_dim, b * kv_dim, b * kv_dim, b * q_dim, b * hp.n_ff, b * hp.n_ff, b * half_rope, b * half_rope, b * half_swa, b * half_swa };
    var total: usize = 0;
    for (sizes) |sz| total += sz;
    const slab = try allocator.alloc(f32, total);
    errdefer allocator.free(slab);
    var bufs: [sizes.len][]f32 = undefined;
    var at: usize = 0;
    for (sizes, 0..) |sz, i| {
        bufs[i] = slab[at..][0..sz];
        at += sz;
    }
    const act = try allocator.alloc(BlockQ8Act, b * widest / 32);
    errdefer allocator.free(act);
    const row_index = try allocator.alloc(u32, b);
    errdefer allocator.free(row_index);
    const tiles = try allocator.alloc(attention.Tile, b);
    errdefer allocator.free(tiles);
    const logit_rows = try allocator.alloc(u32, b);
    errdefer allocator.free(logit_rows);
    const seq_rows = try allocator.alloc(u32, opts.max_sequences);
    errdefer allocator.free(seq_rows);
    const seq_last_pos = try allocator.alloc(i64, opts.max_sequences);
    errdefer allocator.free(seq_last_pos);
    const kv_pf_pages = try allocator.alloc(u32, @min(opts.kv_pages, kvPrefetchPages(cache.shape)));
    errdefer allocator.free(kv_pf_pages);
    // A tile's queries over the longest sequence the pool can hold, capped.
    const store_pages = @min(attention.Stores.max_pages_each, attention.max_queries * @as(usize, opts.kv_pages));
    var attn_stores = try attention.Stores.init(allocator, pool.n_threads, store_pages);
    errdefer attn_stores.deinit(allocator);

    m.* = .{
        .magic = model_magic,
        .allocator = allocator,
        .hp = hp.*,
        .opts = opts.*,
        .mapping = mapping,
        .tok_embd = tok_embd,
        .output = output,
        .output_norm = output_norm,
        .layers = layers,
        .norm_store = norm_store,
        .packed_weights = packed_weights,
        .pool = pool,
        .cache = cache,
        .arch = arch,
        .rope = ops.Rope.initFactors(@fromBackingInt(@intCast(hp.rope_type)), hp.rope_dims, hp.rope_freq_base, hp.rope_freq_scale, rope_factors),
        .rope_swa = if (hp.n_swa > 0) ops.Rope.init(@fromBackingInt(@intCast(hp.rope_type)), hp.rope_dims, hp.rope_freq_base_swa, hp.rope_freq_scale_swa) else undefined,
        .layer_ropes = layer_ropes,
        .attn_scale = if (hp.q_scale > 0) 1.0 else 1.0 / @sqrt(@as(f32, @floatFromInt(hp.head_dim))),
        .gelu = gelu,
        .slab = slab,
        .x = bufs[0],
        .xb = bufs[1],
        .q = bufs[2],
        .k = bufs[3],
        .v = bufs[4],
        .att = bufs[5],
        .hg = bufs[6],
        .hu = bufs[7],
        .act = act,
        .rope_cos = bufs[8],
        .rope_sin = bufs[9],
        .rope_cos_swa = bufs[10],
        .rope_sin_swa = bufs[11],
        .row_index = row_index,
        .tiles = tiles,
        .logit_rows = logit_rows,
        .seq_rows = seq_rows,
        .seq_last_pos = seq_last_pos,
        .kv_pf_pages = kv_pf_pages,
        .attn_stores = attn_stores,
    };
    if (hp.n_swa == 0) m.rope_swa = m.rope;
    for (m.layer_ropes, layers) |*r, ly| r.* = if (!ly.rope) null else if (ly.swa) &m.rope_swa else &m.rope;
    return m;
}

/// 1-D tensors as f32: F32 in the file used in place, F16 widened into `store`.
const VectorStore = struct {
    map: []const u8,
    store: []f32,
    used: usize = 0,

    /// The `n` values of `desc`, or null when the tensor is absent.
    fn of(self: *VectorStore, desc: TensorDesc, n: usize) ?[]const f32 {
        if (desc.type == absent_type) return null;
        const ptr = self.map.ptr + @as(usize, @intCast(desc.offset));
        if (desc.type == 0) return @as([*]const f32, @ptrCast(@alignCast(ptr)))[0..n];
        const dst = self.store[self.used..][0..n];
        self.used += n;
        quant.dequantizeRow(.f16, ptr, dst);
        return dst;
    }
};

/// Copies each eligible matrix of `weights` into the interleaved layout (one buffer, in place of
/// the mmapped rows) on the pool, and hands the file pages back to the kernel as each piece is
/// copied, so peak memory stays near one copy of the weights.
fn interleaveWeights(pool: *Pool, mapping: []align(std.heap.page_size_min) const u8, weights: []const *Weight) ![]align(std.heap.page_size_min) u8 {
    var total: usize = 0;
    for (weights) |w| {
        if (interleave.canInterleave(w.type, w.rows, w.cols)) total += std.mem.alignForward(usize, w.rows * w.rowSizeBytes(), 64);
    }
    const buf = try hugemem.alloc(total);
    var at: usize = 0;
    for (weights) |w| {
        if (!interleave.canInterleave(w.type, w.rows, w.cols)) continue;
        const size = w.rows * w.rowSizeBytes();
        const job: RepackJob = .{ .w = w.*, .dst = buf.ptr + at, .mapping = mapping };
        pool.run(std.math.divCeil(usize, w.rows / interleave.group_rows, RepackJob.groups_per_task) catch unreachable, &job, RepackJob.run);
        w.data = buf.ptr + at;
        w.interleaved = true;
        at += std.mem.alignForward(usize, size, 64);
    }
    return buf;
}

const RepackJob = struct {
    const groups_per_task = 64;
    w: Weight,
    dst: [*]u8,
    mapping: []align(std.heap.page_size_min) const u8,

    fn run(self: *const RepackJob, task: usize) void {
        const n_groups = self.w.rows / interleave.group_rows;
        const g0 = task * groups_per_task;
        const g1 = @min(n_groups, g0 + groups_per_task);
        interleave.repackGroups(self.w.type, self.w.data, self.dst, self.w.cols, g0, g1);
        // Release the whole pages of the source range just copied (a neighbour's page at either
        // end stays; if it is dropped by the neighbour first it is simply read again).
        const group_bytes = interleave.group_rows * self.w.rowSizeBytes();
        const lo = @intFromPtr(self.w.data) + g0 * group_bytes;
        const hi = @intFromPtr(self.w.data) + g1 * group_bytes;
        const page = std.heap.page_size_min;
        const a = std.mem.alignForward(usize, lo, page);
        const b = std.mem.alignBackward(usize, hi, page);
        if (b > a) std.posix.madvise(@ptrFromInt(a), b - a, std.posix.MADV.DONTNEED) catch {};
    }
};

// ---------------------------------------------------------------- forward

/// Below this many query-key pairs a layer's attention runs on the calling thread: a short
/// decode step costs less than waking the pool.
const attn_inline_work = 2048;

/// Rows per task for the per-row ops when a batch is large enough to split.
const rows_per_task = 4;

pub fn forRows(m: *Model, n: usize, ctx: anytype, comptime func: fn (@TypeOf(ctx), usize) void) void {
    if (n <= rows_per_task) {
        for (0..n) |i| func(ctx, i);
        return;
    }
    const Chunked = struct {
        inner: @TypeOf(ctx),
        n: usize,
        fn run(self: *const @This(), task: usize) void {
            const lo = task * rows_per_task;
            const hi = @min(lo + rows_per_task, self.n);
            for (lo..hi) |i| func(self.inner, i);
        }
    };
    const c: Chunked = .{ .inner = ctx, .n = n };
    m.pool.run((n + rows_per_task - 1) / rows_per_task, &c, Chunked.run);
}

/// Row `x` as weights of type `t` read it: Q8 blocks into `act` for quantized weights; for F16
/// weights `x` itself rounded to f16, as ggml converts the activations of an F16 dot product.
/// (A fused group reads the rounding of its first weight's type; groups are one type in practice.)
pub fn prepareAct(t: quant.GgmlType, x: []f32, act: []BlockQ8Act) void {
    switch (t) {
        .f32 => {},
        .f16 => ops.roundToF16(x),
        .bf16 => ops.roundToBf16(x),
        else => quant.quantizeActAs(quant.actSumFor(t), x, act),
    }
}

/// Row i: x (+= xb, the block output just computed, first normalized by `post` when given) ->
/// xb = rmsnorm(x) * w -> act blocks.
pub const NormQuant = struct {
    m: *Model,
    /// Add xb into x first (every block but the first layer's attention).
    add: bool,
    /// Gemma 3's norm of that block output before the residual add.
    post: ?[]const f32 = null,
    w: []const f32,
    /// Type of the weights that read these activations (prepareAct).
    wt: quant.GgmlType,
    pub fn run(self: *const NormQuant, i: usize) void {
        const d = self.m.hp.n_embd;
        const eps = self.m.hp.rms_eps;
        const x = self.m.x[i * d ..][0..d];
        const xb = self.m.xb[i * d ..][0..d];
        if (self.add) {
            if (self.post) |pw| ops.rmsnorm(xb, xb, pw, eps);
            ops.add(x, xb);
        }
        ops.rmsnorm(xb, x, self.w, eps);
        prepareAct(self.wt, xb, self.m.act[i * d / 32 ..][0 .. d / 32]);
    }
};

/// Row i's Q, K, V after their matmuls: biases (Qwen 2), per-head norms (Qwen 3, Gemma 3), RoPE
/// (the sliding layers' own), Q's scale (Gemma 3); then K and V go into the row's page slot.
pub const QkvStore = struct {
    m: *Model,
    layer: usize,
    seq_ids: []const i32,
    pub fn run(self: *const QkvStore, i: usize) void {
        const m = self.m;
        const ly = &m.layers[self.layer];
        const hd = m.hp.head_dim;
        const half = m.hp.rope_dims / 2;
        const qd = m.qDim();
        const kvd = m.kvDim();
        const q = m.q[i * qd ..][0..qd];
        const k = m.k[i * kvd ..][0..kvd];
        const v = m.v[i * kvd ..][0..kvd];
        if (ly.bq) |b| ops.add(q, b);
        if (ly.bk) |b| ops.add(k, b);
        if (ly.bv) |b| ops.add(v, b);
        if (ly.q_norm) |w| ops.rmsnormHeads(q, m.hp.n_head, w, m.hp.rms_eps);
        if (ly.k_norm) |w| ops.rmsnormHeads(k, m.hp.n_head_kv, w, m.hp.rms_eps);
        const cos = (if (ly.swa) m.rope_cos_swa else m.rope_cos)[i * half ..][0..half];
        const sin = (if (ly.swa) m.rope_sin_swa else m.rope_sin)[i * half ..][0..half];
        if (m.layer_ropes[self.layer]) |rope| {
            rope.apply(q, m.hp.n_head, hd, cos, sin);
            rope.apply(k, m.hp.n_head_kv, hd, cos, sin);
        }
        if (m.hp.q_scale > 0) ops.scaleBy(q, m.hp.q_scale);
        // Q as ggml's K·Q product reads it: converted to K's f16 (llama.cpp without flash attention).
        ops.roundToF16(q);
        m.cache.storeBatch(self.layer, k, v, self.seq_ids[i..][0..1], m.row_index[i..][0..1]);
    }
};

/// Attention item plus the Q8 quantization of the heads it wrote (blocks never straddle heads).
const AttnQuant = struct {
    job: attention.Job,
    act: []BlockQ8Act,
    wt: quant.GgmlType,
    /// Items in reverse: a prefill's later rows see more keys, so the longest items are claimed
    /// first and the threads finish together instead of one waiting on the other's last long item.
    fn runLastFirst(self: *const AttnQuant, item: usize) void {
        self.run(self.job.items() - 1 - item);
    }
    fn run(self: *const AttnQuant, item: usize) void {
        self.job.run(item);
        const n_head_kv = self.job.cache.shape.n_head_kv;
        const hd = self.job.cache.shape.head_dim;
        const tile = self.job.tiles[item / n_head_kv];
        const g = item % n_head_kv;
        const group = self.job.n_head / n_head_kv;
        const width = self.job.n_head * hd;
        for (tile.row..tile.row + tile.count) |row| {
            const lo = row * width + g * group * hd;
            prepareAct(self.wt, self.job.out[lo..][0 .. group * hd], self.act[lo / 32 ..][0 .. group * hd / 32]);
        }
    }
};

/// Final norm of the rows that want output, gathered into xb rows 0..n_out (and quantized for
/// the output matrix when logits follow).
const OutNorm = struct {
    m: *Model,
    quantize: bool,
    fn run(self: *const OutNorm, k: usize) void {
        const m = self.m;
        const d = m.hp.n_embd;
        const r = m.logit_rows[k];
        const xb = m.xb[k * d ..][0..d];
        ops.rmsnorm(xb, m.x[r * d ..][0..d], m.output_norm, m.hp.rms_eps);
        if (self.quantize) prepareAct(m.output.type, xb, m.act[k * d / 32 ..][0 .. d / 32]);
    }
};

/// KV bytes per layer the FFN matmuls prefetch for the next layer's attention: a few MiB fit the
/// last-level cache beside the weights streaming through it; more would only evict each other.
const kv_prefetch_bytes = 6 << 20;
/// Least KV (all layers) of a step's sequences for the prefetch to run: twice a large L3.
const kv_prefetch_min_bytes = 64 << 20;

fn kvPrefetchPages(sh: kv.Shape) usize {
    return @max(1, kv_prefetch_bytes / (2 * sh.n_head_kv * sh.blockBytes()));
}

/// One layer's K and V blocks of the pages in `pages` (contiguous per page and layer: K of every
/// kv head, then V), split evenly over a matmul's tasks. In a batched decode step the attention
/// reads every sequence's whole KV from memory (16 sequences of 200 tokens: 2.3 MiB per layer)
/// while the matmuls around it are bound by arithmetic; prefetching the next layer's blocks
/// during the FFN turns the attention's cache misses into last-level cache hits.
pub const KvPrefetch = struct {
    cache: *const kv.Cache,
    pages: []const u32,
    layer: usize,

    fn issue(p: *const anyopaque, part: usize, parts: usize) void {
        const self: *const KvPrefetch = @ptrCast(@alignCast(p));
        const lo = part * self.pages.len / parts;
        const hi = (part + 1) * self.pages.len / parts;
        const bytes = 2 * self.cache.shape.n_head_kv * self.cache.shape.blockBytes();
        for (self.pages[lo..hi]) |page| {
            const base = self.cache.blockPtr(page, self.layer, .k, 0);
            var off: usize = 0;
            while (off < bytes) : (off += 64) @prefetch(base + off, .{ .rw = .read, .locality = 2, .cache = .data });
        }
    }

    pub fn of(self: *const KvPrefetch) ?matmul_mod.Prefetch {
        if (self.pages.len == 0) return null;
        return .{ .ctx = self, .issue = issue };
    }
};

pub fn mm(m: *Model, w: Weight, x: []const f32, n: usize, out: []f32, prefetch: ?matmul_mod.Prefetch) void {
    const cols = w.cols;
    matmul_mod.matmulPrefetch(m.pool, w, x[0 .. n * cols], m.act[0 .. n * cols / 32], n, out[0 .. n * w.rows], prefetch);
}

/// What a step writes for each row that wants output.
pub const Output = enum {
    /// n_vocab floats: the output matrix over the normed final hidden state.
    logits,
    /// n_embd floats: the final hidden state after the output norm, before the output matrix
    /// (what embeddings are pooled from, as llama.cpp's `result_norm`).
    hidden,
};

/// One engine step. Returns the number of output rows written to `out` (n_vocab floats each for
/// logits, n_embd for hidden states, in row order of the rows with want=1), or a negative status;
/// on error nothing was written.
pub fn decode(m: *Model, tokens: []const i32, positions: []const i32, seq_ids: []const i32, want: []const u8, out: ?[*]f32, out_rows_cap: usize, output: Output) i32 {
    const n = tokens.len;
    if (n == 0) return 0;
    if (n > m.opts.max_batch_tokens) return status.fail(.invalid_argument, "batch of {d} rows is larger than max batch tokens {d}", .{ n, m.opts.max_batch_tokens });
    const cache = m.cache;

    // Validate everything before touching any state.
    @memset(m.seq_rows, 0);
    var n_out: usize = 0;
    for (0..n) |i| {
        if (tokens[i] < 0 or tokens[i] >= m.hp.n_vocab) return status.fail(.out_of_range, "row {d}: token id {d} is outside the vocabulary [0, {d})", .{ i, tokens[i], m.hp.n_vocab });
        const s = seq_ids[i];
        if (!cache.isActive(s)) return status.fail(.invalid_argument, "row {d}: sequence {d} is not open", .{ i, s });
        if (positions[i] < 0) return status.fail(.out_of_range, "row {d}: negative position {d}", .{ i, positions[i] });
        const su: usize = @intCast(s);
        if (m.seq_rows[su] > 0 and positions[i] <= m.seq_last_pos[su])
            return status.fail(.invalid_argument, "row {d}: position {d} of sequence {d} is not after its previous row's {d}", .{ i, positions[i], s, m.seq_last_pos[su] });
        m.seq_last_pos[su] = positions[i];
        m.seq_rows[su] += 1;
        if (want[i] != 0) n_out += 1;
    }
    if (n_out > out_rows_cap) return status.fail(.invalid_argument, "{d} rows want {s} but the output holds {d}", .{ n_out, @tagName(output), out_rows_cap });
    if (n_out > 0 and out == null) return status.fail(.null_pointer, "{s} output is null", .{@tagName(output)});
    var pages_needed: usize = 0;
    for (m.seq_rows, 0..) |cnt, s| {
        if (cnt > 0) pages_needed += cache.pagesNeeded(@intCast(s), cnt);
    }
    // Pages only the prefix cache still holds go back to the pool (spilled to SSD) before kv_full.
    if (pages_needed > cache.n_free) if (m.kv_tier) |t| t.reclaim(pages_needed);
    if (pages_needed > cache.n_free)
        return status.fail(.kv_full, "KV pool full: this batch needs {d} more pages, {d} of {d} are free", .{ pages_needed, cache.n_free, cache.pages_total });

    // Commit: rent pages and give each row its token index in its sequence.
    for (m.seq_rows, 0..) |cnt, s| {
        if (cnt == 0) continue;
        const su: u32 = @intCast(s);
        m.seq_rows[s] = cache.seqs[su].len_tokens; // reuse as the next index to hand out
        cache.grow(su, cache.seqs[su].len_tokens + cnt);
    }
    n_out = 0;
    const half = m.hp.rope_dims / 2;
    for (0..n) |i| {
        const su: usize = @intCast(seq_ids[i]);
        m.row_index[i] = m.seq_rows[su];
        m.seq_rows[su] += 1;
        if (want[i] != 0) {
            m.logit_rows[n_out] = @intCast(i);
            n_out += 1;
        }
        m.rope.angles(positions[i], m.rope_cos[i * half ..][0..half], m.rope_sin[i * half ..][0..half]);
        if (m.hp.n_swa > 0) m.rope_swa.angles(positions[i], m.rope_cos_swa[i * half ..][0..half], m.rope_sin_swa[i * half ..][0..half]);
    }

    m.attn_work = 0;
    for (m.row_index[0..n]) |idx| m.attn_work += (@as(usize, idx) + 1) * m.hp.n_head;
    m.n_tiles = attention.makeTiles(seq_ids, m.row_index[0..n], attention.tileRows(m.hp.n_head / m.hp.n_head_kv), m.tiles);
    m.kv_pf_len = 0;
    var step_pages: usize = 0;
    for (m.seq_rows, 0..) |cnt, s| {
        if (cnt == 0) continue;
        const pages = cache.table(@intCast(s));
        step_pages += pages.len;
        const take = @min(pages.len, m.kv_pf_pages.len - m.kv_pf_len);
        @memcpy(m.kv_pf_pages[m.kv_pf_len..][0..take], pages[0..take]);
        m.kv_pf_len += take;
    }
    // A step whose KV fits the last-level cache finds it there anyway; prefetching it only
    // costs (measured: 1-3% slower at ~100-token contexts, 2-8% faster beyond ~200 with 16
    // sequences).
    if (step_pages * cache.shape.pageSizeBytes() < kv_prefetch_min_bytes) m.kv_pf_len = 0;
    switch (m.arch) {
        .llama, .qwen2, .qwen3, .smollm3 => llama.forward(m, tokens, seq_ids),
        .gemma3 => gemma3.forward(m, tokens, seq_ids),
    }

    if (n_out > 0) {
        const on: OutNorm = .{ .m = m, .quantize = output == .logits };
        forRows(m, n_out, &on, OutNorm.run);
        const d: usize = m.hp.n_embd;
        switch (output) {
            .logits => mm(m, m.output, m.xb, n_out, out.?[0 .. n_out * m.hp.n_vocab], null),
            .hidden => @memcpy(out.?[0 .. n_out * d], m.xb[0 .. n_out * d]),
        }
    }
    return @intCast(n_out);
}

/// Rows of the token embeddings into x, times Hparams.embd_scale (Gemma 3: sqrt(n_embd)).
pub fn embed(m: *Model, tokens: []const i32) void {
    const d: usize = m.hp.n_embd;
    const rb = quant.rowSizeBytes(m.tok_embd.type, d);
    for (tokens, 0..) |tok, i| {
        const row: usize = @intCast(tok);
        const x = m.x[i * d ..][0..d];
        if (m.tok_embd.interleaved)
            interleave.dequantizeRow(m.tok_embd.type, m.tok_embd.data, d, row, x)
        else
            quant.dequantizeRow(m.tok_embd.type, m.tok_embd.data + row * rb, x);
        if (m.hp.embd_scale != 1) ops.scaleBy(x, m.hp.embd_scale);
    }
}

/// Attention of layer l (sliding-window layers see their last n_swa keys) into att, quantized
/// for the output matrix.
pub fn attend(m: *Model, l: usize, seq_ids: []const i32) void {
    const n = seq_ids.len;
    const ly = &m.layers[l];
    const aq: AttnQuant = .{
        .job = .{
            .cache = m.cache,
            .layer = l,
            .q = m.q[0 .. n * m.qDim()],
            .out = m.att[0 .. n * m.qDim()],
            .seq_ids = seq_ids,
            .indices = m.row_index[0..n],
            .tiles = m.tiles[0..m.n_tiles],
            .n_head = m.hp.n_head,
            .scale = m.attn_scale,
            .window = if (ly.swa) m.hp.n_swa else 0,
            .stores = &m.attn_stores,
        },
        .act = m.act,
        .wt = ly.wo.type,
    };
    const items = aq.job.items();
    if (m.attn_work <= attn_inline_work) {
        for (0..items) |it| aq.run(it);
    } else m.pool.run(items, &aq, AttnQuant.runLastFirst);
}

pub fn seqShift(m: *Model, seq: u32, keep: usize, drop: usize) void {
    m.cache.shift(seq, keep, drop, m.layer_ropes);
}

/// Greedy drafting in one call: a decode of the batch (catch-up rows; each row that wants output
/// is a drafting sequence's last known token), then rounds of one row per sequence still drafting,
/// each fed the argmax of its previous row. Sequence j (the j-th row that wants output) drafts up
/// to depths[j] (1..max_depth) tokens into out_tokens[j * max_depth ..]; out_counts[j] says how
/// many. A round that finds the pool full ends drafting (nothing of it was written); a row without
/// a finite maximum (NaN, all -inf) ends that sequence's draft. `logits` holds at least one
/// vocabulary row per drafting sequence. Returns the rounds run (the first decode is round 1), or
/// a status when the first decode fails.
pub fn draft(
    m: *Model,
    tokens: []const i32,
    positions: []const i32,
    seq_ids: []const i32,
    want: []const u8,
    depths: []const u8,
    max_depth: usize,
    logits: [*]f32,
    logits_rows: usize,
    out_tokens: [*]i32,
    out_counts: [*]i32,
) i32 {
    const n = depths.len;
    const v: usize = m.hp.n_vocab;
    const a = m.allocator;
    const buf = a.alloc(i32, 6 * n) catch return status.fail(.out_of_memory, "draft: no memory for {d} sequences", .{n});
    defer a.free(buf);
    const ones = a.alloc(u8, n) catch return status.fail(.out_of_memory, "draft: no memory for {d} sequences", .{n});
    defer a.free(ones);
    @memset(ones, 1);
    // Per sequence: its id, the position of its next row, its row in the last call (or -1).
    const seq = buf[0..n];
    const pos = buf[n..][0..n];
    const row_of = buf[2 * n ..][0..n];
    // One round's batch, compacted.
    const r_tok = buf[3 * n ..][0..n];
    const r_pos = buf[4 * n ..][0..n];
    const r_seq = buf[5 * n ..][0..n];
    var j: usize = 0;
    for (0..tokens.len) |i| {
        if (want[i] == 0) continue;
        seq[j] = seq_ids[i];
        pos[j] = positions[i] + 1;
        row_of[j] = @intCast(j);
        out_counts[j] = 0;
        j += 1;
    }
    const rc = decode(m, tokens, positions, seq_ids, want, logits, logits_rows, .logits);
    if (rc < 0) return rc;
    var rounds: i32 = 1;
    while (true) {
        // Each drafting sequence's argmax from its row of the last call; those going on get a row.
        var rows: usize = 0;
        for (0..n) |k| {
            if (row_of[k] < 0) continue;
            const row: usize = @intCast(row_of[k]);
            row_of[k] = -1;
            const am = ops.argmax(logits[row * v ..][0..v]);
            if (am.kind != .ok and am.kind != .pos_inf) continue;
            const c: usize = @intCast(out_counts[k]);
            out_tokens[k * max_depth + c] = @intCast(am.index);
            out_counts[k] += 1;
            if (c + 1 >= depths[k]) continue;
            row_of[k] = @intCast(rows);
            r_tok[rows] = @intCast(am.index);
            r_pos[rows] = pos[k];
            r_seq[rows] = seq[k];
            rows += 1;
        }
        if (rows == 0) break;
        const got = decode(m, r_tok[0..rows], r_pos[0..rows], r_seq[0..rows], ones[0..rows], logits, logits_rows, .logits);
        if (got == @backingInt(status.Status.kv_full)) break; // nothing of this round was written
        if (got < 0) return got;
        for (0..n) |k| if (row_of[k] >= 0) {
            pos[k] += 1;
        };
        rounds += 1;
    }
    return rounds;
}
