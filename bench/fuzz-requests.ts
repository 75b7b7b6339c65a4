// The request fuzz of issue 23: a seeded generator of hostile requests to a real `hearth serve`
// and the judge of its answers. bench/fuzz.ts runs the whole set; test/fuzz.test.ts a sample.
// Every answer must be a valid reply (2xx of the route's shape, or a complete SSE stream) or a
// 4xx/5xx with a JSON error body; no answer within HANG_MS is a hang; the process dying a crash.
import { pullModel } from "../src/gguf/pull.ts";
import { type RunningServer, startCheckoutServer } from "../test/server-process.ts";

export const FUZZ_KEY = "fuzz-key";
/** The server's limits the generator aims at (its flags; docs/limits.md lists the defaults). */
export const FUZZ_CTX = 256;
export const FUZZ_MAX_BODY = 65536;
const HANG_MS = 60_000;

export interface FuzzCase {
  kind: string;
  method: "GET" | "POST" | "PUT";
  path: string;
  /** The raw body (a string is sent as UTF-8; bytes as they are). */
  body?: string | Uint8Array;
  headers?: Record<string, string>;
  /** Abort the request this many ms after sending it (its answer is not judged). */
  abortAfterMs?: number;
}

export interface FuzzFailure {
  kind: string;
  what: "bad_answer" | "hang" | "crash";
  detail: string;
  request: string;
}

export interface FuzzResult {
  requests: number;
  crashes: number;
  hangs: number;
  bad_answers: number;
  /** Requests per kind, for the table. */
  byKind: Record<string, { requests: number; failures: number; statuses: Record<string, number> }>;
  failures: FuzzFailure[];
}

/** mulberry32: a small seeded PRNG (the same seed gives the same requests). */
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

const CHAT = "/v1/chat/completions";
const COMPLETIONS = "/v1/completions";
const MESSAGES = "/v1/messages";
const MODELS = "/v1/models";

const chatBase = () => ({ messages: [{ role: "user", content: "Say hi." }], max_tokens: 3 });
const complBase = () => ({ prompt: "Once upon a time", max_tokens: 3 });
const msgBase = () => ({ model: "smol", messages: [{ role: "user", content: "Say hi." }], max_tokens: 3 });

/** A JSON nesting `depth` levels deep (arrays or objects). */
function nested(depth: number, objects: boolean): string {
  return objects
    ? `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`
    : `${"[".repeat(depth)}1${"]".repeat(depth)}`;
}

/** Values of every JSON type and the edges of numbers. */
const ODD_VALUES: unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  0.5,
  -0.0001,
  1e308,
  -1e308,
  2 ** 53 + 2,
  -(2 ** 63),
  "",
  "5",
  "null",
  "\u0000",
  [],
  [1, "a", null],
  {},
  { a: { b: [] } },
];

function pick<T>(rng: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rng() * xs.length)] as T;
}

function randomText(rng: () => number, len: number): string {
  let s = "";
  for (let i = 0; i < len; i++) {
    const r = rng();
    if (r < 0.5) s += String.fromCharCode(32 + Math.floor(rng() * 95));
    else if (r < 0.7) s += String.fromCodePoint(0x80 + Math.floor(rng() * 0x2000));
    else if (r < 0.8) s += String.fromCodePoint(0x1f300 + Math.floor(rng() * 0x300));
    else if (r < 0.9)
      s += String.fromCharCode(0xd800 + Math.floor(rng() * 0x800)); // lone surrogates
    else s += String.fromCharCode(Math.floor(rng() * 32)); // control characters
  }
  return s;
}

type Route = typeof CHAT | typeof COMPLETIONS | typeof MESSAGES;
const ROUTES: Route[] = [CHAT, COMPLETIONS, MESSAGES];
const baseOf = (route: Route): Record<string, unknown> =>
  route === CHAT ? chatBase() : route === COMPLETIONS ? complBase() : msgBase();

