// BPE as llama.cpp does it (llm_tokenizer_bpe): words from the pre-tokenizer, each either mapped
// byte by byte to printable characters (GPT-2's byte-level BPE) or kept as raw UTF-8 with spaces
// written U+2581 (SentencePiece-style BPE, Gemma 4), merged by rank.

import type { PreTokenizer } from "./pretokenize.ts";
import type { Vocab } from "./vocab.ts";

/** GPT-2's byte → character table: printable Latin-1 bytes map to themselves, the rest to U+0100…. */
function buildByteTables(): { byteToChar: string[]; charToByte: Map<number, number> } {
  const byteToChar = new Array<string>(256);
  const charToByte = new Map<number, number>();
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    const cp = printable ? b : 256 + shifted++;
    byteToChar[b] = String.fromCodePoint(cp);
    charToByte.set(cp, b);
  }
  return { byteToChar, charToByte };
}

export const { byteToChar, charToByte } = buildByteTables();

/** Appends the UTF-8 bytes of `text` (which must be well-formed UTF-16) as byte characters. */
export function byteEncode(text: string, out: string[]): void {
  for (let i = 0; i < text.length; i++) {
    let cp = text.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < text.length) {
      const lo = text.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        i++;
      }
    }
    if (cp < 0x80) {
      out.push(byteToChar[cp] as string);
    } else if (cp < 0x800) {
      out.push(byteToChar[0xc0 | (cp >> 6)] as string, byteToChar[0x80 | (cp & 0x3f)] as string);
    } else if (cp < 0x10000) {
      out.push(
        byteToChar[0xe0 | (cp >> 12)] as string,
        byteToChar[0x80 | ((cp >> 6) & 0x3f)] as string,
        byteToChar[0x80 | (cp & 0x3f)] as string,
      );
    } else {
      out.push(
        byteToChar[0xf0 | (cp >> 18)] as string,
        byteToChar[0x80 | ((cp >> 12) & 0x3f)] as string,
        byteToChar[0x80 | ((cp >> 6) & 0x3f)] as string,
        byteToChar[0x80 | (cp & 0x3f)] as string,
      );
    }
  }
}

/** One candidate merge of two adjacent symbols, valid while both still have the lengths recorded. */
interface Bigram {
  rank: number;
  left: number;
  right: number;
  leftLen: number;
  rightLen: number;
}

/** Binary min-heap ordered by (rank, left): lowest rank first, leftmost on ties, as llama.cpp pops. */
class BigramHeap {
  private readonly items: Bigram[] = [];

  get size(): number {
    return this.items.length;
  }

  private less(a: Bigram, b: Bigram): boolean {
    return a.rank < b.rank || (a.rank === b.rank && a.left < b.left);
  }

  push(item: Bigram): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent] as Bigram;
      if (!this.less(item, p)) break;
      items[i] = p;
      i = parent;
    }
    items[i] = item;
  }

  pop(): Bigram | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    let i = 0;
    const n = items.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && this.less(items[r] as Bigram, items[l] as Bigram) ? r : l;
      const c = items[child] as Bigram;
      if (!this.less(c, last)) break;
      items[i] = c;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

// Packing limits of the id-keyed merge table (exact in a double: rank * 2^24 + id < 2^53).
const PAIR_RESULT_LIMIT = 2 ** 24;
const PAIR_RANK_LIMIT = 2 ** 28;
// Heap keys are rank * 2^24 + left position; longer words use the string path.
const HEAP_POSITION_LIMIT = 2 ** 24;

export class BpeModel {
  /** Merge rank by "left right"; built on first use (only the fallback path needs it). */
  private rankTable: Map<string, number> | null = null;
  /** (left id, right id) -> rank * PAIR_RESULT_LIMIT + merged id; null when some merge is not id-expressible. */
  private readonly pairs: Map<number, number> | null;
  private idStride = 0;

  constructor(
    /** Token id by token text. */
    private readonly vocab: ReadonlyMap<string, number>,
    private readonly merges: readonly string[],
    /** Unmergeable pieces fall back to <0xNN> tokens per UTF-8 byte (raw UTF-8 vocabularies). */
    private readonly hexByteFallback = false,
  ) {
    this.pairs = this.buildIdPairs(merges);
  }

