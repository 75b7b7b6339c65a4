// Tokenizer on real vocabularies: SmolLM2 (BPE, smollm pre-tokenizer, special tokens, decoding,
// streaming) and Gemma 3 270M (SentencePiece); pre-tokenizer rules.
import { describe, expect, test } from "bun:test";
import { GgufMetadata, readGguf } from "../src/gguf/index.ts";
import { GEMMA3_270M, pullModel } from "../src/gguf/pull.ts";
import { PreTokenizer, Tokenizer, TokenizerError } from "../src/tokenizer/index.ts";
import { SpmEncoder } from "../src/tokenizer/spm.ts";
import { Vocab } from "../src/tokenizer/vocab.ts";

const corpus: string[] = await Bun.file(`${import.meta.dir}/fixtures/tokenizer-corpus.json`).json();

describe("Tokenizer (SmolLM2 vocabulary)", async () => {
  const md = new GgufMetadata(readGguf(await pullModel()).metadata);
  const tok = Tokenizer.fromGguf(md);

  test("metadata: vocabulary, special ids, flags, pre-tokenizer", () => {
    expect(tok.vocabSize).toBe(49152);
    expect(tok.bosId).toBe(1);
    expect(tok.eosId).toBe(2);
    expect(tok.addBos).toBe(false);
    expect(tok.preTokenizer?.name).toBe("smollm");
    expect(tok.tokenText(1)).toBe("<|im_start|>");
    expect(tok.isEndOfGeneration(2)).toBe(true); // <|im_end|>
    expect(tok.isEndOfGeneration(0)).toBe(true); // <|endoftext|>
    expect(tok.isEndOfGeneration(1)).toBe(false);
    expect(tok.isEndOfGeneration(tok.encode("Hello", { addSpecial: false })[0] as number)).toBe(false);
  });

  test("known encodings: words with leading space, digits one by one, contractions", () => {
    expect(tok.encode("Hello world").map((i) => tok.tokenText(i))).toEqual(["Hello", "Ġworld"]);
    expect(tok.encode("It's 12345").map((i) => tok.tokenText(i))).toEqual([
      "It",
      "'s",
      "Ġ",
      "1",
      "2",
      "3",
      "4",
      "5",
    ]);
    expect(tok.encode("   a").map((i) => tok.tokenText(i))).toEqual(["ĠĠ", "Ġa"]);
    expect(tok.encode("")).toEqual([]);
  });

  test("special-token text is parsed only with parseSpecial", () => {
    const text = "<|im_start|>user\nhi<|im_end|>";
    const parsed = tok.encode(text, { parseSpecial: true });
    expect(parsed[0]).toBe(1);
    expect(parsed.at(-1)).toBe(2);
    const plain = tok.encode(text);
    expect(plain).not.toContain(1);
    expect(plain).not.toContain(2);
    expect(tok.decode(plain)).toBe(text);
    // Decoding drops control tokens unless asked to render them.
    expect(tok.decode(parsed)).toBe("user\nhi");
    expect(tok.decode(parsed, { special: true })).toBe(text);
  });

  test("partial or look-alike special text stays plain text", () => {
    for (const s of ["<|im_start", "im_end|>", "<| im_start |>", "<|IM_START|>"]) {
      const ids = tok.encode(s, { parseSpecial: true });
      for (const id of ids) expect(tok.isControl(id)).toBe(false);
      expect(tok.decode(ids)).toBe(s);
    }
  });

  test("every corpus string round-trips through encode/decode", () => {
    expect(corpus.length).toBeGreaterThanOrEqual(300);
    for (const s of corpus) {
      expect(tok.decode(tok.encode(s))).toBe(s);
      expect(tok.decode(tok.encode(s, { parseSpecial: true }), { special: true })).toBe(s);
    }
  });

  test("lone surrogates encode as U+FFFD instead of throwing", () => {
    const ids = tok.encode("a\ud800b");
    expect(tok.decode(ids)).toBe("a\ufffdb");
  });

  test("addSpecial adds BOS/EOS only when the model's flags say so", () => {
    const withBos = new GgufMetadata(new Map(md.map).set("tokenizer.ggml.add_bos_token", true));
    const t2 = Tokenizer.fromGguf(withBos);
    expect(t2.encode("hi")[0]).toBe(1);
    expect(t2.encode("hi", { addSpecial: false })[0]).not.toBe(1);
    expect(tok.encode("hi")[0]).not.toBe(1);
  });

  test("out-of-range ids are a clear error, not a crash", () => {
    expect(() => tok.decode([49152])).toThrow(TokenizerError);
    expect(() => tok.decode([-1])).toThrow(/outside the vocabulary/);
    expect(() => tok.decode([1.5])).toThrow(TokenizerError);
  });

  test("bad metadata: unknown model, unknown pre-tokenizer, missing merges", () => {
    const withKey = (k: string, v: string) => new GgufMetadata(new Map(md.map).set(k, v));
    expect(() => Tokenizer.fromGguf(withKey("tokenizer.ggml.model", "bert"))).toThrow(
      /unsupported tokenizer model/,
    );
    expect(() => Tokenizer.fromGguf(withKey("tokenizer.ggml.pre", "nope"))).toThrow(
      /unsupported pre-tokenizer "nope"/,
    );
    const noMerges = new Map(md.map);
    noMerges.delete("tokenizer.ggml.merges");
    expect(() => Tokenizer.fromGguf(new GgufMetadata(noMerges))).toThrow(/merges/);
  });

  test("stream decoder never emits half a character and matches decode", () => {
    for (const s of corpus) {
      const ids = tok.encode(s);
      const dec = tok.streamDecoder();
      let streamed = "";
      for (const id of ids) {
        const piece = dec.push(id);
        // A piece never ends in a high surrogate nor contains U+FFFD that the text lacks.
        if (piece.length > 0) {
          const last = piece.charCodeAt(piece.length - 1);
          expect(last >= 0xd800 && last <= 0xdbff).toBe(false);
        }
        if (!s.includes("\ufffd")) expect(piece.includes("\ufffd")).toBe(false);
        streamed += piece;
      }
      streamed += dec.flush();
      expect(streamed).toBe(tok.decode(ids));
    }
  });

  test("stream decoder: a 4-byte emoji split over byte tokens appears once complete", () => {
    const ids = tok.encode("😀");
    expect(ids.length).toBeGreaterThan(1); // split across several byte-level tokens
    const dec = tok.streamDecoder();
    const pieces = ids.map((id) => dec.push(id));
    expect(pieces.slice(0, -1).every((p) => p === "")).toBe(true);
    expect(pieces.at(-1)).toBe("😀");
    // An unfinished character is released as U+FFFD on flush.
    const dec2 = tok.streamDecoder();
    expect(dec2.push(ids[0] as number)).toBe("");
    expect(dec2.flush()).toBe("\ufffd");
  });
});

