// Unit tests of the HTTP layer (src/server/app.ts) against a scripted engine: shapes that the
// real model cannot produce (a tokenizer that adds BOS). The end-to-end server tests with the
// real engine and the openai client are in serve.test.ts.
import { expect, test } from "bun:test";
import { ChatTemplate } from "../src/chat/index.ts";
import type { EngineEvent, EngineRequest } from "../src/engine/scheduler.ts";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { pullModel } from "../src/gguf/pull.ts";
import { createApp, type ServingEngine } from "../src/server/app.ts";
import { Tokenizer } from "../src/tokenizer/index.ts";

/** An app whose engine answers every request at once: " yes", every score -1. */
async function scriptedApp(addBos: boolean) {
  const base = new GgufMetadata(readGguf(await pullModel()).metadata);
  const map = new Map(base.map);
  map.set("tokenizer.ggml.add_bos_token", addBos);
  const md = new GgufMetadata(map);
  const tokenizer = Tokenizer.fromGguf(md);
  let next = 0;
  const engine = {
    stats: {},
    inFlight: 0,
    capacity: 64,
    available: true,
    submit(req: Omit<EngineRequest, "id">, listen: (ev: EngineEvent) => void) {
      const id = `r${next++}`;
      const score = (t: number) => ({ id: t, logprob: -1, top: [] });
      const gen = tokenizer.encode(" yes", { addSpecial: false });
      setTimeout(() =>
        listen({
          type: "done",
          id,
          text: tokenizer.decode(gen),
          finish: "length",
          promptTokens: req.promptIds.length,
          cachedTokens: 0,
          completionTokens: gen.length,
          draftTokens: 0,
          acceptedDraftTokens: 0,
          promptLogprobs: req.promptIds.slice(1).map(score),
          logprobs: gen.map(score),
        } as EngineEvent),
      );
      return id;
    },
    cancel() {},
  } as unknown as ServingEngine;
  const app = createApp({
    engine,
    tokenizer,
    chatTemplate: ChatTemplate.fromGguf(md, tokenizer),
    modelId: "m",
    contextTokens: 512,
  });
  return { app, tokenizer };
}

test("echo + logprobs: every listed token sits at its text_offset, with and without a BOS the tokenizer adds; control-token text in a prompt is the token", async () => {
  for (const [addBos, prompt] of [
    [false, "Hello world"],
    [true, "Hello world"],
    [false, "<|im_start|>Hello world"],
    [true, "<|im_start|>Hello world"],
  ] as Array<[boolean, string]>) {
    const { app, tokenizer } = await scriptedApp(addBos);
    const ids = tokenizer.encode(prompt, { parseSpecial: true });
    const control = prompt.startsWith("<|") ? 1 : 0;
    expect(ids.length).toBe((addBos ? 3 : 2) + control);
    const res = await app.handle(
      new Request("http://127.0.0.1/v1/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt, echo: true, logprobs: 0, max_tokens: 2 }),
      }),
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      choices: Array<{ text: string; logprobs: { tokens: string[]; text_offset: number[] } }>;
      usage: { prompt_tokens: number };
    };
    const c = body.choices[0] as (typeof body.choices)[number];
    expect(c.text).toBe(`${prompt} yes`);
    expect(body.usage.prompt_tokens).toBe(ids.length);
    // The prompt's tokens (BOS included, at zero width) and the generated one.
    expect(c.logprobs.tokens.length).toBe(ids.length + 1);
    for (const [k, t] of c.logprobs.tokens.entries()) {
      const at = c.logprobs.text_offset[k] as number;
      if (addBos && k === 0) expect(at).toBe(0);
      else expect(c.text.slice(at, at + t.length)).toBe(t);
    }
  }
});
