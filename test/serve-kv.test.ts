// `hearth serve` with the prefix cache and its SSD tier, end to end: real server processes on
// 127.0.0.1, the official openai client, real slab files in a temp dir. A second chat turn reuses
// the first turn's KV; an idle conversation spills to SSD and resumes from it; the cache survives
// a restart (clean or a crash); a corrupt slab record or a torn manifest costs only recomputation.
// Every answer is compared with a server whose prefix cache is off (greedy: identical tokens).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  closeSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  statSync,
  truncateSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import OpenAI from "openai";
import { pullModel } from "../src/gguf/pull.ts";
import { type RunningServer, startCheckoutServer } from "./server-process.ts";

type Message = { role: "system" | "user" | "assistant"; content: string };

const MAX_TOKENS = 16;
const FIRST: Message[] = [
  { role: "system", content: "You are a concise assistant." },
  { role: "user", content: "Name three colors of the rainbow." },
];
const FOLLOW_UP = "Now name two animals that live in the sea.";

let modelPath: string;
let dir: string;
/** The same model with the prefix cache off: the reference answers. */
let plain: RunningServer;
const reference = { first: "", second: "" };

function serve(extra: string[]): Promise<RunningServer> {
  return startCheckoutServer(modelPath, [
    "--threads",
    "1",
    "--parallel",
    "2",
    "--ctx",
    "512",
    "--kv-pages",
    "64",
    ...extra,
  ]);
}

function clientOf(s: RunningServer): OpenAI {
  return new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "unused", maxRetries: 0 });
}

async function metrics(s: RunningServer): Promise<Map<string, number>> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.length === 0) continue;
    const [k, v] = line.split(" ");
    out.set(k as string, Number(v));
  }
  return out;
}

async function metric(s: RunningServer, name: string): Promise<number> {
  const v = (await metrics(s)).get(name);
  if (v === undefined) throw new Error(`metric ${name} missing`);
  return v;
}

/** One greedy chat completion; returns its text and the prompt tokens served from the cache. */
async function chat(s: RunningServer, messages: Message[]): Promise<{ text: string; cached: number }> {
  const r = await clientOf(s).chat.completions.create({
    model: "x",
    messages,
    max_tokens: MAX_TOKENS,
    temperature: 0,
    seed: 7,
  });
  return {
    text: r.choices[0]?.message.content ?? "",
    cached: r.usage?.prompt_tokens_details?.cached_tokens ?? -1,
  };
}

function secondTurn(firstAnswer: string): Message[] {
  return [...FIRST, { role: "assistant", content: firstAnswer }, { role: "user", content: FOLLOW_UP }];
}

/** Stops a server with SIGTERM (which persists its prefix cache) and checks it exited cleanly. */
async function stopCleanly(s: RunningServer): Promise<void> {
  s.proc.kill("SIGTERM");
  expect(await s.proc.exited).toBe(0);
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  modelPath = await pullModel();
  dir = mkdtempSync(join(tmpdir(), "hearth-serve-kv-"));
  plain = await serve(["--no-prefix-cache"]);
  const first = await chat(plain, FIRST);
  const second = await chat(plain, secondTurn(first.text));
  expect(first.text.length).toBeGreaterThan(0);
  expect(first.cached).toBe(0);
  expect(second.cached).toBe(0);
  expect(await metric(plain, "hearth_prefix_cache_enabled")).toBe(0);
  reference.first = first.text;
  reference.second = second.text;
}, 180_000);

