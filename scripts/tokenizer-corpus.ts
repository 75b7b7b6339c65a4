// Writes test/fixtures/tokenizer-corpus.json: the strings whose token ids must match llama.cpp's.
// The peers helper's fixture script reads this file; it is regenerated deterministically (seeded).
// Usage: bun scripts/tokenizer-corpus.ts

import { writeFileSync } from "node:fs";
import { join } from "node:path";

const corpus: string[] = [];
const add = (...items: string[]) => {
  for (const s of items) corpus.push(s);
};

// Plain English, casing and contractions (the pre-tokenizer splits 's 't 're 've 'm 'll 'd).
add(
  "Hello world",
  "Hello, world!",
  " Hello world",
  "hello",
  "HELLO WORLD",
  "The quick brown fox jumps over the lazy dog.",
  "It's a dog's life, isn't it? They're here, we've seen, I'm sure, you'll see, he'd go.",
  "IT'S LOUD, ISN'T IT? THEY'RE HERE, WE'VE SEEN, I'M SURE, YOU'LL SEE, HE'D GO.",
  "don't can't won't shouldn't",
  "'s 't 're 've 'm 'll 'd",
  "'hello' \"world\" `code`",
  "rock 'n' roll",
  "o'clock O'Brien d'Artagnan",
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine.",
  "What is the capital of France?",
  "Write a haiku about autumn leaves.",
  "Mr. Smith went to Washington D.C. on Jan. 5th, 2024 at 3:30 p.m.",
  "e.g. i.e. etc. vs. a.k.a.",
  "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
  "CamelCaseWordsLikeThis and snake_case_words_like_this and SCREAMING_SNAKE_CASE",
  "a b c d e f g h i j k l m n o p q r s t u v w x y z",
  "A",
  "a",
  " ",
  "",
  "!",
  "?!?!",
  "...",
  "…",
  "— – -",
  "well-known state-of-the-art mother-in-law",
  "email@example.com and https://www.example.org/path?query=1&b=2#frag",
  "http://localhost:8080/v1/chat/completions",
  "#hashtag @mention $dollar %percent ^caret &amp *star",
  "~tilde `backtick` |pipe| \\backslash\\ /slash/",
  "(parens) [brackets] {braces} <angles>",
  "*bold* _italic_ **strong** __under__ ~~strike~~",
  "# Heading\n\n## Subheading\n\n- item one\n- item two\n\n1. first\n2. second\n",
  "> quoted text\n> more quote",
  "| a | b |\n|---|---|\n| 1 | 2 |",
);

// Digits: llama.cpp's smollm pre-tokenizer splits digits individually, others in groups of 1-3.
for (let n = 1; n <= 20; n++) add("1234567890123456789012".slice(0, n));
add(
  "0",
  "00",
  "007",
  "3.14159",
  "-42",
  "+1 (555) 123-4567",
  "1,000,000",
  "1.000.000,50",
  "2024-01-15T12:34:56Z",
  "12:30:45",
  "v1.2.3",
  "0xDEADBEEF",
  "0b101010",
  "1e-10",
  "6.022e23",
  "100%",
  "$19.99",
  "€50",
  "£3.50",
  "¥1000",
  "abc123def456",
  "123abc",
  "a1b2c3d4",
  "x86_64",
  "H2O CO2 C6H12O6",
  "١٢٣٤٥٦٧٨٩٠",
  "१२३४५",
  "一二三四五六七八九十",
  "①②③",
  "½ ¾ ⅓",
  "²³¹ x² y³",
  "Ⅰ Ⅱ Ⅲ Ⅳ",
  "１２３４５ full-width digits",
);

