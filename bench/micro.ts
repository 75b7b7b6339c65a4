// Micro-benchmarks of the small hot paths on mitata (its statistics: avg, p50, p99, min, max per
// call): an FFI call, memcpy, one matvec per weight format, sampling one row, tokenizer encode of
// 1 MB of text (llama.cpp's llama-tokenize beside it when the native build is present), the
// streaming detokenizer, and the JSON-schema constraint per token. The macro suites keep their
// llama-bench tables; this one prints one row per benchmark.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bench, do_not_optimize, run as mitataRun } from "mitata";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { pullModel } from "../src/gguf/pull.ts";
import {
  GgmlType,
  type GgmlTypeName,
  interleave,
  matmul,
  quantizeAct,
  quantizeRow,
  rowSizeBytes,
  ThreadPool,
} from "../src/native/kernels.ts";
import { library } from "../src/native/lib.ts";
import { Rng, Sampler, type SamplerOptions } from "../src/sampling/index.ts";
import { SchemaConstraint } from "../src/sampling/json-schema.ts";
import { Tokenizer } from "../src/tokenizer/index.ts";
import { type BenchOptions, type Cell, runStandalone, type SuiteResult } from "./lib.ts";
import { BUILD_HINT, binDir } from "./peers/llama.cpp/native.ts";

/** One measured call: mitata's statistics in nanoseconds, plus what one call processes. */
interface Measured {
  name: string;
  avgNs: number;
  p50Ns: number;
  p99Ns: number;
  minNs: number;
  maxNs: number;
  samples: number;
  /** Throughput unit and amount per call, e.g. ["MB/s", 1e6 bytes] or ["tok/s", 12345 tokens]. */
  per?: [string, number];
}

/**
 * One quantized row: hearth's own quantizer where it has one; for formats it only reads (the
 * K-quants), llama.cpp's blocks from the committed ggml fixture (test/fixtures/quant/), whose
 * row has the same length. Null when neither exists.
 */
function quantizedRow(type: GgmlTypeName, x: Float32Array): Uint8Array | null {
  try {
    return quantizeRow(type, x);
  } catch {
    const path = `${import.meta.dir}/../test/fixtures/quant/${type}.json`;
    if (!existsSync(path)) return null;
    const fixture = JSON.parse(readFileSync(path, "utf8")) as { n: number; bytes: string };
    return fixture.n === x.length ? new Uint8Array(Buffer.from(fixture.bytes, "base64")) : null;
  }
}

function randomFloats(rng: Rng, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.nextFloat() * 2 - 1;
  return x;
}

/** 1 MB of text from the tokenizer corpus (many scripts, code, numbers), repeated. */
async function megabyteOfText(): Promise<string> {
  const corpus: string[] = await Bun.file(`${import.meta.dir}/../test/fixtures/tokenizer-corpus.json`).json();
  const unit = corpus.join("\n");
  let text = "";
  while (Buffer.byteLength(text) < 1_000_000) text += `${unit}\n`;
  return text;
}

/**
 * llama.cpp's tokenizer on the same text: llama-tokenize's wall time on the text minus its wall
 * time on an empty file (both load the vocabulary only), best of `reps`. Null without the build.
 */
