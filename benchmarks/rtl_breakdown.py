# SPDX-License-Identifier: MIT
"""Where the LUTs of a generated RTL design go: yosys ``synth_xilinx -family xc7 -noiopad``
WITHOUT ``-flatten`` (every generated module synthesized once, as its own hierarchy level), then
the cell counts of every module (LUT, LUTRAM/SRL, FF, BRAM18, DSP) and their sums per module kind
(MVAU per layer, sliding window, add, global pool, stream threshold, fork, skip FIFO, frame pack).
The hierarchical total differs a little from the flattened synthesis of bench_rtl.py (no
optimization across module boundaries). Stored as ``breakdown`` in the model's row of
benchmarks/results/rtl.json (run bench_rtl.py first: it rewrites the row), and rtl.md is rewritten.

    python benchmarks/rtl_breakdown.py [--only resnet8]
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_rtl  # noqa: E402

from bnn2hw.fpga.rtl import synth, tools  # noqa: E402
from bnn2hw.fpga.rtl.emit import PREFIX  # noqa: E402

KINDS = [("skip FIFO", r"_fifo\d+_w\d+(_k\d+)?$"), ("fork", r"_fork\d+s?_w\d+$"), ("sliding window", r"_swg$"),
         ("add", r"_add$"), ("stream threshold", r"_thr$"), ("global / window pool", r"_avgpool$"),
         ("frame pack", r"_pack$"), ("gather", r"_gather$"), ("input stream", r"_instream$"),
         ("max-pool", r"_pool$"), ("top (wiring)", rf"^{PREFIX}_top$")]


def kind(module: str) -> str:
    for k, rx in KINDS:
        if re.search(rx, module):
            return k
    return "MVAU (+ fused requant/threshold)"


def module_stats(log: str) -> dict[str, dict[str, int]]:
    """Per module: the cell groups of bnn2hw.fpga.rtl.synth.XILINX_GROUPS, from the last ``stat``."""
    text = log[log.rfind("Printing statistics"):]
    out = {}
    for m in re.finditer(r"=== (\S+) ===(.*?)(?====|design hierarchy|\Z)", text, re.S):
        cells = {c.group(1): int(c.group(2)) for c in re.finditer(r"^\s+(\S+)\s+(\d+)\s*$", m.group(2), re.M)}
        g = {k: sum(n for c, n in cells.items() if re.match(rx, c)) for k, rx in synth.XILINX_GROUPS.items()}
        out[m.group(1)] = {"LUT": g["LUT"], "LUTRAM_SRL": g["LUTRAM"], "FF": g["FF"],
                           "BRAM18": g["BRAM18"] + 2 * g["BRAM36"], "DSP": g["DSP"]}
    return out


def breakdown(name: str) -> dict:
    _, _, _, _, _, files = bench_rtl.design(name, None, {})
    yosys = tools.require("yosys", "synthesis for Xilinx parts")
    with tempfile.TemporaryDirectory(prefix="bnn2hw_brk_") as d:
        work = Path(d)
        for f, t in files.items():
            (work / f).write_text(t)
        t0 = time.time()
        tools.run([yosys, "-q", "-l", "yosys.log", "-p",
                   f"read_verilog -sv {' '.join(sorted(files))}; synth_xilinx -family xc7 -top {PREFIX}_top -noiopad; stat"],
                  work, work / "yosys.stdout", "yosys synth_xilinx (hierarchical)")
        mods = module_stats((work / "yosys.log").read_text())
        secs = time.time() - t0
    return {"command": f"python benchmarks/rtl_breakdown.py --only {name}", "date": str(datetime.date.today()),
            "yosys": f"synth_xilinx -family xc7 -noiopad (no -flatten), {secs:.0f} s"} | by_kind(mods)


def by_kind(mods: dict[str, dict]) -> dict:
    """Per-module counts (``kind`` keys ignored) -> modules with their kind, kinds and total."""
    mods = {m: {x: n for x, n in g.items() if x != "kind"} for m, g in mods.items()}
    kinds: dict[str, dict[str, int]] = {}
    for m, g in mods.items():
        k = kinds.setdefault(kind(m), {x: 0 for x in g} | {"modules": 0})
        k["modules"] += 1
        for x, n in g.items():
            k[x] += n
    total = {x: sum(g[x] for g in mods.values()) for x in ("LUT", "LUTRAM_SRL", "FF", "BRAM18", "DSP")}
    return {"modules": {m: mods[m] | {"kind": kind(m)} for m in sorted(mods, key=lambda m: -mods[m]["LUT"])},
            "kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1]["LUT"])), "total": total}


def markdown(name: str, b: dict) -> list[str]:
    L = [f"### {name}: LUTs per module (`{b['command']}`, {b['date']}; yosys {b['yosys']})", "",
         "| module kind | modules | LUT | LUTRAM/SRL | FF | BRAM18 | DSP |", "|---|---|---|---|---|---|---|"]
    for k, g in b["kinds"].items():
        L.append(f"| {k} | {g['modules']} | {g['LUT']} | {g['LUTRAM_SRL']} | {g['FF']} | {g['BRAM18']} | {g['DSP']} |")
    t = b["total"]
    L += [f"| **total (hierarchical)** | {len(b['modules'])} | **{t['LUT']}** | {t['LUTRAM_SRL']} | {t['FF']} | "
          f"{t['BRAM18']} | {t['DSP']} |", "",
          "| module | kind | LUT | LUTRAM/SRL | FF | BRAM18 | DSP |", "|---|---|---|---|---|---|---|"]
    for m, g in b["modules"].items():
        L.append(f"| {m} | {g['kind']} | {g['LUT']} | {g['LUTRAM_SRL']} | {g['FF']} | {g['BRAM18']} | {g['DSP']} |")
    return L


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=["resnet8"])
    ap.add_argument("--report-only", action="store_true",
                    help="re-derive module kinds from the stored breakdowns and rewrite rtl.md (no synthesis)")
    args = ap.parse_args()
    out = ROOT / "benchmarks" / "results"
    rows = json.loads((out / "rtl.json").read_text())
    if args.report_only:
        for r in rows:
            if "breakdown" in r:
                r["breakdown"] |= by_kind(r["breakdown"]["modules"])
        (out / "rtl.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")
        (out / "rtl.md").write_text(bench_rtl.markdown(rows, bench_rtl.tool_versions()))
        return
    for name in args.only:
        row = next((r for r in rows if r["model"] == name), None)
        if row is None:
            sys.exit(f"error: no row {name!r} in rtl.json: run benchmarks/bench_rtl.py --only {name} first")
        b = breakdown(name)
        rows = json.loads((out / "rtl.json").read_text())  # bench_rtl.py may have written meanwhile
        next(r for r in rows if r["model"] == name)["breakdown"] = b
        (out / "rtl.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")
        print("\n".join(markdown(name, b)))
    (out / "rtl.md").write_text(bench_rtl.markdown(rows, bench_rtl.tool_versions()))


if __name__ == "__main__":
    main()
