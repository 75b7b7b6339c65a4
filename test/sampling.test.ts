// Sampler, RNG and stop handling, tested by property over many random rows, not only by example.
import { describe, expect, test } from "bun:test";
import { loadLibrary } from "../src/native/lib.ts";
import {
  argmax,
  MAX_LOGIT_BIAS_ENTRIES,
  MAX_SEED,
  Rng,
  Sampler,
  SamplerError,
  StopCondition,
  StopMatcher,
  selectTopK,
  tokenLogprob,
} from "../src/sampling/index.ts";
import { tokenLogprobJs } from "../src/sampling/logprobs.ts";

/** Random logits with a realistic spread (sum of uniforms, scaled), reproducible from `seed`. */
function randomRow(rng: Rng, n: number, scale = 4): Float32Array {
  const row = new Float32Array(n);
  for (let i = 0; i < n; i++) row[i] = (rng.nextFloat() + rng.nextFloat() + rng.nextFloat() - 1.5) * scale;
  return row;
}

function softmax(row: ArrayLike<number>, temperature = 1): number[] {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i] as number);
  const w = Array.from(row, (v) => Math.exp((v - max) / temperature));
  const z = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / z);
}

const OFF = { topK: 0, topP: 1, minP: 0 } as const;

describe("Sampler properties", () => {
  const rng = new Rng(1234);

  test("top-k never returns a token outside the k best", () => {
    for (let trial = 0; trial < 300; trial++) {
      const row = randomRow(rng, 1000);
      const k = 1 + (rng.nextU32() % 50);
      const s = new Sampler({ ...OFF, topK: k, temperature: 1.5, seed: trial });
      for (let draw = 0; draw < 5; draw++) {
        const id = s.sample(row);
        const value = row[id] as number;
        let better = 0;
        for (const v of row) if (v > value) better++;
        expect(better).toBeLessThan(k);
      }
    }
  });

  test("min-p never returns a token below p times the best probability", () => {
    for (let trial = 0; trial < 300; trial++) {
      const row = randomRow(rng, 500, 3);
      const minP = 0.01 + rng.nextFloat() * 0.5;
      const probs = softmax(row);
      const best = Math.max(...probs);
      const s = new Sampler({ ...OFF, minP, temperature: 2, seed: trial });
      for (let draw = 0; draw < 5; draw++) {
        const id = s.sample(row);
        expect(probs[id] as number).toBeGreaterThanOrEqual(minP * best * (1 - 1e-5));
      }
    }
  });

  test("top-p returns only tokens of the nucleus (mass of strictly better tokens < p)", () => {
    for (let trial = 0; trial < 200; trial++) {
      // Large flat rows force the sampler past its short sorted prefixes to the full vocabulary.
      const n = trial % 10 === 0 ? 49152 : 800;
      const row = randomRow(rng, n, trial % 10 === 0 ? 0.5 : 4);
      const topP = 0.05 + rng.nextFloat() * 0.9;
      const probs = softmax(row);
      const s = new Sampler({ ...OFF, topP, temperature: 1, seed: trial });
      const id = s.sample(row);
      let massBefore = 0;
      for (let i = 0; i < n; i++)
        if ((row[i] as number) > (row[id] as number)) massBefore += probs[i] as number;
      expect(massBefore).toBeLessThan(topP + 1e-4);
    }
  });

  test("the candidate set is exactly what each filter defines (checked against a full sort)", () => {
    for (let trial = 0; trial < 120; trial++) {
      const n = trial % 20 === 1 ? 49152 : 600;
      const row = randomRow(rng, n, trial % 20 === 1 ? 0.5 : 3);
      const probs = softmax(row);
      const order = Array.from({ length: n }, (_, i) => i).sort(
        (a, b) => (row[b] as number) - (row[a] as number) || a - b,
      );
      const kind = trial % 3;
      let expected: number[];
      let s: Sampler;
      if (kind === 0) {
        const k = 1 + (rng.nextU32() % 100);
        expected = order.slice(0, k);
        s = new Sampler({ ...OFF, topK: k, temperature: 1 });
      } else if (kind === 1) {
        const topP = 0.05 + rng.nextFloat() * 0.9;
        let cum = 0;
        let cut = 0;
        while (cut < n && cum < topP) cum += probs[order[cut++] as number] as number;
        expected = order.slice(0, cut);
        s = new Sampler({ ...OFF, topP, temperature: 1 });
      } else {
        const minP = 0.01 + rng.nextFloat() * 0.5;
        const best = probs[order[0] as number] as number;
        // Half the time behind a loose top-k, which takes the sorted path through min-p.
        const topK = trial % 2 === 0 ? 0 : Math.floor(n / 2);
        expected = (topK > 0 ? order.slice(0, topK) : order).filter(
          (id) => (probs[id] as number) >= minP * best,
        );
        s = new Sampler({ ...OFF, topK, minP, temperature: 1 });
      }
      const got = Array.from(s.distribution(row).ids).sort((a, b) => a - b);
      const want = expected.slice().sort((a, b) => a - b);
      // Float32 vs float64 rounding may move one token sitting exactly on a top-p / min-p boundary.
      const gotSet = new Set(got);
      const wantSet = new Set(want);
      const diff = want.filter((id) => !gotSet.has(id)).length + got.filter((id) => !wantSet.has(id)).length;
      expect(diff).toBeLessThanOrEqual(kind === 0 ? 0 : 1);
    }
  });

  test("top-k then top-p: the nucleus is computed over the k survivors", () => {
    const row = new Float32Array([5, 4, 3, 2, 1, 0]);
    const s = new Sampler({ topK: 2, topP: 0.7, minP: 0, temperature: 1, seed: 1 });
    // Over the top 2 only, token 0 has e/(e+1) = 0.73 >= 0.7, so it alone is the nucleus.
    const d = s.distribution(row);
    expect(Array.from(d.ids)).toEqual([0]);
  });

  test("temperature 0 is greedy and temperature -> 0 converges to greedy", () => {
    for (let trial = 0; trial < 200; trial++) {
      const row = randomRow(rng, 300);
      expect(new Sampler({ temperature: 0, seed: trial }).sample(row)).toBe(argmax(row));
      expect(new Sampler({ ...OFF, temperature: 1e-6, seed: trial }).sample(row)).toBe(argmax(row));
      // So small that 1/T is infinite (a subnormal): still the best token, never a NaN draw.
      expect(new Sampler({ ...OFF, temperature: 1e-320, seed: trial }).sample(row)).toBe(argmax(row));
    }
    const tie = new Float32Array([0, 5, 1, 5]);
    const d = new Sampler({ ...OFF, temperature: 1e-320 }).distribution(tie);
    const mass = new Map(Array.from(d.ids, (id, i) => [id, d.probs[i]]));
    expect([mass.get(0) ?? 0, mass.get(1), mass.get(2) ?? 0, mass.get(3)]).toEqual([0, 0.5, 0, 0.5]); // the tied best share it
  });

  test("penalties only lower the chance of repeated tokens relative to the others", () => {
    for (let trial = 0; trial < 200; trial++) {
      const n = 200;
      const row = randomRow(rng, n);
      const history = Array.from({ length: 40 }, () => rng.nextU32() % n);
      const probsOf = (opts: ConstructorParameters<typeof Sampler>[0]) => {
        const d = new Sampler({ ...OFF, temperature: 1, seed: 1, ...opts }).distribution(row, history);
        const p = new Float64Array(n);
        d.ids.forEach((id, i) => {
          p[id] = d.probs[i] as number;
        });
        return p;
      };
      const before = probsOf({});
      const after = probsOf({
        repeatPenalty: 1 + rng.nextFloat(),
        presencePenalty: rng.nextFloat(),
        frequencyPenalty: rng.nextFloat(),
        penaltyLastN: 64,
      });
      const repeated = new Set(history);
      let repeatedBefore = 0;
      let repeatedAfter = 0;
      let minOtherGain = Number.POSITIVE_INFINITY;
      let maxRepeatedGain = 0;
      for (let id = 0; id < n; id++) {
        const gain = (after[id] as number) / (before[id] as number);
        if (repeated.has(id)) {
          repeatedBefore += before[id] as number;
          repeatedAfter += after[id] as number;
          maxRepeatedGain = Math.max(maxRepeatedGain, gain);
        } else {
          // Tokens that were not repeated never lose probability.
          expect(gain).toBeGreaterThanOrEqual(1 - 1e-6);
          minOtherGain = Math.min(minOtherGain, gain);
        }
      }
      // Every repeated token loses ground against every other token, and their total mass shrinks.
      expect(maxRepeatedGain).toBeLessThanOrEqual(minOtherGain * (1 + 1e-5));
      expect(repeatedAfter).toBeLessThanOrEqual(repeatedBefore + 1e-6);
    }
  });

  test("penaltyLastN limits the window: tokens older than N are not penalised", () => {
    const row = new Float32Array([2, 2, 2, 2]);
    const s = new Sampler({ ...OFF, temperature: 1, repeatPenalty: 2, penaltyLastN: 1, seed: 1 });
    const d = s.distribution(row, [0, 1]);
    const p = new Map(Array.from(d.ids, (id, i) => [id, d.probs[i] as number]));
    expect(p.get(0)).toBeCloseTo(p.get(2) as number, 6); // 0 fell out of the window
    expect(p.get(1) as number).toBeLessThan(p.get(2) as number);
  });

  test("penaltyFrom: history before it (the prompt) is never penalised", () => {
    const row = new Float32Array([2, 2, 2, 2]);
    const s = new Sampler({
      ...OFF,
      temperature: 1,
      presencePenalty: 1,
      penaltyLastN: -1,
      penaltyFrom: 2,
      seed: 1,
    });
    const d = s.distribution(row, [0, 1, 1, 3]);
    const p = new Map(Array.from(d.ids, (id, i) => [id, d.probs[i] as number]));
    expect(p.get(0)).toBeCloseTo(p.get(2) as number, 6); // only in the prompt
    expect(p.get(1) as number).toBeLessThan(p.get(2) as number); // sampled once after it
    expect(p.get(3) as number).toBeCloseTo(p.get(1) as number, 6);
    // Nothing generated yet: the row is left as it is (the greedy fast path too).
    const g = new Sampler({ ...OFF, temperature: 0, presencePenalty: 5, penaltyFrom: 2 });
    expect(g.sample(new Float32Array([1, 3, 2]), [1, 1])).toBe(1);
    expect(() => new Sampler({ penaltyFrom: -1 })).toThrow(/penaltyFrom/);
  });

  test("same seed gives the same tokens; another seed gives others", () => {
    const rows = Array.from({ length: 200 }, () => randomRow(rng, 1000, 1));
    const run = (seed: number) => {
      const s = new Sampler({ temperature: 1, topK: 0, topP: 0.95, minP: 0.01, seed });
      const out: number[] = [];
      for (const r of rows) out.push(s.sample(r, out));
      return out;
    };
    expect(run(42)).toEqual(run(42));
    expect(run(42)).not.toEqual(run(43));
  });

  test("draws follow softmax(logits / T) on many samples", () => {
    const row = new Float32Array([1.0, 0.5, 0.0, -0.5, 2.0, 0.25]);
    const temperature = 0.7;
    const expected = softmax(row, temperature);
    const s = new Sampler({ ...OFF, temperature, seed: 7 });
    const d = s.distribution(row);
    d.ids.forEach((id, i) => {
      expect(d.probs[i] as number).toBeCloseTo(expected[id] as number, 5);
    });
    const draws = 60_000;
    const counts = new Array(row.length).fill(0);
    for (let i = 0; i < draws; i++) counts[s.sample(row)]++;
    for (let id = 0; id < row.length; id++) {
      // Standard error at p ~ 0.3 and 60k draws is ~0.002; 0.01 is five of them.
      expect(Math.abs(counts[id] / draws - (expected[id] as number))).toBeLessThan(0.01);
    }
  });

  test("logit bias: -Infinity bans a token even when it is the best", () => {
    const row = new Float32Array([10, 1, 1, 1]);
    const s = new Sampler({ ...OFF, temperature: 1, logitBias: { 0: Number.NEGATIVE_INFINITY }, seed: 3 });
    for (let i = 0; i < 500; i++) expect(s.sample(row)).not.toBe(0);
    const boosted = new Sampler({ temperature: 0, logitBias: new Map([[3, 20]]) });
    expect(boosted.sample(row)).toBe(3);
  });

  test("bad input is a clear SamplerError, never a crash", () => {
    expect(() => new Sampler({ temperature: -1 })).toThrow(SamplerError);
    expect(() => new Sampler({ topP: 0 })).toThrow(/topP/);
    expect(() => new Sampler({ topK: 1.5 })).toThrow(/topK/);
    expect(() => new Sampler({ logitBias: { 1: Number.NaN } })).toThrow(/logitBias/);
    expect(() => new Sampler().sample(new Float32Array(0))).toThrow(/empty/);
    expect(() => new Sampler().sample(new Float32Array([1, Number.NaN]))).toThrow(/NaN/);
    const allBanned = new Sampler({
      logitBias: { 0: Number.NEGATIVE_INFINITY, 1: Number.NEGATIVE_INFINITY },
    });
    expect(() => allBanned.sample(new Float32Array([1, 2]))).toThrow(/banned/);
  });

  test("seed: an integer with |seed| <= 2^53 (the server's rule)", () => {
    expect(() => new Sampler({ seed: 1.5 })).toThrow(SamplerError);
    expect(() => new Sampler({ seed: 1.5 })).toThrow(/seed must be an integer in \[-2\^53, 2\^53\], got 1.5/);
    expect(() => new Sampler({ seed: MAX_SEED + 2 })).toThrow(/seed/);
    expect(() => new Sampler({ seed: -(MAX_SEED + 2) })).toThrow(/seed/);
    expect(() => new Sampler({ seed: Number.NaN })).toThrow(/seed/);
    expect(new Sampler({ seed: MAX_SEED }).seed).toBe(MAX_SEED);
    expect(new Sampler({ seed: -MAX_SEED }).seed).toBe(-MAX_SEED);
  });

  test("logitBias: ids below the vocabulary, values in [-100, 100] or -Infinity, at most 1024 entries", () => {
    expect(() => new Sampler({ logitBias: { 999999: 5 } }, 1000)).toThrow(
      /logitBias key 999999 is not a token id below the vocabulary size 1000/,
    );
    expect(() => new Sampler({ logitBias: new Map([[1000, 1]]) }, 1000)).toThrow(
      /below the vocabulary size 1000/,
    );
    expect(new Sampler({ logitBias: { 999: 5 } }, 1000).sample(new Float32Array(1000))).toBe(999);
    // Without a vocabulary size the id is checked against the row at the first sample.
    const late = new Sampler({ temperature: 0, logitBias: { 7: 1 } });
    expect(() => late.sample(new Float32Array(4))).toThrow(
      /logitBias key 7 is not a token id below the vocabulary size 4/,
    );
    expect(() => new Sampler({ logitBias: { 1: 100.5 } })).toThrow(
      /logitBias for token 1 must be a number in \[-100, 100\] or -Infinity \(banned\), got 100.5/,
    );
    expect(() => new Sampler({ logitBias: { 1: -101 } })).toThrow(/\[-100, 100\]/);
    expect(() => new Sampler({ logitBias: { 1: Number.POSITIVE_INFINITY } })).toThrow(/\[-100, 100\]/);
    expect(() => new Sampler({ logitBias: { 1: "5" as unknown as number } })).toThrow(/got 5/);
    expect(() => new Sampler({ logitBias: { "-1": 1 } })).toThrow(/logitBias key "-1" is not a token id/);
    expect(() => new Sampler({ logitBias: { "1.5": 1 } })).toThrow(/logitBias key "1.5" is not a token id/);
    expect(() => new Sampler({ logitBias: new Map([[1.5, 1]]) })).toThrow(
      /logitBias key 1.5 is not a token id/,
    );
    const many: Record<number, number> = {};
    for (let id = 0; id <= MAX_LOGIT_BIAS_ENTRIES; id++) many[id] = 1;
    expect(() => new Sampler({ logitBias: many })).toThrow(/logitBias has 1025 entries; the limit is 1024/);
    delete many[0];
    expect(() => new Sampler({ logitBias: many })).not.toThrow();
    expect(() => new Sampler({ logitBias: { 0: -100, 1: 100, 2: Number.NEGATIVE_INFINITY } })).not.toThrow();
  });

  test("the logits row passed in is never modified, buffers are reused across calls", () => {
    const row = randomRow(rng, 1000);
    const copy = row.slice();
    const s = new Sampler({ repeatPenalty: 1.3, logitBias: { 5: 3 }, seed: 1 });
    const first = s.distribution(row, [1, 2, 3]).ids.buffer;
    s.sample(row, [1, 2, 3]);
    expect(s.distribution(row, [4]).ids.buffer).toBe(first);
    expect(row).toEqual(copy);
  });

  test("samplers over one vocabulary share their buffers, and sharing changes no answer", () => {
    const row = randomRow(rng, 1001);
    const opts = { temperature: 0.9, topP: 0.9, repeatPenalty: 1.2, seed: 7 };
    const alone = new Sampler(opts);
    const expected = Array.from({ length: 20 }, (_, i) => alone.sample(row, [i, i + 1, 3]));
    // Another request's sampler (penalties over another history) sampling in between each draw.
    const a = new Sampler(opts);
    const b = new Sampler({ temperature: 1, topK: 40, presencePenalty: 1, seed: 8 });
    const got = Array.from({ length: 20 }, (_, i) => {
      b.sample(row, [i, 5, 5, 9]);
      return a.sample(row, [i, i + 1, 3]);
    });
    expect(got).toEqual(expected);
    expect(a.distribution(row).ids.buffer).toBe(b.distribution(row).ids.buffer);
    expect(new Sampler().distribution(randomRow(rng, 1002)).ids.buffer).not.toBe(
      a.distribution(row).ids.buffer,
    );
  });

  test("selectTopK agrees with a full sort (ties broken by lower id)", () => {
    for (let trial = 0; trial < 100; trial++) {
      const n = 1 + (rng.nextU32() % 300);
      const values = new Float32Array(n);
      for (let i = 0; i < n; i++) values[i] = rng.nextU32() % 20; // many ties
      const k = 1 + (rng.nextU32() % n);
      const ids = new Int32Array(k);
      const vals = new Float32Array(k);
      selectTopK(values, n, k, ids, vals);
      const expected = Array.from({ length: n }, (_, i) => i)
        .sort((a, b) => (values[b] as number) - (values[a] as number) || a - b)
        .slice(0, k);
      expect(Array.from(ids)).toEqual(expected);
    }
  });
});

