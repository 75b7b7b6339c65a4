// The CLI as a user runs it: `hearth run` and `hearth chat` as subprocesses with the real model.
import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { loadModel } from "../src/index.ts";

const ROOT = join(import.meta.dir, "..");
const MAIN = join(ROOT, "src/cli/main.ts");

async function hearth(args: string[], stdin?: string) {
  const proc = Bun.spawn([process.execPath, MAIN, ...args], {
    cwd: ROOT,
    stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
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

const PROMPT = "The first man to walk on the moon was";
let expectedGreedy: string;

beforeAll(async () => {
  // What the library itself generates greedily for PROMPT: the CLI must print exactly this.
  const model = await loadModel(undefined, { threads: 1 });
  const s = model.createSession();
  await s.prefill(PROMPT);
  expectedGreedy = "";
  for await (const p of s.generate({ maxTokens: 10, temperature: 0 })) expectedGreedy += p;
  s.close();
  model.close();
}, 120_000);

describe("hearth run", () => {
  test("streams the generation to stdout and telemetry to stderr", async () => {
    const r = await hearth(["run", "-p", PROMPT, "-n", "10", "--temp", "0"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${expectedGreedy}\n`);
    expect(r.stderr).toMatch(
      /\[hearth\] prompt \d+ tok .*tok\/s\) \| generated \d+ tok, decode [\d.]+ tok\/s \| ttft \d+ ms/,
    );
  }, 120_000);

  test("--json prints one object with text, tokens, finish reason and telemetry", async () => {
    const r = await hearth(["run", "-p", PROMPT, "-n", "10", "--temp", "0", "--json"]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.text).toBe(expectedGreedy);
    expect(out.tokens.length).toBe(out.telemetry.generatedTokens);
    expect(["length", "eos"]).toContain(out.finishReason);
    expect(out.telemetry.prefillTokensPerS).toBeGreaterThan(0);
  }, 120_000);

  test("the prompt can come from stdin", async () => {
    const r = await hearth(["run", "-n", "10", "--temp", "0"], `${PROMPT}\n`);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${expectedGreedy}\n`);
  }, 120_000);

  test("--chat with a seed: the README's main command, repeatable", async () => {
    const args = ["run", "--chat", "-n", "24", "--seed", "5", "-p", "Say hello in one sentence."];
    const a = await hearth(args);
    expect(a.code).toBe(0);
    expect(a.stdout.trim().length).toBeGreaterThan(0);
    expect(a.stdout).not.toContain("<|im_start|>");
    const b = await hearth(args);
    expect(b.stdout).toBe(a.stdout);
  }, 120_000);

  test("--json-object: the reply is one JSON object, finish stop; not with --speculative", async () => {
    const args = ["run", "--chat", "--json-object", "--temp", "0", "-n", "64", "--json"];
    const r = await hearth([...args, "-p", "Give the name and the capital of France as JSON."]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.finishReason).toBe("stop");
    expect(typeof JSON.parse(out.text)).toBe("object");
    const both = await hearth(["run", "-p", "x", "--json-object", "--speculative"]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("--json-object takes no --speculative drafts");
  }, 120_000);

  test("--speculative prints the same text and reports its drafts; --draft needs it", async () => {
    const list = "Colors: red, green, blue, red, green, blue, red, green, blue, red,";
    const plain = await hearth(["run", "-p", list, "-n", "24", "--temp", "0", "--json"]);
    const spec = await hearth([
      "run",
      "-p",
      list,
      "-n",
      "24",
      "--temp",
      "0",
      "--json",
      "--speculative",
      "--draft",
      "3",
    ]);
    expect(spec.code).toBe(0);
    const a = JSON.parse(plain.stdout);
    const b = JSON.parse(spec.stdout);
    expect(b.text).toBe(a.text);
    expect(b.tokens).toEqual(a.tokens);
    expect(a.telemetry.draftTokens).toBe(0);
    expect(b.telemetry.draftTokens).toBeGreaterThan(0);
    const streamed = await hearth(["run", "-p", list, "-n", "24", "--temp", "0", "--speculative"]);
    expect(streamed.stdout).toBe(`${a.text}\n`);
    expect(streamed.stderr).toMatch(/drafts accepted \d+\/\d+/);
    const bad = await hearth(["run", "-p", "x", "--draft", "3"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--draft needs --speculative");
    // The server's flags are checked before anything loads (its --draft alone sets the drafts of
    // requests that ask for speculation).
    const serveTooMany = await hearth(["serve", "--speculative", "--draft", "17"]);
    expect(serveTooMany.code).toBe(2);
    expect(serveTooMany.stderr).toContain("--draft must be at most 16, got 17");
    const emptyAlias = await hearth(["serve", "--alias", " "]);
    expect(emptyAlias.code).toBe(2);
    expect(emptyAlias.stderr).toContain("--alias must not be empty");
    expect((await hearth(["serve", "--help"])).stdout).toContain("--speculative");
  }, 120_000);

  test("bad flags get a clear message and exit code 2; --help exits 0", async () => {
    const bad = await hearth(["run", "-p", "x", "--temp", "hot"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--temp must be a number, got "hot"');
    const unknown = await hearth(["run", "-p", "x", "--frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/frobnicate/);
    const missing = await hearth(["run", "-m", "/nonexistent/model.gguf", "-p", "x"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nonexistent\/model\.gguf.* is not a file/);
    const help = await hearth(["run", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: hearth run");
    expect(help.stdout).toContain("--top-p");
    // A full context says how full, in CLI terms, with the flags that change it.
    const long = await hearth(["run", "-p", "word ".repeat(40), "--ctx", "16", "--no-context-shift"]);
    expect(long.code).toBe(1);
    expect(long.stderr).toMatch(
      /hearth run: context full: 0 of 16 tokens held, \d+ more do not fit: raise --ctx or shorten the prompt \(or drop --no-context-shift\)/,
    );
    const reply = await hearth(["run", "-p", "Hi", "--ctx", "16", "-n", "40", "--no-context-shift"]);
    expect(reply.code).toBe(1);
    expect(reply.stderr).toContain(
      "hearth run: context full: 16 of 16 tokens held, 1 more does not fit: raise --ctx, lower --max-tokens (or drop --no-context-shift)",
    );
    const top = await hearth(["--help"]);
    expect(top.stdout).toContain("chat");
    // --help beside a flag still missing its value (or an unknown one) is still a request for help.
    for (const args of [
      ["run", "--help", "--ctx"],
      ["serve", "--frobnicate", "-h"],
    ]) {
      const half = await hearth(args);
      expect(half.code).toBe(0);
      expect(half.stdout).toContain(`Usage: hearth ${args[0]}`);
    }
    // One line and a pointer to --help, not the whole help; values may start with "-".
    for (const [args, says] of [
      [["run", "-p", "x", "-t", "-1"], "--threads must be at least 1, got -1"],
      [["run", "-p", "x", "--ctx", "-5"], "--ctx must be at least 8, got -5"],
      [["run", "-p", "x", "-t", "1000"], "--threads must be at most 256, got 1000"],
      [["run", "-p", "x", "--top-p", "2"], "--top-p must be at most 1, got 2"],
      [["run", "-p", "x", "--bogus"], "Unknown option '--bogus'"],
      // "-h" as a flag's value is the value, not a request for help.
      [["run", "-p", "-h", "--bogus"], "Unknown option '--bogus'"],
      [["run", "-p"], "argument missing"],
      [["serve", "--port", "-1"], "--port must be at least 0, got -1"],
      // serve's bounds are the CLI's, checked before the model loads, in flag terms.
      [["serve", "--port", "70000"], "--port must be at most 65535, got 70000"],
      [["serve", "-t", "1000"], "--threads must be at most 256, got 1000"],
      [["serve", "--parallel", "100000"], "--parallel must be at most 4096, got 100000"],
      [["serve", "--queue", "x"], '--queue must be an integer, got "x"'],
      [["serve", "--api-key", ""], "--api-key must not be empty"],
      [["serve", "--api-key", " k "], "--api-key must not start or end with whitespace"],
    ] as Array<[string[], string]>) {
      const r = await hearth(args);
      expect([args.join(" "), r.code]).toEqual([args.join(" "), 2]);
      expect(r.stderr).toContain(says);
      expect(r.stderr).not.toContain("Usage:");
      expect(r.stderr.trim().split("\n").length).toBe(2);
    }
    const dash = await hearth(["run", "-p", "-hello", "-n", "2", "--temp", "0", "--json"]);
    expect(dash.code).toBe(0);
    expect(JSON.parse(dash.stdout).telemetry.generatedTokens).toBe(2);
  }, 120_000);

  test("pull of a local file reads all of it: a truncated copy fails (exit 1)", async () => {
    const { pullModel } = await import("../src/gguf/pull.ts");
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "hearth-pull-"));
    try {
      const cut = join(dir, "cut.gguf");
      // (Bun.write of a sliced BunFile copies the whole file in Bun 1.4.4: go through a buffer.)
      await Bun.write(
        cut,
        await Bun.file(await pullModel())
          .slice(0, 8 << 20)
          .arrayBuffer(),
      );
      const r = await hearth(["pull", cut]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("lies outside the file");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  test("serve exits (no hang) when it cannot listen or its flags cannot work together", async () => {
    const taken = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("x") });
    try {
      const busy = await hearth(["serve", "--port", String(taken.port), "--no-prefix-cache"]);
      expect(busy.code).toBe(1);
      expect(busy.stderr).toContain(`cannot listen on 127.0.0.1:${taken.port}`);
    } finally {
      taken.stop(true);
    }
    const hot = await hearth([
      "serve",
      "--port",
      "0",
      "--kv-pages",
      "64",
      "--kv-hot-mb",
      "100000",
      "--no-kv-disk",
    ]);
    expect(hot.code).toBe(1);
    expect(hot.stderr).toContain("is more than the KV pool it lives in");
    const pool = await hearth([
      "serve",
      "--port",
      "0",
      "--ctx",
      "512",
      "--kv-pages",
      "20",
      "--no-prefix-cache",
    ]);
    expect(pool.code).toBe(1);
    expect(pool.stderr).toContain("give it at least 32 pages");
  }, 120_000);
});

describe("hearth chat", () => {
  test("piped stdin: two turns with history, /reset, /exit", async () => {
    const input = [
      "What is the capital of France?",
      "/reset",
      "Name one colour.",
      "/exit",
      "never read",
    ].join("\n");
    const r = await hearth(["chat", "-n", "16", "--temp", "0", "--system", "Answer briefly."], `${input}\n`);
    expect(r.code).toBe(0);
    const turns = r.stderr.match(/\[hearth\] prompt/g) ?? [];
    expect(turns.length).toBe(2);
    expect(r.stderr).toContain("conversation reset");
    // After /reset the second turn starts from the system prompt again: nothing is cached.
    expect(r.stderr).not.toMatch(/cached/);
    const replies = r.stdout.split("\n").filter((l) => l.trim() !== "");
    expect(replies.length).toBeGreaterThanOrEqual(2);
  }, 120_000);

  test("without /reset the second turn reuses the first turn's KV", async () => {
    const input = ["What is the capital of France?", "And of Spain?"].join("\n");
    const r = await hearth(["chat", "-n", "12", "--temp", "0"], `${input}\n`);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\(\+\d+ cached\)/);
  }, 120_000);

  test("an unknown command is reported and the chat goes on", async () => {
    const r = await hearth(["chat", "-n", "4", "--temp", "0"], "/bogus\nHi\n");
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("unknown command /bogus");
    expect((r.stderr.match(/\[hearth\] prompt/g) ?? []).length).toBe(1);
  }, 120_000);
});
