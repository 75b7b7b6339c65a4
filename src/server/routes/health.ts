// GET /health: 200 while the engine runs, 503 once it is gone (the only route without the key).
import { Elysia } from "elysia";
import type { ServingEngine } from "../choices.ts";
import { wrongMethod } from "../http.ts";
import { Health } from "../schemas.ts";

export function healthRoute(engine: ServingEngine) {
  return new Elysia()
    .get(
      "/health",
      ({ set }) => {
        if (engine.available) return { status: "ok" as const };
        set.status = 503;
        return { status: "unavailable" as const };
      },
      { response: { 200: Health, 503: Health } },
    )
    .post("/health", wrongMethod("GET"));
}