describe("greedy argmax in libhearth (rows of 1024+ logits)", () => {
  /** What the JS path answers: the index, or the error message. */
  function expected(row: Float32Array): number | string {
    for (let i = 0; i < row.length; i++)
      if (Number.isNaN(row[i] as number)) return `logit of token ${i} is NaN`;
    let best = -1;
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < row.length; i++) {
      if ((row[i] as number) > max) {
        max = row[i] as number;
        best = i;
      }
    }
    if (best < 0) return "every token has logit -Infinity (all banned): nothing to sample";
    if (max === Number.POSITIVE_INFINITY) return `logit of token ${best} is +Infinity`;
    return best;
  }

  test("same choice and same errors as the JS path: ties, NaN, infinities, odd lengths, subarrays", async () => {
    await loadLibrary();
    const rng = new Rng(77);
    const greedy = new Sampler({ temperature: 0 });
    const backing = new Float32Array(6000);
    for (let round = 0; round < 300; round++) {
      const n = 1024 + Math.floor(rng.nextFloat() * 4000);
      const off = Math.floor(rng.nextFloat() * (backing.length - n));
      const row = backing.subarray(off, off + n);
      // Few distinct values: ties everywhere, the first of the best must win.
      for (let i = 0; i < n; i++) row[i] = Math.floor(rng.nextFloat() * 7) - 3;
      const at = () => Math.floor(rng.nextFloat() * n);
      if (round % 5 === 1) row[at()] = Number.NaN;
      if (round % 5 === 2) row[at()] = Number.POSITIVE_INFINITY;
      if (round % 5 === 3) row.fill(Number.NEGATIVE_INFINITY);
      if (round % 5 === 4) {
        row[at()] = Number.POSITIVE_INFINITY;
        row[at()] = Number.NaN;
      }
      const want = expected(row);
      if (typeof want === "number") expect(greedy.sample(row)).toBe(want);
      else expect(() => greedy.sample(row)).toThrow(new SamplerError(want));
    }
  });
});

