// `hearth chat` on a real pseudo-terminal (Bun.spawn's `terminal`), typed at key by key: line
// editing (arrows, Ctrl-A / Ctrl-E), history on up, keys typed while a reply streams kept out of
// the reply, Ctrl-C stopping a reply and, at the prompt, leaving on a fresh line.
import { expect, test } from "bun:test";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");
const KEY = {
  left: "\x1b[D",
  up: "\x1b[A",
  ctrlA: "\x01",
  ctrlE: "\x05",
  ctrlU: "\x15",
  ctrlC: "\x03",
  enter: "\r",
};

class Pty {
  private text = "";
  readonly proc: ReturnType<typeof Bun.spawn>;
  constructor(argv: string[]) {
    const decoder = new TextDecoder();
    this.proc = Bun.spawn([process.execPath, join(ROOT, "src", "cli", "main.ts"), ...argv], {
      cwd: ROOT,
      env: { ...process.env, HEARTH_THREADS: "2" },
      terminal: { cols: 200, rows: 50, data: (_t, d) => (this.text += decoder.decode(d, { stream: true })) },
    });
  }
  get output(): string {
    return this.text;
  }
  type(keys: string): void {
    this.proc.terminal?.write(keys);
  }
  /** Waits until the output after `from` contains `what`; returns the index just past it. */
  async waitFor(what: string | RegExp, from = 0, timeoutMs = 60_000): Promise<number> {
    const t0 = Date.now();
    for (;;) {
      const rest = this.text.slice(from);
      const m = typeof what === "string" ? rest.indexOf(what) : (what.exec(rest)?.index ?? -1);
      if (m >= 0) return from + m + (typeof what === "string" ? what.length : 1);
      if (Date.now() - t0 > timeoutMs)
        throw new Error(`no ${String(what)} after ${from} in ${JSON.stringify(this.text)}`);
      await Bun.sleep(20);
    }
  }
}

/** The prompt readline draws: move to column 1, clear below, "> ". */
const PROMPT = "\x1b[1G\x1b[0J> ";

test("chat on a terminal: editing keys, history, type-ahead kept out of the reply, Ctrl-C", async () => {
  const pty = new Pty(["chat", "-n", "200", "--temp", "0", "-q"]);
  try {
    let at = await pty.waitFor("hearth chat with SmolLM2-135M-Instruct.Q4_1 — /help");
    at = await pty.waitFor(PROMPT, at);
    // "wrld", back three, "o", to the start, "Hi ", to the end, "!": the line is "Hi world!".
    pty.type(`wrld${KEY.left.repeat(3)}o${KEY.ctrlA}Hi ${KEY.ctrlE}!`);
    await Bun.sleep(200);
    pty.type(KEY.enter);
    const replyStart = await pty.waitFor("\n", at);
    // Typed while the reply streams (it runs for up to 200 tokens): must not show in it.
    pty.type("SECRET");
    const typedAt = pty.output.length;
    const nextPrompt = await pty.waitFor(PROMPT, replyStart);
    expect(nextPrompt).toBeGreaterThan(typedAt); // the reply was still streaming when we typed
    const reply = pty.output.slice(replyStart, nextPrompt - PROMPT.length);
    expect(reply.trim().length).toBeGreaterThan(0);
    expect(reply).not.toContain("SECRET");
    // The type-ahead waits at the new prompt.
    at = await pty.waitFor("SECRET", nextPrompt);

    // Up brings back the previous message (history), replacing the type-ahead.
    pty.type(KEY.ctrlU + KEY.up);
    at = await pty.waitFor("Hi world!", at);

    // Ctrl-C during a reply stops it and the prompt comes back; the chat goes on.
    pty.type(`${KEY.ctrlU}Count from one to one hundred in words.${KEY.enter}`);
    const longStart = await pty.waitFor("\n", at);
    await pty.waitFor(/\w/, longStart);
    pty.type(KEY.ctrlC);
    at = await pty.waitFor(PROMPT, longStart, 30_000);
    pty.type(`/reset${KEY.enter}`);
    at = await pty.waitFor("[hearth] conversation reset", at);
    at = await pty.waitFor(PROMPT, at);

    // Ctrl-C at the prompt leaves cleanly: exit 0, the cursor on a fresh line.
    pty.type(KEY.ctrlC);
    expect(await pty.proc.exited).toBe(0);
    expect(pty.output.slice(at)).toMatch(/\r?\n$/);
    expect(pty.output).not.toContain("error");
  } finally {
    pty.proc.kill();
  }
}, 180_000);
