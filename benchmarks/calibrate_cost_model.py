# SPDX-License-Identifier: MIT
"""Fit the Cortex-M4 instruction model of ``bnn2hw.mcu.cost_model`` to QEMU's exact counts.

Random MLPs and CNNs (seeded, untrained weights: the instruction count does not depend on the
values, only on the shapes) are folded, compiled for Cortex-M4 and counted in QEMU
(``bnn2hw.mcu.qemu.count_instructions``); the per-model work features are summed and the
coefficients fitted by non-negative least squares. Writes ``benchmarks/results/cost_model.md``
with the fitted coefficients, which are then copied into ``COEFFS_M4``; it also reports the
estimate's error with the coefficients currently in ``cost_model.py``.

    python benchmarks/calibrate_cost_model.py [--models 24] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnn2hw.export.fold import fold_model  # noqa: E402
from bnn2hw.ir.summary import layer_costs  # noqa: E402
from bnn2hw.mcu import cost_model, qemu, toolchain  # noqa: E402
from bnn2hw.mcu.cli import to_c_inputs, write_firmware_dir  # noqa: E402
from bnn2hw.nn.layers import set_stage  # noqa: E402
from bnn2hw.nn.models import build_model, default_spec  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "cost_model.md"


def random_spec(rng: np.random.Generator, i: int) -> dict:
    if i < 2:  # the default digits MLP and CNN
        return default_spec(("mlp", "cnn")[i], (1, 8, 8), 10)
    classes = int(rng.integers(2, 11))
    if rng.random() < 0.5:
        spec = default_spec("mlp", (1, 8, 8) if rng.random() < 0.5 else (int(rng.integers(16, 200)),), classes)
        spec["hidden"] = [int(rng.integers(225, 257)) if rng.random() < 0.3 else int(rng.integers(16, 600))
                          for _ in range(int(rng.integers(1, 4)))]
        spec["first"] = str(rng.choice(["binary", "int8"]))
        spec["last"] = str(rng.choice(["binary", "int8"]))
    else:
        size = int(rng.integers(8, 17))
        spec = default_spec("cnn", (int(rng.integers(1, 4)), size, size), classes)
        spec["convs"] = [[int(rng.integers(8, 65)), 3, int(rng.integers(0, 2)), bool(rng.random() < 0.5)],
                         [int(rng.integers(8, 129)), 3, int(rng.integers(0, 2)), True]]
        spec["hidden"] = [int(rng.integers(16, 200))]
        spec["last"] = str(rng.choice(["binary", "int8"]))
    return spec


def measure(spec: dict, seed: int, work: Path) -> tuple[dict, int, int]:
    torch.manual_seed(seed)
    model = build_model(spec)
    set_stage(model, 2)
    model.eval()
    graph = fold_model(model, spec)
    feats = dict.fromkeys(cost_model.COEFFS_M4, 0.0)
    shape = tuple(graph.input_shape)
    for row, layer in zip(layer_costs(graph), graph.layers):
        for k, v in cost_model.work_features(layer, shape, row.out_shape).items():
            feats[k] += v
        shape = row.out_shape
    estimate = sum(r.instructions for r in layer_costs(graph))
    out = work / f"fw{seed}"
    write_firmware_dir(graph, out, "cortex-m4")
    elf = toolchain.build(out, "cortex-m4")
    x = np.random.default_rng(seed).integers(0, 256, size=(1, *spec["in_shape"])).astype(np.uint8)
    count = qemu.count_instructions(elf, "cortex-m4", to_c_inputs(graph, x)[0])
    return feats, count, estimate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from scipy.optimize import nnls

    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.models):
            spec = random_spec(rng, i)
            feats, count, est = measure(spec, args.seed * 1000 + i, Path(tmp))
            rows.append((spec, feats, count, est))
            print(f"{i}: {spec['arch']} {count} instructions, estimate {est}", flush=True)
    keys = list(cost_model.COEFFS_M4)
    a = np.array([[r[1][k] for k in keys] for r in rows], dtype=float)
    b = np.array([r[2] for r in rows], dtype=float)
    # relative least squares: every model counts equally, whatever its size
    coef, _ = nnls(a / b[:, None], np.ones_like(b))
    fit = a @ coef
    rel_fit = np.abs(fit - b) / b
    rel_cur = np.abs(np.array([r[3] for r in rows]) - b) / b
    lines = ["# Instruction cost model (Cortex-M4)", "",
             f"Command: `python benchmarks/calibrate_cost_model.py --models {args.models} --seed {args.seed}` "
             f"({time.time() - t0:.0f} s). Random untrained models (the count depends on shapes only), "
             "compiled with the default `multi` popcount, one `bnn_infer()` counted exactly in QEMU (mps2-an386).", "",
             "Fitted coefficients (instructions per unit of work, non-negative least squares on relative error):", "",
             "| feature | fitted | in cost_model.py |", "|---|---:|---:|"]
    lines += [f"| {k} | {c:.3f} | {cost_model.COEFFS_M4[k]} |" for k, c in zip(keys, coef)]
    lines += ["", f"Relative error of the fitted model: median {np.median(rel_fit):.1%}, max {rel_fit.max():.1%}. "
              f"With the coefficients in cost_model.py: median {np.median(rel_cur):.1%}, max {rel_cur.max():.1%}.", "",
              "| # | model | QEMU instructions | estimate (cost_model.py) | error |", "|---|---|---:|---:|---:|"]
    for i, (spec, _, count, est) in enumerate(rows):
        desc = (f"mlp {spec['in_shape']}->{spec['hidden']}->{spec['num_classes']} first {spec['first']} last {spec['last']}"
                if spec["arch"] == "mlp" else
                f"cnn {spec['in_shape']} convs {spec['convs']} hidden {spec['hidden']} last {spec['last']}")
        lines.append(f"| {i} | {desc} | {count:,} | {est:,} | {abs(est - count) / count:.1%} |")
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:14 + len(keys)]))


if __name__ == "__main__":
    main()
