#!/usr/bin/env bash
# Installs the peer runtime (node-llama-cpp 3.22.1 + its prebuilt linux-x64 llama.cpp binary)
# into bench/peers/node_modules. Idempotent: a no-op when the pinned versions are present.
# Offline-safe: never downloads or builds llama.cpp (install scripts off, prebuilt binary only);
# only the npm registry is used, and npm's own cache makes re-installs local.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
WANT="3.22.1"

installed_version() { # package dir
  node -e 'try{process.stdout.write(require(process.argv[1]+"/package.json").version)}catch{}' "$1" 2>/dev/null || true
}

if [ "$(installed_version "$HERE/node_modules/node-llama-cpp")" = "$WANT" ] &&
  [ "$(installed_version "$HERE/node_modules/@node-llama-cpp/linux-x64")" = "$WANT" ]; then
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "[peers] npm not found: the peer runtime (node-llama-cpp) needs node >= 20 and npm" >&2
  exit 1
fi
echo "[peers] installing node-llama-cpp $WANT (prebuilt CPU binary, no download/build)" >&2
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true
# --omit=optional skips the CUDA/Vulkan/other-platform binaries; the CPU one is a direct dependency.
# --ignore-scripts: node-llama-cpp's postinstall would try to fetch or build llama.cpp.
# package-lock.json pins the transitive versions (npm ci rejects a lock without the other
# platforms' optional binaries, so plain install, which still follows the lock).
npm install --omit=optional --ignore-scripts --no-audit --no-fund --no-save --loglevel=error >&2
if [ "$(installed_version "$HERE/node_modules/@node-llama-cpp/linux-x64")" != "$WANT" ]; then
  echo "[peers] @node-llama-cpp/linux-x64 $WANT missing after install" >&2
  exit 1
fi
