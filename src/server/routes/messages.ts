// POST /v1/messages: Anthropic's Messages API (the turns rendered with the model's chat template),
// answered as one `message` or Anthropic's SSE events; errors in Anthropic's shape.
import { Elysia } from "elysia";
import { respondMessages } from "../anthropic.ts";
import { anthropicError } from "../anthropic-errors.ts";
import { checkBlocks, messagesChoice } from "../anthropic-request.ts";
import { MessagesBody } from "../anthropic-schemas.ts";
import type { RunContext } from "../choices.ts";
import type { RequestContext } from "../engine-request.ts";

export function messagesRoute(run: RunContext, req: RequestContext) {
  const post = () =>
    anthropicError(405, "this route takes POST with a JSON body", "", null, { allow: "POST" });
  return new Elysia()
    .post(
      "/v1/messages",
      ({ body, request }) => respondMessages(run, messagesChoice(req, body), body.stream === true, request),
      { body: MessagesBody, transform: ({ body }) => checkBlocks(body) },
    )
    .get("/v1/messages", post)
    .put("/v1/messages", post)
    .patch("/v1/messages", post)
    .delete("/v1/messages", post);
}
