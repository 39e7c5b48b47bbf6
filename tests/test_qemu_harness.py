# SPDX-License-Identifier: MIT
"""The QEMU/host harness: a hand-written random binary MLP (firmware/tests/mlp_model.py)
built with firmware/harness/Makefile runs on host (sanitizers) and in QEMU for Cortex-M0,
M3, M4, M7, M33, M55; logits equal the numpy computation exactly.  Also: target table,
tool errors, instruction counting."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from bnn2hw.errors import Bnn2hwError
from bnn2hw.mcu import qemu, toolchain
from bnn2hw.mcu.targets import get_target

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware" / "tests"))
import mlp_model  # noqa: E402

SEED = 1234
TARGETS = ["host", "cortex-m0", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]


def _need(target: str) -> None:
    tools = ["gcc"] if target == "host" else ["arm-none-eabi-gcc", "qemu-system-arm"]
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found")


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("sizes", [[256, 256, 256, 10], [65, 33, 7]])
def test_mlp_logits_match_numpy(tmp_path, target, sizes):
    _need(target)
    seed = SEED + sizes[0]
    model = mlp_model.random_binary_mlp(sizes, seed)
    mlp_model.write_binary_mlp(tmp_path, model)
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, 256, size=(6, (sizes[0] + 7) // 8), dtype=np.uint8)
    if sizes[0] % 8:
        inputs[:, -1] &= (1 << (sizes[0] % 8)) - 1  # padding bits 0
    elf = toolchain.build(tmp_path, target)
    got = qemu.run(elf, target, inputs, sizes[-1])
    assert np.array_equal(got, mlp_model.binary_mlp_reference(model, inputs)), f"{target} (seed {seed})"


@pytest.mark.parametrize("popcount", ["builtin", "swar", "table", "multi"])
def test_strategies_on_m4(tmp_path, popcount):
    _need("cortex-m4")
    model = mlp_model.random_binary_mlp([256, 128, 10], SEED)
    mlp_model.write_binary_mlp(tmp_path, model)
    inputs = np.random.default_rng(SEED).integers(0, 256, size=(3, 32), dtype=np.uint8)
    elf = toolchain.build(tmp_path, "cortex-m4", popcount=popcount)
    got = qemu.run(elf, "cortex-m4", inputs, 10)
    assert np.array_equal(got, mlp_model.binary_mlp_reference(model, inputs)), f"{popcount} (seed {SEED})"


def test_flat_directory_build(tmp_path):
    """The code generator's layout: runtime + harness copied next to model.c."""
    _need("cortex-m4")
    model = mlp_model.random_binary_mlp([64, 10], SEED)
    mlp_model.write_binary_mlp(tmp_path, model)
    for f in toolchain.runtime_files():
        shutil.copy(f, tmp_path)
    elf = toolchain.build(tmp_path, "cortex-m4")
    inputs = np.random.default_rng(SEED).integers(0, 256, size=(2, 8), dtype=np.uint8)
    assert np.array_equal(qemu.run(elf, "cortex-m4", inputs, 10), mlp_model.binary_mlp_reference(model, inputs))
    sz = toolchain.size(elf)
    assert sz.flash > 64 * 10 // 8 and sz.ram > 0


def test_instruction_count_is_deterministic_and_meets_target(tmp_path):
    """The same input always costs the same instructions. Different inputs may not: the
    column-sliced hidden layers (bnn_vcols.h) count min(n1, K - n1) + 1 columns, so the target
    is checked on random inputs and on the extremes (all -1, all +1)."""
    _need("cortex-m4")
    model = mlp_model.random_binary_mlp([256, 256, 256, 10], SEED)
    mlp_model.write_binary_mlp(tmp_path, model)
    elf = toolchain.build(tmp_path, "cortex-m4")
    rng = np.random.default_rng(SEED)
    inputs = [rng.integers(0, 256, 32, dtype=np.uint8) for _ in range(2)]
    inputs += [np.zeros(32, np.uint8), np.full(32, 255, np.uint8)]
    counts = [qemu.count_instructions(elf, "cortex-m4", x) for x in inputs]
    assert qemu.count_instructions(elf, "cortex-m4", inputs[0]) == counts[0], "count is not deterministic"
    assert max(counts) <= 40_000, f"256-256-256-10 binary MLP on Cortex-M4 took {counts} instructions (> 40,000)"


def test_wrong_input_length_is_an_error(tmp_path):
    _need("host")
    model = mlp_model.random_binary_mlp([64, 10], SEED)
    mlp_model.write_binary_mlp(tmp_path, model)
    elf = toolchain.build(tmp_path, "host")
    with pytest.raises(Bnn2hwError, match="multiple of BNN_INPUT_LEN"):
        qemu.run(elf, "host", np.zeros((1, 5), np.uint8), 10)


def test_targets_and_errors(monkeypatch):
    assert get_target("cortex-m").name == "cortex-m4"
    with pytest.raises(Bnn2hwError, match="valid targets: host, cortex-m0"):
        get_target("cortex-a53")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(Bnn2hwError, match="apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"):
        toolchain.find_tool("arm-none-eabi-gcc")
