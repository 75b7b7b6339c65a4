// Builds DOM nodes from parsed Markdown. Model text only ever reaches the page as text nodes
// (createTextNode / textContent): no innerHTML, so a reply can never add markup or script.
import { type Block, type Inline, parseMarkdown } from "./markdown.ts";

type Attrs = Record<string, string>;

/** An element with attributes and children (strings become text nodes). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Array<Node | string>
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(typeof c === "string" ? document.createTextNode(c) : c);
  return node;
}

function inlineNodes(inlines: Inline[]): Node[] {
  return inlines.map((n): Node => {
    switch (n.kind) {
      case "text":
        return document.createTextNode(n.text);
      case "code":
        return el("code", {}, n.text);
      case "strong":
        return el("strong", {}, ...inlineNodes(n.children));
      case "em":
        return el("em", {}, ...inlineNodes(n.children));
      case "break":
        return el("br");
    }
    return el(
      "a",
      { href: n.href, rel: "noopener noreferrer nofollow", target: "_blank" },
      ...inlineNodes(n.children),
    );
  });
}

/** A code block with its language and a Copy button. */
export function codeBlock(text: string, lang: string): HTMLElement {
  const copy = el(
    "button",
    { type: "button", class: "copy", "aria-label": `Copy ${lang || "code"}` },
    "Copy",
  );
  copy.addEventListener("click", () => {
    navigator.clipboard?.writeText(text).then(
      () => {
        copy.textContent = "Copied";
        setTimeout(() => {
          copy.textContent = "Copy";
        }, 1500);
      },
      () => {
        copy.textContent = "Copy failed";
      },
    );
  });
  return el(
    "figure",
    { class: "code" },
    el("figcaption", {}, el("span", {}, lang || "text"), copy),
    el("pre", { tabindex: "0" }, el("code", {}, text)),
  );
}

function blockNode(b: Block): Node {
  switch (b.kind) {
    case "paragraph":
      return el("p", {}, ...inlineNodes(b.children));
    case "heading":
      // Replies sit under the page's own headings: h1 in a reply shows as h3.
      return el(`h${Math.min(6, b.level + 2)}` as "h3", {}, ...inlineNodes(b.children));
    case "code":
      return codeBlock(b.text, b.lang);
    case "list": {
      const list = b.ordered ? el("ol", b.start !== 1 ? { start: String(b.start) } : {}) : el("ul");
      for (const item of b.items) list.append(el("li", {}, ...item.map(blockNode)));
      return list;
    }
    case "quote":
      return el("blockquote", {}, ...b.children.map(blockNode));
    case "rule":
      return el("hr");
  }
}

/** Replaces the children of `into` with the rendering of Markdown `text`. */
export function renderMarkdown(into: HTMLElement, text: string): void {
  into.replaceChildren(...parseMarkdown(text).map(blockNode));
}
