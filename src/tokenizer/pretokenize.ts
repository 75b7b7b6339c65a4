// Pre-tokenizers: split text into the words BPE merges within, one rule set per `tokenizer.ggml.pre`.
// Each rule set is a list of regex passes applied in order, as llama.cpp does: a pass splits every
// piece produced by the previous pass, keeping both its matches and the gaps between them as pieces.

/**
 * White_Space as llama.cpp defines it (PropList.txt White_Space). Not JS `\s`, which lacks U+0085
 * and adds U+FEFF; using `\s` would split those two characters differently from the peer.
 */
const WS = "\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const S = `[${WS}]`;
const NOT_S = `[^${WS}]`;

// GPT-2's pattern: contractions, optional space + letters / numbers / other, whitespace runs that
// leave the last space to the next word.
const GPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|${S}+(?!${NOT_S})|${S}+`;

// Llama 3 / tiktoken-style pattern: case-insensitive contractions, a non-letter prefix glued to
// letters, digits in groups of at most three, newlines grouped with preceding whitespace.
const CONTRACTIONS_CI = "'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]";
const llama3Like = (digits: string) =>
  `(?:${CONTRACTIONS_CI})|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|${digits}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*|${S}*[\\r\\n]+|${S}+(?!${NOT_S})|${S}+`;
const LLAMA3 = llama3Like("\\p{N}{1,3}");
const QWEN2 = llama3Like("\\p{N}");

/** Rule sets by llama.cpp pre-tokenizer family. */
const PASSES: Record<string, string[]> = {
  // Digits are isolated first (each digit its own word), then GPT-2's pattern runs on the rest.
  smollm: ["\\p{N}", GPT2],
  gpt2: [GPT2],
  llama3: [LLAMA3],
  qwen2: [QWEN2],
  // Used when `tokenizer.ggml.pre` is missing or "default".
  default: ["[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2, "\\p{N}+", "[0-9][0-9][0-9]"],
};

/** `tokenizer.ggml.pre` names and the family they belong to (the ones llama.cpp maps identically). */
const FAMILY_BY_NAME: Record<string, keyof typeof PASSES> = {
  smollm: "smollm",
  starcoder: "smollm",
  refact: "smollm",
  "command-r": "smollm",
  codeshell: "smollm",
  exaone: "smollm",
  "minerva-7b": "smollm",
  "gpt-2": "gpt2",
  gpt2: "gpt2",
  "phi-2": "gpt2",
  mpt: "gpt2",
  olmo: "gpt2",
  jais: "gpt2",
  trillion: "gpt2",
  llama3: "llama3",
  "llama-v3": "llama3",
  "llama-bpe": "llama3",
  falcon3: "llama3",
  "falcon-h1": "llama3",
  pixtral: "llama3",
  dbrx: "llama3",
  "smaug-bpe": "llama3",
  "chatglm-bpe": "llama3",
  glm4: "llama3",
  qwen2: "qwen2",
  "deepseek-r1-qwen": "qwen2",
  stablelm2: "qwen2",
  megrez: "qwen2",
  hunyuan: "qwen2",
  default: "default",
};

/** Families whose llama.cpp vocab uses clean_up_tokenization_spaces when detokenizing. */
const CLEAN_SPACES: ReadonlySet<string> = new Set(["gpt2", "default"]);
/** Families whose llama.cpp vocab looks a whole word up before merging (ignore_merges). */
const IGNORE_MERGES: ReadonlySet<string> = new Set(["llama3"]);

export class PreTokenizer {
  private readonly regexes: RegExp[];

  private constructor(
    readonly name: string,
    readonly family: string,
  ) {
    const passes = PASSES[family];
    if (passes === undefined) throw new Error(`no pre-tokenizer rules for family "${family}"`);
    this.regexes = passes.map((p) => new RegExp(p, "gu"));
  }

  /** The pre-tokenizer for a `tokenizer.ggml.pre` value; an unknown name is an error naming the known ones. */
  static byName(name: string | undefined): PreTokenizer {
    const key = name === undefined || name === "" ? "default" : name;
    const family = FAMILY_BY_NAME[key];
    if (family === undefined) {
      const known = Object.keys(FAMILY_BY_NAME).sort().join(", ");
      throw new Error(`unsupported pre-tokenizer "${key}" (tokenizer.ggml.pre); supported: ${known}`);
    }
    return new PreTokenizer(key, family);
  }

  get cleanSpaces(): boolean {
    return CLEAN_SPACES.has(this.family);
  }

  get ignoreMerges(): boolean {
    return IGNORE_MERGES.has(this.family);
  }

  /** Splits `text` into words; calls `emit` for each in order. Every character lands in exactly one word. */
  split(text: string, emit: (word: string) => void): void {
    this.splitFrom(0, text, emit);
  }

  private splitFrom(pass: number, piece: string, emit: (word: string) => void): void {
    const re = this.regexes[pass];
    if (re === undefined) {
      emit(piece);
      return;
    }
    const next = pass + 1;
    re.lastIndex = 0;
    let start = 0;
    for (let m = re.exec(piece); m !== null; m = re.exec(piece)) {
      const matched = m[0];
      if (matched.length === 0) {
        // An empty match cannot split anything; step past it so the scan always advances.
        re.lastIndex++;
        continue;
      }
      if (m.index > start) this.splitFrom(next, piece.slice(start, m.index), emit);
      this.splitFrom(next, matched, emit);
      start = m.index + matched.length;
    }
    if (start < piece.length) this.splitFrom(next, start === 0 ? piece : piece.slice(start), emit);
  }
}
