// `bun run bench scale`: three hearth replicas on loopback behind nginx, sharing KV pages through
// redis-server (docs/scale-out.md). Measures the next turn of a ~1,000-token conversation on a
// replica that never saw it: time to first token with its prefix from Redis against the same turn
// when Redis has nothing for it (re-prefill) -> cross_replica_resume_ratio (target <= 0.20). Then
// the aggregate decode rate of concurrent streams, three replicas (one thread each) behind nginx
// against one replica using every thread: on a 2-core machine that is overhead, not scaling.
import OpenAI from "openai";
import { pullModel } from "../src/gguf/pull.ts";
import { type RunningServer, startCheckoutServer } from "../test/server-process.ts";
import { type Service, startNginx, startRedis } from "../test/support/cluster.ts";
import type { BenchOptions, SuiteResult } from "./lib.ts";

type Message = { role: "system" | "user" | "assistant"; content: string };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** A conversation of about `words` words that shares no page with another of a different `n`. */
function conversation(n: number, words: number): Message[] {
  const topics = ["rivers", "bread", "clocks", "bridges", "gardens", "trains", "maps", "lamps"];
  const parts: string[] = [`Conversation ${n}.`];
  for (let i = 0; parts.length < words / 12; i++)
    parts.push(
      `Note ${i}: the ${topics[(i + n) % topics.length]} of town ${i * 13 + n} are old and well kept.`,
    );
  return [
    { role: "system", content: `You answer briefly. Background notes follow. ${parts.join(" ")}` },
    { role: "user", content: "Which town has the oldest bridges?" },
  ];
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.split(" ")[1]);
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

class Cluster {
  constructor(
    readonly nginxUrl: string,
    readonly replicas: RunningServer[],
  ) {}

  /** The replica (host:port) nginx sends a session to. */
  async upstreamOf(session: string): Promise<string> {
    const r = await fetch(`${this.nginxUrl}/health`, { headers: { "X-Session-Id": session } });
    await r.arrayBuffer();
    return r.headers.get("x-hearth-upstream") ?? "";
  }

  /** A session id nginx maps to a replica other than `not` (or to `want`). */
  async sessionFor(base: string, pred: (upstream: string) => boolean): Promise<string> {
    for (let k = 0; k < 200; k++) {
      const s = `${base}-${k}`;
      if (pred(await this.upstreamOf(s))) return s;
    }
    throw new Error("no session id maps to the wanted replica");
  }

  replicaUrl(host: string): string {
    const r = this.replicas.find((x) => new URL(x.url).host === host);
    if (r === undefined) throw new Error(`no replica at ${host}`);
    return r.url;
  }
}

/** One streamed chat turn through nginx: TTFT, the replica that served it, cached tokens. */
async function turn(c: Cluster, session: string, messages: Message[], maxTokens: number) {
  const client = new OpenAI({
    baseURL: `${c.nginxUrl}/v1`,
    apiKey: "unused",
    maxRetries: 0,
    defaultHeaders: { "X-Session-Id": session },
  });
  const started = performance.now();
  const { data: stream, response } = await client.chat.completions
    .create({
      model: "x",
      messages,
      max_tokens: maxTokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    })
    .withResponse();
  let ttftMs = -1;
  let text = "";
  let cached = 0;
  let promptTokens = 0;
  for await (const chunk of stream) {
    const piece = chunk.choices[0]?.delta.content ?? "";
    if (piece.length > 0 && ttftMs < 0) ttftMs = performance.now() - started;
    text += piece;
    if (chunk.usage) {
      cached = chunk.usage.prompt_tokens_details?.cached_tokens ?? 0;
      promptTokens = chunk.usage.prompt_tokens;
    }
  }
  return { ttftMs, text, cached, promptTokens, upstream: response.headers.get("x-hearth-upstream") ?? "" };
}

/**
 * Turn 1 on one replica, its pages into Redis (or, for the baseline, out of it again), then turn 2
 * through nginx on another replica: its TTFT.
 */
