// The draft-model rows of `bun run bench speculative`: decode tokens/s of a chat reply that does
// not repeat its prompt, without and with a draft model, on SmolLM2-135M-Instruct F16 and Q8_0
// targets with its Q4_0 as the draft (all three made by the native llama-quantize:
// bench/peers/llama.cpp/models.sh), beside native llama.cpp's `llama-speculative` on the same
// F16 pair and prompt in the same run (its plain figure: llama-bench tg on the target). Greedy:
// hearth's text with the draft model must equal its plain text, or the suite fails.
import { loadModel } from "../src/index.ts";
import { measureCeiling } from "./draft-ceiling.ts";
import type { BenchOptions, Cell } from "./lib.ts";
import {
  BUILD_HINT,
  binDir,
  findModel,
  llamaBench,
  MODELS_HINT,
  PIN,
  runTool,
} from "./peers/llama.cpp/native.ts";

/** The chat turn every runtime answers (a story: nothing in it to copy from the prompt). */
const MESSAGES = [
  {
    role: "user" as const,
    content: "Write a short story about a lighthouse keeper who finds a message in a bottle.",
  },
];
/** Most draft tokens per step: hearth adapts below it; llama-speculative drafts this many. */
const DRAFT_MAX = 8;
const PEER = `llama.cpp llama-speculative (native, ${PIN})`;

export interface DraftRows {
  rows: Array<Record<string, Cell>>;
  summary: Record<string, number | string | null>;
  notes: string[];
}

