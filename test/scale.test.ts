// Replicas sharing KV pages through Redis, behind nginx, end to end: real hearth serve processes,
// a real redis-server and nginx on loopback ports, the official openai client. A conversation's
// next turn on a replica that never saw it takes its prefix from Redis and answers exactly as a
// server without any cache; a damaged page or a dead Redis costs only recomputation; a replica
// that dies has its conversations answered by another through nginx, with no client retry.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { RedisClient } from "bun";
import OpenAI from "openai";
import { nginxConf } from "../scripts/nginx-conf.ts";
import { pullModel } from "../src/gguf/pull.ts";
import { type RunningServer, startCheckoutServer } from "./server-process.ts";
import { type Service, startNginx, startRedis } from "./support/cluster.ts";

type Message = { role: "system" | "user" | "assistant"; content: string };

const MAX_TOKENS = 12;
const TTL_S = 600;

let modelPath: string;
let redis: Service;
let redisPort: number;
/** The same model with every cache off: the reference answers. */
let plain: RunningServer;
/** Replicas sharing the Redis tier (RAM prefix cache each, no SSD tier). */
const replicas: RunningServer[] = [];

function serve(extra: string[]): Promise<RunningServer> {
  return startCheckoutServer(modelPath, [
    "--threads",
    "1",
    "--parallel",
    "2",
    "--ctx",
    "1024",
    "--kv-pages",
    "96",
    "--no-kv-disk",
    ...extra,
  ]);
}

function clientOf(url: string, headers: Record<string, string> = {}): OpenAI {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0, defaultHeaders: headers });
}

async function metric(s: RunningServer, name: string): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`metric ${name} missing`);
  return Number(line.split(" ")[1]);
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A conversation's first turn: a system prompt of ~13 pages that no other conversation shares. */
function firstTurn(n: number): Message[] {
  const rules = Array.from(
    { length: 12 },
    (_, i) => `Rule ${i + 1}: keep answer ${n} short, plain and friendly, and mention item ${i * 7 + n}.`,
  ).join(" ");
  return [
    { role: "system", content: `Conversation ${n}. ${rules}` },
    { role: "user", content: "Name three colors of the rainbow." },
  ];
}

function secondTurn(n: number, answer: string): Message[] {
  return [
    ...firstTurn(n),
    { role: "assistant", content: answer },
    { role: "user", content: "Now two sea animals." },
  ];
}

async function chat(url: string, messages: Message[], headers: Record<string, string> = {}) {
  const r = await clientOf(url, headers).chat.completions.create({
    model: "x",
    messages,
    max_tokens: MAX_TOKENS,
    temperature: 0,
  });
  return {
    text: r.choices[0]?.message.content ?? "",
    cached: r.usage?.prompt_tokens_details?.cached_tokens ?? -1,
  };
}

/** Turn 1 on `owner`, waits for its pages to reach Redis; returns the reference texts of both turns. */
async function startConversation(
  n: number,
  owner: RunningServer,
): Promise<{ first: string; second: string }> {
  const ref1 = await chat(plain.url, firstTurn(n));
  const before = await metric(owner, "hearth_kv_redis_pages_written_total");
  const t1 = await chat(owner.url, firstTurn(n));
  expect(t1.text).toBe(ref1.text);
  await until(
    "turn 1's pages in Redis",
    async () => (await metric(owner, "hearth_kv_redis_pages_written_total")) >= before + 10,
  );
  const ref2 = await chat(plain.url, secondTurn(n, ref1.text));
  return { first: ref1.text, second: ref2.text };
}

function redisClient(): RedisClient {
  return new RedisClient(`redis://127.0.0.1:${redisPort}`);
}

async function pageKeys(c: RedisClient): Promise<Set<string>> {
  const keys = (await c.send("KEYS", ["hearth:kv:*"])) as string[];
  return new Set(keys.filter((k) => !k.endsWith(":index")));
}

