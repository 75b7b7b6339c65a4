// llama.cpp's vocabulary-only GGUF files (models/ggml-vocab-*.gguf, with their .inp/.out test
// files) from the pinned PyPI sdist of llama-cpp-python, which carries the llama.cpp tree the peer
// is built from. They are several MB each (76 MB in all), so they are not committed: the
// tokenizer parity test calls ensureLlamaVocabs(), which fetches the sdist once with pip
// (sha256-checked) and unpacks only those files into ~/.cache/hearth/llama-vocab/<version>/.
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

const cacheRoot = () => join(process.env.HEARTH_CACHE_DIR ?? join(homedir(), ".cache", "hearth"));

/** The directory holding ggml-vocab-*.gguf (+ .inp/.out), fetched and unpacked on first use. */
export async function ensureLlamaVocabs(): Promise<string> {
  const dir = join(cacheRoot(), "llama-vocab", LLAMA_CPP_SDIST.version);
  if (existsSync(join(dir, ".complete"))) return dir;
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
    "with tarfile.open(sys.argv[1]) as t:",
    "    for m in t.getmembers():",
    "        name = os.path.basename(m.name)",
    "        if m.isfile() and '/vendor/llama.cpp/models/' in m.name and name.startswith('ggml-vocab-'):",
    "            with t.extractfile(m) as src, open(os.path.join(sys.argv[2], name), 'wb') as dst:",
    "                shutil.copyfileobj(src, dst)",
  ].join("\n");
  const unpack = Bun.spawn(["python3", "-c", script, sdist, tmp], { stdout: "ignore", stderr: "pipe" });
  const [ucode, uerr] = await Promise.all([unpack.exited, new Response(unpack.stderr).text()]);
  if (ucode !== 0 || readdirSync(tmp).length === 0) {
    throw new Error(`unpacking the vocab files from ${sdist} failed: ${uerr.trim()}`);
  }
  await Bun.write(join(tmp, ".complete"), `${LLAMA_CPP_SDIST.sha256}\n`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, ".."), { recursive: true });
  renameSync(tmp, dir);
  return dir;
}

if (import.meta.main) console.log(await ensureLlamaVocabs());
