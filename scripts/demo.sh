#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job end to end on the built-in default: set up, train a BiPer binary MLP on the
# bundled 8x8 digits, export it for PYNQ-Z2 (FINN-ready ONNX, verified), emit C for Cortex-M4
# and run the whole test split on it in QEMU, comparing every integer logit with the IR.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
OUT=${OUT:-out}
mkdir -p "$OUT"
# --force: the demo owns $OUT and replaces what an earlier run wrote there
python3 -m bnn2hw train --model mlp --dataset digits --surrogate biper --w0 20 --compact -o "$OUT/model.pt"
python3 -m bnn2hw summary "$OUT/model.pt"
python3 -m bnn2hw export "$OUT/model.pt" --target pynq-z2 -o "$OUT/build" --force
python3 -m bnn2hw emit-c "$OUT/model.pt" --target cortex-m4 -o "$OUT/fw" --verify --force