  private get ranks(): Map<string, number> {
    if (this.rankTable === null) {
      const table = new Map<string, number>();
      for (let i = 0; i < this.merges.length; i++) {
        const line = this.merges[i] as string;
        // llama.cpp splits at the first space after position 0, so a merge may start with a space.
        const sep = line.indexOf(" ", 1);
        if (sep < 0) continue;
        const key = `${line.slice(0, sep)} ${line.slice(sep + 1)}`;
        if (!table.has(key)) table.set(key, i);
      }
      this.rankTable = table;
    }
    return this.rankTable;
  }

  /**
   * The same merges keyed by token ids, when every merge's parts and result are vocabulary tokens
   * (true of sane files): merging then works on integers instead of concatenated strings.
   */
  private buildIdPairs(merges: readonly string[]): Map<number, number> | null {
    let maxId = 0;
    for (const id of this.vocab.values()) maxId = Math.max(maxId, id);
    if (maxId >= PAIR_RESULT_LIMIT || merges.length >= PAIR_RANK_LIMIT) return null;
    this.idStride = maxId + 1;
    const pairs = new Map<number, number>();
    for (let i = 0; i < merges.length; i++) {
      const line = merges[i] as string;
      const sep = line.indexOf(" ", 1);
      if (sep < 0) continue;
      const left = line.slice(0, sep);
      const right = line.slice(sep + 1);
      const a = this.vocab.get(left);
      const b = this.vocab.get(right);
      const merged = this.vocab.get(left + right);
      if (a === undefined || b === undefined || merged === undefined) return null;
      const key = a * this.idStride + b;
      if (!pairs.has(key)) pairs.set(key, i * PAIR_RESULT_LIMIT + merged);
    }
    return pairs;
  }

  get mergeCount(): number {
    return this.merges.length;
  }

  private rank(left: string, right: string): number {
    return this.ranks.get(`${left} ${right}`) ?? -1;
  }

  /**
   * Merges the byte characters of one word and appends the resulting token ids. A final symbol that
   * is not in the vocabulary falls back to one-byte tokens, as llama.cpp does.
   */
  encodeSymbols(chars: string[], out: number[], ignoreMerges: boolean): void {
    const n = chars.length;
    if (n === 0) return;
    if (ignoreMerges) {
      const whole = this.vocab.get(chars.join(""));
      if (whole !== undefined) {
        out.push(whole);
        return;
      }
    }
    if (n === 1) {
      this.emitSymbol(chars[0] as string, out);
      return;
    }
    if (this.pairs !== null && n < HEAP_POSITION_LIMIT && this.encodeIds(chars, out)) return;
    const text = chars.slice();
    const len = new Int32Array(n).fill(1);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const heap = new BigramHeap();
    const tryAdd = (left: number, right: number) => {
      if (left < 0 || right < 0) return;
      const rank = this.rank(text[left] as string, text[right] as string);
      if (rank < 0) return;
      heap.push({ rank, left, right, leftLen: len[left] as number, rightLen: len[right] as number });
    };
    for (let i = 1; i < n; i++) tryAdd(i - 1, i);

    // Bounded: every successful merge removes one symbol, and each merge pushes at most two bigrams.
    while (heap.size > 0) {
      const b = heap.pop() as Bigram;
      const { left, right } = b;
      if (len[left] === 0 || len[right] === 0) continue;
      if (len[left] !== b.leftLen || len[right] !== b.rightLen || next[left] !== right) continue;
      text[left] = (text[left] as string) + (text[right] as string);
      len[left] = (len[left] as number) + (len[right] as number);
      len[right] = 0;
      const after = next[right] as number;
      next[left] = after;
      if (after >= 0) prev[after] = left;
      tryAdd(prev[left] as number, left);
      tryAdd(left, after);
    }
    for (let i = 0; i >= 0; i = next[i] as number) this.emitSymbol(text[i] as string, out);
  }

