# SPDX-License-Identifier: MIT
"""Cortex-M55 (Helium) 3x3 binary convs: the M55 column of mcu_kernels.md's conv table, plus shapes
not in that table (issue 11: <= 0.10 instructions per binary MAC for every conv with cin >= 32,
i.e. patches of 9 cin >= 288 inputs).

* Conv: the shapes of bench_mcu_kernels.CONV_SHAPES (same seeds, same model.c) and EXTRA_SHAPES
  (not tuned for: 48, 96 and 40 channels, odd map sizes, stride 2 without padding), built for
  cortex-m55 with the Helium rows (bnn_dense_mve.c) and with ``-DBNN_NO_MVE`` (the Thumb-2 rows).
* Dense: the W-W-W-10 all-binary MLPs of bench_mcu_kernels.py on the M55 (Helium only), since the
  same row kernels run them (rows of nw <= 31 words take the rows-in-lanes path).

Every build first runs 3 random inputs in QEMU (mps3-an547) and its outputs must equal numpy's;
counts are QEMU's exact instruction counts of one bnn_infer() call.  Writes
benchmarks/results/mcu_kernels_m55.md.

    nice -n 10 python benchmarks/bench_mcu_conv_m55.py [--no-dense] [--no-scalar]
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
# (map size, cin, cout, stride, pad), not in bench_mcu_kernels.CONV_SHAPES
EXTRA_SHAPES = [(12, 48, 48, 1, 1), (8, 96, 96, 2, 0), (7, 40, 40, 1, 1), (9, 33, 33, 2, 1)]
BUILDS = {"Helium": "", "Helium, prepared weights": "", "scalar (-DBNN_NO_MVE)": "-DBNN_NO_MVE"}
PREP = "Helium, prepared weights"  # model.c as bnn2hw emit-c writes it for the M55 (bnn_conv_bits_mve_prep)
TARGET = 0.10
OUT = bk.ROOT / "benchmarks" / "results" / "mcu_kernels_m55.md"
# The Helium column of results/mcu_kernels_m55.md at main 884bf65 (patches gathered per position and
# 32-channel chunk, padded taps at cin > 32; same shapes and seeds): instructions per inference.
BEFORE = {(32, 16, 16, 1, 1): 288_811, (32, 16, 16, 2, 0): 58_021, (16, 32, 32, 1, 1): 186_792,
          (16, 32, 32, 2, 1): 50_540, (16, 64, 64, 1, 0): 400_404, (8, 64, 64, 1, 1): 172_432,
          (8, 128, 128, 2, 1): 152_484, (8, 128, 128, 1, 0): 260_064, (4, 256, 256, 1, 1): 576_392,
          (4, 256, 256, 1, 0): 107_940, (12, 48, 48, 1, 1): 273_408, (8, 96, 96, 2, 0): 40_772,
          (7, 40, 40, 1, 1): 98_901, (9, 33, 33, 2, 1): 54_858}
# The M55 256-256-256-10 MLP library flash at main 884bf65 (bench_mcu_models.py, multi): 20,744 B.
FLASH_BEFORE = 20_744
FLASH_TARGET = 1.05


def write_conv_prep(out: Path, hw: int, cin: int, cout: int, stride: int, pad: int, seed: int) -> dict:
    """bench_mcu_kernels.write_conv's conv (same weights, thresholds, inputs) through
    ``bnn_conv_bits_mve_prep``: the row-dense weights and M tables of bnn2hw/mcu/conv_mve_prep.py,
    as the code generator emits them under ``#if BNN_MVE`` (shapes it does not fit keep bnn_conv_bits)."""
    from bnn2hw.mcu import conv_mve_prep as mp

    m = bk.write_conv(out, hw, cin, cout, stride, pad, False, seed)
    if not mp.fits(hw, cin, 3, 3, stride, m["oh"]):
        m["prep"] = None
        return m
    tab, xcls, ycls, cpad = mp.m_tables(m["w"], m["thr"], (hw, hw), (m["oh"], m["oh"]), stride, pad, False)
    rows = cin % 32 != 0  # else the row-dense layout is the plain one (q.w = w, as emit-c does)
    data = ((bk._c_words("wr", mp.row_dense_weights(m["w"])) if rows else "") + bk._c_words("mt", tab, "int32_t")
            + bk._c_words("xc", xcls, "uint8_t") + bk._c_words("yc", ycls, "uint8_t")
            + f"static const bnn_conv_mve_prep_t q = {{0u, {int(xcls.max()) + 1}u, {cpad}u, {'wr' if rows else 'w'}, "
              "mt, xc, yc, w, thr};\n")
    text = (out / "model.c").read_text()
    call = "    bnn_conv_bits(&p, in_words, w, thr, out_words);\n"
    assert call in text
    text = text.replace(call, "    bnn_conv_bits_mve_prep(&p, &q, in_words, out_words);\n")
    text = text.replace("int bnn_infer(", data + "int bnn_infer(", 1)
    (out / "model.c").write_text(text)
    m["prep"] = {"table_bytes": 4 * tab.size + xcls.size + ycls.size, "row_words": mp.row_dense_weights(m["w"]).size
                 if rows else 0}
    return m


