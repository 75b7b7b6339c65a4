// GGUF: reader, metadata access, tensor types.
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
