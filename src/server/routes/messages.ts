// POST /v1/messages: Anthropic's Messages API (the turns rendered with the model's chat template),
// answered as one `message` or Anthropic's SSE events; POST /v1/messages/count_tokens: the
// prompt's token count. Errors in Anthropic's shape.
import { Elysia } from "elysia";
import { respondMessages } from "../anthropic.ts";
import { anthropicError } from "../anthropic-errors.ts";
import { checkBlocks, messagesChoice, messagesPrompt } from "../anthropic-request.ts";
import { CountTokensBody, MessagesBody } from "../anthropic-schemas.ts";
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
    .post(
      "/v1/messages/count_tokens",
      ({ body }) => ({ input_tokens: messagesPrompt(req, body).ids.length }),
      { body: CountTokensBody, transform: ({ body }) => checkBlocks(body) },
    )
    .get("/v1/messages/count_tokens", post)
    .get("/v1/messages", post)
    .put("/v1/messages", post)
    .patch("/v1/messages", post)
    .delete("/v1/messages", post);
}
