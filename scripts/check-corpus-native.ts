// Runs every malformed-GGUF corpus file through the native loader (openNativeModel) or, with
// --load, the whole public load path (loadModel: reader, tokenizer, chat template, native model),
// each file in its own child process with a time limit. Reports which files are rejected (and
// with which error class), which are accepted although llamaConfigFromGguf rejects them, and
// which crash, hang, or fail with an error that is not one of hearth's (exit status 1 if any).
// Needs zig-out/lib/libhearth.so. Usage: bun scripts/check-corpus-native.ts [--load] [file.gguf...]

import { readFileSync } from "node:fs";
import { basename, join } from "node:path";

const CHILD_TIMEOUT_MS = 20_000;

/** Error classes that name a problem in the file (anything else thrown is a bug to report). */
const HEARTH_ERRORS = new Set([
  "GgufError",
  "ModelConfigError",
  "NativeError",
  "PullError",
  "TokenizerError",
  "ChatTemplateError",
]);

async function child(path: string, load: boolean): Promise<void> {
  try {
    const opts = { threads: 1, kvPages: 4, maxBatchTokens: 16, maxSequences: 2 };
    const model = load
      ? await (await import("../src/model.ts")).loadModel(path, { threads: 1 })
      : (await import("../src/native/model.ts")).openNativeModel(path, opts);
    console.log(JSON.stringify({ outcome: "opened" }));
    (model as unknown as { close?: () => void }).close?.();
  } catch (err) {
    const e = err as Error;
    console.log(JSON.stringify({ outcome: "rejected", name: e.name, message: e.message }));
  }
}

async function main(): Promise<number> {
  const dir = join(import.meta.dir, "..", "test", "fixtures", "malformed");
  const manifest = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as Record<
    string,
    { layer: string; error: string }
  >;
  const args = process.argv.slice(2);
  const load = args[0] === "--load";
  if (load) args.shift();
  const files = args.length > 0 ? args : Object.keys(manifest).map((f) => join(dir, f));
  let bad = 0;
  for (const path of files) {
    const proc = Bun.spawn(["bun", import.meta.path, load ? "--child-load" : "--child", path], {
      stdout: "pipe",
      stderr: "pipe",
      timeout: CHILD_TIMEOUT_MS,
      killSignal: "SIGKILL",
    });
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    const line = out.trim().split("\n").at(-1) ?? "";
    let verdict: string;
    if (proc.signalCode === "SIGKILL") verdict = `HANG (killed after ${CHILD_TIMEOUT_MS} ms)`;
    else if (code !== 0 || !line.startsWith("{")) verdict = `CRASH (exit ${code}, signal ${proc.signalCode})`;
    else {
      const r = JSON.parse(line) as { outcome: string; name?: string; message?: string };
      verdict =
        r.outcome === "opened"
          ? `opened (the config layer rejects it: ${manifest[basename(path)]?.layer ?? "?"})`
          : `rejected ${r.name}: ${r.message?.replace(`open ${path}: `, "").replace(`${path}: `, "")}`;
      if (r.outcome === "rejected" && !HEARTH_ERRORS.has(r.name ?? "")) verdict = `UNCLEAR ${verdict}`;
    }
    if (verdict.startsWith("HANG") || verdict.startsWith("CRASH") || verdict.startsWith("UNCLEAR")) bad++;
    console.log(`${basename(path).padEnd(44)} ${verdict}`);
  }
  console.log(`\n${files.length} files, ${bad} crashed, hung or failed with a non-hearth error`);
  return bad === 0 ? 0 : 1;
}

if (import.meta.main) {
  const mode = process.argv[2];
  if (mode === "--child" || mode === "--child-load")
    await child(process.argv[3] as string, mode === "--child-load");
  else process.exitCode = await main();
}
