// The ceiling of the serving target's 16-vs-1 ratio on this machine, measured in-process: a
// 1-row decode step of the real model against a 16-row one, and against the 16-row step's
// matrix multiplications alone (the same kernels on matrices of the model's shapes and types),
// i.e. what 16 rows would cost if attention, norms, the pool and the server were free.
// bench/serve.ts runs it before starting the server, so nothing else competes for the cores.
import { readGguf } from "../src/gguf/index.ts";
import {
  type GgmlTypeName,
  interleave,
  matmul,
  quantizeAct,
  quantizeRow,
  rowSizeBytes,
  ThreadPool,
} from "../src/native/kernels.ts";
import { createBatch, openNativeModel } from "../src/native/model.ts";
import { Rng } from "../src/sampling/rng.ts";
import { median } from "./lib.ts";

export interface CeilingFigures {
  /** Mean ms of a 1-row decode step (contexts prompt..prompt+steps), median over rounds. */
  step_1_ms: number;
  /** Mean ms of a 16-row decode step (16 sequences), median over rounds. */
  step_16_ms: number;
  /** Ms of every matmul of one 16-row step alone (QKV, output, gate+up, down per layer; the head). */
  matmuls_16_ms: number;
  /** 16 x step_1_ms / step_16_ms: the in-process 16-vs-1 ratio. */
  step_16_vs_1: number;
  /** 16 x step_1_ms / matmuls_16_ms: the ratio if everything but the matmuls cost nothing. */
  ceiling_16_vs_1: number;
}

const SEQS = 16;
const PROMPT = 10;

const typeNames: Record<string, GgmlTypeName> = { Q4_0: "q4_0", Q4_1: "q4_1", Q8_0: "q8_0" };

/** One matrix of the model's shape and type, random values, interleaved as the model loads it. */
interface Matrix {
  type: GgmlTypeName;
  rows: number;
  cols: number;
  data: Uint8Array;
}

function randomMatrix(type: GgmlTypeName, rows: number, cols: number, seed: number): Matrix {
  const rng = new Rng(seed);
  const x = new Float32Array(cols);
  const rb = rowSizeBytes(type, cols);
  const plain = new Uint8Array(rows * rb);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < cols; i++) x[i] = 2 * rng.nextFloat() - 1;
    plain.set(quantizeRow(type, x), r * rb);
  }
  return { type, rows, cols, data: interleave(type, plain, rows, cols) };
}

/**
 * The matrices one step multiplies, per layer as the forward pass calls them (Q, K and V are one
 * call over their stacked rows, as are gate and up), and the output layer; every layer gets its
 * own copy so the step streams as many weight bytes as the real one.
 */
function stepMatrices(path: string): Matrix[] {
  const file = readGguf(path);
  const info = (name: string) => file.tensors.find((t) => t.name === name);
  const typeOf = (name: string): GgmlTypeName => {
    const t = info(name);
    const n = t ? typeNames[t.typeName] : undefined;
    if (!n) throw new Error(`ceiling: tensor ${name} is ${t?.typeName ?? "absent"}, not a quantized type`);
    return n;
  };
  const dims = (name: string) => info(name)?.dims ?? [];
  const [d, vocab] = dims("token_embd.weight") as [number, number];
  const rowsOf = (name: string) => dims(`blk.0.${name}`)[1] as number;
  const head = info("output.weight") ? "output.weight" : "token_embd.weight";
  let layers = 0;
  while (info(`blk.${layers}.attn_q.weight`)) layers++;
  const qkvRows = rowsOf("attn_q.weight") + rowsOf("attn_k.weight") + rowsOf("attn_v.weight");
  const ff = rowsOf("ffn_up.weight");
  const shapes: Array<[GgmlTypeName, number, number]> = [
    [typeOf("blk.0.attn_q.weight"), qkvRows, d],
    [
      typeOf("blk.0.attn_output.weight"),
      rowsOf("attn_output.weight"),
      dims("blk.0.attn_output.weight")[0] as number,
    ],
    [typeOf("blk.0.ffn_up.weight"), 2 * ff, d],
    [typeOf("blk.0.ffn_down.weight"), d, ff],
  ];
  const first = shapes.map(([t, r, c], i) => randomMatrix(t, r, c, i + 1));
  const out: Matrix[] = [];
  for (let l = 0; l < layers; l++) for (const m of first) out.push({ ...m, data: m.data.slice() });
  out.push(randomMatrix(typeOf(head), vocab, d, 99));
  return out;
}

