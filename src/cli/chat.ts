// `hearth chat`: an interactive chat (history, the model's chat template) over stdin/stdout;
// works on a terminal and with piped input alike.
import { basename } from "node:path";
import { ContextFullError } from "../session.ts";
import { escapeUnprintable } from "../untrusted.ts";
import { LineEditor } from "./line-editor.ts";
import {
  formatTelemetry,
  generateOptions,
  loadOptions,
  openModel,
  parseFlags,
  SHARED_HELP,
  sharedOptions,
  UsageError,
} from "./options.ts";

const HELP = `Usage: hearth chat [-m MODEL] [options]

Chats with a model: each line you type is a user message; the reply streams back. The
conversation is kept (the KV cache of earlier turns is reused) and rendered with the model's
chat template. Input may be piped (one message per line); no terminal is needed. On a
terminal the line is edited in place (arrows, Ctrl-A / Ctrl-E, up and down for earlier
messages); keys typed while a reply streams wait for the next prompt.

Commands (on a line of their own):
  /reset                 forget the conversation (the system message stays)
  /exit                  leave (end of input and Ctrl-D too)
  /help                  this list
Ctrl-C stops the reply being generated; at the prompt it leaves (so does Ctrl-D).

Options:
      --system TEXT      system message
  -q, --quiet            no telemetry on stderr after each reply
${SHARED_HELP}
  -h, --help             this help`;

export async function main(argv: string[]): Promise<number> {
  let values: ReturnType<typeof parse>["values"];
  try {
    const parsed = parse(argv);
    values = parsed.values;
    if (parsed.positionals.length > 0) {
      throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
    }
  } catch (err) {
    console.error(`hearth chat: ${(err as Error).message}\nRun \`hearth chat --help\` for the options.`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  let gen: ReturnType<typeof generateOptions>;
  try {
    gen = generateOptions(values);
    loadOptions(values, false); // checks the model flags before the model loads
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`hearth chat: ${err.message}\nRun \`hearth chat --help\` for the options.`);
      return 2;
    }
    throw err;
  }

  // The line editor needs a terminal on both sides; otherwise lines are read as they come.
  const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true;
  const model = await openModel(values, true);
  const session = model.createSession({
    systemPrompt: values.system,
    contextShift: values["no-context-shift"] ? false : undefined,
  });
  let generating = false;
  const editor = interactive ? new LineEditor({ prompt: "> ", onInterrupt: () => session.abort() }) : null;
  const piped = interactive ? null : console[Symbol.asyncIterator]();
  const nextLine = async (): Promise<string | null> => {
    if (editor !== null) return editor.next();
    const r = await (piped as AsyncIterator<string>).next();
    return r.done ? null : r.value;
  };
  // Piped input: Ctrl-C is a signal (on a terminal the editor reads it as a key).
  const onSigint = () => {
    if (generating) session.abort();
    else {
      session.close();
      model.close();
      process.exit(130);
    }
  };
  if (!interactive) process.on("SIGINT", onSigint);
  if (interactive) {
    // The model by its file name, as `hearth serve` names it (the GGUF's own name is often vaguer).
    const name = escapeUnprintable(basename(model.path).replace(/\.gguf$/i, ""));
    // (stderr.write: Bun's console.error colours a terminal's text red, as if it were an error.)
    process.stderr.write(`hearth chat with ${name} — /help for commands, /exit to leave\n`);
  }
  try {
    for (let raw = await nextLine(); raw !== null; raw = await nextLine()) {
      const line = raw.replace(/\r$/, "");
      const command = line.trim();
      if (command === "") continue;
      if (command === "/exit" || command === "/quit") break;
      if (command === "/reset") {
        session.reset();
        process.stderr.write("[hearth] conversation reset\n");
        continue;
      }
      if (command === "/help") {
        process.stderr.write("/reset forgets the conversation, /exit leaves\n");
        continue;
      }
      if (command.startsWith("/")) {
        console.error(`[hearth] unknown command ${command} (/reset, /exit, /help)`);
        continue;
      }
      generating = true;
      editor?.setBusy(true);
      let answered = false;
      try {
        await session.ask(line, { ...gen, onText: (piece) => process.stdout.write(piece) });
        answered = true;
      } catch (err) {
        // A failed turn is reported and taken back; the conversation goes on.
        if (err instanceof ContextFullError)
          console.error(
            `\n[hearth] the conversation fills the context (${err.usedTokens} of ${err.contextTokens} tokens); /reset starts over (or restart with a larger --ctx${values["no-context-shift"] ? ", or without --no-context-shift" : ""})`,
          );
        else console.error(`\n[hearth] ${(err as Error).message}`);
      } finally {
        generating = false;
        editor?.setBusy(false);
      }
      process.stdout.write("\n");
      // The telemetry of a failed turn would be an earlier call's.
      if (answered && !values.quiet && session.lastTelemetry)
        process.stderr.write(`${formatTelemetry(session.lastTelemetry)}\n`);
    }
  } finally {
    editor?.close();
    process.off("SIGINT", onSigint);
    session.close();
    model.close();
  }
  return 0;
}

function parse(argv: string[]) {
  return parseFlags(argv, {
    ...sharedOptions,
    system: { type: "string" },
    quiet: { type: "boolean", short: "q" },
  });
}
