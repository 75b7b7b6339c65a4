// llama.cpp's vocabulary-only GGUF files (models/ggml-vocab-*.gguf, with their .inp/.out test
// files) and chat templates (models/templates/*.jinja) from the pinned PyPI sdist of
// llama-cpp-python, which carries the llama.cpp tree the peer is built from. The vocabularies are
// several MB each (76 MB in all), so they are not committed: the parity tests call
// ensureLlamaVocabs(), which fetches the sdist once with pip (sha256-checked) and unpacks only
// those files into ~/.cache/hearth/llama-vocab/<version>/ (templates in its templates/ folder).
// Usage: bun scripts/llama-vocabs.ts   (prints the directory)

import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { sha256File } from "../src/gguf/pull.ts";

export const LLAMA_CPP_SDIST = {
  pypiPackage: "llama-cpp-python",
  version: "0.3.36",
  fileName: "llama_cpp_python-0.3.36.tar.gz",
  sha256: "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
} as const;

/** Written last; a different content (an older layout) unpacks again. */
const COMPLETE = `${LLAMA_CPP_SDIST.sha256} vocab+templates\n`;

const cacheRoot = () => join(process.env.HEARTH_CACHE_DIR ?? join(homedir(), ".cache", "hearth"));

/** The directory holding ggml-vocab-*.gguf (+ .inp/.out), fetched and unpacked on first use. */
export async function ensureLlamaVocabs(): Promise<string> {
  const dir = join(cacheRoot(), "llama-vocab", LLAMA_CPP_SDIST.version);
  const marker = join(dir, ".complete");
  if (existsSync(marker) && (await Bun.file(marker).text()) === COMPLETE) return dir;
  const sdistDir = join(cacheRoot(), "sdist");
  mkdirSync(sdistDir, { recursive: true });
  const sdist = join(sdistDir, LLAMA_CPP_SDIST.fileName);
  if (!existsSync(sdist) || (await sha256File(sdist)) !== LLAMA_CPP_SDIST.sha256) {
    const spec = `${LLAMA_CPP_SDIST.pypiPackage}==${LLAMA_CPP_SDIST.version}`;
    const pip = Bun.spawn(
      [
        "python3",
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary=:all:",
        "--disable-pip-version-check",
        "-d",
        sdistDir,
        spec,
      ],
      { stdout: "ignore", stderr: "pipe" },
    );
    const [code, err] = await Promise.all([pip.exited, new Response(pip.stderr).text()]);
    if (code !== 0 || !existsSync(sdist)) {
      throw new Error(
        `pip download ${spec} failed (exit ${code}): ${err.trim().split("\n").slice(-3).join(" | ")}`,
      );
    }
    const digest = await sha256File(sdist);
    if (digest !== LLAMA_CPP_SDIST.sha256) {
      rmSync(sdist, { force: true });
      throw new Error(`sha256 mismatch for ${LLAMA_CPP_SDIST.fileName}: got ${digest}`);
    }
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const script = [
    "import sys, tarfile, os, shutil",
    "os.makedirs(os.path.join(sys.argv[2], 'templates'))",
    "with tarfile.open(sys.argv[1]) as t:",
    "    for m in t.getmembers():",
    "        name = os.path.basename(m.name)",
    "        if not m.isfile() or '/vendor/llama.cpp/models/' not in m.name: continue",
    "        if m.name.endswith('/models/' + name) and name.startswith('ggml-vocab-'): out = name",
    "        elif m.name.endswith('/models/templates/' + name) and name.endswith('.jinja'): out = 'templates/' + name",
    "        else: continue",
    "        with t.extractfile(m) as src, open(os.path.join(sys.argv[2], out), 'wb') as dst:",
    "            shutil.copyfileobj(src, dst)",
  ].join("\n");
  const unpack = Bun.spawn(["python3", "-c", script, sdist, tmp], { stdout: "ignore", stderr: "pipe" });
  const [ucode, uerr] = await Promise.all([unpack.exited, new Response(unpack.stderr).text()]);
  if (ucode !== 0 || readdirSync(tmp).length === 0) {
    throw new Error(`unpacking the vocab files from ${sdist} failed: ${uerr.trim()}`);
  }
  await Bun.write(join(tmp, ".complete"), COMPLETE);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, ".."), { recursive: true });
  renameSync(tmp, dir);
  return dir;
}

if (import.meta.main) console.log(await ensureLlamaVocabs());
