// `hearth serve`: the OpenAI-compatible HTTP server over the continuous-batching engine.
import { basename, join } from "node:path";
import { ChatTemplate } from "../chat/index.ts";
import { Engine, type EngineKvTierConfig } from "../engine/index.ts";
import { pullModel } from "../gguf/pull.ts";
import { defaultKvDir } from "../kv/index.ts";
import type { RedisTierOptions } from "../kv/redis-tier.ts";
import { defaultThreads } from "../model.ts";
import { checkDraftVocabulary, readModelFile } from "../model-file.ts";
import { nativeLimits } from "../native/limits.ts";
import { createApp, DEFAULT_MAX_BODY_BYTES } from "../server/app.ts";
import { KvDirBusyError, lockKvDir } from "../server/kv-lock.ts";
import { type ResolvedSpeculative, resolveSpeculative } from "../speculative.ts";
import { chatTemplateOption, flagNumber, parseFlags } from "./options.ts";

/** The help text; the KV page size comes from the library when it loads. */
function help(): string {
  let page = "the native page size";
  try {
    page = `${nativeLimits().kvPageTokens} tokens`;
  } catch {
    // No library yet: the help still prints; the size is the one hearth_limits reports.
  }
  return `Usage: hearth serve [-m MODEL] [options]

Serves a GGUF model over an OpenAI-compatible HTTP API: /v1/chat/completions,
/v1/completions (streaming SSE or not), /v1/models, /health, /metrics (Prometheus); GET /
is a chat page in a browser and lists the routes to other clients. A request that names no
sampling field samples as \`hearth run\` does; an unknown field is a 400 naming it.
docs/server.md lists every request field. SIGINT / SIGTERM stop it: it stops listening, lets
the requests in flight run up to 5 s, then ends them with an error and exits.

Options:
  -m, --model REF        model: known name (default SmolLM2-135M-Instruct Q4_1), .gguf path or URL
  -md, --model-draft REF a draft model with the same vocabulary: speculative decoding for every
                         request (a request's "speculative": false turns it off, or
                         {"draft": "model" | "lookup" | "both"} picks the source; docs/speculative.md)
      --chat-template FILE  a Jinja chat template to use instead of the model's (docs/tools.md)
      --host HOST        address to bind (default 127.0.0.1: loopback only)
      --port N           port (default 8080; 0 picks a free one)
      --alias NAME       model id /v1/models lists and responses carry (default: the model
                         file's name without .gguf, e.g. SmolLM2-135M-Instruct.Q4_1)
      --api-key KEY      require "Authorization: Bearer KEY" on every route but /health
                         and the chat page / (which asks for the key) (or $HEARTH_API_KEY)
      --parallel N       sequences decoding at once (default 16)
      --queue N          requests waiting beyond --parallel before 429 (default 64)
  -c, --ctx N            most tokens per request, prompt + completion (default: model's, ≤ 4096)
      --kv-pages N       KV pool size in pages of ${page} (default: parallel x ctx / page, ≤ 4096)
  -b, --batch-size N     most tokens per engine step (default 256)
      --kv-type T        f16 (default) or q8_0
  -t, --threads N        compute threads (default: $HEARTH_THREADS, else every core)
      --max-body N       largest request body in bytes (default ${DEFAULT_MAX_BODY_BYTES})
      --cors ORIGIN      let browser pages from ORIGIN call the server (repeatable; * for any
                         origin); preflights are answered without the key (default: no CORS)
      --speculative      speculative decoding by prompt lookup for every request (a request's
                         "speculative": false turns it off, true turns it on without the flag);
                         draft tokens copied from the context are verified in the same step,
                         the output is the one plain decoding gives
      --draft N          most draft tokens per step and sequence (default 4, at most 16; with
                         --model-draft 8, the depth adapts below it); without --speculative or
                         --model-draft, for the requests that ask for it
  -h, --help             this help

Prefix cache (on by default): a request whose prompt starts like an earlier one (the next turn
of a chat repeats the conversation so far) reuses that KV instead of recomputing it; usage then
reports usage.prompt_tokens_details.cached_tokens. Finished conversations stay in RAM up to
--kv-hot-mb and spill to an SSD tier beyond it, or once idle for --kv-idle-ms; the SSD tier and
its manifest survive a restart (written on SIGINT / SIGTERM and after each idle spill).
      --kv-dir DIR       SSD tier directory (default $HEARTH_KV_DIR or ~/.cache/hearth/kv,
                         under prefix/<model file>-<kv type>); one server per directory
      --kv-disk-mb N     most MiB of KV pages on SSD (default 4096)
      --kv-hot-mb N      MiB of cached pages kept in RAM, at most the KV pool (default half of it)
      --kv-idle-ms N     spill a conversation idle this long to SSD (default 60000; 0 = only
                         when the hot tier is full)
      --no-kv-disk       keep the prefix cache in RAM only (nothing written to disk)
      --no-prefix-cache  compute every prompt in full

A KV tier shared by replicas (docs/scale-out.md): finished conversations' pages also go to
Redis (or Valkey), and a replica that gets a conversation's next turn takes the pages it lacks
from there, each verified against its prompt and model; a miss or an unreachable Redis means
recomputing, never a failed request.
      --kv-redis URL     redis://host:port[/db] of the shared tier (default: none)
      --kv-redis-ttl S   a page unused this many seconds expires (default 3600)
      --kv-redis-max-mb N  most MiB of this model's pages in Redis; the least recently used
                         are deleted beyond it (default 1024)`;
}

