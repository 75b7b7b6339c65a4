// The prebuilt libhearth builds: one per platform and CPU level, the Zig target and CPU each is
// compiled for, and the choice among them at load time from the features this CPU reports.
// The packer (scripts/pack.ts), the binary builder (scripts/build-binary.ts) and the loader
// (src/native/lib.ts) all read this one table.
import { readFileSync } from "node:fs";

export interface CpuVariant {
  /** Directory name in a platform package and the value HEARTH_CPU takes. */
  name: string;
  /** Zig's -Dcpu for this build. */
  zigCpu: string;
  /** Features the CPU must report (Linux /proc/cpuinfo names) for this build to run. */
  needs: readonly string[];
}

export interface Platform {
  /** `<os>-<arch>` as Node names them: the suffix of the platform package's name. */
  id: string;
  os: "linux" | "darwin";
  arch: "x64" | "arm64";
  /** Zig's -Dtarget (glibc 2.28 on Linux: runs on distributions from 2018 on). */
  zigTarget: string;
  /** `bun build --compile --target=` for the single-file binary (x64: the baseline runtime). */
  bunTarget: string;
  libFile: string;
  /** Best first. The last one runs on every CPU Bun itself runs on. */
  variants: readonly CpuVariant[];
}

/** x86-64-v3 as Zig and LLVM define it: AVX2, FMA, BMI1/2, F16C, LZCNT (abm), MOVBE. */
const x86v3 = [
  "avx",
  "avx2",
  "fma",
  "bmi1",
  "bmi2",
  "f16c",
  "abm",
  "movbe",
  "popcnt",
  "sse4_2",
  "cx16",
  "xsave",
];
const x86Variants: readonly CpuVariant[] = [
  // x86-64-v4 plus AVX512-VNNI: the integer dot products use vpdpbusd (zig/simd.zig has_vnni).
  // Every AVX-512 CPU since 2019 has VNNI (Cascade Lake, Ice Lake, Sapphire Rapids, Zen 4 and 5);
  // only Skylake-SP/X lacks it, and runs the avx2 build, whose integer kernels are the same
  // minus VNNI. One build per level keeps the platform packages small.
  {
    name: "avx512",
    zigCpu: "x86_64_v4+avx512vnni",
    needs: [...x86v3, "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx512_vnni"],
  },
  { name: "avx2", zigCpu: "x86_64_v3", needs: x86v3 },
  // x86-64-v2 (SSE4.2, POPCNT; Nehalem, 2008): the floor of Bun's own baseline build anyway.
  { name: "baseline", zigCpu: "x86_64_v2", needs: ["ssse3", "sse4_1", "sse4_2", "popcnt", "cx16"] },
];
const armVariants: readonly CpuVariant[] = [
  { name: "dotprod", zigCpu: "generic+dotprod", needs: ["asimd", "asimddp"] },
  { name: "neon", zigCpu: "generic", needs: [] },
];

export const PLATFORMS: readonly Platform[] = [
  {
    id: "linux-x64",
    os: "linux",
    arch: "x64",
    zigTarget: "x86_64-linux-gnu.2.28",
    bunTarget: "bun-linux-x64-baseline",
    libFile: "libhearth.so",
    variants: x86Variants,
  },
  {
    id: "linux-arm64",
    os: "linux",
    arch: "arm64",
    zigTarget: "aarch64-linux-gnu.2.28",
    bunTarget: "bun-linux-arm64",
    libFile: "libhearth.so",
    variants: armVariants,
  },
  {
    id: "darwin-arm64",
    os: "darwin",
    arch: "arm64",
    zigTarget: "aarch64-macos.11.0",
    bunTarget: "bun-darwin-arm64",
    libFile: "libhearth.dylib",
    variants: armVariants,
  },
  {
    id: "darwin-x64",
    os: "darwin",
    arch: "x64",
    zigTarget: "x86_64-macos.11.0",
    bunTarget: "bun-darwin-x64-baseline",
    libFile: "libhearth.dylib",
    variants: x86Variants,
  },
];

/** The npm scope of the platform packages: `@hearth-llm/linux-x64` and so on. */
export const PLATFORM_SCOPE = "@hearth-llm";

