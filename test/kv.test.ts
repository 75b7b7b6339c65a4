// KV tiers on the real default model: prefix sharing gives the same greedy tokens as recomputing,
// a 1 MB hot tier spills to SSD and reads back across a "restart" (tier reopened from its
// manifest), every injected fault (bit flip, truncation, deleted slab, full disk, torn manifest)
// is a miss that is recomputed with unchanged tokens, and sessions restore in another model instance.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pullModel } from "../src/gguf/pull.ts";
import { resumeSequence } from "../src/kv/index.ts";
import { loadModel } from "../src/model.ts";
import { createBatch, openNativeModel } from "../src/native/model.ts";
import type { Batch, NativeKvTiers, NativeModel } from "../src/native/model-api.ts";

type TieredModel = NativeModel & NativeKvTiers;

const VOCAB = 49152;
const GEN = 8;
/** Bytes of one F16 KV page of SmolLM2-135M: 30 layers x K,V x 3 heads x 16 tokens x 64 x 2 bytes. */
const PAGE_BYTES = 30 * 2 * 3 * 16 * 64 * 2;
const HOT_1MB = 1 << 20;

let modelPath: string;
let model: TieredModel;
let batch: Batch;
const logits = new Float32Array(VOCAB);
let dir: string;

/** Deterministic token ids spread over the vocabulary (real ids; the tokenizer is tested elsewhere). */
function promptTokens(n: number, salt: number): number[] {
  return Array.from({ length: n }, (_, i) => 300 + ((i * 7919 + salt * 104729) % 40000));
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if ((row[i] as number) > (row[best] as number)) best = i;
  return best;
}

/** Decodes tokens at positions pos0.. into seq; returns the last row's logits (a copy). */
function prefill(m: NativeModel, seq: number, tokens: number[], pos0: number): Float32Array {
  for (let start = 0; start < tokens.length; start += batch.capacity) {
    const n = Math.min(batch.capacity, tokens.length - start);
    batch.length = n;
    for (let i = 0; i < n; i++) {
      batch.tokens[i] = tokens[start + i] as number;
      batch.positions[i] = pos0 + start + i;
      batch.seqIds[i] = seq;
      batch.wantLogits[i] = start + i === tokens.length - 1 ? 1 : 0;
    }
    m.decode(batch, logits);
  }
  return logits.slice();
}

function greedy(m: NativeModel, seq: number, first: Float32Array, pos: number): number[] {
  const out: number[] = [];
  let row = first;
  for (let i = 0; i < GEN; i++) {
    const t = argmax(row);
    out.push(t);
    row = prefill(m, seq, [t], pos + i);
  }
  return out;
}

/** Greedy continuation of `tokens` computed from scratch (no reuse). */
function reference(m: NativeModel, tokens: number[]): number[] {
  const s = m.seqCreate();
  const out = greedy(m, s, prefill(m, s, tokens, 0), tokens.length);
  m.seqFree(s);
  return out;
}

/** Continuation through the prefix cache: reuse what is cached, compute the rest. */
function viaCache(m: TieredModel, tokens: number[]): { out: number[]; reused: number } {
  const { seqId, reusedTokens } = m.seqCreateWithPrefix(tokens);
  expect(m.seqLength(seqId)).toBe(reusedTokens);
  const out = greedy(m, seqId, prefill(m, seqId, tokens.slice(reusedTokens), reusedTokens), tokens.length);
  m.seqFree(seqId);
  return { out, reused: reusedTokens };
}

async function waitForWriter(m: TieredModel): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const s = m.kvTierStats();
    if (s.coldWritesOk + s.coldWritesFailed >= s.coldWritesQueued) return;
    await Bun.sleep(10);
  }
  throw new Error("cold-tier writer did not drain");
}

beforeAll(async () => {
  modelPath = await pullModel();
  model = openNativeModel(modelPath, {
    threads: 2,
    kvPages: 96,
    maxBatchTokens: 96,
    maxSequences: 4,
  }) as TieredModel;
  batch = createBatch(96);
  dir = mkdtempSync(join(tmpdir(), "hearth-kv-"));
}, 120_000);

