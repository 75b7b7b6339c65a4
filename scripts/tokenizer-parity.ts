// Writes test/fixtures/tokenizer-llama-cpp.json: llama.cpp's token ids (llama-tokenize from the
// native peer build, --ids --no-bos) for every corpus string (test/fixtures/tokenizer-corpus.json),
// for each of llama.cpp's vocab-only GGUF files (scripts/llama-vocabs.ts) and the known models.
// Special-token text parsed (llama-tokenize's default) and not (--no-parse-special).
//
// One llama-tokenize run per file tokenizes the whole corpus: the strings are joined by a control
// token's text, which splits the input into fragments that llama.cpp tokenizes independently (a
// SentencePiece fragment after a special token gets the same space prefix as the start of the
// input), and the ids are cut at that token. The cut is checked against one run per string on a
// sample, and strings containing the separator text are run alone. Plain mode differs from parsed
// mode only for strings containing control-token text; those are run alone with --no-parse-special.
//
// Usage: bun scripts/tokenizer-parity.ts [--force] [--out FILE] [--bin .../llama-tokenize] [file.gguf...]
// (entries already in the fixture for the same file and corpus are kept unless --force)

import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { GEMMA3_270M, pullModel, sha256File } from "../src/gguf/pull.ts";
import { TokenType } from "../src/tokenizer/index.ts";
import { Vocab } from "../src/tokenizer/vocab.ts";
import { ensureLlamaVocabs, LLAMA_CPP_SDIST } from "./llama-vocabs.ts";

const SAMPLE_CHECKS = 2;
const root = join(import.meta.dir, "..");
const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  options: {
    bin: { type: "string", default: "/work/peerbuild/build/bin/llama-tokenize" },
    force: { type: "boolean", default: false },
    out: { type: "string" },
  },
  allowPositionals: true,
});
const bin = values.bin as string;
const corpus: string[] = await Bun.file(join(root, "test", "fixtures", "tokenizer-corpus.json")).json();
const work = mkdtempSync(join(tmpdir(), "hearth-parity-"));

async function llamaTokenize(model: string, text: string, parseSpecial: boolean): Promise<number[]> {
  const input = join(work, "input.txt");
  writeFileSync(input, text);
  const argv = [bin, "-m", model, "-f", input, "--ids", "--no-bos", "--no-escape", "--log-disable"];
  if (!parseSpecial) argv.push("--no-parse-special");
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  const line = out.trim().split("\n").at(-1) ?? "";
  if (code !== 0 || !line.startsWith("[")) {
    throw new Error(`llama-tokenize on ${basename(model)} failed (exit ${code}): ${err.trim().slice(-300)}`);
  }
  return JSON.parse(line) as number[];
}

/** The longest control token that strips no whitespace (the longest: no special text can span it). */
function separatorFor(vocab: Vocab): number | undefined {
  for (const id of vocab.specialIds) {
    const text = vocab.tokens[id] as string;
    if (vocab.types[id] === TokenType.CONTROL && !vocab.lstrip[id] && !vocab.rstrip[id] && text.length >= 3)
      return id;
  }
  return undefined;
}

/** Strings run alone: those holding the separator's first or last character could touch its text. */
const runsAlone = (s: string, sepText: string) =>
  s.includes(sepText[0] as string) || s.includes(sepText.at(-1) as string);

interface VocabIds {
  sha256: string;
  /** Space-separated ids per corpus string, special-token text parsed. */
  ids: string[];
  /** Where plain mode (special text not parsed) differs: corpus index -> ids. */
  plain: Record<string, string>;
}

