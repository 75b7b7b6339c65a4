// Entry of the `bun build --compile` binary: embeds libhearth as a file asset, then runs the CLI.
// src/native/lib.ts copies the embedded library out to a real file before dlopen.
import embeddedLibPath from "../../zig-out/lib/libhearth.so" with { type: "file" };

const g = globalThis as { __hearthEmbeddedLib?: string; __hearthWorkerUrl?: string };
g.__hearthEmbeddedLib = embeddedLibPath;
// scripts/build-binary.ts bundles src/engine/worker.ts as a second entrypoint; inside the binary it
// lives at this path relative to the bundle root (the common parent of the entrypoints, src/).
g.__hearthWorkerUrl = "./engine/worker.ts";
// Extract and open the embedded library now, so code that calls library() synchronously finds it.
const { loadLibrary } = await import("../native/lib.ts");
await loadLibrary();
const { main } = await import("./main.ts");
process.exitCode = await main(process.argv.slice(2));