interface Timed {
  tps: number;
  text: string;
  proposed: number;
  accepted: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** hearth on `target` with `draft` loaded: plain and drafted runs, alternated, `reps` pairs. */
async function hearthPair(
  target: string,
  draft: string,
  tokens: number,
  reps: number,
  threads: number,
): Promise<{
  plain: number;
  drafted: number;
  accepted: number;
  proposed: number;
  prompt: string;
  promptIds: number[];
}> {
  const model = await loadModel(target, { threads, contextTokens: 1024, maxSessions: 1, draft });
  try {
    const timed = async (speculative: false | { draft: "model" }): Promise<Timed> => {
      const s = model.createSession();
      try {
        let first = 0;
        let text = "";
        const it = s.chat(MESSAGES, {
          maxTokens: tokens,
          temperature: 0,
          ignoreEos: true,
          speculative: speculative === false ? false : { ...speculative, maxDraftTokens: DRAFT_MAX },
        });
        for await (const piece of it) {
          if (first === 0) first = performance.now();
          text += piece;
        }
        const t = s.lastTelemetry;
        const ms = performance.now() - first;
        return {
          tps: (((t?.generatedTokens ?? 1) - 1) * 1000) / ms,
          text,
          proposed: t?.drafts.modelProposed ?? 0,
          accepted: t?.drafts.modelAccepted ?? 0,
        };
      } finally {
        s.close();
      }
    };
    await timed({ draft: "model" }); // warm-up (both models' pages)
    const plain: number[] = [];
    const drafted: number[] = [];
    let proposed = 0;
    let accepted = 0;
    for (let i = 0; i < reps; i++) {
      const p = await timed(false);
      const d = await timed({ draft: "model" });
      if (d.text !== p.text)
        throw new Error(`${target}: the text with the draft model differs from plain decoding`);
      plain.push(p.tps);
      drafted.push(d.tps);
      proposed += d.proposed;
      accepted += d.accepted;
    }
    const prompt = model.chatTemplate.render(MESSAGES, { addGenerationPrompt: true });
    const promptIds = model.tokenizer.encode(prompt, { addSpecial: false, parseSpecial: true });
    return { plain: median(plain), drafted: median(drafted), proposed, accepted, prompt, promptIds };
  } finally {
    model.close();
  }
}

/** llama-speculative on the pair (greedy, DRAFT_MAX drafts) and llama-bench tg on the target. */
async function peerPair(
  target: string,
  draft: string,
  prompt: string,
  tokens: number,
  threads: number,
): Promise<{ plain: number; drafted: number; proposed: number; accepted: number }> {
  const args = ["-m", target, "-md", draft, "-p", prompt, "-n", String(tokens), "--temp", "0"];
  args.push("-t", String(threads), "-c", "1024", "--spec-draft-n-max", String(DRAFT_MAX), "--ignore-eos");
  const r = await runTool("llama-speculative", args);
  const log = r.stdout + r.stderr;
  const num = (re: RegExp) => {
    const m = re.exec(log);
    if (m === null) throw new Error(`llama-speculative: no ${re.source} in its output`);
    return Number(m[1]);
  };
  const bench = await llamaBench({ model: target, pp: 0, tg: tokens, threads, reps: 1 });
  const tg = bench.tests.find((t) => !t.flashAttention && t.nGen === tokens) ?? bench.tests[0];
  return {
    plain: median(tg?.samplesTs ?? [Number.NaN]),
    drafted: num(/decoded\s+\d+ tokens in\s+[\d.]+ seconds, speed:\s+([\d.]+) t\/s/),
    proposed: num(/n_drafted\s*=\s*(\d+)/),
    accepted: num(/n_accept\s*=\s*(\d+)/),
  };
}

const pct = (a: number, p: number) => (p > 0 ? `${a}/${p} (${((100 * a) / p).toFixed(0)}%)` : "-");

export async function draftModelRows(opts: BenchOptions): Promise<DraftRows> {
  const tokens = opts.quick ? 48 : 128;
  const reps = opts.quick ? 1 : 3;
  const rows: Array<Record<string, Cell>> = [];
  const summary: Record<string, number | string | null> = {};
  const notes: string[] = [];
  const draft = findModel("Q4_0");
  const targets = [
    { name: "F16", path: findModel("F16") },
    { name: "Q8_0", path: findModel("Q8_0") },
  ];
  if (draft === null || targets.some((t) => t.path === null)) {
    notes.push(`draft-model rows skipped: the SmolLM2 F16 / Q8_0 / Q4_0 files are missing (${MODELS_HINT})`);
    return { rows, summary, notes };
  }
  for (const { name, path } of targets) {
    const h = await hearthPair(path as string, draft, tokens, reps, opts.threads);
    const key = name.toLowerCase();
    const speedup = h.drafted / h.plain;
    summary[name === "F16" ? "draft_speedup" : `draft_speedup_${key}`] = speedup;
    summary[`draft_acceptance_${key}`] = h.proposed > 0 ? h.accepted / h.proposed : null;
    summary[`hearth_draft_tps_${key}`] = h.drafted;
    summary[`hearth_plain_tps_${key}`] = h.plain;
    const row: Record<string, Cell> = {
      prompt: `chat, ${name} target + Q4_0 draft`,
      runtime: "hearth",
      "plain t/s": h.plain,
      "spec t/s": h.drafted,
      speedup,
      accepted: pct(h.accepted, h.proposed),
      "vs peer": null,
    };
    rows.push(row);
    if (name !== "F16") continue;
    // The measured ceiling of this pair: what drafting could give with no engine overhead.
    const c = measureCeiling(path as string, draft, h.promptIds, tokens, opts.threads);
    summary.draft_agreement = c.agreement;
    summary.draft_pass_ratio = c.draftMs / c.targetMs;
    summary.draft_verify_ratios = c.verifyMs
      .map((ms) => (ms / (c.verifyMs[0] as number)).toFixed(2))
      .join(" ");
    summary.draft_ceiling = c.ceiling;
    summary.draft_ceiling_k = c.bestK;
    summary.draft_perfect_ceiling = c.perfectCeiling;
    notes.push(
      `draft-model ceiling (F16 pair, measured from its parts): the Q4_0 draft's greedy token is the target's at ${(100 * c.agreement).toFixed(0)}% of the reply's positions (draft_agreement); a draft pass takes ${c.draftMs.toFixed(1)} ms, ${(c.draftMs / c.targetMs).toFixed(2)} of a target step (${c.targetMs.toFixed(1)} ms; draft_pass_ratio); a target step of 1..${c.verifyMs.length} rows costs ${summary.draft_verify_ratios} steps (draft_verify_ratios). Expected speedup E(k) / (verify(k+1) + k pass), E(k) = 1 + p + ... + p^k: ${c.ceiling.toFixed(2)}x at k = ${c.bestK} (draft_ceiling), ${c.perfectCeiling.toFixed(2)}x with a perfect draft at k = ${c.perfectK} (draft_perfect_ceiling).`,
    );
    if (!opts.peers.includes("llama.cpp")) {
      notes.push("draft-model peer column skipped (--peers without llama.cpp)");
      continue;
    }
    if (binDir() === null) {
      notes.push(`draft-model peer column skipped: ${BUILD_HINT}`);
      continue;
    }
    const p = await peerPair(path as string, draft, h.prompt, tokens, opts.threads);
    row["vs peer"] = h.drafted / p.drafted;
    rows.push({
      prompt: `chat, ${name} target + Q4_0 draft`,
      runtime: PEER,
      "plain t/s": p.plain,
      "spec t/s": p.drafted,
      speedup: p.drafted / p.plain,
      accepted: pct(p.accepted, p.proposed),
      "vs peer": 1,
    });
    summary.peer_draft_speedup = p.drafted / p.plain;
    summary.peer_draft_acceptance = p.proposed > 0 ? p.accepted / p.proposed : null;
    summary.peer_draft_tps_f16 = p.drafted;
    summary.peer_plain_tps_f16 = p.plain;
  }
  notes.push(
    `draft-model rows: ${tokens} greedy tokens of a chat reply (EOS ignored), hearth's median of ${reps} alternated plain/draft runs (tokens/s after the first token; its adaptive depth at most ${DRAFT_MAX}); accepted = draft tokens accepted / proposed. Peer: ${PEER} with -md, --spec-draft-n-max ${DRAFT_MAX}, the same prompt text rendered by hearth's chat template (its "decoded ... t/s"); its plain t/s is llama-bench tg${tokens} on the target (no flash attention). hearth's text with the draft model equals its plain text (checked).`,
  );
  return { rows, summary, notes };
}