/** How long a SIGINT / SIGTERM lets the requests in flight run before it ends them. */
const SHUTDOWN_GRACE_MS = 5000;

/** Whether `p` settles within `ms`; the timer never outlives the answer (it would hold the exit). */
function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    p.then(() => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/** The shared Redis tier's options from its flags; undefined without --kv-redis. */
function redisOptions(
  url: string | undefined,
  ttl: string | undefined,
  maxMb: string | undefined,
): RedisTierOptions | undefined {
  if (url === undefined) {
    if (ttl !== undefined || maxMb !== undefined)
      throw new Error("--kv-redis-ttl and --kv-redis-max-mb need --kv-redis URL");
    return undefined;
  }
  if (!/^rediss?:\/\/[^\s]+$/.test(url))
    throw new Error(`--kv-redis must be a redis:// or rediss:// URL, got ${JSON.stringify(url)}`);
  return {
    url,
    ttlMs: int("kv-redis-ttl", ttl, 3600, 1, 30 * 86400) * 1000,
    maxBytes: int("kv-redis-max-mb", maxMb, 1024, 1) * 1024 * 1024,
  };
}

/** An integer flag: `def` when absent, else within [min, max]. */
function int(name: string, v: string | undefined, def: number, min: number, max?: number): number {
  return flagNumber(name, v, { int: true, min, max }) ?? def;
}

export async function main(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    const parsed = parseFlags(argv, {
      model: { type: "string", short: "m" },
      "model-draft": { type: "string" },
      "chat-template": { type: "string" },
      host: { type: "string" },
      port: { type: "string" },
      "api-key": { type: "string" },
      alias: { type: "string" },
      parallel: { type: "string" },
      queue: { type: "string" },
      ctx: { type: "string", short: "c" },
      "kv-pages": { type: "string" },
      "batch-size": { type: "string", short: "b" },
      "kv-type": { type: "string" },
      threads: { type: "string", short: "t" },
      "max-body": { type: "string" },
      cors: { type: "string", multiple: true },
      "kv-dir": { type: "string" },
      "kv-disk-mb": { type: "string" },
      "kv-hot-mb": { type: "string" },
      "kv-idle-ms": { type: "string" },
      "no-kv-disk": { type: "boolean" },
      "no-prefix-cache": { type: "boolean" },
      "kv-redis": { type: "string" },
      "kv-redis-ttl": { type: "string" },
      "kv-redis-max-mb": { type: "string" },
      speculative: { type: "boolean" },
      draft: { type: "string" },
      help: { type: "boolean", short: "h" },
    });
    values = parsed.values;
    if (parsed.positionals.length > 0)
      throw new Error(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  } catch (err) {
    console.error(`hearth serve: ${(err as Error).message}\nRun \`hearth serve --help\` for the options.`);
    return 2;
  }
  if (values.help) {
    console.log(help());
    return 0;
  }
  const s = (k: string) => values[k] as string | undefined;
  let parallel: number, queue: number, port: number, stepTokens: number, threads: number, maxBody: number;
  let ctxOpt: number | undefined, kvPagesOpt: number | undefined;
  let kvDiskMb: number, kvHotMb: number | undefined, kvIdleMs: number;
  let redis: RedisTierOptions | undefined;
  let speculative: ResolvedSpeculative | null = null;
  let speculativeOptIn: ResolvedSpeculative | null = null;
  let otherTemplate: string | undefined;
  const kvType = (s("kv-type") ?? "f16") as "f16" | "q8_0";
  try {
    parallel = int("parallel", s("parallel"), 16, 1, nativeLimits().maxSequences);
    queue = int("queue", s("queue"), 64, 0);
    port = int("port", s("port"), 8080, 0, 65535);
    stepTokens = int("batch-size", s("batch-size"), 256, 1, nativeLimits().maxBatchTokens);
    threads = int("threads", s("threads"), defaultThreads(), 1, nativeLimits().maxThreads);
    maxBody = int("max-body", s("max-body"), DEFAULT_MAX_BODY_BYTES, 1);
    ctxOpt = s("ctx") === undefined ? undefined : int("ctx", s("ctx"), 0, nativeLimits().kvPageTokens);
    kvPagesOpt =
      s("kv-pages") === undefined
        ? undefined
        : int("kv-pages", s("kv-pages"), 0, 1, nativeLimits().maxKvPages);
    if (kvType !== "f16" && kvType !== "q8_0")
      throw new Error(`--kv-type must be f16 or q8_0, got ${kvType}`);
    kvDiskMb = int("kv-disk-mb", s("kv-disk-mb"), 4096, 1);
    kvHotMb = s("kv-hot-mb") === undefined ? undefined : int("kv-hot-mb", s("kv-hot-mb"), 0, 1);
    kvIdleMs = int("kv-idle-ms", s("kv-idle-ms"), 60_000, 0);
    if (values["no-prefix-cache"] && s("kv-dir") !== undefined)
      throw new Error("--no-prefix-cache turns the SSD tier off too; drop --kv-dir");
    if (values["no-kv-disk"] && s("kv-dir") !== undefined)
      throw new Error("--kv-dir and --no-kv-disk contradict each other");
    if (s("alias")?.trim() === "") throw new Error("--alias must not be empty");
    redis = redisOptions(s("kv-redis"), s("kv-redis-ttl"), s("kv-redis-max-mb"));
    if (redis !== undefined && values["no-prefix-cache"])
      throw new Error(
        "--kv-redis shares the prefix cache's pages; it needs the prefix cache (drop --no-prefix-cache)",
      );
    otherTemplate = chatTemplateOption(s("chat-template")).chatTemplate;
    const key = s("api-key");
    if (key !== undefined && key.trim() === "")
      throw new Error("--api-key must not be empty (no client could send it)");
    // Clients' Bearer tokens are compared trimmed: a key with outer spaces could never match.
    if (key !== undefined && key.trim() !== key)
      throw new Error("--api-key must not start or end with whitespace (no client could send it)");
    const draft = s("draft") === undefined ? undefined : int("draft", s("draft"), 4, 1, 16);
    // Without --speculative, --draft sets the drafts of requests that ask for speculation.
    const settings = resolveSpeculative(draft === undefined ? true : { maxDraftTokens: draft });
    if (s("model-draft")?.trim() === "") throw new Error("--model-draft must name a model");
    // A draft model drafts for every request that does not say otherwise.
    if (values.speculative || s("model-draft") !== undefined) speculative = settings;
    else if (draft !== undefined) speculativeOptIn = settings;
  } catch (err) {
    console.error(`hearth serve: ${(err as Error).message}\nRun \`hearth serve --help\` for the options.`);
    return 2;
  }
  // $HEARTH_API_KEY is trimmed (a file's trailing newline); empty is no key, not an unusable one.
  const apiKey = s("api-key") ?? (process.env.HEARTH_API_KEY?.trim() || undefined);
  const host = s("host") ?? "127.0.0.1";

  const path = await pullModel(s("model"));
  const mf = readModelFile(path);
  const draftRef = s("model-draft");
  let draftPath: string | undefined;
  if (draftRef !== undefined) {
    draftPath = await pullModel(draftRef);
    try {
      checkDraftVocabulary(mf, readModelFile(draftPath));
    } catch (err) {
      console.error(`hearth serve: --model-draft: ${(err as Error).message}`);
      return 2;
    }
  }
  const trained = mf.trainedContextTokens > 0 ? mf.trainedContextTokens : 4096;
  const contextTokens = ctxOpt ?? Math.min(trained, 4096);
  const kvPages =
    kvPagesOpt ?? Math.min(4096, Math.ceil((parallel * contextTokens) / nativeLimits().kvPageTokens));
  const { tokenizer } = mf;
  let chatTemplate = mf.chatTemplate;
  if (otherTemplate !== undefined) {
    try {
      chatTemplate = ChatTemplate.forTokenizer(otherTemplate, tokenizer);
    } catch (err) {
      console.error(`hearth serve: --chat-template: ${(err as Error).message}`);
      return 2;
    }
  }

  // The SSD tier: an explicit --kv-dir must work (else exit); the default one falls back to RAM only.
  let kvTier: EngineKvTierConfig | null = null;
  let unlockKvDir = () => {};
  if (!values["no-prefix-cache"]) {
    kvTier = {
      idleMs: kvIdleMs,
      ...(redis === undefined ? {} : { redis }),
      ...(kvHotMb === undefined ? {} : { hotBytes: kvHotMb * 1024 * 1024 }),
    };
    if (!values["no-kv-disk"]) {
      // One subdirectory per model file and KV type, under --kv-dir as under the default: pages
      // of another model or KV type are foreign, and sharing a directory would discard them.
      const explicit = s("kv-dir");
      const dir = join(
        explicit ?? defaultKvDir(),
        "prefix",
        `${basename(path).replace(/\.gguf$/i, "")}-${kvType}`,
      );
      try {
        unlockKvDir = lockKvDir(dir);
        kvTier = { ...kvTier, dir, diskBytes: kvDiskMb * 1024 * 1024 };
      } catch (err) {
        const why =
          err instanceof KvDirBusyError ? err.message : `cannot use ${dir}: ${(err as Error).message}`;
        if (explicit !== undefined) {
          console.error(`hearth serve: --kv-dir: ${why}`);
          return 1;
        }
        console.error(
          `hearth serve: ${why}; the prefix cache stays in RAM (pass --kv-dir for another directory)`,
        );
      }
    }
  }
  let engine: Engine;
  try {
    engine = await Engine.start(
      {
        modelPath: path,
        threads,
        parallel,
        maxQueued: queue,
        contextTokens,
        kvPages,
        stepTokens,
        kvType,
        kvTier,
        ...(draftPath === undefined ? {} : { draftModelPath: draftPath }),
      },
      mf.file,
    );
  } catch (err) {
    unlockKvDir();
    throw err;
  }
  const tierStats = engine.stats.kvTier;
  if (kvTier !== null && tierStats) {
    const hotMb = ((tierStats.hotCapacityPages * engine.stats.kvPageBytes) / (1024 * 1024)).toFixed(0);
    console.log(
      kvTier.dir
        ? `hearth serve: prefix cache: ${hotMb} MiB in RAM, SSD tier ${kvTier.dir} (${kvDiskMb} MiB, ${tierStats.manifestEntriesLoaded} pages reloaded${tierStats.manifestRejected ? ", a torn or foreign manifest was ignored" : ""})`
        : `hearth serve: prefix cache: ${hotMb} MiB in RAM (no SSD tier)`,
    );
    if (redis !== undefined)
      console.log(
        `hearth serve: shared KV tier: ${redis.url.replace(/\/\/[^@/]*@/, "//***@")} (TTL ${redis.ttlMs / 1000} s, ${redis.maxBytes / (1024 * 1024)} MiB)`,
      );
  }
  // The file's name, as llama.cpp's server lists it: an id without spaces that says which file
  // (quantization included) is served. general.name is often vaguer ("Smollm2 135M ...").
  const modelId = s("alias") ?? (path.split(/[\\/]/).pop() ?? path).replace(/\.gguf$/i, "");
  const app = createApp({
    engine,
    tokenizer,
    chatTemplate,
    modelId,
    contextTokens,
    apiKey,
    maxBodyBytes: maxBody,
    speculative,
    speculativeOptIn,
    draftModel: draftPath !== undefined,
    corsOrigins: (values.cors as string[] | undefined) ?? [],
    embeddings: engine,
  });
  try {
    app.listen({ hostname: host, port });
  } catch (err) {
    // The engine's worker would keep the process alive: stop it before reporting.
    await engine.close();
    unlockKvDir();
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === "ESRCH" || e.code === "EINVAL" || e.code === "ENOTFOUND"
        ? `cannot listen on ${host}:${port}: not an address of this machine (${e.code})`
        : `cannot listen on ${host}:${port}: ${e.message}`;
    console.error(`hearth serve: ${why}`);
    return 1;
  }
  const bound = app.server?.port ?? port;
  // One machine-readable line: tests and scripts wait for it to learn the port.
  console.log(
    `hearth serve: listening on http://${host}:${bound} (model ${modelId}, parallel ${parallel}, ctx ${contextTokens}, kv pages ${kvPages}${draftPath === undefined ? "" : `, draft model ${basename(draftPath)}`})`,
  );
  console.log(`hearth serve: chat page: http://${host}:${bound}/ (open it in a browser)`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  // Stop listening and give the requests in flight a moment to end; then the engine stops, and
  // every request still running ends with an error event (a stream) or a 500, so a long
  // generation never holds the shutdown. The connections get a last moment to take it.
  const stopping = app.stop();
  const drained = await settlesWithin(stopping, SHUTDOWN_GRACE_MS);
  const closed = await engine.close("the server is shutting down");
  if (!drained && !(await settlesWithin(stopping, 1000))) await app.stop(true);
  unlockKvDir();
  if (closed.persistError !== undefined)
    console.error(`hearth serve: the prefix cache was not saved: ${closed.persistError}`);
  else if (closed.persisted !== null)
    console.log(`hearth serve: prefix cache saved (${closed.persisted} pages) in ${kvTier?.dir}`);
  return 0;
}
