// Gemma 3 270M by name: `loadModel("gemma3-270m")` resolves the known name to the pulled file. Until
// hearth computes its tensor formats and architecture, loading fails with an error that names the
// file and what it cannot compute (never a crash or an "unknown model" error).
import { expect, test } from "bun:test";
import { GgufError } from "../src/gguf/index.ts";
import { GEMMA3_270M } from "../src/gguf/pull.ts";
import { loadModel } from "../src/model.ts";

test("loadModel('gemma3-270m') loads the Gemma file, or names what it cannot compute yet", async () => {
  let model: Awaited<ReturnType<typeof loadModel>> | undefined;
  try {
    model = await loadModel("gemma3-270m", { threads: 1 });
  } catch (e) {
    expect(e).toBeInstanceOf(GgufError);
    const message = (e as Error).message;
    expect(message).toContain(GEMMA3_270M.fileName);
    expect(message).toMatch(/cannot compute|architecture/);
    return;
  }
  try {
    expect(model.tokenizer.vocabSize).toBe(262144);
    expect(model.tokenizer.kind).toBe("spm");
  } finally {
    model.close();
  }
});
