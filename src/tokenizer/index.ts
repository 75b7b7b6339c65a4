// Tokenizer built from GGUF metadata: byte-level BPE, llama.cpp's pre-tokenizers, special tokens,
// decoding and a streaming detokenizer that never emits half a UTF-8 character.

import type { GgufMetadata } from "../gguf/index.ts";
import { BpeModel, byteEncode, charToByte } from "./bpe.ts";
import { PreTokenizer } from "./pretokenize.ts";

export { PreTokenizer } from "./pretokenize.ts";

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

export interface EncodeOptions {
  /** Add BOS / EOS as the model's `add_bos_token` / `add_eos_token` flags say. Default true. */
  addSpecial?: boolean;
  /** Match control-token text (e.g. `<|im_start|>`) in the input as those tokens. Default false. */
  parseSpecial?: boolean;
  /**
   * Applied to each stretch of plain text after the special tokens are split out, before it is
   * tokenized: chat encoding uses it to put back control-token text that a message contained
   * (escaped while the template rendered), so that text stays plain.
   */
  unescape?: (text: string) => string;
}

export interface DecodeOptions {
  /** Render control / unknown tokens as their text instead of dropping them. Default false. */
  special?: boolean;
}

// Token texts llama.cpp treats as end-of-generation (and forces to CONTROL) whatever their type.
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
]);
// Fill-in-the-middle pad / repo / file-separator tokens also end generation in llama.cpp.
const FIM_EOG_TEXTS = [
  ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
  ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"],
  ["<|file_sep|>"],
];

const MAX_WORD_CACHE_ENTRIES = 200_000;

export class Tokenizer {
  readonly vocabSize: number;
  /** BOS token id, or -1 when the model has none. */
  readonly bosId: number;
  /** EOS token id, or -1 when the model has none. */
  readonly eosId: number;
  readonly addBos: boolean;
  readonly addEos: boolean;
  readonly preTokenizer: PreTokenizer;
  /** Every token id that ends generation (EOS, EOT-like and FIM separator tokens). */
  readonly eogIds: ReadonlySet<number>;

  private readonly tokens: readonly string[];
  private readonly types: Int32Array;
  private readonly vocab: Map<string, number>;
  private readonly bpe: BpeModel;
  /** Special tokens matched in raw text, longest text first (llama.cpp's cache_special_tokens order). */
  private readonly specialIds: number[];
  private readonly wordCache = new Map<string, number[]>();
  private readonly pieceCache: (Uint8Array | undefined)[];
  private readonly symbolScratch: string[] = [];

  private constructor(md: GgufMetadata) {
    const model = md.stringOr("tokenizer.ggml.model", "");
    if (model !== "gpt2") {
      throw new TokenizerError(
        model === ""
          ? 'missing "tokenizer.ggml.model": the file has no tokenizer'
          : `unsupported tokenizer model "${model}" (tokenizer.ggml.model); only "gpt2" (byte-level BPE) is supported`,
      );
    }
    this.tokens = md.strings("tokenizer.ggml.tokens");
    const n = this.tokens.length;
    if (n === 0) throw new TokenizerError("tokenizer.ggml.tokens is empty");
    this.vocabSize = n;
    if (!md.has("tokenizer.ggml.merges")) {
      throw new TokenizerError('missing "tokenizer.ggml.merges": a gpt2 (BPE) tokenizer needs its merges');
    }
    const merges = md.strings("tokenizer.ggml.merges");
    const types = md.int32s("tokenizer.ggml.token_type");
    if (types !== undefined && types.length < n) {
      throw new TokenizerError(`tokenizer.ggml.token_type has ${types.length} entries for ${n} tokens`);
    }
    this.types = types ? Int32Array.from(types.subarray(0, n)) : new Int32Array(n).fill(TokenType.NORMAL);
    try {
      this.preTokenizer = PreTokenizer.byName(md.stringOr("tokenizer.ggml.pre", "default"));
    } catch (e) {
      throw new TokenizerError((e as Error).message);
    }

    this.vocab = new Map();
    for (let i = 0; i < n; i++) {
      // Later duplicates win, as in llama.cpp's token_to_id map.
      this.vocab.set(this.tokens[i] as string, i);
    }
    this.bpe = new BpeModel(this.vocab, merges);

    const idOr = (key: string, fallback: number): number => {
      if (!md.has(key)) return fallback;
      const id = md.number(key);
      if (!Number.isInteger(id) || id < 0 || id >= n) {
        throw new TokenizerError(`${key} = ${id} is outside the vocabulary (0..${n - 1})`);
      }
      return id;
    };
    this.bosId = idOr("tokenizer.ggml.bos_token_id", -1);
    this.eosId = idOr("tokenizer.ggml.eos_token_id", -1);
    this.addBos = md.boolOr("tokenizer.ggml.add_bos_token", false);
    this.addEos = md.boolOr("tokenizer.ggml.add_eos_token", false);
    if (this.addBos && this.bosId < 0)
      throw new TokenizerError("add_bos_token is true but bos_token_id is not set");
    if (this.addEos && this.eosId < 0)
      throw new TokenizerError("add_eos_token is true but eos_token_id is not set");

    const eog = new Set<number>();
    const markEog = (id: number) => {
      eog.add(id);
      this.types[id] = TokenType.CONTROL;
    };
    for (let i = 0; i < n; i++) if (EOG_TEXTS.has(this.tokens[i] as string)) markEog(i);
    for (const texts of FIM_EOG_TEXTS) {
      for (const t of texts) {
        const id = this.vocab.get(t);
        if (id !== undefined) {
          markEog(id);
          break;
        }
      }
    }
    for (const key of ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]) {
      const id = idOr(key, -1);
      if (id >= 0) eog.add(id);
    }
    if (this.eosId >= 0) eog.add(this.eosId);
    this.eogIds = eog;

