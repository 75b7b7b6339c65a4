// Child process of test/gguf-malformed.test.ts: parses each GGUF path given on the command line
// (readGguf, then llamaConfigFromGguf) and prints one JSON line per file as soon as it is done, so
// the parent can tell a crash or a hang (no line for that file) from an error (a line).
import { llamaConfigFromGguf, ModelConfigError } from "../../src/gguf/llama-config.ts";
import { GgufError, readGguf } from "../../src/gguf/reader.ts";

export interface ParseOutcome {
  path: string;
  /** Which layer threw, or "ok" if both accepted the file. */
  layer: "reader" | "config" | "ok";
  errorName: string | null;
  isGgufError: boolean;
  isModelConfigError: boolean;
  message: string;
  parseMs: number;
}

for (const path of process.argv.slice(2)) {
  const t0 = performance.now();
  let layer: ParseOutcome["layer"] = "reader";
  let error: unknown = null;
  try {
    const file = readGguf(path);
    layer = "config";
    llamaConfigFromGguf(file);
    layer = "ok";
  } catch (err) {
    error = err;
  }
  const outcome: ParseOutcome = {
    path,
    layer,
    errorName: error instanceof Error ? error.name : error === null ? null : typeof error,
    isGgufError: error instanceof GgufError,
    isModelConfigError: error instanceof ModelConfigError,
    message: error instanceof Error ? error.message : String(error ?? ""),
    parseMs: performance.now() - t0,
  };
  process.stdout.write(`${JSON.stringify(outcome)}\n`);
}
