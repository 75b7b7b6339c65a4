// Pre-tokenizers: split text into the words BPE merges within, one rule set per `tokenizer.ggml.pre`,
// as llama.cpp's BPE tokenizer does (llm_tokenizer_bpe, unicode_regex_split). A rule set is a list of
// regex passes applied in order: each pass splits every piece of the previous one, keeping both its
// matches and the gaps between them as pieces.
//
// How llama.cpp's splitting is reproduced with JS regexes:
// - `\s` is llama.cpp's White_Space set. Before splitting, every non-ASCII whitespace character is
//   replaced by U+000B (llama.cpp does the same before its std::regex passes), so patterns only need
//   ASCII whitespace; the words themselves are cut from the original text.
// - Letters, digits, marks, punctuation and symbols are JS's `\p{L}` etc., which follow a newer
//   Unicode than llama.cpp's tables: characters assigned since (UNICODE_NEWER) are replaced by an
//   unassigned character first, so they split as llama.cpp splits them (as "other").
// - `\p{Lu}`, `\p{Ll}`, ... mean any letter, as in llama.cpp's collapsed-category matching.
// - The passes llama.cpp runs as hand-written splitters (gpt2, llama3, qwen2, qwen35, newlines)
//   are the regexes those splitters implement (GPT-2's with its trailing `\s+`).

const WS_ASCII = "\\t-\\r ";

/** Non-ASCII White_Space (llama.cpp's unicode_set_whitespace); each is one UTF-16 unit. */
const WS_NON_ASCII = "\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/**
 * Characters assigned in the Unicode versions after llama.cpp's tables (unicode-data.cpp) and known
 * to Bun's: llama.cpp gives them no category.
 */
const UNICODE_NEWER =
  "\\u{88f}\\u{897}\\u{c5c}\\u{cdc}\\u{1acf}-\\u{1add}\\u{1ae0}-\\u{1aeb}\\u{1b4e}-\\u{1b4f}\\u{1b7f}" +
  "\\u{1c89}-\\u{1c8a}\\u{20c1}\\u{2427}-\\u{2429}\\u{2b96}\\u{31e4}-\\u{31e5}\\u{a7cb}-\\u{a7cf}\\u{a7d2}\\u{a7d4}" +
  "\\u{a7da}-\\u{a7dc}\\u{a7f1}\\u{fbc3}-\\u{fbd2}\\u{fd90}-\\u{fd91}\\u{fdc8}-\\u{fdce}\\u{105c0}-\\u{105f3}" +
  "\\u{10d40}-\\u{10d65}\\u{10d69}-\\u{10d85}\\u{10d8e}-\\u{10d8f}\\u{10ec2}-\\u{10ec7}\\u{10ed0}-\\u{10ed8}" +
  "\\u{10ef9}-\\u{10efb}\\u{113ff}\\u{11380}-\\u{11389}\\u{1138b}\\u{1138e}\\u{11390}-\\u{113b5}" +
  "\\u{113b7}-\\u{113c0}\\u{113c2}\\u{113c5}\\u{113c7}-\\u{113ca}\\u{113cc}-\\u{113d5}\\u{113d7}-\\u{113d8}" +
  "\\u{113e1}-\\u{113e2}\\u{116d0}-\\u{116e3}\\u{11b60}-\\u{11b67}\\u{11bc0}-\\u{11be1}\\u{11bf0}-\\u{11bf9}" +
  "\\u{11db0}-\\u{11ddb}\\u{11de0}-\\u{11de9}\\u{11f5a}\\u{16100}-\\u{16139}\\u{16d40}-\\u{16d79}" +
  "\\u{16ea0}-\\u{16eb8}\\u{16ebb}-\\u{16ed3}\\u{16ff2}-\\u{16ff6}\\u{187f8}-\\u{187ff}\\u{18cd6}-\\u{18cff}" +
  "\\u{18d09}-\\u{18d1e}\\u{18d80}-\\u{18df2}\\u{1ccf0}-\\u{1ccfc}\\u{1cd00}-\\u{1ceb3}\\u{1ceba}-\\u{1ced0}" +
  "\\u{1cee0}-\\u{1cef0}\\u{1cf00}-\\u{1cf2d}\\u{1cf30}-\\u{1cf46}\\u{1cf50}-\\u{1cfc3}\\u{1d2c0}-\\u{1d2d3}" +
  "\\u{1e5d0}-\\u{1e5fa}\\u{1e5ff}\\u{1e6c0}-\\u{1e6de}\\u{1e6e0}-\\u{1e6f5}\\u{1e6fe}-\\u{1e6ff}" +
  "\\u{1f8d0}-\\u{1f8d8}\\u{1fa8a}-\\u{1fa8e}\\u{1fac7}-\\u{1fac8}\\u{1facd}\\u{1fadc}\\u{1fadf}" +
  "\\u{1faea}\\u{1faef}\\u{1fbcb}-\\u{1fbef}\\u{1fbfa}\\u{2b73a}-\\u{2b73f}\\u{2b81e}-\\u{2b81f}" +
  "\\u{2ceae}-\\u{2ceaf}\\u{323b0}-\\u{33479}";

