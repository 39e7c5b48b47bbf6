# SPDX-License-Identifier: MIT
"""Simulate the generated design on integer input frames with Verilator (iverilog as fallback)
and read back the integer logits, the cycle of every handshake, and the lint result.

The testbench (``tb_core``) streams the frames from ``tb_in.hex`` into ``s_axis`` and writes each
``m_axis`` beat to ``tb_out.hex``. With ``+stall=SEED`` (SEED > 0) an LFSR withholds
``s_axis_tvalid`` and ``m_axis_tready`` on pseudo-random cycles, which exercises back-pressure;
with ``+stall=0`` both are always asserted and the cycle counts are the design's own.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import Bnn2hwError
from . import tools
from .emit import PREFIX, module_name
from .plan import MvauPlan

CPP_MAIN = """// bnn2hw: Verilator driver for tb_core (the clock; everything else is in the testbench)
#include "Vtb_core.h"
#include "verilated.h"
int main(int argc, char** argv) {
    VerilatedContext* ctx = new VerilatedContext;
    ctx->commandArgs(argc, argv);
    Vtb_core* top = new Vtb_core{ctx};
    top->clk = 0;
    while (!ctx->gotFinish()) {
        top->clk = !top->clk;
        top->eval();
        ctx->timeInc(5);
    }
    top->final();
    delete top;
    delete ctx;
    return 0;
}
"""


@dataclass(frozen=True)
class Probe:
    """An internal stream of the design written to ``tb_probe_<name>.hex`` at every handshake:
    ``path`` is the instance (``dut.u_x``) whose ``m_tdata``/``m_tvalid``/``m_tready`` carry IR
    tensor ``tensor``, ``width`` bits per element (two's complement when ``signed``; width 1 and
    unsigned: a bit, 1 = +1)."""

    name: str
    path: str
    tensor: str
    width: int = 1
    signed: bool = False
    beats: int = 1  # handshakes per frame (a pixel stream: H*W beats of ``elems`` elements)
    elems: int = 0  # elements per beat (needed when beats > 1)


def chain_probes(plans: list[MvauPlan]) -> list[Probe]:
    """Every hidden layer's output of a chain design (its threshold's bits)."""
    return [Probe(p.name, f"dut.u_{module_name(p)[len(PREFIX) + 1:]}", p.thr_name) for p in plans[:-1]]


def _probes(probes: list[Probe]) -> str:
    """Every probe's beats, written to tb_probe_<name>.hex (hierarchical references)."""
    out = []
    for q in probes:
        u = q.path
        out += [f"    integer f_{q.name};",
                f"    initial f_{q.name} = $fopen(\"tb_probe_{q.name}.hex\", \"w\");",
                f"    always @(posedge clk) if ({u}.m_tvalid && {u}.m_tready) $fwrite(f_{q.name}, \"%h\\n\", "
                f"{u}.m_tdata);"]
    return "\n".join(out)