/** Fields at their limit and just past it, per route: [field, value at limit, value past it]. */
function limitCases(route: Route): Array<[string, Record<string, unknown>]> {
  const bias = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [String(i), 1]));
  const common: Array<[string, Record<string, unknown>]> = [
    ["max_tokens=1", { max_tokens: 1 }],
    ["max_tokens=0", { max_tokens: 0 }],
    ["max_tokens=ctx", { max_tokens: FUZZ_CTX }],
    ["max_tokens=ctx+1", { max_tokens: FUZZ_CTX + 1 }],
    ["max_tokens=2^53", { max_tokens: 2 ** 53 }],
    ["top_k=2^31", { top_k: 2 ** 31 }],
    [
      "stop_long",
      route === MESSAGES ? { stop_sequences: ["x".repeat(20_000)] } : { stop: ["x".repeat(20_000)] },
    ],
    ["tools=128", { tools: Array.from({ length: 128 }, (_, i) => tool(route, i)) }],
    ["tools=129", { tools: Array.from({ length: 129 }, (_, i) => tool(route, i)) }],
  ];
  if (route !== COMPLETIONS) {
    const turns = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ role: i % 2 ? "assistant" : "user", content: "a" }));
    common.push(["messages=ctx", { messages: turns(FUZZ_CTX) }]);
    common.push(["messages=ctx+1", { messages: turns(FUZZ_CTX + 1) }]);
    common.push(["messages=9", { messages: turns(9) }]);
  }
  if (route === MESSAGES)
    return [
      ...common,
      ["stop_sequences=16", { stop_sequences: Array.from({ length: 16 }, (_, i) => `s${i}`) }],
      ["stop_sequences=17", { stop_sequences: Array.from({ length: 17 }, (_, i) => `s${i}`) }],
      ["temperature=1", { temperature: 1 }],
      ["temperature=1.01", { temperature: 1.01 }],
      ["top_k=-1", { top_k: -1 }],
    ];
  const openai: Array<[string, Record<string, unknown>]> = [
    ...common,
    ["n=64", { n: 64, max_tokens: 1 }],
    ["n=65", { n: 65, max_tokens: 1 }],
    ["stop=4", { stop: ["a", "b", "c", "d"] }],
    ["stop=5", { stop: ["a", "b", "c", "d", "e"] }],
    ["logit_bias=100", { logit_bias: { "1": 100, "2": -100 } }],
    ["logit_bias=100.5", { logit_bias: { "1": 100.5 } }],
    ["logit_bias_size=1024", { logit_bias: bias(1024) }],
    ["logit_bias_size=1025", { logit_bias: bias(1025) }],
    ["logit_bias_size=3000", { logit_bias: bias(3000) }],
    ["logit_bias_key=bad", { logit_bias: { abc: 1 } }],
    ["logit_bias_key=huge", { logit_bias: { "99999999999": 1 } }],
    ["seed=2^53", { seed: 2 ** 53 }],
    ["seed=2^53+2", { seed: 2 ** 53 + 2 }],
    ["temperature=2", { temperature: 2 }],
    ["temperature=2.01", { temperature: 2.01 }],
  ];
  if (route === CHAT)
    return [
      ...openai,
      ["top_logprobs=20", { logprobs: true, top_logprobs: 20 }],
      ["top_logprobs=21", { logprobs: true, top_logprobs: 21 }],
      ["top_logprobs_no_logprobs", { top_logprobs: 2 }],
      ["n=64+logprobs", { n: 64, max_tokens: 1, logprobs: true, top_logprobs: 20 }],
    ];
  return [
    ...openai,
    ["logprobs=5", { logprobs: 5 }],
    ["logprobs=6", { logprobs: 6 }],
    ["prompts=64", { prompt: Array.from({ length: 64 }, () => "a"), max_tokens: 1 }],
    ["prompts=65", { prompt: Array.from({ length: 65 }, () => "a"), max_tokens: 1 }],
    ["prompts*n=65", { prompt: ["a", "b", "c", "d", "e"], n: 13, max_tokens: 1 }],
    ["token_ids_out_of_vocab", { prompt: [1, 2, 99999999] }],
    ["token_ids_negative", { prompt: [-1] }],
    ["echo+max_tokens=0", { echo: true, max_tokens: 0, logprobs: 5 }],
  ];
}

/** Tool `i` in the route's shape. */
function tool(route: Route, i: number): unknown {
  const parameters = { type: "object", properties: { x: { type: "string" } } };
  return route === MESSAGES
    ? { name: `t${i}`, input_schema: parameters }
    : { type: "function", function: { name: `t${i}`, parameters } };
}

