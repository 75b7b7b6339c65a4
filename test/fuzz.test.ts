// A sample of the request fuzz (bench/fuzz-requests.ts; `bun run bench fuzz` runs all of it):
// 150 seeded hostile requests to a real `hearth serve`; any crash, hang or bad answer fails.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { FUZZ_CTX, fuzzCases, KINDS, runFuzz, startFuzzServer } from "../bench/fuzz-requests.ts";
import type { RunningServer } from "./server-process.ts";

let server: RunningServer;

beforeAll(async () => {
  server = await startFuzzServer();
}, 180_000);

afterAll(async () => {
  await server?.stop();
});

test("the generator is seeded and covers every kind", () => {
  const a = fuzzCases(7, 150);
  expect(JSON.stringify(fuzzCases(7, 150))).toBe(JSON.stringify(a));
  expect(JSON.stringify(fuzzCases(8, 150))).not.toBe(JSON.stringify(a));
  const kinds = new Set(a.map((c) => c.kind.replace(/:.*/, "")));
  expect([...kinds].sort()).toEqual([...new Set(KINDS)].sort());
  expect(a.some((c) => c.kind === "limits:max_tokens=ctx+1" || c.kind.startsWith("limits:"))).toBe(true);
  expect(FUZZ_CTX).toBeGreaterThan(0);
});

test("150 fuzz requests: no crash, no hang, no bad answer, the server still answers the same", async () => {
  const r = await runFuzz(server, { seed: 4023, count: 150, batch: 50 });
  expect(r.failures).toEqual([]);
  expect(r.requests).toBe(150);
  expect(r.crashes + r.hangs + r.bad_answers).toBe(0);
}, 120_000);
