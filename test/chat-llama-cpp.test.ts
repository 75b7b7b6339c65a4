// Chat templates render as llama.cpp renders them: the conversations of
// test/fixtures/chat-template-llama-cpp.json (llama-server's /apply-template, written by
// scripts/chat-template-parity.ts) through hearth's ChatTemplate, for the templates of the families
// hearth targets (from llama.cpp's models/templates/ and its vocab files) and for Gemma 3 270M's own
// file, which has no template: llama.cpp falls back to ChatML, hearth to Gemma's turn format, which
// its vocabulary has tokens for, rendered as llama.cpp's built-in `gemma` format renders it.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { GEMMA_BUILTIN_KEY } from "../scripts/chat-template-parity.ts";
import { ensureLlamaVocabs } from "../scripts/llama-vocabs.ts";
import { type ChatMessage, ChatTemplate, encodeChat } from "../src/chat/index.ts";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { GEMMA3_270M, pullModel } from "../src/gguf/pull.ts";
import { Tokenizer } from "../src/tokenizer/index.ts";

interface Fixture {
  peer: string;
  renderedOn: string;
  conversations: ChatMessage[][];
  templates: Record<string, string[] | { error: string }>;
}

const fixture: Fixture = await Bun.file(`${import.meta.dir}/fixtures/chat-template-llama-cpp.json`).json();
const dir = await ensureLlamaVocabs();
const smollm = new GgufMetadata(readGguf(await pullModel()).metadata);
const smollmTokenizer = Tokenizer.fromGguf(smollm);
const tokens = {
  bosToken: smollmTokenizer.tokenText(smollmTokenizer.bosId),
  eosToken: smollmTokenizer.tokenText(smollmTokenizer.eosId),
};

const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];
/** The ways templates print a date: "07 Dec 2026", "Dec 07 2026", "December 07, 2026". */
function dateForms(d: Date): string[] {
  const day = String(d.getDate()).padStart(2, "0");
  const month = MONTHS[d.getMonth()] as string;
  const year = d.getFullYear();
  return [
    `${day} ${month.slice(0, 3)} ${year}`,
    `${month.slice(0, 3)} ${day} ${year}`,
    `${month} ${day}, ${year}`,
  ];
}

/** The fixture's text with the day it was rendered on moved to today (templates print today's date). */
function today(expected: string): string {
  const [y, m, d] = fixture.renderedOn.split("-").map(Number);
  const then = dateForms(new Date(y as number, (m as number) - 1, d as number));
  const now = dateForms(new Date());
  return then.reduce((text, form, i) => text.replaceAll(form, now[i] as string), expected);
}

async function templateOf(name: string): Promise<ChatTemplate> {
  if (name.endsWith(".jinja")) {
    return ChatTemplate.fromString(await Bun.file(join(dir, "templates", name)).text(), tokens);
  }
  const source = new GgufMetadata(readGguf(join(dir, name)).metadata).string("tokenizer.chat_template");
  return ChatTemplate.fromString(source, tokens);
}

describe("chat templates render as llama.cpp renders them", () => {
  test("the fixture holds llama-server's renderings of every listed template", () => {
    expect(fixture.peer).toContain("apply-template");
    expect(Object.keys(fixture.templates).length).toBeGreaterThanOrEqual(10);
    expect(fixture.conversations.length).toBeGreaterThanOrEqual(3);
  });

  for (const [name, prompts] of Object.entries(fixture.templates)) {
    if (name === GEMMA3_270M.fileName || name === GEMMA_BUILTIN_KEY || !Array.isArray(prompts)) continue;
    test(name, async () => {
      const template = await templateOf(name);
      fixture.conversations.forEach((messages, i) => {
        expect(template.render(messages)).toBe(today(prompts[i] as string));
      });
    });
  }

  test("Gemma 3 270M: no template in the file, so Gemma's turns, as llama.cpp's built-in gemma format", async () => {
    const prompts = fixture.templates[GEMMA_BUILTIN_KEY];
    expect(Array.isArray(prompts)).toBe(true);
    // What llama.cpp falls back to (ChatML) is plain text to this vocabulary: hearth does not.
    expect(JSON.stringify(fixture.templates[GEMMA3_270M.fileName])).toContain("<|im_start|>");
    const md = new GgufMetadata(readGguf(await pullModel(GEMMA3_270M.name)).metadata);
    const tokenizer = Tokenizer.fromGguf(md);
    const template = ChatTemplate.fromGguf(md, tokenizer);
    expect(template.isFallback).toBe(true);
    const startOfTurn = tokenizer.tokenId("<start_of_turn>");
    const endOfTurn = tokenizer.tokenId("<end_of_turn>");
    expect(startOfTurn).toBeDefined();
    expect(tokenizer.isEndOfGeneration(endOfTurn as number)).toBe(true);
    fixture.conversations.forEach((messages, i) => {
      const text = template.render(messages);
      expect(text).toBe((prompts as string[])[i] as string);
      // Tokens: BOS, then the turns with <start_of_turn> / <end_of_turn> as single control tokens.
      const ids = encodeChat(template, tokenizer, messages);
      expect(ids[0]).toBe(tokenizer.bosId);
      expect(ids.slice(1)).toEqual(tokenizer.encode(text, { addSpecial: false, parseSpecial: true }));
      const turns = messages.filter((m) => m.role !== "system").length;
      expect(ids.filter((id) => id === startOfTurn).length).toBe(turns + 1);
      expect(ids.filter((id) => id === endOfTurn).length).toBe(turns);
    });
  });
});