describe("PreTokenizer rules", () => {
  const words = (name: string, text: string) => {
    const out: string[] = [];
    PreTokenizer.byName(name).split(text, (w) => out.push(w));
    return out;
  };

  test("smollm isolates every digit, then applies GPT-2's pattern", () => {
    expect(words("smollm", "abc 123  x")).toEqual(["abc", " ", "1", "2", "3", " ", " x"]);
    expect(words("smollm", "a  \n b")).toEqual(["a", "  \n", " b"]);
  });

  test("gpt2 keeps digit runs together; llama3 groups digits by three", () => {
    expect(words("gpt2", "x 12345")).toEqual(["x", " 12345"]);
    expect(words("llama3", "x 12345")).toEqual(["x", " ", "123", "45"]);
    expect(words("llama3", "HE'LL go")).toEqual(["HE", "'LL", " go"]);
    expect(words("qwen2", "12")).toEqual(["1", "2"]);
  });

  test("whitespace follows llama.cpp: U+0085 is whitespace, U+FEFF is not", () => {
    expect(words("gpt2", "a\u0085\u0085b")).toEqual(["a", "\u0085", "\u0085", "b"]);
    expect(words("gpt2", "a\ufeffb")).toEqual(["a", "\ufeff", "b"]);
  });

  test("characters newer than llama.cpp's Unicode tables split as llama.cpp splits them (as other)", () => {
    // U+1C89 (Unicode 16) is a letter to JS; llama.cpp's tables have no category for it.
    expect(words("gpt2", "a\u1c89b")).toEqual(["a", "\u1c89", "b"]);
    expect(words("gpt2", "a\u0416b")).toEqual(["a\u0416b"]);
    // Non-ASCII whitespace is whitespace in every rule set, and words keep the original characters.
    expect(words("llama3", "a\u3000\u3000b")).toEqual(["a", "\u3000", "\u3000b"]);
  });

  test("the families of llama.cpp's vocab files are known; an unknown name lists the known ones", () => {
    for (const name of [
      "llama-bpe",
      "qwen2",
      "qwen35",
      "smollm",
      "gpt-2",
      "deepseek-llm",
      "deepseek-coder",
      "command-r",
      "falcon",
      "mpt",
      "starcoder",
      "refact",
      "gemma4",
      "default",
    ]) {
      expect(PreTokenizer.names()).toContain(name);
    }
    expect(() => PreTokenizer.byName("kimi-k2")).toThrow(
      /unsupported pre-tokenizer "kimi-k2".*supported: .*llama-bpe/,
    );
  });

  test("words always cover the input exactly", () => {
    for (const name of PreTokenizer.names()) {
      for (const s of corpus) expect(words(name, s).join("")).toBe(s);
    }
  });
});

