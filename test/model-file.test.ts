// One load path: the engine worker reads and checks a model file the way loadModel does
// (src/model-file.ts), from the header the main thread parsed.
import { describe, expect, test } from "bun:test";
import { Engine } from "../src/engine/index.ts";
import { pullModel } from "../src/gguf/pull.ts";
import { readModelFile } from "../src/model-file.ts";

describe("openModel for every path", () => {
  test("the engine worker refuses a file without a tokenizer, as loadModel does", async () => {
    const path = await pullModel();
    const mf = readModelFile(path);
    expect(mf.tokenizer.vocabSize).toBeGreaterThan(0);
    expect(mf.trainedContextTokens).toBeGreaterThan(0);
    const metadata = new Map(mf.file.metadata);
    metadata.delete("tokenizer.ggml.tokens");
    const config = {
      modelPath: path,
      threads: 1,
      parallel: 1,
      maxQueued: 0,
      contextTokens: 64,
      kvPages: 4,
      stepTokens: 16,
      kvType: "f16" as const,
    };
    await expect(Engine.start(config, { ...mf.file, metadata })).rejects.toThrow(
      /the file has no tokenizer \(missing key "tokenizer.ggml.tokens"\)/,
    );
    // The header the main thread parsed is what the worker opens.
    const engine = await Engine.start(config, mf.file);
    expect(engine.info.vocabSize).toBe(mf.tokenizer.vocabSize);
    await engine.close();
  }, 120_000);
});
