#!/usr/bin/env bash
# Idempotent set-up: pinned bun + zig, JS deps, native library, default model.
# Everything downloaded is cached (.tools/, node_modules/, the model cache dir).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
source scripts/toolchain.sh
echo "[setup] bun $(bun --version), zig $(zig version)" >&2
if [ -f bun.lock ]; then bun install --frozen-lockfile >&2; else bun install >&2; fi
echo "[setup] building libhearth (ReleaseFast, host CPU)" >&2
zig build -Doptimize=ReleaseFast >&2
if [ "${HEARTH_SKIP_MODEL:-0}" != "1" ]; then
  bun src/cli/main.ts pull >&2
fi