// Whitespace runs of every kind.
for (let n = 1; n <= 16; n++) add(" ".repeat(n));
for (let n = 1; n <= 8; n++) add(`a${" ".repeat(n)}b`);
for (let n = 1; n <= 6; n++) add("\n".repeat(n), "\t".repeat(n));
add(
  "\r\n",
  "\r\n\r\n",
  "line one\r\nline two\r\n",
  "a\tb\tc",
  "\t\tindented with tabs",
  "    indented with spaces",
  "trailing spaces   ",
  "   leading spaces",
  "   both   ",
  "word\n\nword",
  "word \n word",
  "word  \n\n  word",
  " \n \n ",
  "\n \t \n",
  "a\u00a0b non-breaking space",
  "\u00a0\u00a0\u00a0",
  "ideographic\u3000space",
  "en\u2002em\u2003thin\u2009hair\u200a",
  "zero\u200bwidth\u200cjoiners\u200d",
  "line\u2028separator\u2029paragraph",
  "\u000b\u000c vertical tab and form feed",
  "\u0085 next line",
  "x\n",
  "\nx",
  "  \n\n\n  ",
  "end.\n\n\n\n\nstart",
);

// Code.
add(
  "function add(a, b) {\n  return a + b;\n}\n",
  "const x = [1, 2, 3].map((n) => n * 2);",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: corpus text, not a template
  "if (x === undefined || y !== null) { throw new Error(`bad: ${x}`); }",
  "export async function main(argv: string[]): Promise<number> {\n\treturn 0;\n}",
  "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
  "import numpy as np\nx = np.zeros((3, 4), dtype=np.float32)\n",
  "class Foo(Bar):\n    def __init__(self, *args, **kwargs):\n        super().__init__(*args, **kwargs)\n",
  'fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!("{:?}", v);\n}\n',
  '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); return 0; }\n',
  "pub fn dot(a: []const f32, b: []const f32) f32 {\n    var s: f32 = 0;\n    for (a, b) |x, y| s += x * y;\n    return s;\n}\n",
  'for i in $(seq 1 10); do echo "$i"; done',
  "git commit -m 'fix: handle empty input' && git log --oneline | head -5",
  "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
  '{"key": "value", "n": 123, "list": [true, false, null], "nested": {"a": 1.5e-3}}',
  "<div class=\"container\"><p id='x'>Hello &amp; welcome</p></div>",
  '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"></head>\n</html>',
  "body { margin: 0; padding: 0 1rem; color: #333; }",
  "x += 1; y -= 2; z *= 3; w /= 4; a %= 5; b **= 2; c <<= 1; d >>>= 3;",
  "a && b || !c ?? d?.e ?. f => g :: h -> i <=> j",
  "!== === != == <= >= << >> >>> ++ -- ** // /* */ <!-- -->",
  "/^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$/i",
  "key: value\nlist:\n  - a\n  - b\n",
  '[section]\nname = "hearth"\nversion = 1\n',
  "    \n    return;\n\n\n        }\n    }\n}",
  "\t\t\tif (x) {\n\t\t\t\ty();\n\t\t\t}\n",
  "__init__ __main__ __name__ _private",
  'std::vector<std::string> v; v.push_back("x");',
  "console.log('hello');;;",
  "λx.λy.x y",
  "∀x ∈ ℝ: x² ≥ 0 ∧ ∃y ≠ x",
  "∑_{i=1}^{n} i = n(n+1)/2",
  "$$\\frac{a}{b} + \\sqrt{x^2 + y^2}$$",
  "matrix[i][j] = matrix[j][i] * -1.0f;",
  "@decorator\ndef f(): pass",
  "#!/usr/bin/env bun\n// comment\n/** jsdoc */",
);

