// `bun run bench soak --minutes N`: the soak of issue 23. 16 streaming clients (the official
// openai client) against a real `hearth serve` for N minutes: mixed prompt and reply lengths,
// multi-turn chats behind one shared system prompt (the prefix cache, with a small RAM tier that
// spills to an SSD tier in a temp dir), JSON mode, legacy completions and aborts mid-stream.
// Figures: rss_growth_pct (server RSS sampled every second: the median of the last minute under
// load against the median of the first minute after the warm-up; target <= 5),
// errors (target 0), kv_pages_leaked (KV pages still held once every client stopped and the
// server is idle, beyond the prefix cache's own hot pages; target 0), itl_p99_ms (client-side
// gap between stream chunks). One table row per minute, a progress line per minute on stderr.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { pullModel } from "../src/gguf/pull.ts";
import { type RunningServer, startCheckoutServer } from "../test/server-process.ts";
import {
  type BenchOptions,
  type Cell,
  loadNote,
  median,
  percentile,
  runStandalone,
  type SuiteResult,
} from "./lib.ts";

const CLIENTS = 16;
const CTX = 1024;
const KV_PAGES = 768;
/** A small RAM tier (about 45 pages of SmolLM2) so the SSD tier is used all along. */
const KV_HOT_MB = 16;
const KV_IDLE_MS = 3000;
/** RSS is compared over windows this long (shorter in a short run): one sample at each end would be noise. */
const RSS_WINDOW_MS = 60_000;

/** The shared system prompt every chat starts with (several KV pages, reused by every request). */
const SYSTEM = `You are Hearth, a patient assistant for a small bakery. You answer questions about
bread, pastry, opening hours and orders. Keep answers short and friendly, use plain words, and
never invent prices. If a question is not about the bakery, answer it briefly anyway. Opening
hours are 7 to 19 on weekdays and 8 to 14 on Saturdays; the bakery is closed on Sundays.`;

const QUESTIONS = [
  "What time do you open on Saturday?",
  "Can I order a birthday cake for Friday?",
  "Which of your breads has the least salt?",
  "Explain how sourdough starter works, step by step.",
  "Write a short poem about croissants.",
  "Do you sell gluten-free bread?",
  "List five kinds of pastry and describe each in one sentence.",
  "Why does bread go stale?",
  "How should I store a baguette overnight?",
  "Tell me a story about a baker who lost his oven, in a hundred words.",
];
const FOLLOW_UPS = ["Thanks. And on Sunday?", "Can you say that shorter?", "Give me one more example."];
const JSON_ASK = "Reply with a JSON object with keys item (string) and quantity (number) for: ";
const COMPLETION_PROMPTS = [
  "The secret of a good loaf is",
  "Once upon a time, in a village by the sea, there was a bakery that",
  "Ingredients: flour, water, salt, yeast. Method:",
];
const MAX_TOKENS = [8, 16, 32, 64, 128, 256];

/** mulberry32: a small seeded PRNG, so a run's request mix is reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(rand: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)] as T;
}

function rssBytes(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

async function metrics(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.length === 0) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** Figures of one minute (a table row), gathered as requests finish and once a second. */
interface Window {
  requests: number;
  aborted: number;
  errors: number;
  json: number;
  tokens: number;
  itl_ms: number[];
  rss_bytes: number[];
  kv_pages_used_max: number;
}

const newWindow = (): Window => ({
  requests: 0,
  aborted: 0,
  errors: 0,
  json: 0,
  tokens: 0,
  itl_ms: [],
  rss_bytes: [],
  kv_pages_used_max: 0,
});

/** One RSS sample of the server, `at_ms` after the start. */
interface RssSample {
  at_ms: number;
  bytes: number;
}

/**
 * RSS growth in percent: the median of the samples in the last window under load against the
 * median of those in the first window after the warm-up (null without samples in both).
 */
export function rssGrowthPct(
  samples: RssSample[],
  warmupMs: number,
  endMs: number,
  windowMs: number,
): { pct: number | null; warmBytes: number; endBytes: number } {
  const within = (from: number, to: number) =>
    samples.filter((s) => s.at_ms >= from && s.at_ms <= to).map((s) => s.bytes);
  const warm = within(warmupMs, warmupMs + windowMs);
  const end = within(endMs - windowMs, endMs);
  const warmBytes = median(warm);
  const endBytes = median(end);
  const pct = warm.length > 0 && end.length > 0 ? ((endBytes - warmBytes) / warmBytes) * 100 : null;
  return { pct, warmBytes, endBytes };
}