def testbench(plans: list[MvauPlan], frames: int, max_cycles: int, probes: list[Probe] | None = None) -> str:
    first, last = plans[0], plans[-1]
    bw, nb, ow = first.beat_width, first.beats_per_frame, last.out_width
    iw = bw * nb  # frame words padded to whole beats
    bc = max(1, (nb - 1).bit_length())
    plist = chain_probes(plans) if probes is None else probes
    probes = _probes(plist)
    closes = " ".join(f"$fclose(f_{q.name});" for q in plist)
    return f"""// bnn2hw testbench: {frames} frames through {PREFIX}_top, +stall=SEED for random back-pressure
`default_nettype none
module tb_core (input wire clk);
    reg [{iw - 1}:0] frames_in [0:{frames - 1}];
    reg rst_n = 1'b0;
    reg [31:0] cycle = 0, n_in = 0, n_out = 0, first_in = 0, first_out = 0, last_out = 0;
    reg [{bc - 1}:0] beat = 0;  // beat of frame n_in on s_axis ({nb} beats of {bw} bits per frame)
    wire [{iw - 1}:0] cur_frame = frames_in[n_in < {frames} ? n_in : 0];
    reg [31:0] stall_seed = 0;
    reg [15:0] lfsr = 16'hace1;
    integer fout;
    wire s_ready, m_valid;
    wire [{ow - 1}:0] m_data;
    // gates: always open without +stall, else about 3 cycles in 4
    wire gate_in = (stall_seed == 0) || lfsr[0] || lfsr[5];
    wire gate_out = (stall_seed == 0) || lfsr[3] || lfsr[9];
    wire s_valid = rst_n && (n_in < {frames}) && gate_in;
    wire m_ready = rst_n && gate_out;
    {PREFIX}_top dut (.clk(clk), .rst_n(rst_n),
        .s_axis_tdata(cur_frame[beat * {bw} +: {bw}]), .s_axis_tvalid(s_valid), .s_axis_tready(s_ready),
        .m_axis_tdata(m_data), .m_axis_tvalid(m_valid), .m_axis_tready(m_ready));
    initial begin
        $readmemh("tb_in.hex", frames_in);
        if (!$value$plusargs("stall=%d", stall_seed)) stall_seed = 0;
        if (stall_seed != 0) lfsr = stall_seed[15:0] | 16'h1;
        fout = $fopen("tb_out.hex", "w");
    end
{probes}
    always @(posedge clk) begin
        cycle <= cycle + 1;
        if (cycle == 3) rst_n <= 1'b1;
        lfsr <= {{lfsr[14:0], lfsr[15] ^ lfsr[13] ^ lfsr[12] ^ lfsr[10]}};
        if (s_valid && s_ready) begin
            if (n_in == 0 && beat == 0) first_in <= cycle;
            if (beat == {bc}'d{nb - 1}) begin beat <= 0; n_in <= n_in + 1; end
            else beat <= beat + 1;
        end
        if (m_valid && m_ready) begin
            $fwrite(fout, "%h\\n", m_data);
            if (n_out == 0) first_out <= cycle;
            last_out <= cycle;
            n_out <= n_out + 1;
            if (n_out + 1 == {frames}) begin
                $fclose(fout); {closes}
                $display("BNN2HW_STATS frames=%0d first_in=%0d first_out=%0d last_out=%0d",
                         n_out + 1, first_in, (n_out == 0) ? cycle : first_out, cycle);
                $finish;
            end
        end
        if (cycle > {max_cycles}) begin
            $display("BNN2HW_TIMEOUT after %0d cycles: %0d frames in, %0d out", cycle, n_in, n_out);
            $fclose(fout);
            $finish;
        end
    end
endmodule
`default_nettype wire
"""


IVERILOG_TOP = """// bnn2hw: clock for tb_core under iverilog
`timescale 1ns/1ps
module tb_clock;
    reg clk = 1'b0;
    always #5 clk = ~clk;
    tb_core u (.clk(clk));
endmodule
"""


@dataclass
class SimResult:
    int_logits: np.ndarray  # (N, MH) int64
    simulator: str
    frames: int
    latency_cycles: int  # frame 0: s_axis handshake -> m_axis handshake
    cycles_per_frame: float  # steady state: (last_out - first_out) / (N - 1)
    stall_seed: int
    hidden: dict  # IR tensor name -> (N, elements) ±1 bits or stream integers, read from the probes


def pack_inputs(plan: MvauPlan, x: np.ndarray) -> str:
    """(N, MW) IR input (u8 values, or ±1) -> one hex word per frame, element i at [i*IW +: IW]."""
    iw = plan.IW
    x = np.asarray(x).reshape(len(x), -1)
    lines = []
    ndig = (plan.beat_width * plan.beats_per_frame + 3) // 4
    for row in x:
        v = 0
        for i, e in enumerate(row):
            e = int(e)
            bits = (1 if e > 0 else 0) if iw == 1 else e & 0xFF
            v |= bits << (i * iw)
        lines.append(f"{v:0{ndig}x}")
    return "\n".join(lines) + "\n"


