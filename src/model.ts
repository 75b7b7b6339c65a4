// loadModel: one call from a model reference to everything a session needs (file, native model,
// tokenizer, chat template), with the runtime options resolved and validated once.
import { ChatTemplate } from "./chat/index.ts";
import { DraftModel } from "./engine/draft-model.ts";
import { embeddingInput } from "./engine/embed.ts";
import { LocalEngine } from "./engine/local.ts";
import type { OwnedSequence } from "./engine/request.ts";
import { Scheduler } from "./engine/scheduler.ts";
import { type GgufFile, GgufMetadata } from "./gguf/index.ts";
import { KNOWN_MODELS, type PullOptions, pullModel } from "./gguf/pull.ts";
import { checkDraftVocabulary, openModel, readModelFile } from "./model-file.ts";
import {
  defaultThreads as nativeDefaultThreads,
  nativeLimits,
  sequencesWithEmbeddings,
} from "./native/limits.ts";
import { createBatch, type NativeModelOptions } from "./native/model.ts";
import type { KvStats, ModelInfo, NativeDrafting, NativeModel } from "./native/model-api.ts";
import { checkOptionKeys } from "./option-keys.ts";
import { Session, type SessionOptions } from "./session.ts";
import type { Tokenizer } from "./tokenizer/index.ts";

/** Default context of a session when the model's trained context is larger. */
export const DEFAULT_CONTEXT_TOKENS = 4096;

/** Options of {@link loadModel}. Every field is optional; defaults are documented per field. */
export interface LoadModelOptions {
  /** Compute threads (the calling thread included). Default: `$HEARTH_THREADS`, else every core. */
  threads?: number;
  /**
   * Most tokens one session holds in its KV cache before the context shifts (or, with shift
   * off, before a clear error). Default: the trained context, at most 4,096.
   */
  contextTokens?: number;
  /**
   * KV pool size in pages of `kvPageTokens()` tokens, allocated once and shared by every session of the
   * model. Default: enough for one full context of each of `maxSessions` sessions.
   */
  kvPages?: number;
  /** Storage of the KV cache: "f16" (default) or "q8_0" (half the memory). */
  kvType?: "f16" | "q8_0";
  /** Most tokens one forward call carries; prefill is split into chunks of this size. Default 512. */
  maxBatchTokens?: number;
  /** Most sessions open at once (each holds one KV sequence). Default 4. */
  maxSessions?: number;
  /**
   * Deterministic mode: sampling uses a fixed seed (0) unless one is given, so the same input
   * gives the same output run after run. (The native forward is already independent of the
   * thread count and of what else is in a batch.) Default false.
   */
  deterministic?: boolean;
  /** Passed to {@link pullModel}: model cache directory, download progress, abort signal. */
  pull?: PullOptions;
  /**
   * A chat template (Jinja source) to use instead of the model's `tokenizer.chat_template`
   * (e.g. one with a tools section: docs/tools.md). Default: the model's.
   */
  chatTemplate?: string;
  /**
   * A draft model for speculative decoding (a known name, a .gguf path or a URL): a smaller model
   * with the target's vocabulary (checked here) runs beside it in the same engine, with its own
   * KV, and proposes tokens the target verifies in its step. Generations then draft with it unless
   * they say `speculative: false` (docs/speculative.md). Default: none.
   */
  draft?: string;
}

/** Every key of {@link LoadModelOptions}: anything else passed to loadModel is a typo. */
const LOAD_MODEL_OPTION_KEYS = Object.keys({
  threads: true,
  contextTokens: true,
  kvPages: true,
  kvType: true,
  maxBatchTokens: true,
  maxSessions: true,
  deterministic: true,
  pull: true,
  chatTemplate: true,
  draft: true,
} satisfies Record<keyof LoadModelOptions, true>);

/** The options a {@link Model} runs with, after defaults and validation. */
export interface ResolvedModelOptions {
  threads: number;
  contextTokens: number;
  kvPages: number;
  kvType: "f16" | "q8_0";
  maxBatchTokens: number;
  maxSessions: number;
  deterministic: boolean;
}

