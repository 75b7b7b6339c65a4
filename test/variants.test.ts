// The choice among the prebuilt libhearth builds: the best one the CPU's features allow, and
// HEARTH_CPU forcing one only when the CPU has what it needs.
import { describe, expect, test } from "bun:test";
import {
  PLATFORMS,
  pickVariant,
  platformById,
  supportedVariants,
  VariantError,
} from "../src/native/variants.ts";

const x64 = platformById("linux-x64");
const arm = platformById("linux-arm64");
if (x64 === undefined || arm === undefined) throw new Error("platform table lost linux-x64 or linux-arm64");
const all = (p: typeof x64) => p.variants.map((v) => v.name);
const v2 = ["ssse3", "sse4_1", "sse4_2", "popcnt", "cx16"];
const v3 = [...v2, "avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "abm", "movbe", "xsave"];
const v4 = [...v3, "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx512_vnni"];
// Skylake-SP/X: AVX-512 without VNNI.
const skylakeX = v4.filter((f) => f !== "avx512_vnni");

describe("pickVariant", () => {
  test("the best build the CPU runs, in the table's order", () => {
    expect(pickVariant(x64, all(x64), new Set(v4), undefined).name).toBe("avx512");
    expect(pickVariant(x64, all(x64), new Set(v3), undefined).name).toBe("avx2");
    // The avx512 build uses vpdpbusd: AVX-512 without VNNI runs the avx2 build.
    expect(pickVariant(x64, all(x64), new Set(skylakeX), undefined).name).toBe("avx2");
    expect(pickVariant(x64, all(x64), new Set(v2), undefined).name).toBe("baseline");
    // AVX2 without FMA (some VIA and early Intel parts) is not x86-64-v3.
    expect(pickVariant(x64, all(x64), new Set(v3.filter((f) => f !== "fma")), undefined).name).toBe(
      "baseline",
    );
    expect(pickVariant(arm, all(arm), new Set(["asimd", "asimddp"]), undefined).name).toBe("dotprod");
    expect(pickVariant(arm, all(arm), new Set(["asimd"]), undefined).name).toBe("neon");
  });

  test("only builds that are present count", () => {
    expect(pickVariant(x64, ["avx2", "baseline"], new Set(v4), undefined).name).toBe("avx2");
    expect(() => pickVariant(x64, ["avx512"], new Set(v3), undefined)).toThrow(VariantError);
    expect(() => pickVariant(x64, [], new Set(v4), undefined)).toThrow(/have: none/);
  });

  test("HEARTH_CPU forces a build, and is refused when the CPU lacks its features", () => {
    expect(pickVariant(x64, all(x64), new Set(v4), "baseline").name).toBe("baseline");
    expect(pickVariant(x64, all(x64), new Set(v4), "avx2").name).toBe("avx2");
    expect(() => pickVariant(x64, all(x64), new Set(v3), "avx512")).toThrow(
      "HEARTH_CPU=avx512: this CPU lacks avx512f, avx512bw, avx512cd, avx512dq, avx512vl, avx512_vnni",
    );
    expect(() => pickVariant(x64, all(x64), new Set(skylakeX), "avx512")).toThrow(
      "HEARTH_CPU=avx512: this CPU lacks avx512_vnni",
    );
    expect(() => pickVariant(x64, all(x64), new Set(v4), "dotprod")).toThrow(
      "HEARTH_CPU=dotprod is not one of the builds for linux-x64 here (avx512, avx2, baseline)",
    );
  });

  test("supportedVariants lists what the CPU runs, best first", () => {
    expect(supportedVariants(x64, new Set(v3)).map((v) => v.name)).toEqual(["avx2", "baseline"]);
  });

  test("every platform ends with a variant that needs at most the floor, and names are unique", () => {
    for (const p of PLATFORMS) {
      expect(new Set(all(p)).size).toBe(p.variants.length);
      const floor = p.variants.at(-1);
      expect(floor?.needs.every((f) => v2.includes(f))).toBe(true);
    }
  });
});
