// SentencePiece encoding as llama.cpp does it (llm_tokenizer_spm): the text's characters are merged
// pairwise, always the adjacent pair whose union is the vocabulary token with the highest score
// (leftmost on ties), until no adjacent pair forms a token. A piece that is not a token becomes its
// UTF-8 bytes as <0xNN> byte tokens.
//
// Speed: the text is cut before each word's U+2581 (a space) wherever no vocabulary token can span
// the cut; no merge crosses such a cut, so the pieces are merged independently (and cached) with
// exactly the result of merging the whole text.

import { TokenizerError, type Vocab } from "./vocab.ts";

const utf8 = new TextEncoder();

/** A candidate merge: valid while both symbols keep the lengths they had when it was queued. */
interface Bigram {
  score: number;
  left: number;
  right: number;
  size: number;
}

/** Max-heap by score, then by lowest left position. */
class BigramQueue {
  private readonly items: Bigram[] = [];

  get size(): number {
    return this.items.length;
  }

  private before(a: Bigram, b: Bigram): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }

  push(item: Bigram): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent] as Bigram;
      if (!this.before(item, p)) break;
      items[i] = p;
      i = parent;
    }
    items[i] = item;
  }

  pop(): Bigram {
    const items = this.items;
    const top = items[0] as Bigram;
    const last = items.pop() as Bigram;
    const n = items.length;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && this.before(items[r] as Bigram, items[l] as Bigram) ? r : l;
      const c = items[child] as Bigram;
      if (!this.before(c, last)) break;
      items[i] = c;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

const SPACE = "\u2581";
const MAX_PIECE_CACHE_ENTRIES = 200_000;

/** A token with a U+2581 after another character, and where: a cut there would split it. */
interface CrossingToken {
  text: string;
  offsets: number[];
}

export class SpmEncoder {
  private readonly crossing: CrossingToken[] = [];
  private readonly cache = new Map<string, number[]>();

  constructor(private readonly vocab: Vocab) {
    for (const text of vocab.tokens) {
      const offsets: number[] = [];
      for (let k = text.indexOf(SPACE, 1); k > 0; k = text.indexOf(SPACE, k + 1)) {
        if (text[k - 1] !== SPACE) offsets.push(k);
      }
      if (offsets.length > 0) this.crossing.push({ text, offsets });
    }
  }

  /** Appends the tokens of `text`, whose spaces are already written as U+2581. */
  encode(text: string, out: number[]): void {
    let start = 0;
    for (let at = text.indexOf(SPACE, 1); at > 0; at = text.indexOf(SPACE, at + 1)) {
      if (text[at - 1] === SPACE || !this.canCut(text, at)) continue;
      this.encodePiece(text.slice(start, at), out);
      start = at;
    }
    this.encodePiece(start === 0 ? text : text.slice(start), out);
  }

  /** No token that a cut at `at` would split occurs across it. */
  private canCut(text: string, at: number): boolean {
    for (const t of this.crossing) {
      for (const k of t.offsets) if (at - k >= 0 && text.startsWith(t.text, at - k)) return false;
    }
    return true;
  }

  /** Merges `text` whole, without cuts or cache: the reference `encode` must equal. */
  encodeUncut(text: string, out: number[]): void {
    this.merge(text, out);
  }

  private encodePiece(piece: string, out: number[]): void {
    let ids = this.cache.get(piece);
    if (ids === undefined) {
      ids = [];
      this.merge(piece, ids);
      if (this.cache.size >= MAX_PIECE_CACHE_ENTRIES) this.cache.clear();
      this.cache.set(piece, ids);
    }
    for (let i = 0; i < ids.length; i++) out.push(ids[i] as number);
  }

  private merge(text: string, out: number[]): void {
    if (text.length === 0) return;
    const ids = this.vocab.ids;
    const scores = this.vocab.scores;
    const symbols: string[] = [];
    for (const ch of text) symbols.push(ch);
    const n = symbols.length;
    // UTF-16 lengths: a symbol only grows, so an unchanged length means an unchanged symbol.
    const len = new Int32Array(n);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      len[i] = (symbols[i] as string).length;
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const queue = new BigramQueue();
    const tryAdd = (left: number, right: number) => {
      if (left < 0 || right < 0) return;
      const merged = (symbols[left] as string) + (symbols[right] as string);
      const id = ids.get(merged);
      if (id === undefined) return;
      queue.push({ score: scores[id] as number, left, right, size: merged.length });
    };
    for (let i = 1; i < n; i++) tryAdd(i - 1, i);
    // Bounded: each merge removes a symbol and queues at most two bigrams.
    while (queue.size > 0) {
      const b = queue.pop();
      const l = len[b.left] as number;
      const r = len[b.right] as number;
      if (l === 0 || r === 0 || l + r !== b.size) continue;
      symbols[b.left] = (symbols[b.left] as string) + (symbols[b.right] as string);
      len[b.left] = l + r;
      len[b.right] = 0;
      const after = next[b.right] as number;
      next[b.left] = after;
      if (after >= 0) prev[after] = b.left;
      tryAdd(prev[b.left] as number, b.left);
      tryAdd(b.left, after);
    }
    for (let i = 0; i >= 0; i = next[i] as number) {
      const symbol = symbols[i] as string;
      const id = ids.get(symbol);
      if (id !== undefined) out.push(id);
      else this.pushBytes(symbol, out);
    }
  }

  /** A piece that is no token: one byte token per UTF-8 byte (the unknown token if there is none). */
  private pushBytes(symbol: string, out: number[]): void {
    for (const byte of utf8.encode(symbol)) {
      const id = this.vocab.byteToken(byte);
      if (id >= 0) out.push(id);
      else if (this.vocab.unkId >= 0) out.push(this.vocab.unkId);
      else {
        throw new TokenizerError(
          `byte 0x${byte.toString(16).padStart(2, "0")} has no token (no <0x..> byte token, no unknown token)`,
        );
      }
    }
  }
}
