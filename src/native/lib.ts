// The only place that calls dlopen: finds libhearth, checks its ABI version, and returns the
// typed symbol table. Each area declares its symbols in src/native/symbols/*.ts. Where it looks,
// first found wins: $HEARTH_LIB; the copy embedded in a `bun build --compile` binary (extracted
// once to a private cache directory); a local build (zig-out/ of a checkout or of the installed
// package); the prebuilt build of this platform's package (@hearth-llm/<os>-<arch>) for this
// CPU (src/native/variants.ts; $HEARTH_CPU forces one).
import { dlopen } from "bun:ffi";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { escapeUnprintable } from "../untrusted.ts";
import { type Abi, readAbi } from "./abi.ts";
import { benchSymbols } from "./symbols/bench.ts";
import { coreSymbols } from "./symbols/core.ts";
import { kernelSymbols } from "./symbols/kernels.ts";
import { kvSymbols } from "./symbols/kv.ts";
import { modelSymbols } from "./symbols/model.ts";
import { hostPlatform, type Platform, pickVariant, platformPackageName, VariantError } from "./variants.ts";

/** Must equal `abi_version` in zig/root.zig. */
export const ABI_VERSION = 14;

const allSymbols = {
  ...coreSymbols,
  ...modelSymbols,
  ...kernelSymbols,
  ...kvSymbols,
  // Test and benchmark section: bound with the rest, used only by test/ and bench/.
  ...benchSymbols,
};

export type HearthLib = ReturnType<typeof dlopen<typeof allSymbols>>["symbols"];

export class NativeLoadError extends Error {
  override name = "NativeLoadError";
}

/** Where the loaded library came from: its path and, for a prebuilt one, its CPU variant. */
export interface LoadedLibrary {
  lib: HearthLib;
  path: string;
  /** "avx2", "baseline", ... for a prebuilt or embedded library; undefined for a local build. */
  variant?: string;
  /** Its limits, status codes and extern-struct layouts (zig/limits.zig), read and checked at load. */
  abi: Abi;
}

const platform = hostPlatform();
const libFile = platform?.libFile ?? (process.platform === "darwin" ? "libhearth.dylib" : "libhearth.so");
/** The root of this package: a checkout, or node_modules/hearth-llm after an install. */
const packageRoot = resolve(import.meta.dir, "..", "..");
const BUILD_COMMAND = "zig build -Doptimize=ReleaseFast";
/** Embedded files of a compiled binary are named libhearth-<variant>-<bun's hash>.<ext>. */
const EMBEDDED_NAME = /^libhearth-([a-z0-9]+)-[a-z0-9]+\.(?:so|dylib)$/;
/** Where a compiled binary's embedded files are readable (node:fs reads Bun's virtual root). */
const EMBEDDED_ROOT = "/$bunfs/root";

let loaded: LoadedLibrary | undefined;

interface Candidate {
  path: string;
  variant?: string;
  /** Produces the file on first use (the embedded copy is extracted only when chosen). */
  materialize?: () => string;
}

/** True inside a `bun build --compile` binary that carries libhearth. */
export function isCompiledBinary(): boolean {
  return embeddedLibraries().size > 0;
}

/** The embedded builds of a compiled binary by variant (empty when not a compiled binary). */
function embeddedLibraries(): Map<string, string> {
  const out = new Map<string, string>();
  for (const file of Bun.embeddedFiles) {
    const name = (file as Blob & { name?: string }).name ?? "";
    const m = EMBEDDED_NAME.exec(name);
    if (m?.[1] !== undefined) out.set(m[1], name);
  }
  return out;
}

/** The private cache directory the embedded library is extracted to (never /tmp). */
export function libraryCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "hearth", "lib");
}

/**
 * Writes an embedded build to <cache>/<sha256 prefix>/<libFile> once (write to a temporary name
 * in the same directory, then rename) and reuses it while its contents match.
 */
function extractEmbedded(name: string): string {
  const bytes = readFileSync(join(EMBEDDED_ROOT, name));
  const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
  const dir = join(libraryCacheDir(), hash);
  const out = join(dir, libFile);
  if (existsSync(out)) {
    const have = createHash("sha256").update(readFileSync(out)).digest("hex").slice(0, 16);
    if (have === hash) return out;
  }
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(tmp, bytes, { mode: 0o700 });
    renameSync(tmp, out);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new NativeLoadError(
      `cannot extract the embedded libhearth to ${dir}: ${(err as Error).message}; set XDG_CACHE_HOME to a writable directory`,
    );
  }
  return out;
}

