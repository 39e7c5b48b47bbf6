# SPDX-License-Identifier: MIT
"""Cortex-M55 Helium (MVE) binary kernels against the scalar Thumb-2 kernels on the same core
(issue 11: <= 0.10 instructions per binary MAC at widths >= 256, dense and conv).

* Dense: the all-binary W-W-W-10 MLPs of bench_mcu_kernels.py (same seed, same model.c) at
  every W in WIDTHS, built for cortex-m55 twice: with the Helium row kernels
  (bnn_dense_mve.c) and with ``-DBNN_NO_MVE`` (the Thumb-2 assembly rows of bnn_bits.c, as
  on Cortex-M4/M33).  The two columns give the crossover: the row length below which the
  scalar kernel would be cheaper (the kernel choice in bnn_bits.h, bnn__dbt2_pick).
* Conv: the 3x3 binary convs of bench_mcu_kernels.py (bnn_conv_bits: dense rows over gathered
  patches), the same two builds.

Every build first runs 3 random inputs in QEMU (mps3-an547) and its outputs must equal numpy's;
counts are QEMU's exact instruction counts of one bnn_infer() call.  Writes
benchmarks/results/mcu_helium.md.

    nice -n 10 python benchmarks/bench_mcu_helium.py [--widths 32 64 ...] [--no-conv]
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_mcu_kernels as bk  # (also puts the repository and firmware/tests on sys.path)

CORE = "cortex-m55"
WIDTHS = [32, *bk.WIDTHS]
BUILDS = {"Helium (MVE)": "", "scalar Thumb-2 (-DBNN_NO_MVE)": "-DBNN_NO_MVE"}
TARGET = 0.10
OUT = bk.ROOT / "benchmarks" / "results" / "mcu_helium.md"


def dense(widths: list[int]) -> dict:
    res = {}
    for w in widths:
        model = bk.mlp_model.random_binary_mlp([w, w, w, 10], bk.SEED)
        inputs = np.random.default_rng(bk.SEED).integers(0, 256, size=(3, (w + 7) // 8), dtype=np.uint8)
        ref = bk.mlp_model.binary_mlp_reference(model, inputs)
        for name, flags in BUILDS.items():
            with tempfile.TemporaryDirectory() as d:
                bk.mlp_model.write_binary_mlp(Path(d), model)
                res[(name, w)] = bk.count(Path(d), CORE, inputs, ref, 10, flags)
            print("dense", name, w, res[(name, w)], flush=True)
    return res


def conv(shapes: list[tuple]) -> dict:
    res = {}
    for i, (hw, cin, cout, s, pad) in enumerate(shapes):
        seed = bk.SEED + 17 * i  # the seeds of bench_mcu_kernels.conv_sweep
        for name, flags in BUILDS.items():
            with tempfile.TemporaryDirectory() as d:
                m = bk.write_conv(Path(d), hw, cin, cout, s, pad, False, seed)
                x, raw = bk.conv_inputs(hw, cin, False, seed)
                res[(name, i)] = bk.count(Path(d), CORE, x, bk.conv_expected(m, raw, s, pad), m["n_out"], flags)
            print("conv", name, shapes[i], res[(name, i)], flush=True)
    return res


def per(n, macs) -> str:
    return "—" if n is None else f"{n / macs:.3f}"


def write(widths, dres, cres, seconds) -> list[str]:
    gcc = subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True,
                         check=False).stdout.splitlines()[0]
    qv = subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True,
                         check=False).stdout.splitlines()[0]
    hel, sca = BUILDS
    lines = ["# Cortex-M55 Helium (MVE) binary kernels", "",
             (f"Date {datetime.date.today().isoformat()}; `{gcc}`; `{qv}`; run time {seconds / 60:.1f} min.  "
              "Command: `nice -n 10 python benchmarks/bench_mcu_helium.py`."), "",
             ("Instructions = exact QEMU count (mps3-an547) of one `bnn_infer()` call, `-O2`; every build first ran "
             "3 random inputs in QEMU and all its outputs equal numpy's.  Helium = `bnn_dense_mve.c` (byte-table "
             "gather popcounts; rows of <= 31 words 8 at a time in vector lanes, one lanes-only body per row class "
             "linked (`bnn__dbt_mve_l16` / `_l8`), longer rows 4 per input vector with DLSTP/LETP "
             "tail-predicated loops); scalar = the same firmware with `-DBNN_NO_MVE` (the Thumb-2 assembly rows "
             "of `bnn_bits.c`).  Instructions are not cycles: a byte gather (VLDRB.U8 Qd, [Rn, Qm]) accesses "
             "memory element by element on the Cortex-M55, so its cycle cost is several times that of a "
             "contiguous load (the M55 estimate of bnn2hw/mcu/cycles.py gives a range, see cycles.md)."), "",
             "## Dense: W-W-W-10 all-binary MLPs (the models of bench_mcu_kernels.py), instructions per binary MAC",
             "", f"| W | binary MACs | {hel} | {sca} | scalar / Helium | Helium instructions | scalar instructions |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for w in widths:
        macs = bk.dense_macs(w)
        h, s = dres.get((hel, w)), dres.get((sca, w))
        ratio = f"{s / h:.2f}x" if h and s else "—"
        lines.append(f"| {w} | {macs:,} | {per(h, macs)} | {per(s, macs)} | {ratio} | "
                     f"{h if h is not None else '—':,} | {s if s is not None else '—':,} |")
    big = [dres[(hel, w)] / bk.dense_macs(w) for w in widths if w >= 256 and dres.get((hel, w))]
    slower = [w for w in widths if dres.get((hel, w)) and dres.get((sca, w)) and dres[(hel, w)] > dres[(sca, w)]]
    lines += ["", f"* Target <= {TARGET} instructions per binary MAC at W >= 256: worst "
              f"{max(big):.3f}: {'met' if max(big) <= TARGET else 'NOT met'}." if big else "* no width >= 256 run.",
              "* Crossover: " + (f"the scalar kernel is cheaper at W = {slower} (rows of those widths should run "
                                 "it)." if slower else
                                 f"Helium is cheaper at every width measured (from {min(widths)} inputs = "
                                 f"{(min(widths) + 31) // 32} word rows), so bnn__dbt2_pick keeps Helium for every "
                                 "row on the M55.")]
    if cres:
        lines += ["", "## Conv: 3x3 binary convs (the shapes of bench_mcu_kernels.py), instructions per binary MAC",
                  "", ("Counts include all the per-call work of `bnn_conv_bits` (bnn_conv.c) and copying the packed "
                       "input in and the output words out.  Helium at cin >= 32: column images of row-dense taps "
                       "(conv_bits_mve: weight rows repacked, tap counts and padding-correction tables once per "
                       "call, no per-position gather); cin < 32 and the scalar build: patches gathered per position "
                       "and 32-channel chunk (dense taps where they save words).  Per-shape tables: "
                       "mcu_kernels_m55.md."), "",
                  f"| map | cin | cout | stride | pad | binary MACs | {hel} | {sca} | scalar / Helium |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for i, (hw, cin, cout, s, pad) in enumerate(bk.CONV_SHAPES):
            if (hel, i) not in cres:
                continue
            macs = bk.conv_macs(hw, cin, cout, s, pad)
            h, sc = cres[(hel, i)], cres[(sca, i)]
            lines.append(f"| {hw}x{hw} | {cin} | {cout} | {s} | {pad} | {macs:,} | {per(h, macs)} ({h:,}) | "
                         f"{per(sc, macs)} ({sc:,}) | {sc / h:.2f}x |")
        wide = [cres[(hel, i)] / bk.conv_macs(*sh) for i, sh in enumerate(bk.CONV_SHAPES)
                if (hel, i) in cres and 9 * sh[1] >= 256]
        if wide:
            lines += ["", (f"* Target <= {TARGET} at patch widths 9 cin >= 256: worst {max(wide):.3f}: "
                           f"{'met' if max(wide) <= TARGET else 'NOT met'} "
                           f"({sum(v <= TARGET for v in wide)} of {len(wide)} shapes).")]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", nargs="+", type=int, default=WIDTHS)
    ap.add_argument("--no-conv", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    t0 = time.time()
    dres = dense(args.widths)
    cres = {} if args.no_conv else conv(bk.CONV_SHAPES)
    lines = write(args.widths, dres, cres, time.time() - t0)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
