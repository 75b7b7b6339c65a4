// The only place that calls dlopen: finds libhearth (checkout, installed package, or the
// copy embedded in a `bun build --compile` binary), checks its ABI version, and returns
// the typed symbol table. Each area declares its symbols in src/native/symbols/*.ts.
import { dlopen, suffix } from "bun:ffi";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { coreSymbols } from "./symbols/core.ts";
import { kernelSymbols } from "./symbols/kernels.ts";
import { kvSymbols } from "./symbols/kv.ts";
import { modelSymbols } from "./symbols/model.ts";

/** Must equal `abi_version` in zig/root.zig. */
export const ABI_VERSION = 6;

const allSymbols = {
  ...coreSymbols,
  ...modelSymbols,
  ...kernelSymbols,
  ...kvSymbols,
};

export type HearthLib = ReturnType<typeof dlopen<typeof allSymbols>>["symbols"];

export class NativeLoadError extends Error {
  override name = "NativeLoadError";
}

const libName = `libhearth.${suffix}`;
let loaded: { lib: HearthLib; path: string } | undefined;

/** Candidate paths, most specific first. HEARTH_LIB overrides everything. */
function candidates(): string[] {
  const here = dirname(new URL(import.meta.url).pathname);
  const out: string[] = [];
  if (process.env.HEARTH_LIB) out.push(resolve(process.env.HEARTH_LIB));
  out.push(join(here, "..", "..", "zig-out", "lib", libName)); // checkout or installed package
  out.push(join(dirname(process.execPath), libName)); // next to a compiled binary
  return out;
}

/** In a compiled binary the library is an embedded asset: copy it out once to a real file. */
async function embeddedPath(): Promise<string | undefined> {
  const embedded = (globalThis as { __hearthEmbeddedLib?: string }).__hearthEmbeddedLib;
  if (embedded === undefined) return undefined;
  const bytes = new Uint8Array(await Bun.file(embedded).arrayBuffer());
  const hash = Bun.hash(bytes).toString(16);
  const out = join(tmpdir(), `hearth-${hash}-${libName}`);
  if (!existsSync(out)) {
    const tmp = `${out}.${process.pid}.tmp`;
    await Bun.write(tmp, bytes);
    (await import("node:fs")).renameSync(tmp, out);
  }
  return out;
}

function openAt(path: string): HearthLib {
  const { symbols } = dlopen(path, allSymbols);
  const got = symbols.hearth_abi_version();
  if (got !== ABI_VERSION) {
    throw new NativeLoadError(
      `libhearth at ${path} has ABI version ${got}, this code expects ${ABI_VERSION}: rebuild it with \`zig build -Doptimize=ReleaseFast\``,
    );
  }
  return symbols;
}

/** Loads libhearth once per process. */
export async function loadLibrary(): Promise<{ lib: HearthLib; path: string }> {
  if (loaded) return loaded;
  const emb = await embeddedPath();
  const paths = emb ? [emb, ...candidates()] : candidates();
  for (const path of paths) {
    if (existsSync(path)) {
      loaded = { lib: openAt(path), path };
      return loaded;
    }
  }
  throw new NativeLoadError(
    `libhearth not found (looked in: ${paths.join(", ")}). Build it with \`zig build -Doptimize=ReleaseFast\` or set HEARTH_LIB.`,
  );
}

/** Synchronous variant for code that already ran loadLibrary() once (or never needs the embedded copy). */
export function library(): HearthLib {
  if (loaded) return loaded.lib;
  for (const path of candidates()) {
    if (existsSync(path)) {
      loaded = { lib: openAt(path), path };
      return loaded.lib;
    }
  }
  throw new NativeLoadError(`libhearth not found; call loadLibrary() first or build it with zig build`);
}

/** The library when something already loaded it, else null (for optional fast paths). */
export function loadedLibrary(): HearthLib | null {
  return loaded?.lib ?? null;
}

/** The message of the last failed call on this thread. */
export function lastError(): string {
  const lib = library();
  const buf = new Uint8Array(1024);
  const n = Number(lib.hearth_last_error(buf, buf.length));
  return new TextDecoder().decode(buf.subarray(0, Math.min(n, buf.length)));
}

export class NativeError extends Error {
  override name = "NativeError";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Throws NativeError with the library's message when `status` is negative. */
export function check(status: number, what: string): number {
  if (status < 0) throw new NativeError(status, `${what}: ${lastError() || `status ${status}`}`);
  return status;
}
