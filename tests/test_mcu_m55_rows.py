# SPDX-License-Identifier: MIT
"""Cortex-M55 (Helium) dense layers link one lanes-only row body per row class (issue 11, flash):
bnn__dbt2_pick (bnn_bits.h) folds a constant row length to bnn__dbt_mve_l16 (rows of 8..31
words) or bnn__dbt_mve_l8 (1..7 words), bits and popcount mode in one body, so generated code
does not link the general kernels (bnn__dbt_mve, bnn__dbt_mve_pop, the 4-row core).  The logits
are checked against numpy in QEMU (mps3-an547) on shapes with whole 8-row groups, rows left over
(10 = 8 + 2 logits) and fewer rows than one group (5 logits), and the symbols of the ELF."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bnn2hw.mcu import qemu, toolchain

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware" / "tests"))
import mlp_model  # noqa: E402

GENERAL = {"bnn__dbt_mve", "bnn__dbt_mve_pop", "rows4_bits", "rows4_pop"}


def _need() -> None:
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-nm", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: apt-get install gcc-arm-none-eabi binutils-arm-none-eabi qemu-system-arm")


def _symbols(elf: Path) -> set[str]:
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    return {parts[2] for parts in (line.split() for line in out.splitlines()) if len(parts) == 3}


@pytest.mark.parametrize("sizes, body", [([256, 256, 256, 10], "bnn__dbt_mve_l16"),  # 8-word rows, 10 = 8 + 2
                                         ([224, 63, 5], "bnn__dbt_mve_l8"),  # 7- and 2-word rows, 5 < 8 logits
                                         ([992, 33, 10], None)])  # 31 words (l16) and 2 words (l8)
def test_m55_dense_links_lanes_only(tmp_path, sizes, body):
    _need()
    seed = 4242 + sizes[0]
    model = mlp_model.random_binary_mlp(sizes, seed)
    mlp_model.write_binary_mlp(tmp_path, model)
    elf = toolchain.build(tmp_path, "cortex-m55")
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, 256, size=(4, (sizes[0] + 7) // 8), dtype=np.uint8)
    inputs[1] = 0  # all -1
    inputs[2] = 255  # all +1
    got = qemu.run(elf, "cortex-m55", inputs, sizes[-1])
    assert np.array_equal(got, mlp_model.binary_mlp_reference(model, inputs)), f"{sizes} (seed {seed})"
    syms = _symbols(elf)
    want = {body} if body else {"bnn__dbt_mve_l16", "bnn__dbt_mve_l8"}
    assert want <= syms, f"{sizes}: {want - syms} not linked"
    assert not syms & GENERAL, f"{sizes}: general Helium kernels linked: {syms & GENERAL}"


def test_m55_scalar_build_links_no_helium(tmp_path):
    """-DBNN_NO_MVE keeps the Thumb-2 rows: no Helium kernel in the image."""
    _need()
    model = mlp_model.random_binary_mlp([256, 64, 10], 77)
    mlp_model.write_binary_mlp(tmp_path, model)
    elf = toolchain.build(tmp_path, "cortex-m55", extra_cflags="-DBNN_NO_MVE")
    inputs = np.random.default_rng(77).integers(0, 256, size=(2, 32), dtype=np.uint8)
    got = qemu.run(elf, "cortex-m55", inputs, 10)
    assert np.array_equal(got, mlp_model.binary_mlp_reference(model, inputs))
    assert not {s for s in _symbols(elf) if "mve" in s}
