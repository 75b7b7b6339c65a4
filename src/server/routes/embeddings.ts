// POST /v1/embeddings (OpenAI's shape): a text, texts, token ids or lists of them, each pooled by
// the engine into one unit vector (src/engine/embed.ts: the GGUF's pooling, L2-normalised, many
// inputs per forward pass), answered as floats or as base64 float32 bytes.
import { Elysia } from "elysia";
import { embeddingInput } from "../../engine/embed.ts";
import type { EmbedListener } from "../../engine/index.ts";
import type { Tokenizer } from "../../tokenizer/index.ts";
import { type RunContext, submitError } from "../choices.ts";
import { apiError, RequestError } from "../errors.ts";
import { wrongMethod } from "../http.ts";
import { EmbeddingBody, type EmbeddingListBody, type EmbeddingRequest } from "../schemas.ts";

/** What the route needs from the engine (src/engine's Engine has it). */
export interface EmbeddingEngine {
  readonly info: { embeddingLength: number; vocabSize: number };
  submitEmbed(inputs: readonly (readonly number[])[], onEvent: EmbedListener): string;
  cancel(id: string): void;
}

export interface EmbeddingContext {
  engine: EmbeddingEngine;
  tokenizer: Tokenizer;
  /** Most tokens of one input. */
  contextTokens: number;
}

/** The request's inputs as token ids, each checked against the context and the vocabulary. */
export function embeddingInputs(ctx: EmbeddingContext, body: EmbeddingRequest): number[][] {
  const raw = body.input;
  const items: (string | number[])[] =
    typeof raw === "string" ? [raw] : typeof raw[0] === "number" ? [raw as number[]] : (raw as string[]);
  const vocab = ctx.engine.info.vocabSize;
  return items.map((item, i) => {
    let ids: number[];
    try {
      ids = typeof item === "string" ? embeddingInput(ctx.tokenizer, item, i) : item;
    } catch (err) {
      throw new RequestError(`invalid request: input: ${(err as Error).message}`, "input");
    }
    if (ids.length > ctx.contextTokens)
      throw new RequestError(
        `This model's maximum context length is ${ctx.contextTokens} tokens per input; input ${i} has ${ids.length} tokens.`,
        "input",
        "context_length_exceeded",
      );
    const bad = ids.find((id) => id >= vocab);
    if (bad !== undefined)
      throw new RequestError(
        `invalid request: input ${i} holds ${bad}, not a token id below ${vocab}`,
        "input",
      );
    return ids;
  });
}

/** Little-endian float32 bytes in base64, as OpenAI sends them (every platform hearth runs on is little-endian). */
function base64Of(v: Float32Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64");
}

export function embeddingsRoute(run: RunContext, ctx: EmbeddingContext) {
  const post = wrongMethod("POST");
  const dims = ctx.engine.info.embeddingLength;
  return new Elysia()
    .post(
      "/v1/embeddings",
      ({ body, request }) => {
        if (body.dimensions != null && body.dimensions !== dims)
          throw new RequestError(
            `invalid request: dimensions ${body.dimensions} is not supported: this model's embeddings have ${dims} dimensions (hearth does not shorten them)`,
            "dimensions",
          );
        const inputs = embeddingInputs(ctx, body);
        const base64 = body.encoding_format === "base64";
        return new Promise<Response>((resolve) => {
          let id = "";
          const onAbort = () => ctx.engine.cancel(id);
          const answer = (r: Response) => {
            request.signal.removeEventListener("abort", onAbort);
            resolve(r);
          };
          try {
            id = ctx.engine.submitEmbed(inputs, (ev) => {
              if (ev.type === "error") {
                run.metrics.countRequest("embeddings", "error");
                answer(apiError(500, ev.message, "server_error", null, {}, ev.code ?? null));
                return;
              }
              run.metrics.countRequest("embeddings", "ok");
              const data = inputs.map((_, i) => {
                const v = ev.vectors.subarray(i * ev.dims, (i + 1) * ev.dims);
                return {
                  object: "embedding" as const,
                  index: i,
                  embedding: base64 ? base64Of(v) : Array.from(v),
                };
              });
              const list: EmbeddingListBody = {
                object: "list",
                data,
                model: run.modelId,
                usage: { prompt_tokens: ev.promptTokens, total_tokens: ev.promptTokens },
              };
              answer(Response.json(list));
            });
          } catch (err) {
            const unavailable = (err as Error).name === "EngineUnavailableError";
            run.metrics.countRequest("embeddings", unavailable ? "unavailable" : "queue_full");
            answer(submitError(run, err));
            return;
          }
          request.signal.addEventListener("abort", onAbort, { once: true });
        });
      },
      { body: EmbeddingBody },
    )
    .get("/v1/embeddings", post)
    .put("/v1/embeddings", post)
    .patch("/v1/embeddings", post)
    .delete("/v1/embeddings", post);
}
