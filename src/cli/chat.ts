// `hearth chat`: an interactive chat (history, the model's chat template) over stdin/stdout;
// works on a terminal and with piped input alike.
import { ContextFullError } from "../session.ts";
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
chat template. Input may be piped (one message per line); no terminal is needed.

Commands (on a line of their own):
  /reset                 forget the conversation (the system message stays)
  /exit                  leave (end of input and Ctrl-D too)
  /help                  this list
Ctrl-C stops the reply being generated; at the prompt it leaves.

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

  const interactive = process.stdin.isTTY === true;
  const model = await openModel(values, true);
  const session = model.createSession({
    systemPrompt: values.system,
    contextShift: values["no-context-shift"] ? false : undefined,
  });
  let generating = false;
  const onSigint = () => {
    if (generating) session.abort();
    else {
      session.close();
      model.close();
      process.exit(130);
    }
  };
  process.on("SIGINT", onSigint);
  if (interactive) {
    console.error(`hearth chat with ${model.name} — /help for commands, /exit to leave`);
  }
  const prompt = () => {
    if (interactive) process.stdout.write("> ");
  };
  try {
    prompt();
    for await (const raw of console) {
      const line = raw.replace(/\r$/, "");
      const command = line.trim();
      if (command === "") {
        prompt();
        continue;
      }
      if (command === "/exit" || command === "/quit") break;
      if (command === "/reset") {
        session.reset();
        console.error("[hearth] conversation reset");
        prompt();
        continue;
      }
      if (command === "/help") {
        console.error("/reset forgets the conversation, /exit leaves");
        prompt();
        continue;
      }
      if (command.startsWith("/")) {
        console.error(`[hearth] unknown command ${command} (/reset, /exit, /help)`);
        prompt();
        continue;
      }
      generating = true;
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
      }
      process.stdout.write("\n");
      // The telemetry of a failed turn would be an earlier call's.
      if (answered && !values.quiet && session.lastTelemetry)
        console.error(formatTelemetry(session.lastTelemetry));
      prompt();
    }
  } finally {
    process.off("SIGINT", onSigint);
    session.close();
    model.close();
  }
  if (interactive) process.stdout.write("\n");
  return 0;
}

function parse(argv: string[]) {
  return parseFlags(argv, {
    ...sharedOptions,
    system: { type: "string" },
    quiet: { type: "boolean", short: "q" },
  });
}