async function nextTurnElsewhere(c: Cluster, redis: Service, n: number, words: number, keepRedis: boolean) {
  const first = conversation(n, words);
  const s1 = `bench-${n}`;
  // The previous turns' pages may still be on their way to Redis: let every replica's count settle
  // first, so the wait below counts this conversation's pages only.
  const written = new Map<string, number>();
  for (let settled = false; !settled; ) {
    const before = new Map(written);
    // Longer than one publish of a conversation takes (its count moves only when it ends).
    if (before.size > 0) await Bun.sleep(1500);
    for (const r of c.replicas)
      written.set(new URL(r.url).host, await metric(r.url, "hearth_kv_redis_pages_written_total"));
    settled = before.size > 0 && [...written].every(([h, v]) => before.get(h) === v);
  }
  const t1 = await turn(c, s1, first, 16);
  const owner = t1.upstream;
  // The turn's pages reach Redis right after its answer (the replica publishes them then); the
  // conversation shares no page with an earlier one, so all its whole prompt pages are new.
  await until("turn 1's pages in Redis", async () => {
    const now = await metric(c.replicaUrl(owner), "hearth_kv_redis_pages_written_total");
    return now - (written.get(owner) ?? 0) >= Math.floor(t1.promptTokens / 16);
  });
  if (!keepRedis) {
    const flush = Bun.spawnSync(["redis-cli", "-p", String(redis.port), "FLUSHDB"]);
    if (flush.exitCode !== 0) throw new Error("redis-cli FLUSHDB failed");
  }
  const s2 = await c.sessionFor(`bench-${n}-next`, (u) => u !== owner);
  const second: Message[] = [
    ...first,
    { role: "assistant", content: t1.text },
    { role: "user", content: "And the newest?" },
  ];
  const t2 = await turn(c, s2, second, 8);
  if (t2.upstream === owner) throw new Error("turn 2 went to the replica that served turn 1");
  return { promptTokens: t2.promptTokens, cached: t2.cached, ttftMs: t2.ttftMs };
}

/** `streams` concurrent completions of `tokens` tokens each; returns generated tokens per second. */
async function aggregate(
  urls: { url: string; session?: string }[],
  tokens: number,
): Promise<{ tokS: number; completion: number; wallMs: number }> {
  const started = performance.now();
  const done = await Promise.all(
    urls.map(async ({ url, session }, i) => {
      const client = new OpenAI({
        baseURL: `${url}/v1`,
        apiKey: "unused",
        maxRetries: 0,
        defaultHeaders: session ? { "X-Session-Id": session } : {},
      });
      const r = await client.chat.completions.create({
        model: "x",
        messages: [{ role: "user", content: `Write a long story about a lighthouse keeper number ${i}.` }],
        max_tokens: tokens,
        temperature: 0,
      });
      return r.usage?.completion_tokens ?? 0;
    }),
  );
  const wallMs = performance.now() - started;
  const completion = done.reduce((a, b) => a + b, 0);
  return { tokS: completion / (wallMs / 1000), completion, wallMs };
}