/** Characters to replace before splitting (see the header); ASCII-only text skips this. */
const REMAP = new RegExp(`[${WS_NON_ASCII}]|[${UNICODE_NEWER}]`, "gu");
const WHITESPACE_NON_ASCII = new RegExp(`^[${WS_NON_ASCII}]$`, "u");
const NON_ASCII = /[\u0080-\u{10ffff}]/u;
// Unassigned in every Unicode version, one of each UTF-16 length, so offsets stay the same.
const UNASSIGNED_BMP = "\u0378";
const UNASSIGNED_ASTRAL = "\u{e0fff}";

function remapForSplitting(text: string): string {
  if (!NON_ASCII.test(text)) return text;
  return text.replace(REMAP, (ch) =>
    WHITESPACE_NON_ASCII.test(ch) ? "\v" : ch.length === 1 ? UNASSIGNED_BMP : UNASSIGNED_ASTRAL,
  );
}

// The hand-written splitters of llama.cpp, as the regexes they implement.
const CONTRACTIONS = "'s|'t|'re|'ve|'m|'ll|'d";
const CONTRACTIONS_CI = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
const GPT2 = `${CONTRACTIONS}| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`;
const llama3Like = (digits: string) =>
  `${CONTRACTIONS_CI}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|${digits}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
const LLAMA3 = llama3Like("\\p{N}{1,3}");
const QWEN2 = llama3Like("\\p{N}");
const QWEN35 = `${CONTRACTIONS_CI}|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
const NEWLINES = "[^\\n]+|\\n+";

// Patterns llama.cpp runs through std::regex (ECMAScript, as JS).
const DEEPSEEK_LETTERS =
  "A-Za-z\\u{b5}\\u{c0}-\\u{d6}\\u{d8}-\\u{f6}\\u{f8}-\\u{1ba}\\u{1bc}-\\u{1bf}\\u{1c4}-\\u{293}" +
  "\\u{295}-\\u{2af}\\u{370}-\\u{373}\\u{376}\\u{377}\\u{37b}-\\u{37d}\\u{37f}\\u{386}" +
  "\\u{388}-\\u{38a}\\u{38c}\\u{38e}-\\u{3a1}\\u{3a3}-\\u{3f5}\\u{3f7}-\\u{481}\\u{48a}-\\u{52f}" +
  "\\u{531}-\\u{556}\\u{10a0}-\\u{10c5}\\u{13a0}-\\u{13f5}\\u{13f8}-\\u{13fd}\\u{1c90}-\\u{1cba}" +
  "\\u{1cbd}-\\u{1cbf}\\u{1d00}-\\u{1d2b}\\u{1d6b}-\\u{1d77}\\u{1d79}-\\u{1d9a}\\u{1e00}-\\u{1f15}" +
  "\\u{1f18}-\\u{1f1d}\\u{1f20}-\\u{1f45}\\u{1f48}-\\u{1f4d}\\u{1f50}-\\u{1f57}\\u{1f59}\\u{1f5b}" +
  "\\u{1f5d}\\u{1f5f}-\\u{1f7d}\\u{1f80}-\\u{1fb4}\\u{1fb6}-\\u{1fbc}\\u{1fbe}\\u{1fc2}-\\u{1fc4}" +
  "\\u{1fc6}-\\u{1fcc}\\u{1fd0}-\\u{1fd3}\\u{1fd6}-\\u{1fdb}\\u{1fe0}-\\u{1fec}\\u{1ff2}-\\u{1ff4}" +
  "\\u{1ff6}-\\u{1ffc}\\u{2102}\\u{2107}\\u{210a}-\\u{2113}\\u{2115}\\u{2119}-\\u{211d}\\u{2124}" +
  "\\u{2126}\\u{2128}\\u{212a}-\\u{212d}\\u{212f}-\\u{2134}\\u{2139}\\u{213c}-\\u{213f}" +
  "\\u{2145}-\\u{2149}\\u{214e}\\u{2183}\\u{2184}\\u{2c00}-\\u{2c7b}\\u{2c7e}-\\u{2ce4}" +
  "\\u{2ceb}-\\u{2cee}\\u{2cf2}\\u{2cf3}\\u{a640}-\\u{a66d}\\u{a680}-\\u{a69b}\\u{a722}-\\u{a76f}" +
  "\\u{a771}-\\u{a787}\\u{a78b}-\\u{a78e}\\u{ab70}-\\u{abbf}\\u{fb00}-\\u{fb06}\\u{fb13}-\\u{fb17}" +
  "\\u{ff21}-\\u{ff3a}\\u{ff41}-\\u{ff5a}\\u{10400}-\\u{1044f}\\u{104b0}-\\u{104d3}" +
  "\\u{104d8}-\\u{104fb}\\u{10c80}-\\u{10cb2}\\u{10cc0}-\\u{10cf2}\\u{118a0}-\\u{118df}" +
  "\\u{1e900}-\\u{1e943}";