class AbortedOnPurpose extends Error {}

interface Soak {
  client: OpenAI;
  stopAt: number;
  window: Window;
  itlAll: number[];
  errorSamples: string[];
}

function noteError(s: Soak, what: string): void {
  s.window.errors++;
  if (s.errorSamples.length < 20) s.errorSamples.push(what.slice(0, 300));
}

/** Reads a stream of chunks, timing the gaps between those that carry text. */
async function consume(
  s: Soak,
  stream: AsyncIterable<unknown>,
  textOf: (chunk: unknown) => string,
  abortAfterChunks: number,
  ac: AbortController,
): Promise<{ text: string; chunks: number }> {
  let text = "";
  let chunks = 0;
  let last = -1;
  for await (const chunk of stream) {
    const piece = textOf(chunk);
    if (piece.length === 0) continue;
    const now = performance.now();
    if (last >= 0) {
      s.window.itl_ms.push(now - last);
      s.itlAll.push(now - last);
    }
    last = now;
    text += piece;
    chunks++;
    if (chunks === abortAfterChunks) {
      ac.abort();
      throw new AbortedOnPurpose();
    }
  }
  return { text, chunks };
}

/** One client: chats (one to three turns), JSON asks and completions until the end time. */
async function clientLoop(s: Soak, seed: number): Promise<void> {
  const rand = prng(seed);
  while (Date.now() < s.stopAt) {
    const kind = rand();
    const maxTokens = pick(rand, MAX_TOKENS);
    // One request in eight is aborted: after a few chunks, or before any (a timer).
    const abort = rand() < 0.125;
    const abortAfterChunks = abort && rand() < 0.7 ? 1 + Math.floor(rand() * 20) : -1;
    const ac = new AbortController();
    const timer = abort && abortAfterChunks < 0 ? setTimeout(() => ac.abort(), rand() * 400) : null;
    s.window.requests++;
    try {
      if (kind < 0.15) {
        // Legacy completions, streamed.
        const stream = await s.client.completions.create(
          { model: "x", prompt: pick(rand, COMPLETION_PROMPTS), max_tokens: maxTokens, stream: true, seed },
          { signal: ac.signal },
        );
        const r = await consume(
          s,
          stream,
          (c) => (c as OpenAI.Completion).choices[0]?.text ?? "",
          abortAfterChunks,
          ac,
        );
        s.window.tokens += r.chunks;
      } else if (kind < 0.3) {
        // JSON mode: a finished reply must parse.
        s.window.json++;
        const stream = await s.client.chat.completions.create(
          {
            model: "x",
            messages: [
              { role: "system", content: SYSTEM },
              { role: "user", content: JSON_ASK + pick(rand, QUESTIONS) },
            ],
            max_tokens: 128,
            response_format: { type: "json_object" },
            temperature: rand(),
            seed: Math.floor(rand() * 1e9),
            stream: true,
          },
          { signal: ac.signal },
        );
        let finish: string | null = null;
        const r = await consume(
          s,
          stream,
          (c) => {
            const ch = (c as OpenAI.ChatCompletionChunk).choices[0];
            if (ch?.finish_reason) finish = ch.finish_reason;
            return ch?.delta.content ?? "";
          },
          abortAfterChunks,
          ac,
        );
        s.window.tokens += r.chunks;
        if (finish === "stop") {
          try {
            JSON.parse(r.text);
          } catch {
            noteError(s, `JSON mode reply does not parse: ${JSON.stringify(r.text)}`);
          }
        }
      } else {
        // A chat of one to three turns: each turn repeats the conversation so far (prefix reuse).
        const messages: OpenAI.ChatCompletionMessageParam[] = [
          { role: "system", content: SYSTEM },
          { role: "user", content: pick(rand, QUESTIONS) },
        ];
        const turns = 1 + Math.floor(rand() * 3);
        for (let t = 0; t < turns && Date.now() < s.stopAt; t++) {
          const stream = await s.client.chat.completions.create(
            {
              model: "x",
              messages,
              max_tokens: maxTokens,
              temperature: rand() < 0.3 ? 0 : 0.8,
              seed: Math.floor(rand() * 1e9),
              stream: true,
            },
            { signal: ac.signal },
          );
          const r = await consume(
            s,
            stream,
            (c) => (c as OpenAI.ChatCompletionChunk).choices[0]?.delta.content ?? "",
            t === turns - 1 ? abortAfterChunks : -1,
            ac,
          );
          s.window.tokens += r.chunks;
          messages.push(
            { role: "assistant", content: r.text },
            { role: "user", content: pick(rand, FOLLOW_UPS) },
          );
          if (t < turns - 1) s.window.requests++;
        }
      }
    } catch (err) {
      if (err instanceof AbortedOnPurpose || (abort && err instanceof OpenAI.APIUserAbortError))
        s.window.aborted++;
      else noteError(s, `${(err as Error).name}: ${(err as Error).message}`);
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
  }
}

export async function run(opts: BenchOptions): Promise<SuiteResult> {
  const minutes = opts.minutes ?? (opts.quick ? 1 : 10);
  const durationMs = minutes * 60_000;
  // RSS is compared from the end of the warm-up: the KV pool, the RAM tier and the allocator's
  // arenas fill in the first minutes, and that is capacity, not growth. It wanders by tens of MiB
  // with the garbage collector, so each end is the median of a window of samples, not one sample.
  const warmupMs = Math.min(300_000, Math.max(15_000, durationMs * 0.2));
  const rssWindowMs = Math.min(RSS_WINDOW_MS, (durationMs - warmupMs) / 4);
  const kvDir = mkdtempSync(join(tmpdir(), "hearth-soak-"));
  const model = await pullModel(opts.model);
  const server: RunningServer = await startCheckoutServer(model, [
    "--parallel",
    String(CLIENTS),
    "--queue",
    "64",
    "--ctx",
    String(CTX),
    "--kv-pages",
    String(KV_PAGES),
    "--threads",
    String(opts.threads),
    "--kv-dir",
    kvDir,
    "--kv-hot-mb",
    String(KV_HOT_MB),
    "--kv-idle-ms",
    String(KV_IDLE_MS),
  ]);
  const pid = server.proc.pid;
  const start = Date.now();
  const soak: Soak = {
    client: new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 300_000 }),
    stopAt: start + durationMs,
    window: newWindow(),
    itlAll: [],
    errorSamples: [],
  };
  const rows: Array<Record<string, Cell>> = [];
  const rssSamples: RssSample[] = [];
  let kvHighWater = 0;
  let kvHighWaterWarm = 0;
  let totals = { requests: 0, aborted: 0, errors: 0, json: 0, tokens: 0 };
  const closeWindow = (minute: number, elapsedMs: number): void => {
    const w = soak.window;
    soak.window = newWindow();
    const rss = w.rss_bytes.length > 0 ? median(w.rss_bytes) : null;
    totals = {
      requests: totals.requests + w.requests,
      aborted: totals.aborted + w.aborted,
      errors: totals.errors + w.errors,
      json: totals.json + w.json,
      tokens: totals.tokens + w.tokens,
    };
    const row = {
      minute,
      requests: w.requests,
      aborted: w.aborted,
      json: w.json,
      errors: w.errors,
      "chunks/s": w.tokens / (elapsedMs / 1000),
      itl_p50_ms: percentile(w.itl_ms, 50),
      itl_p99_ms: percentile(w.itl_ms, 99),
      rss_mib: rss === null ? null : rss / (1024 * 1024),
      rss_max_mib: w.rss_bytes.length > 0 ? Math.max(...w.rss_bytes) / (1024 * 1024) : null,
      kv_pages_max: w.kv_pages_used_max,
    };
    rows.push(row);
    console.error(
      `soak: minute ${minute}/${minutes}: ${w.requests} requests (${w.aborted} aborted, ${w.errors} errors), itl p99 ${row.itl_p99_ms.toFixed(0)} ms, rss median ${row.rss_mib?.toFixed(1)} MiB (max ${row.rss_max_mib?.toFixed(1)}), KV pages used at most ${row.kv_pages_max}`,
    );
  };
  let serverDied = false;
  const exited = server.proc.exited.then(() => {
    serverDied = true;
  });
  try {
    const loops = Array.from({ length: CLIENTS }, (_, i) => clientLoop(soak, 1000 + i));
    const all = Promise.all(loops);
    let minute = 0;
    let windowStart = start;
    let finished = false;
    all.then(() => {
      finished = true;
    });
    while (!finished) {
      await Promise.race([all, exited, Bun.sleep(1000)]);
      const now = Date.now();
      const rss = rssBytes(pid);
      if (rss !== null && !finished) {
        rssSamples.push({ at_ms: now - start, bytes: rss });
        soak.window.rss_bytes.push(rss);
      }
      // The KV pages in use, for the RSS they explain: a page is resident from its first use on.
      const used = serverDied
        ? undefined
        : (await metrics(server.url).catch(() => null))?.get("hearth_kv_pages_used");
      if (used !== undefined) {
        soak.window.kv_pages_used_max = Math.max(soak.window.kv_pages_used_max, used);
        // Pages are rented from a stack, freed ones first: the most ever in use at once is how
        // many are resident. Those first used after the first RSS window count in the growth.
        kvHighWater = Math.max(kvHighWater, used);
        if (now - start <= warmupMs + rssWindowMs) kvHighWaterWarm = kvHighWater;
      }
      if (now - windowStart >= 60_000 || finished) {
        minute++;
        closeWindow(minute, now - windowStart);
        windowStart = now;
      }
      if (serverDied) break;
    }
    if (serverDied)
      throw new Error(
        `the server died during the soak: ${await new Response(server.proc.stderr as ReadableStream).text()}`,
      );
    // Every client stopped: wait until the engine is idle, then count pages nobody should hold.
    let m = await metrics(server.url);
    for (
      let i = 0;
      i < 200 && ((m.get("hearth_requests_running") ?? 1) > 0 || (m.get("hearth_queue_depth") ?? 1) > 0);
      i++
    ) {
      await Bun.sleep(100);
      m = await metrics(server.url);
    }
    const idleRss = rssBytes(pid);
    const used = (m.get("hearth_kv_pages_used") as number) ?? Number.NaN;
    const hot = m.get("hearth_prefix_cache_hot_pages") ?? 0;
    const leaked = used - hot;
    const requestsFailed = [...m.entries()]
      .filter(
        ([k]) => k.startsWith("hearth_requests_total{") && /outcome="(error|unavailable|queue_full)"/.test(k),
      )
      .reduce((a, [, v]) => a + v, 0);
    // A clean stop persists the prefix cache: the server must exit 0.
    server.proc.kill("SIGTERM");
    const code = await server.proc.exited;
    const lastLoadMs = rssSamples.at(-1)?.at_ms ?? durationMs;
    const rss = rssGrowthPct(rssSamples, warmupMs, lastLoadMs, rssWindowMs);
    const mibOf = (b: number | null) => (b === null || Number.isNaN(b) ? "-" : (b / 2 ** 20).toFixed(1));
    const notes = [
      `${CLIENTS} clients for ${minutes} min (warm-up ${(warmupMs / 1000).toFixed(0)} s, RSS windows of ${(rssWindowMs / 1000).toFixed(0)} s), ${totals.requests} requests (${totals.aborted} aborted on purpose, ${totals.json} JSON mode), ${totals.tokens} chunks`,
      `server RSS (median of a window) ${mibOf(rss.warmBytes)} MiB after warm-up, ${mibOf(rss.endBytes)} MiB in the last window under load, ${mibOf(idleRss)} MiB idle at the end; KV pages used ${used} of ${m.get("hearth_kv_pages_total")}, prefix-cache hot pages ${hot}; SSD pages written ${m.get("hearth_kv_ssd_pages_written_total")}, read ${m.get("hearth_kv_ssd_pages_read_total")}; cached prompt tokens ${m.get("hearth_prompt_tokens_cached_total")}; exit code ${code}`,
      `KV pages in use at once: at most ${kvHighWaterWarm} by the end of the first RSS window, ${kvHighWater} over the run (a page is resident from its first use on, so the ${kvHighWater - kvHighWaterWarm} first used later are part of the RSS growth, bounded by --kv-pages ${KV_PAGES})`,
      loadNote().note,
      ...soak.errorSamples.map((e) => `error: ${e}`),
    ];
    return {
      suite: "soak",
      columns: [
        "minute",
        "requests",
        "aborted",
        "json",
        "errors",
        "chunks/s",
        "itl_p50_ms",
        "itl_p99_ms",
        "rss_mib",
        "rss_max_mib",
        "kv_pages_max",
      ],
      rows,
      summary: {
        minutes,
        requests: totals.requests,
        errors: totals.errors + (code === 0 ? 0 : 1),
        server_errors: requestsFailed,
        rss_growth_pct: rss.pct,
        kv_pages_leaked: leaked,
        kv_pages_high_water_warm: kvHighWaterWarm,
        kv_pages_high_water: kvHighWater,
        itl_p50_ms: percentile(soak.itlAll, 50),
        itl_p99_ms: percentile(soak.itlAll, 99),
      },
      notes,
    };
  } finally {
    if (server.proc.exitCode === null) await server.stop();
    rmSync(kvDir, { recursive: true, force: true });
  }
}

if (import.meta.main) await runStandalone(run);