describe("sampling weights in libhearth (rows of 1024+ candidates)", () => {
  test("the whole-vocabulary and top-p distributions match a plain f64 softmax within 1e-6", async () => {
    await loadLibrary();
    const rng = new Rng(78);
    const row = new Float32Array(5000);
    for (let i = 0; i < row.length; i++) row[i] = (rng.nextFloat() - 0.5) * 30;
    row[10] = Number.NEGATIVE_INFINITY; // banned: no weight
    for (const temperature of [1, 0.7, 1.6]) {
      const max = Math.max(...row);
      const w = Array.from(row, (v) => Math.exp((v - max) / temperature));
      const z = w.reduce((a, b) => a + b, 0);
      const whole = new Sampler({ ...OFF, temperature, seed: 1 }).distribution(row);
      expect(whole.ids.length).toBe(row.length - 1);
      for (let k = 0; k < whole.ids.length; k++)
        expect(Math.abs((whole.probs[k] as number) - (w[whole.ids[k] as number] as number) / z)).toBeLessThan(
          1e-6,
        );
      // Top-p 0.9 over the vocabulary: the smallest best-first set with mass >= 0.9 (at T 1).
      const nucleus = new Sampler({ ...OFF, topP: 0.9, temperature, seed: 1 }).distribution(row);
      const p1 = Array.from(row, (v) => Math.exp(v - max));
      const z1 = p1.reduce((a, b) => a + b, 0);
      const order = Array.from(row.keys()).sort((a, b) => (row[b] as number) - (row[a] as number) || a - b);
      let mass = 0;
      let want = 0;
      while (mass < 0.9 * z1) mass += p1[order[want++] as number] as number;
      expect(nucleus.ids.length).toBe(want);
      expect(new Set(nucleus.ids)).toEqual(new Set(order.slice(0, want)));
    }
  });
});

