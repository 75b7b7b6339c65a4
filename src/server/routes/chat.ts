// POST /v1/chat/completions: the messages rendered with the model's chat template, answered as
// one JSON body or SSE chunks.
import type { RunContext } from "../choices.ts";
import { chatChoices, type RequestContext } from "../engine-request.ts";
import { ChatCompletionBody } from "../schemas.ts";
import { generationRoute } from "./generation.ts";

export function chatRoute(run: RunContext, req: RequestContext) {
  return generationRoute(run, "/v1/chat/completions", "chat", ChatCompletionBody, (body) =>
    chatChoices(req, body),
  );
}