afterAll(() => {
  model?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("prefix sharing", () => {
  test("a second sequence reuses shared pages and the copied last page; greedy tokens are unchanged", () => {
    const prompt = promptTokens(40, 1); // 2 full pages + 8 tokens
    const want = reference(model, prompt);
    model.kvTierOpen({ hotBudgetBytes: 64 * PAGE_BYTES });
    const first = model.seqCreateWithPrefix(prompt);
    expect(first.reusedTokens).toBe(0);
    prefill(model, first.seqId, prompt, 0);
    expect(model.seqPublish(first.seqId, prompt)).toBe(3);
    // While the first sequence is alive: 32 tokens shared by reference, 7 copied (one is left to compute).
    const second = viaCache(model, prompt);
    expect(second.reused).toBe(39);
    expect(second.out).toEqual(want);
    const st = model.kvTierStats();
    expect(st.pagesShared).toBeGreaterThanOrEqual(2);
    expect(st.pagesCopied).toBeGreaterThanOrEqual(1);
    // A longer prompt with the same head, after the first sequence is gone.
    model.seqFree(first.seqId);
    const longer = [...prompt, ...promptTokens(10, 2)];
    const third = viaCache(model, longer);
    expect(third.reused).toBe(40);
    expect(third.out).toEqual(reference(model, longer));
    // A prompt that diverges inside page 1 reuses page 0 only.
    const diverging = [...prompt];
    diverging[20] = 777;
    const fourth = viaCache(model, diverging);
    expect(fourth.reused).toBe(16);
    expect(fourth.out).toEqual(reference(model, diverging));
  }, 300_000);
});

describe("SSD tier with a 1 MB hot budget", () => {
  const prompt = promptTokens(80, 3); // 5 full pages: 2 fit the hot tier, the rest spill
  let want: number[];
  let src: number;

  beforeAll(() => {
    want = reference(model, prompt);
    src = model.seqCreate();
    prefill(model, src, prompt, 0);
  }, 300_000);

  function freshTier(name: string): string {
    const d = join(dir, name);
    model.kvTierOpen({ dir: d, hotBudgetBytes: HOT_1MB, coldMaxBytes: 64 << 20 });
    return d;
  }

  /** Publishes the prompt's pages, writes the manifest, then "restarts" the tier on the same directory. */
  async function publishPersistReopen(d: string, fault?: () => void): Promise<void> {
    expect(model.seqPublish(src, prompt)).toBe(5);
    await waitForWriter(model);
    const st = model.kvTierStats();
    expect(st.hotPages).toBeLessThanOrEqual(2);
    expect(st.spilled).toBeGreaterThanOrEqual(3);
    expect(model.kvTierPersist()).toBe(5);
    fault?.();
    model.kvTierOpen({ dir: d, hotBudgetBytes: HOT_1MB, coldMaxBytes: 64 << 20 });
  }

  function slabBytes(d: string): { path: string; size: number } {
    const path = join(d, "slab-0.kv");
    return { path, size: statSync(path).size };
  }

  test("pages come back from SSD after a restart, verified, with the same tokens", async () => {
    const d = freshTier("clean");
    await publishPersistReopen(d);
    const st0 = model.kvTierStats();
    expect(st0.manifestEntriesLoaded).toBe(5);
    expect(st0.hotPages).toBe(0);
    const r = viaCache(model, prompt);
    expect(r.reused).toBe(79);
    expect(r.out).toEqual(want);
    expect(model.kvTierStats().coldHits).toBe(5);
  }, 300_000);

  test("a flipped bit in every record: misses, recomputed, same tokens", async () => {
    const d = freshTier("bitflip");
    await publishPersistReopen(d, () => {
      const { path, size } = slabBytes(d);
      const fd = openSync(path, "r+");
      const record = Math.ceil((64 + PAGE_BYTES) / 4096) * 4096;
      const b = Buffer.alloc(1);
      for (let off = 64 + 1234; off < size; off += record) {
        readSync(fd, b, 0, 1, off);
        b[0] = (b[0] as number) ^ 0x20;
        writeSync(fd, b, 0, 1, off);
      }
      closeSync(fd);
    });
    const r = viaCache(model, prompt);
    expect(r.reused).toBe(0);
    expect(r.out).toEqual(want);
    expect(model.kvTierStats().coldReadsBad).toBeGreaterThanOrEqual(1);
  }, 300_000);

  test("a truncated slab: misses, recomputed, same tokens", async () => {
    const d = freshTier("truncated");
    await publishPersistReopen(d, () => truncateSync(slabBytes(d).path, 5000));
    const r = viaCache(model, prompt);
    expect(r.reused).toBe(0);
    expect(r.out).toEqual(want);
    expect(model.kvTierStats().coldMisses).toBeGreaterThanOrEqual(1);
  }, 300_000);

  test("a deleted slab: misses, recomputed, same tokens", async () => {
    const d = freshTier("deleted");
    await publishPersistReopen(d, () => rmSync(slabBytes(d).path));
    const r = viaCache(model, prompt);
    expect(r.reused).toBe(0);
    expect(r.out).toEqual(want);
  }, 300_000);

  test("a full disk (slab file on /dev/full): writes fail, nothing breaks, same tokens", async () => {
    const d = freshTier("full");
    symlinkSync("/dev/full", join(d, "slab-0.kv"));
    expect(model.seqPublish(src, prompt)).toBe(5);
    await waitForWriter(model);
    const st = model.kvTierStats();
    expect(st.coldWritesFailed).toBeGreaterThanOrEqual(3);
    expect(st.coldWritesOk).toBe(0);
    const r = viaCache(model, prompt);
    expect(r.reused).toBe(0); // page 0 was pushed out of the hot tier and its write failed
    expect(r.out).toEqual(want);
  }, 300_000);

  test("a torn manifest is detected at start-up and ignored", async () => {
    const d = freshTier("torn");
    await publishPersistReopen(d, () => truncateSync(join(d, "manifest"), 100));
    const st = model.kvTierStats();
    expect(st.manifestRejected).toBe(1);
    expect(st.entries).toBe(0);
    const r = viaCache(model, prompt);
    expect(r.reused).toBe(0);
    expect(r.out).toEqual(want);
  }, 300_000);
});

describe("sessions that outlive the process", () => {
  test("a saved sequence resumes in another model instance with the same greedy tokens; a damaged file falls back", () => {
    const prompt = promptTokens(36, 4);
    const want = reference(model, prompt);
    const head = prompt.slice(0, -1);
    const s = model.seqCreate();
    prefill(model, s, head, 0);
    const path = join(dir, "session.kv");
    const bytes = model.seqSave(s, head, path);
    expect(bytes).toBeGreaterThan(3 * PAGE_BYTES);
    // A caller's path reaches the error quoted, its escape sequences made visible.
    let message = "";
    try {
      model.seqSave(s, head, join(dir, "no\x1b]0;pwned\x07dir", "s.kv"));
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain(`cannot save sequence ${s} to "${dir}/no\\e]0;pwned\\x07dir/s.kv": `);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
    expect(message).not.toMatch(/[\x00-\x1f]/);
    model.seqFree(s);

    const other = openNativeModel(modelPath, {
      threads: 2,
      kvPages: 16,
      maxBatchTokens: 96,
      maxSequences: 2,
    }) as TieredModel;
    try {
      const r = resumeSequence(other, path);
      if (!r.ok) throw new Error(r.message);
      expect(r.tokens).toEqual(head);
      expect(other.seqLength(r.seqId)).toBe(head.length);
      const last = prefill(other, r.seqId, prompt.slice(-1), head.length);
      expect(greedy(other, r.seqId, last, prompt.length)).toEqual(want);
      other.seqFree(r.seqId);

      // Damage one byte of a page: reported as corrupt, the pool is untouched, re-prefill gives the same tokens.
      const fd = openSync(path, "r+");
      writeSync(fd, Buffer.from([0x5a]), 0, 1, statSync(path).size - 9000);
      closeSync(fd);
      const free = other.kvStats().pagesFree;
      const bad = resumeSequence(other, path);
      expect(bad.ok).toBe(false);
      if (!bad.ok) expect(bad.reason).toBe("corrupt");
      if (!bad.ok) expect(bad.message).toContain(`session file "${path}" is damaged`);
      expect(other.kvStats().pagesFree).toBe(free);
      expect(reference(other, prompt)).toEqual(want);
      // A missing file, and a file of another KV type.
      expect(resumeSequence(other, join(dir, "nope.kv")).ok).toBe(false);
      expect(existsSync(`${path}.tmp`)).toBe(false);
    } finally {
      other.close();
    }
  }, 300_000);
});

describe("Session.save / Session.restore", () => {
  test("a restored session generates what the saved one would have; a damaged file leaves the session as it was", async () => {
    const m = await loadModel(modelPath, {
      threads: 2,
      kvPages: 32,
      maxSessions: 2,
      maxBatchTokens: 64,
      contextTokens: 256,
    });
    try {
      const collect = async (s: ReturnType<typeof m.createSession>) => {
        const it = s.generate({ maxTokens: 6, temperature: 0 });
        for (;;) {
          const r = await it.next();
          if (r.done) return r.value.tokens;
        }
      };
      const prompt = "The three primary colours are red, yellow and";
      const a = m.createSession();
      await a.prefill(prompt);
      const path = join(dir, "chat.session");
      expect(await a.save(path)).toBeGreaterThan(PAGE_BYTES);
      const want = await collect(a);
      // Generating after save, then saving again, runs the pending sampled token first.
      expect(await a.save(`${path}.2`)).toBeGreaterThan(PAGE_BYTES);
      a.close();

      const b = m.createSession();
      expect(b.restore(path)).toBe(true);
      expect(b.length).toBeGreaterThan(5);
      expect(await collect(b)).toEqual(want);
      b.close();

      const c = m.createSession();
      await c.prefill("Unrelated context");
      const before = [...c.tokens];
      const fd = openSync(path, "r+");
      writeSync(fd, Buffer.from([1, 2, 3]), 0, 3, 4096); // the token block
      closeSync(fd);
      expect(c.restore(path)).toBe(false);
      expect(c.tokens).toEqual(before);
      c.close();
    } finally {
      m.close();
    }
  }, 300_000);
});
