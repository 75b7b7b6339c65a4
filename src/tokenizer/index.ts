// Tokenizer built from GGUF metadata, as llama.cpp tokenizes: SentencePiece (`llama`: Llama 2,
// Gemma) or BPE (`gpt2`, `gemma4`) with llama.cpp's pre-tokenizers; special tokens split out of raw
// text first; decoding and a streaming detokenizer that never emits half a UTF-8 character.

import type { GgufMetadata } from "../gguf/index.ts";
import { BpeEncoder, charToByte } from "./bpe.ts";
import { cleanTokenizationSpaces, StreamDecoder } from "./detokenize.ts";
import type { PreTokenizer } from "./pretokenize.ts";
import { SpmEncoder } from "./spm.ts";
import { TokenizerError, TokenType, Vocab, type VocabKind } from "./vocab.ts";

export { StreamDecoder } from "./detokenize.ts";
export { PreTokenizer } from "./pretokenize.ts";
export { TokenizerError, TokenType, type VocabKind } from "./vocab.ts";

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

/** Encodes a stretch of plain text (no special tokens in it) and appends the ids. */
interface TextEncoderModel {
  encode(text: string, out: number[]): void;
}

/** Above this many special tokens, a pair filter beats searching the text for each. */
const MANY_SPECIAL_TOKENS = 256;

/** C's isspace: what llama.cpp strips beside a special token with lstrip / rstrip. */
const C_SPACE = /[\t-\r ]/;

export class Tokenizer {
  readonly vocabSize: number;
  /** `spm` (SentencePiece) or `bpe`. */
  readonly kind: VocabKind;
  /** BOS token id, or -1 when the model has none. */
  readonly bosId: number;
  /** EOS token id, or -1 when the model has none. */
  readonly eosId: number;
  readonly addBos: boolean;
  readonly addEos: boolean;
  /** The BPE pre-tokenizer; null for SentencePiece. */
  readonly preTokenizer: PreTokenizer | null;
  /** Every token id that ends generation (EOS, EOT-like and FIM separator tokens). */
  readonly eogIds: ReadonlySet<number>;

  private readonly vocab: Vocab;
  private readonly model: TextEncoderModel;
  private readonly pieceCache: (Uint8Array | undefined)[];

  private constructor(md: GgufMetadata) {
    this.vocab = new Vocab(md);
    const v = this.vocab;
    this.vocabSize = v.size;
    this.kind = v.kind;
    this.bosId = v.bosId;
    this.eosId = v.eosId;
    this.addBos = v.addBos;
    this.addEos = v.addEos;
    this.preTokenizer = v.pre;
    this.eogIds = v.eogIds;
    this.model = v.kind === "spm" ? new SpmEncoder(v) : new BpeEncoder(v);
    this.pieceCache = new Array(v.size);
  }

  static fromGguf(md: GgufMetadata): Tokenizer {
    return new Tokenizer(md);
  }

  /** The raw vocabulary text of a token (byte-level characters or U+2581 for spaces, as stored). */
  tokenText(id: number): string {
    this.checkId(id);
    return this.vocab.tokens[id] as string;
  }

  tokenType(id: number): number {
    this.checkId(id);
    return this.vocab.types[id] as number;
  }

  /** Token id of an exact vocabulary text, if any (e.g. "<|im_end|>"). */
  tokenId(text: string): number | undefined {
    return this.vocab.ids.get(text);
  }

  isEndOfGeneration(id: number): boolean {
    return this.eogIds.has(id);
  }

