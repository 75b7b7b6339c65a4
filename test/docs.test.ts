// The README and docs/ as a newcomer meets them: every relative link and every docs/ path they
// name resolves to a file in the repository, and docs/library.md names every export of the
// library's entry point (src/index.ts).
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

const ROOT = join(import.meta.dir, "..");
const read = (p: string) => readFileSync(join(ROOT, p), "utf8");

/** Relative link targets of a Markdown file ([text](target), anchors and URLs left out). */
function linkTargets(md: string): string[] {
  const out: string[] = [];
  for (const m of md.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = (m[1] as string).split("#")[0] as string;
    if (target === "" || /^[a-z]+:/i.test(target)) continue;
    out.push(target);
  }
  return out;
}

/** The names src/index.ts exports (values and types). */
function indexExports(): string[] {
  const src = read("src/index.ts");
  const names: string[] = [];
  for (const m of src.matchAll(/^export\s*\{([^}]*)\}\s*from/gm)) {
    for (const part of (m[1] as string).split(",")) {
      const name = part.trim().replace(/^type\s+/, "");
      if (name !== "") names.push(name.split(/\s+as\s+/).pop() as string);
    }
  }
  return names;
}

const MARKDOWN = [
  "README.md",
  ...readdirSync(join(ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];

describe("docs", () => {
  test.each(MARKDOWN)("%s: every relative link resolves", (file) => {
    const missing = linkTargets(read(file)).filter((t) => !existsSync(join(ROOT, dirname(file), t)));
    expect(missing).toEqual([]);
  });

  test("README: every docs/ file it names exists", () => {
    const named = [...read("README.md").matchAll(/\bdocs\/[\w.-]+\.(?:md|png)\b/g)].map((m) => m[0]);
    expect(named.length).toBeGreaterThan(5);
    expect(named.filter((p) => !existsSync(join(ROOT, p)))).toEqual([]);
  });

  test("README: short (about 10 KB at most)", () => {
    expect(read("README.md").length).toBeLessThanOrEqual(10_500);
  });

  test("docs/library.md names every export of src/index.ts", () => {
    const names = indexExports();
    expect(names.length).toBeGreaterThan(40);
    const doc = read("docs/library.md");
    expect(names.filter((n) => !new RegExp(`\\b${n}\\b`).test(doc))).toEqual([]);
  });
});
