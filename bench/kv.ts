// `bun run bench kv`: KV tiers on the default model. Resume of a saved session from SSD vs
// re-prefill (TTFT), session file write/read GB/s vs a plain sequential write/read of the same
// size on the same disk, prefix sharing TTFT ratio, ARC vs LRU hit rates on the seeded trace,
// and Q8_0 vs F16 KV (page bytes, greedy agreement, perplexity delta). Server level: TTFT of a
// follow-up chat turn of a ~1,000-token conversation whose KV was spilled to SSD (idle) or reloaded
// after a restart, vs a server with the prefix cache off.

import { dlopen, FFIType } from "bun:ffi";
import { closeSync, fsyncSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { pullModel } from "../src/gguf/pull.ts";
import { resumeSequence } from "../src/kv/index.ts";
import { check, type HearthLib, library, nativeAbi } from "../src/native/lib.ts";
import { createBatch, openNativeModel } from "../src/native/model.ts";
import type { Batch, NativeKvTiers, NativeModel } from "../src/native/model-api.ts";
import { Tokenizer } from "../src/tokenizer/index.ts";
import { startCheckoutServer } from "../test/server-process.ts";
import { type BenchOptions, type Cell, median, runStandalone, type SuiteResult } from "./lib.ts";

type TieredModel = NativeModel & NativeKvTiers;
const VOCAB = 49152;
const BATCH = 128;

/** posix_fadvise(DONTNEED): drops a file from the page cache so a read really comes from the disk. */
const libc = (() => {
  try {
    return dlopen("libc.so.6", {
      posix_fadvise: { args: [FFIType.i32, FFIType.i64, FFIType.i64, FFIType.i32], returns: FFIType.i32 },
    }).symbols;
  } catch {
    return null;
  }
})();
function dropFromPageCache(path: string): boolean {
  if (!libc) return false;
  const fd = openSync(path, "r");
  try {
    return libc.posix_fadvise(fd, 0n, 0n, 4) === 0; // POSIX_FADV_DONTNEED
  } finally {
    closeSync(fd);
  }
}

function argmax(row: Float32Array, off = 0): number {
  let best = 0;
  for (let i = 1; i < VOCAB; i++) if ((row[off + i] as number) > (row[off + best] as number)) best = i;
  return best;
}

class Runner {
  readonly batch: Batch = createBatch(BATCH);
  readonly logits = new Float32Array(VOCAB * BATCH);
  constructor(readonly m: NativeModel) {}

  /** Decodes tokens into seq from pos0; returns the argmax of the last row (first token of the reply). */
  prefill(seq: number, tokens: number[], pos0: number): number {
    let next = -1;
    for (let start = 0; start < tokens.length; start += BATCH) {
      const n = Math.min(BATCH, tokens.length - start);
      const b = this.batch;
      b.length = n;
      for (let i = 0; i < n; i++) {
        b.tokens[i] = tokens[start + i] as number;
        b.positions[i] = pos0 + start + i;
        b.seqIds[i] = seq;
        b.wantLogits[i] = start + i === tokens.length - 1 ? 1 : 0;
      }
      if (this.m.decode(b, this.logits) > 0) next = argmax(this.logits);
    }
    return next;
  }

  greedy(seq: number, first: number, pos: number, n: number): number[] {
    const out = [first];
    for (let i = 1; i < n; i++) out.push(this.prefill(seq, [out[i - 1] as number], pos + i - 1));
    return out;
  }

  /** Perplexity of `tokens` (every row's logits predict the next token), and each row's argmax
   * (the model's top token with the text's true context: teacher-forced, so one near-tie does
   * not change every later row as it does in a greedy run). */
  perplexity(tokens: number[]): { ppl: number; top: number[] } {
    const seq = this.m.seqCreate();
    const top: number[] = [];
    let nll = 0;
    let count = 0;
    for (let start = 0; start < tokens.length - 1; start += BATCH) {
      const n = Math.min(BATCH, tokens.length - 1 - start);
      const b = this.batch;
      b.length = n;
      for (let i = 0; i < n; i++) {
        b.tokens[i] = tokens[start + i] as number;
        b.positions[i] = start + i;
        b.seqIds[i] = seq;
        b.wantLogits[i] = 1;
      }
      this.m.decode(b, this.logits);
      for (let i = 0; i < n; i++) {
        const off = i * VOCAB;
        let max = -Infinity;
        let best = 0;
        for (let v = 0; v < VOCAB; v++)
          if ((this.logits[off + v] as number) > max) {
            max = this.logits[off + v] as number;
            best = v;
          }
        top.push(best);
        let sum = 0;
        for (let v = 0; v < VOCAB; v++) sum += Math.exp((this.logits[off + v] as number) - max);
        const target = tokens[start + i + 1] as number;
        nll += Math.log(sum) + max - (this.logits[off + target] as number);
        count++;
      }
    }
    this.m.seqFree(seq);
    return { ppl: Math.exp(nll / count), top };
  }
}

/** Plain sequential write (+fsync) of `bytes` on the same disk: the file and GB/s. */
function plainWrite(dir: string, bytes: number): { path: string; writeGbps: number } {
  const path = join(dir, "plain.bin");
  const chunk = Buffer.alloc(4 << 20, 0x5a);
  const t = performance.now();
  const fd = openSync(path, "w");
  for (let done = 0; done < bytes; done += chunk.length)
    writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - done));
  fsyncSync(fd);
  closeSync(fd);
  return { path, writeGbps: bytes / ((performance.now() - t) / 1000) / 1e9 };
}