/** One case of `kind`, drawn from rng. */
function makeCase(kind: string, rng: () => number): FuzzCase {
  const route = pick(rng, ROUTES);
  const post = (body: string | Uint8Array, extra: Partial<FuzzCase> = {}): FuzzCase => ({
    kind,
    method: "POST",
    path: route,
    body,
    ...extra,
  });
  const json = (o: unknown) => JSON.stringify(o);
  switch (kind) {
    case "malformed_json": {
      const text = json({ ...baseOf(route), stream: rng() < 0.3 });
      const r = rng();
      if (r < 0.4) return post(text.slice(0, Math.floor(rng() * text.length)));
      if (r < 0.6) return post(text.replace(/[:,]/, pick(rng, [";", "", "::", ",,"])));
      if (r < 0.8)
        return post(pick(rng, ["", "null", "[]", "1", '"x"', "{", "}", "NaN", "{'a':1}", "\u0000"]));
      return post(`${text}${pick(rng, ["x", "{}", ",", "]"])}`);
    }
    case "wrong_type": {
      const body = baseOf(route);
      const fields =
        route === MESSAGES
          ? [
              "messages",
              "max_tokens",
              "system",
              "stream",
              "temperature",
              "stop_sequences",
              "metadata",
              "tools",
            ]
          : ["messages", "prompt", "max_tokens", "n", "stop", "stream", "temperature", "logit_bias", "seed"];
      body[pick(rng, fields)] = pick(rng, ODD_VALUES);
      if (rng() < 0.3)
        body.messages = [{ role: pick(rng, ["user", "bot", 1, null]), content: pick(rng, ODD_VALUES) }];
      return post(json(body));
    }
    case "huge_number": {
      const body = baseOf(route);
      const field = pick(rng, ["max_tokens", "n", "seed", "temperature", "top_p", "top_k", "logprobs"]);
      const lit = pick(rng, [
        "1e400",
        "-1e400",
        "1e-400",
        "123456789012345678901234567890",
        "-0",
        "2.5e15",
        "0.1e1",
      ]);
      return post(json(body).replace(/}$/, `,"${field}":${lit}}`));
    }
    case "huge_string": {
      const body = baseOf(route);
      const size = pick(rng, [2000, 20_000, FUZZ_MAX_BODY - 200, FUZZ_MAX_BODY + 1, 5 * FUZZ_MAX_BODY]);
      const s = "word ".repeat(Math.ceil(size / 5)).slice(0, size);
      const where = rng();
      if (where < 0.5) {
        if (route === COMPLETIONS) body.prompt = s;
        else body.messages = [{ role: "user", content: s }];
      } else if (where < 0.75) body.model = s;
      else body.user = s;
      return post(json(body), rng() < 0.3 ? { headers: { "content-length": "1" } } : {});
    }
    case "deep_nesting": {
      const depth = pick(rng, [50, 500, 5000, 100_000]);
      const doc = nested(depth, rng() < 0.5);
      const body = json(baseOf(route)).replace(
        /}$/,
        `,"${pick(rng, ["metadata", "x", "response_format", "stop"])}":${doc}}`,
      );
      return post(body.length > FUZZ_MAX_BODY && rng() < 0.5 ? doc.slice(0, FUZZ_MAX_BODY - 10) : body);
    }
    case "unicode": {
      const body = baseOf(route);
      const text = randomText(rng, 1 + Math.floor(rng() * 200));
      if (route === COMPLETIONS) body.prompt = text;
      else body.messages = [{ role: "user", content: text }];
      if (rng() < 0.3) body.stop = route === MESSAGES ? undefined : [randomText(rng, 3)];
      if (rng() < 0.3) body.stream = true;
      return post(json(body));
    }
    case "invalid_utf8": {
      const text = json(baseOf(route));
      const cut = text.indexOf("Say hi") >= 0 ? text.indexOf("Say hi") : text.indexOf("Once");
      const bad = pick(rng, [
        [0xff],
        [0xc0, 0xaf],
        [0xed, 0xa0, 0x80],
        [0xf8, 0x88, 0x80, 0x80, 0x80],
        [0xe2, 0x82],
        [0x80],
      ]);
      const enc = new TextEncoder();
      const bytes = new Uint8Array([
        ...enc.encode(text.slice(0, cut)),
        ...bad,
        ...enc.encode(text.slice(cut)),
      ]);
      return post(bytes);
    }
    case "limits": {
      const [name, fields] = pick(rng, limitCases(route));
      const body = { ...baseOf(route), ...fields, ...(rng() < 0.3 ? { stream: true } : {}) };
      return { ...post(json(body)), kind: `limits:${name}` };
    }
    case "body_size": {
      const text = json({ ...baseOf(route), stream: rng() < 0.3 });
      const size = pick(rng, [FUZZ_MAX_BODY - 1, FUZZ_MAX_BODY, FUZZ_MAX_BODY + 1]);
      return {
        ...post(text + " ".repeat(size - Buffer.byteLength(text))),
        kind: `body_size:${size - FUZZ_MAX_BODY}`,
      };
    }
    case "abort": {
      const body = { ...baseOf(route), max_tokens: 48, stream: rng() < 0.6 };
      return post(json(body), { abortAfterMs: Math.floor(rng() * rng() * 600) });
    }
    case "models": {
      const r = rng();
      if (r < 0.4) return { kind, method: "GET", path: MODELS };
      if (r < 0.6)
        return {
          kind,
          method: "GET",
          path: `${MODELS}/${rng() < 0.5 ? encodeURIComponent(randomText(rng, 8).toWellFormed()) : pick(rng, ["%FF%00", "%", "..%2F..", "%C0%AF"])}`,
        };
      if (r < 0.8) return { kind, method: "POST", path: MODELS, body: randomText(rng, 20) };
      return { kind, method: "PUT", path: pick(rng, [CHAT, MESSAGES, COMPLETIONS]), body: "{}" };
    }
    default: {
      // no_key / wrong headers
      return post(json(baseOf(route)), {
        headers: pick<Record<string, string>>(rng, [
          { authorization: "Bearer wrong" },
          { authorization: "" },
          { "content-type": "text/plain" },
          { "content-type": "application/x-www-form-urlencoded" },
        ]),
      });
    }
  }
}

