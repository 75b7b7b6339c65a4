// Entry of the `bun build --compile` binary (scripts/build-binary.ts). The binary carries one
// libhearth per CPU variant of its platform as embedded files; src/native/lib.ts picks the one
// this CPU runs and extracts it once to the private cache directory (~/.cache/hearth/lib/<hash>/).
import { main } from "./main.ts";

const g = globalThis as { __hearthWorkerUrl?: string };
// scripts/build-binary.ts bundles src/engine/worker.ts as a second entrypoint with --root src, so
// inside the binary it lives at this path relative to the bundle root.
g.__hearthWorkerUrl = "./engine/worker.ts";
process.exitCode = await main(process.argv.slice(2));
