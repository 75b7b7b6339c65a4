// Speculative decoding (GenerateOptions.speculative). Prompt lookup on replies that repeat their
// prompt: decode tokens/s with and without it, beside llama.cpp's own prompt-lookup predictor
// (node-llama-cpp InputLookupTokenPredictor) in the same run. A draft model on a chat reply that
// does not repeat its prompt: speculative-draft.ts, beside native llama.cpp's llama-speculative.
// Greedy, so the text must not change; the suite fails if hearth's speculative text differs from
// its plain text.
import { loadModel } from "../src/index.ts";
import { type BenchOptions, type Cell, runStandalone, type SuiteResult } from "./lib.ts";
import { peerLookup } from "./peers/run.ts";
import { draftModelRows } from "./speculative-draft.ts";

const DRAFT = 4;

/** Lookup rows: prompts whose replies repeat them (rows named "list" and "code"). */
const PROMPTS: Array<{ name: string; prompt: string }> = [
  {
    name: "list",
    prompt:
      "List: red apple, green pear, yellow banana, red apple, green pear, yellow banana, red apple, green pear, yellow banana, red apple, green pear,",
  },
  {
    name: "code",
    prompt:
      "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n\ndef mul(a, b):\n    return a * b\n\ndef div(a, b):\n    return a / b\n\n# The same four functions with type hints:\n",
  },
];

interface Timed {
  tps: number;
  text: string;
  drafts: number;
  accepted: number;
}

export async function run(opts: BenchOptions): Promise<SuiteResult> {
  const tokens = opts.quick ? 48 : 128;
  const model = await loadModel(undefined, { threads: opts.threads, contextTokens: 2048, maxSessions: 1 });
  const rows: Array<Record<string, Cell>> = [];
  const summary: Record<string, number | string | null> = {};
  const notes: string[] = [];
  try {
    const timed = async (prompt: string, speculative: boolean): Promise<Timed> => {
      const s = model.createSession();
      try {
        await s.prefill(prompt);
        let first = 0;
        let count = 0;
        let text = "";
        const it = s.generate({
          maxTokens: tokens,
          temperature: 0,
          ignoreEos: true,
          speculative: speculative ? { maxDraftTokens: DRAFT } : false,
        });
        for await (const piece of it) {
          if (first === 0) first = performance.now();
          text += piece;
        }
        const t = s.lastTelemetry;
        count = t?.generatedTokens ?? 0;
        const ms = performance.now() - first;
        return {
          tps: ((count - 1) * 1000) / ms,
          text,
          drafts: t?.draftTokens ?? 0,
          accepted: t?.acceptedDraftTokens ?? 0,
        };
      } finally {
        s.close();
      }
    };
    await timed(PROMPTS[0]?.prompt as string, false); // warm-up
    for (const { name, prompt } of PROMPTS) {
      const plain = await timed(prompt, false);
      const spec = await timed(prompt, true);
      if (spec.text !== plain.text) throw new Error(`${name}: speculative text differs from plain decoding`);
      const peer = await peerLookup({ prompt, tokens, draft: DRAFT, threads: opts.threads });
      const speedup = spec.tps / plain.tps;
      rows.push(
        {
          prompt: name,
          runtime: "hearth",
          "plain t/s": plain.tps,
          "spec t/s": spec.tps,
          speedup,
          accepted: `${spec.accepted}/${spec.drafts}`,
          "vs peer": spec.tps / peer.lookup_tps,
        },
        {
          prompt: name,
          runtime: peer.peer,
          "plain t/s": peer.plain_tps,
          "spec t/s": peer.lookup_tps,
          speedup: peer.lookup_tps / peer.plain_tps,
          accepted: `${peer.validated}/${peer.validated + peer.refuted}`,
          "vs peer": 1,
        },
      );
      summary[`hearth_lookup_tps_${name}`] = spec.tps;
      summary[`hearth_plain_tps_${name}`] = plain.tps;
      summary[`hearth_lookup_speedup_${name}`] = speedup;
      summary[`peer_lookup_tps_${name}`] = peer.lookup_tps;
      summary[`peer_plain_tps_${name}`] = peer.plain_tps;
      if (!peer.same_text) notes.push(`${name}: the peer's lookup text differs from its plain text`);
    }
  } finally {
    model.close();
  }
  notes.push(
    `lookup rows: ${tokens} greedy tokens after each prompt (EOS ignored), at most ${DRAFT} draft tokens per pass, n-grams 2-4; tokens/s after the first token. hearth's speculative text equals its plain text (checked).`,
  );
  const draft = await draftModelRows(opts);
  rows.push(...draft.rows);
  Object.assign(summary, draft.summary);
  notes.push(...draft.notes);
  return {
    suite: "speculative",
    columns: ["prompt", "runtime", "plain t/s", "spec t/s", "speedup", "accepted", "vs peer"],
    rows,
    summary,
    notes,
  };
}

if (import.meta.main) await runStandalone(run);
