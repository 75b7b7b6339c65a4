#!/usr/bin/env bash
# Regenerates test/fixtures/quant/*.json from the native llama.cpp peer build (see quant-fixtures.c).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
peer="${PEER_ROOT:-/work/peerbuild}"
src="$peer/llama_cpp_python-0.3.36/vendor/llama.cpp/ggml"
lib="$peer/build/ggml/src"
out="$root/test/fixtures/quant"
mkdir -p "$out"
bin="$(mktemp -d)/quant-fixtures"
g++ -O1 -x c "$here/quant-fixtures.c" -x none -I "$src/include" -o "$bin" \
  "$lib/libggml.a" "$lib/libggml-cpu.a" "$lib/libggml-base.a" -lm -lpthread -fopenmp
"$bin" "$out"
ls -l "$out"
