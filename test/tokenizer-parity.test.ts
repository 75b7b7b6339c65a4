// Token-id parity with llama.cpp (node-llama-cpp) on the committed fixture from bench/peers/.
import { describe, expect, test } from "bun:test";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { pullModel } from "../src/gguf/pull.ts";
import { Tokenizer } from "../src/tokenizer/index.ts";

interface ParityFixture {
  peer: string;
  model: string;
  cases: { text: string; ids: number[]; idsPlain: number[] }[];
}

// Written by `bun bench/peers/make-fixtures.ts` from node-llama-cpp on the same model.
const fixturePath = `${import.meta.dir}/fixtures/tokenizer-parity.json`;

describe("tokenizer parity with llama.cpp", async () => {
  test("identical ids for every fixture case, special text parsed and plain", async () => {
    const fixture: ParityFixture = await Bun.file(fixturePath).json();
    const tok = Tokenizer.fromGguf(new GgufMetadata(readGguf(await pullModel()).metadata));
    expect(fixture.peer).toContain("node-llama-cpp");
    expect(fixture.cases.length).toBeGreaterThanOrEqual(300);
    const mismatches: string[] = [];
    for (const c of fixture.cases) {
      const ids = tok.encode(c.text, { addSpecial: false, parseSpecial: true });
      const idsPlain = tok.encode(c.text, { addSpecial: false, parseSpecial: false });
      if (JSON.stringify(ids) !== JSON.stringify(c.ids)) {
        mismatches.push(
          `special ${JSON.stringify(c.text)}: ours ${JSON.stringify(ids)} peer ${JSON.stringify(c.ids)}`,
        );
      }
      if (JSON.stringify(idsPlain) !== JSON.stringify(c.idsPlain)) {
        mismatches.push(
          `plain ${JSON.stringify(c.text)}: ours ${JSON.stringify(idsPlain)} peer ${JSON.stringify(c.idsPlain)}`,
        );
      }
    }
    expect(mismatches).toEqual([]);
  });
});
