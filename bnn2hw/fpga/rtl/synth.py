# SPDX-License-Identifier: MIT
"""Open synthesis and implementation of the generated design.

* Xilinx parts: ``yosys synth_xilinx`` (out of context, no I/O buffers, like FINN's estimates),
  cell counts after synthesis (not placed): LUT, LUTRAM/SRL, FF, BRAM18, DSP.
* ECP5 boards: ``synth_ecp5``, ``nextpnr-ecp5`` place and route at the target clock
  (post-route utilization and Fmax from ``--report``), bitstream with ``ecppack``.

The ECP5 flow places a small harness around ``bnn_top`` (:data:`PNR_HARNESS`): a byte-wide input
shift register and output shift register, because a whole frame per beat (e.g. 512 bits for 64
pixels) has more bits than the package has pins. The harness's registers are included in the
post-route counts (about ``in_width + out_width`` FFs).
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ...errors import Bnn2hwError
from . import tools
from .emit import PREFIX
from .plan import MvauPlan


@dataclass(frozen=True)
class Ecp5Target:
    name: str
    device: str  # nextpnr-ecp5 device flag
    package: str


ECP5_TARGETS = {
    "ulx3s-85f": Ecp5Target("ULX3S (LFE5U-85F)", "--85k", "CABGA381"),
    "orangecrab-25f": Ecp5Target("OrangeCrab (LFE5U-25F)", "--25k", "CSFBGA285"),
}


def xilinx_family(part: str) -> str:
    """yosys ``synth_xilinx -family`` for a Xilinx part name."""
    if part.startswith(("xc7",)):
        return "xc7"
    if part.startswith(("xczu", "xck26")):
        return "xcup"
    raise Bnn2hwError(f"no yosys family known for part {part}")


def pnr_harness(plans: list[MvauPlan]) -> str:
    iw, ow = plans[0].beat_width, plans[-1].out_width
    ib, ob = -(-iw // 8) * 8, -(-ow // 8) * 8
    nout = ob // 8
    cw = max(1, (nout - 1).bit_length())
    mext = f"{{{ob - ow}'d0, m_data}}" if ob > ow else "m_data"
    return f"""// bnn2hw place-and-route harness: byte-wide I/O around {PREFIX}_top (whose frame ports are too wide for pins)
