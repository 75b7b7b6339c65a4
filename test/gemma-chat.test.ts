// Gemma 3 270M chat end to end: the prompt goes through Gemma's turn format (the file has no
// template; src/chat GEMMA_TEMPLATE) and generation ends at <end_of_turn>, an end-of-generation
// token of the vocabulary that is not its EOS, through the library and through the server.
// The pulled 270M file is the pretrained model, which rarely writes <end_of_turn> by itself, so a
// logit bias makes it the likely token; the same bias on <start_of_turn> (a control token that does
// not end generation) must not stop it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { encodeChat } from "../src/chat/index.ts";
import { GEMMA3_270M, pullModel } from "../src/gguf/pull.ts";
import { loadModel, type Model } from "../src/model.ts";
import { type RunningServer, startCheckoutServer } from "./server-process.ts";

const MESSAGES = [
  { role: "system" as const, content: "Answer briefly." },
  { role: "user" as const, content: "What is the capital of France?" },
];

let model: Model;
let endOfTurn: number;
let startOfTurn: number;

beforeAll(async () => {
  model = await loadModel(GEMMA3_270M.name, { threads: 2, contextTokens: 256, maxSessions: 1 });
  endOfTurn = model.tokenizer.tokenId("<end_of_turn>") as number;
  startOfTurn = model.tokenizer.tokenId("<start_of_turn>") as number;
});

afterAll(() => model?.close());

describe("Gemma 3 270M chat through the library", () => {
  test("the vocabulary's <end_of_turn> ends generation, and it is not the EOS", () => {
    expect(endOfTurn).toBeGreaterThan(0);
    expect(endOfTurn).not.toBe(model.tokenizer.eosId);
    expect(model.tokenizer.isEndOfGeneration(endOfTurn)).toBe(true);
    expect(model.tokenizer.isEndOfGeneration(startOfTurn)).toBe(false);
    expect(model.chatTemplate.isFallback).toBe(true);
  });

  test("the prompt is Gemma's turns, the system text before the user's", () => {
    const text = model.chatTemplate.render(MESSAGES);
    expect(text).toBe(
      "<start_of_turn>user\nAnswer briefly.\n\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
    );
    const ids = encodeChat(model.chatTemplate, model.tokenizer, MESSAGES);
    expect(ids[0]).toBe(model.tokenizer.bosId);
    expect(ids[1]).toBe(startOfTurn);
    // ... <end_of_turn> "\n" <start_of_turn> "model" "\n": one token each.
    const newline = model.tokenizer.tokenId("\n") as number;
    const modelWord = model.tokenizer.encode("model", { addSpecial: false });
    expect(ids.slice(-5)).toEqual([endOfTurn, newline, startOfTurn, ...modelWord, newline]);
    expect(ids.filter((id) => id === startOfTurn).length).toBe(2);
  });

  test("generation stops at <end_of_turn> (not shown), and not at <start_of_turn>", async () => {
    const session = model.createSession();
    try {
      const stopped = session.chat(MESSAGES, {
        temperature: 0,
        maxTokens: 8,
        logitBias: { [endOfTurn]: 100 },
      });
      let text = "";
      let r = await stopped.next();
      while (!r.done) {
        text += r.value;
        r = await stopped.next();
      }
      expect(r.value.finishReason).toBe("eos");
      expect(text).toBe("");
      expect(r.value.text).toBe("");
      session.reset();
      const kept = session.chat(MESSAGES, {
        temperature: 0,
        maxTokens: 8,
        logitBias: { [startOfTurn]: 100 },
      });
      let k = await kept.next();
      while (!k.done) k = await kept.next();
      expect(k.value.finishReason).toBe("length");
      expect(k.value.tokens.length).toBe(8);
      expect(k.value.tokens.every((t) => t === startOfTurn)).toBe(true);
    } finally {
      session.close();
    }
  }, 120_000);
});

describe("Gemma 3 270M chat through the server", () => {
  let server: RunningServer;
  let client: OpenAI;

  beforeAll(async () => {
    const path = await pullModel(GEMMA3_270M.name);
    server = await startCheckoutServer(path, ["--threads", "1", "--ctx", "256", "--parallel", "1"]);
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none" });
  }, 180_000);

  afterAll(async () => {
    await server?.stop();
  });

  test("finish_reason stop at <end_of_turn>, length with <start_of_turn>; the prompt is Gemma's turns", async () => {
    const stopped = await client.chat.completions.create({
      model: "gemma",
      messages: MESSAGES,
      temperature: 0,
      max_tokens: 8,
      logit_bias: { [String(endOfTurn)]: 100 },
    });
    expect(stopped.choices[0]?.finish_reason).toBe("stop");
    expect(stopped.choices[0]?.message.content).toBe("");
    expect(stopped.usage?.completion_tokens).toBe(1);
    // The same prompt tokens as the library renders.
    expect(stopped.usage?.prompt_tokens).toBe(
      encodeChat(model.chatTemplate, model.tokenizer, MESSAGES).length,
    );
    const kept = await client.chat.completions.create({
      model: "gemma",
      messages: MESSAGES,
      temperature: 0,
      max_tokens: 8,
      logit_bias: { [String(startOfTurn)]: 100 },
    });
    expect(kept.choices[0]?.finish_reason).toBe("length");
    expect(kept.usage?.completion_tokens).toBe(8);
  }, 120_000);
});