beforeAll(async () => {
  modelPath = await pullModel();
  redis = await startRedis();
  redisPort = redis.port;
  const flags = ["--kv-redis", `redis://127.0.0.1:${redisPort}`, "--kv-redis-ttl", String(TTL_S)];
  const started = await Promise.all([serve(["--no-prefix-cache"]), serve(flags), serve(flags), serve(flags)]);
  plain = started[0] as RunningServer;
  replicas.push(...started.slice(1));
  for (const r of replicas)
    await until("the Redis connection", async () => (await metric(r, "hearth_kv_redis_connected")) === 1);
}, 300_000);

afterAll(async () => {
  await Promise.all([plain?.stop(), ...replicas.map((r) => r.stop())]);
  await redis?.stop();
});

test("deploy/nginx.conf is the generator's output for the compose file's replicas", async () => {
  const conf = nginxConf({
    listen: "0.0.0.0:8080",
    replicas: ["hearth-1:8080", "hearth-2:8080", "hearth-3:8080"],
    workers: "auto",
  });
  expect(await Bun.file(join(import.meta.dir, "..", "deploy", "nginx.conf")).text()).toBe(conf);
  expect(() => nginxConf({ listen: "0.0.0.0:8080", replicas: ["a b:1"] })).toThrow(/host:port/);
  expect(() => nginxConf({ listen: "x", replicas: ["a:1"] })).toThrow(/listen/);
});

