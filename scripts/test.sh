#!/usr/bin/env bash
# The whole test suite: static checks, Zig tests (host + aarch64 NEON under qemu), bun tests.
# Set-up is included and idempotent. Ends with one line: "tests: N passed, N failed".
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOG_DIR="$ROOT/.cache/test-logs"
mkdir -p "$LOG_DIR"
passed=0
failed=0
failures=()

record() { # name, exit code
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); failures+=("$1"); echo "FAIL $1"; fi
}

finish() {
  echo
  if [ ${#failures[@]} -gt 0 ]; then echo "failed: ${failures[*]}"; fi
  echo "tests: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

if ! bash scripts/setup.sh >"$LOG_DIR/setup.log" 2>&1; then
  tail -40 "$LOG_DIR/setup.log"
  record "setup (deps, zig, native build, default model)" 1
  finish
fi
record "setup (deps, zig, native build, default model)" 0
# shellcheck disable=SC1091
source scripts/toolchain.sh

run_check() { # name, command...
  local name="$1"; shift
  local log="$LOG_DIR/$(echo "$name" | tr -c 'a-zA-Z0-9' '_').log"
  "$@" >"$log" 2>&1
  local rc=$?
  if [ $rc -ne 0 ]; then tail -60 "$log"; fi
  record "$name" $rc
}

run_check "zig fmt --check" zig fmt --check zig build.zig
run_check "biome check" bunx biome check .
run_check "tsc --noEmit" bunx tsc --noEmit -p .
# The library must keep building for macOS (Apple silicon, NEON) though only Linux runs the tests.
run_check "zig build for aarch64-macos (cross)" zig build -Doptimize=ReleaseFast -Dtarget=aarch64-macos --prefix "$LOG_DIR/cross-macos"

# Zig unit tests: count individual tests from the build summary.
count_zig() { # name, log
  local line
  line=$(grep -Eo '[0-9]+/[0-9]+ tests passed' "$2" | tail -1)
  if [ -n "$line" ]; then
    local p t
    p=${line%%/*}; t=${line#*/}; t=${t%% *}
    # "134/136 tests passed (2 skipped)": a skipped test (error.SkipZigTest) is not a failure.
    local s
    s=$(grep -Eo 'tests passed \([0-9]+ skipped\)' "$2" | tail -1 | grep -Eo '[0-9]+' || true)
    passed=$((passed + p)); failed=$((failed + t - p - ${s:-0}))
  fi
  # A cached run prints no "N/N tests passed" line; that is not a failure (and set -e is on).
  return 0
}
zig_suite() { # name, build args...
  local name="$1"; shift
  local log="$LOG_DIR/$name.log"
  zig build "$@" --summary all >"$log" 2>&1
  local rc=$?
  count_zig "$name" "$log"
  local counted
  counted=$(grep -Eo '[0-9]+/[0-9]+ tests passed' "$log" | tail -1)
  # Zig caches a test run whose inputs did not change: it passed before and is not counted again.
  [ -n "$counted" ] || counted="cached: unchanged since a passing run, not counted"
  if [ $rc -ne 0 ]; then tail -60 "$log"; record "$name" 1; else echo "ok   $name ($counted)"; fi
}
zig_suite zig-test test -Doptimize=ReleaseFast
if grep -q '"test-aarch64"' build.zig; then
  if ! command -v qemu-aarch64 >/dev/null 2>&1 && ! command -v qemu-aarch64-static >/dev/null 2>&1; then
    echo "[test] installing qemu-user (Debian) for the aarch64 NEON tests" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user) >"$LOG_DIR/apt.log" 2>&1 \
      || { tail -20 "$LOG_DIR/apt.log"; record "install qemu-user" 1; }
  fi
  zig_suite zig-test-aarch64 test-aarch64 -fqemu -Doptimize=ReleaseFast
fi

# The chat page's browser tests (test/web.test.ts) drive Debian's chromium through playwright-core.
if ! command -v chromium >/dev/null 2>&1; then
  echo "[test] installing chromium (Debian) for the chat page's browser tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core) \
    >"$LOG_DIR/apt-chromium.log" 2>&1 || { tail -20 "$LOG_DIR/apt-chromium.log"; record "install chromium" 1; }
fi

# The scale-out tests (test/scale.test.ts) start Debian's redis-server and nginx on loopback ports.
if ! command -v redis-server >/dev/null 2>&1 || { ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; }; then
  echo "[test] installing redis-server and nginx (Debian) for the scale-out tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server nginx) \
    >"$LOG_DIR/apt-scale.log" 2>&1 || { tail -20 "$LOG_DIR/apt-scale.log"; record "install redis-server and nginx" 1; }
fi

# bun tests: count from bun's summary (" N pass", " N fail").
bun_log="$LOG_DIR/bun-test.log"
bun test 2>&1 | tee "$bun_log" | grep -E '^\s*(✗|\(fail\))|error:' | head -100
bun_rc=${PIPESTATUS[0]}
bp=$(grep -Eo '^ *[0-9]+ pass' "$bun_log" | tail -1 | grep -Eo '[0-9]+')
bf=$(grep -Eo '^ *[0-9]+ fail' "$bun_log" | tail -1 | grep -Eo '[0-9]+')
passed=$((passed + ${bp:-0})); failed=$((failed + ${bf:-0}))
if [ "$bun_rc" -ne 0 ] && [ "${bf:-0}" -eq 0 ]; then tail -30 "$bun_log"; record "bun test (runner error)" 1; fi
echo "bun test: ${bp:-0} pass, ${bf:-0} fail"
finish