/** Mean ms per decode step of `n` sequences over `steps` steps after a PROMPT-token prefill each. */
function decodeSteps(model: ReturnType<typeof openNativeModel>, n: number, steps: number): number {
  const vocab = model.info.vocabSize;
  const batch = createBatch(n * PROMPT);
  const logits = new Float32Array(vocab * n);
  const rng = new Rng(7);
  const token = () => rng.nextU32() % vocab;
  const seqs = Array.from({ length: n }, () => model.seqCreate());
  try {
    let i = 0;
    for (const seq of seqs) {
      for (let p = 0; p < PROMPT; p++, i++) {
        batch.tokens[i] = token();
        batch.positions[i] = p;
        batch.seqIds[i] = seq;
        batch.wantLogits[i] = p === PROMPT - 1 ? 1 : 0;
      }
    }
    batch.length = i;
    model.decode(batch, logits);
    batch.length = n;
    const t0 = performance.now();
    for (let step = 0; step < steps; step++) {
      for (let k = 0; k < n; k++) {
        batch.tokens[k] = token();
        batch.positions[k] = PROMPT + step;
        batch.seqIds[k] = seqs[k] as number;
        batch.wantLogits[k] = 1;
      }
      model.decode(batch, logits);
    }
    return (performance.now() - t0) / steps;
  } finally {
    for (const seq of seqs) model.seqFree(seq);
  }
}

/** Rounds alternate the three measurements, so a noisy second of the VM hits all of them alike. */
export function measureCeiling(path: string, threads: number, quick: boolean): CeilingFigures {
  const steps = quick ? 24 : 128;
  const rounds = quick ? 1 : 3;
  const matrices = stepMatrices(path);
  const pool = new ThreadPool(threads);
  const model = openNativeModel(path, {
    threads,
    kvPages: 4 * SEQS * 16,
    maxBatchTokens: SEQS * PROMPT,
    maxSequences: SEQS,
  });
  try {
    const widest = Math.max(...matrices.map((m) => m.cols));
    const act = quantizeAct(new Float32Array(SEQS * widest).map((_, i) => Math.sin(i)));
    const out = new Float32Array(Math.max(...matrices.map((m) => m.rows)) * SEQS);
    const matmulsOnce = () => {
      const t0 = performance.now();
      for (const m of matrices)
        matmul(pool, m.type, m.data, m.rows, m.cols, { act }, SEQS, out, "interleaved");
      return performance.now() - t0;
    };
    decodeSteps(model, 1, 4); // warm-up: weights paged in, pools spinning
    decodeSteps(model, SEQS, 2);
    matmulsOnce();
    const one: number[] = [];
    const many: number[] = [];
    const mm: number[] = [];
    for (let r = 0; r < rounds; r++) {
      one.push(decodeSteps(model, 1, steps));
      many.push(decodeSteps(model, SEQS, steps));
      // As many passes as 16-row steps above, the mean of them.
      let total = 0;
      const passes = quick ? 4 : 16;
      for (let p = 0; p < passes; p++) total += matmulsOnce();
      mm.push(total / passes);
    }
    const step1 = median(one);
    const step16 = median(many);
    const mm16 = median(mm);
    return {
      step_1_ms: step1,
      step_16_ms: step16,
      matmuls_16_ms: mm16,
      step_16_vs_1: (SEQS * step1) / step16,
      ceiling_16_vs_1: (SEQS * step1) / mm16,
    };
  } finally {
    model.close();
    pool.destroy();
  }
}
