// SSD tier faults under a real `hearth serve` (the official openai client, real slab files): a full
// disk (a 2 MiB tmpfs), a read-only file system (a tmpfs remounted read-only between two servers),
// slab files deleted and truncated under it, its directory removed, and `kill -9` halfway through
// a page write and halfway through a manifest write (the test-only HEARTH_TEST_KV_PAUSE hook
// stops the process exactly there). Each time the server keeps serving, every answer is the one a
// server with the cache off gives, what was saved before (the prefix cache's manifest and its
// pages, a session file) survives, and /metrics counts the fault by kind.
// Mounting needs root (CAP_SYS_ADMIN): without it the full disk is slab files linked to /dev/full
// (ENOSPC from a real device) and the read-only case runs only for a non-root user (chmod).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import OpenAI from "openai";
import { pullModel } from "../src/gguf/pull.ts";
import { loadModel } from "../src/index.ts";
import { type RunningServer, startCheckoutServer } from "./server-process.ts";

type Message = { role: "system" | "user" | "assistant"; content: string };

const MAX_TOKENS = 16;
/** Three conversations with different system prompts: more pages than a 2 MiB disk holds. */
const CONVERSATIONS: Message[][] = [
  [
    { role: "system", content: "You are a concise assistant." },
    { role: "user", content: "Name three colors of the rainbow." },
  ],
  [
    { role: "system", content: "You are a helpful geography teacher who answers in one sentence." },
    { role: "user", content: "What is the longest river in Europe?" },
  ],
  [
    { role: "system", content: "You answer like a friendly baker, briefly and warmly." },
    { role: "user", content: "How long should bread dough rise?" },
  ],
];
const FOLLOW_UP = "Now say it again in other words.";

let modelPath: string;
let work: string;
let plain: RunningServer;
/** Greedy answers of the server with the cache off: [conversation][turn]. */
const reference: string[][] = [];

const canMount = process.getuid?.() === 0 && tryMount();

function run(cmd: string[]): { ok: boolean; err: string } {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  return { ok: r.exitCode === 0, err: r.stderr.toString() };
}

function tryMount(): boolean {
  const d = mkdtempSync(join(tmpdir(), "hearth-mount-probe-"));
  const ok = run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", d]).ok;
  if (ok) run(["umount", d]);
  rmSync(d, { recursive: true, force: true });
  return ok;
}

function serve(
  kvDir: string | null,
  extra: string[] = [],
  env: Record<string, string> = {},
): Promise<RunningServer> {
  const args = ["--threads", "1", "--parallel", "2", "--ctx", "512", "--kv-pages", "64"];
  if (kvDir === null) args.push("--no-prefix-cache");
  // A 1 MiB RAM tier (two pages) and a 300 ms idle time: nearly every page goes to the SSD tier.
  else args.push("--kv-dir", kvDir, "--kv-hot-mb", "1", "--kv-idle-ms", "300");
  return startCheckoutServer(modelPath, [...args, ...extra], env);
}

/** The tier's own directory under --kv-dir (one per model file and KV type). */
function tierDir(kvDir: string): string {
  return join(kvDir, "prefix", `${basename(modelPath).replace(/\.gguf$/i, "")}-f16`);
}

async function metrics(s: RunningServer): Promise<Map<string, number>> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.length === 0) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

const fault = (m: Map<string, number>, kind: string) =>
  m.get(`hearth_kv_ssd_faults_total{kind="${kind}"}`) ?? -1;

