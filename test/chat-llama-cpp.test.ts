// Chat templates render as llama.cpp renders them: the conversations of
// test/fixtures/chat-template-llama-cpp.json (llama-server's /apply-template, written by
// scripts/chat-template-parity.ts) through hearth's ChatTemplate, for the templates of the families
// hearth targets (from llama.cpp's models/templates/ and its vocab files) and for Gemma 3 270M's own
// file, which has no template (both fall back to ChatML).
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
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
    if (name === GEMMA3_270M.fileName || !Array.isArray(prompts)) continue;
    test(name, async () => {
      const template = await templateOf(name);
      fixture.conversations.forEach((messages, i) => {
        expect(template.render(messages)).toBe(today(prompts[i] as string));
      });
    });
  }

  test("Gemma 3 270M: no template in the file, so ChatML with Gemma's tokens, as llama.cpp", async () => {
    const prompts = fixture.templates[GEMMA3_270M.fileName];
    expect(Array.isArray(prompts)).toBe(true);
    const md = new GgufMetadata(readGguf(await pullModel(GEMMA3_270M.name)).metadata);
    const tokenizer = Tokenizer.fromGguf(md);
    const template = ChatTemplate.fromGguf(md, tokenizer);
    expect(template.isFallback).toBe(true);
    fixture.conversations.forEach((messages, i) => {
      const text = template.render(messages);
      expect(text).toBe((prompts as string[])[i] as string);
      // Tokens: BOS, then the text as plain text (Gemma has no ChatML control tokens).
      const ids = encodeChat(template, tokenizer, messages);
      expect(ids[0]).toBe(tokenizer.bosId);
      expect(ids.slice(1)).toEqual(tokenizer.encode(text, { addSpecial: false, parseSpecial: true }));
    });
  });
});