/** A bad option value, named in the message; nothing was loaded. */
export class ModelOptionsError extends RangeError {
  override name = "ModelOptionsError";
}

/** A loaded model: the GGUF file, the native forward pass, the tokenizer and the chat template. */
export class Model {
  /** Absolute path of the .gguf file. */
  readonly path: string;
  readonly file: GgufFile;
  readonly metadata: GgufMetadata;
  readonly info: ModelInfo;
  readonly tokenizer: Tokenizer;
  /** The model's chat template (when the file has none, Gemma's turns for a vocabulary that has their tokens, else ChatML: see `chatTemplate.isFallback`). */
  readonly chatTemplate: ChatTemplate;
  readonly options: ResolvedModelOptions;
  /** The native model; sessions share it. Exposed for the engine and for tests. */
  readonly native: NativeModel;
  /** The draft model (loadModel's `draft` option), or null. */
  readonly draft: { path: string; native: NativeModel & NativeDrafting } | null;
  private draftRunner: DraftModel | null = null;
  private readonly sessions = new Set<Session>();
  private local: LocalEngine | null = null;
  private closed = false;

  /** @internal Use {@link loadModel}. */
  constructor(parts: {
    path: string;
    file: GgufFile;
    native: NativeModel;
    tokenizer: Tokenizer;
    chatTemplate: ChatTemplate;
    options: ResolvedModelOptions;
    draft?: { path: string; native: NativeModel & NativeDrafting } | null;
  }) {
    this.path = parts.path;
    this.file = parts.file;
    this.metadata = new GgufMetadata(parts.file.metadata);
    this.native = parts.native;
    this.info = parts.native.info;
    this.tokenizer = parts.tokenizer;
    this.chatTemplate = parts.chatTemplate;
    this.options = parts.options;
    this.draft = parts.draft ?? null;
  }

  /** The model's name from its metadata (`general.name`), else the file name. */
  get name(): string {
    return this.metadata.stringOr("general.name", this.path.split("/").pop() ?? this.path);
  }

  /**
   * Opens a session: one KV sequence rented from the pool until {@link Session.close}.
   * An explicit `contextTokens` must fit in the KV pool (`kvPages` pages of `kvPageTokens()` tokens).
   */
  createSession(opts: SessionOptions = {}): Session {
    if (this.closed) throw new Error("model is closed");
    if (this.sessions.size >= this.options.maxSessions) {
      throw new Error(
        `cannot open more than ${this.options.maxSessions} sessions at once (close one, or load the model with a larger maxSessions)`,
      );
    }
    const session = new Session(this, opts, () => this.sessions.delete(session));
    this.sessions.add(session);
    return session;
  }

  /**
   * The in-process engine every session of this model submits to: sessions generating at once
   * share its steps (one forward pass for all of them).
   */
  get engine(): LocalEngine {
    if (this.local === null) {
      const pool = this.native.kvStats();
      if (this.draft !== null)
        this.draftRunner = new DraftModel(this.draft.native, this.options.maxBatchTokens);
      const scheduler = new Scheduler(
        this.native,
        this.tokenizer,
        {
          maxRunning: this.options.maxSessions,
          maxQueued: 0,
          stepTokens: this.options.maxBatchTokens,
          // A session's own contextTokens bounds it; the pool bounds them all.
          contextTokens: pool.pagesTotal * pool.pageTokens,
          embedSequences: sequencesWithEmbeddings(this.options.maxSessions).embedding,
        },
        createBatch(this.options.maxBatchTokens),
        this.draftRunner,
      );
      this.local = new LocalEngine(scheduler);
    }
    return this.local;
  }

  /** @internal A session's KV sequence is gone: the draft model lets go of its own for it. */
  forgetSequence(kv: OwnedSequence): void {
    this.draftRunner?.release(kv);
  }

