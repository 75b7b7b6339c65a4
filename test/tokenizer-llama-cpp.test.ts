// Token ids identical to llama.cpp's: every vocab-only GGUF in llama.cpp's models/ folder (from the
// pinned llama-cpp-python sdist, fetched once by scripts/llama-vocabs.ts), SmolLM2 and Gemma 3 270M,
// on the project's corpus (ids from llama-tokenize, committed by scripts/tokenizer-parity.ts) and on
// llama.cpp's own test strings (the .inp/.out files beside most vocabularies).
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ensureLlamaVocabs } from "../scripts/llama-vocabs.ts";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { GEMMA3_270M, KNOWN_MODELS, pullModel, sha256File } from "../src/gguf/pull.ts";
import { Tokenizer, TokenizerError } from "../src/tokenizer/index.ts";

interface Fixture {
  peer: string;
  vocabs: Record<
    string,
    { sha256: string; ids: string[]; plain: Record<string, string> } | { error: string }
  >;
}

const fixture: Fixture = await Bun.file(`${import.meta.dir}/fixtures/tokenizer-llama-cpp.json`).json();
const corpus: string[] = await Bun.file(`${import.meta.dir}/fixtures/tokenizer-corpus.json`).json();
const vocabDir = await ensureLlamaVocabs();
// Reading a 256k-token vocabulary and encoding the corpus twice takes seconds on a busy machine.
const SLOW_MS = 180_000;

/** The file behind a fixture entry: a vocabulary from the sdist, or a known model by file name. */
async function fileOf(name: string): Promise<string> {
  const known = Object.values(KNOWN_MODELS).find((m) => m.fileName === name);
  return known !== undefined ? pullModel(known.name) : join(vocabDir, name);
}

const load = (path: string) => Tokenizer.fromGguf(new GgufMetadata(readGguf(path).metadata));
const ids = (s: string) => (s === "" ? [] : s.split(" ").map(Number));

/** llama.cpp's test-tokenizer-0 cases for a vocabulary: (text, ids), or none. */
function llamaCppCases(name: string): [string, string][] {
  const inp = join(vocabDir, `${name}.inp`);
  if (!existsSync(inp)) return [];
  const inputs = readFileSync(inp, "utf8").split("\n__ggml_vocab_test__\n");
  const outputs = readFileSync(join(vocabDir, `${name}.out`), "utf8").split("\n");
  return inputs.map((text, i) => [text, (outputs[i] ?? "").trim()]);
}

describe("token ids identical to llama.cpp's", () => {
  test("the fixture covers every vocabulary in llama.cpp's models/ folder, SmolLM2 and Gemma 3 270M", () => {
    expect(fixture.peer).toContain("llama-tokenize");
    const vocabFiles = readdirSync(vocabDir).filter((f) => f.endsWith(".gguf"));
    expect(vocabFiles.length).toBeGreaterThanOrEqual(19);
    for (const f of [...vocabFiles, GEMMA3_270M.fileName, "SmolLM2-135M-Instruct.Q4_1.gguf"]) {
      expect(Object.keys(fixture.vocabs)).toContain(f);
    }
    // llama.cpp's own cases come with most of them.
    expect(vocabFiles.filter((f) => llamaCppCases(f).length > 40).length).toBeGreaterThanOrEqual(15);
  });

  for (const [name, entry] of Object.entries(fixture.vocabs)) {
    if ("error" in entry) {
      test(
        `${name}: a tokenizer hearth does not implement is a clear error`,
        () => {
          expect(() => load(join(vocabDir, name))).toThrow(TokenizerError);
          expect(() => load(join(vocabDir, name))).toThrow(/unsupported tokenizer model/);
        },
        SLOW_MS,
      );
      continue;
    }
    test(
      `${name}: the corpus (special text parsed and plain) and llama.cpp's own cases`,
      async () => {
        const path = await fileOf(name);
        expect(await sha256File(path)).toBe(entry.sha256);
        const tok = load(path);
        expect(entry.ids.length).toBe(corpus.length);
        const mismatches: string[] = [];
        corpus.forEach((text, i) => {
          const want = ids(entry.ids[i] as string);
          const wantPlain =
            entry.plain[String(i)] === undefined ? want : ids(entry.plain[String(i)] as string);
          const got = tok.encode(text, { addSpecial: false, parseSpecial: true });
          const gotPlain = tok.encode(text, { addSpecial: false, parseSpecial: false });
          if (got.join(" ") !== want.join(" "))
            mismatches.push(
              `parsed ${JSON.stringify(text)}: ours ${got.join(" ")} llama.cpp ${want.join(" ")}`,
            );
          if (gotPlain.join(" ") !== wantPlain.join(" "))
            mismatches.push(
              `plain ${JSON.stringify(text)}: ours ${gotPlain.join(" ")} llama.cpp ${wantPlain.join(" ")}`,
            );
        });
        // test-tokenizer-0: no BOS, special text not parsed.
        for (const [text, want] of llamaCppCases(name)) {
          const got = tok.encode(text, { addSpecial: false }).join(" ");
          if (got !== want)
            mismatches.push(`test-tokenizer-0 ${JSON.stringify(text)}: ours ${got} llama.cpp ${want}`);
        }
        expect(mismatches).toEqual([]);
      },
      SLOW_MS,
    );
  }
});