    this.specialIds = [];
    for (let i = 0; i < n; i++) {
      const t = this.types[i];
      if (t === TokenType.CONTROL || t === TokenType.USER_DEFINED || t === TokenType.UNKNOWN) {
        if ((this.tokens[i] as string).length > 0) this.specialIds.push(i);
      }
    }
    const utf8Length = (id: number) => Buffer.byteLength(this.tokens[id] as string, "utf8");
    this.specialIds.sort((a, b) => utf8Length(b) - utf8Length(a) || a - b);
    this.pieceCache = new Array(n);
  }

  static fromGguf(md: GgufMetadata): Tokenizer {
    return new Tokenizer(md);
  }

  /** The raw vocabulary text of a token (byte-level characters for normal tokens). */
  tokenText(id: number): string {
    this.checkId(id);
    return this.tokens[id] as string;
  }

  tokenType(id: number): number {
    this.checkId(id);
    return this.types[id] as number;
  }

  /** Token id of an exact vocabulary text, if any (e.g. "<|im_end|>"). */
  tokenId(text: string): number | undefined {
    return this.vocab.get(text);
  }

  isEndOfGeneration(id: number): boolean {
    return this.eogIds.has(id);
  }

  isControl(id: number): boolean {
    const t = this.types[id];
    return t === TokenType.CONTROL || t === TokenType.UNKNOWN;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== "string") throw new TokenizerError(`encode expects a string, got ${typeof text}`);
    const addSpecial = options.addSpecial ?? true;
    const parseSpecial = options.parseSpecial ?? false;
    // Lone surrogates cannot be UTF-8 encoded; they become U+FFFD as in any UTF-8 conversion.
    const input = text.isWellFormed() ? text : text.toWellFormed();
    const out: number[] = [];
    if (addSpecial && this.addBos) out.push(this.bosId);
    if (input.length > 0) {
      for (const fragment of this.partitionSpecial(input, parseSpecial)) {
        if (typeof fragment === "number") out.push(fragment);
        else this.encodeText(options.unescape ? options.unescape(fragment) : fragment, out);
      }
    }
    if (addSpecial && this.addEos) out.push(this.eosId);
    return out;
  }

  /** Texts that `parseSpecial` matches as tokens (control and unknown tokens), longest first. */
  controlTexts(): string[] {
    return this.specialIds.filter((id) => this.isControl(id)).map((id) => this.tokens[id] as string);
  }

  /**
   * Splits text on special-token texts, longest token first, like llama.cpp's
   * tokenizer_st_partition. Without parseSpecial only user-defined tokens are split out.
   */
  private partitionSpecial(text: string, parseSpecial: boolean): (string | number)[] {
    let fragments: (string | number)[] = [text];
    for (const id of this.specialIds) {
      const t = this.types[id];
      if (!parseSpecial && (t === TokenType.CONTROL || t === TokenType.UNKNOWN)) continue;
      const needle = this.tokens[id] as string;
      let changed = false;
      const next: (string | number)[] = [];
      for (const f of fragments) {
        if (typeof f === "number" || f.indexOf(needle) < 0) {
          next.push(f);
          continue;
        }
        changed = true;
        let start = 0;
        for (let at = f.indexOf(needle); at >= 0; at = f.indexOf(needle, start)) {
          if (at > start) next.push(f.slice(start, at));
          next.push(id);
          start = at + needle.length;
        }
        if (start < f.length) next.push(f.slice(start));
      }
      if (changed) fragments = next;
    }
    return fragments;
  }

  private encodeText(text: string, out: number[]): void {
    const cache = this.wordCache;
    const bpe = this.bpe;
    const ignoreMerges = this.preTokenizer.ignoreMerges;
    const scratch = this.symbolScratch;
    this.preTokenizer.split(text, (word) => {
      const cached = cache.get(word);
      if (cached !== undefined) {
        for (let i = 0; i < cached.length; i++) out.push(cached[i] as number);
        return;
      }
      scratch.length = 0;
      byteEncode(word, scratch);
      const ids: number[] = [];
      bpe.encodeSymbols(scratch, ids, ignoreMerges);
      if (cache.size >= MAX_WORD_CACHE_ENTRIES) cache.clear();
      cache.set(word, ids);
      for (let i = 0; i < ids.length; i++) out.push(ids[i] as number);
    });
  }

  /**
   * The bytes a token stands for. Control and unknown tokens give their text only when `special`;
   * unused and undefined tokens give nothing (llama.cpp's token_to_piece).
   */
  tokenBytes(id: number, special = false): Uint8Array {
    this.checkId(id);
    const t = this.types[id];
    if ((t === TokenType.CONTROL || t === TokenType.UNKNOWN) && !special) return EMPTY;
    let piece = this.pieceCache[id];
    if (piece === undefined) {
      piece = this.computePiece(id);
      this.pieceCache[id] = piece;
    }
    return piece;
  }

  private computePiece(id: number): Uint8Array {
    const text = this.tokens[id] as string;
    switch (this.types[id]) {
      case TokenType.CONTROL:
      case TokenType.UNKNOWN:
      case TokenType.USER_DEFINED:
        return utf8Encoder.encode(text);
      case TokenType.NORMAL: {
        const bytes: number[] = [];
        for (const ch of text) {
          const cp = ch.codePointAt(0) as number;
          const b = charToByte.get(cp);
          if (b !== undefined) bytes.push(b);
          else for (const x of utf8Encoder.encode(ch)) bytes.push(x);
        }
        return Uint8Array.from(bytes);
      }
      case TokenType.BYTE: {
        const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(text);
        return m ? Uint8Array.of(Number.parseInt(m[1] as string, 16)) : EMPTY;
      }
      default:
        return EMPTY;
    }
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const special = options.special ?? false;
    let total = 0;
    const pieces: Uint8Array[] = [];
    for (let i = 0; i < ids.length; i++) {
      const p = this.tokenBytes(ids[i] as number, special);
      pieces.push(p);
      total += p.length;
    }
    let bytes: Uint8Array = new Uint8Array(total);
    let at = 0;
    for (const p of pieces) {
      bytes.set(p, at);
      at += p.length;
    }
    if (this.preTokenizer.cleanSpaces) bytes = cleanTokenizationSpaces(bytes);
    return utf8Decoder.decode(bytes);
  }

  /** A streaming detokenizer for one generation. */
  streamDecoder(options: DecodeOptions = {}): StreamDecoder {
    return new StreamDecoder(this, options);
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new TokenizerError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
  }
}