describe("whole-row sampling in libhearth (no top-k, top-p or min-p)", () => {
  test("draws the same tokens as the candidate path for the same seeds (bias, bans, penalties)", async () => {
    await loadLibrary();
    const rng = new Rng(79);
    const row = new Float32Array(4096);
    // 1e46 and Infinity: 1/T is 0 as an f32, so the JS weights serve (all equal: a uniform draw).
    for (const temperature of [1, 0.8, 1.7, 1e46, Number.POSITIVE_INFINITY]) {
      // min-p 1e-30 keeps every token of these rows but takes the candidate path.
      const whole = new Sampler({
        ...OFF,
        temperature,
        seed: 42,
        logitBias: { 7: 5, 8: Number.NEGATIVE_INFINITY },
      });
      const candidates = new Sampler({
        ...OFF,
        minP: 1e-30,
        temperature,
        seed: 42,
        logitBias: { 7: 5, 8: Number.NEGATIVE_INFINITY },
      });
      const penalised = new Sampler({ ...OFF, temperature, seed: 5, presencePenalty: 0.5 });
      const penalisedRef = new Sampler({ ...OFF, minP: 1e-30, temperature, seed: 5, presencePenalty: 0.5 });
      for (let round = 0; round < 200; round++) {
        for (let i = 0; i < row.length; i++) row[i] = (rng.nextFloat() - 0.5) * 12;
        row[round % row.length] = Number.NEGATIVE_INFINITY;
        expect(whole.sample(row)).toBe(candidates.sample(row));
        expect(penalised.sample(row, [1, 2, 3, round])).toBe(penalisedRef.sample(row, [1, 2, 3, round]));
      }
    }
  });
});