// Many scripts.
add(
  "你好，世界！",
  "我爱自然语言处理。今天天气很好，我们去公园散步吧。",
  "中文English混合mixed文本text",
  "日本語のテキストです。ひらがな、カタカナ、漢字。",
  "こんにちは世界",
  "カタカナ ｶﾀｶﾅ half-width",
  "한국어 텍스트입니다. 안녕하세요!",
  "안녕하세요 세계",
  "Привет, мир! Как дела?",
  "Съешь же ещё этих мягких французских булок, да выпей чаю.",
  "Ελληνικά: Γειά σου Κόσμε",
  "العربية: مرحبا بالعالم",
  "السلام عليكم ورحمة الله وبركاته",
  "עברית: שלום עולם",
  "हिन्दी: नमस्ते दुनिया",
  "বাংলা: হ্যালো বিশ্ব",
  "தமிழ்: வணக்கம் உலகம்",
  "తెలుగు: హలో ప్రపంచం",
  "ગુજરાતી ਪੰਜਾਬੀ ಕನ್ನಡ മലയാളം",
  "ไทย: สวัสดีชาวโลก",
  "ລາວ ພາສາ",
  "ខ្មែរ",
  "မြန်မာ",
  "ქართული: გამარჯობა",
  "Հայերեն: Բարեւ աշխարհ",
  "አማርኛ: ሰላም ዓለም",
  "ᚠᚢᚦᚨᚱᚲ runes",
  "Tiếng Việt: Xin chào thế giới, người Việt Nam",
  "Türkçe: İstanbul ıı İİ ğüşöç",
  "Polski: Zażółć gęślą jaźń",
  "Čeština: Příliš žluťoučký kůň úpěl ďábelské ódy",
  "Deutsch: Grüße aus Köln, Straße, Maß",
  "Français: À bientôt, ça va? L'été où œuvre",
  "Español: ¿Qué tal? ¡Mañana!",
  "Português: ação, coração, não",
  "Íslenska: þetta er ðetta",
  "Norsk: blåbærsyltetøy",
  "Ελληνικά ΑΒΓΔΕ αβγδε",
  "Українська: Ґанок, їжак, європа",
  "Монгол хэл",
  "ᓀᐦᐃᔭᐍᐏᐣ",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝓈𝒸𝓇𝒾𝓅𝓉",
  "𠀀𠀁𠀂 CJK extension B",
  "ꦲꦏ꧀ꦱꦫ Javanese",
  "ᠮᠣᠩᠭᠣᠯ mongolian script",
  "e\u0301 combining acute vs é precomposed",
  "a\u0300\u0301\u0302\u0303\u0304 stacked combining marks",
  "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319 zalgo",
  "ﬁ ﬂ ligatures",
  "Ａｂｃ full-width latin",
  "mañana vs man\u0303ana",
  "한\u1100\u1161 jamo",
  "\ufeffBOM at start",
  "replacement \ufffd char",
  "private use \ue000\uf8ff",
  "<<>> «» ‹› „“ ”",
);

// Emoji: single, modifiers, ZWJ sequences, flags, keycaps.
add(
  "😀",
  "😀😃😄😁",
  "I love pizza 🍕 and tacos 🌮!",
  "👍🏻👍🏼👍🏽👍🏾👍🏿",
  "👨‍👩‍👧‍👦 family",
  "👩‍💻 coding",
  "🏳️‍🌈 🏴‍☠️",
  "🇺🇸🇬🇧🇫🇷🇯🇵🇩🇪",
  "1️⃣ 2️⃣ #️⃣",
  "❤️ ♥ ❤",
  "🤖🧠💡🚀",
  "emoji at end 🎉",
  "🎉 emoji at start",
  "text🔥text",
  "🙂 🙃  😉   😊",
  "☀️⛅🌧️",
  "🫠🫡🫶",
  "🧑🏽‍🚀",
  "✅ done ❌ failed ⚠️ warning",
  "→ ← ↑ ↓ ⇒ ⇔",
  "★☆♠♣♥♦",
  "© ® ™ § ¶ † ‡",
);

// Special-token text: parsed as control tokens (ids) or plain text (idsPlain).
add(
  "<|endoftext|>",
  "<|im_start|>",
  "<|im_end|>",
  "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
  "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
  "Hello<|endoftext|>World",
  "Hello <|endoftext|> World",
  "<|im_end|><|im_start|>",
  "<|im_end|> <|im_start|>",
  "<|im_start|><|im_start|><|im_start|>",
  "text<|im_end|>",
  "<|im_start|>text",
  "  <|im_start|>  ",
  "\n<|im_end|>\n",
  "<|im_start",
  "im_start|>",
  "<|im_end|",
  "<|endoftext",
  "<|notatoken|>",
  "<| im_start |>",
  "<|IM_START|>",
  "<<|im_start|>>",
  "<|<|im_end|>|>",
  "<repo_name>hearth<file_sep>src/index.ts",
  "<filename>main.py<gh_stars>100",
  "<reponame>",
  "<issue_start>title<issue_comment>body<issue_closed>",
  "<jupyter_start><jupyter_text>hello<jupyter_code>print(1)<jupyter_output>1",
  "<empty_output>",
  "<commit_before>a<commit_msg>fix<commit_after>b",
  "<|endoftext|><|endoftext|>",
  "a<|endoftext|>b<|im_start|>c<|im_end|>d",
  "日本語<|im_end|>😀",
  "<s></s><unk><pad>",
  "[INST] hi [/INST]",
  "<|begin_of_text|><|eot_id|>",
);