def unpack_outputs(plan: MvauPlan, text: str) -> np.ndarray:
    LW, MH = plan.LW, plan.MH
    rows = []
    for line in text.split():
        if not re.fullmatch(r"[0-9a-fA-F]+", line):
            raise Bnn2hwError(f"simulation wrote an undefined output word ({line[:40]}...): x or z bits")
        v = int(line, 16)
        row = []
        for o in range(MH):
            w = (v >> (o * LW)) & ((1 << LW) - 1)
            row.append(w - (1 << LW) if w >> (LW - 1) else w)
        rows.append(row)
    return np.array(rows, dtype=np.int64).reshape(-1, MH)


def pick_simulator(prefer: str = "auto") -> str:
    if prefer in ("auto", "verilator") and tools.find("verilator"):
        return "verilator"
    if prefer in ("auto", "iverilog") and tools.find("iverilog") and tools.find("vvp"):
        return "iverilog"
    if prefer == "verilator":
        tools.require("verilator", "RTL simulation")
    if prefer == "iverilog":
        tools.require("iverilog", "RTL simulation")
    raise Bnn2hwError("RTL simulation needs Verilator or Icarus Verilog, and neither is installed: "
                      "apt-get install verilator (or iverilog); scripts/setup.sh installs both")


def lint(files: dict[str, str], top: str = f"{PREFIX}_top") -> str:
    """``verilator --lint-only -Wall`` on the design; returns the (empty) output, raises on any warning."""
    exe = tools.require("verilator", "the lint check")
    with tempfile.TemporaryDirectory(prefix="bnn2hw_lint_") as d:
        d = Path(d)
        for name, text in files.items():
            (d / name).write_text(text)
        return tools.run([exe, "--lint-only", "-Wall", "--top-module", top, *sorted(files)], d,
                         d / "lint.log", "verilator --lint-only -Wall")


def build_sim(files: dict[str, str], plans: list[MvauPlan], frames: int, work: Path,
              simulator: str = "auto", probes: list[Probe] | None = None,
              extra_cycles: int = 0) -> tuple[str, list[str]]:
    """Compile the design + testbench in ``work``; returns (simulator, command to run)."""
    sim = pick_simulator(simulator)
    work.mkdir(parents=True, exist_ok=True)
    worst = max(p.cycles for p in plans)
    depth = sum(p.cycles + p.tree_levels + 8 for p in plans)
    max_cycles = 100 + 8 * (frames * worst + depth + extra_cycles)  # generous: the stalled run takes ~2-3x
    for name, text in files.items():
        (work / name).write_text(text)
    (work / "tb_core.v").write_text(testbench(plans, frames, max_cycles, probes))
    srcs = sorted(files) + ["tb_core.v"]
    if sim == "verilator":
        (work / "tb_main.cpp").write_text(CPP_MAIN)
        exe = tools.require("verilator", "RTL simulation")
        tools.run([exe, "--cc", "--exe", "--build", "-j", "2", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                   "--top-module", "tb_core", "-CFLAGS", "-O0", "--Mdir", "obj_dir",
                   "-o", "Vtb_core", *srcs, "tb_main.cpp"], work, work / "verilator_build.log",
                  "Verilator build of the testbench")
        return sim, [str(work / "obj_dir" / "Vtb_core")]
    (work / "tb_clock.v").write_text(IVERILOG_TOP)
    tools.run([tools.require("iverilog", "RTL simulation"), "-g2005", "-s", "tb_clock", "-o", "tb.vvp",
               *srcs, "tb_clock.v"], work, work / "iverilog_build.log", "iverilog build of the testbench")
    return sim, [tools.require("vvp", "RTL simulation"), "-n", "tb.vvp"]