describe("SentencePiece (Gemma 3 270M's vocabulary)", async () => {
  const md = new GgufMetadata(readGguf(await pullModel(GEMMA3_270M.name)).metadata);
  const tok = Tokenizer.fromGguf(md);
  const vocab = new Vocab(md);

  test("metadata: SentencePiece, BOS added, no space prefix, <end_of_turn> ends generation", () => {
    expect(tok.kind).toBe("spm");
    expect(tok.preTokenizer).toBeNull();
    expect(tok.addBos).toBe(true);
    expect(tok.encode("hi")[0]).toBe(tok.bosId);
    expect(tok.isEndOfGeneration(tok.tokenId("<end_of_turn>") as number)).toBe(true);
    expect(tok.isEndOfGeneration(tok.eosId)).toBe(true);
  });

  test("spaces are U+2581 in pieces and plain spaces in text; bytes without a token fall back to <0xNN>", () => {
    const ids = tok.encode(" Hello world", { addSpecial: false });
    expect(ids.map((i) => tok.tokenText(i))).toEqual(["▁Hello", "▁world"]);
    expect(tok.decode(ids)).toBe(" Hello world");
    // Gemma's runs of spaces are user-defined tokens, split out before merging (as llama.cpp does).
    const run = tok.encode("a  b", { addSpecial: false });
    expect(run.map((i) => tok.tokenText(i))).toEqual(["a", "  ", "b"]);
    expect(tok.decode(run)).toBe("a  b");
    // A plane-16 private-use character is not in the vocabulary: its four UTF-8 bytes become byte tokens.
    const pua = tok.encode("\u{10fffd}", { addSpecial: false });
    expect(pua.map((i) => tok.tokenText(i))).toEqual(["<0xF4>", "<0x8F>", "<0xBF>", "<0xBD>"]);
    expect(tok.decode(pua)).toBe("\u{10fffd}");
  });

  test("cutting at spaces gives the ids of merging the whole text (random texts, and the one token that spans a cut)", () => {
    const encoder = new SpmEncoder(vocab);
    const pieces = [
      "a",
      "b",
      " ",
      "  ",
      ">",
      "</",
      "< /",
      "the",
      "Hello",
      "é",
      "日本",
      "😀",
      "\n",
      "1",
      ".",
      "▁",
      "<",
      "/",
    ];
    let seed = 12345;
    const next = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed >>> 8;
    };
    const texts = [">▁</", "a>▁</b", "x > </y", "<b>bold</b> and <i>x</i>"];
    for (let n = 0; n < 300; n++) {
      let s = "";
      const count = 1 + (next() % 12);
      for (let k = 0; k < count; k++) s += pieces[next() % pieces.length];
      texts.push(s);
    }
    for (const text of texts) {
      const escaped = text.replaceAll(" ", "\u2581");
      const cut: number[] = [];
      const whole: number[] = [];
      encoder.encode(escaped, cut);
      encoder.encodeUncut(escaped, whole);
      expect(cut).toEqual(whole);
    }
  });
});
