// The forced token ids of the Gemma 3 270M parity fixture: BOS, then seeded-random ids from the
// ordinary part of the vocabulary, long enough to run past the 512-key sliding window.

import { Rng } from "../../src/sampling/index.ts";

export const GEMMA3_PROMPT_LENGTH = 700;

/** Positions the fixture keeps: the start, a stride, and both sides of the window's edge. */
export const GEMMA3_ROWS: readonly number[] = [
  0, 1, 2, 3, 5, 8, 13, 50, 100, 200, 300, 400, 500, 510, 511, 512, 513, 514, 530, 566, 600, 650, 698, 699,
];

export function gemma3Prompt(): number[] {
  const rng = new Rng(7);
  const ids = [2];
  while (ids.length < GEMMA3_PROMPT_LENGTH) ids.push(300 + Math.floor(rng.nextFloat() * 29_700));
  return ids;
}
