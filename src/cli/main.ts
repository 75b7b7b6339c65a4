#!/usr/bin/env bun
// hearth CLI entry: dispatches `hearth <command>` to the command modules.
import { escapeUnprintable, quoteUntrusted } from "../untrusted.ts";

const HELP = `hearth — LLM inference runtime for Bun (Zig kernels over bun:ffi)

Usage: hearth <command> [options]

Commands:
  run     Generate text from a prompt (streams to stdout, telemetry on stderr)
  chat    Interactive chat with history and the model's chat template
  serve   OpenAI-compatible HTTP server (/v1/chat/completions, /v1/completions, ...)
  pull    Download a model into the model cache (default: SmolLM2-135M-Instruct Q4_1)
  bench   Run the benchmarks (same as \`bun run bench\`; from a checkout, not the binary)

Run \`hearth <command> --help\` for the options of one command; \`hearth --version\` prints the
version.
Environment: HEARTH_MODELS_DIR (model cache), HEARTH_THREADS (default thread count),
HEARTH_API_KEY (serve's --api-key), HEARTH_KV_DIR (serve's SSD tier), HEARTH_DEBUG (stack traces).`;

type CommandModule = { main(argv: string[]): Promise<number> };

const commands: Record<string, () => Promise<CommandModule>> = {
  run: () => import("./run.ts"),
  chat: () => import("./chat.ts"),
  pull: () => import("./pull.ts"),
  bench: () => import("./bench.ts"),
  serve: () => import("./serve.ts"),
  // Hidden (not in HELP): loads libhearth and checks one kernel; used by the compiled-binary test.
  selftest: () => import("./selftest.ts"),
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(HELP);
    return name === undefined ? 1 : 0;
  }
  if (name === "--version" || name === "-v") {
    const pkg = await import("../../package.json");
    console.log(`hearth ${pkg.version}`);
    return 0;
  }
  const load = commands[name];
  if (load === undefined) {
    console.error(`hearth: unknown command ${quoteUntrusted(name)}\n\n${HELP}`);
    return 2;
  }
  try {
    const mod = await load();
    return await mod.main(rest);
  } catch (err) {
    const e = err as Error;
    console.error(`hearth ${name}: ${escapeUnprintable(e.message)}`);
    if (process.env.HEARTH_DEBUG) console.error(e.stack);
    return 1;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
