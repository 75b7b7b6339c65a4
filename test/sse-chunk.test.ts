// The SSE fast path for a plain text piece (src/server/sinks.ts plainPieceEvent) against the
// chunk object it stands for, serialized whole: byte for byte the same for both APIs.
import { expect, test } from "bun:test";
import type { ResponseHead } from "../src/server/choices.ts";
import { plainPieceEvent } from "../src/server/sinks.ts";

const TEXTS = [
  "",
  "Hello",
  ' "quoted" \\ back',
  "line\nbreak\ttab\u0000nul\u001f",
  "é 中文 🙂",
  "\u2028\u2029",
  "\ud800",
];

function head(endpoint: "chat" | "completion", model: string): ResponseHead {
  return { endpoint, id: `x-"id"\\${endpoint}`, created: 1765000000, model, choices: [] };
}

for (const endpoint of ["chat", "completion"] as const)
  for (const includeUsage of [false, true])
    test(`${endpoint}, usage ${includeUsage}: the same text as JSON.stringify of the chunk`, () => {
      const h = head(endpoint, 'model "ü"\n');
      const fast = plainPieceEvent(h, includeUsage);
      for (const [i, text] of TEXTS.entries()) {
        const usage = includeUsage ? { usage: null } : {};
        const body =
          endpoint === "chat"
            ? {
                ...{ id: h.id, object: "chat.completion.chunk", created: h.created, model: h.model },
                choices: [{ index: i, delta: { content: text }, logprobs: null, finish_reason: null }],
                ...usage,
              }
            : {
                ...{ id: h.id, object: "text_completion", created: h.created, model: h.model },
                choices: [{ index: i, text, logprobs: null, finish_reason: null }],
                ...usage,
              };
        expect(fast(i, text)).toBe(`data: ${JSON.stringify(body)}\n\n`);
      }
    });
