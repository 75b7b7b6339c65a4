// POST /v1/embeddings against a real `hearth serve` on 127.0.0.1 with the real default model,
// through the official openai client: floats and base64 agree, answers are deterministic and the
// same batched or one by one, similar sentences score higher, token-id inputs, usage, and every
// refusal is a JSON 400.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { pullModel } from "../src/gguf/pull.ts";
import { type RunningServer, startCheckoutServer } from "./server-process.ts";

let server: RunningServer;
let client: OpenAI;
const DIMS = 576; // SmolLM2-135M's embedding_length

beforeAll(async () => {
  server = await startCheckoutServer(await pullModel(), ["--ctx", "256"]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
}, 180_000);

afterAll(async () => {
  await server?.stop();
});

const SENTENCES = [
  "The cat sits on the mat.",
  "A cat is sitting on a mat.",
  "Quarterly tax filings are due at the end of April.",
  "How do I bake sourdough bread at home?",
  "What is a simple recipe for homemade sourdough?",
];
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
};
const vectors = (r: OpenAI.CreateEmbeddingResponse) => r.data.map((d) => Array.from(d.embedding));

async function refusal(
  body: Record<string, unknown>,
): Promise<{ status: number; error: Record<string, unknown> }> {
  const r = await fetch(`${server.url}/v1/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(r.headers.get("content-type")).toContain("application/json");
  return { status: r.status, error: ((await r.json()) as { error: Record<string, unknown> }).error };
}

describe("/v1/embeddings (real server, openai client)", () => {
  test("floats and base64 (the client's default) agree; unit vectors of the model's size; usage", async () => {
    const floats = await client.embeddings.create({
      model: "default",
      input: SENTENCES,
      encoding_format: "float",
    });
    const b64 = await client.embeddings.create({ model: "default", input: SENTENCES });
    expect(floats.object).toBe("list");
    expect(floats.data.map((d) => d.index)).toEqual([0, 1, 2, 3, 4]);
    expect(floats.data.every((d) => d.object === "embedding" && d.embedding.length === DIMS)).toBe(true);
    expect(vectors(b64)).toEqual(vectors(floats));
    for (const v of vectors(floats)) expect(Math.abs(dot(v, v) - 1)).toBeLessThan(1e-5);
    const tokens = await Promise.all(
      SENTENCES.map(async (s) => {
        const r = await fetch(`${server.url}/v1/completions`, {
          method: "POST",
          body: JSON.stringify({ prompt: s, max_tokens: 1, temperature: 0 }),
        });
        return ((await r.json()) as { usage: { prompt_tokens: number } }).usage.prompt_tokens;
      }),
    );
    const total = tokens.reduce((a, b) => a + b, 0);
    expect(floats.usage).toEqual({ prompt_tokens: total, total_tokens: total });
    // The raw base64 answer is little-endian float32 bytes of the same numbers.
    const raw = await fetch(`${server.url}/v1/embeddings`, {
      method: "POST",
      body: JSON.stringify({ input: SENTENCES[0], encoding_format: "base64" }),
    });
    const text = ((await raw.json()) as { data: { embedding: string }[] }).data[0]?.embedding as string;
    const bytes = Buffer.from(text, "base64");
    expect(Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, DIMS))).toEqual(
      vectors(floats)[0] as number[],
    );
  }, 120_000);

  test("deterministic, and a batch equals its inputs sent one by one", async () => {
    const batch = vectors(await client.embeddings.create({ model: "default", input: SENTENCES }));
    const again = vectors(await client.embeddings.create({ model: "default", input: SENTENCES }));
    expect(again).toEqual(batch);
    for (const [i, s] of SENTENCES.entries()) {
      const one = vectors(await client.embeddings.create({ model: "default", input: s }));
      expect(one).toEqual([batch[i] as number[]]);
    }
  }, 120_000);

  test("similar sentences score above unrelated ones", async () => {
    const [cat1, cat2, tax, bread1, bread2] = vectors(
      await client.embeddings.create({ model: "default", input: SENTENCES }),
    ) as number[][];
    const c = (a?: number[], b?: number[]) => dot(a as number[], b as number[]);
    expect(c(cat1, cat2)).toBeGreaterThan(c(cat1, tax));
    expect(c(cat1, cat2)).toBeGreaterThan(c(cat1, bread1));
    expect(c(bread1, bread2)).toBeGreaterThan(c(bread1, tax));
  }, 60_000);

  test("token ids in, as one list or many; dimensions equal to the model's size is accepted", async () => {
    const ids = [1, 504, 2365, 6355, 335, 260, 17424, 30];
    const one = await client.embeddings.create({ model: "default", input: ids, dimensions: DIMS });
    const many = await client.embeddings.create({ model: "default", input: [ids, ids.slice(0, 3)] });
    expect(one.usage.prompt_tokens).toBe(8);
    expect(many.usage.prompt_tokens).toBe(11);
    expect(vectors(many)[0]).toEqual(vectors(one)[0] as number[]);
  }, 60_000);

  test("refusals are JSON 400s naming the field", async () => {
    const dims = await client.embeddings
      .create({ model: "default", input: "hi", dimensions: 256 })
      .catch((e: unknown) => e);
    expect(dims).toBeInstanceOf(OpenAI.BadRequestError);
    expect((dims as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("dimensions");
    expect((dims as Error).message).toContain("576 dimensions");

    for (const input of ["", [], [""], ["ok", ""], [[]], [-1]]) {
      const r = await refusal({ model: "default", input });
      expect(r.status).toBe(400);
      expect(r.error.param).toBe("input");
    }
    const tooLong = await refusal({ input: "word ".repeat(400) });
    expect(tooLong.status).toBe(400);
    expect(tooLong.error.code).toBe("context_length_exceeded");
    const vocab = await refusal({ input: [[1, 2, 10_000_000]] });
    expect(vocab.status).toBe(400);
    expect(String(vocab.error.message)).toContain("not a token id below 49152");
    const tooMany = await refusal({ input: Array(2049).fill("x") });
    expect(tooMany.status).toBe(400);
    const format = await refusal({ input: "x", encoding_format: "int8" });
    expect(format.status).toBe(400);
    expect(format.error.param).toBe("encoding_format");
    const unknown = await refusal({ input: "x", pooling: "cls" });
    expect(unknown.status).toBe(400);
    // Still serving.
    const ok = await client.embeddings.create({ model: "default", input: "still fine" });
    expect(ok.data[0]?.embedding).toHaveLength(DIMS);
  }, 60_000);

  test("embeddings while a chat completion streams: both answer", async () => {
    const stream = client.chat.completions.create({
      model: "default",
      messages: [{ role: "user", content: "Count to twenty." }],
      max_tokens: 40,
      temperature: 0,
      stream: true,
    });
    const [chunks, emb] = await Promise.all([
      (async () => {
        let n = 0;
        for await (const _ of await stream) n++;
        return n;
      })(),
      client.embeddings.create({ model: "default", input: SENTENCES }),
    ]);
    expect(chunks).toBeGreaterThan(2);
    expect(emb.data).toHaveLength(SENTENCES.length);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/hearth_requests_total\{endpoint="embeddings",outcome="ok"\} \d+/);
  }, 60_000);
});