async function oracle(model: string): Promise<VocabIds> {
  const md = new GgufMetadata(readGguf(model).metadata);
  const vocab = new Vocab(md);
  const controls = vocab.specialIds.filter((id) => {
    const t = vocab.types[id];
    return t === TokenType.CONTROL || t === TokenType.UNKNOWN;
  });
  const sep = separatorFor(vocab);
  const ids: (number[] | undefined)[] = new Array(corpus.length);
  if (sep !== undefined) {
    const sepText = vocab.tokens[sep] as string;
    const batch = corpus.map((_, i) => i).filter((i) => !runsAlone(corpus[i] as string, sepText));
    const joined = await llamaTokenize(model, batch.map((i) => corpus[i]).join(sepText), true);
    const parts: number[][] = [[]];
    for (const id of joined) {
      if (id === sep) parts.push([]);
      else (parts.at(-1) as number[]).push(id);
    }
    if (parts.length !== batch.length) {
      throw new Error(`${basename(model)}: ${parts.length} fragments for ${batch.length} strings`);
    }
    parts.forEach((p, k) => {
      ids[batch[k] as number] = p;
    });
    // The cut must agree with single runs.
    for (let k = 0; k < SAMPLE_CHECKS; k++) {
      const i = batch[Math.floor((k * batch.length) / SAMPLE_CHECKS)] as number;
      const alone = await llamaTokenize(model, corpus[i] as string, true);
      if (alone.join(" ") !== (ids[i] as number[]).join(" ")) {
        throw new Error(`${basename(model)}: string ${i} splits differently alone: ${alone} vs ${ids[i]}`);
      }
    }
  }
  for (let i = 0; i < corpus.length; i++) {
    if (ids[i] === undefined) ids[i] = await llamaTokenize(model, corpus[i] as string, true);
  }
  const plain: Record<string, string> = {};
  for (let i = 0; i < corpus.length; i++) {
    const s = corpus[i] as string;
    if (!controls.some((id) => s.includes(vocab.tokens[id] as string))) continue;
    const p = (await llamaTokenize(model, s, false)).join(" ");
    if (p !== (ids[i] as number[]).join(" ")) plain[String(i)] = p;
  }
  return { sha256: await sha256File(model), ids: ids.map((x) => (x as number[]).join(" ")), plain };
}

const dir = await ensureLlamaVocabs();
const models =
  positionals.length > 0
    ? positionals
    : [
        ...readdirSync(dir)
          .filter((f) => f.endsWith(".gguf"))
          .map((f) => join(dir, f)),
        await pullModel(),
        await pullModel(GEMMA3_270M.name),
      ];
const out = values.out ?? join(root, "test", "fixtures", "tokenizer-llama-cpp.json");
// Entries for the same file (sha256) and corpus are kept unless --force: a run can be resumed.
const previous = (await Bun.file(out).exists()) ? await Bun.file(out).json() : { vocabs: {} };
const vocabs: Record<string, VocabIds | { error: string }> = previous.vocabs;
const corpusSha = Bun.hash(JSON.stringify(corpus)).toString(16);
const write = () => {
  const fixture = {
    peer: `llama.cpp from ${LLAMA_CPP_SDIST.pypiPackage}==${LLAMA_CPP_SDIST.version} (vendor/llama.cpp), llama-tokenize --ids --no-bos [--no-parse-special]`,
    corpus: "tokenizer-corpus.json",
    corpusHash: corpusSha,
    note: "ids: special-token text parsed; plain: corpus index -> ids where --no-parse-special differs. Vocab files: scripts/llama-vocabs.ts.",
    vocabs: Object.fromEntries(Object.entries(vocabs).sort(([a], [b]) => a.localeCompare(b))),
  };
  writeFileSync(out, `${JSON.stringify(fixture, null, 1)}\n`);
};
for (const model of models) {
  const t0 = performance.now();
  const name = basename(model);
  const old = vocabs[name] as VocabIds | undefined;
  if (!values.force && previous.corpusHash === corpusSha && old?.sha256 === (await sha256File(model)))
    continue;
  try {
    vocabs[name] = await oracle(model);
  } catch (e) {
    vocabs[name] = { error: (e as Error).message.split("\n")[0] as string };
  }
  const r = vocabs[name] as { error?: string };
  console.error(`${name}: ${r.error ?? "ok"} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  write();
}
rmSync(work, { recursive: true, force: true });
write();
console.error(`wrote ${out}`);
