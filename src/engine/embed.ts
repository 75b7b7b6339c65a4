// Embeddings on the engine: every input is a KV sequence of its own whose final hidden states
// (after the output norm: NativeModel.decodeHidden) are pooled as the model says (mean, first or
// last token) and L2-normalised. One step packs the rows of many inputs into one decode call
// within the step's token budget; an input longer than what is left of the budget continues in
// the next step (its KV carries over), and its pages go back to the pool once it is pooled.
import { MAX_EMBEDDING_INPUTS } from "../native/limits.ts";
import { createBatch } from "../native/model.ts";
import { type Batch, KvFullError, type NativeModel } from "../native/model-api.ts";
import type { EngineEvent, StepEvent } from "./request.ts";

/** An embeddings job: token ids of each input, pooled into one vector per input. */
export interface EmbedRequest {
  id: string;
  /** Non-empty inputs of at most the engine's context each (no BOS is added here). */
  inputs: readonly (readonly number[])[];
}

/**
 * The tokens of an embeddings input given as text: BOS / EOS as the model asks (as llama.cpp's
 * llama-embedding and server do); control-token text stays plain text. An empty text is refused.
 */
export function embeddingInput(
  tokenizer: { encode(text: string): number[] },
  text: string,
  index: number,
): number[] {
  if (text.length === 0) throw new RangeError(`input ${index} is empty`);
  return tokenizer.encode(text);
}

export interface EmbedderOptions {
  /** Most rows in one decode call. */
  stepTokens: number;
  /** KV sequences set aside for embeddings: the most inputs in progress at once (0: none). */
  sequences: number;
  /** Most tokens of one input. */
  contextTokens: number;
}

interface Job {
  req: EmbedRequest;
  /** inputs x dims floats, filled as inputs finish. */
  vectors: Float32Array;
  left: number;
  promptTokens: number;
}

interface Input {
  job: Job;
  index: number;
  tokens: readonly number[];
  seqId: number;
  computed: number;
  /** Sum (mean pooling) or the chosen row (cls, last) of its hidden states so far. */
  pooled: Float64Array;
  /** This step: rows it takes, and its first row of the hidden output. */
  taking: number;
  firstOut: number;
}

export class Embedder {
  private readonly pending: Input[] = [];
  private readonly active: Input[] = [];
  private readonly jobs = new Map<string, Job>();
  private readonly batch: Batch;
  private hidden = new Float32Array(0);
  private readonly dims: number;
  private readonly pageTokens: number;
  /** Decode calls made and inputs pooled, for stats and tests. */
  steps = 0;
  inputsDone = 0;

  constructor(
    private readonly model: NativeModel,
    private readonly opts: EmbedderOptions,
  ) {
    this.dims = model.info.embeddingLength;
    this.pageTokens = model.kvStats().pageTokens;
    this.batch = createBatch(opts.stepTokens);
  }

  get hasWork(): boolean {
    return this.pending.length > 0 || this.active.length > 0;
  }

  /** Queues a job; throws RangeError for inputs the engine cannot take. */
  submit(req: EmbedRequest): void {
    if (this.opts.sequences <= 0)
      throw new RangeError(
        "no KV sequences are left for embeddings (every one is set aside for generation: lower the parallel sequences)",
      );
    if (this.jobs.has(req.id)) throw new RangeError(`request ${req.id} is already queued`);
    const n = req.inputs.length;
    if (n < 1 || n > MAX_EMBEDDING_INPUTS)
      throw new RangeError(`an embeddings request takes 1 to ${MAX_EMBEDDING_INPUTS} inputs, got ${n}`);
    const vocab = this.model.info.vocabSize;
    for (const [i, input] of req.inputs.entries()) {
      if (input.length === 0) throw new RangeError(`input ${i} is empty`);
      if (input.length > this.opts.contextTokens)
        throw new RangeError(
          `input ${i} has ${input.length} tokens; the limit is ${this.opts.contextTokens} per input`,
        );
      for (const id of input)
        if (!Number.isInteger(id) || id < 0 || id >= vocab)
          throw new RangeError(`input ${i} holds ${id}, not a token id below ${vocab}`);
    }
    const job: Job = {
      req,
      vectors: new Float32Array(n * this.dims),
      left: n,
      promptTokens: req.inputs.reduce((a, x) => a + x.length, 0),
    };
    this.jobs.set(req.id, job);
    for (const [index, tokens] of req.inputs.entries())
      this.pending.push({
        job,
        index,
        tokens,
        seqId: -1,
        computed: 0,
        pooled: new Float64Array(0),
        taking: 0,
        firstOut: 0,
      });
  }

  /** Ends a job now, freeing its sequences; unknown ids are ignored. */
  cancel(id: string): EngineEvent | null {
    const job = this.jobs.get(id);
    if (job === undefined) return null;
    this.drop(job);
    return { type: "error", id, message: "embeddings cancelled" };
  }

