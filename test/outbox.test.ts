// The engine worker's outbox (src/engine/outbox.ts): one message per step while the main thread
// keeps up, the steps' events held and sent together, in order, while it lags, and the scheduler's
// figures only when a request ended, the engine goes idle, or their interval passed.
import { describe, expect, test } from "bun:test";
import { Outbox, STATS_INTERVAL_MS } from "../src/engine/outbox.ts";
import type { FromWorker } from "../src/engine/protocol.ts";
import type { EngineEvent, SchedulerStats } from "../src/engine/request.ts";

type EventsMsg = Extract<FromWorker, { type: "events" }>;

function harness() {
  const sent: EventsMsg[] = [];
  const handled = new Int32Array(new SharedArrayBuffer(4));
  let clock = 0;
  let statsCalls = 0;
  const stats = () => {
    statsCalls++;
    return { steps: statsCalls } as unknown as SchedulerStats;
  };
  const box = new Outbox(
    (m) => sent.push(m),
    stats,
    handled,
    () => clock,
  );
  return {
    box,
    sent,
    /** The main thread handles every message sent so far. */
    catchUp: () => Atomics.store(handled, 0, sent.length),
    tick: (ms: number) => {
      clock += ms;
    },
    statsCalls: () => statsCalls,
  };
}

const text = (id: string, t: string): EngineEvent => ({ type: "text", id, text: t, tokens: 1 });
const done = (id: string): EngineEvent => ({
  type: "done",
  id,
  text: "",
  finish: "length",
  promptTokens: 1,
  cachedTokens: 0,
  completionTokens: 2,
  draftTokens: 0,
  acceptedDraftTokens: 0,
});

describe("the engine worker's outbox", () => {
  test("sends each step on its own while the main thread keeps up, with the figures only when due", () => {
    const h = harness();
    h.box.push([text("a", "x")], 5, false);
    h.catchUp();
    h.tick(5);
    h.box.push([text("a", "y")], 5, false);
    h.catchUp();
    expect(h.sent.map((m) => m.events.map((e) => (e.type === "text" ? e.text : e.type)))).toEqual([
      ["x"],
      ["y"],
    ]);
    // The first message carries the figures; the next, 5 ms later, does not.
    expect(h.sent[0]?.stats).toBeDefined();
    expect(h.sent[1]?.stats).toBeUndefined();
    expect(h.statsCalls()).toBe(1);
    h.tick(STATS_INTERVAL_MS);
    h.box.push([text("a", "z")], 5, false);
    expect(h.sent[2]?.stats).toBeDefined();
    h.catchUp();
    // A request that ends brings them at once.
    h.box.push([done("a")], 5, false);
    expect(h.sent[3]?.stats).toBeDefined();
    expect(h.sent[3]?.stepMs).toBe(5);
  });

  test("holds the steps' events while the main thread lags and sends them together, in order", () => {
    const h = harness();
    h.box.push([text("a", "1")], 5, false);
    // Not handled yet: the next steps wait.
    h.box.push([text("a", "2"), text("b", "1")], 6, false);
    h.box.push([text("a", "3")], 7, false);
    expect(h.sent.length).toBe(1);
    // Each request's held texts are one event, its tokens summed.
    expect(h.box.held).toBe(2);
    h.catchUp();
    h.box.push([text("b", "2")], 8, false);
    expect(h.sent.length).toBe(2);
    expect(
      h.sent[1]?.events.map((e) => `${e.id}${e.type === "text" ? `${e.text}/${e.tokens}` : ""}`),
    ).toEqual(["a23/2", "b12/2"]);
    expect(h.sent[1]?.stepMs).toBe(8);
    expect(h.box.held).toBe(0);
  });

  test("flush sends what is held even while the main thread lags (idle engine, an answer to a cancel)", () => {
    const h = harness();
    h.box.push([text("a", "1")], 5, false);
    h.box.push([text("a", "2")], 5, false);
    expect(h.box.held).toBe(1);
    h.box.push([done("a")], 0, true);
    expect(h.sent.length).toBe(2);
    expect(h.sent[1]?.events.map((e) => e.type)).toEqual(["text", "done"]);
    expect(h.sent[1]?.stats).toBeDefined();
    // Nothing to send and nothing due: no message.
    h.catchUp();
    h.box.push([], 5, false);
    expect(h.sent.length).toBe(2);
  });

  test("a request's end is not joined with its text, and its next request starts a new event", () => {
    const h = harness();
    h.box.push([text("a", "1")], 5, false);
    h.box.push([text("a", "2"), text("b", "1")], 5, false);
    h.box.push([done("a"), text("b", "2")], 5, false);
    // The same id again after its end (ids are not reused, but the outbox must not rely on it).
    h.box.push([text("a", "x")], 5, false);
    h.catchUp();
    h.box.push([], 5, false);
    expect(
      h.sent[1]?.events.map((e) => `${e.id}${e.type === "text" ? `${e.text}/${e.tokens}` : e.type}`),
    ).toEqual(["a2/1", "b12/2", "adone", "ax/1"]);
  });

  test("joined texts keep every token's log-probabilities, in order", () => {
    const h = harness();
    const lp = (id: number) => ({ id, logprob: -id, top: [] });
    const scored = (t: string, id: number): EngineEvent =>
      ({ ...text("a", t), logprobs: [lp(id)] }) as EngineEvent;
    h.box.push([text("a", "1")], 5, false);
    h.box.push([scored("2", 2)], 5, false);
    h.box.push([scored("3", 3)], 5, false);
    h.box.push([], 0, true);
    const ev = h.sent[1]?.events[0];
    expect(ev?.type === "text" ? ev.logprobs?.map((x) => x.id) : null).toEqual([2, 3]);
  });

  test("without a shared counter it sends every step", () => {
    const sent: EventsMsg[] = [];
    const box = new Outbox(
      (m) => sent.push(m),
      () => ({}) as SchedulerStats,
      null,
    );
    box.push([text("a", "1")], 5, false);
    box.push([text("a", "2")], 5, false);
    expect(sent.length).toBe(2);
  });
});
