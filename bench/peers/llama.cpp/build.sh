#!/usr/bin/env bash
# Builds the native llama.cpp peer (the oracle hearth's benchmarks and fixtures compare with) from
# the llama.cpp tree that the PyPI source distribution llama-cpp-python==0.3.36 carries
# (vendor/llama.cpp). Pinned (version and sha256), cached (the sdist and the build stay under
# bench/peers/llama.cpp/, gitignored), idempotent (a no-op once the tools are built with this pin).
# Debian's cmake and gcc, GGML_NATIVE=ON (tuned for this CPU), static, no curl, no OpenSSL.
# Only benchmarks and fixture scripts run this; never scripts/main.sh, scripts/test.sh or CI.
#
#   bash bench/peers/llama.cpp/build.sh            prints the bin directory on stdout when done
#   LLAMACPP_BUILD_DIR=/some/build bash build.sh   use (or build into) that directory instead
#   LLAMACPP_JOBS=N                                parallel compile jobs (default: nproc)
#
# Progress goes to stderr; the last stdout line is the directory holding the tools.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

PIN_NAME="llama-cpp-python"
PIN_VERSION="0.3.36"
PIN_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
SDIST="llama_cpp_python-${PIN_VERSION}.tar.gz"
TOOLS=(llama-bench llama-batched-bench llama-quantize llama-perplexity llama-tokenize
  llama-embedding llama-server llama-speculative)
# Test hook: build only these targets (e.g. ggml-base) to check the from-scratch path quickly.
if [ -n "${LLAMACPP_TARGETS:-}" ]; then read -r -a TOOLS <<<"$LLAMACPP_TARGETS"; fi
CMAKE_FLAGS=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DGGML_CCACHE=OFF)

SRC_ROOT="$HERE/src"
SRC="$SRC_ROOT/llama_cpp_python-${PIN_VERSION}/vendor/llama.cpp"
BUILD="${LLAMACPP_BUILD_DIR:-$HERE/build}"
STAMP="$BUILD/hearth-peer.stamp"
WANT_STAMP="${PIN_NAME}==${PIN_VERSION} ${PIN_SHA256} ${CMAKE_FLAGS[*]} targets: ${TOOLS[*]}"
JOBS="${LLAMACPP_JOBS:-$(nproc 2>/dev/null || echo 2)}"

log() { echo "[llama.cpp] $*" >&2; }

all_tools_present() {
  local t
  for t in "${TOOLS[@]}"; do
    case "$t" in llama-*) [ -x "$BUILD/bin/$t" ] || return 1 ;; *) [ -e "$BUILD/$t.done" ] || return 1 ;; esac
  done
}

# 1. Already built? With our stamp: done. Without a stamp (a build made by hand, named through
#    LLAMACPP_BUILD_DIR or linked in as build/) the tools being there is enough: we do not rebuild
#    someone else's tree. A stamp from another pin or other flags means: configure and build again.
if all_tools_present && { [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" = "$WANT_STAMP" ]; }; then
  [ -f "$STAMP" ] || log "using the existing build in $BUILD (not made by this script; flags unchecked)"
  echo "$BUILD/bin"
  exit 0
fi

# 2. Compilers: Debian's cmake and gcc, installed if missing.
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
if [ "${#need[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing ${need[*]} and no apt-get: install cmake, gcc, g++ and make, then rerun" && exit 1
  fi
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing ${need[*]} from Debian"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

# 3. Source: the pinned sdist from PyPI (pip's ordinary client), checked against its sha256.
if [ ! -f "$SRC/CMakeLists.txt" ]; then
  mkdir -p "$SRC_ROOT"
  if [ ! -f "$SRC_ROOT/$SDIST" ] || ! echo "$PIN_SHA256  $SRC_ROOT/$SDIST" | sha256sum -c --status; then
    PY="$(command -v python3 || command -v python || true)"
    if [ -z "$PY" ] || ! "$PY" -m pip --version >/dev/null 2>&1; then
      log "pip is needed to fetch ${PIN_NAME}==${PIN_VERSION} from PyPI (apt-get install python3-pip)" && exit 1
    fi
    log "downloading ${PIN_NAME}==${PIN_VERSION} (source distribution) from PyPI"
    rm -f "$SRC_ROOT/$SDIST"
    "$PY" -m pip download --no-deps --no-binary :all: "${PIN_NAME}==${PIN_VERSION}" -d "$SRC_ROOT" >&2
  fi
  if ! echo "$PIN_SHA256  $SRC_ROOT/$SDIST" | sha256sum -c --status; then
    log "$SRC_ROOT/$SDIST does not match the pinned sha256 $PIN_SHA256" && exit 1
  fi
  log "unpacking $SDIST"
  rm -rf "$SRC_ROOT/llama_cpp_python-${PIN_VERSION}"
  tar -xzf "$SRC_ROOT/$SDIST" -C "$SRC_ROOT"
  [ -f "$SRC/CMakeLists.txt" ] || { log "no vendor/llama.cpp in $SDIST" && exit 1; }
fi

# 4. Configure (again whenever the flags changed) and build the tools.
mkdir -p "$BUILD"
rm -f "$STAMP"
log "configuring in $BUILD (GGML_NATIVE=ON, static, no curl)"
cmake -S "$SRC" -B "$BUILD" "${CMAKE_FLAGS[@]}" >"$BUILD/cmake.log" 2>&1 ||
  { tail -20 "$BUILD/cmake.log" >&2 && log "cmake failed (full log: $BUILD/cmake.log)" && exit 1; }
log "building ${TOOLS[*]} with $JOBS jobs (5-20 minutes on 2 cores; log: $BUILD/build.log)"
cmake --build "$BUILD" --config Release -j "$JOBS" --target "${TOOLS[@]}" >"$BUILD/build.log" 2>&1 ||
  { tail -30 "$BUILD/build.log" >&2 && log "build failed (full log: $BUILD/build.log)" && exit 1; }
for t in "${TOOLS[@]}"; do case "$t" in llama-*) ;; *) touch "$BUILD/$t.done" ;; esac; done
all_tools_present || { log "build finished but tools are missing from $BUILD/bin" && exit 1; }
echo "$WANT_STAMP" >"$STAMP"
log "built: $BUILD/bin"
echo "$BUILD/bin"