def _decode(words: list[str], q: Probe, n: int) -> np.ndarray:
    if any(not re.fullmatch(r"[0-9a-fA-F]+", w) for w in words):
        raise Bnn2hwError(f"simulation: {q.tensor} produced undefined (x/z) bits")
    if q.beats > 1:  # a pixel stream: q.beats beats of q.elems elements per frame, concatenated
        if len(words) != n * q.beats:
            raise Bnn2hwError(f"simulation: {q.tensor} produced {len(words)} beats for {n} inputs of {q.beats} beats")
        one = Probe(q.name, q.path, q.tensor, q.width, q.signed)
        rows = _decode(words, one, len(words))[:, :q.elems]
        return rows.reshape(n, q.beats * q.elems)
    if len(words) != n:
        raise Bnn2hwError(f"simulation: {q.tensor} produced {len(words)} frames for {n} inputs")
    out = []
    for w in words:
        v = int(w, 16)
        if q.width == 1 and not q.signed:
            row = [1 if (v >> o) & 1 else -1 for o in range(len(w) * 4)]
        else:
            mask = (1 << q.width) - 1
            row = []
            for o in range(len(w) * 4 // q.width + 1):
                e = (v >> (o * q.width)) & mask
                row.append(e - (1 << q.width) if q.signed and e >> (q.width - 1) else e)
        out.append(row)
    return np.array(out, dtype=np.int64)


def run_sim(cmd: list[str], sim: str, plans: list[MvauPlan], x: np.ndarray, work: Path,
            stall_seed: int = 0, probes: list[Probe] | None = None) -> SimResult:
    (work / "tb_in.hex").write_text(pack_inputs(plans[0], x))
    out = work / "tb_out.hex"
    if out.exists():
        out.unlink()
    log = tools.run(cmd + [f"+stall={stall_seed}"], work, work / f"sim_stall{stall_seed}.log",
                    f"{sim} simulation", big_stack=True)
    if "BNN2HW_TIMEOUT" in log:
        raise Bnn2hwError(f"{sim} simulation timed out: {log.strip().splitlines()[-1]}")
    m = re.search(r"BNN2HW_STATS frames=(\d+) first_in=(\d+) first_out=(\d+) last_out=(\d+)", log)
    if not m:
        raise Bnn2hwError(f"{sim} simulation ended without its statistics line; log in {work}")
    n, fi, fo, lo = (int(g) for g in m.groups())
    got = unpack_outputs(plans[-1], out.read_text())
    if len(got) != len(x):
        raise Bnn2hwError(f"{sim} simulation returned {len(got)} frames for {len(x)} inputs")
    cpf = (lo - fo) / (n - 1) if n > 1 else float("nan")
    hidden = {}
    if probes is None:
        for p in plans[:-1]:
            words = (work / f"tb_probe_{p.name}.hex").read_text().split()
            if any(not re.fullmatch(r"[0-9a-fA-F]+", w) for w in words):
                raise Bnn2hwError(f"simulation: layer {p.name} produced undefined (x/z) bits")
            bits = [[1 if (int(w, 16) >> o) & 1 else -1 for o in range(p.MH)] for w in words]
            hidden[p.thr_name] = np.array(bits, dtype=np.int64).reshape(len(x), -1)  # (y, x, c) order for convs
    else:  # whole tensors per beat; the caller cuts each row to the tensor's element count
        for q in probes:
            hidden[q.tensor] = _decode((work / f"tb_probe_{q.name}.hex").read_text().split(), q, len(x))
    return SimResult(got, sim, n, fo - fi, cpf, stall_seed, hidden)


def simulate(files: dict[str, str], plans: list[MvauPlan], x: np.ndarray, work: Path | None = None,
             simulator: str = "auto", stall_seeds: tuple[int, ...] = (0,),
             probes: list[Probe] | None = None, extra_cycles: int = 0) -> list[SimResult]:
    """Build once, run once per stall seed (0 = free-running, for the cycle counts). ``plans[0]``
    reads the design's input, ``plans[-1]`` writes the logits; ``probes``: the internal streams
    to record (default: every hidden layer of a chain)."""
    if len(x) == 0:
        raise Bnn2hwError("nothing to simulate: no input frames")
    if work is None:
        with tempfile.TemporaryDirectory(prefix="bnn2hw_sim_") as d:
            return simulate(files, plans, x, Path(d), simulator, stall_seeds, probes, extra_cycles)
    sim, cmd = build_sim(files, plans, len(x), work, simulator, probes, extra_cycles)
    return [run_sim(cmd, sim, plans, x, work, s, probes) for s in stall_seeds]