afterAll(async () => {
  await plain?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("hearth serve prefix cache (real model, openai client)", () => {
  test("a second chat turn reuses the first turn's KV and answers exactly as without the cache", async () => {
    const s = await serve(["--no-kv-disk"]);
    try {
      const first = await chat(s, FIRST);
      expect(first).toEqual({ text: reference.first, cached: 0 });
      const second = await chat(s, secondTurn(first.text));
      expect(second.text).toBe(reference.second);
      // The first turn's prompt and most of its answer are whole pages of the second prompt.
      expect(second.cached).toBeGreaterThanOrEqual(32);
      const m = await metrics(s);
      expect(m.get("hearth_prefix_cache_enabled")).toBe(1);
      expect(m.get("hearth_prefix_cache_reused_tokens_total")).toBe(second.cached);
      expect(m.get("hearth_prompt_tokens_cached_total")).toBe(second.cached);
      // RAM only: nothing went to disk.
      expect(m.get("hearth_kv_ssd_pages_capacity")).toBe(0);
      // Streaming usage carries the same detail.
      const stream = await clientOf(s).chat.completions.create({
        model: "x",
        messages: secondTurn(first.text),
        max_tokens: MAX_TOKENS,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = "";
      let cached = -1;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? "";
        if (chunk.usage) cached = chunk.usage.prompt_tokens_details?.cached_tokens ?? -1;
      }
      expect(text).toBe(reference.second);
      // The same prompt again: everything but its last token comes from the cache.
      expect(cached).toBeGreaterThan(second.cached);
    } finally {
      await s.stop();
    }
  }, 120_000);

  test("hearth serve --speculative (prefix cache on) answers both turns as the plain server", async () => {
    const s = await serve(["--no-kv-disk", "--speculative", "--draft", "6"]);
    try {
      const first = await chat(s, FIRST);
      expect(first.text).toBe(reference.first);
      const second = await chat(s, secondTurn(first.text));
      expect(second.text).toBe(reference.second);
      expect(second.cached).toBeGreaterThanOrEqual(32);
      const m = await metrics(s);
      expect(m.get("hearth_draft_tokens_total")).toBeGreaterThan(0);
      console.log(
        `--speculative: ${m.get("hearth_draft_tokens_accepted_total")}/${m.get("hearth_draft_tokens_total")} drafts accepted over two turns`,
      );
    } finally {
      await s.stop();
    }
  }, 120_000);

  test("idle spill to SSD, resume from SSD, restart, corrupt record, torn manifest, crash: same answers", async () => {
    const kvDir = join(dir, "kv");
    // The tier lives in a subdirectory per model file and KV type.
    const tierDir = join(kvDir, "prefix", `${basename(modelPath).replace(/\.gguf$/i, "")}-f16`);
    // A 1 MiB hot tier (two pages) and a 300 ms idle time force both kinds of spill.
    const args = ["--kv-dir", kvDir, "--kv-hot-mb", "1", "--kv-idle-ms", "300"];
    let s = await serve(args);
    try {
      // One server per directory: a second one on the same --kv-dir refuses to start.
      const clash = Bun.spawn(
        [process.execPath, "src/cli/main.ts", "serve", "-m", modelPath, "--port", "0", "--kv-dir", kvDir],
        { stdout: "pipe", stderr: "pipe" },
      );
      expect(await clash.exited).toBe(1);
      expect(await new Response(clash.stderr).text()).toContain("in use by another hearth process");

      const first = await chat(s, FIRST);
      expect(first.text).toBe(reference.first);
      // The conversation goes idle: its pages leave RAM for the slab files.
      await until("the idle spill", async () => {
        const m = await metrics(s);
        return (
          (m.get("hearth_prefix_cache_idle_spilled_pages_total") ?? 0) > 0 &&
          m.get("hearth_prefix_cache_hot_pages") === 0
        );
      });
      let m = await metrics(s);
      expect(m.get("hearth_kv_ssd_pages_written_total")).toBeGreaterThan(0);
      expect(m.get("hearth_kv_ssd_bytes_written_total")).toBeGreaterThan(0);
      expect(m.get("hearth_kv_ssd_pages_read_total")).toBe(0);
      const recordBytes =
        (m.get("hearth_kv_ssd_bytes_written_total") as number) /
        (m.get("hearth_kv_ssd_pages_written_total") as number);

      // The next turn resumes from SSD.
      const second = await chat(s, secondTurn(first.text));
      expect(second.text).toBe(reference.second);
      expect(second.cached).toBeGreaterThanOrEqual(32);
      m = await metrics(s);
      expect(m.get("hearth_kv_ssd_pages_read_total")).toBeGreaterThan(0);
      expect(m.get("hearth_prefix_cache_cold_hits_total")).toBeGreaterThan(0);
      expect(m.get("hearth_kv_ssd_bad_reads_total")).toBe(0);

      // Restart on the same directory: the manifest brings the cache back.
      await stopCleanly(s);
      s = await serve(args);
      m = await metrics(s);
      expect(m.get("hearth_prefix_cache_manifest_loaded_pages")).toBeGreaterThan(0);
      expect(m.get("hearth_prefix_cache_manifest_rejected")).toBe(0);
      const again = await chat(s, secondTurn(first.text));
      expect(again.text).toBe(reference.second);
      expect(again.cached).toBeGreaterThan(second.cached);
      m = await metrics(s);
      expect(m.get("hearth_kv_ssd_pages_read_total")).toBeGreaterThan(0);

      // Flip one payload byte of every record on disk between restarts: each read is a miss,
      // dropped and recomputed.
      await stopCleanly(s);
      const slab = join(tierDir, "slab-0.kv");
      const records = Math.floor(statSync(slab).size / recordBytes);
      expect(records).toBeGreaterThan(0);
      const fd = openSync(slab, "r+");
      const byte = new Uint8Array(1);
      for (let r = 0; r < records; r++) {
        const at = r * recordBytes + 64 + 1000;
        readSync(fd, byte, 0, 1, at);
        byte[0] = (byte[0] as number) ^ 0x10;
        writeSync(fd, byte, 0, 1, at);
      }
      closeSync(fd);
      s = await serve(args);
      expect(await metric(s, "hearth_prefix_cache_manifest_loaded_pages")).toBeGreaterThan(0);
      const corrupt = await chat(s, secondTurn(first.text));
      expect(corrupt.text).toBe(reference.second);
      m = await metrics(s);
      expect(m.get("hearth_kv_ssd_bad_reads_total")).toBeGreaterThanOrEqual(1);
      expect(m.get("hearth_prefix_cache_cold_misses_total")).toBeGreaterThanOrEqual(1);
      // The recomputed pages were published again; the next request finds them.
      const healed = await chat(s, secondTurn(first.text));
      expect(healed.text).toBe(reference.second);
      expect(healed.cached).toBeGreaterThan(0);

      // A torn manifest (cut mid-entry) is detected at start-up and ignored.
      await stopCleanly(s);
      const manifest = join(tierDir, "manifest");
      truncateSync(manifest, Math.floor(statSync(manifest).size / 2));
      s = await serve(args);
      m = await metrics(s);
      expect(m.get("hearth_prefix_cache_manifest_rejected")).toBe(1);
      expect(m.get("hearth_prefix_cache_manifest_loaded_pages")).toBe(0);
      const torn = await chat(s, secondTurn(first.text));
      expect(torn).toEqual({ text: reference.second, cached: 0 });

      // A crash (SIGKILL) after an idle spill: the manifest that spill wrote, and the stale lock
      // file, are picked up by the next server.
      await until("the idle spill before the crash", async () => {
        return (await metric(s, "hearth_prefix_cache_idle_spilled_pages_total")) > 0;
      });
      s.proc.kill("SIGKILL");
      await s.proc.exited;
      s = await serve(args);
      m = await metrics(s);
      expect(m.get("hearth_prefix_cache_manifest_rejected")).toBe(0);
      expect(m.get("hearth_prefix_cache_manifest_loaded_pages")).toBeGreaterThan(0);
      const crashed = await chat(s, secondTurn(first.text));
      expect(crashed.text).toBe(reference.second);
      expect(crashed.cached).toBeGreaterThan(0);
    } finally {
      await s.stop();
    }
  }, 300_000);
});
