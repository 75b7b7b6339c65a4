// The draft model through the command line: `hearth serve -md` with the official openai and
// @anthropic-ai/sdk clients (same text as plain decoding, per-request draft source, /metrics per
// source, a bad source is a 400 naming the field) and `hearth run -md` (same output, telemetry by source; a draft with
// another vocabulary is a clear error before anything is generated). The draft is the default
// model's first 26 blocks, written with hearth's GGUF writer.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { pullModel } from "../src/gguf/pull.ts";
import { type RunningServer, startCheckoutServer } from "./server-process.ts";
import { writeEarlyExitDraft } from "./support/draft-pair.ts";

const ROOT = join(import.meta.dir, "..");
let dir: string;
let target: string;
let draft: string;
let server: RunningServer;
let client: OpenAI;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "hearth-draft-serve-"));
  target = await pullModel();
  draft = join(dir, "draft-26.gguf");
  await writeEarlyExitDraft(target, draft, 26);
  server = await startCheckoutServer(target, [
    "-md",
    draft,
    "--ctx",
    "512",
    "--parallel",
    "4",
    "--threads",
    "2",
    "--no-kv-disk",
  ]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
}, 180_000);
afterAll(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The value of a metric line that starts with `name` (labels included). */
async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`metric ${name} missing`);
  return Number(line.split(" ")[1]);
}

describe("hearth serve -md", () => {
  test("drafts with the model by default: the same text as speculative: false; /metrics counts by source", async () => {
    const before = await metric('hearth_draft_tokens_proposed_total{source="model"}');
    const ask = async (content: string, speculative: unknown) => {
      const r = await client.chat.completions.create({
        model: "x",
        messages: [{ role: "user", content }],
        max_tokens: 32,
        temperature: 0,
        // @ts-expect-error hearth extension: speculative decoding per request
        speculative,
      });
      return r.choices[0]?.message.content ?? "";
    };
    const prompts = [
      "Why do cats purr?",
      "Describe a sunrise over the sea.",
      "Give me a recipe for pancakes.",
    ];
    for (const p of prompts) {
      const plain = await ask(p, false);
      expect(plain.length).toBeGreaterThan(0);
      const [byDefault, model, both, lookup] = await Promise.all([
        ask(p, undefined),
        ask(p, { draft: "model" }),
        ask(p, { draft: "both" }),
        ask(p, { draft: "lookup" }),
      ]);
      expect([byDefault, model, both, lookup]).toEqual([plain, plain, plain, plain]);
    }
    const proposed = (await metric('hearth_draft_tokens_proposed_total{source="model"}')) - before;
    expect(proposed).toBeGreaterThan(0);
    expect(await metric('hearth_draft_tokens_proposed_accepted_total{source="model"}')).toBeGreaterThan(0);
    expect(await metric('hearth_draft_tokens_proposed_total{source="lookup"}')).toBeGreaterThanOrEqual(0);
  }, 300_000);

  test("a bad draft source is a 400 naming the field", async () => {
    const r = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "Hi", max_tokens: 2, speculative: { draft: "llm" } }),
    });
    expect(r.status).toBe(400);
    expect(await r.text()).toContain("speculative");
  });

  test("/v1/messages takes speculative as the chat route does (Anthropic's client)", async () => {
    const anthropic = new Anthropic({ baseURL: server.url, apiKey: "none", maxRetries: 0 });
    const ask = async (speculative: unknown) => {
      // hearth extension: speculative decoding per request (not in the SDK's types).
      const params = {
        model: "x",
        max_tokens: 32,
        temperature: 0,
        messages: [{ role: "user" as const, content: "Why is the sea salty?" }],
        speculative,
      } as Anthropic.MessageCreateParamsNonStreaming;
      const m = await anthropic.messages.create(params);
      return m.content.map((b) => (b.type === "text" ? b.text : "")).join("");
    };
    const plain = await ask(false);
    expect(plain.length).toBeGreaterThan(0);
    const before = await metric('hearth_draft_tokens_proposed_total{source="model"}');
    expect(await ask({ draft: "model" })).toBe(plain);
    expect(await metric('hearth_draft_tokens_proposed_total{source="model"}')).toBeGreaterThan(before);
    const lookupBefore = await metric('hearth_draft_tokens_proposed_total{source="model"}');
    expect(await ask({ draft: "lookup" })).toBe(plain);
    expect(await metric('hearth_draft_tokens_proposed_total{source="model"}')).toBe(lookupBefore);
    const bad = await fetch(`${server.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "x",
        max_tokens: 2,
        messages: [{ role: "user", content: "Hi" }],
        speculative: { draft: "llm" },
      }),
    });
    expect(bad.status).toBe(400);
    const body = (await bad.json()) as { type: string; error: { type: string; message: string } };
    expect(body.type).toBe("error");
    expect(body.error.message).toContain("speculative");
  }, 120_000);
});

async function hearth(args: string[]) {
  const proc = Bun.spawn([process.execPath, join(ROOT, "src/cli/main.ts"), ...args], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, HEARTH_THREADS: "1" },
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { stdout, stderr, code };
}

describe("hearth run -md", () => {
  test("the same output as without it, with the draft model's tokens in the telemetry", async () => {
    const args = ["run", "-m", target, "-p", "The capital of France is", "-n", "24", "--temp", "0"];
    const plain = await hearth(args);
    const drafted = await hearth([...args, "-md", draft]);
    expect(plain.code).toBe(0);
    expect(drafted.code).toBe(0);
    expect(drafted.stdout).toBe(plain.stdout);
    expect(drafted.stderr).toMatch(/proposed: model \d+\/\d+, lookup \d+\/\d+/);
  }, 180_000);

  test("a draft model with another vocabulary is refused before generating", async () => {
    const gemma = await pullModel("gemma3-270m");
    const r = await hearth(["run", "-p", "Hi", "-n", "4", "--model-draft", gemma]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("vocabulary differs");
  }, 180_000);
});