describe("Rng", () => {
  test("same seed, same stream; floats in [0, 1) with mean near 1/2", () => {
    const a = new Rng(99);
    const b = new Rng(99);
    let sum = 0;
    for (let i = 0; i < 100_000; i++) {
      const x = a.nextFloat();
      expect(x).toBe(b.nextFloat());
      if (x < 0 || x >= 1) throw new Error(`out of range: ${x}`);
      sum += x;
    }
    expect(Math.abs(sum / 100_000 - 0.5)).toBeLessThan(0.01);
    expect(new Rng(1).nextU32()).not.toBe(new Rng(2).nextU32());
    expect(new Rng(2 ** 40).nextU32()).not.toBe(new Rng(0).nextU32());
  });
});

describe("StopMatcher", () => {
  const rng = new Rng(5);
  const alphabet = ["a", "b", "c", "<", "|", ">", "\n", "é", "😀"];
  const randomText = (len: number) =>
    Array.from({ length: len }, () => alphabet[rng.nextU32() % alphabet.length]).join("");

  test("emits exactly the text before the first stop string, whatever the chunking", () => {
    for (let trial = 0; trial < 500; trial++) {
      const stops = Array.from({ length: 1 + (rng.nextU32() % 3) }, () =>
        randomText(1 + (rng.nextU32() % 4)),
      );
      const text = randomText(rng.nextU32() % 40);
      let firstAt = -1;
      for (const s of stops) {
        const i = text.indexOf(s);
        if (i >= 0 && (firstAt < 0 || i < firstAt)) firstAt = i;
      }
      const m = new StopMatcher(stops);
      let out = "";
      let stopped = false;
      // Chunk on code point boundaries, as a stream decoder would deliver text.
      const chars = Array.from(text);
      for (let i = 0; i < chars.length && !stopped; ) {
        const len = 1 + (rng.nextU32() % 4);
        const r = m.push(chars.slice(i, i + len).join(""));
        out += r.text;
        stopped = r.stopped;
        i += len;
      }
      if (!stopped) out += m.flush();
      expect(stopped).toBe(firstAt >= 0);
      expect(out).toBe(firstAt >= 0 ? text.slice(0, firstAt) : text);
    }
  });

  test("holds back a possible stop prefix and releases it when it is not one", () => {
    const m = new StopMatcher(["<|im_end|>"]);
    expect(m.push("Hello <|im")).toEqual({ text: "Hello ", stopped: false });
    expect(m.push("age")).toEqual({ text: "<|image", stopped: false });
    expect(m.push(" ok<|im_e")).toEqual({ text: " ok", stopped: false });
    expect(m.push("nd|> tail")).toEqual({ text: "", stopped: true, stop: "<|im_end|>" });
    expect(m.push("more")).toEqual({ text: "", stopped: true });
    expect(() => new StopMatcher([""])).toThrow(RangeError);
  });
});

