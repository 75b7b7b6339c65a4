// Writes test/fixtures/chat-template-llama-cpp.json: llama.cpp's rendering of a few conversations
// (llama-server's POST /apply-template, from the native peer build) for the chat templates of the
// model families hearth targets: templates from llama.cpp's models/templates/ and those embedded in
// its vocab files (scripts/llama-vocabs.ts) render on the default model (--chat-template-file), so
// BOS/EOS are SmolLM2's; Gemma 3 270M renders with its own file (it has no template: llama.cpp
// falls back to ChatML), and with llama.cpp's built-in `gemma` format (`--chat-template gemma`),
// which hearth uses for such a file (`GEMMA_TEMPLATE`). `--only-gemma` re-renders just those.
// Usage: bun scripts/chat-template-parity.ts [--bin /work/peerbuild/build/bin/llama-server] [--only-gemma]

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { ChatMessage } from "../src/chat/index.ts";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { GEMMA3_270M, pullModel } from "../src/gguf/pull.ts";
import { ensureLlamaVocabs, LLAMA_CPP_SDIST } from "./llama-vocabs.ts";

/** Templates of the families hearth runs or targets (models/templates/ names). */
export const TEMPLATE_FILES = [
  "meta-llama-Llama-3.1-8B-Instruct.jinja",
  "meta-llama-Llama-3.2-3B-Instruct.jinja",
  "meta-llama-Llama-3.3-70B-Instruct.jinja",
  "Qwen-Qwen2.5-7B-Instruct.jinja",
  "Qwen-Qwen3-0.6B.jinja",
  "Qwen3.5-4B.jinja",
  "HuggingFaceTB-SmolLM3-3B.jinja",
  "google-gemma-2-2b-it.jinja",
  "microsoft-Phi-3.5-mini-instruct.jinja",
  "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
  "mistralai-Mistral-Nemo-Instruct-2407.jinja",
  "ibm-granite-granite-3.3-2B-Instruct.jinja",
];
/** Vocab files whose GGUF carries a chat template. */
export const VOCAB_TEMPLATES = [
  "ggml-vocab-qwen2.gguf",
  "ggml-vocab-qwen35.gguf",
  "ggml-vocab-phi-3.gguf",
  "ggml-vocab-command-r.gguf",
  "ggml-vocab-gemma-4.gguf",
];

export const CONVERSATIONS: ChatMessage[][] = [
  [{ role: "user", content: "Hello!" }],
  [
    { role: "system", content: "You are terse." },
    { role: "user", content: "What is 2+2?" },
    { role: "assistant", content: "4." },
    { role: "user", content: "And 3+3?" },
  ],
  [
    { role: "user", content: "  leading and trailing spaces  " },
    { role: "assistant", content: "Noted.\n\nTwo lines." },
    { role: "user", content: "Unicode: é ß 日本 😀\ttab" },
  ],
];

const PORT = 18_431;

/** YYYY-MM-DD in local time, as the templates' dates are. */
export const localDate = (d: Date) =>
  `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;

/** The fixture's key of Gemma 3 270M rendered with llama.cpp's built-in `gemma` format. */
export const GEMMA_BUILTIN_KEY = `${GEMMA3_270M.fileName} --chat-template gemma`;

async function renderAll(args: string[]): Promise<string[] | { error: string }> {
  const proc = Bun.spawn(
    [bin, ...args, "--host", "127.0.0.1", "--port", String(PORT), "-c", "512", "-np", "1", "-t", "1"],
    { stdout: "ignore", stderr: "pipe" },
  );
  const stderr = new Response(proc.stderr).text();
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${PORT}/health`)
        .then((r) => r.ok)
        .catch(() => false);
      if (ok) break;
      if (proc.exitCode !== null || Date.now() > deadline) {
        proc.kill();
        return {
          error: `llama-server did not start: ${(await stderr).trim().split("\n").slice(-2).join(" | ")}`,
        };
      }
      await Bun.sleep(200);
    }
    const prompts: string[] = [];
    for (const messages of CONVERSATIONS) {
      const r = await fetch(`http://127.0.0.1:${PORT}/apply-template`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messages }),
      });
      const body = (await r.json()) as { prompt?: string; error?: { message: string } };
      if (!r.ok || typeof body.prompt !== "string")
        return { error: body.error?.message ?? `HTTP ${r.status}` };
      prompts.push(body.prompt);
    }
    return prompts;
  } finally {
    proc.kill();
    await proc.exited;
  }
}

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    bin: { type: "string", default: "/work/peerbuild/build/bin/llama-server" },
    "only-gemma": { type: "boolean", default: false },
  },
});
const bin = values.bin as string;

const out = join(import.meta.dir, "..", "test", "fixtures", "chat-template-llama-cpp.json");

async function gemmaRenderings(): Promise<Record<string, string[] | { error: string }>> {
  const gemma = await pullModel(GEMMA3_270M.name);
  return {
    // Gemma 3 270M's own file, BOS/EOS and (absent) template.
    [GEMMA3_270M.fileName]: await renderAll(["-m", gemma]),
    [GEMMA_BUILTIN_KEY]: await renderAll(["-m", gemma, "--no-jinja", "--chat-template", "gemma"]),
  };
}

if (import.meta.main && values["only-gemma"]) {
  const fixture = await Bun.file(out).json();
  Object.assign(fixture.templates, await gemmaRenderings());
  writeFileSync(out, `${JSON.stringify(fixture, null, 1)}\n`);
  console.error(`updated the Gemma renderings of ${out}`);
} else if (import.meta.main) {
  const dir = await ensureLlamaVocabs();
  const smollm = await pullModel();
  const work = mkdtempSync(join(tmpdir(), "hearth-templates-"));
  const templates: Record<string, string[] | { error: string }> = {};
  for (const file of TEMPLATE_FILES) {
    templates[file] = await renderAll(["-m", smollm, "--chat-template-file", join(dir, "templates", file)]);
    console.error(
      `${file}: ${"error" in templates[file] ? (templates[file] as { error: string }).error : "ok"}`,
    );
  }
  for (const file of VOCAB_TEMPLATES) {
    const source = new GgufMetadata(readGguf(join(dir, file)).metadata).string("tokenizer.chat_template");
    const path = join(work, `${file}.jinja`);
    writeFileSync(path, source);
    templates[file] = await renderAll(["-m", smollm, "--chat-template-file", path]);
    console.error(
      `${file}: ${"error" in templates[file] ? (templates[file] as { error: string }).error : "ok"}`,
    );
  }
  Object.assign(templates, await gemmaRenderings());
  rmSync(work, { recursive: true, force: true });
  const fixture = {
    peer: `llama.cpp from ${LLAMA_CPP_SDIST.pypiPackage}==${LLAMA_CPP_SDIST.version}, llama-server POST /apply-template`,
    note: "templates from models/templates/ or a vocab file's tokenizer.chat_template render with SmolLM2's BOS/EOS; gemma-3-270m-q4_k_m.gguf with its own file",
    // Templates that print today's date printed this one; the test moves it to its own day.
    renderedOn: localDate(new Date()),
    conversations: CONVERSATIONS,
    templates,
  };
  writeFileSync(out, `${JSON.stringify(fixture, null, 1)}\n`);
  console.error(`wrote ${out}`);
}