const CJK_HANGUL = "[\\u{4e00}-\\u{9fa5}\\u{800}-\\u{4e00}\\u{ac00}-\\u{d7ff}]+";
const ASCII_PUNCT = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~]";
const deepseek3Words = (punct: string, newline: string) =>
  `${ASCII_PUNCT}[A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+${punct}|${newline}|\\s+(?!\\S)|\\s+`;
const CASED_WORDS = (marks: string, digits: string) => {
  const upper = `(?:(?=[\\p{L}${marks}])[^a-z])`;
  const lower = `(?:(?=[\\p{L}${marks}])[^A-Z])`;
  return (
    `[^\\r\\n\\p{L}\\p{N}]?${upper}*${lower}+${CONTRACTIONS_CI}?|[^\\r\\n\\p{L}\\p{N}]?${upper}+${lower}*${CONTRACTIONS_CI}?|` +
    `${digits}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`
  );
};
const POLISH_WORDS = " ?[^(\\s|.,!?\\u{2026}\\u{3002}\\u{ff0c}\\u{3001}\\u{964}\\u{6d4}\\u{60c})]+";
const JAIS2 =
  `${CONTRACTIONS_CI}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|` +
  [512, 256, 128, 64, 32, 16, 8, 4].map((n) => `\\s{${n}}(?!\\S)`).join("|") +
  "|\\s{1,2}(?!\\S)|\\s{1}";

/** What a `tokenizer.ggml.pre` name means for encoding and decoding. */
interface PreSpec {
  passes: readonly string[];
  /** llama.cpp's clean_spaces: decoding removes the space before some punctuation. */
  clean: boolean;
  /** A whole word found in the vocabulary is one token, merges or not. */
  ignoreMerges?: boolean;
  /** add_bos_token's default when the file does not say. */
  addBos?: boolean;
  /** The model has no BOS token (llama.cpp drops its default). */
  noBos?: boolean;
  /** BOS is added even where the file says not to (llama.cpp's Gemma 4 workaround). */
  forceBos?: boolean;
  /** SentencePiece-style BPE: spaces become U+2581 and merges run on raw UTF-8, not byte characters. */
  rawUtf8?: boolean;
}

const gpt2: PreSpec = { passes: [GPT2], clean: true };
const smollm: PreSpec = { passes: ["\\p{N}", GPT2], clean: true };
const llama3: PreSpec = { passes: [LLAMA3], clean: true, ignoreMerges: true, addBos: true };
const qwen2: PreSpec = { passes: [QWEN2], clean: false };
const deepseek3: PreSpec = {
  passes: [
    "\\p{N}{1,3}",
    "[\\u{4e00}-\\u{9fa5}\\u{3040}-\\u{309f}\\u{30a0}-\\u{30ff}]+",
    deepseek3Words("[\\r\\n]*", "\\s*[\\r\\n]+"),
  ],
  clean: false,
};
const gpt4o: PreSpec = { passes: [CASED_WORDS("", "\\p{N}{1,3}")], clean: false };
const raw: PreSpec = { passes: [NEWLINES], clean: true, rawUtf8: true, forceBos: true };
const noClean = (spec: PreSpec): PreSpec => ({ ...spec, clean: false });
const bailingmoe: PreSpec = {
  passes: [
    "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
  ],
  clean: false,
};