export const KINDS = [
  "malformed_json",
  "wrong_type",
  "huge_number",
  "huge_string",
  "deep_nesting",
  "unicode",
  "invalid_utf8",
  "limits",
  "limits",
  "body_size",
  "abort",
  "models",
  "headers",
] as const;

/** `count` cases from `seed`: kinds round-robin, so every sample covers each of them. */
export function fuzzCases(seed: number, count: number): FuzzCase[] {
  const rng = prng(seed);
  return Array.from({ length: count }, (_, i) => makeCase(KINDS[i % KINDS.length] as string, rng));
}

/** Whether a 2xx JSON body has its route's shape. */
function validReply(path: string, body: Record<string, unknown>): boolean {
  const choices = body.choices;
  if (path === CHAT) return body.object === "chat.completion" && Array.isArray(choices) && choices.length > 0;
  if (path === COMPLETIONS)
    return body.object === "text_completion" && Array.isArray(choices) && choices.length > 0;
  if (path === MESSAGES) return body.type === "message" && Array.isArray(body.content);
  if (path.startsWith(MODELS)) return body.object === "list" || body.object === "model";
  return false;
}

/** Whether an error body is JSON in OpenAI's or Anthropic's error shape. */
function validError(body: unknown): boolean {
  const err = (body as { error?: { message?: unknown } } | null)?.error;
  return typeof err === "object" && err !== null && typeof err.message === "string";
}

