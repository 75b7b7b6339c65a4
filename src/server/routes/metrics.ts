// GET /metrics: Prometheus text (requests, tokens, latencies, queue, KV pages, prefix cache).
import { Elysia } from "elysia";
import type { ServingEngine } from "../choices.ts";
import { wrongMethod } from "../http.ts";
import type { ServerMetrics } from "../metrics.ts";

export function metricsRoute(engine: ServingEngine, metrics: ServerMetrics) {
  return new Elysia()
    .get("/metrics", ({ set }) => {
      set.headers["content-type"] = "text/plain; version=0.0.4";
      return metrics.render(engine.stats);
    })
    .post("/metrics", wrongMethod("GET"));
}