describe("StopCondition", () => {
  test("ends on EOS, on a stop string, or at maxTokens, with the held text flushed", () => {
    const eos = new StopCondition({ maxTokens: 10, stop: ["END"], isEndOfGeneration: (id) => id === 0 });
    expect(eos.accept(5, "abc E")).toEqual({ text: "abc ", finish: null });
    expect(eos.accept(0, "")).toEqual({ text: "E", finish: "eos" });

    const stop = new StopCondition({ stop: ["END"] });
    expect(stop.accept(1, "xEN")).toEqual({ text: "x", finish: null });
    expect(stop.accept(1, "D!")).toEqual({ text: "", finish: "stop" });
    expect(stop.finishReason).toBe("stop");
    expect(stop.matchedStop).toBe("END");
    expect(eos.matchedStop).toBeUndefined();
    // Of several stop strings, the one that matched (the earliest in the text).
    const two = new StopCondition({ stop: ["zz", "yes", "no"] });
    expect(two.accept(1, "say no or yes")).toEqual({ text: "say ", finish: "stop" });
    expect(two.matchedStop).toBe("no");

    const len = new StopCondition({ maxTokens: 2, stop: ["zz"] });
    expect(len.accept(1, "a")).toEqual({ text: "a", finish: null });
    expect(len.accept(1, "z")).toEqual({ text: "z", finish: "length" });
    expect(len.tokenCount).toBe(2);
    expect(new StopCondition({ maxTokens: 0 }).exhausted).toBe(true);
    expect(() => new StopCondition({ maxTokens: -1 })).toThrow(RangeError);
  });
});

