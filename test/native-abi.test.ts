// The numbers libhearth owns, read at load (src/native/abi.ts over zig/limits.zig): the limits
// and status codes match what the library does, and a struct laid out differently is refused.
import { describe, expect, test } from "bun:test";
import { type AbiSymbols, readAbi } from "../src/native/abi.ts";
import { library, nativeAbi } from "../src/native/lib.ts";
import { nativeLimits } from "../src/native/limits.ts";

describe("limits and layouts from libhearth", () => {
  test("the limits are the library's: page size, option bounds, status codes", () => {
    const l = nativeLimits();
    expect(l.kvPageTokens).toBeGreaterThan(0);
    expect(l.status.ok).toBe(0);
    // A null pointer where the limits go is refused with the library's own code.
    expect(library().hearth_limits(null as never)).toBe(l.status.null_pointer);
    expect(new Set(Object.values(l.status)).size).toBe(Object.keys(l.status).length);
    expect(nativeAbi().layouts.kvStats.offset.page_tokens).toBe(0);
    expect(nativeAbi().layouts.hparams.sizeBytes % 4).toBe(0);
  });

  test("a struct whose fields differ from what TypeScript writes is a load error naming it", () => {
    const real = library();
    const renamed: AbiSymbols = {
      hearth_limits: (out) => real.hearth_limits(out),
      hearth_layout: (id, out, cap) => real.hearth_layout(id, out, cap),
      hearth_layout_names: (id, out, cap) => {
        const n = real.hearth_layout_names(id, out, cap);
        if (id === 1 && n > 0) out.set(new TextEncoder().encode("m_threads"), 0); // "n_threads" renamed
        return n;
      },
    };
    expect(() => readAbi(renamed)).toThrow(/extern struct options: libhearth has fields m_threads, kv_pages/);
    const shortLimits: AbiSymbols = {
      ...renamed,
      hearth_limits: (out) => {
        const rc = real.hearth_limits(out);
        out[0] = 8;
        return rc;
      },
    };
    expect(() => readAbi(shortLimits)).toThrow(/the limits struct is 8 bytes/);
  });
});