/** Whether an SSE text is complete: [DONE], message_stop, or an error event at its end. */
function completeStream(path: string, text: string): boolean {
  const t = text.trimEnd();
  if (path === MESSAGES) return /event: (message_stop|error)\ndata: .*$/.test(t);
  return t.endsWith("data: [DONE]") || /data: \{"error".*$/.test(t);
}

/** Judges one answer: null when fine, else what is wrong. */
async function judge(c: FuzzCase, res: Response): Promise<string | null> {
  const text = await res.text();
  const type = res.headers.get("content-type") ?? "";
  if (res.status >= 200 && res.status < 300) {
    if (c.method === "PUT") return `2xx to PUT`;
    if (type.includes("text/event-stream"))
      return completeStream(c.path, text) ? null : `incomplete stream: ${JSON.stringify(text.slice(-200))}`;
    try {
      return validReply(c.path, JSON.parse(text)) ? null : `2xx of the wrong shape: ${text.slice(0, 200)}`;
    } catch {
      return `2xx not JSON: ${JSON.stringify(text.slice(0, 200))}`;
    }
  }
  if (res.status >= 400 && res.status < 600) {
    try {
      return validError(JSON.parse(text))
        ? null
        : `${res.status} without a JSON error: ${text.slice(0, 200)}`;
    } catch {
      return `${res.status} not JSON: ${JSON.stringify(text.slice(0, 200))}`;
    }
  }
  return `status ${res.status}`;
}

function describe(c: FuzzCase): string {
  const body = typeof c.body === "string" ? c.body : c.body ? Buffer.from(c.body).toString("latin1") : "";
  return `${c.method} ${c.path} ${JSON.stringify(body.slice(0, 160))}${body.length > 160 ? `... (${body.length} bytes)` : ""}`;
}

/** The normal request after each batch: greedy, so its reply must equal the first one. */
const SANITY = {
  messages: [{ role: "user", content: "What is the capital of France?" }],
  max_tokens: 8,
  temperature: 0,
};

async function sanity(url: string): Promise<string> {
  const res = await fetch(`${url}${CHAT}`, {
    method: "POST",
    headers: { authorization: `Bearer ${FUZZ_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(SANITY),
    signal: AbortSignal.timeout(HANG_MS),
  });
  const body = (await res.json()) as { choices?: Array<{ message?: { content?: string } }> };
  const content = body.choices?.[0]?.message?.content;
  if (res.status !== 200 || typeof content !== "string")
    throw new Error(`sanity request: ${res.status} ${JSON.stringify(body)}`);
  return content;
}

/** Sends one case; returns the failure, if any. */
async function send(url: string, c: FuzzCase): Promise<FuzzFailure | { status: string }> {
  const headers: Record<string, string> = {
    authorization: `Bearer ${FUZZ_KEY}`,
    "content-type": "application/json",
    ...c.headers,
  };
  const ctl = new AbortController();
  const hang = setTimeout(() => ctl.abort(new Error("hang")), HANG_MS);
  let aborted = false;
  if (c.abortAfterMs !== undefined)
    setTimeout(() => {
      aborted = true;
      ctl.abort();
    }, c.abortAfterMs);
  try {
    const res = await fetch(`${url}${c.path}`, {
      method: c.method,
      headers,
      body: c.body as BodyInit | undefined,
      signal: ctl.signal,
    });
    const bad = await judge(c, res);
    if (bad !== null) return { kind: c.kind, what: "bad_answer", detail: bad, request: describe(c) };
    return { status: String(res.status) };
  } catch (err) {
    if (aborted) return { status: "aborted" };
    if (ctl.signal.aborted)
      return { kind: c.kind, what: "hang", detail: `no answer in ${HANG_MS} ms`, request: describe(c) };
    return {
      kind: c.kind,
      what: "bad_answer",
      detail: `connection: ${(err as Error).message}`,
      request: describe(c),
    };
  } finally {
    clearTimeout(hang);
  }
}

export interface FuzzOptions {
  seed: number;
  count: number;
  /** Requests in flight at once (aborts then land beside other requests). */
  concurrency?: number;
  /** Requests between two checks that a normal request is still served the same. */
  batch?: number;
}

/** Runs the cases against a running server: every batch in parallel, then the sanity check. */
export async function runFuzz(server: RunningServer, o: FuzzOptions): Promise<FuzzResult> {
  const cases = fuzzCases(o.seed, o.count);
  const concurrency = o.concurrency ?? 8;
  const batch = o.batch ?? 100;
  const result: FuzzResult = { requests: 0, crashes: 0, hangs: 0, bad_answers: 0, byKind: {}, failures: [] };
  const reference = await sanity(server.url);
  const note = (c: FuzzCase, r: FuzzFailure | { status: string }) => {
    const kind = c.kind.replace(/:.*/, "");
    const k = result.byKind[kind] ?? { requests: 0, failures: 0, statuses: {} };
    result.byKind[kind] = k;
    k.requests++;
    result.requests++;
    if ("what" in r) {
      k.failures++;
      result.failures.push(r);
      if (r.what === "hang") result.hangs++;
      else result.bad_answers++;
    } else k.statuses[r.status] = (k.statuses[r.status] ?? 0) + 1;
  };
  for (let start = 0; start < cases.length; start += batch) {
    const slice = cases.slice(start, start + batch);
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < slice.length) {
          const c = slice[next++] as FuzzCase;
          note(c, await send(server.url, c));
        }
      }),
    );
    if (server.proc.exitCode !== null || server.proc.signalCode !== null) {
      result.crashes++;
      result.failures.push({
        kind: "server",
        what: "crash",
        detail: `server exited (${server.proc.exitCode ?? server.proc.signalCode}) during requests ${start}..${start + slice.length}`,
        request: "",
      });
      break;
    }
    let again: string;
    try {
      again = await sanity(server.url);
    } catch (err) {
      again = `(failed: ${(err as Error).message})`;
    }
    if (again !== reference)
      result.failures.push({
        kind: "sanity",
        what: "bad_answer",
        detail: `after request ${start + slice.length} the greedy reply is ${JSON.stringify(again)}, was ${JSON.stringify(reference)}`,
        request: JSON.stringify(SANITY),
      });
    if (again !== reference) result.bad_answers++;
  }
  return result;
}

/** Starts the server the fuzz runs against: the default model, small context, API key. */
export async function startFuzzServer(threads = 2): Promise<RunningServer> {
  const model = await pullModel();
  return startCheckoutServer(model, [
    "--api-key",
    FUZZ_KEY,
    "--parallel",
    "8",
    "--queue",
    "16",
    "--ctx",
    String(FUZZ_CTX),
    "--max-body",
    String(FUZZ_MAX_BODY),
    "--threads",
    String(threads),
    "--no-kv-disk",
  ]);
}
