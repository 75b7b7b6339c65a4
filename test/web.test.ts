// The chat page at `/` in a real browser: Debian's chromium driven by playwright-core, against a
// real `hearth serve` on 127.0.0.1 with the default model. Nothing is mocked. scripts/test.sh
// installs chromium when it is missing. HEARTH_UPDATE_SCREENSHOT=1 also writes docs/chat-page.png.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { pullModel } from "../src/gguf/pull.ts";
import { type RunningServer, startCheckoutServer } from "./server-process.ts";

const root = resolve(import.meta.dir, "..");
const CTX = 1024;
const KEY = "web-test-key-7";
const TIMEOUT_MS = 180_000;

function chromiumPath(): string {
  const found = Bun.which("chromium") ?? Bun.which("chromium-browser");
  if (found === null)
    throw new Error("chromium is not installed (scripts/test.sh installs it: apt-get install chromium)");
  return found;
}

async function metric(url: string, line: string, key?: string): Promise<number> {
  const res = await fetch(`${url}/metrics`, key ? { headers: { authorization: `Bearer ${key}` } } : {});
  const found = (await res.text()).split("\n").find((l) => l.startsWith(`${line} `));
  return found === undefined ? 0 : Number(found.slice(line.length + 1));
}

/** Polls `read` until it gives `want` (up to 10 s); returns the last value read. */
async function until<T>(read: () => Promise<T>, want: T): Promise<T> {
  let v = await read();
  for (let i = 0; i < 100 && v !== want; i++) {
    await Bun.sleep(100);
    v = await read();
  }
  return v;
}

/** A page that records every request it makes, console errors and script errors. */
async function openPage(context: BrowserContext, url: string) {
  const page = await context.newPage();
  const requests: string[] = [];
  const problems: string[] = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // Chromium logs every 4xx answer; the page explains those itself.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(m.text());
  });
  await page.goto(url);
  return { page, requests, problems };
}

/** Waits until the locator's text contains `text`; returns that text. */
async function textWith(locator: Locator, text: string, timeout_ms = 10_000): Promise<string> {
  const deadline = Date.now() + timeout_ms;
  let last = "";
  while (Date.now() < deadline) {
    last = (await locator.textContent({ timeout: timeout_ms }).catch(() => "")) ?? "";
    if (last.includes(text)) return last;
    await Bun.sleep(50);
  }
  throw new Error(`expected ${JSON.stringify(text)} in ${JSON.stringify(last)}`);
}

/** Waits until the locator matches `n` elements. */
async function countOf(locator: Locator, n: number): Promise<number> {
  return until(() => locator.count(), n);
}

const messageBox = (page: Page) => page.getByRole("textbox", { name: "Message", exact: true });
const replies = (page: Page) => page.locator(".message.assistant");

/** Sends `text` from the message box with Enter and waits for the reply's telemetry line. */
async function sendAndWait(page: Page, text: string): Promise<void> {
  const before = await replies(page).count();
  await messageBox(page).fill(text);
  await messageBox(page).press("Enter");
  await replies(page).nth(before).locator(".telemetry").waitFor({ timeout: 120_000 });
}

/** The page's stored conversations (localStorage). */
async function stored(page: Page) {
  return page.evaluate(
    () =>
      JSON.parse(localStorage.getItem("hearth.chat.conversations") ?? "[]") as Array<{
        id: string;
        title: string;
        messages: Array<{ role: string; content: string }>;
      }>,
  );
}

let browser: Browser;