export async function run(opts: BenchOptions): Promise<SuiteResult> {
  const model = await pullModel(opts.model);
  const reps = opts.quick ? 1 : 3;
  const words = opts.quick ? 300 : 780;
  const redis = await startRedis();
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  const common = ["--parallel", "8", "--ctx", "2048", "--kv-pages", "320", "--no-kv-disk"];
  const replicas: RunningServer[] = [];
  let nginx: Service | null = null;
  let solo: RunningServer | null = null;
  try {
    replicas.push(
      ...(await Promise.all(
        [0, 1, 2].map(() => startCheckoutServer(model, [...common, "-t", "1", "--kv-redis", redisUrl])),
      )),
    );
    for (const r of replicas)
      await until("Redis connections", async () => (await metric(r.url, "hearth_kv_redis_connected")) === 1);
    nginx = await startNginx(replicas.map((r) => new URL(r.url).host));
    const c = new Cluster(`http://127.0.0.1:${nginx.port}`, replicas);
    // Warm-up: every replica pages its weights in.
    await Promise.all(replicas.map((r) => aggregate([{ url: r.url }], 4)));

    const resume: Awaited<ReturnType<typeof nextTurnElsewhere>>[] = [];
    const reprefill: Awaited<ReturnType<typeof nextTurnElsewhere>>[] = [];
    for (let i = 0; i < reps; i++) {
      resume.push(await nextTurnElsewhere(c, redis, 100 + i, words, true));
      reprefill.push(await nextTurnElsewhere(c, redis, 200 + i, words, false));
    }
    const resumeMs = median(resume.map((r) => r.ttftMs));
    const reprefillMs = median(reprefill.map((r) => r.ttftMs));

    // Aggregate decode: the same streams spread evenly over three replicas (session ids picked so
    // that nginx sends 1/3 to each, as many sessions would on average), then on one replica.
    const streams = opts.quick ? 3 : 6;
    const tokens = opts.quick ? 24 : 96;
    const hosts = replicas.map((r) => new URL(r.url).host);
    const spread: { url: string; session: string }[] = [];
    for (let k = 0; k < streams; k++) {
      const want = hosts[k % hosts.length] as string;
      spread.push({ url: c.nginxUrl, session: await c.sessionFor(`load-${k}`, (u) => u === want) });
    }
    const three = await aggregate(spread, tokens);
    await Promise.all(replicas.map((r) => r.stop()));
    replicas.length = 0;
    solo = await startCheckoutServer(model, [...common, "-t", String(opts.threads)]);
    await aggregate([{ url: solo.url }], 4);
    const one = await aggregate(
      spread.map(() => ({ url: (solo as RunningServer).url })),
      tokens,
    );

    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    const summary = {
      cross_replica_resume_ratio: r3(resumeMs / reprefillMs),
      resume_ttft_ms: Math.round(resumeMs),
      reprefill_ttft_ms: Math.round(reprefillMs),
      conversation_tokens: median(resume.map((r) => r.promptTokens)),
      resume_cached_tokens: median(resume.map((r) => r.cached)),
      reprefill_cached_tokens: median(reprefill.map((r) => r.cached)),
      aggregate_tok_s_3: r3(three.tokS),
      aggregate_tok_s_1: r3(one.tokS),
      scale_3_vs_1: r3(three.tokS / one.tokS),
    };
    return {
      suite: "scale",
      columns: ["figure", "value", "note"],
      rows: [
        {
          figure: "next turn on another replica, TTFT, prefix from Redis",
          value: summary.resume_ttft_ms,
          note: `ms; ${summary.resume_cached_tokens} of ${summary.conversation_tokens} prompt tokens reused`,
        },
        {
          figure: "the same turn, Redis empty (re-prefill), TTFT",
          value: summary.reprefill_ttft_ms,
          note: `ms; ${summary.reprefill_cached_tokens} tokens reused`,
        },
        {
          figure: "cross_replica_resume_ratio",
          value: summary.cross_replica_resume_ratio,
          note: "target <= 0.20",
        },
        {
          figure: `aggregate decode, ${streams} streams x ${tokens} tokens, 3 replicas (1 thread each) behind nginx`,
          value: summary.aggregate_tok_s_3,
          note: "tok/s",
        },
        {
          figure: `the same streams on 1 replica (${opts.threads} threads), no nginx`,
          value: summary.aggregate_tok_s_1,
          note: "tok/s",
        },
        { figure: "3 replicas vs 1", value: summary.scale_3_vs_1, note: "same cores: overhead, not scaling" },
      ],
      summary,
      notes: [
        `median of ${reps} conversation(s); replicas: --parallel 8, RAM prefix cache, Redis tier on loopback`,
      ],
      raw: { resume, reprefill, three, one },
    };
  } finally {
    await Promise.all(replicas.map((r) => r.stop()));
    await solo?.stop();
    await nginx?.stop();
    await redis.stop();
  }
}
