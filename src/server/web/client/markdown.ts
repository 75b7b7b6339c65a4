// A small Markdown parser for chat replies: text in, a tree of blocks and inlines out. It never
// produces HTML: the page builds DOM nodes from the tree (render.ts), so model output stays text.

export type Inline =
  | { kind: "text"; text: string }
  | { kind: "code"; text: string }
  | { kind: "strong"; children: Inline[] }
  | { kind: "em"; children: Inline[] }
  | { kind: "link"; href: string; children: Inline[] }
  | { kind: "break" };

export type Block =
  | { kind: "paragraph"; children: Inline[] }
  | { kind: "heading"; level: number; children: Inline[] }
  /** `open`: the closing fence has not arrived yet (a reply still streaming). */
  | { kind: "code"; lang: string; text: string; open: boolean }
  | { kind: "list"; ordered: boolean; start: number; items: Block[][] }
  | { kind: "quote"; children: Block[] }
  | { kind: "rule" };

/** Deepest nesting of quotes, lists and inline markup; past it, text stays plain. */
const MAX_DEPTH = 8;

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const BULLET = /^( {0,3})[-*+]\s+(.*)$/;
const ORDERED = /^( {0,3})(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;

/** Parses Markdown text into blocks. */
export function parseMarkdown(text: string, depth = 0): Block[] {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  const blocks: Block[] = [];
  let i = 0;
  const startsBlock = (line: string) =>
    FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || isItem(line);
  while (i < lines.length) {
    const line = lines[i] as string;
    if (line.trim() === "") {
      i++;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const marker = fence[1] as string;
      const body: string[] = [];
      i++;
      let open = true;
      while (i < lines.length) {
        const l = lines[i] as string;
        i++;
        if (l.trim().startsWith(marker) && l.trim().replaceAll(marker[0] as string, "") === "") {
          open = false;
          break;
        }
        body.push(l);
      }
      blocks.push({ kind: "code", lang: fence[2] ?? "", text: body.join("\n"), open });
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      blocks.push({
        kind: "heading",
        level: (heading[1] as string).length,
        children: parseInline(heading[2] as string, depth),
      });
      i++;
      continue;
    }
    if (RULE.test(line)) {
      blocks.push({ kind: "rule" });
      i++;
      continue;
    }
    if (depth < MAX_DEPTH && QUOTE.test(line)) {
      const inner: string[] = [];
      while (i < lines.length && QUOTE.test(lines[i] as string)) {
        inner.push((QUOTE.exec(lines[i] as string) as RegExpExecArray)[1] as string);
        i++;
      }
      blocks.push({ kind: "quote", children: parseMarkdown(inner.join("\n"), depth + 1) });
      continue;
    }
    if (depth < MAX_DEPTH && isItem(line)) {
      const ordered = ORDERED.test(line);
      const first = ordered ? (ORDERED.exec(line) as RegExpExecArray) : null;
      const items: string[][] = [];
      while (i < lines.length) {
        const l = lines[i] as string;
        const item = ordered ? ORDERED.exec(l) : BULLET.exec(l);
        if (item) {
          items.push([(ordered ? item[3] : item[2]) as string]);
          i++;
          continue;
        }
        // An indented line continues the item (a nested list, a second paragraph).
        if (l.trim() !== "" && /^\s{2,}/.test(l) && items.length > 0) {
          (items[items.length - 1] as string[]).push(l.replace(/^\s{2,4}/, ""));
          i++;
          continue;
        }
        // One blank line between items keeps the list going.
        const next = lines[i + 1];
        if (l.trim() === "" && next !== undefined && (ordered ? ORDERED : BULLET).test(next)) {
          i++;
          continue;
        }
        break;
      }
      blocks.push({
        kind: "list",
        ordered,
        start: first ? Number(first[2]) : 1,
        items: items.map((item) => parseMarkdown(item.join("\n"), depth + 1)),
      });
      continue;
    }
    const para: string[] = [];
    while (i < lines.length) {
      const l = lines[i] as string;
      if (l.trim() === "" || (para.length > 0 && startsBlock(l))) break;
      para.push(l.trim());
      i++;
    }
    const children: Inline[] = [];
    for (const [k, l] of para.entries()) {
      if (k > 0) children.push({ kind: "break" });
      children.push(...parseInline(l, depth));
    }
    blocks.push({ kind: "paragraph", children });
  }
  return blocks;
}

function isItem(line: string): boolean {
  return (BULLET.test(line) && !RULE.test(line)) || ORDERED.test(line);
}

/** Link targets the page follows: web addresses and mail only (never javascript: or data:). */
export function safeHref(href: string): string | null {
  try {
    const url = new URL(href);
    return url.protocol === "http:" || url.protocol === "https:" || url.protocol === "mailto:"
      ? url.href
      : null;
  } catch {
    return null;
  }
}

/** Parses inline Markdown: `code`, **strong**, *em* / _em_, [text](url). */
export function parseInline(text: string, depth = 0): Inline[] {
  const out: Inline[] = [];
  let plain = "";
  const flush = () => {
    if (plain !== "") out.push({ kind: "text", text: plain });
    plain = "";
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === "\\" && i + 1 < text.length && /[\\`*_[\]()#>+\-.!~]/.test(text[i + 1] as string)) {
      plain += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "`") {
      const run = /^`+/.exec(text.slice(i))?.[0] as string;
      const end = text.indexOf(run, i + run.length);
      if (end > 0) {
        flush();
        out.push({ kind: "code", text: text.slice(i + run.length, end).replace(/^ (.+) $/, "$1") });
        i = end + run.length;
        continue;
      }
      plain += run;
      i += run.length;
      continue;
    }
    if (depth < MAX_DEPTH && (c === "*" || c === "_")) {
      const double = text[i + 1] === c;
      const marker = double ? c + c : c;
      const end = closing(text, i + marker.length, marker);
      // `_` inside a word (snake_case) is not emphasis.
      const inWord = c === "_" && i > 0 && /\w/.test(text[i - 1] as string);
      if (end > i + marker.length && !inWord) {
        flush();
        const children = parseInline(text.slice(i + marker.length, end), depth + 1);
        out.push(double ? { kind: "strong", children } : { kind: "em", children });
        i = end + marker.length;
        continue;
      }
      plain += marker;
      i += marker.length;
      continue;
    }
    if (depth < MAX_DEPTH && c === "[") {
      const m = /^\[([^\]\n]+)\]\(([^)\s]+)\)/.exec(text.slice(i));
      const href = m ? safeHref(m[2] as string) : null;
      if (m && href !== null) {
        flush();
        out.push({ kind: "link", href, children: parseInline(m[1] as string, depth + 1) });
        i += m[0].length;
        continue;
      }
    }
    plain += c;
    i++;
  }
  flush();
  return out;
}

/** Where `marker` closes emphasis opened before `from`: not after a space, not empty. */
function closing(text: string, from: number, marker: string): number {
  if (/\s/.test(text[from] ?? " ")) return -1;
  let at = text.indexOf(marker, from);
  while (at > 0) {
    const before = text[at - 1] as string;
    const after = text[at + marker.length] ?? "";
    const single = marker.length === 1 && after === marker;
    if (!/\s/.test(before) && !single && !(marker[0] === "_" && /\w/.test(after))) return at;
    at = text.indexOf(marker, at + (single ? 2 : 1));
  }
  return -1;
}
