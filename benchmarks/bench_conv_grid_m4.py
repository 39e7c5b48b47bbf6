# SPDX-License-Identifier: MIT
"""The issue-11 conv grid on the Cortex-M4: 3x3 binary convs, cin = cout in {16, 24, 32, 64, 128, 256},
maps 32/16/8/4, stride 1/2, pad 0/1 (shapes over 12M binary MACs left out), on the row kernel (`rows`),
the prepared row kernel (`prep`, bnn_conv_bits_prep), its few-position entry (`few`, bnn_conv_bits_few:
shapes with more than 16 positions or 32 channels run bnn_conv_bits_prep inside it), the column-sliced
kernel (`vc`) and the position-sliced kernel (`ps`, bnn_conv_ps_bits).  Exact QEMU instruction counts,
every output checked against numpy first (bench_mcu_kernels.conv_vc_sweep).  Each row also names the
kernel emit-c generates for the shape (`generated`: ps where conv_ps.use_ps, else vc where
conv_vcols.use_vc, else few where conv_m4_prep.use_few, else prep where conv_m4_prep applies, else
rows) and its count when that kernel was run.

    python benchmarks/bench_conv_grid_m4.py rows,prep,few,vc,ps OUT.json ["c <= 32"]

The optional third argument filters shapes (names hw, c, s, p).  Results: mcu_conv_grid_m4.md.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_mcu_kernels as b


def grid_shapes() -> list[tuple]:
    shapes = []
    for c in [16, 24, 32, 64, 128, 256]:
        for hw in [32, 16, 8, 4]:
            for s in [1, 2]:
                for p in [0, 1]:
                    sh = (hw, c, c, s, p)
                    if b.conv_macs(*sh) <= 12_000_000:
                        shapes.append(sh)
    return shapes


def generated_kernel(hw: int, c: int, s: int, p: int) -> str:
    """The kernel emit-c picks for the shape on Cortex-M3/M4/M7/M33 (bench_mcu_kernels.generated_kernel)."""
    return b.generated_kernel(hw, c, c, s, p)


def main() -> None:
    kerns = sys.argv[1].split(",")
    out_path = sys.argv[2]
    shapes = grid_shapes()
    if len(sys.argv) > 3:
        shapes = [sh for sh in shapes if eval(sys.argv[3], {"hw": sh[0], "c": sh[1], "s": sh[3], "p": sh[4]})]
    res = b.conv_vc_sweep(["cortex-m4"], shapes, kerns)
    out = []
    for i, sh in enumerate(shapes):
        m = b.conv_macs(*sh)
        r = {k: res.get((k, "cortex-m4", i)) for k in kerns}
        gen = generated_kernel(sh[0], sh[1], sh[3], sh[4])
        out.append(dict(shape=sh, macs=m, generated=gen, generated_count=r.get(gen), **r))
        print(sh, m, " ".join(f"{k}={r[k] and round(r[k] / m, 3)}" for k in kerns), f"generated={gen}", flush=True)
    Path(out_path).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