beforeAll(async () => {
  browser = await chromium.launch({ executablePath: chromiumPath(), args: ["--no-sandbox"] });
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

describe("the chat page against `hearth serve`", () => {
  let server: RunningServer;
  let context: BrowserContext;
  let page: Page;
  let requests: string[];
  let problems: string[];

  beforeAll(async () => {
    // One slot and no queue: a second request at once gets 429.
    server = await startCheckoutServer(await pullModel(), [
      "--parallel",
      "1",
      "--queue",
      "0",
      "-c",
      String(CTX),
      "--no-kv-disk",
    ]);
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    ({ page, requests, problems } = await openPage(context, `${server.url}/`));
  }, TIMEOUT_MS);

  afterAll(async () => {
    await context?.close();
    await server?.stop();
  });

  test("shows the model's name and context size, loading nothing but from the server", async () => {
    await textWith(page.locator("#model-info"), "SmolLM2-135M-Instruct");
    expect(await page.locator("#model-info").textContent()).toContain(
      `context ${CTX.toLocaleString("en")} tokens`,
    );
    expect(requests.length).toBeGreaterThan(0);
    for (const r of requests) expect(r.startsWith(server.url) || r.startsWith("data:")).toBe(true);
  });

  test("settings are set from the keyboard alone and kept", async () => {
    await page.getByRole("button", { name: "Settings" }).focus();
    await page.keyboard.press("Enter");
    const dialog = page.getByRole("dialog", { name: "Settings" });
    await dialog.waitFor();
    await page.getByLabel("Temperature").focus();
    await page.keyboard.press("Control+A");
    await page.keyboard.type("0");
    await page.keyboard.press("Enter");
    await dialog.waitFor({ state: "hidden" });
    const settings = await page.evaluate(() =>
      JSON.parse(localStorage.getItem("hearth.chat.settings") ?? "{}"),
    );
    expect(settings).toEqual({ system: "", temperature: 0, max_tokens: null, json: false });
  });

  test(
    "a typed message's reply streams in, rendered as Markdown, with its telemetry",
    async () => {
      // Record the reply's text length at every change of the page.
      await page.evaluate(() => {
        const w = window as unknown as { lengths: number[] };
        w.lengths = [];
        new MutationObserver(() => {
          const body = document.querySelector(".message.assistant.streaming .body");
          if (body) w.lengths.push(body.textContent?.length ?? 0);
        }).observe(document.getElementById("log") as HTMLElement, {
          childList: true,
          subtree: true,
          characterData: true,
        });
      });
      const prompt = "Write a Python function that returns the sum of a list, in a code block.";
      await sendAndWait(page, prompt);
      const lengths = await page.evaluate(() => (window as unknown as { lengths: number[] }).lengths);
      const shown = lengths.filter((n) => n > 0);
      // The text arrived piece by piece: many sizes, the first a small part of the last.
      expect(new Set(shown).size).toBeGreaterThanOrEqual(5);
      expect(shown[0] as number).toBeLessThan((shown[shown.length - 1] as number) / 4);

      // The page shows what the server says at temperature 0, and keeps it as sent.
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ messages: [{ role: "user", content: prompt }], temperature: 0 }),
      });
      const direct = ((await res.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]
        ?.message.content as string;
      const [conversation] = await stored(page);
      expect(conversation?.messages).toEqual([
        { role: "user", content: prompt },
        expect.objectContaining({ role: "assistant", content: direct }),
      ]);
      expect(direct).toContain("```python");
      const reply = replies(page).last();
      expect(await reply.locator("figure.code figcaption").first().textContent()).toContain("python");
      expect(await reply.locator("figure.code pre code").first().textContent()).toContain("def ");
      expect(await reply.locator(".telemetry").textContent()).toMatch(
        /^first token \d+ ms · [\d.]+ tok\/s · \d+ tokens · prompt \d+ tokens, \d+ from the prefix cache$/,
      );
    },
    TIMEOUT_MS,
  );

  test(
    "Stop ends a reply midway, and the server stops generating it",
    async () => {
      await page.getByRole("button", { name: "New chat" }).click();
      await messageBox(page).fill("Write a very long essay about the history of bread, with many sections.");
      await messageBox(page).press("Enter");
      const reply = replies(page).last();
      await page.waitForFunction(
        () => (document.querySelector(".message.assistant.streaming .body")?.textContent?.length ?? 0) > 150,
        undefined,
        { timeout: 60_000 },
      );
      await page.getByRole("button", { name: "Stop" }).click();
      await reply.locator(".telemetry").waitFor();
      expect(await reply.locator(".telemetry").textContent()).toContain("stopped");
      await page.getByRole("button", { name: "Send" }).waitFor({ state: "visible" });
      const text = (await reply.locator(".body").textContent()) as string;
      await Bun.sleep(1000);
      expect(await reply.locator(".body").textContent()).toBe(text);
      // The server saw the browser go away and cancelled the sequence.
      expect(
        await until(
          () => metric(server.url, 'hearth_requests_total{endpoint="chat_completions",outcome="abort"}'),
          1,
        ),
      ).toBe(1);
      expect(await until(() => metric(server.url, "hearth_requests_running"), 0)).toBe(0);
      const conversations = await stored(page);
      expect(conversations[0]?.messages[1]?.content).toBe(text);

      // Escape stops a reply too (from the keyboard, wherever the focus is).
      await messageBox(page).fill("Go on, write the next section.");
      await messageBox(page).press("Enter");
      await page.waitForFunction(
        () => (document.querySelector(".message.assistant.streaming .body")?.textContent?.length ?? 0) > 50,
        undefined,
        { timeout: 60_000 },
      );
      await page.keyboard.press("Escape");
      await replies(page).last().locator(".telemetry").waitFor();
      expect(await replies(page).last().locator(".telemetry").textContent()).toContain("stopped");
      expect(
        await until(
          () => metric(server.url, 'hearth_requests_total{endpoint="chat_completions",outcome="abort"}'),
          2,
        ),
      ).toBe(2);
    },
    TIMEOUT_MS,
  );

  test(
    "a reply containing <img src=x onerror=...> shows as text and runs nothing",
    async () => {
      await page.getByRole("button", { name: "New chat" }).click();
      const payload = "<img src=x onerror=window.pwned=1>";
      await sendAndWait(page, `Repeat exactly: ${payload}`);
      const reply = replies(page).last();
      // The model repeated it (SmolLM2 at temperature 0 does): it came from the server.
      expect(await reply.locator(".body").textContent()).toContain(payload);
      expect(await page.evaluate(() => document.images.length)).toBe(0);
      expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();
    },
    TIMEOUT_MS,
  );

  test(
    "a busy server (429) and a full context each get a clear message",
    async () => {
      await page.getByRole("button", { name: "New chat" }).click();
      // Take the server's only slot (once the stopped replies before have left it: a cancel
      // reaches the engine a moment after the browser goes away).
      const hold = new AbortController();
      const take = () =>
        fetch(`${server.url}/v1/chat/completions`, {
          method: "POST",
          body: JSON.stringify({
            messages: [{ role: "user", content: "Tell me a story." }],
            max_tokens: 900,
            ignore_eos: true,
            stream: true,
          }),
          signal: hold.signal,
        });
      let res = await take();
      for (let i = 0; i < 100 && res.status === 429; i++) {
        await Bun.sleep(100);
        res = await take();
      }
      expect(res.status).toBe(200);
      // Keep reading the held reply (and note if it ends before the page has been refused).
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      const first = new TextDecoder().decode((await reader.read()).value);
      expect(first).not.toContain('"error"');
      let holdEnded = false;
      const draining = (async () => {
        while (!(await reader.read().catch(() => ({ done: true }))).done);
        holdEnded = true;
      })();
      try {
        await messageBox(page).fill("Hello there");
        await messageBox(page).press("Enter");
        const alert = page.getByRole("alert");
        await textWith(alert, "The server is busy").catch((err) => {
          throw new Error(`${(err as Error).message} (the held reply had ${holdEnded ? "" : "not "}ended)`);
        });
        // The message waits in the box to be sent again; nothing was kept.
        expect(await messageBox(page).inputValue()).toBe("Hello there");
        expect(await replies(page).count()).toBe(0);
      } finally {
        hold.abort();
        await draining;
      }
      expect(await until(() => metric(server.url, "hearth_requests_running"), 0)).toBe(0);

      await messageBox(page).fill("word ".repeat(CTX + 100));
      await messageBox(page).press("Enter");
      const alert = page.getByRole("alert");
      await textWith(
        alert,
        `This conversation no longer fits in the model's context of ${CTX.toLocaleString("en")} tokens`,
      );
      await alert.getByRole("button", { name: "New chat" }).click();
      await alert.waitFor({ state: "hidden" });
      expect(await page.locator("#chat-title").textContent()).toBe("New chat");
      await messageBox(page).fill("");
    },
    TIMEOUT_MS,
  );

  test(
    "reload finds the conversations again; they can be renamed and deleted",
    async () => {
      await page.reload();
      const items = page.getByRole("navigation", { name: "Conversations" }).locator("li");
      expect(await countOf(items, 3)).toBe(3);
      const before = await stored(page);
      expect(before.map((c) => c.title)).toEqual([
        "Repeat exactly: <img src=x onerror=window.pwned=1>",
        "Write a very long essay about the history of bread, with many sections.",
        "Write a Python function that returns the sum of a list, in a code block.",
      ]);
      // Open the first conversation again: its messages are all there.
      await page.getByRole("button", { name: before[2]?.title as string, exact: true }).click();
      expect(await countOf(page.locator(".message"), 2)).toBe(2);
      expect(await page.locator("#chat-title").textContent()).toBe(before[2]?.title ?? null);
      expect(await replies(page).locator(".body").textContent()).toContain("def ");

      // Rename from the keyboard.
      await page.getByRole("button", { name: `Rename “${before[1]?.title}”` }).focus();
      await page.keyboard.press("Enter");
      await page.keyboard.type("Bread essay");
      await page.keyboard.press("Enter");
      await page.getByRole("button", { name: "Bread essay", exact: true }).waitFor({ state: "visible" });

      page.once("dialog", (d) => void d.accept());
      await page.getByRole("button", { name: `Delete “${before[0]?.title}”` }).click();
      await page.reload();
      expect(await countOf(items, 2)).toBe(2);
      expect((await stored(page)).map((c) => c.title)).toEqual([
        "Bread essay",
        "Write a Python function that returns the sum of a list, in a code block.",
      ]);
    },
    TIMEOUT_MS,
  );

  test("every control has a name and text has enough contrast, in light and dark", async () => {
    for (const scheme of ["light", "dark"] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      const found = await page.evaluate(() => {
        const unnamed: string[] = [];
        for (const c of document.querySelectorAll<HTMLElement>("button, input, textarea")) {
          if (c.hidden || (c as HTMLInputElement).type === "hidden" || c.getAttribute("aria-hidden"))
            continue;
          const labelled =
            c.getAttribute("aria-label") ||
            (c.id && document.querySelector(`label[for="${c.id}"]`)) ||
            c.textContent?.trim();
          if (!labelled) unnamed.push(c.outerHTML.slice(0, 80));
        }
        const rgb = (s: string) => (s.match(/[\d.]+/g) ?? []).map(Number);
        const lum = ([r, g, b]: number[]) => {
          const f = (v: number) => {
            const x = v / 255;
            return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
          };
          return 0.2126 * f(r ?? 0) + 0.7152 * f(g ?? 0) + 0.0722 * f(b ?? 0);
        };
        const background = (e: Element | null): number[] => {
          for (let x = e; x; x = x.parentElement) {
            const c = rgb(getComputedStyle(x).backgroundColor);
            if (c.length === 3 || (c[3] ?? 0) === 1) return c;
          }
          return [255, 255, 255];
        };
        const low: string[] = [];
        let checked = 0;
        const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
          const e = n.parentElement as HTMLElement;
          if (!n.textContent?.trim() || e.closest("[hidden], dialog:not([open]), .sr-only, .skip")) continue;
          const s = getComputedStyle(e);
          if (s.visibility === "hidden" || s.display === "none") continue;
          checked++;
          const a = lum(rgb(s.color));
          const b = lum(background(e));
          const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
          if (ratio < 4.5) low.push(`${ratio.toFixed(2)} ${n.textContent.trim().slice(0, 40)}`);
        }
        return { unnamed, low, checked };
      });
      expect(found.checked).toBeGreaterThan(10);
      expect(found).toEqual({ unnamed: [], low: [], checked: found.checked });
    }
    await page.emulateMedia({ colorScheme: "light" });
  });

  test("a screenshot of the page (docs/chat-page.png)", async () => {
    await page.getByRole("button", { name: "Write a Python function", exact: false }).first().click();
    // A second turn: its prompt starts with the first, which the prefix cache serves.
    await sendAndWait(page, "Now explain it in **three** short bullet points.");
    const telemetry = (await replies(page).last().locator(".telemetry").textContent()) as string;
    expect(Number(/(\d+) from the prefix cache/.exec(telemetry)?.[1])).toBeGreaterThan(0);
    await messageBox(page).blur();
    const dir = join(root, ".cache", "web");
    mkdirSync(dir, { recursive: true });
    const png = await page.screenshot({ path: join(dir, "chat-page.png") });
    if (process.env.HEARTH_UPDATE_SCREENSHOT === "1")
      await Bun.write(join(root, "docs", "chat-page.png"), png);
    // A PNG of the viewport's size.
    expect([...png.subarray(1, 4)].map((c) => String.fromCharCode(c)).join("")).toBe("PNG");
    expect(png.readUInt32BE(16)).toBe(1280);
    expect(png.readUInt32BE(20)).toBe(800);
    expect(problems).toEqual([]);
  });
});

