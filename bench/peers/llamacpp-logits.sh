#!/usr/bin/env bash
# Builds bench/peers/llamacpp-logits.cpp against the native llama.cpp build (static libraries).
#   LLAMA_CPP_SRC=... LLAMA_CPP_BUILD=... bash bench/peers/llamacpp-logits.sh  -> $LLAMA_CPP_BUILD/bin/llamacpp-logits
set -euo pipefail
src=${LLAMA_CPP_SRC:-/work/peerbuild/llama_cpp_python-0.3.36/vendor/llama.cpp}
build=${LLAMA_CPP_BUILD:-/work/peerbuild/build}
out=${OUT:-$build/bin/llamacpp-logits}
here=$(cd "$(dirname "$0")" && pwd)
g++ -O2 -std=c++17 -I"$src/include" -I"$src/ggml/include" "$here/llamacpp-logits.cpp" -o "$out" \
  "$build/src/libllama.a" "$build/ggml/src/libggml.a" "$build/ggml/src/libggml-cpu.a" "$build/ggml/src/libggml-base.a" \
  -fopenmp -lpthread -lm -ldl
echo "$out"
