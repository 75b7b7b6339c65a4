// What the two generating routes share: POST with a body schema, the body turned into choices,
// the choices answered whole or as SSE; every other method is a 405.
import type { TObject } from "@sinclair/typebox";
import { Elysia, type Static } from "elysia";
import type { RunContext } from "../choices.ts";
import type { Choice } from "../engine-request.ts";
import { wrongMethod } from "../http.ts";
import type { Endpoint } from "../logprobs.ts";
import type { CommonRequest } from "../schemas.ts";
import { respond } from "../sinks.ts";

export function generationRoute<S extends TObject>(
  run: RunContext,
  path: string,
  endpoint: Endpoint,
  schema: S,
  choicesOf: (body: Static<S>) => Choice[],
) {
  const post = wrongMethod("POST");
  return new Elysia()
    .post(
      path,
      ({ body, request }) => {
        const { stream, stream_options } = body as CommonRequest;
        const choices = choicesOf(body as Static<S>);
        return respond(
          run,
          endpoint,
          choices,
          stream === true,
          stream_options?.include_usage === true,
          request,
        );
      },
      { body: schema },
    )
    .get(path, post)
    .put(path, post)
    .patch(path, post)
    .delete(path, post);
}
