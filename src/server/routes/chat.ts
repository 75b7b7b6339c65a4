// POST /v1/chat/completions: the messages rendered with the model's chat template, answered as
// one JSON body or SSE chunks.
import { Elysia } from "elysia";
import type { RunContext } from "../choices.ts";
import { chatChoices, type RequestContext } from "../engine-request.ts";
import { wrongMethod } from "../http.ts";
import { ChatCompletionBody } from "../schemas.ts";
import { respond } from "../sinks.ts";

export function chatRoute(run: RunContext, req: RequestContext) {
  const path = "/v1/chat/completions";
  const post = wrongMethod("POST");
  return new Elysia({ normalize: false })
    .post(
      path,
      ({ body, request }) =>
        respond(
          run,
          "chat",
          chatChoices(req, body),
          body.stream === true,
          body.stream_options?.include_usage === true,
          request,
        ),
      { body: ChatCompletionBody },
    )
    .get(path, post)
    .put(path, post)
    .patch(path, post)
    .delete(path, post);
}
