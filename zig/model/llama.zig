//! The Llama family's forward pass, a straight list of ops over the shared model (model.zig):
//! Llama / SmolLM2, Llama 3.x (its rope_freqs live in the model's RoPE), SmolLM3 (no RoPE on every
//! fourth layer), Qwen 2 (Q/K/V biases) and Qwen 3 (per-head Q/K norms); what differs is applied
//! to the rows in model.QkvStore.
const ops = @import("../ops.zig");
const quant = @import("../quant.zig");
const fused = @import("fused.zig");
const model = @import("model.zig");

const Model = model.Model;

pub fn forward(m: *Model, tokens: []const i32, seq_ids: []const i32) void {
    const n = tokens.len;
    const d: usize = m.hp.n_embd;
    model.embed(m, tokens);
    for (m.layers, 0..) |*ly, l| {
        // Attention block. The previous layer's FFN residual is added here (fused with the norm).
        const nq: model.NormQuant = .{ .m = m, .add = l > 0, .w = ly.attn_norm, .wt = ly.wq.type };
        model.forRows(m, n, &nq, model.NormQuant.run);
        const qkv = [_]fused.Part{ .{ .w = ly.wq, .out = m.q }, .{ .w = ly.wk, .out = m.k }, .{ .w = ly.wv, .out = m.v } };
        // Layer 0's KV comes in during its own QKV matmul; later layers' during the FFN before.
        const pf_here: model.KvPrefetch = .{ .cache = m.cache, .pages = if (l == 0) m.kv_pf_pages[0..m.kv_pf_len] else &.{}, .layer = 0 };
        fused.matmulMany(m.pool, &qkv, m.xb[0 .. n * d], m.act[0 .. n * d / 32], n, pf_here.of());
        // Biases (Qwen 2), Q/K norms (Qwen 3), RoPE; K and V into the cache.
        const qs: model.QkvStore = .{ .m = m, .layer = l, .seq_ids = seq_ids };
        model.forRows(m, n, &qs, model.QkvStore.run);
        model.attend(m, l, seq_ids);
        model.mm(m, ly.wo, m.att, n, m.xb, null);
        // FFN block: x += attn_out, norm, quantize.
        const nf: model.NormQuant = .{ .m = m, .add = true, .w = ly.ffn_norm, .wt = ly.w_gate.type };
        model.forRows(m, n, &nf, model.NormQuant.run);
        const gate_up = [_]fused.Part{ .{ .w = ly.w_gate, .out = m.hg }, .{ .w = ly.w_up, .out = m.hu } };
        const next = m.kv_pf_pages[0..if (l + 1 < m.layers.len) m.kv_pf_len else 0];
        const pf_gate_up: model.KvPrefetch = .{ .cache = m.cache, .pages = next[0 .. next.len / 2], .layer = l + 1 };
        fused.matmulMany(m.pool, &gate_up, m.xb[0 .. n * d], m.act[0 .. n * d / 32], n, pf_gate_up.of());
        const sq: SwigluQuant = .{ .m = m, .wt = ly.w_down.type };
        model.forRows(m, n, &sq, SwigluQuant.run);
        const pf_down: model.KvPrefetch = .{ .cache = m.cache, .pages = next[next.len / 2 ..], .layer = l + 1 };
        model.mm(m, ly.w_down, m.hg, n, m.xb, pf_down.of());
    }
    // The last FFN residual.
    for (0..n) |i| ops.add(m.x[i * d ..][0..d], m.xb[i * d ..][0..d]);
}

/// hg[i] = silu(hg[i]) * hu[i], then its act blocks.
const SwigluQuant = struct {
    m: *Model,
    wt: quant.GgmlType,
    fn run(self: *const SwigluQuant, i: usize) void {
        const f = self.m.hp.n_ff;
        const g = self.m.hg[i * f ..][0..f];
        ops.swiglu(g, g, self.m.hu[i * f ..][0..f]);
        model.prepareAct(self.wt, g, self.m.act[i * f / 32 ..][0 .. f / 32]);
    }
};