  /**
   * The merge loop on token ids: same order as the string path (lowest rank, then leftmost), with
   * heap entries packed into one number. Returns false (nothing written) if a byte has no token.
   */
  private encodeIds(chars: string[], out: number[]): boolean {
    const pairs = this.pairs as Map<number, number>;
    const stride = this.idStride;
    const n = chars.length;
    const ids = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const id = this.vocab.get(chars[i] as string);
      if (id === undefined) return false;
      ids[i] = id;
    }
    const alive = new Uint8Array(n).fill(1);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const heap: number[] = [];
    const push = (left: number) => {
      const right = next[left] as number;
      if (right < 0) return;
      const packed = pairs.get((ids[left] as number) * stride + (ids[right] as number));
      if (packed === undefined) return;
      heapPush(heap, Math.floor(packed / PAIR_RESULT_LIMIT) * HEAP_POSITION_LIMIT + left);
    };
    for (let i = 0; i < n - 1; i++) push(i);
    while (heap.length > 0) {
      const key = heapPop(heap);
      const rank = Math.floor(key / HEAP_POSITION_LIMIT);
      const left = key - rank * HEAP_POSITION_LIMIT;
      const right = next[left] as number;
      if (alive[left] === 0 || right < 0) continue;
      // Stale unless the pair now at `left` still has this rank; an entry with the same (rank, left)
      // is interchangeable with it, so this matches skipping stale entries by text.
      const packed = pairs.get((ids[left] as number) * stride + (ids[right] as number));
      if (packed === undefined || Math.floor(packed / PAIR_RESULT_LIMIT) !== rank) continue;
      ids[left] = packed - rank * PAIR_RESULT_LIMIT;
      alive[right] = 0;
      const after = next[right] as number;
      next[left] = after;
      if (after >= 0) prev[after] = left;
      if ((prev[left] as number) >= 0) push(prev[left] as number);
      push(left);
    }
    for (let i = 0; i >= 0; i = next[i] as number) out.push(ids[i] as number);
    return true;
  }

  private emitSymbol(symbol: string, out: number[]): void {
    const id = this.vocab.get(symbol);
    if (id !== undefined) {
      out.push(id);
      return;
    }
    if (this.hexByteFallback) {
      for (const byte of utf8.encode(symbol)) {
        const byteId = this.vocab.get(`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`);
        if (byteId !== undefined) out.push(byteId);
      }
      return;
    }
    // llama.cpp retries each UTF-8 byte of the symbol's text as a one-byte token, so only ASCII
    // characters can ever be found; the rest are dropped. Mirrored for parity.
    for (let i = 0; i < symbol.length; i++) {
      if (symbol.charCodeAt(i) >= 0x80) continue;
      const byteId = this.vocab.get(symbol[i] as string);
      if (byteId !== undefined) out.push(byteId);
    }
  }
}

const utf8 = new TextEncoder();
const MAX_WORD_CACHE_ENTRIES = 200_000;

/** Encodes plain text (no special tokens) with a BPE vocabulary: pre-tokenize, then merge each word. */
export class BpeEncoder {
  private readonly bpe: BpeModel;
  private readonly pre: PreTokenizer;
  private readonly wordCache = new Map<string, number[]>();
  private readonly symbols: string[] = [];

  constructor(private readonly vocab: Vocab) {
    if (vocab.pre === null) throw new Error("a BPE vocabulary has a pre-tokenizer");
    this.pre = vocab.pre;
    this.bpe = new BpeModel(vocab.ids, vocab.merges, this.pre.rawUtf8);
  }

  encode(text: string, out: number[]): void {
    const cache = this.wordCache;
    this.pre.split(this.vocab.escapeWhitespace ? text.replaceAll(" ", "\u2581") : text, (word) => {
      let ids = cache.get(word);
      if (ids === undefined) {
        ids = this.encodeWord(word);
        if (cache.size >= MAX_WORD_CACHE_ENTRIES) cache.clear();
        cache.set(word, ids);
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i] as number);
    });
  }

  private encodeWord(word: string): number[] {
    const symbols = this.symbols;
    symbols.length = 0;
    const ids: number[] = [];
    if (this.pre.rawUtf8) {
      // A run of newlines that is itself a token stays whole (llama.cpp's Gemma 4 rule).
      const whole = /^\n+$/.test(word) ? this.vocab.ids.get(word) : undefined;
      if (whole !== undefined) return [whole];
      for (const ch of word) symbols.push(ch);
    } else byteEncode(word, symbols);
    this.bpe.encodeSymbols(symbols, ids, this.pre.ignoreMerges);
    return ids;
  }
}

/** Min-heap of packed numeric keys. */
function heapPush(heap: number[], key: number): void {
  let i = heap.length;
  heap.push(key);
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const p = heap[parent] as number;
    if (p <= key) break;
    heap[i] = p;
    i = parent;
  }
  heap[i] = key;
}

function heapPop(heap: number[]): number {
  const top = heap[0] as number;
  const last = heap.pop() as number;
  const n = heap.length;
  if (n === 0) return top;
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= n) break;
    const r = l + 1;
    const c = r < n && (heap[r] as number) < (heap[l] as number) ? r : l;
    const cv = heap[c] as number;
    if (cv >= last) break;
    heap[i] = cv;
    i = c;
  }
  heap[i] = last;
  return top;
}
