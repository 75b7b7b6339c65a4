// Flags shared by `hearth run` and `hearth chat`: model loading, sampling, telemetry printing.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { progressBar } from "../gguf/pull.ts";
import { type LoadModelOptions, loadModel, type Model } from "../model.ts";
import { nativeLimits } from "../native/limits.ts";
import { DEFAULT_SAMPLER_OPTIONS as SAMPLING } from "../sampling/index.ts";
import type { GenerateOptions, Telemetry } from "../session.ts";

/** A bad command-line value: the command prints the message and its usage, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

interface FlagSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
}

/**
 * argv with every value-taking flag joined to the word after it (`--ctx -5` → `--ctx=-5`,
 * `-p -hello` → `--prompt=-hello`), so a value may start with "-" as getopt allows: node's
 * parseArgs refuses `--ctx -5` as ambiguous. Words after `--` are left alone.
 */
export function joinFlagValues(argv: string[], options: Record<string, FlagSpec>): string[] {
  const longOf = new Map<string, string>();
  for (const [name, spec] of Object.entries(options)) if (spec.short) longOf.set(spec.short, name);
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    let word = argv[i] as string;
    // llama.cpp's two-letter flag for the draft model (parseArgs would read it as -m -d).
    if (word === "-md" && options["model-draft"] !== undefined) word = "--model-draft";
    if (word === "--") {
      out.push(...argv.slice(i));
      break;
    }
    const name = /^--[^=]+$/.test(word)
      ? word.slice(2)
      : /^-[^-]$/.test(word)
        ? longOf.get(word.slice(1))
        : undefined;
    if (name !== undefined && options[name]?.type === "string" && i + 1 < argv.length) {
      out.push(`--${name}=${argv[i + 1]}`);
      i++;
    } else out.push(word);
  }
  return out;
}

/** parseArgs (strict) over `joinFlagValues`; an unknown flag or a missing value is a UsageError. */
export function parseFlags<O extends Record<string, FlagSpec>>(argv: string[], options: O) {
  const joined = joinFlagValues(argv, options);
  try {
    return parseArgs({ args: joined, options, allowPositionals: true, strict: true });
  } catch (err) {
    // Asking for help beside a half-typed flag (`run --help --ctx`) still gets the help; a
    // flag's value that reads "-h" (`-p -h`) is not a request for help.
    const end = joined.indexOf("--");
    const flags = end < 0 ? joined : joined.slice(0, end);
    if (flags.includes("--help") || flags.includes("-h")) {
      const onlyHelp = parseArgs({ args: ["--help"], options, allowPositionals: true, strict: true });
      return onlyHelp;
    }
    // Its first sentence says what is wrong; the rest is advice about "--" that rarely applies.
    throw new UsageError((err as Error).message.split(". ")[0] ?? String(err));
  }
}