// Longer mixed passages.
add(
  'The history of natural language processing generally started in the 1950s, although work can be found from earlier periods. In 1950, Alan Turing published an article titled "Computing Machinery and Intelligence" which proposed what is now called the Turing test as a criterion of intelligence.',
  "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.",
  'User: Can you help me write a function?\nAssistant: Sure! Here\'s an example:\n\n```python\ndef greet(name: str) -> str:\n    return f"Hello, {name}!"\n```\n\nLet me know if you need anything else.',
  "Q: 17 * 23 = ?\nA: 17 * 23 = 391.\nQ: 1234 + 5678 = ?\nA: 6912.",
  "Chapter 1\n\n\tIt was a bright cold day in April, and the clocks were striking thirteen.\n\n\tWinston Smith, his chin nuzzled into his breast...",
  "多语言测试: English, 中文, 日本語, 한국어, Русский, العربية, हिन्दी, ไทย, Ελληνικά — all in one line! 🌍",
  "Temperatures ranged from -12.5°C to 38.7°C (9.5°F to 101.7°F) across 1,234 weather stations in 2023.",
  'The API returned {"status": 200, "items": [{"id": 1}, {"id": 2}]} in 12.3ms.',
);

// Seeded random mixtures: pieces from every category glued with varied separators, so the
// corpus also covers boundaries between scripts, digits, punctuation and whitespace.
const pieces = [
  "hello",
  "World",
  "it's",
  "123",
  "4567",
  "3.5",
  "你好",
  "世界",
  "こんにちは",
  "안녕",
  "Привет",
  "مرحبا",
  "नमस्ते",
  "สวัสดี",
  "😀",
  "👨‍👩‍👧",
  "🇯🇵",
  "<|im_start|>",
  "<|im_end|>",
  "<|endoftext|>",
  "foo_bar",
  "fooBar",
  "x=1",
  "()",
  "{}",
  "[]",
  "->",
  "::",
  "...",
  "!?",
  "'ll",
  "'S",
  "é",
  "ß",
  "Ω",
  "\t",
  "\n",
  "  ",
  "   ",
  " \n",
  "\u00a0",
  "#",
  "@user",
  "$",
  "%",
  "ABC",
  "aBc",
  "ǅ",
  "İ",
];
const separators = ["", " ", "  ", "\n", "\t", " \n ", "-", ",", ", ", ".", "  \n\n"];
let rng_state = 0x9e3779b9;
const next = () => {
  // xorshift32: deterministic, so the corpus is stable across regenerations.
  rng_state ^= rng_state << 13;
  rng_state >>>= 0;
  rng_state ^= rng_state >>> 17;
  rng_state ^= rng_state << 5;
  rng_state >>>= 0;
  return rng_state;
};
const pick = <T>(xs: T[]): T => xs[next() % xs.length] as T;
while (corpus.length < 400) {
  const count = 2 + (next() % 8);
  let s = "";
  for (let i = 0; i < count; i++) s += (i > 0 ? pick(separators) : "") + pick(pieces);
  corpus.push(s);
}

const unique = [...new Set(corpus)];
const out = join(import.meta.dir, "..", "test", "fixtures", "tokenizer-corpus.json");
writeFileSync(out, `${JSON.stringify(unique, null, 1)}\n`);
console.log(`wrote ${unique.length} strings to ${out}`);