  /**
   * One decode call over the inputs in progress, opening sequences for waiting inputs while
   * slots, rows and `freePages` (KV pages nobody else needs this step) allow.
   */
  step(freePages: number): StepEvent[] {
    const events: StepEvent[] = [];
    this.admit(freePages);
    for (;;) {
      const rows = this.pack();
      if (rows === 0) return events;
      try {
        this.model.decodeHidden(this.batch, this.hidden);
        break;
      } catch (err) {
        // The pool is fuller than admission thought: the newest input that holds nothing waits
        // for a later step; with none, the last input's job fails.
        if (err instanceof KvFullError && this.unadmitNewest()) continue;
        const failed = err instanceof KvFullError ? [this.active.at(-1) as Input] : this.active;
        const message =
          err instanceof KvFullError ? "KV cache too small for this input" : (err as Error).message;
        for (const job of new Set(failed.map((x) => x.job))) {
          this.drop(job);
          events.push({
            type: "error",
            id: job.req.id,
            message,
            ...(err instanceof KvFullError ? { code: "kv_full" as const } : {}),
          });
        }
      }
    }
    this.steps++;
    this.pool(events);
    return events;
  }

  private pagesFor(tokens: number): number {
    return Math.ceil(tokens / this.pageTokens);
  }

  private admit(freePages: number): void {
    let free = freePages;
    let rows = 0;
    for (const a of this.active) {
      free -= this.pagesFor(a.tokens.length) - this.pagesFor(a.computed);
      rows += a.tokens.length - a.computed;
    }
    while (
      this.pending.length > 0 &&
      this.active.length < this.opts.sequences &&
      rows < this.opts.stepTokens
    ) {
      const next = this.pending[0] as Input;
      const need = this.pagesFor(next.tokens.length);
      // One input always runs when none does, so a large one is not starved by small ones.
      if (need > free && this.active.length > 0) return;
      this.pending.shift();
      next.seqId = this.model.seqCreate();
      next.pooled = new Float64Array(this.dims);
      this.active.push(next);
      free -= need;
      rows += next.tokens.length;
    }
  }

  /** Puts the newest input that computed nothing back in front of the queue. */
  private unadmitNewest(): boolean {
    if (this.active.length <= 1) return false;
    const k = this.active.findLastIndex((a) => a.computed === 0);
    if (k < 0) return false;
    const [a] = this.active.splice(k, 1) as [Input];
    this.model.seqFree(a.seqId);
    a.seqId = -1;
    this.pending.unshift(a);
    return true;
  }

  /** Whether the hidden state at `pos` of an input goes into its embedding. */
  private pools(a: Input, pos: number): boolean {
    const pooling = this.model.info.pooling;
    return pooling === "mean" || (pooling === "cls" ? pos === 0 : pos === a.tokens.length - 1);
  }

  /** Fills the batch with the next rows of the inputs in progress; returns the rows. */
  private pack(): number {
    const b = this.batch;
    let rows = 0;
    let outRows = 0;
    for (const a of this.active) {
      const take = Math.min(a.tokens.length - a.computed, this.opts.stepTokens - rows);
      a.taking = take;
      a.firstOut = outRows;
      for (let k = 0; k < take; k++) {
        const pos = a.computed + k;
        b.tokens[rows] = a.tokens[pos] as number;
        b.positions[rows] = pos;
        b.seqIds[rows] = a.seqId;
        const want = this.pools(a, pos);
        b.wantLogits[rows] = want ? 1 : 0;
        if (want) outRows++;
        rows++;
      }
    }
    b.length = rows;
    if (this.hidden.length < outRows * this.dims)
      this.hidden = new Float32Array(this.opts.stepTokens * this.dims);
    return rows;
  }

  /** Adds the step's hidden rows to their inputs; finished inputs and jobs go out. */
  private pool(events: StepEvent[]): void {
    const d = this.dims;
    for (const a of [...this.active]) {
      const end = a.computed + a.taking;
      let out = a.firstOut;
      for (let pos = a.computed; pos < end; pos++) {
        if (!this.pools(a, pos)) continue;
        const row = this.hidden.subarray(out * d, (out + 1) * d);
        for (let j = 0; j < d; j++) a.pooled[j] = (a.pooled[j] as number) + (row[j] as number);
        out++;
      }
      a.computed = end;
      a.taking = 0;
      if (a.computed < a.tokens.length) continue;
      this.finish(a, events);
    }
  }

  private finish(a: Input, events: StepEvent[]): void {
    this.active.splice(this.active.indexOf(a), 1);
    this.model.seqFree(a.seqId);
    a.seqId = -1;
    this.inputsDone++;
    // The mean's division cancels in the normalisation; only the direction is kept.
    let sum = 0;
    for (const x of a.pooled) sum += x * x;
    const scale = sum > 0 ? 1 / Math.sqrt(sum) : 0;
    const v = a.job.vectors.subarray(a.index * this.dims, (a.index + 1) * this.dims);
    for (let j = 0; j < this.dims; j++) v[j] = (a.pooled[j] as number) * scale;
    a.pooled = new Float64Array(0);
    const job = a.job;
    if (--job.left > 0) return;
    this.jobs.delete(job.req.id);
    events.push({
      type: "embeddings",
      id: job.req.id,
      vectors: job.vectors,
      dims: this.dims,
      promptTokens: job.promptTokens,
    });
  }

  /** Forgets a job: its waiting inputs leave the queue and its running ones free their KV. */
  private drop(job: Job): void {
    this.jobs.delete(job.req.id);
    for (let i = this.pending.length - 1; i >= 0; i--)
      if (this.pending[i]?.job === job) this.pending.splice(i, 1);
    for (const a of [...this.active]) {
      if (a.job !== job) continue;
      this.active.splice(this.active.indexOf(a), 1);
      this.model.seqFree(a.seqId);
      a.seqId = -1;
    }
  }
}