`default_nettype none
module {PREFIX}_pnr (
    input  wire clk,
    input  wire rst_n,
    input  wire [7:0] in_byte,   // frame bytes, first byte = lowest bits
    input  wire in_push,         // shift in_byte into the frame register
    input  wire in_send,         // offer the frame register to the accelerator
    output wire [7:0] out_byte,  // logits bytes, lowest first
    output reg  out_valid
);
    reg [{ib - 1}:0] frame;
    reg pend;
    wire s_ready, m_valid;
    wire [{ow - 1}:0] m_data;
    reg [{ob - 1}:0] outsh;
    reg [{cw - 1}:0] left;
    always @(posedge clk) begin
        if (in_push) frame <= {{in_byte, frame[{ib - 1}:8]}};
        if (!rst_n) pend <= 1'b0;
        else if (in_send) pend <= 1'b1;
        else if (s_ready) pend <= 1'b0;
    end
    {PREFIX}_top u (.clk(clk), .rst_n(rst_n), .s_axis_tdata(frame[{iw - 1}:0]), .s_axis_tvalid(pend),
        .s_axis_tready(s_ready), .m_axis_tdata(m_data), .m_axis_tvalid(m_valid), .m_axis_tready(!out_valid));
    always @(posedge clk) begin
        if (!rst_n) begin out_valid <= 1'b0; left <= {cw}'d0; end
        else if (!out_valid && m_valid) begin
            outsh <= {mext}; out_valid <= 1'b1; left <= {cw}'d{nout - 1};
        end else if (out_valid) begin
            outsh <= outsh >> 8;
            if (left == {cw}'d0) out_valid <= 1'b0; else left <= left - {cw}'d1;
        end
    end
    assign out_byte = outsh[7:0];
endmodule
`default_nettype wire
"""


def _write(files: dict[str, str], d: Path) -> list[str]:
    for name, text in files.items():
        (d / name).write_text(text)
    return sorted(files)


XILINX_GROUPS = {
    "LUT": r"LUT[1-6]$",
    "LUTRAM": r"(RAM(32|64|128|256)\w*|SRL\w*)$",
    "FF": r"FD[RSCP]E$",
    "CARRY4": r"CARRY[48]$",
    "BRAM18": r"RAMB18E[12]$",
    "BRAM36": r"RAMB36E[12]$",
    "DSP": r"DSP48E[12]$",
}


def parse_yosys_stat(text: str) -> dict[str, int]:
    """Cell counts of the last ``stat`` in a yosys log."""
    block = text[text.rfind("Number of cells:"):]
    cells: dict[str, int] = {}
    for m in re.finditer(r"^\s+(\$?[A-Za-z_][\w$]*)\s+(\d+)\s*$", block, re.M):
        cells[m.group(1)] = cells.get(m.group(1), 0) + int(m.group(2))
    return cells


def synth_xilinx(files: dict[str, str], part: str, work: Path) -> dict:
    """yosys synth_xilinx; returns cell counts grouped as LUT/LUTRAM/FF/BRAM18/DSP and the raw cells."""
    yosys = tools.require("yosys", "synthesis for Xilinx parts")
    fam = xilinx_family(part)
    srcs = _write(files, work)
    script = (f"read_verilog -sv {' '.join(srcs)}; "
              f"synth_xilinx -family {fam} -top {PREFIX}_top -flatten -noiopad; stat")
    log = tools.run([yosys, "-q", "-l", "yosys_xilinx.log", "-p", script], work, work / "yosys_xilinx.stdout",
                    f"yosys synth_xilinx -family {fam}")
    text = (work / "yosys_xilinx.log").read_text() if (work / "yosys_xilinx.log").exists() else log
    cells = parse_yosys_stat(text)
    groups = {g: sum(n for c, n in cells.items() if re.match(rx, c)) for g, rx in XILINX_GROUPS.items()}
    return {"tool": "yosys synth_xilinx", "family": fam, "part": part,
            "LUT": groups["LUT"], "LUTRAM_SRL": groups["LUTRAM"], "FF": groups["FF"],
            "CARRY": groups["CARRY4"], "BRAM18": groups["BRAM18"] + 2 * groups["BRAM36"],
            "DSP": groups["DSP"], "cells": cells, "log": text}


def implement_ecp5(files: dict[str, str], plans: list[MvauPlan], target: str, clock_mhz: float,
                   work: Path, bitstream: bool = True, seed: int = 1) -> dict:
    """synth_ecp5 + nextpnr-ecp5 (+ ecppack); returns post-route utilization, Fmax, logs, bitstream."""
    try:
        tgt = ECP5_TARGETS[target]
    except KeyError:
        raise Bnn2hwError(f"unknown ECP5 target {target!r}; valid: {', '.join(ECP5_TARGETS)}") from None
    yosys = tools.require("yosys", "synthesis for ECP5")
    nextpnr = tools.require("nextpnr-ecp5", "place and route for ECP5")
    ecppack = tools.require("ecppack", "the ECP5 bitstream") if bitstream else None
    allf = dict(files)
    allf[f"{PREFIX}_pnr.v"] = pnr_harness(plans)
    srcs = _write(allf, work)
    tools.run([yosys, "-q", "-l", "yosys_ecp5.log", "-p",
               f"read_verilog -sv {' '.join(srcs)}; synth_ecp5 -top {PREFIX}_pnr -json design.json"],
              work, work / "yosys_ecp5.stdout", "yosys synth_ecp5")
    cmd = [nextpnr, tgt.device, "--package", tgt.package, "--json", "design.json", "--textcfg",
           "design.config", "--freq", f"{clock_mhz:g}", "--report", "nextpnr_report.json",
           "--seed", str(seed), "--lpf-allow-unconstrained", "--timing-allow-fail", "-q",
           "--log", "nextpnr.log"]
    tools.run(cmd, work, work / "nextpnr.stdout", "nextpnr-ecp5 place and route")
    rep = json.loads((work / "nextpnr_report.json").read_text())
    fmax = rep.get("fmax", {})
    clk = next((v for k, v in fmax.items() if "clk" in k), None) or (next(iter(fmax.values())) if fmax else {})
    util = {k: {"used": v.get("used"), "available": v.get("available")} for k, v in rep.get("utilization", {}).items()}
    crit = critical_path(rep)
    out = {"tool": "yosys synth_ecp5 + nextpnr-ecp5", "target": target, "device": tgt.name,
           "clock_mhz": clock_mhz, "fmax_mhz": clk.get("achieved"), "utilization": util,
           "LUT4": util.get("TRELLIS_COMB", {}).get("used"), "FF": util.get("TRELLIS_FF", {}).get("used"),
           "DP16KD": util.get("DP16KD", {}).get("used"), "MULT18": util.get("MULT18X18D", {}).get("used"),
           "critical_path": crit,
           "harness_ffs": -(-plans[0].beat_width // 8) * 8 + -(-plans[-1].out_width // 8) * 8,
           "report": rep}
    if bitstream:
        tools.run([ecppack, "--compress", "design.config", "design.bit"], work, work / "ecppack.log", "ecppack")
        out["bitstream"] = work / "design.bit"
    return out


def critical_path(rep: dict) -> dict:
    """The first critical path of a nextpnr ``--report``: start and end cells, total delay (ns),
    logic and routing shares, and the cells it passes (names shortened)."""
    paths = rep.get("critical_paths") or []
    if not paths or not paths[0].get("path"):
        return {}
    segs = paths[0]["path"]
    cells = []
    for sg in segs:
        for end in ("from", "to"):
            c = (sg.get(end) or {}).get("cell")
            if c and (not cells or cells[-1] != c):
                cells.append(c)
    logic = sum(sg.get("delay", 0.0) for sg in segs if sg.get("type") != "routing")
    route = sum(sg.get("delay", 0.0) for sg in segs if sg.get("type") == "routing")
    return {"from": cells[0] if cells else None, "to": cells[-1] if cells else None,
            "delay_ns": round(logic + route, 3), "logic_ns": round(logic, 3), "routing_ns": round(route, 3),
            "cells": [c[:80] for c in cells][:40]}


def run_in_tmp(fn, *args, **kw):
    with tempfile.TemporaryDirectory(prefix="bnn2hw_synth_") as d:
        return fn(*args, Path(d), **kw)
