// Serving benchmark: 1, 4 and 16 concurrent streaming clients (official openai client) against
// `hearth serve` — aggregate tokens/s, TTFT p50/p95, inter-token p50/p95 — beside node-llama-cpp
// running 16 parallel sequences in one context (bench/peers, same model, same threads, same run).
import OpenAI from "openai";
import { pullModel } from "../src/gguf/pull.ts";
import { startCheckoutServer } from "../test/server-process.ts";
import {
  type BenchOptions,
  type Cell,
  median,
  percentile,
  ratio,
  runStandalone,
  type SuiteResult,
} from "./lib.ts";
import { PARALLEL_PROMPTS } from "./peers/parallel.ts";
import { peerParallel } from "./peers/run.ts";

interface LoadResult {
  clients: number;
  agg_tps: number;
  ttft_ms: number[];
  itl_ms: number[];
  tokens: number;
  wall_ms: number;
}

/** `clients` streams at once, each greedy for `tokens` tokens (EOS ignored, like the peer). */
async function load(client: OpenAI, clients: number, tokens: number): Promise<LoadResult> {
  const ttft_ms: number[] = [];
  const itl_ms: number[] = [];
  let generated = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      const t0 = performance.now();
      const stream = await client.completions.create({
        model: "x",
        prompt: PARALLEL_PROMPTS[i % PARALLEL_PROMPTS.length] as string,
        max_tokens: tokens,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
        // @ts-expect-error hearth (like llama.cpp's server) accepts ignore_eos
        ignore_eos: true,
      });
      let last = 0;
      for await (const c of stream) {
        if (c.usage) generated += c.usage.completion_tokens;
        if ((c.choices[0]?.text ?? "") === "") continue;
        const now = performance.now();
        if (last === 0) ttft_ms.push(now - t0);
        else itl_ms.push(now - last);
        last = now;
      }
    }),
  );
  const wall_ms = performance.now() - started;
  return { clients, agg_tps: (generated / wall_ms) * 1000, ttft_ms, itl_ms, tokens: generated, wall_ms };
}

/** Rounds of 1, 4 and 16 clients (and of the peer): the machine is shared, so one round can land on a
 * noisy second; the table reports each figure's median over the rounds and its range. */
const ROUNDS = 3;

export async function run(opts: BenchOptions): Promise<SuiteResult> {
  const model = await pullModel();
  const tokens = opts.quick ? 24 : 128;
  const rounds = opts.quick ? 1 : ROUNDS;
  const server = await startCheckoutServer(model, [
    "--parallel",
    "16",
    "-t",
    String(opts.threads),
    // The same prompts are sent in every round: measure compute, not the prefix cache
    // (bench/kv.ts measures that), and leave the user's KV cache directory alone.
    "--no-prefix-cache",
  ]);
  const results: LoadResult[][] = [];
  try {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
    await load(client, 1, 4); // warm-up: first step pages in the weights
    for (let r = 0; r < rounds; r++) {
      const round: LoadResult[] = [];
      for (const c of [1, 4, 16]) round.push(await load(client, c, tokens));
      results.push(round);
    }
  } finally {
    await server.stop();
  }
  const peers = [];
  for (let r = 0; r < rounds; r++)
    peers.push(await peerParallel({ sequences: 16, tokens, threads: opts.threads, model }));
  const peerAgg = median(peers.map((p) => p.agg_tps));
  const peer = peers.find((p) => p.agg_tps === peerAgg) ?? (peers[0] as (typeof peers)[number]);
  const of = (c: number) => results.map((round) => round.find((r) => r.clients === c) as LoadResult);
  const range = (xs: number[]) => `${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)}`;
  const rows: Array<Record<string, Cell>> = [1, 4, 16].map((c) => {
    const rs = of(c);
    const agg = median(rs.map((r) => r.agg_tps));
    const ttft = rs.flatMap((r) => r.ttft_ms);
    const itl = rs.flatMap((r) => r.itl_ms);
    return {
      runtime: "hearth serve",
      clients: c,
      tokens: rs[0]?.tokens ?? 0,
      "agg t/s": agg,
      "agg range": range(rs.map((r) => r.agg_tps)),
      "ttft p50 ms": percentile(ttft, 50),
      "ttft p95 ms": percentile(ttft, 95),
      "itl p50 ms": percentile(itl, 50),
      "itl p95 ms": percentile(itl, 95),
      "vs peer": c === 16 ? ratio(agg, peerAgg) : null,
    };
  });
  rows.push({
    runtime: peer.peer,
    clients: peer.sequences,
    tokens: peer.generated_tokens,
    "agg t/s": peerAgg,
    "agg range": range(peers.map((p) => p.agg_tps)),
    "ttft p50 ms": peer.ttft_ms_p50,
    "ttft p95 ms": null,
    "itl p50 ms": null,
    "itl p95 ms": null,
    "vs peer": 1,
  });
  const agg = (c: number) => median(of(c).map((r) => r.agg_tps));
  // The scaling target compares 16 clients with 1 in the same round (same machine state).
  const scaling = median(
    results.map((round) => (round[2] as LoadResult).agg_tps / (round[0] as LoadResult).agg_tps),
  );
  return {
    suite: "serve",
    columns: [
      "runtime",
      "clients",
      "tokens",
      "agg t/s",
      "agg range",
      "ttft p50 ms",
      "ttft p95 ms",
      "itl p50 ms",
      "itl p95 ms",
      "vs peer",
    ],
    rows,
    summary: {
      hearth_agg_1: agg(1),
      hearth_agg_4: agg(4),
      hearth_agg_16: agg(16),
      peer_agg_16: peerAgg,
      hearth_scaling_16_vs_1: scaling,
      hearth_vs_peer_16: ratio(agg(16), peerAgg),
      hearth_ttft_p50_ms_16: percentile(
        of(16).flatMap((r) => r.ttft_ms),
        50,
      ),
      hearth_itl_p95_ms_16: percentile(
        of(16).flatMap((r) => r.itl_ms),
        95,
      ),
    },
    notes: [
      `${tokens} greedy tokens per client (EOS ignored), threads ${opts.threads}; peer: 16 sequences in one node-llama-cpp context, same prompts.`,
      `${rounds} round(s) of 1, 4, 16 clients and of the peer; agg t/s is the median round, hearth_scaling_16_vs_1 the median of each round's 16 / 1.`,
      "Targets: hearth_agg_16 ≥ 5x hearth_agg_1 and ≥ 1.0x peer_agg_16.",
    ],
  };
}

if (import.meta.main) await runStandalone(run);