export function platformPackageName(p: Platform): string {
  return `${PLATFORM_SCOPE}/${p.id}`;
}

export function platformById(id: string): Platform | undefined {
  return PLATFORMS.find((p) => p.id === id);
}

/** This process's platform, or undefined where no prebuilt library exists (then: build it). */
export function hostPlatform(): Platform | undefined {
  return PLATFORMS.find((p) => p.os === process.platform && p.arch === process.arch);
}

/** CPU features in /proc/cpuinfo's vocabulary; empty when they cannot be read (baseline then). */
export function cpuFeatures(p: Platform): Set<string> {
  if (p.os === "linux") {
    try {
      const info = readFileSync("/proc/cpuinfo", "utf8");
      // x86 says "flags", arm64 "Features"; the first processor's line speaks for all.
      const line = /^(?:flags|Features)\s*:(.*)$/m.exec(info)?.[1] ?? "";
      return new Set(line.trim().split(/\s+/));
    } catch {
      return new Set();
    }
  }
  return darwinFeatures(p);
}

/** macOS: sysctl's feature lists, mapped to the Linux names the variant table uses. */
function darwinFeatures(p: Platform): Set<string> {
  const keys =
    p.arch === "arm64"
      ? ["hw.optional.arm.FEAT_DotProd", "hw.optional.neon"]
      : ["machdep.cpu.features", "machdep.cpu.leaf7_features", "machdep.cpu.extfeatures"];
  const out = new Set<string>();
  for (const key of keys) {
    let text = "";
    try {
      const r = Bun.spawnSync(["/usr/sbin/sysctl", "-n", key], { stdout: "pipe", stderr: "ignore" });
      if (r.exitCode !== 0) continue;
      text = r.stdout.toString().trim();
    } catch {
      continue;
    }
    if (p.arch === "arm64") {
      if (text === "1") out.add(key === "hw.optional.neon" ? "asimd" : "asimddp");
      continue;
    }
    const renamed: Record<string, string> = {
      "avx1.0": "avx",
      lzcnt: "abm",
      "sse4.1": "sse4_1",
      "sse4.2": "sse4_2",
      avx512vnni: "avx512_vnni",
    };
    for (const word of text.toLowerCase().split(/\s+/)) out.add(renamed[word] ?? word);
  }
  // Every Apple arm64 CPU has NEON; sysctl names it only on some releases.
  if (p.arch === "arm64") out.add("asimd");
  return out;
}

export class VariantError extends Error {
  override name = "VariantError";
}

/**
 * The best of `available` this CPU runs, or the one HEARTH_CPU names (refused, with the missing
 * features, when the CPU lacks them: forcing must never end in an illegal instruction).
 */
export function pickVariant(
  p: Platform,
  available: readonly string[],
  features: Set<string> = cpuFeatures(p),
  forced: string | undefined = process.env.HEARTH_CPU || undefined,
): CpuVariant {
  const usable = p.variants.filter((v) => available.includes(v.name));
  if (forced !== undefined) {
    const v = usable.find((u) => u.name === forced);
    if (v === undefined) {
      throw new VariantError(
        `HEARTH_CPU=${forced} is not one of the builds for ${p.id} here (${usable.map((u) => u.name).join(", ") || "none"})`,
      );
    }
    const missing = v.needs.filter((f) => !features.has(f));
    if (missing.length > 0)
      throw new VariantError(`HEARTH_CPU=${forced}: this CPU lacks ${missing.join(", ")}`);
    return v;
  }
  const best = usable.find((v) => v.needs.every((f) => features.has(f)));
  if (best === undefined) {
    throw new VariantError(
      `no libhearth build for ${p.id} runs on this CPU (have: ${usable.map((u) => u.name).join(", ") || "none"})`,
    );
  }
  return best;
}

/** The variants this CPU can run, best first (for tests that compare them). */
export function supportedVariants(p: Platform, features: Set<string> = cpuFeatures(p)): CpuVariant[] {
  return p.variants.filter((v) => v.needs.every((f) => features.has(f)));
}
