// hearth's public library API: load a GGUF model, open sessions, prefill, stream generations.
//
// ```ts
// import { loadModel } from "hearth-llm";
// const model = await loadModel(); // SmolLM2-135M-Instruct Q4_1, fetched on first use
// const session = model.createSession();
// for await (const piece of session.chat([{ role: "user", content: "Hi!" }])) process.stdout.write(piece);
// session.close();
// model.close();
// ```

export { type ChatMessage, ChatTemplate, ChatTemplateError } from "./chat/index.ts";
export { GgufError, GgufMetadata, readGguf } from "./gguf/index.ts";
export {
  DEFAULT_MODEL,
  defaultModelPath,
  PullError,
  type PullOptions,
  type PullProgress,
  pullModel,
} from "./gguf/pull.ts";
export {
  DEFAULT_CONTEXT_TOKENS,
  defaultThreads,
  type LoadModelOptions,
  loadModel,
  Model,
  ModelOptionsError,
  type ResolvedModelOptions,
} from "./model.ts";
export {
  isCompiledBinary,
  type LoadedLibrary,
  libraryCacheDir,
  loadLibrary,
  NativeError,
  NativeLoadError,
} from "./native/lib.ts";
export { kvPageTokens, type NativeLimits, nativeLimits } from "./native/limits.ts";
export { KvFullError, type KvStats, type ModelInfo } from "./native/model-api.ts";
export {
  type CpuVariant,
  hostPlatform,
  PLATFORMS,
  type Platform,
  supportedVariants,
} from "./native/variants.ts";
export { type FinishReason, Sampler, SamplerError, type SamplerOptions } from "./sampling/index.ts";
export {
  ContextFullError,
  type ContextShiftOptions,
  type GenerateFinishReason,
  type GenerateOptions,
  type GenerateResult,
  type PrefillOptions,
  Session,
  type SessionOptions,
  type SessionSamplerOptions,
  SessionStateError,
  type Telemetry,
} from "./session.ts";
export { StreamDecoder, Tokenizer, TokenizerError } from "./tokenizer/index.ts";