/**
 * Turns a stream of token ids into text. `push` returns only complete characters: bytes of a
 * character split across tokens are held until the rest arrives; `flush` releases whatever is
 * left (an incomplete tail becomes U+FFFD).
 */
export class StreamDecoder {
  private decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
  private readonly special: boolean;

  constructor(
    private readonly tokenizer: Tokenizer,
    options: DecodeOptions = {},
  ) {
    this.special = options.special ?? false;
  }

  push(id: number): string {
    const bytes = this.tokenizer.tokenBytes(id, this.special);
    if (bytes.length === 0) return "";
    return this.decoder.decode(bytes, { stream: true });
  }

  flush(): string {
    const rest = this.decoder.decode();
    this.decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
    return rest;
  }
}

const EMPTY = new Uint8Array(0);
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

/** clean_up_tokenization_spaces on bytes, exactly as llama.cpp's detokenize does it. */
function cleanTokenizationSpaces(text: Uint8Array): Uint8Array {
  const SPACE = 0x20;
  const APOS = 0x27;
  const c = (s: string) => s.charCodeAt(0);
  let buf = Array.from(text);
  // " ?", " !", " .", " ," lose the space.
  let out: number[] = [];
  for (let i = 0; i < buf.length; i++) {
    const x = buf[i] as number;
    if (i > 0 && buf[i - 1] === SPACE && (x === c("?") || x === c("!") || x === c(".") || x === c(","))) {
      out.pop();
    }
    out.push(x);
  }
  // " ' " becomes "'".
  buf = out;
  out = [];
  for (let i = 0; i < buf.length; i++) {
    const x = buf[i] as number;
    if (i > 0 && x === APOS && i + 1 < buf.length && buf[i - 1] === SPACE && buf[i + 1] === SPACE) {
      out.pop();
      out.push(x);
      i++;
      continue;
    }
    out.push(x);
  }
  // " 's", " 'm", " 're", " 've" lose the space.
  buf = out;
  out = [];
  for (let i = 0; i < buf.length; i++) {
    const x = buf[i] as number;
    if (i > 0 && buf[i - 1] === SPACE && x === APOS && i + 1 < buf.length) {
      const x1 = buf[i + 1];
      const x2 = buf[i + 2];
      if (x1 === c("s") || x1 === c("m")) out.pop();
      else if ((x1 === c("r") || x1 === c("v")) && x2 === c("e")) out.pop();
    }
    out.push(x);
  }
  return Uint8Array.from(out);
}
