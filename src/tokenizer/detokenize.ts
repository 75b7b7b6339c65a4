// Decoding helpers: llama.cpp's clean-up of tokenization spaces, and a streaming detokenizer that
// never emits half a UTF-8 character.

/** The bytes of one token, as the tokenizer renders it. */
export interface TokenPieces {
  tokenBytes(id: number, special?: boolean): Uint8Array;
}

export interface StreamDecodeOptions {
  /** Render control / unknown tokens as their text instead of dropping them. Default false. */
  special?: boolean;
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
    private readonly tokenizer: TokenPieces,
    options: StreamDecodeOptions = {},
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

/** clean_up_tokenization_spaces on bytes, exactly as llama.cpp's detokenize does it. */
export function cleanTokenizationSpaces(text: Uint8Array): Uint8Array {
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
