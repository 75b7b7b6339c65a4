#!/usr/bin/env bash
# The main job: set everything up (idempotent, cached), then generate text with the default model.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
# shellcheck disable=SC1091
source scripts/toolchain.sh
PROMPT="${1:-Write one sentence about why the sky is blue.}"
exec bun src/cli/main.ts run --chat -n 64 -p "$PROMPT"