describe("tokenLogprob", () => {
  // The native pass (libhearth loaded, rows of 1024+) sums f32 exps in f64: within 1e-6 of the
  // plain f64 log-softmax; the JS path is the plain one.
  for (const [name, fn, digits] of [
    ["native", tokenLogprob, 6],
    ["JS", tokenLogprobJs, 9],
  ] as const) {
    test(`${name}: matches a plain log-softmax and a full sort, ties by lower id`, async () => {
      await loadLibrary();
      const rng = new Rng(9);
      const row = new Float32Array(5000);
      for (let i = 0; i < row.length; i++) row[i] = (rng.nextFloat() - 0.5) * 20;
      row[17] = 12;
      row[4000] = 12; // a tie for the best: the lower id comes first
      let sum = 0;
      for (const v of row) sum += Math.exp(v - 12);
      const lse = 12 + Math.log(sum);
      const order = Array.from(row.keys()).sort((a, b) => (row[b] as number) - (row[a] as number) || a - b);
      for (const top of [0, 1, 5, 20]) {
        const lp = fn(row, 123, top);
        expect(lp.id).toBe(123);
        expect(lp.logprob).toBeCloseTo((row[123] as number) - lse, digits);
        expect(lp.top.map((t) => t.id)).toEqual(order.slice(0, top));
        for (const t of lp.top) expect(t.logprob).toBeCloseTo((row[t.id] as number) - lse, digits);
      }
      expect(fn(row, 17, 2).top.map((t) => t.id)).toEqual([17, 4000]);
      const total = Array.from(row, (v) => Math.exp(v - lse)).reduce((a, b) => a + b, 0);
      expect(total).toBeCloseTo(1, 9);
    });
  }

  test("native and JS agree on rows with -Infinity (banned) entries and fewer finite values than top", async () => {
    await loadLibrary();
    const row = new Float32Array(2048).fill(Number.NEGATIVE_INFINITY);
    row[5] = 1;
    row[1500] = 3;
    row[2047] = 3;
    const a = tokenLogprob(row, 1500, 5);
    const b = tokenLogprobJs(row, 1500, 5);
    expect(a.top.map((t) => t.id)).toEqual(b.top.map((t) => t.id));
    expect(a.top.slice(0, 3).map((t) => t.id)).toEqual([1500, 2047, 5]);
    expect(a.logprob).toBeCloseTo(b.logprob, 6);
    expect(tokenLogprob(row, 0, 0).logprob).toBe(Number.NEGATIVE_INFINITY);
  });

  test("refuses a top outside 0..20 and an id outside the row", () => {
    const row = new Float32Array(8);
    expect(() => tokenLogprob(row, 0, 21)).toThrow(RangeError);
    expect(() => tokenLogprob(row, 0, -1)).toThrow(RangeError);
    expect(() => tokenLogprob(row, 8, 1)).toThrow(RangeError);
  });
});