def conv_counts(shapes: list[tuple], builds: dict[str, str]) -> dict:
    res = {}
    for hw, cin, cout, s, pad in shapes:
        sh = (hw, cin, cout, s, pad)
        i = bk.CONV_SHAPES.index(sh) if sh in bk.CONV_SHAPES else 100 + EXTRA_SHAPES.index(sh)
        seed = bk.SEED + 17 * i  # the seeds of bench_mcu_kernels.conv_sweep for its shapes
        for name, flags in builds.items():
            with tempfile.TemporaryDirectory() as d:
                if name == PREP:
                    m = write_conv_prep(Path(d), hw, cin, cout, s, pad, seed)
                else:
                    m = bk.write_conv(Path(d), hw, cin, cout, s, pad, False, seed)
                x, raw = bk.conv_inputs(hw, cin, False, seed)
                res[(name, sh)] = bk.count(Path(d), CORE, x, bk.conv_expected(m, raw, s, pad), m["n_out"], flags)
            print("conv", name, sh, res[(name, sh)], flush=True)
    return res


def dense_counts(widths: list[int]) -> dict:
    res = {}
    for w in widths:
        model = bk.mlp_model.random_binary_mlp([w, w, w, 10], bk.SEED)
        inputs = np.random.default_rng(bk.SEED).integers(0, 256, size=(3, (w + 7) // 8), dtype=np.uint8)
        ref = bk.mlp_model.binary_mlp_reference(model, inputs)
        with tempfile.TemporaryDirectory() as d:
            bk.mlp_model.write_binary_mlp(Path(d), model)
            res[w] = bk.count(Path(d), CORE, inputs, ref, 10)
        print("dense", w, res[w], flush=True)
    return res


def profile(sh: tuple, flags: str = "", prep: bool = False) -> list[tuple[str, int]]:
    """Executed instructions of one bnn_infer() call of conv shape ``sh`` per function of the ELF
    (QEMU block trace; a block is charged to the function its first instruction is in, so static
    helpers GCC inlined count in their caller), largest first."""
    import bisect

    from bnn2hw.mcu import qemu, toolchain
    from bnn2hw.mcu.cycles import disassemble

    hw, cin, cout, s, pad = sh
    with tempfile.TemporaryDirectory() as d:
        m = (write_conv_prep if prep else lambda *a: bk.write_conv(*a[:5], False, a[5]))(
            Path(d), hw, cin, cout, s, pad, bk.SEED)
        x, _ = bk.conv_inputs(hw, cin, False, bk.SEED)
        elf = toolchain.build(Path(d), CORE, extra_cflags=flags)
        addr = qemu._symbol_addresses(elf, ("bnn_marker_begin", "bnn_marker_end"))
        counter = qemu.BlockTraceCounter(addr["bnn_marker_begin"], addr["bnn_marker_end"], disassemble(elf, CORE))
        qemu._run_traced(elf, CORE, x[0], counter, "in_asm,exec,nochain", [], 900)
        nm = subprocess.run(["arm-none-eabi-nm", "-n", str(elf)], capture_output=True, text=True, check=True).stdout
    syms = sorted((int(a, 16) & ~1, n) for a, t, n in (ln.split() for ln in nm.splitlines() if len(ln.split()) == 3)
                  if t in "tTwW")
    starts = [a for a, _ in syms]
    per: dict[str, int] = {}
    for (bid, _taken), n in counter.windows[1].items():
        b = counter.blocks[bid]
        name = syms[bisect.bisect_right(starts, b.insns[0].pc) - 1][1]
        per[name] = per.get(name, 0) + n * len(b.insns)
    del m
    return sorted(per.items(), key=lambda kv: -kv[1])


def mlp_flash() -> dict:
    """Library flash (model.c + linked kernels, the harness subtracted) of bench_mcu_models.py's random
    256-256-256-10 MLP on the M55, its flash lower bound and one inference's instructions (logits
    checked against the IR first)."""
    import bench_mcu_models as bm
    from bnn2hw.ir import execute
    from bnn2hw.mcu.cli import to_c_inputs, write_firmware_dir

    g = bm.random_mlp_graph()
    x = np.random.default_rng(bm.RANDOM_SEED).choice(np.array([-1, 1], dtype=np.int8), size=(3, 256))
    with tempfile.TemporaryDirectory() as d:
        em = write_firmware_dir(g, Path(d) / "fw", CORE)
        r = bm.measure(Path(d) / "fw", g, CORE, None, to_c_inputs(g, x), execute.run(g, x).int_logits)
    return {"lib": r["lib_flash"], "lb": em.flash_lower_bound_bytes, "instructions": r["instructions"]}


def cell(n, macs) -> str:
    return "—" if n is None else f"{n / macs:.3f} ({n:,})"


def report(conv: dict, dense: dict, flash: dict | None, builds: list[str], seconds: float, argv: str) -> list[str]:
    gcc = subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True,
                         check=False).stdout.splitlines()[0]
    qv = subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True,
                         check=False).stdout.splitlines()[0]
    hel = "Helium"
    lines = ["# Cortex-M55 (Helium) binary convs: instructions per binary MAC", "",
             (f"Date {datetime.date.today().isoformat()}; `{gcc}`; `{qv}`; run time {seconds / 60:.1f} min.  "
              f"Command: `nice -n 10 python benchmarks/bench_mcu_conv_m55.py{argv}`."), "",
             ("Instructions = exact QEMU count (mps3-an547) of one `bnn_infer()` call, `-O2`, harness and model.c "
              "of bench_mcu_kernels.py (same shapes and seeds as its conv table); every build first ran 3 random "
              "inputs in QEMU and all its outputs equal numpy's.  Counts include everything `bnn_conv_bits` does "
              "per call (weight repacking, tap counts, threshold tables, patches) and copying the input in and the "
              "output words out.  Helium, cin >= 32 (`bnn_conv.c` conv_bits_mve): row-dense taps (the kw taps of a "
              "kernel row back to back, ceil(kw cin / 32) words per row: 12 instead of 18 words per 3x3 patch at "
              "cin 33 and 40), one column image per output column (each input row segment packed once, the patch "
              "of a position is kh contiguous segments: no gather), weight rows repacked and the padding-correction "
              "tables (4 channels per vector) built once per call; cin < 32: the patch path (dense taps).  Row "
              "kernels: `bnn_dense_mve.c`, 8 rows in vector lanes per patch word (10 instructions per 256 binary "
              "MACs, no tail passes).  `before` = main 884bf65.  Instructions are not cycles (see cycles.md for "
              "the M55 estimate)."), "",
             (f"`{PREP}` = the call bnn2hw emit-c generates for the M55 (`bnn_conv_bits_mve_prep`, under "
              "`#if BNN_MVE`): the row-dense weight rows and the popcount bounds M of every window class "
              "(bnn2hw/mcu/conv_mve_prep.py) come from flash, per call only the column images and the row "
              "kernels run; shapes whose column image does not fit (conv_mve_prep.fits) keep `bnn_conv_bits`.  "
              "The target below is judged on this column (the generated code's path)."), "",
             "| map | cin | cout | stride | pad | binary MACs | before | " + " | ".join(builds) + " |",
             "|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(builds)]
    shapes = [sh for sh in [*bk.CONV_SHAPES, *EXTRA_SHAPES] if (hel, sh) in conv]
    for sh in shapes:
        macs = bk.conv_macs(*sh)
        hw, cin, cout, s, pad = sh
        extra = "" if sh in bk.CONV_SHAPES else " (extra)"
        lines.append(f"| {hw}x{hw}{extra} | {cin} | {cout} | {s} | {pad} | {macs:,} | {cell(BEFORE.get(sh), macs)} | "
                     + " | ".join(cell(conv.get((b, sh)), macs) for b in builds) + " |")
    gen = PREP if any(b == PREP for b, _ in conv) else hel  # the path generated code takes
    wide = [(conv[(gen, sh)] / bk.conv_macs(*sh), sh) for sh in shapes if sh[1] >= 32]
    narrow = [(conv[(hel, sh)] / bk.conv_macs(*sh), sh) for sh in shapes if sh[1] < 32]
    if wide:
        worst, wsh = max(wide)
        bad = [sh for v, sh in wide if v > TARGET]
        lines += ["", (f"* Target (issue 11) <= {TARGET} per binary MAC for every conv with cin >= 32 (patches of "
                       f">= 288 inputs), {gen}: worst {worst:.3f} at {wsh}: "
                       + ("met" if not bad else f"NOT met at {bad}") + f" ({len(wide) - len(bad)} of {len(wide)} "
                       "shapes).")]
    padded = [(sh, conv[(gen, sh)] / (bk.conv_macs(*sh) * 32 * ((sh[1] + 31) // 32) / sh[1])) for sh in shapes
              if sh[1] % 32 and sh[1] > 32]
    if padded:
        lines.append("* cin > 32 and not a multiple of 32: per binary MAC of the padded layout (9 x 32 ceil(cin / "
                     "32) per output, the main 884bf65 layout): " + ", ".join(f"{v:.3f} at {sh}" for sh, v in padded)
                     + ".  Small maps pay the per-call work (`Helium` column: weight repacking, tap counts, 9 "
                     "correction tables) over few positions: see `--profile` (`--profile ... --prep`: the prepared "
                     "entry).")
    if gen == PREP:
        from bnn2hw.mcu import conv_mve_prep as mp

        extra = []
        for sh in shapes:
            hw, cin, cout, s, pad = sh
            oh = (hw + 2 * pad - 3) // s + 1
            if not mp.fits(hw, cin, 3, 3, s, oh):
                continue
            w = np.ones((cout, 3, 3, cin), dtype=np.int8)
            tab, xc, yc, _ = mp.m_tables(w, np.zeros(cout), (hw, hw), (oh, oh), s, pad, False)
            rows = 4 * mp.row_dense_weights(w).size if cin % 32 else 0  # cin % 32 == 0: q.w = the plain weights
            extra.append(f"{sh} {rows + 4 * tab.size + xc.size + yc.size + 36:,} B ({rows:,} B rows, "
                         f"{tab.shape[0]} M tables {4 * tab.size:,} B)")
        lines.append("* Extra flash of the prepared entry (M55 builds only; the plain weights stay for the fallback), "
                     "row-dense rows (cin % 32 != 0 only) + M tables + class bytes + the 36 B struct: " + "; ".join(extra) + ".")
    if narrow:
        lines.append(f"* 16-channel convs (144-input patches, outside the target): "
                     + ", ".join(f"{v:.3f} at {sh}" for v, sh in narrow) + ".")
    if flash:
        ratio, before = flash["lib"] / flash["lb"], FLASH_BEFORE / flash["lb"]
        lines += ["", "## Flash: the 256-256-256-10 MLP on the M55 (bench_mcu_models.py's random model)", "",
                  (f"Library flash (model.c + the kernels it links, `--gc-sections`, the harness subtracted): "
                   f"{flash['lib']:,} B against the lower bound {flash['lb']:,} B (weight bits / 8 + 4 B per "
                   f"threshold) = {ratio:.4f}x (target <= {FLASH_TARGET}: {'met' if ratio <= FLASH_TARGET else 'NOT met'}"
                   f"; main 884bf65: {FLASH_BEFORE:,} B = {before:.3f}x), {flash['instructions']:,} instructions per "
                   "inference.  A dense layer's row length is a constant in generated code, so `bnn__dbt2_pick` "
                   "(bnn_bits.h) links one lanes-only body (`bnn__dbt_mve_l16`: rows of <= 31 words, bits and "
                   "popcount mode in one body, the rows left over one by one) instead of the general kernels (4-row "
                   "core, both folds, both modes).")]
    if dense:
        lines += ["", "## Dense on the M55: W-W-W-10 all-binary MLPs (bench_mcu_kernels.py models), Helium", "",
                  "| W | row words | binary MACs | instructions per binary MAC (instructions) |", "|---:|---:|---:|---:|"]
        for w, n in dense.items():
            lines.append(f"| {w} | {(w + 31) // 32} | {bk.dense_macs(w):,} | {cell(n, bk.dense_macs(w))} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-dense", action="store_true", help="convs only (no dense table, no flash)")
    ap.add_argument("--no-scalar", action="store_true", help="Helium builds only (no -DBNN_NO_MVE column)")
    ap.add_argument("--widths", nargs="+", type=int, default=bk.WIDTHS)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--profile", nargs=5, type=int, metavar=("MAP", "CIN", "COUT", "STRIDE", "PAD"),
                    help="print the per-function instruction counts of one conv shape (Helium build) and exit")
    ap.add_argument("--prep", action="store_true", help="with --profile: the prepared-weights entry")
    args = ap.parse_args()
    if args.profile:
        sh = tuple(args.profile)
        rows = profile(sh, prep=args.prep)
        total = sum(n for _, n in rows)
        print(f"{sh}: {total:,} instructions, {total / bk.conv_macs(*sh):.3f} per binary MAC")
        for name, n in rows:
            print(f"  {n:>10,}  {100 * n / total:5.1f}%  {name}")
        return
    builds = {k: v for k, v in BUILDS.items() if not (args.no_scalar and v)}
    t0 = time.time()
    conv = conv_counts([*bk.CONV_SHAPES, *EXTRA_SHAPES], builds)
    dense = {} if args.no_dense else dense_counts(args.widths)
    flash = None if args.no_dense else mlp_flash()
    argv = "".join(f" {a}" for a in sys.argv[1:] if a.startswith("--no"))
    lines = report(conv, dense, flash, list(builds), time.time() - t0, argv)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