describe("replicas sharing KV through Redis (real redis-server, nginx, openai client)", () => {
  test("the next turn on a replica that never saw the conversation reuses its pages from Redis, with identical output", async () => {
    const [a, b] = replicas as [RunningServer, RunningServer];
    const ref = await startConversation(1, a);
    const hitsBefore = await metric(b, "hearth_kv_redis_hits_total");
    const t2 = await chat(b.url, secondTurn(1, ref.first));
    expect(t2.text).toBe(ref.second);
    // b computed only the tail: the system prompt, the first question and answer came from Redis.
    expect(t2.cached).toBeGreaterThanOrEqual(160);
    expect((await metric(b, "hearth_kv_redis_hits_total")) - hitsBefore).toBeGreaterThanOrEqual(10);
    expect(await metric(b, "hearth_kv_redis_rejected_total")).toBe(0);
    // Pages carry the TTL they were written with.
    const c = redisClient();
    const key = [...(await pageKeys(c))][0] as string;
    const ttl = Number(await c.send("TTL", [key]));
    expect(ttl).toBeGreaterThan(TTL_S - 60);
    expect(ttl).toBeLessThanOrEqual(TTL_S);
    c.close();
  }, 180_000);

  test("a replica whose prefix cache is full still resumes a conversation from Redis (imported pages are held until the request uses them)", async () => {
    const [a, b] = replicas as [RunningServer, RunningServer];
    // Fill b's hot tier with conversations of its own, each used once (their pages publish twice,
    // so the eviction policy counts them as frequently used): a page imported for the next request
    // is then the newest, least used page of the cache, the first one it would push out.
    const capacity = await metric(b, "hearth_prefix_cache_hot_capacity_pages");
    for (let n = 20; (await metric(b, "hearth_prefix_cache_hot_pages")) < capacity; n++) {
      if (n > 40) throw new Error("b's prefix cache never filled");
      await chat(b.url, firstTurn(n));
    }
    const ref = await startConversation(8, a);
    const hitsBefore = await metric(b, "hearth_kv_redis_hits_total");
    const t2 = await chat(b.url, secondTurn(8, ref.first));
    expect(t2.text).toBe(ref.second);
    const imported = (await metric(b, "hearth_kv_redis_hits_total")) - hitsBefore;
    expect(imported).toBeGreaterThanOrEqual(10);
    // Every imported page was used: the reused prefix is exactly the pages taken from Redis.
    expect(t2.cached).toBeGreaterThanOrEqual(imported * 16);
    expect(await metric(b, "hearth_kv_redis_rejected_total")).toBe(0);
  }, 180_000);

  test("a damaged page in Redis is rejected, deleted and recomputed; the answer is unchanged", async () => {
    const [a, , c3] = replicas as [RunningServer, RunningServer, RunningServer];
    const c = redisClient();
    const before = await pageKeys(c);
    const ref = await startConversation(2, a);
    const fresh = [...(await pageKeys(c))].filter((k) => !before.has(k));
    expect(fresh.length).toBeGreaterThanOrEqual(10);
    // Flip one bit in the KV of every page of the conversation: the first page the next turn
    // needs is damaged, whichever it is.
    const original = new Map<string, Buffer>();
    for (const k of fresh) {
      const rec = Buffer.from((await c.getBuffer(k)) as Uint8Array);
      original.set(k, rec);
      const bad = Buffer.from(rec);
      const at = 128 + Math.floor((bad.length - 128) / 3);
      bad[at] = (bad[at] as number) ^ 0x01;
      await c.set(k, bad, "KEEPTTL");
    }
    const hitsBefore = await metric(c3, "hearth_kv_redis_hits_total");
    const t2 = await chat(c3.url, secondTurn(2, ref.first));
    expect(t2.text).toBe(ref.second);
    expect(await metric(c3, "hearth_kv_redis_rejected_total")).toBe(1);
    expect(await metric(c3, "hearth_kv_redis_hits_total")).toBe(hitsBefore);
    expect(t2.cached).toBe(0);
    // The rejected record was deleted, and the replica that recomputed its page published it
    // again: bit for bit the page the first replica computed. The others are still damaged
    // (each is refused and deleted when a lookup reaches it).
    const restored = async () => {
      let same = 0;
      for (const [k, rec] of original) {
        const now = await c.getBuffer(k);
        if (now !== null && Buffer.from(now).equals(rec)) same++;
      }
      return same;
    };
    await until("the recomputed page in Redis", async () => (await restored()) === 1);
    c.close();
  }, 180_000);

  test("Redis killed mid-run: requests in flight and after still answer correctly; it reconnects", async () => {
    const [a, b, c3] = replicas as [RunningServer, RunningServer, RunningServer];
    const ref3 = await startConversation(3, a);
    const ref4 = await startConversation(4, a);
    const errorsBefore = await metric(b, "hearth_kv_redis_errors_total");
    // Both next turns start; Redis dies while they run (before, during or after their fetch).
    const inFlight = [chat(b.url, secondTurn(3, ref3.first)), chat(c3.url, secondTurn(4, ref4.first))];
    redis.proc.kill("SIGKILL");
    await redis.proc.exited;
    const [r3, r4] = await Promise.all(inFlight);
    expect(r3?.text).toBe(ref3.second);
    expect(r4?.text).toBe(ref4.second);
    // With Redis gone, a replica that lacks the pages recomputes them.
    const ref5 = { first: (await chat(plain.url, firstTurn(5))).text, second: "" };
    ref5.second = (await chat(plain.url, secondTurn(5, ref5.first))).text;
    expect((await chat(a.url, firstTurn(5))).text).toBe(ref5.first);
    const t5 = await chat(b.url, secondTurn(5, ref5.first));
    expect(t5.text).toBe(ref5.second);
    expect(await metric(b, "hearth_kv_redis_connected")).toBe(0);
    expect(await metric(b, "hearth_kv_redis_errors_total")).toBeGreaterThan(errorsBefore);
    // Redis is back (empty): the replicas reconnect on their next requests and share again.
    redis = await startRedis(redisPort);
    await until("a reconnect", async () => {
      await chat(a.url, firstTurn(5));
      return (await metric(a, "hearth_kv_redis_connected")) === 1;
    });
    // The pages a replica wrote before are written again into the empty Redis.
    await chat(a.url, firstTurn(5));
    const c = redisClient();
    await until("the pages written again", async () => (await pageKeys(c)).size >= 10);
    c.close();
  }, 300_000);

  test("the size bound deletes the least recently used pages of the model's namespace", async () => {
    // Its own Redis database, so the bound sees only this replica's pages.
    const small = await serve(["--kv-redis", `redis://127.0.0.1:${redisPort}/1`, "--kv-redis-max-mb", "2"]);
    try {
      await until(
        "the Redis connection",
        async () => (await metric(small, "hearth_kv_redis_connected")) === 1,
      );
      await chat(small.url, firstTurn(7));
      await until("evictions", async () => (await metric(small, "hearth_kv_redis_evicted_total")) > 0);
      const c = new RedisClient(`redis://127.0.0.1:${redisPort}/1`);
      const keys = await pageKeys(c);
      const index = ((await c.send("KEYS", ["hearth:kv:*:index"])) as string[])[0] as string;
      const record = (await c.getBuffer([...keys][0] as string)) as Uint8Array;
      // 2 MiB holds this many records; the index lists exactly the pages that remain.
      const most = Math.floor((2 * 1024 * 1024) / record.length);
      expect(keys.size).toBe(most);
      expect(Number(await c.send("ZCARD", [index]))).toBe(most);
      const written = await metric(small, "hearth_kv_redis_pages_written_total");
      expect(await metric(small, "hearth_kv_redis_evicted_total")).toBe(written - most);
      c.close();
    } finally {
      await small.stop();
    }
  }, 180_000);

  test("bad --kv-redis flags are one clear line and exit code 2, before the model loads", async () => {
    for (const [flags, message] of [
      [["--kv-redis", "localhost:6379"], /redis:\/\/ or rediss:\/\/ URL/],
      [["--kv-redis-ttl", "60"], /need --kv-redis URL/],
      [["--kv-redis", "redis://x:1", "--no-prefix-cache"], /needs the prefix cache/],
      [["--kv-redis", "redis://x:1", "--kv-redis-max-mb", "0"], /kv-redis-max-mb/],
    ] as const) {
      const p = Bun.spawn([process.execPath, "src/cli/main.ts", "serve", ...flags], {
        cwd: join(import.meta.dir, ".."),
        stdout: "pipe",
        stderr: "pipe",
      });
      expect(await p.exited).toBe(2);
      expect(await new Response(p.stderr).text()).toMatch(message);
    }
  });

  test("through nginx: a session sticks to one replica, and when that replica dies another answers without a client retry", async () => {
    const nginx = await startNginx(replicas.map((r) => new URL(r.url).host));
    try {
      const url = `http://127.0.0.1:${nginx.port}`;
      const upstreamOf = async (headers: Record<string, string>) =>
        (await fetch(`${url}/health`, { headers })).headers.get("x-hearth-upstream");
      const session = { "X-Session-Id": "conversation-6" };
      const owner = await upstreamOf(session);
      expect(owner).not.toBeNull();
      for (let i = 0; i < 3; i++) expect(await upstreamOf(session)).toBe(owner);
      // Without the header the first messages are the key: both turns of a chat go to one replica.
      const ref = await startConversation(6, replicas[0] as RunningServer);
      const raw = (messages: Message[]) =>
        fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "x", messages, max_tokens: MAX_TOKENS, temperature: 0 }),
        });
      const r1 = await raw(firstTurn(6));
      const r2 = await raw(secondTurn(6, ref.first));
      expect(r1.status).toBe(200);
      expect(r2.headers.get("x-hearth-upstream")).toBe(r1.headers.get("x-hearth-upstream"));
      // Later turns too (a key that ignored the first messages would scatter them).
      for (const follow of ["Thanks.", "One more, please.", "And a bird?"]) {
        const r = await raw([
          ...secondTurn(6, ref.first),
          { role: "assistant", content: "Ok." },
          { role: "user", content: follow },
        ]);
        expect(r.headers.get("x-hearth-upstream")).toBe(r1.headers.get("x-hearth-upstream"));
        await r.arrayBuffer();
      }
      expect(
        ((await r2.json()) as { choices: { message: { content: string } }[] }).choices[0]?.message.content,
      ).toBe(ref.second);
      // The session's replica dies; the same request through nginx is answered by another one.
      const victim = replicas.find((r) => new URL(r.url).host === owner) as RunningServer;
      victim.proc.kill("SIGKILL");
      await victim.proc.exited;
      const res = await clientOf(url, session)
        .chat.completions.create({
          model: "x",
          messages: secondTurn(6, ref.first),
          max_tokens: MAX_TOKENS,
          temperature: 0,
        })
        .withResponse();
      expect(res.data.choices[0]?.message.content).toBe(ref.second);
      const now = res.response.headers.get("x-hearth-upstream") ?? "";
      // nginx tried the dead replica, then one other ("dead, live"); the client made one request.
      expect(now.split(", ").pop()).not.toBe(owner);
      replicas.splice(replicas.indexOf(victim), 1);
    } finally {
      await nginx.stop();
    }
  }, 300_000);
});
