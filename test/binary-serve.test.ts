// The single-file binary alone in an empty directory runs `hearth run` and `hearth serve` on the
// real model (no node_modules, no checkout, library, engine worker and chat page embedded).
import { expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import OpenAI from "openai";
import { buildBinary } from "../scripts/build-binary.ts";
import { pullModel } from "../src/gguf/pull.ts";
import { startServer } from "./server-process.ts";

const root = resolve(import.meta.dir, "..");

test(
  "dist/hearth runs `run` and `serve` from an empty directory with the same greedy text",
  async () => {
    const model = await pullModel();
    const built = buildBinary(join(root, "dist", "hearth"));
    const dir = mkdtempSync(join(tmpdir(), "hearth-binary-serve-"));
    try {
      const exe = join(dir, "hearth");
      copyFileSync(built, exe);
      expect(readdirSync(dir)).toEqual(["hearth"]);
      const env = { ...process.env };
      delete env.HEARTH_LIB;
      const prompt = "The capital of France is";
      const run = Bun.spawnSync(
        [exe, "run", "-m", model, "-p", prompt, "-n", "6", "--temp", "0", "--json", "-t", "2"],
        {
          cwd: dir,
          env,
        },
      );
      expect(run.exitCode).toBe(0);
      const out = JSON.parse(run.stdout.toString()) as {
        text: string;
        tokens: number[];
        finishReason: string;
      };
      expect(out.tokens.length).toBe(6);
      expect(out.finishReason).toBe("length");

      const server = await startServer(
        [exe, "serve", "-m", model, "--port", "0", "--parallel", "2", "-t", "2", "--alias", "smol"],
        dir,
      );
      try {
        const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
        const r = await client.completions.create({ model: "x", prompt, max_tokens: 6, temperature: 0 });
        expect(r.choices[0]?.text).toBe(out.text);
        expect(r.usage?.completion_tokens).toBe(6);
        expect(r.model).toBe("smol");
        expect((await client.models.retrieve("smol")).id).toBe("smol");
        // The chat page is embedded too (test/web.test.ts drives it in a browser).
        // (No sources here to build it from: a page at all means the embedded one.)
        const page = await fetch(`${server.url}/`, { headers: { accept: "text/html" } });
        expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
        expect(await page.text()).toContain("<title>hearth chat</title>");
      } finally {
        await server.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  { timeout: 300_000 },
);
