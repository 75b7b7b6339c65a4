// The one way a model file is opened, by the library (loadModel), `hearth serve` and the engine
// worker: the GGUF header parsed once and checked (tensor types hearth computes, a tokenizer),
// the tokenizer and chat template built from it, and the native model opened from the same parse
// with its vocabulary checked against the tokenizer's.
import { ChatTemplate } from "./chat/index.ts";
import {
  computableGgmlTypes,
  GgufError,
  type GgufFile,
  GgufMetadata,
  ggmlTypes,
  readGguf,
} from "./gguf/index.ts";
import { type NativeModelOptions, openNativeModel } from "./native/model.ts";
import type { DraftingNativeModel } from "./native/model-api.ts";
import { Tokenizer } from "./tokenizer/index.ts";
import { quoteUntrusted } from "./untrusted.ts";

/** A model file read and checked, before any native memory is taken. */
export interface ModelFile {
  /** Path of the .gguf file. */
  path: string;
  /** The parsed header (metadata, tensor table); plain data, so it can cross to a worker. */
  file: GgufFile;
  metadata: GgufMetadata;
  tokenizer: Tokenizer;
  /** The model's chat template (a fallback when the file has none: src/chat). */
  chatTemplate: ChatTemplate;
  /** The context the model was trained for (0 when the file does not say). */
  trainedContextTokens: number;
}

/** Checks the parts of a GGUF file the runtime needs before the native side sees it. */
function validateFile(path: string, file: GgufFile): void {
  for (const t of file.tensors) {
    if (!computableGgmlTypes.has(t.typeId)) {
      const type = ggmlTypes.get(t.typeId)?.name ?? `type ${t.typeId}`;
      const ok = [...computableGgmlTypes].map((id) => ggmlTypes.get(id)?.name ?? id).join(", ");
      throw new GgufError(`${path}: tensor "${t.name}" is ${type}, which hearth cannot compute yet (${ok})`);
    }
  }
  const md = new GgufMetadata(file.metadata);
  if (!md.has("tokenizer.ggml.tokens")) {
    throw new GgufError(`${path}: the file has no tokenizer (missing key "tokenizer.ggml.tokens")`);
  }
}

/**
 * Reads and checks a model file. `parsed`: its header parsed already (by the thread that
 * started a worker), so it is not read again.
 * @throws GgufError for a malformed or unsupported file.
 */
export function readModelFile(path: string, parsed?: GgufFile): ModelFile {
  const file = parsed ?? readGguf(path);
  validateFile(path, file);
  const metadata = new GgufMetadata(file.metadata);
  const tokenizer = Tokenizer.fromGguf(metadata);
  const chatTemplate = ChatTemplate.fromGguf(metadata, tokenizer);
  const arch = metadata.stringOr("general.architecture", "");
  const trainedContextTokens = metadata.numberOr(`${arch}.context_length`, 0);
  return { path, file, metadata, tokenizer, chatTemplate, trainedContextTokens };
}

/**
 * Opens the native model of a checked file (weights, KV pool, threads).
 * @throws GgufError when the model's vocabulary is not the tokenizer's, NativeError from the
 *   native side.
 */
export function openModel(model: ModelFile, opts: NativeModelOptions): DraftingNativeModel {
  const native = openNativeModel(model.path, opts, model.file);
  if (native.info.vocabSize !== model.tokenizer.vocabSize) {
    native.close();
    throw new GgufError(
      `${model.path}: the tokenizer has ${model.tokenizer.vocabSize} tokens but the model's vocabulary is ${native.info.vocabSize}`,
    );
  }
  return native;
}

/** A draft model whose vocabulary is not the target's: it cannot propose the target's tokens. */
export class DraftVocabularyError extends GgufError {
  override name = "DraftVocabularyError";
}

/**
 * Checks that a draft model speaks the target's vocabulary: the same tokenizer kind, size,
 * BOS/EOS and token text for every id (speculative decoding compares token ids).
 * @throws DraftVocabularyError naming the first difference.
 */
export function checkDraftVocabulary(target: ModelFile, draft: ModelFile): void {
  const t = target.tokenizer;
  const d = draft.tokenizer;
  const differ = (what: string) =>
    new DraftVocabularyError(
      `draft model ${draft.path} cannot draft for ${target.path}: its vocabulary differs (${what}); the draft model must use the target's tokenizer`,
    );
  if (t.kind !== d.kind) throw differ(`tokenizer ${d.kind} vs ${t.kind}`);
  if (t.vocabSize !== d.vocabSize) throw differ(`${d.vocabSize} tokens vs ${t.vocabSize}`);
  if (t.bosId !== d.bosId || t.eosId !== d.eosId)
    throw differ(`BOS/EOS ${d.bosId}/${d.eosId} vs ${t.bosId}/${t.eosId}`);
  for (let id = 0; id < t.vocabSize; id++) {
    if (t.tokenText(id) !== d.tokenText(id))
      throw differ(
        `token ${id} is ${quoteUntrusted(d.tokenText(id))} in the draft, ${quoteUntrusted(t.tokenText(id))} in the target`,
      );
  }
}
