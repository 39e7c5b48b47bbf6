# SPDX-License-Identifier: MIT
"""Instructions per inference and flash/RAM of a random-weight 256-256-256-10 all-binary
MLP (input 256 packed bits, hidden layers threshold to bits, last layer int32 logits)
per Cortex-M core and popcount strategy, plus a plain float C version of the same
network.  Instruction counts are exact QEMU counts of one bnn_infer() call
(bnn2hw.mcu.qemu.count_instructions).  Writes benchmarks/results/mcu_kernels.md.

    python benchmarks/bench_mcu_kernels.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "firmware" / "tests"))

import mlp_model  # noqa: E402

from bnn2hw.errors import Bnn2hwError  # noqa: E402
from bnn2hw.mcu import qemu, toolchain  # noqa: E402
from bnn2hw.mcu.targets import POPCOUNT_STRATEGIES  # noqa: E402

SEED = 2024
SIZES = [256, 256, 256, 10]
CORES = ["cortex-m0", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]
FPU_CORES = {"cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"}
TARGET_M4 = 40_000


def main() -> None:
    model = mlp_model.random_binary_mlp(SIZES, SEED)
    rng = np.random.default_rng(SEED)
    inputs = rng.integers(0, 256, size=(4, SIZES[0] // 8), dtype=np.uint8)
    ref = mlp_model.binary_mlp_reference(model, inputs)
    macs = sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:]))
    words = sum(((a + 31) // 32) * b for a, b in zip(SIZES[:-1], SIZES[1:]))
    rows = []
    for core in CORES:
        for pop in POPCOUNT_STRATEGIES:
            with tempfile.TemporaryDirectory() as d:
                mlp_model.write_binary_mlp(Path(d), model)
                elf = toolchain.build(Path(d), core, popcount=pop)
                assert np.array_equal(qemu.run(elf, core, inputs, SIZES[-1]), ref), f"{core}/{pop} wrong logits"
                n = qemu.count_instructions(elf, core, inputs[0])
                sz = toolchain.size(elf)
            rows.append((core, pop, n, sz.flash, sz.ram))
            print(core, pop, n, flush=True)
        if core in FPU_CORES:
            with tempfile.TemporaryDirectory() as d:
                mlp_model.write_float_mlp(Path(d), model)
                try:
                    elf = toolchain.build(Path(d), core)
                except Bnn2hwError as exc:  # 534 KB of float weights vs 512 KiB ITCM on the AN547
                    print(core, "float does not link:", str(exc).splitlines()[-3], flush=True)
                    rows.append((core, "float C (hard-float)", None, None, None))
                    continue
                assert np.array_equal(qemu.run(elf, core, inputs, SIZES[-1]), ref), f"{core}/float wrong logits"
                n = qemu.count_instructions(elf, core, inputs[0])
                sz = toolchain.size(elf)
            rows.append((core, "float C (hard-float)", n, sz.flash, sz.ram))
            print(core, "float", n, flush=True)
    lines = [
        "# MCU kernel benchmark: 256-256-256-10 all-binary MLP",
        "",
        f"Random weights (seed {SEED}); input 256 packed bits; hidden layers `bnn_dense_bits`, last layer "
        "`bnn_dense_acc`; harness `firmware/harness`, `-O2`, arm-none-eabi-gcc "
        "(Debian), QEMU 7.2.  Instructions = exact count of one `bnn_infer()` call "
        "(`qemu -singlestep -d exec,nochain`, marker calibration subtracted); identical for every input. "
        "Flash = text + data, RAM = data + bss (stack not included; includes the harness' buffers).",
        "",
        f"Work: {macs:,} binary MACs = {words:,} xor-popcount words of 32 MACs.  "
        f"Target on Cortex-M4: <= {TARGET_M4:,} instructions (~{TARGET_M4 / words:.1f} per word); "
        "references: hand-tuned SWAR 58,417, CMSIS-NN int8 276,981.",
        "",
        "| core | popcount | instructions | instr / word | flash (B) | RAM (B) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for core, pop, n, fl, ram in rows:
        if n is None:
            lines.append(f"| {core} | {pop} | does not fit (534 KB of float weights > 512 KiB code memory) | | | |")
            continue
        lines.append(f"| {core} | {pop} | {n:,} | {n / words:.2f} | {fl:,} | {ram:,} |")
    lines += [
        "",
        "Float baseline: weights as +-1.0f, float accumulate and compare, only on cores with an FPU "
        "(on M0/M3 soft-float the exec log would be too large to count this way).",
        "",
        "Reproduce: `python benchmarks/bench_mcu_kernels.py`.",
        "",
    ]
    out = ROOT / "benchmarks" / "results" / "mcu_kernels.md"
    out.write_text("\n".join(lines))
    print(out)


if __name__ == "__main__":
    main()
