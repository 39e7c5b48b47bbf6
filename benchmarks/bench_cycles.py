# SPDX-License-Identifier: MIT
"""Estimated cycles beside QEMU's exact instruction counts (issue 11), per core: random
all-binary MLPs (the kernel benchmark's generator, ``firmware/tests/mlp_model.py``) at several
widths, and the hand-derived validation loops of ``tests/test_cycles.py``.

Cycles are an estimate (:mod:`bnn2hw.mcu.cycles`: the Cortex-M4 TRM's Table 3-1 with P = 1, up
to P = 3; a simple dual-issue model for the Cortex-M7; an MVE beat model for the Cortex-M55; the
M4 table applied to the other cores, said so in the table). Latency at each core's default ``--clock-mhz``. Writes
``benchmarks/results/cycles.md``.

    python benchmarks/bench_cycles.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bnn2hw" / "firmware" / "tests"))
sys.path.insert(0, str(ROOT / "tests"))

import mlp_model

from bnn2hw.mcu import cycles, qemu, toolchain

SEED = 2024
WIDTHS = [128, 256, 512]
CORES = ["cortex-m0", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]


_MEMORY_CHILD = r"""
import resource, sys, time
import numpy as np
from pathlib import Path
from bnn2hw.mcu import qemu
elf, mode = Path(sys.argv[1]), sys.argv[2]
x = np.fromfile(sys.argv[3], dtype=np.uint8)
t = time.monotonic()
n = (qemu.count_cycles(elf, "cortex-m4", x).instructions if mode == "block"
     else qemu.count_instructions(elf, "cortex-m4", x, single_step=True))
