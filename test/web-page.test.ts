// The chat page's build (size budget, CSP, nothing fetched from elsewhere) and its Markdown parser,
// which must keep every character of a reply as text.
import { expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { parseInline, parseMarkdown, safeHref } from "../src/server/web/client/markdown.ts";
import { ChatStore, titleOf } from "../src/server/web/client/store.ts";
import { buildPageHtml, MAX_PAGE_GZIP_BYTES } from "../src/server/web/page.ts";

test("the page is one HTML document under 100 KB gzipped, its script and style admitted by hash", async () => {
  const html = await buildPageHtml();
  expect(Bun.gzipSync(html).length).toBeLessThan(MAX_PAGE_GZIP_BYTES);
  const script = /<script>([\s\S]*)<\/script>/.exec(html)?.[1] as string;
  const style = /<style>([\s\S]*?)<\/style>/.exec(html)?.[1] as string;
  expect(script.length).toBeGreaterThan(1000);
  expect(style.length).toBeGreaterThan(1000);
  const csp = /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)?.[1] as string;
  const hash = (s: string) => `'sha256-${createHash("sha256").update(s).digest("base64")}'`;
  expect(csp).toContain(`script-src ${hash(script)}`);
  expect(csp).toContain(`style-src ${hash(style)}`);
  expect(csp).toContain("default-src 'none'");
  expect(csp).toContain("connect-src 'self'");
  // Nothing loads from another host: no src or href to a URL, no @import, no url() in the style.
  expect(html).not.toMatch(/(src|href)=["']?(https?:)?\/\//i);
  expect(style).not.toMatch(/@import|url\(/i);
  // The only inline script is the bundle, and it never writes markup from strings.
  expect(html.match(/<script/g)?.length).toBe(1);
  expect(script).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
});

test("markup in a reply stays text: tags are never parsed, only Markdown", () => {
  const text = "<img src=x onerror=alert(1)> and <script>alert(2)</script> **bold** `<b>`";
  const [p] = parseMarkdown(text);
  expect(p).toEqual({
    kind: "paragraph",
    children: [
      { kind: "text", text: "<img src=x onerror=alert(1)> and <script>alert(2)</script> " },
      { kind: "strong", children: [{ kind: "text", text: "bold" }] },
      { kind: "text", text: " " },
      { kind: "code", text: "<b>" },
    ],
  });
});

test("links go to web and mail addresses only", () => {
  expect(parseInline("[a](javascript:alert(1))")).toEqual([
    { kind: "text", text: "[a](javascript:alert(1))" },
  ]);
  expect(parseInline("[a](data:text/html,x)")).toEqual([{ kind: "text", text: "[a](data:text/html,x)" }]);
  expect(parseInline("see [docs](https://example.org/x)")).toEqual([
    { kind: "text", text: "see " },
    { kind: "link", href: "https://example.org/x", children: [{ kind: "text", text: "docs" }] },
  ]);
  expect(safeHref(" JAVASCRIPT:alert(1)")).toBeNull();
});

test("code fences, open while streaming, lists, headings, quotes and rules", () => {
  expect(parseMarkdown("```python\ndef f():\n    return 1\n```\nafter")).toEqual([
    { kind: "code", lang: "python", text: "def f():\n    return 1", open: false },
    { kind: "paragraph", children: [{ kind: "text", text: "after" }] },
  ]);
  expect(parseMarkdown("```js\nlet x = '<a>';")).toEqual([
    { kind: "code", lang: "js", text: "let x = '<a>';", open: true },
  ]);
  const blocks = parseMarkdown("# Title\n\n- one\n- *two*\n\n3. three\n4. four\n\n> quoted\n\n---");
  expect(blocks.map((b) => b.kind)).toEqual(["heading", "list", "list", "quote", "rule"]);
  expect(blocks[1]).toEqual({
    kind: "list",
    ordered: false,
    start: 1,
    items: [
      [{ kind: "paragraph", children: [{ kind: "text", text: "one" }] }],
      [{ kind: "paragraph", children: [{ kind: "em", children: [{ kind: "text", text: "two" }] }] }],
    ],
  });
  expect(blocks[2]).toMatchObject({ kind: "list", ordered: true, start: 3 });
  // snake_case and a lone * stay as they are.
  expect(parseInline("a_b_c and 2 * 3 * 4")).toEqual([{ kind: "text", text: "a_b_c and 2 * 3 * 4" }]);
});

test("deep nesting stays bounded", () => {
  const deep = `${">".repeat(5000)} x\n${"- ".repeat(5000)}y\n${"**".repeat(5000)}`;
  expect(() => parseMarkdown(deep)).not.toThrow();
});

/** A Storage over a Map: the store's unit tests need no browser. */
class MemoryStorage implements Storage {
  private items = new Map<string, string>();
  get length() {
    return this.items.size;
  }
  clear() {
    this.items.clear();
  }
  getItem(k: string) {
    return this.items.get(k) ?? null;
  }
  key(i: number) {
    return [...this.items.keys()][i] ?? null;
  }
  removeItem(k: string) {
    this.items.delete(k);
  }
  setItem(k: string, v: string) {
    this.items.set(k, v);
  }
}

test("stored conversations survive a reload; damaged entries are dropped, not fatal", () => {
  const storage = new MemoryStorage();
  const a = new ChatStore(storage);
  const c = a.create();
  c.messages.push({ role: "user", content: "hi" });
  a.create(); // empty: not kept
  a.rename(c.id, "  Greeting  ");
  a.settings = { system: "Be brief.", temperature: 0.2, max_tokens: 64, json: true };
  a.save();
  const b = new ChatStore(storage);
  expect(b.conversations.map((x) => [x.title, x.messages])).toEqual([
    ["Greeting", [{ role: "user", content: "hi" }]],
  ]);
  expect(b.settings).toEqual({ system: "Be brief.", temperature: 0.2, max_tokens: 64, json: true });

  storage.setItem(
    "hearth.chat.conversations",
    '[{"id":1},{"id":"x","title":"t","updated_ms":1,"messages":[{"role":"tool","content":"?"}]},{"id":"y","title":"kept","updated_ms":2,"messages":[{"role":"user","content":"q"}]}]',
  );
  storage.setItem("hearth.chat.settings", '{"temperature":9,"max_tokens":-1}');
  const damaged = new ChatStore(storage);
  expect(damaged.conversations.map((x) => x.title)).toEqual(["kept"]);
  storage.setItem("hearth.chat.conversations", "[{not json");
  expect(new ChatStore(storage).conversations).toEqual([]);
  expect(damaged.settings).toEqual({ system: "", temperature: 0.7, max_tokens: null, json: false });
  expect(titleOf(`  ${"x".repeat(200)}\nmore`)).toHaveLength(80);
});
