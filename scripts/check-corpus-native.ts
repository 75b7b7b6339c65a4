// Runs every malformed-GGUF corpus file through the native loader (openNativeModel), each in its
// own child process with a time limit, and reports which files it rejects, which it accepts
// although llamaConfigFromGguf rejects them, and which crash or hang it (exit status 1 if any).
// Needs zig-out/lib/libhearth.so. Usage: bun scripts/check-corpus-native.ts [file.gguf...]

import { readFileSync } from "node:fs";
import { basename, join } from "node:path";

const CHILD_TIMEOUT_MS = 20_000;

async function child(path: string): Promise<void> {
  const { openNativeModel } = await import("../src/native/model.ts");
  try {
    const model = openNativeModel(path, { threads: 1, kvPages: 4, maxBatchTokens: 16, maxSequences: 2 });
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
  const files =
    process.argv.length > 2 ? process.argv.slice(2) : Object.keys(manifest).map((f) => join(dir, f));
  let bad = 0;
  for (const path of files) {
    const proc = Bun.spawn(["bun", import.meta.path, "--child", path], {
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
    }
    if (verdict.startsWith("HANG") || verdict.startsWith("CRASH")) bad++;
    console.log(`${basename(path).padEnd(44)} ${verdict}`);
  }
  console.log(`\n${files.length} files, ${bad} crashed or hung`);
  return bad === 0 ? 0 : 1;
}

if (import.meta.main) {
  if (process.argv[2] === "--child") await child(process.argv[3] as string);
  else process.exitCode = await main();
}