  /**
   * Embeddings of texts: each pooled from the model's final hidden states as its GGUF says
   * (`<arch>.pooling_type`; the mean of every token's for a decoder model) and L2-normalised,
   * `info.embeddingLength` floats. Many texts are computed together (one forward pass for up to
   * 64 of them, within `maxBatchTokens`), between the steps of sessions generating at once.
   * @throws RangeError for an empty text, more than 2,048 texts, or a text longer than the
   *   model's `contextTokens`.
   */
  embed(text: string): Promise<Float32Array>;
  embed(texts: readonly string[]): Promise<Float32Array[]>;
  async embed(input: string | readonly string[]): Promise<Float32Array | Float32Array[]> {
    if (this.closed) throw new Error("model is closed");
    const texts = typeof input === "string" ? [input] : input;
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== "string"))
      throw new TypeError("embed takes a string or an array of strings");
    const ids = texts.map((t, i) => embeddingInput(this.tokenizer, t, i));
    for (const [i, x] of ids.entries())
      if (x.length > this.options.contextTokens)
        throw new RangeError(
          `input ${i} has ${x.length} tokens; the limit is ${this.options.contextTokens} (contextTokens)`,
        );
    const ev = await this.engine.embed(ids);
    const out = ids.map((_, i) => ev.vectors.slice(i * ev.dims, (i + 1) * ev.dims));
    return typeof input === "string" ? (out[0] as Float32Array) : out;
  }

  /** Number of sessions currently open. */
  get openSessions(): number {
    return this.sessions.size;
  }

  /** KV pool occupancy (pages of `kvPageTokens()` tokens). */
  kvStats(): KvStats {
    return this.native.kvStats();
  }

  /** Text to token ids (BOS added as the model asks unless `addSpecial` is false). */
  encode(text: string, opts: { addSpecial?: boolean; parseSpecial?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, opts);
  }

  /** Token ids to text. */
  decode(ids: ArrayLike<number>): string {
    return this.tokenizer.decode(ids);
  }

  /** Closes every open session and frees the native model (weights mapping, KV pool, threads). */
  close(): void {
    if (this.closed) return;
    for (const s of [...this.sessions]) s.close();
    this.local?.abortEmbeddings("model closed");
    this.closed = true;
    this.native.close();
    this.draft?.native.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

function positiveInt(name: string, v: unknown, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0 || v > max) {
    throw new ModelOptionsError(`${name} must be an integer in [1, ${max}], got ${String(v)}`);
  }
  return v;
}

/** The default thread count: `$HEARTH_THREADS` when set (validated), else every core. */
export function defaultThreads(): number {
  try {
    return nativeDefaultThreads();
  } catch (err) {
    throw err instanceof RangeError ? new ModelOptionsError(err.message) : err;
  }
}

/** Applies defaults and checks every option against the model's shape. */
export function resolveModelOptions(
  opts: LoadModelOptions,
  info: { contextLength: number },
): ResolvedModelOptions {
  const limits = nativeLimits();
  const threads =
    opts.threads === undefined ? defaultThreads() : positiveInt("threads", opts.threads, limits.maxThreads);
  const trained = info.contextLength > 0 ? info.contextLength : DEFAULT_CONTEXT_TOKENS;
  const contextTokens =
    opts.contextTokens === undefined
      ? Math.min(trained, DEFAULT_CONTEXT_TOKENS)
      : positiveInt("contextTokens", opts.contextTokens, 1 << 20);
  const maxSessions =
    opts.maxSessions === undefined ? 4 : positiveInt("maxSessions", opts.maxSessions, limits.maxSequences);
  const kvPages =
    opts.kvPages === undefined
      ? Math.ceil(contextTokens / limits.kvPageTokens) * maxSessions
      : positiveInt("kvPages", opts.kvPages, limits.maxKvPages);
  const maxBatchTokens =
    opts.maxBatchTokens === undefined
      ? 512
      : positiveInt("maxBatchTokens", opts.maxBatchTokens, limits.maxBatchTokens);
  const kvType = opts.kvType ?? "f16";
  if (kvType !== "f16" && kvType !== "q8_0") {
    throw new ModelOptionsError(`kvType must be "f16" or "q8_0", got ${JSON.stringify(kvType)}`);
  }
  if (opts.deterministic !== undefined && typeof opts.deterministic !== "boolean") {
    throw new ModelOptionsError(`deterministic must be a boolean, got ${String(opts.deterministic)}`);
  }
  return {
    threads,
    contextTokens,
    kvPages,
    kvType,
    maxBatchTokens,
    maxSessions,
    deterministic: opts.deterministic ?? false,
  };
}

