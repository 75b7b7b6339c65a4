// `hearth run`: one generation from a prompt; text streams to stdout, telemetry goes to stderr.
import { ContextFullError, type GenerateResult } from "../session.ts";
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

const HELP = `Usage: hearth run [-m MODEL] -p PROMPT [options]

Generates text from a prompt with a GGUF model and streams it to stdout. Telemetry (prompt and
decode tokens/s, time to first token, finish reason) goes to stderr. Ctrl-C stops the generation.

Prompt:
  -p, --prompt TEXT      the prompt; "-" (or no -p with piped stdin) reads stdin
      --chat             wrap the prompt as a user message in the model's chat template
      --system TEXT      system message (with --chat)
      --json             print one JSON object (text, tokens, finishReason, telemetry) instead
                         of streaming
${SHARED_HELP}
  -h, --help             this help

Examples:
  hearth run -p "The capital of France is" -n 16 --temp 0
  hearth run --chat -p "Write a haiku about bread." --seed 7
  echo "Once upon a time" | hearth run -n 64 --json`;

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    console.error(`hearth run: ${(err as Error).message}\nRun \`hearth run --help\` for the options.`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  let gen: ReturnType<typeof generateOptions>;
  let prompt: string;
  try {
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
    gen = generateOptions(values);
    loadOptions(values, false); // checks the model flags before the model loads
    prompt = await readPrompt(values.prompt);
    if (values.system !== undefined && !values.chat) throw new UsageError("--system needs --chat");
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`hearth run: ${err.message}\nRun \`hearth run --help\` for the options.`);
      return 2;
    }
    throw err;
  }

  const model = await openModel(values, !values.json);
  const session = model.createSession({ contextShift: values["no-context-shift"] ? false : undefined });
  const onSigint = () => session.abort();
  process.on("SIGINT", onSigint);
  try {
    let it: AsyncGenerator<string, GenerateResult, void>;
    if (values.chat) {
      const messages = [];
      if (values.system !== undefined) messages.push({ role: "system", content: values.system });
      messages.push({ role: "user", content: prompt });
      it = session.chat(messages, gen);
    } else {
      await session.prefill(prompt);
      it = session.generate(gen);
    }
    let r = await it.next();
    while (!r.done) {
      if (!values.json) await write(r.value);
      r = await it.next();
    }
    const result = r.value;
    if (values.json) {
      console.log(
        JSON.stringify({
          model: model.name,
          text: result.text,
          tokens: result.tokens,
          finishReason: result.finishReason,
          telemetry: result.telemetry,
        }),
      );
    } else {
      await write("\n");
      console.error(formatTelemetry(result.telemetry));
    }
    return result.finishReason === "abort" ? 130 : 0;
  } catch (err) {
    if (!(err instanceof ContextFullError)) throw err;
    if (!values.json) await write("\n");
    // Nothing held yet: the prompt alone does not fit; else the reply ran out of room.
    const what = `context full: ${err.usedTokens} of ${err.contextTokens} tokens held, ${err.pendingTokens} more ${err.pendingTokens === 1 ? "does" : "do"} not fit`;
    console.error(
      `hearth run: ${what}: raise --ctx${err.usedTokens > 0 ? ", lower --max-tokens" : " or shorten the prompt"}${values["no-context-shift"] ? " (or drop --no-context-shift)" : ""}`,
    );
    return 1;
  } finally {
    process.off("SIGINT", onSigint);
    session.close();
    model.close();
  }
}

function parse(argv: string[]) {
  return parseFlags(argv, {
    ...sharedOptions,
    prompt: { type: "string", short: "p" },
    chat: { type: "boolean" },
    system: { type: "string" },
    json: { type: "boolean" },
  });
}

async function readPrompt(flag: string | undefined): Promise<string> {
  if (flag !== undefined && flag !== "-") return flag;
  if (flag === undefined && process.stdin.isTTY) {
    throw new UsageError("no prompt: give -p TEXT (or pipe it on stdin)");
  }
  const text = await new Response(Bun.stdin.stream()).text();
  if (text.trim() === "") throw new UsageError("the prompt read from stdin is empty");
  return text.replace(/\r?\n$/, "");
}

/** Writes to stdout and waits when the pipe is full, so a slow reader gets every byte in order. */
function write(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(text, (err) => (err ? reject(err) : resolve()));
  });
}
