// POST /v1/completions (the legacy endpoint): one or several prompts, texts or token ids, each
// answered by n choices, with echo and per-token log-probabilities.
import type { RunContext } from "../choices.ts";
import { completionChoices, type RequestContext } from "../engine-request.ts";
import { CompletionBody } from "../schemas.ts";
import { generationRoute } from "./generation.ts";

export function completionsRoute(run: RunContext, req: RequestContext) {
  return generationRoute(run, "/v1/completions", "completion", CompletionBody, (body) =>
    completionChoices(req, body),
  );
}