/**
 * Loads a model for generation.
 *
 * @param ref - a known model name (default: SmolLM2-135M-Instruct Q4_1, fetched into the model
 *   cache on first use), a local .gguf path, or an http(s) URL.
 * @param opts - runtime options ({@link LoadModelOptions}).
 * @returns a {@link Model}; call {@link Model.close} when done.
 * @throws GgufError for a malformed or unsupported file, ModelOptionsError for a bad option,
 *   PullError when the model cannot be fetched.
 */
export async function loadModel(ref?: string, opts: LoadModelOptions = {}): Promise<Model> {
  // Checked before anything is fetched or read.
  if (ref !== undefined && typeof ref !== "string") {
    const names = Object.keys(KNOWN_MODELS).join(", ");
    throw new TypeError(
      `loadModel: the model must be a string (a .gguf path, a known model name (${names}) or an http(s) URL), got ${typeof ref} ${String(ref)}`,
    );
  }
  checkOptionKeys(
    "loadModel options",
    opts,
    LOAD_MODEL_OPTION_KEYS,
    (message) => new ModelOptionsError(message),
  );
  if (
    opts.chatTemplate !== undefined &&
    (typeof opts.chatTemplate !== "string" || opts.chatTemplate.trim() === "")
  )
    throw new ModelOptionsError("loadModel: chatTemplate must be a non-empty Jinja text");
  if (opts.draft !== undefined && (typeof opts.draft !== "string" || opts.draft.trim() === ""))
    throw new ModelOptionsError(
      "loadModel: draft must be a model reference (a .gguf path, a known model name or an http(s) URL)",
    );
  const path = await pullModel(ref, opts.pull);
  const mf = readModelFile(path);
  const options = resolveModelOptions(opts, { contextLength: mf.trainedContextTokens });
  // The target keeps KV sequences for embeddings beside its sessions' (the draft needs none).
  const native = openModel(mf, {
    ...runtimeOf(options),
    maxSequences: sequencesWithEmbeddings(options.maxSessions).total,
  });
  let draft: { path: string; native: NativeModel & NativeDrafting } | null = null;
  if (opts.draft !== undefined) {
    try {
      draft = await openDraft(opts.draft, mf, options, opts.pull);
    } catch (err) {
      native.close();
      throw err;
    }
  }
  const { file, tokenizer } = mf;
  const chatTemplate =
    opts.chatTemplate === undefined
      ? mf.chatTemplate
      : ChatTemplate.forTokenizer(opts.chatTemplate, tokenizer);
  return new Model({ path, file, native, tokenizer, chatTemplate, options, draft });
}

/** The native model's runtime options (a draft model runs with its target's). */
function runtimeOf(options: ResolvedModelOptions): NativeModelOptions {
  return {
    threads: options.threads,
    kvPages: options.kvPages,
    kvType: options.kvType,
    maxBatchTokens: options.maxBatchTokens,
    maxSequences: options.maxSessions,
  };
}

/** Opens a draft model for `target` with the target's runtime options, its vocabulary checked first. */
async function openDraft(
  ref: string,
  target: ReturnType<typeof readModelFile>,
  options: ResolvedModelOptions,
  pull: PullOptions | undefined,
): Promise<{ path: string; native: NativeModel & NativeDrafting }> {
  const path = await pullModel(ref, pull);
  const mf = readModelFile(path);
  checkDraftVocabulary(target, mf);
  const native = openModel(mf, runtimeOf(options));
  return { path, native };
}
