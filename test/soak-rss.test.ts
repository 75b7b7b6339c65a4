// The soak's rss_growth_pct (bench/soak.ts): medians of a window at each end, not one sample each.
import { expect, test } from "bun:test";
import { rssGrowthPct } from "../bench/soak.ts";

const MIB = 2 ** 20;

/** One sample a second for `seconds`, from `bytesAt(second)`. */
function series(seconds: number, bytesAt: (s: number) => number) {
  return Array.from({ length: seconds }, (_, s) => ({ at_ms: s * 1000, bytes: bytesAt(s) }));
}

test("a series that wanders around one level shows no growth, whatever its end samples are", () => {
  // 360 MiB, +-40 MiB with the garbage collector; a trough right after the warm-up, a peak at the end.
  const wander = (s: number) => (360 + 40 * Math.sin(s * 1.7)) * MIB;
  const samples = series(300, wander);
  samples[60] = { at_ms: 60_000, bytes: 320 * MIB };
  samples[299] = { at_ms: 299_000, bytes: 400 * MIB };
  const r = rssGrowthPct(samples, 60_000, 299_000, 60_000);
  expect(Math.abs(r.pct as number)).toBeLessThan(2);
  // One sample at each end, as the bench compared before: 25% of "growth" from noise alone.
  expect(((400 - 320) / 320) * 100).toBe(25);
});

test("a steady climb after the warm-up is growth", () => {
  const climb = (s: number) => (s < 60 ? 300 : 300 + (s - 60) * 0.25) * MIB; // +15 MiB a minute
  const r = rssGrowthPct(series(300, climb), 60_000, 299_000, 60_000);
  // Medians: 307.5 MiB (seconds 60-120) and 352.25 MiB (seconds 239-299).
  expect(r.warmBytes).toBe(307.5 * MIB);
  expect(r.endBytes).toBe(352.25 * MIB);
  expect(r.pct as number).toBeCloseTo(14.55, 2);
});

test("no samples in a window: no figure", () => {
  expect(rssGrowthPct([], 60_000, 299_000, 60_000).pct).toBeNull();
  expect(
    rssGrowthPct(
      series(30, () => MIB),
      60_000,
      299_000,
      60_000,
    ).pct,
  ).toBeNull();
});