describe("the chat page against a server with an API key", () => {
  let server: RunningServer;
  let context: BrowserContext;

  beforeAll(async () => {
    server = await startCheckoutServer(await pullModel(), [
      "--api-key",
      KEY,
      "--parallel",
      "1",
      "-c",
      "256",
      "--no-kv-disk",
    ]);
    context = await browser.newContext();
  }, TIMEOUT_MS);

  afterAll(async () => {
    await context?.close();
    await server?.stop();
  });

  test("the page at / is public (text for clients that do not ask for HTML), its info needs the key", async () => {
    // Browsers get the page; curl and the like the routes' text. Neither needs the key.
    const html = await fetch(`${server.url}/`, { headers: { accept: "text/html,*/*;q=0.8" } });
    expect([html.status, html.headers.get("content-type")]).toEqual([200, "text/html; charset=utf-8"]);
    const text = await fetch(`${server.url}/`);
    expect([text.status, text.headers.get("content-type")]).toEqual([200, "text/plain; charset=utf-8"]);
    expect(await text.text()).toContain("POST /v1/chat/completions");
    expect((await fetch(`${server.url}/web/info`)).status).toBe(401);
    const ok = await fetch(`${server.url}/web/info`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(await ok.json()).toEqual({ model: "SmolLM2-135M-Instruct.Q4_1", context_tokens: 256 });
  });

  test(
    "asks for the key once, again when it is wrong, and keeps the right one",
    async () => {
      const { page, problems } = await openPage(context, `${server.url}/`);
      const dialog = page.getByRole("dialog", { name: "API key" });
      await dialog.waitFor();
      await page.getByRole("textbox", { name: "API key" }).fill("not-the-key");
      await page.keyboard.press("Enter");
      await textWith(dialog, "refused");
      await page.getByRole("textbox", { name: "API key" }).fill(KEY);
      await page.keyboard.press("Enter");
      await dialog.waitFor({ state: "hidden" });
      await textWith(page.locator("#model-info"), "context 256 tokens");
      await sendAndWait(page, "Say hi.");
      expect(await replies(page).count()).toBe(1);

      // JSON mode from the settings: the request asks for a JSON object, the reply shows as JSON.
      await page.getByRole("button", { name: "Settings" }).click();
      await page.getByLabel("JSON mode (the reply is one JSON object)").check();
      await page.getByLabel("Max tokens").fill("40");
      await page.getByRole("button", { name: "Save" }).click();
      const sent = page.waitForRequest((r) => r.url().endsWith("/v1/chat/completions"));
      await sendAndWait(page, "Describe a cat as a JSON object with a name field.");
      const body = JSON.parse((await sent).postData() as string);
      expect([body.response_format, body.max_tokens]).toEqual([{ type: "json_object" }, 40]);
      const reply = replies(page).last();
      expect(await reply.locator("figure.code figcaption span").textContent()).toBe("json");
      expect((await reply.locator("pre code").textContent())?.trimStart().startsWith("{")).toBe(true);

      await page.reload();
      await textWith(page.locator("#model-info"), "context 256 tokens");
      expect(await dialog.isVisible()).toBe(false);
      expect(problems).toEqual([]);
    },
    TIMEOUT_MS,
  );
});
