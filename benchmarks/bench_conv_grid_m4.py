# SPDX-License-Identifier: MIT
"""The issue-11 conv grid on the Cortex-M4: 3x3 binary convs, cin = cout in {16, 24, 32, 64, 128, 256},
maps 32/16/8/4, stride 1/2, pad 0/1 (shapes over 12M binary MACs left out), on the row kernel (`rows`),
the prepared row kernel (`prep`, bnn_conv_bits_prep), its few-position entry (`few`, bnn_conv_bits_few:
shapes with more than 32 channels run bnn_conv_bits_prep inside it), the generation-time tile (`tile`,
bnn_conv_bits_tile with conv_tile.py's patch packer: shapes of at most 16 positions), the column-sliced
kernel (`vc`) and the position-sliced kernel (`ps`, bnn_conv_ps_bits).  Exact QEMU instruction counts
of the kernel call (bench_mcu_kernels.conv_count: one bnn_infer() less the same bnn_infer() with the call
replaced by an empty function's, the harness's input and output copies), every output checked against
numpy first (bench_mcu_kernels.conv_vc_sweep).  Each row
also names the kernel emit-c generates for the shape (`generated`, bench_mcu_kernels.generated_kernel)
and its count when that kernel was run.

    python benchmarks/bench_conv_grid_m4.py rows,prep,few,tile,vc,ps OUT.json ["c <= 32"]
    python benchmarks/bench_conv_grid_m4.py --table OUT.json [MORE.json ...] > TABLE.md

The optional third argument filters shapes (names hw, c, s, p).  --table prints the markdown rows of the
JSON files (a later file's kernel counts replace an earlier one's).  Results: mcu_conv_grid_m4.md.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_mcu_kernels as b

KERNELS = ["rows", "prep", "few", "tile", "vc", "ps"]
TARGET = 0.30  # issue 11: instructions per binary MAC on the Cortex-M4


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


def table(rows: list[dict]) -> str:
    """Markdown rows (instructions per binary MAC) of the grid results, grid order, and a summary line."""
    head = ("| map | c | s | p | MACs | " + " | ".join(KERNELS) + " | generated (kernel) | harness |\n"
            + "|" + "---:|" * (5 + len(KERNELS) + 2))
    by_shape: dict[tuple, dict] = {}
    for r in rows:  # a later run's kernels replace an earlier one's
        by_shape.setdefault(tuple(r["shape"]), {}).update({k: v for k, v in r.items() if v is not None})
    for r in by_shape.values():
        r["generated_count"] = r.get(r["generated"])
    lines, over = [head], []
    for sh in grid_shapes():
        r = by_shape.get(sh)
        if r is None:
            continue
        m = r["macs"]
        cells = ["–" if r.get(k) is None else f"{r[k] / m:.3f}" for k in KERNELS]
        gen = r["generated"]
        g = "–" if r.get("generated_count") is None else f"{r['generated_count'] / m:.3f} ({gen})"
        if r.get("generated_count") is not None and r["generated_count"] / m > TARGET:
            over.append(f"{sh[0]}x{sh[0]}x{sh[1]} s{sh[3]} p{sh[4]} {r['generated_count'] / m:.3f}")
        h = r.get(f"{gen} harness")
        lines.append(f"| {sh[0]} | {sh[1]} | {sh[3]} | {sh[4]} | {m:,} | " + " | ".join(cells)
                     + f" | {g} | {'–' if h is None else h} |")
    lines += ["", f"Above {TARGET:.2f} with the generated kernel: {len(over)} of {len(lines) - 1} shapes"
              + (": " + ", ".join(over) if over else ".")]
    return "\n".join(lines) + "\n"


def main() -> None:
    if sys.argv[1] == "--table":
        rows = [r for f in sys.argv[2:] for r in json.loads(Path(f).read_text())]
        print(table(rows), end="")
        return
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
        r.update({f"{k} harness": res.get((f"{k} harness", "cortex-m4", i)) for k in kerns})
        gen = generated_kernel(sh[0], sh[1], sh[3], sh[4])
        out.append(dict(shape=sh, macs=m, generated=gen, generated_count=r.get(gen), **r))
        print(sh, m, " ".join(f"{k}={r[k] and round(r[k] / m, 3)}" for k in kerns), f"generated={gen}", flush=True)
    Path(out_path).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