function llamaTokenizeMs(
  modelPath: string,
  text: string,
  reps: number,
): { ms: number; tokens: number } | null {
  const bin = binDir();
  const llamaTokenize = bin === null ? null : join(bin, "llama-tokenize");
  if (llamaTokenize === null || !existsSync(llamaTokenize)) return null;
  const dir = mkdtempSync(join(tmpdir(), "hearth-micro-"));
  try {
    const full = join(dir, "text.txt");
    const empty = join(dir, "empty.txt");
    writeFileSync(full, text);
    writeFileSync(empty, "");
    const time = (file: string): { ms: number; out: string } => {
      const t0 = performance.now();
      const p = Bun.spawnSync(
        [llamaTokenize, "-m", modelPath, "-f", file, "--ids", "--log-disable", "--no-parse-special"],
        { stdout: "pipe", stderr: "ignore" },
      );
      if (p.exitCode !== 0) throw new Error(`llama-tokenize exited ${p.exitCode}`);
      return { ms: performance.now() - t0, out: p.stdout.toString() };
    };
    let best = Number.POSITIVE_INFINITY;
    let tokens = 0;
    for (let r = 0; r < reps; r++) {
      const a = time(full);
      const b = time(empty);
      best = Math.min(best, a.ms - b.ms);
      tokens = (a.out.match(/\d+/g) ?? []).length;
    }
    return { ms: best, tokens };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(opts: BenchOptions): Promise<SuiteResult> {
  const lib = library();
  const pool = new ThreadPool(1);
  const rng = new Rng(7);
  const per = new Map<string, [string, number]>();
  const skipped: string[] = [];
  const register = (name: string, fn: () => unknown, throughput?: [string, number]) => {
    bench(name, () => do_not_optimize(fn()));
    if (throughput) per.set(name, throughput);
  };
  try {
    // ---- FFI: one call into libhearth that does nothing
    register("ffi call (hearth_noop)", () => lib.hearth_noop(1));

    // ---- memcpy, 64 KiB (L2-resident): ours vs Zig's @memcpy vs TypedArray.set
    const n = 64 * 1024;
    const src = new Uint8Array(n).fill(3);
    const dst = new Uint8Array(n);
    register("memcpy 64 KiB: hearth SIMD", () => lib.hearth_memcpy(dst, src, n, 0, 1), ["GB/s", n]);
    register("memcpy 64 KiB: Zig @memcpy", () => lib.hearth_memcpy(dst, src, n, 1, 1), ["GB/s", n]);
    register("memcpy 64 KiB: TypedArray.set", () => dst.set(src), ["GB/s", n]);

    // ---- one matvec per weight format, 1 thread, interleaved as the model runs them (576 x 1536
    // is SmolLM2's ffn_up; K-quants need 256-multiple rows, so they take 1536 x 768)
    for (const type of Object.keys(GgmlType) as GgmlTypeName[]) {
      if (type === "f32" || type === "f16") continue;
      const cols = /_k$/.test(type) ? 768 : 576;
      const rows = 1536;
      const one = rowSizeBytes(type, cols);
      const plain = new Uint8Array(rows * one);
      for (let r = 0; r < 16; r++) {
        const row = quantizedRow(type, randomFloats(rng, cols));
        if (row === null) break;
        plain.set(row, r * one);
      }
      if (plain.every((b) => b === 0)) {
        skipped.push(type);
        continue;
      }
      for (let r = 16; r < rows; r++) plain.copyWithin(r * one, (r % 16) * one, (r % 16) * one + one);
      const w = interleave(type, plain, rows, cols);
      const act = quantizeAct(randomFloats(rng, cols), type);
      const out = new Float32Array(rows);
      register(
        `matvec ${type} ${rows}x${cols}`,
        () => matmul(pool, type, w, rows, cols, { act }, 1, out, "interleaved"),
        ["GB/s", w.byteLength],
      );
    }

    // ---- sampling one row of the default model's vocabulary
    const md = new GgufMetadata(readGguf(await pullModel()).metadata);
    const tok = Tokenizer.fromGguf(md);
    const vocab = tok.vocabSize;
    const logits = Array.from({ length: 8 }, () => {
      const row = new Float32Array(vocab);
      for (let i = 0; i < vocab; i++)
        row[i] = (rng.nextFloat() + rng.nextFloat() + rng.nextFloat() - 1.5) * 6;
      return row;
    });
    const history: number[] = Array.from({ length: 64 }, () => rng.nextU32() % vocab);
    const samplers: [string, SamplerOptions][] = [
      ["greedy", { temperature: 0 }],
      ["top-p 0.95", { topK: 0, minP: 0, topP: 0.95 }],
      ["top-k 40 + min-p 0.05", { topK: 40, minP: 0.05, topP: 1 }],
    ];
    for (const [label, options] of samplers) {
      const s = new Sampler({ ...options, seed: 1 });
      let i = 0;
      register(`sample 1 row (${vocab}): ${label}`, () =>
        s.sample(logits[i++ % logits.length] as Float32Array, history),
      );
    }

    // ---- tokenizer encode of 1 MB, and the streaming detokenizer over its tokens
    const text = await megabyteOfText();
    const textBytes = Buffer.byteLength(text);
    const ids = tok.encode(text);
    register("tokenizer encode 1 MB", () => tok.encode(text), ["MB/s", textBytes]);
    const slice = ids.slice(0, 4096);
    register("stream detokenize 4096 tokens", () => {
      const d = tok.streamDecoder();
      let len = 0;
      for (const id of slice) len += d.push(id).length;
      return len + d.flush().length;
    }, ["tok/s", slice.length]);

    // ---- JSON-schema constraint: the per-token check and advance on a real reply's tokens
    const schema = {
      type: "object",
      properties: {
        name: { type: "string" },
        age: { type: "integer" },
        tags: { type: "array", items: { type: "string" } },
      },
      required: ["name", "age", "tags"],
      additionalProperties: false,
    };
    const reply = tok.encode('{"name": "Ada Lovelace", "age": 36, "tags": ["math", "engines", "poetry"]}');
    const tokenBytes = (id: number) => tok.tokenBytes(id);
    register(`json-schema constraint, ${reply.length}-token reply`, () => {
      const c = new SchemaConstraint(schema, tokenBytes);
      for (const id of reply) {
        if (!c.allows(id)) throw new Error("the schema refused its own reply");
        c.accept(id);
      }
      return c;
    }, ["tok/s", reply.length]);

    const result = await mitataRun({ format: "quiet", throw: true });
    const measured: Measured[] = result.benchmarks.flatMap((b) =>
      b.runs.flatMap((r) => {
        const s = r.stats;
        if (s === undefined) return [];
        return [
          {
            name: r.name,
            avgNs: s.avg,
            p50Ns: s.p50,
            p99Ns: s.p99,
            minNs: s.min,
            maxNs: s.max,
            samples: s.samples.length,
            per: per.get(r.name),
          },
        ];
      }),
    );

    // The peer column: llama.cpp's tokenizer on the same megabyte, same vocabulary file.
    const peer = llamaTokenizeMs(await pullModel(), text, opts.quick ? 1 : 3);
    const rows: Array<Record<string, Cell>> = measured.map((m) => {
      const [unit, amount] = m.per ?? ["calls/s", 1];
      const scale = unit === "GB/s" ? 1 : unit === "MB/s" ? 1e3 : 1e9;
      const throughput = unit === "calls/s" ? 1e9 / m.avgNs : (amount / m.avgNs) * scale;
      const isEncode = m.name === "tokenizer encode 1 MB";
      const peerRate = isEncode && peer !== null ? textBytes / (peer.ms * 1e3) : null;
      return {
        benchmark: m.name,
        "avg ns": m.avgNs,
        "p50 ns": m.p50Ns,
        "p99 ns": m.p99Ns,
        throughput,
        unit,
        "llama.cpp": peerRate,
        ratio: peerRate === null ? null : throughput / peerRate,
      };
    });
    const summary: Record<string, number | null> = {};
    for (const m of measured) {
      const key = `micro_${m.name
        .toLowerCase()
        .replace(/[^a-z0-9]+/g, "_")
        .replace(/^_|_$/g, "")}_ns`;
      summary[key] = m.avgNs;
    }
    const encode = measured.find((m) => m.name === "tokenizer encode 1 MB");
    summary.micro_encode_mb_per_s = encode ? (textBytes / encode.avgNs) * 1e3 : null;
    summary.micro_llamacpp_encode_mb_per_s = peer === null ? null : textBytes / (peer.ms * 1e3);
    summary.micro_encode_vs_llamacpp =
      encode && peer !== null ? ((textBytes / encode.avgNs) * 1e3) / (textBytes / (peer.ms * 1e3)) : null;
    return {
      suite: "micro",
      columns: ["benchmark", "avg ns", "p50 ns", "p99 ns", "throughput", "unit", "llama.cpp", "ratio"],
      rows,
      summary,
      notes: [
        "mitata 1.0.34 statistics per call; 1 thread; matvecs interleaved as the model runs them.",
        `encode: ${textBytes} bytes of the tokenizer corpus repeated, ${ids.length} tokens (hearth).` +
          (peer === null
            ? ` llama.cpp column absent: ${BUILD_HINT}.`
            : ` llama.cpp: native llama-tokenize on the same file, its wall time minus an empty file's (vocabulary load), ${peer.tokens} tokens.`),
        ...(skipped.length > 0
          ? [`no matvec row for ${skipped.join(", ")}: no quantizer and no fixture row of that length.`]
          : []),
        "mitata's statistics per benchmark (avg, p50, p99, min, max, samples) are saved with the run (raw).",
      ],
      raw: { mitata: measured.map(({ per: _per, ...m }) => m) },
    };
  } finally {
    pool.destroy();
  }
}

if (import.meta.main) await runStandalone(run);