async function chat(s: RunningServer, messages: Message[]): Promise<{ text: string; cached: number }> {
  const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "unused", maxRetries: 0 });
  const r = await client.chat.completions.create({
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

function turn(c: number, t: number): Message[] {
  const first = CONVERSATIONS[c] as Message[];
  if (t === 0) return first;
  return [
    ...first,
    { role: "assistant", content: reference[c]?.[0] ?? "" },
    { role: "user", content: FOLLOW_UP },
  ];
}

/** Runs every conversation's turns on `s` and checks each answer against the cache-off server. */
async function allTurnsMatch(s: RunningServer): Promise<number> {
  let cached = 0;
  for (let c = 0; c < CONVERSATIONS.length; c++)
    for (let t = 0; t < 2; t++) {
      const r = await chat(s, turn(c, t));
      expect(r.text).toBe(reference[c]?.[t] as string);
      cached += r.cached;
    }
  return cached;
}

async function until(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Waits until every conversation's pages left RAM for the SSD tier (the idle spill ran). */
async function spilled(s: RunningServer): Promise<void> {
  await until("the idle spill", async () => {
    const m = await metrics(s);
    return (
      (m.get("hearth_prefix_cache_idle_spilled_pages_total") ?? 0) > 0 &&
      m.get("hearth_prefix_cache_hot_pages") === 0
    );
  });
}

async function stopCleanly(s: RunningServer): Promise<void> {
  s.proc.kill("SIGTERM");
  expect(await s.proc.exited).toBe(0);
}

async function crash(s: RunningServer): Promise<void> {
  s.proc.kill("SIGKILL");
  await s.proc.exited;
}

beforeAll(async () => {
  modelPath = await pullModel();
  work = mkdtempSync(join(tmpdir(), "hearth-kv-faults-"));
  plain = await serve(null);
  for (let c = 0; c < CONVERSATIONS.length; c++) {
    reference[c] = [];
    const first = await chat(plain, turn(c, 0));
    expect(first.text.length).toBeGreaterThan(0);
    (reference[c] as string[])[0] = first.text;
    (reference[c] as string[])[1] = (await chat(plain, turn(c, 1))).text;
  }
  if (!canMount)
    console.log("kv-faults: mount is not allowed here: the full disk is slab files linked to /dev/full");
}, 300_000);

afterAll(async () => {
  await plain?.stop();
  for (const d of readdirSync(work)) run(["umount", "-l", join(work, d)]);
  rmSync(work, { recursive: true, force: true });
});

describe("SSD tier faults under a running hearth serve", () => {
  test("a full disk: writes fail as enospc, the server answers as without the cache, the saved manifest survives", async () => {
    const kvDir = join(work, "full");
    mkdirSync(kvDir);
    if (canMount) expect(run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", kvDir]).ok).toBe(true);
    // Something saved first: one conversation's pages and a manifest, from a clean stop.
    let s = await serve(kvDir);
    try {
      expect((await chat(s, turn(0, 0))).text).toBe(reference[0]?.[0] as string);
      await spilled(s);
      await stopCleanly(s);
      const dir = tierDir(kvDir);
      const saved = statSync(join(dir, "manifest")).size;
      expect(saved).toBeGreaterThan(0);
      if (!canMount) for (let i = 1; i < 4; i++) symlinkSync("/dev/full", join(dir, `slab-${i}.kv`));
      s = await serve(kvDir);
      let m = await metrics(s);
      const loaded = m.get("hearth_prefix_cache_manifest_loaded_pages") as number;
      expect(loaded).toBeGreaterThan(0);
      // Every conversation, twice: far more pages than 2 MiB holds.
      await allTurnsMatch(s);
      await spilled(s);
      await allTurnsMatch(s);
      m = await metrics(s);
      expect(fault(m, "enospc")).toBeGreaterThan(0);
      expect(m.get("hearth_kv_ssd_write_failures_total")).toBe(fault(m, "enospc"));
      for (const k of ["readonly", "io", "missing", "truncated", "checksum"]) expect(fault(m, k)).toBe(0);
      // Stopping on a full disk: the manifest is either the new one or the old one, never torn.
      await stopCleanly(s);
      s = await serve(kvDir);
      m = await metrics(s);
      expect(m.get("hearth_prefix_cache_manifest_rejected")).toBe(0);
      expect(m.get("hearth_prefix_cache_manifest_loaded_pages")).toBeGreaterThan(0);
      const first = await chat(s, turn(0, 0));
      expect(first.text).toBe(reference[0]?.[0] as string);
      expect(first.cached).toBeGreaterThan(0);
    } finally {
      await s.stop();
    }
  }, 300_000);

  test("a read-only file system: the saved cache is read, writes fail as readonly, nothing on it changes", async () => {
    // Linux refuses to remount a file system read-only while a file on it is open for writing
    // (the slab files are), so the server starts on a file system already read-only, holding
    // what an earlier server saved.
    if (!canMount && process.getuid?.() === 0) {
      console.log("kv-faults: read-only case skipped: root ignores chmod and mount is not allowed");
      return;
    }
    const kvDir = join(work, "ro");
    mkdirSync(kvDir);
    if (canMount) expect(run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", kvDir]).ok).toBe(true);
    const readOnly = (on: boolean) => {
      if (canMount) expect(run(["mount", "-o", `remount,${on ? "ro" : "rw"}`, kvDir]).ok).toBe(true);
      else for (const p of [kvDir, join(kvDir, "prefix"), tierDir(kvDir)]) chmodSync(p, on ? 0o555 : 0o755);
    };
    let s = await serve(kvDir);
    let wasReadOnly = false;
    try {
      expect((await chat(s, turn(0, 0))).text).toBe(reference[0]?.[0] as string);
      await spilled(s);
      await stopCleanly(s);
      const manifest = join(tierDir(kvDir), "manifest");
      const before = statSync(manifest);
      readOnly(true);
      wasReadOnly = true;
      s = await serve(kvDir);
      let m = await metrics(s);
      expect(m.get("hearth_prefix_cache_manifest_loaded_pages")).toBeGreaterThan(0);
      // The saved conversation reads back; nothing new can be written.
      const again = await chat(s, turn(0, 1));
      expect(again.text).toBe(reference[0]?.[1] as string);
      expect(again.cached).toBeGreaterThan(0);
      await allTurnsMatch(s);
      await spilled(s);
      await allTurnsMatch(s);
      m = await metrics(s);
      expect(fault(m, "readonly")).toBeGreaterThan(0);
      expect(m.get("hearth_kv_ssd_pages_read_total")).toBeGreaterThan(0);
      for (const k of ["enospc", "io", "missing", "truncated", "checksum"]) expect(fault(m, k)).toBe(0);
      // Its stop cannot save the cache: a clean exit all the same, and the old manifest stays.
      await stopCleanly(s);
      readOnly(false);
      wasReadOnly = false;
      const after = statSync(manifest);
      expect([after.size, after.mtimeMs]).toEqual([before.size, before.mtimeMs]);
      s = await serve(kvDir);
      m = await metrics(s);
      expect(m.get("hearth_prefix_cache_manifest_rejected")).toBe(0);
      expect(m.get("hearth_prefix_cache_manifest_loaded_pages")).toBeGreaterThan(0);
      await allTurnsMatch(s);
    } finally {
      await s.stop();
      if (wasReadOnly) readOnly(false);
    }
  }, 300_000);

  test("slab files deleted and truncated, and the directory removed, under a running server", async () => {
    const kvDir = join(work, "deleted");
    const s = await serve(kvDir);
    try {
      const dir = tierDir(kvDir);
      await allTurnsMatch(s);
      await spilled(s);
      const slabs = () => readdirSync(dir).filter((f) => f.startsWith("slab-"));
      expect(slabs().length).toBeGreaterThan(0);
      for (const f of slabs()) unlinkSync(join(dir, f));
      await allTurnsMatch(s);
      let m = await metrics(s);
      expect(fault(m, "missing")).toBeGreaterThan(0);
      // New slab files were written in their place; cut each in the middle of its first record.
      await spilled(s);
      expect(slabs().length).toBeGreaterThan(0);
      for (const f of slabs()) truncateSync(join(dir, f), 100_000);
      await allTurnsMatch(s);
      m = await metrics(s);
      // Records past the cut are truncated; a write still in flight when the file was cut
      // extends it again, leaving a hole of zeros where earlier records were: those fail
      // verification (checksum).
      expect(fault(m, "truncated")).toBeGreaterThan(0);
      // The whole directory goes: the next spill and manifest make it again.
      await spilled(s);
      rmSync(kvDir, { recursive: true, force: true });
      await allTurnsMatch(s);
      await spilled(s);
      await until("the manifest in a new directory", () => existsSync(join(dir, "manifest")));
      m = await metrics(s);
      console.log(
        `kv-faults: deleted/truncated/removed: ${["missing", "truncated", "checksum"].map((k) => `${k} ${fault(m, k)}`).join(", ")}`,
      );
      expect(fault(m, "enospc") + fault(m, "readonly") + fault(m, "io")).toBe(0);
      expect(m.get('hearth_requests_total{endpoint="chat",outcome="error"}') ?? 0).toBe(0);
    } finally {
      await s.stop();
    }
  }, 300_000);

  test("kill -9 halfway through a page write and halfway through a manifest write: the saved cache survives", async () => {
    const kvDir = join(work, "crash");
    let s = await serve(kvDir);
    const dir = tierDir(kvDir);
    try {
      // Saved: conversation 0, on SSD and in the manifest.
      expect((await chat(s, turn(0, 0))).text).toBe(reference[0]?.[0] as string);
      await spilled(s);
      await stopCleanly(s);
      // A server that stops halfway through writing its first page record: killed there.
      s = await serve(kvDir, [], { HEARTH_TEST_KV_PAUSE: "spill" });
      const loaded = (await metrics(s)).get("hearth_prefix_cache_manifest_loaded_pages") as number;
      expect(loaded).toBeGreaterThan(0);
      const pending = chat(s, turn(1, 0)).catch(() => null);
      await until("the pause in the page write", () => existsSync(join(dir, "test-paused-spill")));
      await crash(s);
      await pending;
      unlinkSync(join(dir, "test-paused-spill"));
      s = await serve(kvDir);
      let m = await metrics(s);
      expect(m.get("hearth_prefix_cache_manifest_rejected")).toBe(0);
      expect(m.get("hearth_prefix_cache_manifest_loaded_pages")).toBe(loaded);
      let r = await chat(s, turn(0, 1));
      expect(r.text).toBe(reference[0]?.[1] as string);
      expect(r.cached).toBeGreaterThan(0);
      await allTurnsMatch(s);
      await stopCleanly(s);
      const before = (await Bun.file(join(dir, "manifest")).arrayBuffer()).byteLength;
      // A server that stops halfway through writing a manifest (the idle spill's checkpoint).
      s = await serve(kvDir, [], { HEARTH_TEST_KV_PAUSE: "manifest" });
      const loaded2 = (await metrics(s)).get("hearth_prefix_cache_manifest_loaded_pages") as number;
      expect(loaded2).toBeGreaterThan(0);
      expect((await chat(s, turn(2, 0))).text).toBe(reference[2]?.[0] as string);
      await until("the pause in the manifest write", () => existsSync(join(dir, "test-paused-manifest")));
      await crash(s);
      expect(existsSync(join(dir, "manifest.tmp"))).toBe(true);
      expect(statSync(join(dir, "manifest")).size).toBe(before);
      unlinkSync(join(dir, "test-paused-manifest"));
      s = await serve(kvDir);
      m = await metrics(s);
      expect(m.get("hearth_prefix_cache_manifest_rejected")).toBe(0);
      expect(m.get("hearth_prefix_cache_manifest_loaded_pages")).toBe(loaded2);
      r = await chat(s, turn(0, 1));
      expect(r.text).toBe(reference[0]?.[1] as string);
      expect(r.cached).toBeGreaterThan(0);
      await allTurnsMatch(s);
      m = await metrics(s);
      expect(fault(m, "enospc") + fault(m, "readonly") + fault(m, "io")).toBe(0);
    } finally {
      await s.stop();
    }
  }, 300_000);
});

describe("session files on a failing disk (the library)", () => {
  test("a save that hits a full disk or a read-only file system fails clearly and leaves the saved file whole", async () => {
    const dir = join(work, "sessions");
    mkdirSync(dir);
    if (canMount) expect(run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir]).ok).toBe(true);
    const model = await loadModel(modelPath, { threads: 1, contextTokens: 256, kvPages: 64, maxSessions: 3 });
    try {
      const path = join(dir, "chat.session");
      const a = model.createSession();
      await a.prefill("The capital of France is");
      const saved = await a.save(path);
      expect(saved).toBeGreaterThan(0);
      let expected = "";
      for await (const p of a.generate({ maxTokens: 12, temperature: 0 })) expected += p;
      // A longer context no longer fits the disk: its save fails and the first file stays.
      await a.prefill(" and the capital of Italy is Rome. ".repeat(6));
      if (canMount) writeFileSync(join(dir, "filler"), new Uint8Array(4 * 1024 * 1024 - saved - 64 * 1024));
      else symlinkSync("/dev/full", `${path}.tmp`);
      await expect(a.save(path)).rejects.toThrow(/DiskFull/);
      expect(existsSync(`${path}.tmp`)).toBe(!canMount);
      if (!canMount) unlinkSync(`${path}.tmp`);
      expect(statSync(path).size).toBe(saved);
      const b = model.createSession();
      expect(b.restore(path)).toBe(true);
      let text = "";
      for await (const p of b.generate({ maxTokens: 12, temperature: 0 })) text += p;
      expect(text).toBe(expected);
      b.close();
      if (canMount) {
        expect(run(["mount", "-o", "remount,ro", dir]).ok).toBe(true);
        await expect(a.save(path)).rejects.toThrow(/ReadOnly/);
        const c = model.createSession();
        expect(c.restore(path)).toBe(true);
        let again = "";
        for await (const p of c.generate({ maxTokens: 12, temperature: 0 })) again += p;
        expect(again).toBe(expected);
        c.close();
      }
      a.close();
    } finally {
      model.close();
    }
  }, 120_000);
});
