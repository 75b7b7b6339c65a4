// The generation rules the server and the library share (src/engine/generation.ts), pinned once:
// a full context (shift or finish), end-of-generation, stop strings, drafts, log-probabilities.
import { describe, expect, test } from "bun:test";
import { Generation, type GenerationSpec, shiftDrop } from "../src/engine/generation.ts";

const VOCAB = 32;
const EOS = 31;

/** Token i decodes to the letter i % 26; EOS is end-of-generation. Records what the decoder saw. */
function tokenizer() {
  const pushed: number[] = [];
  return {
    pushed,
    isEndOfGeneration: (id: number) => id === EOS,
    streamDecoder: () => ({
      push: (id: number) => {
        pushed.push(id);
        return String.fromCharCode(97 + (id % 26));
      },
      flush: () => "",
    }),
  };
}

/** A logits row whose greedy choice is `id`. */
function rowFor(id: number): Float32Array {
  const r = new Float32Array(VOCAB).fill(-10);
  r[id] = 10;
  return r;
}

function generation(spec: Partial<GenerationSpec>, tok = tokenizer()) {
  return new Generation({ sampling: { temperature: 0 }, maxTokens: 100, stop: [], ...spec }, tok, VOCAB);
}

describe("one set of generation rules", () => {
  test("a full context finishes with 'context' unless the request shifts", () => {
    const tokens = [0, 1, 2];
    const finish = generation({});
    const a = finish.consume(() => rowFor(3), [], tokens, 5);
    expect(a.finish).toBeNull();
    const b = finish.consume(() => rowFor(4), [], tokens, 5);
    expect(b.finish).toBe("context");
    expect(tokens).toEqual([0, 1, 2, 3, 4]);
    const shifting = generation({ contextShift: { keepTokens: 1, dropTokens: 0 } });
    const more = [0, 1, 2, 3];
    expect(shifting.consume(() => rowFor(4), [], more, 5).finish).toBeNull();
    expect(shifting.consume(() => rowFor(5), [], more, 5).finish).toBeNull();
    // What a shift drops: the kept tokens stay, half of the rest goes (or dropTokens).
    expect(shiftDrop({ keepTokens: 1, dropTokens: 0 }, 5)).toEqual({ keep: 1, drop: 2 });
    expect(shiftDrop({ keepTokens: 4, dropTokens: 10 }, 8)).toEqual({ keep: 4, drop: 4 });
    expect(shiftDrop({ keepTokens: 8, dropTokens: 0 }, 8)).toEqual({ keep: 8, drop: 0 });
  });

  test("end-of-generation ends with 'eos', never reaches the decoder, and lists no log-probability", () => {
    const tok = tokenizer();
    const g = generation({ logprobs: 2 }, tok);
    const tokens = [0];
    const o = g.consume((r) => rowFor(r === 0 ? 1 : EOS), [EOS], tokens, 100);
    expect(o.finish).toBeNull(); // the draft EOS was not the sampled token (1): the step ends
    const end = g.consume(() => rowFor(EOS), [], tokens, 100);
    expect(end.finish).toBe("eos");
    expect(tok.pushed).toEqual([1]);
    expect(end.logprobs).toEqual([]);
    expect(g.out).toEqual([1, EOS]);
    // With ignoreEos the same token is text like any other.
    const tok2 = tokenizer();
    const keep = generation({ ignoreEos: true, maxTokens: 1 }, tok2);
    expect(keep.consume(() => rowFor(EOS), [], [0], 100).finish).toBe("length");
    expect(tok2.pushed).toEqual([EOS]);
  });

  test("a stop string is held across tokens and never emitted; a held prefix is flushed on abort", () => {
    const g = generation({ stop: ["cd"] });
    const tokens: number[] = [];
    const pieces: string[] = [];
    for (const id of [1, 2, 3]) {
      const o = g.consume(() => rowFor(id), [], tokens, 100);
      pieces.push(o.text);
      if (o.finish !== null) expect(o.finish).toBe("stop");
    }
    expect(pieces.join("")).toBe("b");
    const h = generation({ stop: ["xyz"] });
    expect(h.consume(() => rowFor(23), [], [], 100).text).toBe("");
    expect(h.flushHeld()).toBe("x");
  });

  test("drafts: each equal to the token sampled before it is accepted, the first that differs ends the step", () => {
    const g = generation({});
    const tokens = [0];
    // Rows say 1, 2, 3, 4: drafts 1, 2, 9 → 1 and 2 accepted, 3 sampled on 9's row, 9 rejected.
    const o = g.consume((r) => rowFor(r + 1), [1, 2, 9], tokens, 100);
    expect(o.produced).toBe(3);
    expect(o.accepted).toBe(2);
    expect(o.pieces).toEqual(["b", "c", "d"]);
    expect(tokens).toEqual([0, 1, 2, 3]);
    expect(g.figures.draftTokens).toBe(3);
    expect(g.figures.acceptedDraftTokens).toBe(2);
    expect(g.figures.droppedDraftRows).toBe(1);
    // The token budget bounds drafts before they are run.
    const budget = generation({
      maxTokens: 3,
      speculative: { maxDraftTokens: 8, maxModelDraftTokens: 8, ngramMax: 2, ngramMin: 1, draft: null },
    });
    expect(budget.draft([5, 6, 7, 5, 6, 7, 5], 8).tokens.length).toBe(2);
  });

  test("log-probabilities come from the model's row, before sampling settings", () => {
    const g = generation({ logprobs: 1, sampling: { temperature: 0, logitBias: { 2: 100 } } });
    const row = rowFor(1);
    const o = g.consume(() => row, [], [0], 100);
    expect(g.out).toEqual([2]); // the bias chose 2
    const lp = o.logprobs?.[0];
    expect(lp?.id).toBe(2);
    expect(lp?.top[0]?.id).toBe(1); // the model's own favourite
    expect(lp?.logprob).toBeLessThan(-10);
  });
});
