// GGUF: reader, metadata access, Llama model configuration, tensor types.

export {
  type LlamaConfig,
  type LlamaConfigOptions,
  type LlamaLayerTensors,
  type LlamaTensors,
  llamaConfigFromGguf,
  ModelConfigError,
  type Pooling,
  type RopeScalingType,
  type RopeType,
} from "./llama-config.ts";
export {
  GgufError,
  type GgufFile,
  GgufMetadata,
  type GgufTensorInfo,
  type GgufValue,
  parseGguf,
  readGguf,
} from "./reader.ts";
export { computableGgmlTypes, type GgmlTypeInfo, ggmlTypes } from "./types.ts";
