// The vocabulary as llama.cpp's vocabulary loader reads it from GGUF metadata: tokens, scores, token
// types (with llama.cpp's overrides by text), special ids and the flags that steer encoding and
// decoding, end-of-generation tokens, and the order special tokens are matched in raw text.

import type { GgufMetadata } from "../gguf/index.ts";
import { PreTokenizer } from "./pretokenize.ts";

/** `tokenizer.ggml.token_type` values (llama.cpp's LLAMA_TOKEN_TYPE_*). */
export const TokenType = {
  UNDEFINED: 0,
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

export class TokenizerError extends Error {
  override name = "TokenizerError";
}

/**
 * `spm`: SentencePiece (`tokenizer.ggml.model = llama`: Llama 2, Gemma). `bpe`: byte-level BPE
 * (`gpt2`), or SentencePiece-style BPE over raw UTF-8 (`gemma4`).
 */
export type VocabKind = "spm" | "bpe";

// Texts llama.cpp treats as end-of-generation (and forces to CONTROL) whatever their type.
const EOG_TEXTS = new Set([
  "<|eot_id|>",
  "<|im_end|>",
  "<|end|>",
  "<|return|>",
  "<|call|>",
  "<|flush|>",
  "<|calls|>",
  "<end_of_turn>",
  "<|endoftext|>",
  "</s>",
  "<|eom_id|>",
  "<EOT>",
  "_<EOT>",
  "[EOT]",
  "[EOS]",
  "<|end_of_text|>",
  "<end_of_utterance>",
  "<eos>",
  "<turn|>",
  "<|tool_response>",
  "<｜end▁of▁sentence｜>",
  "[e~[",
]);
// Fill-in-the-middle tokens found by text are forced to CONTROL; pad / repo / file-separator ones
// also end generation. Each list is one role, searched when the file does not give its id.
const FIM_ROLES: { key: string; texts: string[]; eog: boolean }[] = [
  {
    key: "fim_pre",
    texts: [
      "<|fim_prefix|>",
      "<fim-prefix>",
      "<fim_prefix>",
      "<｜fim▁begin｜>",
      "<PRE>",
      "▁<PRE>",
      "<|code_prefix|>",
      "<|prefix|>",
    ],
    eog: false,
  },
  {
    key: "fim_suf",
    texts: [
      "<|fim_suffix|>",
      "<fim-suffix>",
      "<fim_suffix>",
      "<｜fim▁hole｜>",
      "<SUF>",
      "▁<SUF>",
      "<|code_suffix|>",
      "<|suffix|>",
    ],
    eog: false,
  },
  {
    key: "fim_mid",
    texts: [
      "<|fim_middle|>",
      "<fim-middle>",
      "<fim_middle>",
      "<｜fim▁end｜>",
      "<MID>",
      "▁<MID>",
      "<|code_middle|>",
      "<|middle|>",
    ],
    eog: false,
  },
  { key: "fim_pad", texts: ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"], eog: true },
  {
    key: "fim_rep",
    texts: ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"],
    eog: true,
  },
  { key: "fim_sep", texts: ["<|file_sep|>"], eog: true },
];
// Deprecated key names of the first three roles.
const FIM_OLD_KEYS: Record<string, string> = { fim_pre: "prefix", fim_suf: "suffix", fim_mid: "middle" };
// gpt-oss: always rendered, never control.
const ALWAYS_RENDERED = ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"];

export class Vocab {
  readonly kind: VocabKind;
  readonly tokens: readonly string[];
  readonly scores: Float32Array;
  /** Token types after llama.cpp's overrides (EOG / FIM texts forced to CONTROL, ...). */
  readonly types: Int32Array;
  /** Token id by text; a later duplicate wins, as in llama.cpp's token_to_id. */
  readonly ids: Map<string, number>;
  /** BPE merges (`tokenizer.ggml.merges`); empty for SentencePiece. */
  readonly merges: readonly string[];
  /** The pre-tokenizer of a BPE vocabulary; null for SentencePiece. */
  readonly pre: PreTokenizer | null;
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  readonly addBos: boolean;
  readonly addEos: boolean;
  /** SentencePiece: a space is put before text that starts the input or follows a special token. */
  readonly addSpacePrefix: boolean;
  /** Spaces are written U+2581 in token texts (SentencePiece, and SentencePiece-style BPE). */
  readonly escapeWhitespace: boolean;
  readonly cleanSpaces: boolean;
  readonly eogIds: ReadonlySet<number>;
  /** Control, user-defined and unknown tokens, longest text first: the order raw text is split in. */
  readonly specialIds: readonly number[];
  /** Whitespace before (lstrip) or after (rstrip) a special token in raw text is dropped. */
  readonly lstrip: Uint8Array;
  readonly rstrip: Uint8Array;

  constructor(md: GgufMetadata) {
    const model = md.stringOr("tokenizer.ggml.model", "");
    if (model === "") throw new TokenizerError('missing "tokenizer.ggml.model": the file has no tokenizer');
    if (model !== "llama" && model !== "gpt2" && model !== "gemma4") {
      throw new TokenizerError(
        `unsupported tokenizer model "${model}" (tokenizer.ggml.model); supported: llama (SentencePiece), gpt2 (byte-level BPE), gemma4`,
      );
    }
    this.kind = model === "llama" ? "spm" : "bpe";
    const tokens = md.strings("tokenizer.ggml.tokens");
    const n = tokens.length;
    if (n === 0) throw new TokenizerError("tokenizer.ggml.tokens is empty");
    // llama.cpp renames empty tokens so that every text is distinct and non-empty.
    this.tokens = tokens.some((t) => t === "")
      ? tokens.map((t, i) => (t === "" ? `[EMPTY_${i}]` : t))
      : tokens;
    this.ids = new Map();
    for (let i = 0; i < n; i++) this.ids.set(this.tokens[i] as string, i);

    const scores = readScores(md);
    if (scores !== undefined && scores.length < n) {
      throw new TokenizerError(`tokenizer.ggml.scores has ${scores.length} entries for ${n} tokens`);
    }
    this.scores = scores ?? new Float32Array(n);
    const types = md.int32s("tokenizer.ggml.token_type");
    if (types !== undefined && types.length < n) {
      throw new TokenizerError(`tokenizer.ggml.token_type has ${types.length} entries for ${n} tokens`);
    }
    this.types = types ? Int32Array.from(types.subarray(0, n)) : new Int32Array(n).fill(TokenType.NORMAL);

    let pre: PreTokenizer | null = null;
    if (this.kind === "bpe") {
      if (!md.has("tokenizer.ggml.merges")) {
        throw new TokenizerError('missing "tokenizer.ggml.merges": a BPE tokenizer needs its merges');
      }
      try {
        pre = PreTokenizer.byName(
          model === "gemma4" ? "gemma4" : md.stringOr("tokenizer.ggml.pre", "default"),
        );
      } catch (e) {
        throw new TokenizerError((e as Error).message);
      }
    }
    this.pre = pre;
    this.merges = this.kind === "bpe" ? md.strings("tokenizer.ggml.merges") : [];
    this.escapeWhitespace = this.kind === "spm" || pre?.rawUtf8 === true;
    this.cleanSpaces = pre?.cleanSpaces ?? false;

    const idOr = (key: string, fallback: number): number => {
      if (!md.has(key)) return fallback;
      const id = md.number(key);
      if (!Number.isInteger(id) || id < 0 || id >= n) {
        throw new TokenizerError(`${key} = ${id} is outside the vocabulary (0..${n - 1})`);
      }
      return id;
    };
    // SentencePiece's conventional ids apply when the file gives none (and they exist).
    const spmDefault = (id: number) => (this.kind === "spm" && id < n ? id : -1);
    this.bosId = idOr("tokenizer.ggml.bos_token_id", pre?.noBos ? -1 : spmDefault(1));
    this.eosId = idOr("tokenizer.ggml.eos_token_id", spmDefault(2));
    this.unkId = idOr("tokenizer.ggml.unknown_token_id", spmDefault(0));
    const addBosDefault = this.kind === "spm" || pre?.addBosDefault === true;
    // Gemma 4's files say false; llama.cpp adds BOS anyway.
    this.addBos = md.boolOr("tokenizer.ggml.add_bos_token", addBosDefault) || pre?.forceBos === true;
    this.addEos = md.boolOr("tokenizer.ggml.add_eos_token", false);
    this.addSpacePrefix = md.boolOr("tokenizer.ggml.add_space_prefix", this.kind === "spm");
    if (this.addBos && this.bosId < 0)
      throw new TokenizerError("add_bos_token is true but bos_token_id is not set");
    if (this.addEos && this.eosId < 0)
      throw new TokenizerError("add_eos_token is true but eos_token_id is not set");

    this.eogIds = this.findEndOfGeneration(idOr);
    this.specialIds = this.sortedSpecialIds();
    this.lstrip = new Uint8Array(n);
    this.rstrip = new Uint8Array(n);
    // Phi-3's special tokens swallow the whitespace after them (llama.cpp sets this by model name).
    const name = md.stringOr("general.name", "").toLowerCase();
    if (name.includes("phi-3") || name.includes("phi3")) {
      for (const id of this.specialIds) this.rstrip[id] = 1;
      const set = (text: string, on: number) => {
        const id = this.ids.get(text);
        if (id !== undefined) this.rstrip[id] = on;
      };
      set("</s>", 1);
      for (const t of ["<unk>", "<s>", "<|endoftext|>"]) set(t, 0);
    }
  }

  get size(): number {
    return this.tokens.length;
  }

  /** The id of a byte's fallback token (`<0xNN>`, else the byte as text), or -1. */
  byteToken(byte: number): number {
    const hex = `<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`;
    return this.ids.get(hex) ?? (byte < 0x80 ? (this.ids.get(String.fromCharCode(byte)) ?? -1) : -1);
  }

  private findEndOfGeneration(idOr: (key: string, fallback: number) => number): Set<number> {
    const eog = new Set<number>();
    const forceControl = (id: number) => {
      if (this.types[id] !== TokenType.CONTROL) this.types[id] = TokenType.CONTROL;
    };
    for (const role of FIM_ROLES) {
      const old = FIM_OLD_KEYS[role.key];
      let id = idOr(`tokenizer.ggml.${role.key}_token_id`, -1);
      if (id < 0 && old !== undefined) id = idOr(`tokenizer.ggml.${old}_token_id`, -1);
      if (id < 0) {
        for (const t of role.texts) {
          const found = this.ids.get(t);
          if (found !== undefined) {
            id = found;
            forceControl(id);
            break;
          }
        }
      }
      if (id >= 0 && role.eog) eog.add(id);
    }
    for (let i = 0; i < this.tokens.length; i++) {
      if (EOG_TEXTS.has(this.tokens[i] as string) && this.ids.get(this.tokens[i] as string) === i) {
        eog.add(i);
        forceControl(i);
      }
    }
    for (const text of ALWAYS_RENDERED) {
      const id = this.ids.get(text);
      if (id !== undefined) this.types[id] = TokenType.USER_DEFINED;
    }
    for (const key of ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]) {
      const id = idOr(key, -1);
      if (id >= 0) eog.add(id);
    }
    if (this.eosId >= 0) eog.add(this.eosId);
    const textOf = (id: number) => this.tokens[id] as string;
    const has = (text: string) => [...eog].some((id) => textOf(id) === text);
    // o200k_harmony / solar-open: "<|end|>" ends a message, not the generation.
    if ((has("<|return|>") && has("<|call|>")) || (has("<|calls|>") && has("<|flush|>"))) {
      for (const id of eog) {
        if (textOf(id) === "<|end|>") {
          eog.delete(id);
          this.types[id] = TokenType.USER_DEFINED;
        }
      }
    }
    // Gemma 4 and PLaMo have an ordinary "</s>".
    if (has("<|tool_response>") || has("<|plamo:eos|>")) {
      for (const id of eog) {
        if (textOf(id) === "</s>") {
          eog.delete(id);
          this.types[id] = TokenType.NORMAL;
        }
      }
    }
    return eog;
  }

  private sortedSpecialIds(): number[] {
    const ids: number[] = [];
    for (let i = 0; i < this.tokens.length; i++) {
      const t = this.types[i];
      if (t === TokenType.CONTROL || t === TokenType.USER_DEFINED || t === TokenType.UNKNOWN) ids.push(i);
    }
    const bytes = new Map(ids.map((id) => [id, Buffer.byteLength(this.tokens[id] as string, "utf8")]));
    return ids.sort((a, b) => (bytes.get(b) as number) - (bytes.get(a) as number) || a - b);
  }
}

/** `tokenizer.ggml.scores`: float32, or int32 as llama.cpp also accepts. */
function readScores(md: GgufMetadata): Float32Array | undefined {
  const v = md.map.get("tokenizer.ggml.scores");
  if (v === undefined || v instanceof Float32Array) return v;
  if (v instanceof Int32Array) return Float32Array.from(v);
  throw new TokenizerError("tokenizer.ggml.scores should be an array of float32 or int32");
}
