// The README's benchmark table is what scripts/readme-table.ts renders from the committed
// bench/results, so no figure in it is typed by hand; and the renderer puts each figure in its row.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import {
  BEGIN,
  committedResults,
  END,
  README,
  type ResultFile,
  renderTable,
  withTable,
} from "../scripts/readme-table.ts";

describe("the README's benchmark table", () => {
  test("equals the render of the committed bench/results (run `bun run readme-table` after committing a result)", () => {
    const readme = readFileSync(README, "utf8");
    expect(readme).toContain(BEGIN);
    expect(readme).toContain(END);
    expect(withTable(readme, renderTable(committedResults()))).toBe(readme);
  });

  test("takes each model's newest e2e run, names the peer of every row, and lists the runs", () => {
    const machine = { cpu: "Test CPU", cores: 2, thp: "madvise", read_gbps_2t: 30, loadavg: [0.5, 0.4, 0.3] };
    const build = "llama-cpp-python 0.3.36 sdist, build abc1234, GGML_NATIVE, /x/bin";
    const older: ResultFile = {
      path: "bench/results/old.json",
      doc: {
        date: "2026-12-01T00:00:00.000Z",
        commit: "1111111",
        command: "bun run bench e2e",
        machine,
        suites: { e2e: { summary: { model: "A.Q4_1.gguf", hearth_pp512: 1, hearth_tg128: 1 } } },
      },
    };
    const newer: ResultFile = {
      path: "bench/results/new.json",
      doc: {
        date: "2026-12-02T00:00:00.000Z",
        commit: "2222222",
        command: "bun run bench e2e serve",
        machine,
        suites: {
          e2e: {
            summary: {
              model: "A.Q4_1.gguf",
              model_q4_0: "A.Q4_0.gguf",
              llamacpp_build: build,
              hearth_pp512: 800,
              llamacpp_pp512: 400,
              llamacpp_pp512_flash_attention: "on",
              ratio_pp512: 2,
              hearth_tg128: 200,
              llamacpp_tg128: 100,
              ratio_tg128: 2,
              nodellamacpp_tg128: 50,
              tg_bandwidth_share: 0.7123,
              llamacpp_tg_bandwidth_share: 0.35,
              hearth_tg128_q4_0: 210,
              llamacpp_tg128_q4_0: 140,
              ratio_tg128_q4_0: 1.5,
              depth_tokens: 4096,
              hearth_pp512_depth: 300,
              llamacpp_pp512_depth: 150,
              ratio_pp512_depth: 2,
              hearth_tg128_depth: 120,
              llamacpp_tg128_depth: 60,
              ratio_tg128_depth: 2,
            },
          },
          serve: {
            summary: {
              llamacpp_build: null,
              hearth_decode_tps_1: 180,
              library_decode_tps: 200,
              serve_1_vs_library_tg: 0.9,
              hearth_agg_1: 170,
              llamacpp_agg_1: 100,
              hearth_agg_16: 600,
              llamacpp_agg_16: 200,
              serve_16_vs_llamacpp: 3,
              inproc_tps_16: 700,
              serve_16_vs_ceiling: 600 / 700,
              hearth_scaling_16_vs_1: 3.5,
            },
          },
        },
      },
    };
    const table = renderTable([older, newer]);
    const lines = table.split("\n");
    const row = (...parts: string[]) => lines.find((l) => parts.every((p) => l.includes(p)));
    expect(
      row("| e2e | A.Q4_1 | pp512 t/s | 800.0 | native llama.cpp abc1234 | 400.0 (fa on) | 2.00x |"),
    ).toBeDefined();
    expect(
      row("| e2e | A.Q4_1 | tg128 t/s | 200.0 | node-llama-cpp 3.22.1 under Bun | 50.0 | 4.00x |"),
    ).toBeDefined();
    expect(row("A.Q4_1", "share of the read bandwidth", "71.2%", "35.0%")).toBeDefined();
    expect(
      row("| e2e | A.Q4_0 | tg128 t/s | 210.0 | native llama.cpp abc1234 | 140.0 | 1.50x |"),
    ).toBeDefined();
    expect(row("tg128 t/s at depth 4,096 | 120.0", "60.0", "2.00x")).toBeDefined();
    expect(row("1 stream: decode t/s | 180.0 | hearth library, same run | 200.0 | 0.90x")).toBeDefined();
    expect(
      row("16 streams: aggregate t/s | 600.0 | native llama.cpp (llama-server -np 16) | 200.0 | 3.00x"),
    ).toBeDefined();
    expect(row("hearth in-process 16-row steps, same run | 700.0 | 0.86x")).toBeDefined();
    // The older run of the same model is superseded: its figures and its file are not shown.
    expect(table).not.toContain("old.json");
    expect(table).toContain("`bun run bench e2e serve` at 2222222, 2026-12-02 00:00 UTC; Test CPU, 2 cores");
  });

  test("replaces only the region between the markers", () => {
    const doc = `# x\n\nbefore\n\n${BEGIN}\nstale\n${END}\n\nafter\n`;
    expect(withTable(doc, "| new |")).toBe(`# x\n\nbefore\n\n${BEGIN}\n| new |\n${END}\n\nafter\n`);
    expect(() => withTable("# no markers\n", "x")).toThrow(/no table region/);
  });
});
