//! The Gemma 3 forward pass, as llama.cpp's gemma3 graph computes it: embeddings scaled by
//! sqrt(n_embd); RMSNorm before and after attention and the FFN (the GGUF stores the norm weights
//! as 1 + w already, so they multiply as they are); per-head Q/K norms; Q scaled after RoPE instead
//! of the scores; GeGLU (tanh GELU); five sliding-window layers (their own RoPE base) per global one.
const std = @import("std");
const ops = @import("../ops.zig");
const quant = @import("../quant.zig");
const fused = @import("fused.zig");
const model = @import("model.zig");

const Model = model.Model;
const NormQuant = model.NormQuant;
const forRows = model.forRows;

pub fn forward(m: *Model, tokens: []const i32, seq_ids: []const i32) void {
    const n = tokens.len;
    const d: usize = m.hp.n_embd;
    // x = token_embd[token] * sqrt(n_embd)
    model.embed(m, tokens);
    for (m.layers, 0..) |*ly, l| {
        // x += post_ffw_norm(previous FFN out); xb = attn_norm(x), quantized for Q/K/V.
        const prev_post = if (l > 0) m.layers[l - 1].post_ffn_norm else null;
        const an: NormQuant = .{ .m = m, .add = l > 0, .post = prev_post, .w = ly.attn_norm, .wt = ly.wq.type };
        forRows(m, n, &an, NormQuant.run);
        // q, k, v = Wq xb, Wk xb, Wv xb
        const qkv = [_]fused.Part{ .{ .w = ly.wq, .out = m.q }, .{ .w = ly.wk, .out = m.k }, .{ .w = ly.wv, .out = m.v } };
        fused.matmulMany(m.pool, &qkv, m.xb[0 .. n * d], m.act[0 .. n * d / 32], n, null);
        // Per-head q_norm / k_norm, RoPE (the sliding layers' base), q *= q_scale; K, V into the cache.
        const qs: model.QkvStore = .{ .m = m, .layer = l, .seq_ids = seq_ids };
        forRows(m, n, &qs, model.QkvStore.run);
        // Attention (the last n_swa keys on sliding layers), then Wo.
        model.attend(m, l, seq_ids);
        model.mm(m, ly.wo, m.att, n, m.xb, null);
        // x += post_attention_norm(attn out); xb = ffn_norm(x), quantized for gate/up.
        const fnq: NormQuant = .{ .m = m, .add = true, .post = ly.post_attn_norm.?, .w = ly.ffn_norm, .wt = ly.w_gate.type };
        forRows(m, n, &fnq, NormQuant.run);
        // hg, hu = W_gate xb, W_up xb; hg = gelu(hg) * hu; xb = W_down hg.
        const gate_up = [_]fused.Part{ .{ .w = ly.w_gate, .out = m.hg }, .{ .w = ly.w_up, .out = m.hu } };
        fused.matmulMany(m.pool, &gate_up, m.xb[0 .. n * d], m.act[0 .. n * d / 32], n, null);
        const gq: GegluQuant = .{ .m = m, .wt = ly.w_down.type };
        forRows(m, n, &gq, GegluQuant.run);
        model.mm(m, ly.w_down, m.hg, n, m.xb, null);
    }
    // x += post_ffw_norm(last FFN out).
    const last = m.layers[m.layers.len - 1].post_ffn_norm.?;
    for (0..n) |i| {
        const xb = m.xb[i * d ..][0..d];
        ops.rmsnorm(xb, xb, last, m.hp.rms_eps);
        ops.add(m.x[i * d ..][0..d], xb);
    }
}

/// hg[i] = gelu(hg[i]) * hu[i] through ggml's GELU table (Gemma 3), then its act blocks.
const GegluQuant = struct {
    m: *Model,
    wt: quant.GgmlType,
    fn run(self: *const GegluQuant, i: usize) void {
        const f = self.m.hp.n_ff;
        const g = self.m.hg[i * f ..][0..f];
        ops.geglu(g, g, self.m.hu[i * f ..][0..f], self.m.gelu.?);
        model.prepareAct(self.wt, g, self.m.act[i * f / 32 ..][0 .. f / 32]);
    }
};