/** parseArgs option specs of the shared flags. */
export const sharedOptions = {
  model: { type: "string", short: "m" },
  "model-draft": { type: "string" },
  "max-tokens": { type: "string", short: "n" },
  temp: { type: "string" },
  "top-k": { type: "string" },
  "top-p": { type: "string" },
  "min-p": { type: "string" },
  "repeat-penalty": { type: "string" },
  seed: { type: "string" },
  stop: { type: "string", multiple: true },
  "ignore-eos": { type: "boolean" },
  speculative: { type: "boolean" },
  "json-object": { type: "boolean" },
  draft: { type: "string" },
  threads: { type: "string", short: "t" },
  ctx: { type: "string", short: "c" },
  "batch-size": { type: "string", short: "b" },
  "kv-type": { type: "string" },
  "no-context-shift": { type: "boolean" },
  deterministic: { type: "boolean" },
  "chat-template": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

export const SHARED_HELP = `Model:
  -m, --model REF        model: a known name (default: SmolLM2-135M-Instruct Q4_1, fetched
                         on first use), a local .gguf path, or an http(s) URL
  -md, --model-draft REF a draft model with the same vocabulary (speculative decoding: it
                         proposes tokens, the model verifies them in one pass; same output)
  -t, --threads N        compute threads (default: $HEARTH_THREADS, else every core)
  -c, --ctx N            context size in tokens (default: the model's, at most 4096)
  -b, --batch-size N     most tokens per forward call during prefill (default 512)
      --kv-type T        KV cache storage: f16 (default) or q8_0
      --no-context-shift a full context is an error instead of dropping the oldest tokens
      --deterministic    fixed seed (0) unless --seed is given: same input, same output
      --chat-template FILE  a Jinja chat template to use instead of the model's
Sampling:
  -n, --max-tokens N     most tokens to generate (default 512)
      --temp T           temperature; 0 is greedy (default ${SAMPLING.temperature})
      --top-k K          keep the K most likely tokens; 0 disables (default ${SAMPLING.topK})
      --top-p P          nucleus sampling; 1 disables (default ${SAMPLING.topP})
      --min-p P          drop tokens below P x the best one's probability (default ${SAMPLING.minP})
      --repeat-penalty R penalty on recent tokens; 1 disables (default ${SAMPLING.repeatPenalty})
      --seed S           seed of the draw (same seed, same output)
      --stop TEXT        stop before TEXT (repeatable)
      --ignore-eos       keep generating past end-of-generation tokens
      --speculative      speculative decoding by prompt lookup: draft tokens copied from the
                         context, verified in one pass; same output, faster on replies that
                         repeat the prompt (code edits, quotes, lists)
      --draft N          most draft tokens per pass with --speculative (default 4, at most 16)
                         or with --model-draft (default 8; the depth adapts below it)
      --json-object      JSON mode: the reply is one JSON object (ask for JSON in the prompt
                         too); ends when the object closes`;

type Values = Partial<Record<keyof typeof sharedOptions, string | string[] | boolean>>;

/** A flag's number, checked in the CLI's terms; undefined when the flag is absent. */
export function flagNumber(
  flag: string,
  raw: unknown,
  opts: { int?: boolean; min?: number; max?: number; above?: number } = {},
): number | undefined {
  if (raw === undefined) return undefined;
  const text = String(raw).trim();
  const v = Number(text);
  if (text === "" || !Number.isFinite(v) || (opts.int === true && !Number.isInteger(v))) {
    throw new UsageError(
      `--${flag} must be ${opts.int ? "an integer" : "a number"}, got ${JSON.stringify(raw)}`,
    );
  }
  if (opts.min !== undefined && v < opts.min) {
    throw new UsageError(`--${flag} must be at least ${opts.min}, got ${v}`);
  }
  if (opts.above !== undefined && v <= opts.above) {
    throw new UsageError(`--${flag} must be greater than ${opts.above}, got ${v}`);
  }
  if (opts.max !== undefined && v > opts.max) {
    throw new UsageError(`--${flag} must be at most ${opts.max}, got ${v}`);
  }
  return v;
}

function num(
  values: Values,
  flag: keyof typeof sharedOptions,
  opts: { int?: boolean; min?: number; max?: number; above?: number } = {},
) {
  return flagNumber(flag, values[flag], opts);
}

/** Model options from the flags. */
export function loadOptions(values: Values, showProgress: boolean): LoadModelOptions {
  const kvType = values["kv-type"];
  if (kvType !== undefined && kvType !== "f16" && kvType !== "q8_0") {
    throw new UsageError(`--kv-type must be f16 or q8_0, got ${JSON.stringify(kvType)}`);
  }
  return {
    threads: num(values, "threads", { int: true, min: 1, max: nativeLimits().maxThreads }),
    // The context shift keeps the first 4 tokens; a context of a few tokens holds nothing else.
    contextTokens: num(values, "ctx", { int: true, min: 8 }),
    maxBatchTokens: num(values, "batch-size", { int: true, min: 1, max: nativeLimits().maxBatchTokens }),
    kvType: kvType as "f16" | "q8_0" | undefined,
    deterministic: values.deterministic === true,
    maxSessions: 1,
    pull: showProgress ? { onProgress: progressBar("pull") } : {},
    ...chatTemplateOption(values["chat-template"]),
    ...draftModelOption(values["model-draft"]),
  };
}

/** `--model-draft REF` / `-md REF`: the draft model of speculative decoding. */
function draftModelOption(ref: unknown): { draft?: string } {
  if (ref === undefined) return {};
  if (String(ref).trim() === "")
    throw new UsageError("--model-draft must name a model (a known name, a .gguf path or a URL)");
  return { draft: String(ref) };
}

/** `--chat-template FILE`: the file's text (a clear error when it cannot be read). */
export function chatTemplateOption(file: unknown): { chatTemplate?: string } {
  if (file === undefined) return {};
  let text: string;
  try {
    text = readFileSync(String(file), "utf8");
  } catch (err) {
    throw new UsageError(
      `--chat-template: cannot read ${JSON.stringify(String(file))}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  if (text.trim() === "") throw new UsageError(`--chat-template: ${JSON.stringify(String(file))} is empty`);
  return { chatTemplate: text };
}

/** Generation options from the flags. */
export function generateOptions(values: Values): GenerateOptions {
  const stop = values.stop;
  return {
    maxTokens: num(values, "max-tokens", { int: true, min: 1 }),
    temperature: num(values, "temp", { min: 0 }),
    topK: num(values, "top-k", { int: true, min: 0 }),
    topP: num(values, "top-p", { above: 0, max: 1 }),
    minP: num(values, "min-p", { min: 0, max: 1 }),
    repeatPenalty: num(values, "repeat-penalty", { above: 0 }),
    seed: num(values, "seed", { int: true, min: -(2 ** 53 - 1), max: 2 ** 53 - 1 }),
    stop: Array.isArray(stop) ? stop : undefined,
    ignoreEos: values["ignore-eos"] === true,
    speculative: speculativeOption(values),
    json: values["json-object"] === true,
  };
}

function speculativeOption(values: Values): GenerateOptions["speculative"] {
  const draft = num(values, "draft", { int: true, min: 1 });
  const withModel = values["model-draft"] !== undefined;
  if (draft !== undefined && values.speculative !== true && !withModel)
    throw new UsageError("--draft needs --speculative or --model-draft");
  if (draft !== undefined && draft > 16) throw new UsageError(`--draft must be at most 16, got ${draft}`);
  // A draft model drafts by default (the library's rule); --draft sets its depth.
  if (values.speculative !== true) return draft === undefined ? undefined : { maxDraftTokens: draft };
  if (values["json-object"] === true) throw new UsageError("--json-object takes no --speculative drafts");
  return draft === undefined ? true : { maxDraftTokens: draft };
}

export async function openModel(values: Values, showProgress: boolean): Promise<Model> {
  const opts = loadOptions(values, showProgress);
  const model = await loadModel(typeof values.model === "string" ? values.model : undefined, opts);
  const trained = model.info.contextLength;
  if (opts.contextTokens !== undefined && trained > 0 && opts.contextTokens > trained)
    console.error(
      `[hearth] warning: --ctx ${opts.contextTokens} is beyond the ${trained} tokens this model was trained on; text past that point may degrade`,
    );
  return model;
}

/** One line of telemetry for stderr. */
export function formatTelemetry(t: Telemetry): string {
  const f = (v: number, d = 1) => v.toFixed(d);
  const parts = [
    `prompt ${t.promptTokens} tok${t.cachedTokens > 0 ? ` (+${t.cachedTokens} cached)` : ""} ${f(t.prefillMs, 0)} ms (${f(t.prefillTokensPerS)} tok/s)`,
    `generated ${t.generatedTokens} tok, decode ${f(t.decodeTokensPerS)} tok/s`,
    `ttft ${t.timeToFirstTokenMs === null ? "-" : `${f(t.timeToFirstTokenMs, 0)} ms`}`,
    `total ${f(t.totalMs, 0)} ms`,
    `finish ${t.finishReason ?? "-"}`,
  ];
  if (t.draftTokens > 0) {
    const d = t.drafts;
    const bySource =
      d.modelProposed > 0
        ? ` (proposed: model ${d.modelAccepted}/${d.modelProposed}, lookup ${d.lookupAccepted}/${d.lookupProposed})`
        : "";
    parts.push(`drafts accepted ${t.acceptedDraftTokens}/${t.draftTokens}${bySource}`);
  }
  if (t.contextShifts > 0) parts.push(`context shifts ${t.contextShifts} (-${t.droppedTokens} tok)`);
  return `[hearth] ${parts.join(" | ")}`;
}
