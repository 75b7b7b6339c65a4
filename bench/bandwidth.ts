// The decode bandwidth bound: how many weight bytes one decode step reads, and the machine's read
// bandwidth measured by a multi-threaded sweep over a buffer far larger than the caches (the same
// native sweep as bench/kernels.ts's "read sweep" rows). tg_bandwidth_share = weight bytes per
// token x tokens/s / read bandwidth: 1.0 would be decoding at the speed of reading the weights once.
import { readGguf } from "../src/gguf/index.ts";
import { ThreadPool } from "../src/native/kernels.ts";
import { library } from "../src/native/lib.ts";

const MiB = 1 << 20;

/**
 * Weight bytes a one-token decode step reads: every tensor once, except the token embedding, of
 * which the step reads one row; a model without `output.weight` reads the embedding whole as its
 * output head. The KV cache read by attention is not counted (at tg128 on SmolLM2 it is ~2% of this).
 */
export function decodeWeightBytes(path: string): number {
  const tensors = readGguf(path).tensors;
  const embd = tensors.find((t) => t.name === "token_embd.weight");
  const tied = !tensors.some((t) => t.name === "output.weight");
  let bytes = 0;
  for (const t of tensors) if (t !== embd) bytes += t.sizeBytes;
  if (embd !== undefined) {
    const rows = embd.dims[1] ?? 1;
    bytes += tied ? embd.sizeBytes : embd.sizeBytes / rows;
  }
  if (!(bytes > 0)) throw new Error(`${path}: no tensors to read`);
  return bytes;
}

/** A read sweep over `bytes` of touched memory on a pool of `threads`; keep it for several samples. */
export class ReadSweep {
  private readonly pool: ThreadPool;
  private readonly buffer: Uint8Array;
  private readonly sum = new BigUint64Array(1);

  constructor(
    readonly threads: number,
    sizeBytes = 512 * MiB,
  ) {
    this.pool = new ThreadPool(threads);
    this.buffer = new Uint8Array(sizeBytes).fill(1); // touched, so the pages are real memory
  }

  /** Best of `reps` sweeps (after one warm-up), in GB/s (1e9 bytes). */
  gbps(reps = 5): number {
    const lib = library();
    const once = () => {
      const t0 = Bun.nanoseconds();
      const rc = lib.hearth_read_sweep(this.pool.ptr, this.buffer, this.buffer.length, this.sum);
      if (rc !== 0) throw new Error(`read sweep failed with status ${rc}`);
      return (Bun.nanoseconds() - t0) / 1e9;
    };
    once();
    let best = Number.POSITIVE_INFINITY;
    for (let i = 0; i < reps; i++) best = Math.min(best, once());
    return this.buffer.length / best / 1e9;
  }

  close(): void {
    this.pool.destroy();
  }
}
