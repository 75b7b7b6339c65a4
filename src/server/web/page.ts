// The chat page as one HTML document: the client bundle (bun build) and its stylesheet inlined,
// under a Content-Security-Policy that admits exactly those two (by hash) and calls to this server.
import { createHash } from "node:crypto";
import { join } from "node:path";

const clientDir = join(import.meta.dir, "client");

/** Most bytes the gzipped page may take (the budget). */
export const MAX_PAGE_GZIP_BYTES = 100 * 1024;

export interface ChatPage {
  html: string;
  gzip: Uint8Array<ArrayBuffer>;
}

function sha256(text: string): string {
  return `'sha256-${createHash("sha256").update(text).digest("base64")}'`;
}

/** Builds the page from src/server/web/client (needs the sources: a checkout or the npm package). */
export async function buildPageHtml(): Promise<string> {
  const built = await Bun.build({
    entrypoints: [join(clientDir, "main.ts")],
    target: "browser",
    format: "iife",
    minify: true,
  });
  const out = built.outputs[0];
  if (!built.success || out === undefined)
    throw new Error(`bun build of the chat page failed: ${built.logs.map(String).join("\n")}`);
  // `</script` inside the bundle would end the element early; `<\/` means the same to JS.
  const script = (await out.text()).replace(/<\/(script)/gi, "<\\/$1");
  const style = await Bun.file(join(clientDir, "style.css")).text();
  const csp = [
    "default-src 'none'",
    `script-src ${sha256(script)}`,
    `style-src ${sha256(style)}`,
    "connect-src 'self'",
    "img-src data:",
    "base-uri 'none'",
    "form-action 'none'",
  ].join("; ");
  const template = await Bun.file(join(clientDir, "index.html")).text();
  return fill(template, [
    [
      '<meta http-equiv="Content-Security-Policy" content="">',
      `<meta http-equiv="Content-Security-Policy" content="${csp}">`,
    ],
    ["<style></style>", `<style>${style}</style>`],
    ["<script></script>", `<script>${script}</script>`],
  ]);
}

/** The template with each empty element filled; each must occur exactly once. */
function fill(template: string, slots: Array<[string, string]>): string {
  let html = template;
  for (const [empty, filled] of slots) {
    const parts = html.split(empty);
    if (parts.length !== 2) throw new Error(`index.html must hold ${empty} exactly once`);
    // Joined, not replace()d: the bundle may contain `$&` and the like.
    html = parts.join(filled);
  }
  return html;
}

/** The page a compiled binary embeds: scripts/build-binary.ts adds chat-page.gz (Bun names it
 * chat-page-<hash>.gz). */
const EMBEDDED_NAME = /^chat-page-[a-z0-9]+\.gz$/;

async function loadPage(): Promise<ChatPage> {
  const embedded = Bun.embeddedFiles.find((f) =>
    EMBEDDED_NAME.test((f as Blob & { name?: string }).name ?? ""),
  );
  if (embedded !== undefined) {
    const gzip = new Uint8Array(await embedded.arrayBuffer());
    return { html: new TextDecoder().decode(Bun.gunzipSync(gzip)), gzip };
  }
  const html = await buildPageHtml();
  return { html, gzip: Bun.gzipSync(html) };
}

let cached: Promise<ChatPage> | null = null;

/** The page, built once per process (started on first call; later calls share it). */
export function chatPage(): Promise<ChatPage> {
  if (cached === null) {
    cached = loadPage();
    // A failed build answers the page's requests with its error; it must not end the process.
    cached.catch(() => {});
  }
  return cached;
}

// `bun src/server/web/page.ts OUT.gz` writes the page gzipped (scripts/build-binary.ts embeds it).
if (import.meta.main) {
  const out = process.argv[2];
  if (out === undefined) throw new Error("usage: bun src/server/web/page.ts OUT.gz");
  await Bun.write(out, Bun.gzipSync(await buildPageHtml()));
}
