// The chat page's routes as an Elysia plugin: GET / (public: it holds no data, and asks for the API
// key itself) answers browsers with the page and other clients with the routes' text; /web/info
// gives the model's name and context size (behind the key).
import { Elysia } from "elysia";
import { routesText } from "../routes/index.ts";
import { chatPage } from "./page.ts";

export interface WebPageOptions {
  modelId: string;
  contextTokens: number;
}

export function webPage(opts: WebPageOptions) {
  const page = chatPage();
  const info = { model: opts.modelId, context_tokens: opts.contextTokens };
  const text = routesText(opts.modelId);
  return new Elysia()
    .get("/", async ({ request }) => {
      if (!/\btext\/html\b/.test(request.headers.get("accept") ?? ""))
        return new Response(text, {
          headers: { "content-type": "text/plain; charset=utf-8", vary: "Accept" },
        });
      let built: Awaited<typeof page>;
      try {
        built = await page;
      } catch (err) {
        return new Response(`the chat page could not be built: ${(err as Error).message}`, {
          status: 500,
          headers: { "content-type": "text/plain; charset=utf-8" },
        });
      }
      const gzip = /\bgzip\b/.test(request.headers.get("accept-encoding") ?? "");
      return new Response(gzip ? built.gzip : built.html, {
        headers: {
          "content-type": "text/html; charset=utf-8",
          ...(gzip ? { "content-encoding": "gzip" } : {}),
          vary: "Accept, Accept-Encoding",
          "cache-control": "no-cache",
          "x-content-type-options": "nosniff",
          "x-frame-options": "DENY",
          "referrer-policy": "no-referrer",
        },
      });
    })
    .get("/web/info", () => info);
}
