// Entry of the `bun build --compile` binary: embeds libhearth as a file asset, then runs the CLI.
// src/native/lib.ts copies the embedded library out to a real file before dlopen.
import embeddedLibPath from "../../zig-out/lib/libhearth.so" with { type: "file" };

(globalThis as { __hearthEmbeddedLib?: string }).__hearthEmbeddedLib = embeddedLibPath;
const { main } = await import("./main.ts");
process.exitCode = await main(process.argv.slice(2));
