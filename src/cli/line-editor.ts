// The terminal side of `hearth chat`: a node:readline line editor (arrow keys, Ctrl-A/E, Ctrl-U/K/W,
// history on up/down) whose echo is muted while a reply streams, so keys typed then never land in
// the reply: they wait in the editor and show at the next prompt (a line finished with Enter
// meanwhile is queued and sent after the reply). Ctrl-C stops a streaming reply; at the prompt it
// leaves.
import { createInterface, type Interface } from "node:readline";
import { Writable } from "node:stream";

/** Forwards readline's output to stdout unless muted; readline reads its size from here. */
class MutableTerminal extends Writable {
  muted = false;
  readonly isTTY = true;
  constructor(private readonly out: NodeJS.WriteStream) {
    super();
    out.on("resize", () => this.emit("resize"));
  }
  get columns(): number {
    return this.out.columns ?? 80;
  }
  get rows(): number {
    return this.out.rows ?? 24;
  }
  override _write(chunk: Buffer | string, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    if (!this.muted) this.out.write(chunk);
    done();
  }
}

export interface LineEditorOptions {
  prompt: string;
  /** Ctrl-C while a reply streams (the editor is busy). */
  onInterrupt: () => void;
  historySize?: number;
}

export class LineEditor {
  private readonly term: MutableTerminal;
  private readonly rl: Interface;
  private readonly queued: string[] = [];
  private waiting: ((line: string | null) => void) | null = null;
  private closed = false;
  private busy = false;

  constructor(opts: LineEditorOptions) {
    this.term = new MutableTerminal(process.stdout);
    this.rl = createInterface({
      input: process.stdin,
      output: this.term,
      terminal: true,
      prompt: opts.prompt,
      historySize: opts.historySize ?? 500,
      removeHistoryDuplicates: true,
    });
    this.rl.on("line", (line) => this.deliver(line));
    this.rl.on("SIGINT", () => {
      if (this.busy) {
        opts.onInterrupt();
        return;
      }
      this.finish(); // at the prompt: leave
    });
    // Ctrl-D on an empty line (or the end of input).
    this.rl.on("close", () => this.finish());
  }

  /** The next line the user entered, or null when input ended (Ctrl-D, Ctrl-C at the prompt). */
  next(): Promise<string | null> {
    const line = this.queued.shift();
    if (line !== undefined) {
      // Typed during the last reply: show it where it would have been typed.
      process.stdout.write(`${this.rl.getPrompt()}${line}\n`);
      return Promise.resolve(line);
    }
    if (this.closed) return Promise.resolve(null);
    this.rl.prompt(true);
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  /** While busy, typing is kept out of the output and Ctrl-C calls onInterrupt. */
  setBusy(busy: boolean): void {
    this.busy = busy;
    this.term.muted = busy;
  }

  close(): void {
    this.finish(false);
  }

  private deliver(line: string): void {
    if (this.waiting !== null) {
      const w = this.waiting;
      this.waiting = null;
      w(line);
    } else this.queued.push(line);
  }

  /** Closes the editor; when the user left at the prompt, on a fresh line as a shell does. */
  private finish(newline = true): void {
    if (this.closed) return;
    this.closed = true;
    this.rl.close();
    if (newline) process.stdout.write("\n");
    const w = this.waiting;
    this.waiting = null;
    w?.(null);
  }
}
