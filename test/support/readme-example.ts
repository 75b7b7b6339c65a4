// The README's "Library API" example: the first ```ts block after that heading.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export function readmeLibraryExample(): string {
  const readme = readFileSync(join(import.meta.dir, "..", "..", "README.md"), "utf8");
  const at = readme.indexOf("## Library API");
  if (at < 0) throw new Error("README: no ## Library API heading");
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  if (m === null || m[1] === undefined) throw new Error("README: no ```ts block under ## Library API");
  return m[1];
}

/** The lines the example prints, as the tests expect them. */
export const EXAMPLE_OUTPUT = [
  /^completion: \S.*$/m,
  /^decode tok\/s: \d+\.\d$/m,
  /^reply: \S.*$/m,
  /^ttft \d+ ms, \d+ tokens, (eos|length|stop)$/m,
];