/** The installed platform package's directory, if there is one. */
function platformPackageDir(p: Platform): string | undefined {
  try {
    return dirname(Bun.resolveSync(`${platformPackageName(p)}/package.json`, import.meta.dir));
  } catch {
    return undefined;
  }
}

/**
 * Every place to look, most specific first, produced lazily: a later place is only examined (and
 * its variant only chosen) when the earlier ones have nothing. `tried` collects what was missing.
 */
function* candidates(tried: string[]): Generator<Candidate> {
  const env = process.env.HEARTH_LIB;
  if (env) {
    yield { path: resolve(env) };
    return; // set means "this file": never a different library in its place
  }
  const embedded = embeddedLibraries();
  if (embedded.size > 0 && platform !== undefined) {
    const v = pickVariant(platform, [...embedded.keys()]);
    const name = embedded.get(v.name) as string;
    yield { path: join(EMBEDDED_ROOT, name), variant: v.name, materialize: () => extractEmbedded(name) };
  }
  const local = join(packageRoot, "zig-out", "lib", libFile);
  // A local build has no CPU variants: with HEARTH_CPU set only the prebuilt ones count.
  if (process.env.HEARTH_CPU) tried.push(`${local} (skipped: HEARTH_CPU picks a prebuilt build)`);
  else yield { path: local };
  if (platform !== undefined) {
    const dir = platformPackageDir(platform);
    if (dir === undefined) tried.push(`${platformPackageName(platform)} (not installed)`);
    else {
      const lib = join(dir, "lib");
      const v = pickVariant(platform, existsSync(lib) ? readdirSync(lib) : []);
      yield { path: join(lib, v.name, platform.libFile), variant: v.name };
    }
  } else {
    tried.push(`no prebuilt library for ${process.platform}-${process.arch}`);
  }
}

function openAt(path: string): { lib: HearthLib; abi: Abi } {
  let symbols: HearthLib;
  try {
    symbols = dlopen(path, allSymbols).symbols;
  } catch (err) {
    throw new NativeLoadError(`cannot load libhearth at ${path}: ${(err as Error).message}`);
  }
  const got = symbols.hearth_abi_version();
  if (got !== ABI_VERSION) {
    throw new NativeLoadError(
      `libhearth at ${path} has ABI version ${got}, this code expects ${ABI_VERSION}: rebuild it with \`${BUILD_COMMAND}\``,
    );
  }
  try {
    return { lib: symbols, abi: readAbi(symbols) };
  } catch (err) {
    throw new NativeLoadError(
      `libhearth at ${path} does not match this code: ${(err as Error).message}; rebuild it with \`${BUILD_COMMAND}\``,
    );
  }
}

function findAndOpen(): LoadedLibrary {
  const tried: string[] = [];
  try {
    for (const c of candidates(tried)) {
      if (c.materialize === undefined && !existsSync(c.path)) {
        tried.push(c.path);
        continue;
      }
      const path = c.materialize?.() ?? c.path;
      return { ...openAt(path), path, variant: c.variant };
    }
  } catch (err) {
    if (err instanceof VariantError) throw new NativeLoadError(err.message);
    throw err;
  }
  const env = process.env.HEARTH_LIB;
  throw new NativeLoadError(
    env
      ? `libhearth not found: HEARTH_LIB=${env} does not exist`
      : `libhearth not found. Looked in:\n  ${tried.join("\n  ")}\n` +
          `Install the prebuilt library for this platform (the optional dependency ${platform ? platformPackageName(platform) : "@hearth-llm/<os>-<arch>"}), ` +
          `set HEARTH_LIB to a libhearth file, or build it in ${packageRoot} with \`${BUILD_COMMAND}\` (needs Zig 0.17).`,
  );
}

/** Loads libhearth once per process (see the top of this file for where it looks). */
export async function loadLibrary(): Promise<LoadedLibrary> {
  loaded ??= findAndOpen();
  return loaded;
}

/** The library, loaded on first use. */
export function library(): HearthLib {
  loaded ??= findAndOpen();
  return loaded.lib;
}

/** The limits, status codes and struct layouts of the library (loaded on first use). */
export function nativeAbi(): Abi {
  loaded ??= findAndOpen();
  return loaded.abi;
}

/**
 * The message of the last failed call on this thread. libhearth quotes the strings it was given
 * (zig/status.zig's `quoted`); escapeUnprintable is the last line of defence for one it did not.
 */
export function lastError(): string {
  const lib = library();
  const buf = new Uint8Array(1024);
  const n = Number(lib.hearth_last_error(buf, buf.length));
  return escapeUnprintable(new TextDecoder().decode(buf.subarray(0, Math.min(n, buf.length))));
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