s, k = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(n, time.monotonic() - t, max(s.ru_maxrss, k.ru_maxrss) / 1024)
"""


def counting_memory(width: int = 2560) -> list[str]:
    """Peak RSS (largest process: Python or QEMU) and wall time of counting one inference of a
    large MLP, by the block trace and by single-stepping: neither holds the trace."""
    import os
    import subprocess

    sizes = [width, width, width, 10]
    model = mlp_model.random_binary_mlp(sizes, SEED)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        mlp_model.write_binary_mlp(Path(d), model)
        elf = toolchain.build(Path(d), "cortex-m4")
        xin = Path(d) / "x.bin"
        np.random.default_rng(SEED).integers(0, 256, size=width // 8, dtype=np.uint8).tofile(xin)
        for mode in ("block", "single-step"):
            r = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(elf), mode.split("-")[0], str(xin)],
                               capture_output=True, text=True, check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
            n, secs, mb = r.stdout.split()
            rows.append(f"| {mode} | {int(n):,} | {float(secs):.1f} | {float(mb):.0f} |")
            print(rows[-1], flush=True)
    return [f"Counting one inference of a random {width}-{width}-{width}-10 all-binary MLP on Cortex-M4 "
            "(the log streams through a FIFO; peak RSS is the largest process, Python or QEMU):", "",
            "| method | instructions | seconds (wall, shared machine) | peak RSS MB |", "|---|---:|---:|---:|", *rows, ""]


def main() -> None:
    rows = []
    for width in WIDTHS:
        sizes = [width, width, width, 10]
        model = mlp_model.random_binary_mlp(sizes, SEED)
        x = np.random.default_rng(SEED).integers(0, 256, size=(2, width // 8), dtype=np.uint8)
        ref = mlp_model.binary_mlp_reference(model, x)
        macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        for core in CORES:
            with tempfile.TemporaryDirectory() as d:
                mlp_model.write_binary_mlp(Path(d), model)
                elf = toolchain.build(Path(d), core)
                assert np.array_equal(qemu.run(elf, core, x, 10), ref), f"{core} {width}: wrong logits"
                est = qemu.count_cycles(elf, core, x[0])
            cyc, upper, model_name = est.cycles_for(core)
            clock = cycles.DEFAULT_CLOCK_MHZ[core]
            top = sorted(est.classes.items(), key=lambda kv: -kv[1])[:4]
            rows.append((f"{width}-{width}-{width}-10", core, est.instructions, cyc, upper, cyc / est.instructions,
                         cyc / macs, clock, cyc / (clock * 1e3), model_name,
                         ", ".join(f"{k} {100 * v / est.instructions:.0f}%" for k, v in top),
                         f"{est.branches_taken}/{est.branches_not_taken}"))
            print(rows[-1], flush=True)
    import test_cycles  # the hand-derived loops
    import test_cycles_m55  # the M55 loops (Arm's published pipeline diagrams, a gather loop)

    loop_rows = []
    for name, setup, loop, extra, want, want_insns in test_cycles.LOOPS:
        with tempfile.TemporaryDirectory() as d:
            elf = test_cycles._build(Path(d), setup, loop, extra)
            est = qemu.count_cycles(elf, "cortex-m4", np.zeros(1, np.uint8))
        loop_rows.append((name, est.instructions, want, est.cycles_m4, est.cycles_m4_max, est.cycles_m7,
                          est.cycles_m0))
    m55_rows = []
    for name, setup, loop, want, want_max, _ in test_cycles_m55.M55_LOOPS:
        with tempfile.TemporaryDirectory() as d:
            elf = test_cycles._build(Path(d), test_cycles_m55._ENABLE_MVE + setup, loop, "", "cortex-m55")
            est = qemu.count_cycles(elf, "cortex-m55", np.zeros(1, np.uint8))
        m55_rows.append(f"| {name} | {est.instructions} | {want} | {est.cycles_m55} | {want_max} | "
                        f"{est.cycles_m55_max} |")
    lines = [
        "# Estimated cycles (issue 11)",
        "",
        "`python benchmarks/bench_cycles.py`. Instructions are QEMU's exact count of one `bnn_infer()` call; "
        "cycles are an **estimate** (`bnn2hw/mcu/cycles.py`): Cortex-M4 TRM (Arm 100166_0001_00) section 3.3.1 "
        "Table 3-1 at zero wait states with a 1-cycle pipeline refill per taken branch (the upper column: "
        "3 cycles), the Cortex-M0 TRM's Table 3-1 for the M0, a simple in-order dual-issue model for the "
        "Cortex-M7, for the Cortex-M55 an MVE beat model (Arm's Cortex-M55 scheduling model in LLVM, "
        "ARMScheduleM55.td: every MVE instruction 2 beats on one of four pipelines, overlapping by one cycle "
        "across pipelines; scalar code as on the M4; gathers charged as contiguous loads, the upper column one "
        "cycle per gathered element and P = 3), and the M4 table applied to M3 and M33 (the M3's long "
        "multiplies take 3-7 cycles). Not modelled: flash wait states and the flash accelerator/ART, "
        "caches and TCM placement, bus contention, IT folding, branch misprediction on the M7. Latency at each "
        "core's default `--clock-mhz` (a typical part's clock).",
        "",
        "Random all-binary MLPs (`firmware/tests/mlp_model.py`, seed 2024, `multi` popcount):",
        "",
        "| model | core | instructions | est. cycles | upper (P=3) | cycles/instr | cycles/binary MAC | clock MHz "
        "| est. latency ms | model | largest classes | branches taken/not |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]:,} | {r[3]:,} | {r[4]:,} | {r[5]:.2f} | {r[6]:.3f} | {r[7]:g} "
                     f"| {r[8]:.3f} | {r[9]} | {r[10]} | {r[11]} |")
    lines += [
        "",
        "Validation (`tests/test_cycles.py`): tiny loops whose Cortex-M4 cycles are derived by hand from "
        "Table 3-1 (the derivation is in the test), run in QEMU and estimated by the model:",
        "",
        "| loop | instructions | M4 cycles by hand (TRM) | M4 model | M4 model, P=3 | M0 model | M7 model |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *[f"| {n} | {i} | {w} | {c} | {u} | {m0} | {m7} |" for n, i, w, c, u, m7, m0 in loop_rows],
        "",
        "Cortex-M55 (`tests/test_cycles_m55.py`): the two pipeline diagrams in the header of ARMScheduleM55.td "
        "(5 and 6 cycles) and a byte-gather popcount loop derived by hand from the model's rules (the upper "
        "end charges the gather 16 cycles); the gather's real cost lies in that range (no published figure "
        "found), which makes the M55 cycles of the Helium popcount kernels a range, not a figure:",
        "",
        "| loop | instructions | cycles by hand | M55 model | upper by hand | M55 model upper |",
        "|---|---:|---:|---:|---:|---:|",
        *m55_rows,
        "",
    ]
    lines += counting_memory()
    out = ROOT / "benchmarks" / "results" / "cycles.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
