// GET /v1/models and /v1/models/{id}: the one model this server serves.
import { Elysia } from "elysia";
import { apiError } from "../errors.ts";
import { wrongMethod } from "../http.ts";
import { type ModelBody, ModelList } from "../schemas.ts";

export function modelsRoute(modelId: string) {
  const model: ModelBody = {
    id: modelId,
    object: "model",
    created: Math.floor(Date.now() / 1000),
    owned_by: "hearth",
  };
  return new Elysia()
    .get("/v1/models", () => ({ object: "list" as const, data: [model] }), { response: ModelList })
    .post("/v1/models", wrongMethod("GET"))
    .get("/v1/models/*", ({ params }) => {
      let id = params["*"];
      try {
        id = decodeURIComponent(id);
      } catch {
        // A malformed %-escape names no model either.
      }
      if (id === modelId) return model;
      return apiError(
        404,
        `The model '${id}' does not exist; this server has '${modelId}'`,
        "invalid_request_error",
        "model",
        {},
        "model_not_found",
      );
    });
}