  isControl(id: number): boolean {
    const t = this.vocab.types[id];
    return t === TokenType.CONTROL || t === TokenType.UNKNOWN;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== "string") throw new TokenizerError(`encode expects a string, got ${typeof text}`);
    const addSpecial = options.addSpecial ?? true;
    const parseSpecial = options.parseSpecial ?? false;
    // Lone surrogates cannot be UTF-8 encoded; they become U+FFFD as in any UTF-8 conversion.
    const input = text.isWellFormed() ? text : text.toWellFormed();
    const v = this.vocab;
    const out: number[] = [];
    if (addSpecial && v.addBos) out.push(v.bosId);
    // SentencePiece puts a space before the first text and before text that follows a special token.
    let afterSpecial = true;
    if (input.length > 0) {
      for (const fragment of this.partitionSpecial(input, parseSpecial)) {
        if (typeof fragment === "number") {
          out.push(fragment);
          afterSpecial = true;
          continue;
        }
        let plain = options.unescape ? options.unescape(fragment) : fragment;
        if (v.kind === "spm") {
          if (v.addSpacePrefix && afterSpecial) plain = ` ${plain}`;
          plain = plain.replaceAll(" ", "\u2581");
        }
        this.model.encode(plain, out);
        afterSpecial = false;
      }
    }
    if (addSpecial && v.addEos) out.push(v.eosId);
    return out;
  }

  /** Texts that `parseSpecial` matches as tokens (control and unknown tokens), longest first. */
  controlTexts(): string[] {
    return this.vocab.specialIds
      .filter((id) => this.isControl(id))
      .map((id) => this.vocab.tokens[id] as string);
  }

  /**
   * Splits text on special-token texts, longest token first, like llama.cpp's
   * tokenizer_st_partition. Without parseSpecial only user-defined tokens are split out.
   */
  private partitionSpecial(text: string, parseSpecial: boolean): (string | number)[] {
    const v = this.vocab;
    let fragments: (string | number)[] = [text];
    // With many special tokens (Gemma has 6,414), only those whose first two characters occur next
    // to each other in the text are searched for.
    let pairs: Set<number> | undefined;
    if (v.specialIds.length > MANY_SPECIAL_TOKENS) {
      pairs = new Set<number>();
      for (let i = 1; i < text.length; i++) pairs.add(text.charCodeAt(i - 1) * 0x10000 + text.charCodeAt(i));
    }
    for (const id of v.specialIds) {
      const t = v.types[id];
      if (!parseSpecial && (t === TokenType.CONTROL || t === TokenType.UNKNOWN)) continue;
      const needle = v.tokens[id] as string;
      if (pairs !== undefined && needle.length > 1) {
        if (!pairs.has(needle.charCodeAt(0) * 0x10000 + needle.charCodeAt(1))) continue;
      }
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
          let leftEnd = at;
          if (v.lstrip[id] === 1) while (leftEnd > start && C_SPACE.test(f[leftEnd - 1] as string)) leftEnd--;
          if (leftEnd > start) next.push(f.slice(start, leftEnd));
          next.push(id);
          start = at + needle.length;
          if (v.rstrip[id] === 1) while (start < f.length && C_SPACE.test(f[start] as string)) start++;
        }
        if (start < f.length) next.push(f.slice(start));
      }
      if (changed) fragments = next;
    }
    return fragments;
  }

  /**
   * The bytes a token stands for. Control and unknown tokens give their text only when `special`;
   * unused and undefined tokens give nothing (llama.cpp's token_to_piece).
   */
  tokenBytes(id: number, special = false): Uint8Array {
    this.checkId(id);
    const t = this.vocab.types[id];
    if ((t === TokenType.CONTROL || t === TokenType.UNKNOWN) && !special) return EMPTY;
    let piece = this.pieceCache[id];
    if (piece === undefined) {
      piece = this.computePiece(id);
      this.pieceCache[id] = piece;
    }
    return piece;
  }

  private computePiece(id: number): Uint8Array {
    const v = this.vocab;
    const text = v.tokens[id] as string;
    switch (v.types[id]) {
      case TokenType.CONTROL:
      case TokenType.UNKNOWN:
      case TokenType.USER_DEFINED:
        return utf8Encoder.encode(text);
      case TokenType.NORMAL: {
        if (v.escapeWhitespace) return utf8Encoder.encode(text.replaceAll("\u2581", " "));
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

  /**
   * The text of `ids`, as llama.cpp's detokenize renders it: with a space prefix (SentencePiece), the
   * first token's leading space is dropped; some vocabularies clean up spaces before punctuation.
   */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const special = options.special ?? false;
    let total = 0;
    const pieces: Uint8Array[] = [];
    for (let i = 0; i < ids.length; i++) {
      let p = this.tokenBytes(ids[i] as number, special);
      if (i === 0 && this.vocab.addSpacePrefix && p[0] === 0x20) p = p.subarray(1);
      pieces.push(p);
      total += p.length;
    }
    let bytes: Uint8Array = new Uint8Array(total);
    let at = 0;
    for (const p of pieces) {
      bytes.set(p, at);
      at += p.length;
    }
    if (this.vocab.cleanSpaces) bytes = cleanTokenizationSpaces(bytes);
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

const EMPTY = new Uint8Array(0);
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
