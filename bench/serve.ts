// Serving benchmark: 1, 4 and 16 concurrent streaming clients (official openai client) against
// `hearth serve` — aggregate tokens/s, TTFT p50/p95, inter-token p50/p95 — beside node-llama-cpp
// running 16 parallel sequences in one context (bench/peers, same model, same threads, same run).
import OpenAI from "openai";
import { pullModel } from "../src/gguf/pull.ts";
import { startCheckoutServer } from "../test/server-process.ts";
import { type BenchOptions, type Cell, percentile, ratio, runStandalone, type SuiteResult } from "./lib.ts";
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

export async function run(opts: BenchOptions): Promise<SuiteResult> {
  const model = await pullModel();
  const tokens = opts.quick ? 24 : 128;
  const server = await startCheckoutServer(model, [
    "--parallel",
    "16",
    "-t",
    String(opts.threads),
    // The same prompts are sent in every round: measure compute, not the prefix cache
    // (bench/kv.ts measures that), and leave the user's KV cache directory alone.
    "--no-prefix-cache",
  ]);
  const results: LoadResult[] = [];
  try {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
    await load(client, 1, 4); // warm-up: first step pages in the weights
    for (const c of [1, 4, 16]) results.push(await load(client, c, tokens));
  } finally {
    await server.stop();
  }
  const peer = await peerParallel({ sequences: 16, tokens, threads: opts.threads, model });
  const byClients = (c: number) => results.find((r) => r.clients === c) as LoadResult;
  const rows: Array<Record<string, Cell>> = results.map((r) => ({
    runtime: "hearth serve",
    clients: r.clients,
    tokens: r.tokens,
    "agg t/s": r.agg_tps,
    "ttft p50 ms": percentile(r.ttft_ms, 50),
    "ttft p95 ms": percentile(r.ttft_ms, 95),
    "itl p50 ms": percentile(r.itl_ms, 50),
    "itl p95 ms": percentile(r.itl_ms, 95),
    "vs peer": r.clients === 16 ? ratio(r.agg_tps, peer.agg_tps) : null,
  }));
  rows.push({
    runtime: peer.peer,
    clients: peer.sequences,
    tokens: peer.generated_tokens,
    "agg t/s": peer.agg_tps,
    "ttft p50 ms": peer.ttft_ms_p50,
    "ttft p95 ms": null,
    "itl p50 ms": null,
    "itl p95 ms": null,
    "vs peer": 1,
  });
  const agg1 = byClients(1).agg_tps;
  const agg16 = byClients(16).agg_tps;
  return {
    suite: "serve",
    columns: [
      "runtime",
      "clients",
      "tokens",
      "agg t/s",
      "ttft p50 ms",
      "ttft p95 ms",
      "itl p50 ms",
      "itl p95 ms",
      "vs peer",
    ],
    rows,
    summary: {
      hearth_agg_1: agg1,
      hearth_agg_4: byClients(4).agg_tps,
      hearth_agg_16: agg16,
      peer_agg_16: peer.agg_tps,
      hearth_scaling_16_vs_1: agg16 / agg1,
      hearth_vs_peer_16: ratio(agg16, peer.agg_tps),
      hearth_ttft_p50_ms_16: percentile(byClients(16).ttft_ms, 50),
      hearth_itl_p95_ms_16: percentile(byClients(16).itl_ms, 95),
    },
    notes: [
      `${tokens} greedy tokens per client (EOS ignored), threads ${opts.threads}; peer: 16 sequences in one node-llama-cpp context, same prompts.`,
      "Targets: hearth_agg_16 ≥ 5x hearth_agg_1 and ≥ 1.0x peer_agg_16.",
    ],
  };
}

if (import.meta.main) await runStandalone(run);
