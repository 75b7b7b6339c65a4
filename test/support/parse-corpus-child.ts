// Child process of test/gguf-malformed.test.ts: parses each GGUF path given on the command line
// (readGguf, then llamaConfigFromGguf) and prints one JSON line per file as soon as it is done, so
// the parent can tell a crash or a hang (no line for that file) from an error (a line). With
// --native first, it also opens each file with the native loader (openNativeModel).
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
  /** With --native: "opened", or the error class openNativeModel threw. */
  native?: { outcome: "opened" | "rejected"; errorName: string; message: string };
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const native = args[0] === "--native";
  if (native) args.shift();
  const openNativeModel = native ? (await import("../../src/native/model.ts")).openNativeModel : undefined;

  for (const path of args) {
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
    if (openNativeModel !== undefined) {
      try {
        const m = openNativeModel(path, { threads: 1, kvPages: 4, maxBatchTokens: 16, maxSequences: 2 });
        m.close();
        outcome.native = { outcome: "opened", errorName: "", message: "" };
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        outcome.native = { outcome: "rejected", errorName: e.name, message: e.message };
      }
    }
    process.stdout.write(`${JSON.stringify(outcome)}\n`);
  }
}