/** `tokenizer.ggml.pre` names, as llama.cpp's vocabulary loader maps them. */
const SPECS: Readonly<Record<string, PreSpec>> = {
  default: {
    passes: ["[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2, "\\p{N}+", "[0-9][0-9][0-9]"],
    clean: true,
  },
  llama3,
  "llama-v3": llama3,
  "llama-bpe": llama3,
  falcon3: llama3,
  "falcon-h1": llama3,
  pixtral: llama3,
  "midm-2.0": llama3,
  lfm2: llama3,
  "jina-v5-nano": llama3,
  dbrx: { passes: [LLAMA3], clean: true },
  "smaug-bpe": { passes: [LLAMA3], clean: true },
  "chatglm-bpe": { passes: [LLAMA3], clean: true, noBos: true },
  glm4: { passes: [LLAMA3], clean: true, noBos: true, ignoreMerges: true },
  glm5: { passes: [LLAMA3], clean: true, noBos: true, ignoreMerges: true },
  "deepseek-llm": {
    passes: [
      "[\\r\\n]",
      `\\s?[${DEEPSEEK_LETTERS}]+`,
      "\\s?[!-/:-~\\u{ff01}-\\u{ff0f}\\u{ff1a}-\\u{ff5e}\\u{2018}-\\u{201f}\\u{3000}-\\u{3002}]+",
      "\\s+$",
      CJK_HANGUL,
      "\\p{N}+",
    ],
    clean: false,
  },
  "deepseek-coder": {
    passes: ["[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", CJK_HANGUL, "\\p{N}"],
    clean: false,
  },
  "deepseek-v3": deepseek3,
  "hunyuan-dense": deepseek3,
  hy_v4: deepseek3,
  "joyai-llm": deepseek3,
  spark2_5: {
    passes: [
      "\\p{N}{1,3}",
      "[\\u{4e00}-\\u{9fa5}\\u{3040}-\\u{309f}\\u{30a0}-\\u{30ff}]+",
      deepseek3Words("", "[\\r\\n]"),
      "\\p{N}",
    ],
    clean: false,
  },
  falcon: { passes: ["[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2, "[0-9][0-9][0-9]"], clean: true },
  mpt: gpt2,
  starcoder: smollm,
  "gpt-2": gpt2,
  gpt2,
  "phi-2": gpt2,
  "jina-es": gpt2,
  "jina-de": gpt2,
  gigachat: gpt2,
  "jina-v2-es": gpt2,
  "jina-v2-de": gpt2,
  "a.x-4.0": gpt2,
  mellum: gpt2,
  "modern-bert": gpt2,
  "jais-2": { passes: [JAIS2], clean: true },
  gemma4: raw,
  "granite-embed-multi-311m": raw,
  "sarvam-moe": { passes: [NEWLINES], clean: false, rawUtf8: true },
  refact: smollm,
  "command-r": noClean(smollm),
  qwen2,
  "deepseek-r1-qwen": qwen2,
  kormo: qwen2,
  f2llmv2: qwen2,
  qwen35: { passes: [QWEN35], clean: false },
  stablelm2: { passes: [QWEN2], clean: true },
  olmo: gpt2,
  "poro-chat": { passes: [POLISH_WORDS], clean: false },
  viking: { passes: [POLISH_WORDS, "\\p{N}"], clean: false },
  jais: gpt2,
  tekken: { passes: [CASED_WORDS("", "\\p{N}")], clean: false, ignoreMerges: true, addBos: true },
  smollm: noClean(smollm),
  codeshell: smollm,
  bloom: { passes: [POLISH_WORDS], clean: true },
  "gpt3-finnish": { passes: [POLISH_WORDS], clean: true },
  exaone: smollm,
  exaone4: gpt2,
  "exaone-moe": {
    passes: [
      `${CONTRACTIONS_CI}|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+`,
    ],
    clean: true,
  },
  "minerva-7b": smollm,
  megrez: { passes: [QWEN2], clean: true },
  "gpt-4o": gpt4o,
  llama4: gpt4o,
  kanana2: gpt4o,
  talkie: gpt4o,
  "minimax-m2": gpt4o,
  "granite-embed-multi-97m": {
    passes: [CASED_WORDS("\\p{M}", "\\p{N}{1,3}")],
    clean: false,
    ignoreMerges: true,
  },
  trillion: noClean(gpt2),
  "granite-docling": noClean(gpt2),
  bailingmoe,
  bailingmoe2: bailingmoe,
  "llada-moe": bailingmoe,
  "seed-coder": {
    passes: [
      `${CONTRACTIONS_CI}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
    ],
    clean: false,
  },
  hunyuan: qwen2,
  ufakzeka: {
    passes: [
      "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    ],
    clean: false,
  },
  "grok-2": qwen2,
  laguna: { passes: [NEWLINES, QWEN2], clean: false },
  "solar-open": qwen2,
  mellum2: smollm,
  minicpm5: {
    passes: [
      "\\p{N}{1,3}",
      `${CONTRACTIONS_CI}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
    ],
    clean: true,
    ignoreMerges: true,
  },
};

/**
 * A pattern in llama.cpp's regex dialect as a JS pattern: `\s` / `\S` become ASCII whitespace (the
 * text's other whitespace is remapped before matching), `\p{Lu}` and the other letter classes mean
 * any letter.
 */
function translate(pattern: string): string {
  let out = "";
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (ch === "\\") {
      const next = pattern[i + 1] ?? "";
      i++;
      if (next === "s") out += inClass ? WS_ASCII : `[${WS_ASCII}]`;
      else if (next === "S") {
        if (inClass) throw new Error(`\\S inside a character class is not supported: ${pattern}`);
        out += `[^${WS_ASCII}]`;
      } else if (next === "p" && pattern[i + 1] === "{") {
        const close = pattern.indexOf("}", i);
        const name = pattern.slice(i + 2, close);
        out += `\\p{${/^L[ultmo]$/.test(name) ? "L" : name}}`;
        i = close;
      } else out += `\\${next}`;
      continue;
    }
    if (ch === "[") inClass = true;
    else if (ch === "]") inClass = false;
    out += ch;
  }
  return out;
}

export class PreTokenizer {
  private readonly regexes: RegExp[];
  private readonly spec: PreSpec;

  private constructor(readonly name: string) {
    this.spec = SPECS[name] as PreSpec;
    this.regexes = this.spec.passes.map((p) => new RegExp(translate(p), "gu"));
  }

  /** The pre-tokenizer for a `tokenizer.ggml.pre` value; an unknown name is an error naming the known ones. */
  static byName(name: string | undefined): PreTokenizer {
    const key = name === undefined || name === "" ? "default" : name;
    if (!Object.hasOwn(SPECS, key)) {
      const known = Object.keys(SPECS).sort().join(", ");
      throw new Error(`unsupported pre-tokenizer "${key}" (tokenizer.ggml.pre); supported: ${known}`);
    }
    return new PreTokenizer(key);
  }

  /** Every `tokenizer.ggml.pre` name this module knows. */
  static names(): string[] {
    return Object.keys(SPECS).sort();
  }

  get cleanSpaces(): boolean {
    return this.spec.clean;
  }

  get ignoreMerges(): boolean {
    return this.spec.ignoreMerges === true;
  }

  /** add_bos_token when the file does not set it: true for the Llama 3 family, else undefined. */
  get addBosDefault(): boolean | undefined {
    return this.spec.addBos;
  }

  get noBos(): boolean {
    return this.spec.noBos === true;
  }

  get forceBos(): boolean {
    return this.spec.forceBos === true;
  }

  /** SentencePiece-style BPE (Gemma 4): spaces become U+2581, merges run on raw UTF-8. */
  get rawUtf8(): boolean {
    return this.spec.rawUtf8 === true;
  }

  /** Splits `text` into words; calls `emit` for each in order. Every character lands in exactly one word. */
  split(text: string, emit: (word: string) => void): void {
    const mapped = remapForSplitting(text);
    // Words are cut from the original text; without remapped characters the pieces are the words.
    const word =
      mapped === text ? emit : (piece: string, at: number) => emit(text.slice(at, at + piece.length));
    this.splitFrom(0, mapped, 0, word);
  }

  private splitFrom(
    pass: number,
    piece: string,
    at: number,
    emit: (piece: string, at: number) => void,
  ): void {
    const re = this.regexes[pass];
    if (re === undefined) {
      emit(piece, at);
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
      if (m.index > start) this.splitFrom(next, piece.slice(start, m.index), at + start, emit);
      this.splitFrom(next, matched, at + m.index, emit);
      start = m.index + matched.length;
    }
    if (start < piece.length)
      this.splitFrom(next, start === 0 ? piece : piece.slice(start), at + start, emit);
  }
}