/** Seconds to read `path` sequentially in 4 MiB chunks after dropping it from the page cache. */
function plainColdReadS(path: string): number {
  const chunk = Buffer.alloc(4 << 20);
  dropFromPageCache(path);
  const t = performance.now();
  const fd = openSync(path, "r");
  while (readSync(fd, chunk, 0, chunk.length, null) > 0) {}
  closeSync(fd);
  return (performance.now() - t) / 1000;
}

/** Cold reads of the session file and of the plain file, alternated (the disk is shared and
 * noisy: one read can land on a busy second); the medians make the figure. */
const COLD_READS = 5;

/** Deterministic English-ish prompt tokens: the repository's own docs, tokenized, repeated as needed. */
async function textTokens(tok: Tokenizer, n: number, salt: string): Promise<number[]> {
  const parts: string[] = [salt];
  for (const f of ["README.md", "docs/architecture.md", "docs/kv.md"]) {
    const file = Bun.file(join(import.meta.dir, "..", f));
    if (await file.exists()) parts.push(await file.text());
  }
  let ids = tok.encode(parts.join("\n\n"));
  while (ids.length < n) ids = ids.concat(ids);
  return ids.slice(0, n);
}

type Message = { role: "system" | "user" | "assistant"; content: string };

/** Milliseconds to the first streamed content of a greedy chat completion, and its whole text. */
async function streamedTtft(client: OpenAI, messages: Message[], maxTokens: number) {
  const t = performance.now();
  const stream = await client.chat.completions.create({
    model: "x",
    messages,
    max_tokens: maxTokens,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let ttftMs = -1;
  let text = "";
  let cached = 0;
  let promptTokens = 0;
  for await (const chunk of stream) {
    const piece = chunk.choices[0]?.delta.content ?? "";
    if (piece.length > 0 && ttftMs < 0) ttftMs = performance.now() - t;
    text += piece;
    if (chunk.usage) {
      cached = chunk.usage.prompt_tokens_details?.cached_tokens ?? 0;
      promptTokens = chunk.usage.prompt_tokens;
    }
  }
  return { ttftMs, text, cached, promptTokens };
}

async function scrape(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.split(" ")[1]);
}

/**
 * `hearth serve` end to end: turn 1 of a conversation with a long system prompt, the server left
 * idle until the conversation's pages are on SSD, then turn 2 (resume); the same turn 2 after a
 * restart on the same --kv-dir; and turn 2 on a server with the prefix cache off.
 */
async function serveResume(
  opts: BenchOptions,
  modelPath: string,
  tok: Tokenizer,
  dir: string,
  tokens: number,
) {
  const system = tok.decode(await textTokens(tok, tokens, "conversation"));
  const first: Message[] = [
    { role: "system", content: system },
    { role: "user", content: "Summarize the text above in one sentence." },
  ];
  const args = (extra: string[]) => [
    "-t",
    String(opts.threads),
    "--parallel",
    "2",
    "--ctx",
    "2048",
    "--kv-pages",
    "320",
    ...extra,
  ];
  const cached = ["--kv-dir", join(dir, "serve"), "--kv-idle-ms", "200"];
  let server = await startCheckoutServer(modelPath, args(cached));
  let second: Message[] = [];
  let resume: Awaited<ReturnType<typeof streamedTtft>>;
  let restart: Awaited<ReturnType<typeof streamedTtft>>;
  let ssdPagesRead = 0;
  try {
    let client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const a = await streamedTtft(client, first, 16);
    second = [
      ...first,
      { role: "assistant", content: a.text },
      { role: "user", content: "Give it a title." },
    ];
    // Idle: wait until the conversation left RAM.
    for (let i = 0; i < 400; i++) {
      if ((await scrape(server.url, "hearth_prefix_cache_idle_spilled_pages_total")) > 0) break;
      await Bun.sleep(50);
    }
    resume = await streamedTtft(client, second, 16);
    ssdPagesRead = await scrape(server.url, "hearth_kv_ssd_pages_read_total");
    await server.stop();
    server = await startCheckoutServer(modelPath, args(cached));
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
    restart = await streamedTtft(client, second, 16);
  } finally {
    await server.stop();
  }
  const off = await startCheckoutServer(modelPath, args(["--no-prefix-cache"]));
  let cold: Awaited<ReturnType<typeof streamedTtft>>;
  try {
    const client = new OpenAI({ baseURL: `${off.url}/v1`, apiKey: "unused", maxRetries: 0 });
    // Warm the weights the same way the cached server's turn 1 did.
    await streamedTtft(client, first, 16);
    cold = await streamedTtft(client, second, 16);
  } finally {
    await off.stop();
  }
  return { resume, restart, cold, ssdPagesRead, promptTokens: cold.promptTokens };
}

export async function run(opts: BenchOptions): Promise<SuiteResult> {
  const path = await pullModel();
  const md = new GgufMetadata(readGguf(path).metadata);
  const tok = Tokenizer.fromGguf(md);
  const sessionTokens = opts.quick ? 256 : 2000;
  const prefixTokens = opts.quick ? 256 : 1000;
  const pplTokens = opts.quick ? 128 : 512;
  const dir = mkdtempSync(join(tmpdir(), "hearth-bench-kv-"));
  const kvPages = Math.ceil((Math.max(sessionTokens, prefixTokens) + 64) / 16) * 2 + 16;
  const m = openNativeModel(path, {
    threads: opts.threads,
    kvPages,
    maxBatchTokens: BATCH,
    maxSequences: 4,
  }) as TieredModel;
  const r = new Runner(m);
  const rows: Array<Record<string, Cell>> = [];
  const summary: Record<string, number | string | null> = {};
  const notes: string[] = [];
  try {
    // --- resume vs re-prefill
    const conv = await textTokens(tok, sessionTokens, "session");
    let t = performance.now();
    const s0 = m.seqCreate();
    const firstReprefill = r.prefill(s0, conv, 0);
    const reprefillMs = performance.now() - t;
    // The session file holds all but the last token; resuming = restore + decode that token.
    m.seqFree(s0);
    const s1 = m.seqCreate();
    r.prefill(s1, conv.slice(0, -1), 0);
    const file = join(dir, "session.kv");
    t = performance.now();
    const bytes = m.seqSave(s1, conv.slice(0, -1), file);
    const saveS = (performance.now() - t) / 1000;
    m.seqFree(s1);
    const cold = dropFromPageCache(file);
    t = performance.now();
    const res = resumeSequence(m, file);
    if (!res.ok) throw new Error(`resume failed: ${res.message}`);
    const firstResume = r.prefill(res.seqId, conv.slice(-1), conv.length - 1);
    const resumeMs = performance.now() - t;
    m.seqFree(res.seqId);
    if (firstResume !== firstReprefill) notes.push("WARNING: resumed first token differs from re-prefill");
    const plain = plainWrite(dir, bytes);
    const restoreTimes: number[] = [];
    const plainTimes: number[] = [];
    for (let i = 0; i < COLD_READS; i++) {
      dropFromPageCache(file);
      const t0 = performance.now();
      const again = resumeSequence(m, file);
      if (!again.ok) throw new Error(`resume failed: ${again.message}`);
      restoreTimes.push((performance.now() - t0) / 1000);
      m.seqFree(again.seqId);
      plainTimes.push(plainColdReadS(plain.path));
    }
    rmSync(plain.path);
    const restoreS = median(restoreTimes);
    const plainReadGbps = bytes / median(plainTimes) / 1e9;
    summary.resume_ttft_ms = resumeMs;
    summary.reprefill_ttft_ms = reprefillMs;
    summary.resume_vs_reprefill = resumeMs / reprefillMs;
    summary.session_tokens = conv.length;
    summary.session_file_bytes = bytes;
    summary.kv_write_gbps = bytes / saveS / 1e9;
    summary.kv_read_gbps = bytes / restoreS / 1e9;
    summary.plain_write_gbps = plain.writeGbps;
    summary.plain_read_gbps = plainReadGbps;
    rows.push(
      {
        test: `resume ${conv.length} tok from SSD`,
        hearth: resumeMs,
        baseline: reprefillMs,
        ratio: resumeMs / reprefillMs,
        unit: "ms TTFT (baseline: re-prefill)",
      },
      {
        test: "session write (fsync)",
        hearth: summary.kv_write_gbps,
        baseline: plain.writeGbps,
        ratio: summary.kv_write_gbps / plain.writeGbps,
        unit: "GB/s (baseline: plain write)",
      },
      {
        test: `session read${cold ? ` (cold, median of ${COLD_READS})` : ""}`,
        hearth: summary.kv_read_gbps,
        baseline: plainReadGbps,
        ratio: summary.kv_read_gbps / plainReadGbps,
        unit: "GB/s (baseline: plain read)",
      },
    );

    // --- prefix sharing: two requests sharing a long prefix
    m.kvTierOpen({
      hotBudgetBytes: kvPages * m.kvStats().pageSizeBytes,
      dir: join(dir, "tier"),
      coldMaxBytes: 1 << 30,
    });
    const shared = await textTokens(tok, prefixTokens, "prefix");
    const q1 = [...shared, ...tok.encode(" First question: what is this project?")];
    const q2 = [...shared, ...tok.encode(" Second question: how is the cache stored?")];
    t = performance.now();
    const a = m.seqCreateWithPrefix(q1);
    r.prefill(a.seqId, q1.slice(a.reusedTokens), a.reusedTokens);
    const firstMs = performance.now() - t;
    m.seqPublish(a.seqId, q1);
    m.seqFree(a.seqId);
    t = performance.now();
    const b = m.seqCreateWithPrefix(q2);
    const bFirst = r.prefill(b.seqId, q2.slice(b.reusedTokens), b.reusedTokens);
    const secondMs = performance.now() - t;
    m.seqFree(b.seqId);
    const c0 = m.seqCreate();
    const cFirst = r.prefill(c0, q2, 0);
    m.seqFree(c0);
    if (bFirst !== cFirst) notes.push("WARNING: first token with prefix sharing differs from without");
    summary.prefix_first_ttft_ms = firstMs;
    summary.prefix_second_ttft_ms = secondMs;
    summary.prefix_ttft_ratio = secondMs / firstMs;
    summary.prefix_reused_tokens = b.reusedTokens;
    rows.push({
      test: `prefix ${shared.length} tok shared (2nd req)`,
      hearth: secondMs,
      baseline: firstMs,
      ratio: secondMs / firstMs,
      unit: "ms TTFT (baseline: 1st req)",
    });

    // --- ARC vs LRU on the seeded multi-session trace
    for (const cap of [64, 256]) {
      const rep = replayEvictionTrace(library(), 42, 4000, cap);
      if (cap === 256) {
        summary.arc_hit_rate = rep.arcHitRate;
        summary.lru_hit_rate = rep.lruHitRate;
      }
      rows.push({
        test: `trace seed 42, ${cap}-page hot tier`,
        hearth: rep.arcHitRate,
        baseline: rep.lruHitRate,
        ratio: rep.arcHitRate / rep.lruHitRate,
        unit: "hit rate ARC (baseline: LRU)",
      });
    }
  } finally {
    m.close();
  }

  // --- Q8_0 vs F16 KV
  const pplText = await textTokens(tok, pplTokens, "perplexity");
  const prompt = await textTokens(tok, 64, "greedy");
  type KvRun = { pageBytes: number; ppl: number; top: number[]; greedy: number[] };
  const q: Record<string, KvRun> = {};
  for (const kvType of ["f16", "q8_0"] as const) {
    const mm = openNativeModel(path, {
      threads: opts.threads,
      kvPages: Math.ceil(pplTokens / 16) + 16,
      kvType,
      maxBatchTokens: BATCH,
      maxSequences: 2,
    });
    try {
      const rr = new Runner(mm);
      const s = mm.seqCreate();
      const first = rr.prefill(s, prompt, 0);
      const greedy = rr.greedy(s, first, prompt.length, opts.quick ? 8 : 32);
      mm.seqFree(s);
      q[kvType] = { pageBytes: mm.kvStats().pageSizeBytes, ...rr.perplexity(pplText), greedy };
    } finally {
      mm.close();
    }
  }
  const f16 = q.f16 as KvRun;
  const q8 = q.q8_0 as KvRun;
  let agree = 0;
  while (agree < f16.greedy.length && f16.greedy[agree] === q8.greedy[agree]) agree++;
  const sameTop = f16.top.filter((t, i) => q8.top[i] === t).length;
  summary.q8_same_top_pct = (sameTop / f16.top.length) * 100;
  summary.q8_page_bytes = q8.pageBytes;
  summary.f16_page_bytes = f16.pageBytes;
  summary.q8_ppl = q8.ppl;
  summary.f16_ppl = f16.ppl;
  summary.q8_ppl_delta_pct = ((q8.ppl - f16.ppl) / f16.ppl) * 100;
  summary.q8_greedy_prefix_agree = `${agree}/${f16.greedy.length}`;
  rows.push(
    {
      test: "KV page bytes (q8_0 vs f16)",
      hearth: q8.pageBytes,
      baseline: f16.pageBytes,
      ratio: q8.pageBytes / f16.pageBytes,
      unit: "bytes/page (16 tok)",
    },
    {
      test: `perplexity ${pplText.length} tok (q8_0 vs f16)`,
      hearth: q8.ppl,
      baseline: f16.ppl,
      ratio: q8.ppl / f16.ppl,
      unit: "ppl",
    },
    {
      test: `same top token, ${f16.top.length} teacher-forced rows (q8_0 vs f16)`,
      hearth: sameTop,
      baseline: f16.top.length,
      ratio: sameTop / f16.top.length,
      unit: "rows",
    },
    {
      test: "greedy tokens equal (q8_0 vs f16)",
      hearth: agree,
      baseline: f16.greedy.length,
      ratio: agree / f16.greedy.length,
      unit: "leading tokens",
    },
  );
  // --- the server: a follow-up turn after idle spill / restart vs the cache off
  const sv = await serveResume(opts, path, tok, dir, prefixTokens);
  summary.serve_resume_ttft_ms = sv.resume.ttftMs;
  summary.serve_restart_ttft_ms = sv.restart.ttftMs;
  summary.serve_cold_ttft_ms = sv.cold.ttftMs;
  summary.serve_resume_cached_tokens = sv.resume.cached;
  summary.serve_restart_cached_tokens = sv.restart.cached;
  summary.serve_resume_ssd_pages_read = sv.ssdPagesRead;
  summary.serve_followup_prompt_tokens = sv.promptTokens;
  if (sv.resume.text !== sv.cold.text || sv.restart.text !== sv.cold.text)
    notes.push("WARNING: a served follow-up turn with the prefix cache differs from the cache off");
  rows.push(
    {
      test: `serve: 2nd turn (${sv.promptTokens} tok) after idle spill to SSD`,
      hearth: sv.resume.ttftMs,
      baseline: sv.cold.ttftMs,
      ratio: sv.resume.ttftMs / sv.cold.ttftMs,
      unit: "ms TTFT (baseline: cache off)",
    },
    {
      test: "serve: same turn after a restart",
      hearth: sv.restart.ttftMs,
      baseline: sv.cold.ttftMs,
      ratio: sv.restart.ttftMs / sv.cold.ttftMs,
      unit: "ms TTFT (baseline: cache off)",
    },
  );
  rmSync(dir, { recursive: true, force: true });
  if (opts.quick)
    notes.push("--quick: smaller sizes (session 256, prefix 256, ppl 128 tokens); not for reporting.");
  return { suite: "kv", columns: ["test", "hearth", "baseline", "ratio", "unit"], rows, summary, notes };
}

if (import.meta.main) await runStandalone(run);

/** Hit rates of LRU and ARC on the seeded multi-session trace (zig/kv/evict.zig). */
function replayEvictionTrace(
  lib: HearthLib,
  seed: number,
  events: number,
  capacityPages: number,
): { accesses: number; lruHitRate: number; arcHitRate: number } {
  const layout = nativeAbi().layouts.replayResult;
  const out = new BigUint64Array(Math.ceil(layout.sizeBytes / 8));
  check(lib.hearth_kv_trace_replay(BigInt(seed), events, capacityPages, out), "kvTraceReplay");
  const view = new DataView(out.buffer);
  const field = (f: keyof typeof layout.offset) => Number(view.getBigUint64(layout.offset[f], true));
  const accesses = field("accesses");
  return { accesses, lruHitRate: field("lru_hits") / accesses, arcHitRate: field("arc_hits") / accesses };
}
