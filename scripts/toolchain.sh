#!/usr/bin/env bash
# Resolves pinned bun and zig: PATH first (if the version matches), else installs
# Bun from npm and Zig from PyPI into .tools/ (cached, idempotent).
# Source it: exports BUN and ZIG (absolute paths) and puts them on PATH.
# It does not change the caller's shell options (no set -e): failures exit explicitly.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/toolchain.env"
TOOLS="$ROOT/.tools"
mkdir -p "$TOOLS"

resolve_bun() {
  if command -v bun >/dev/null 2>&1 && [ "$(bun --version 2>/dev/null)" = "$BUN_VERSION" ]; then
    BUN="$(command -v bun)"; return
  fi
  local dir="$TOOLS/bun-$BUN_VERSION"
  if [ ! -x "$dir/node_modules/bun/bin/bun.exe" ]; then
    echo "[toolchain] installing bun $BUN_VERSION from npm into $dir" >&2
    mkdir -p "$dir"
    npm install --no-save --no-audit --no-fund --prefix "$dir" "bun@$BUN_VERSION" >&2 \
      || { echo "[toolchain] error: npm install bun@$BUN_VERSION failed" >&2; exit 1; }
  fi
  BUN="$dir/node_modules/bun/bin/bun.exe"
  if [ ! -x "$BUN" ] || [ "$("$BUN" --version)" != "$BUN_VERSION" ]; then
    echo "[toolchain] error: bun $BUN_VERSION did not install correctly at $BUN" >&2; exit 1
  fi
}

resolve_zig() {
  if command -v zig >/dev/null 2>&1 && [ "$(zig version 2>/dev/null)" = "$ZIG_VERSION" ]; then
    ZIG="$(command -v zig)"; return
  fi
  local dir="$TOOLS/zig-$ZIG_VERSION"
  if [ ! -x "$dir/ziglang/zig" ]; then
    echo "[toolchain] installing zig $ZIG_VERSION from PyPI (ziglang) into $dir" >&2
    python3 -m pip install --quiet --disable-pip-version-check --target "$dir" "ziglang==$ZIG_VERSION" >&2 \
      || { echo "[toolchain] error: pip install ziglang==$ZIG_VERSION failed" >&2; exit 1; }
  fi
  ZIG="$dir/ziglang/zig"
  if [ "$("$ZIG" version)" != "$ZIG_VERSION" ]; then
    echo "[toolchain] error: zig $ZIG_VERSION did not install correctly at $ZIG" >&2; exit 1
  fi
}

resolve_bun
resolve_zig
mkdir -p "$TOOLS/bin"
BUN="$(readlink -f "$BUN")"
ZIG="$(readlink -f "$ZIG")"
# Replace a link only when it changes, atomically (rename), so concurrent runs never see it missing.
link_tool() { # target, name
  if [ "$(readlink "$TOOLS/bin/$2" 2>/dev/null)" != "$1" ]; then
    ln -sfn "$1" "$TOOLS/bin/.$2.$$" && mv -f "$TOOLS/bin/.$2.$$" "$TOOLS/bin/$2"
  fi
}
link_tool "$BUN" bun
link_tool "$BUN" bunx
link_tool "$ZIG" zig
export BUN ZIG
export PATH="$TOOLS/bin:$PATH"
