// POST /v1/completions (the legacy endpoint): one or several prompts, texts or token ids, each
// answered by n choices, with echo and per-token log-probabilities.
import { Elysia } from "elysia";
import type { RunContext } from "../choices.ts";
import { completionChoices, type RequestContext } from "../engine-request.ts";
import { wrongMethod } from "../http.ts";
import { CompletionBody } from "../schemas.ts";
import { respond } from "../sinks.ts";

export function completionsRoute(run: RunContext, req: RequestContext) {
  const path = "/v1/completions";
  const post = wrongMethod("POST");
  return new Elysia({ normalize: false })
    .post(
      path,
      ({ body, request }) =>
        respond(
          run,
          "completion",
          completionChoices(req, body),
          body.stream === true,
          body.stream_options?.include_usage === true,
          request,
        ),
      { body: CompletionBody },
    )
    .get(path, post)
    .put(path, post)
    .patch(path, post)
    .delete(path, post);
}
