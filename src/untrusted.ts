// Strings that come from a model file or a request, made safe to print: no terminal escape
// sequences, no invisible reordering, a bounded length.
//
// A malformed GGUF can name a tensor "\x1b]0;pwned\x07" or a key that is 4 GB of NULs; a request
// can carry the same in a stop string. Every such string that reaches an error message, a log
// line or a terminal goes through `quoteUntrusted` (one piece, quoted) or `escapeUnprintable`
// (a whole message, as a last line of defence where it is printed).

/** Longest untrusted string shown in full; longer ones are cut with their length stated. */
export const UNTRUSTED_SHOWN_CHARS_MAX = 120;

// C0 controls (but tab), DEL, C1 controls, the bidi embeddings/overrides/isolates and marks that
// reorder what follows them (Trojan Source), zero-width characters, the line/paragraph separators,
// the BOM and lone surrogates.
const UNPRINTABLE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  /[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function escapeCodeUnit(ch: string): string {
  switch (ch) {
    case "\n":
      return "\\n";
    case "\r":
      return "\\r";
    case "\x1b":
      return "\\e";
    default: {
      const code = ch.charCodeAt(0);
      return code <= 0xff
        ? `\\x${code.toString(16).padStart(2, "0")}`
        : `\\u${code.toString(16).padStart(4, "0")}`;
    }
  }
}

/** `s` with every unprintable or reordering character written as a visible escape. */
export function escapeUnprintable(s: string): string {
  return s.replace(UNPRINTABLE, escapeCodeUnit);
}

/**
 * `s` in double quotes, safe for a terminal or a log: quotes and backslashes escaped, unprintable
 * characters escaped, and at most `maxChars` characters of it shown (the rest counted).
 */
export function quoteUntrusted(s: string, maxChars = UNTRUSTED_SHOWN_CHARS_MAX): string {
  // Cut before escaping (escapes lengthen) and never between the halves of a surrogate pair.
  let shown = s;
  let cut = "";
  if (s.length > maxChars) {
    let end = maxChars;
    const last = s.charCodeAt(end - 1);
    if (last >= 0xd800 && last <= 0xdbff) end -= 1;
    shown = s.slice(0, end);
    cut = `... (${s.length} characters)`;
  }
  const body = escapeUnprintable(shown.replace(/[\\"]/g, (c) => `\\${c}`));
  return `"${body}"${cut}`;
}
