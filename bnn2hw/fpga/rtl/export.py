# SPDX-License-Identifier: MIT
"""``bnn2hw export --backend rtl``: checkpoint -> verified IR -> Verilog with FINN's folding ->
lint -> simulation on the test split (every integer logit equal to the IR's) -> open synthesis
(yosys for Xilinx parts; yosys + nextpnr-ecp5 + ecppack for ECP5 boards).

The build directory is complete and verified, or not written at all
(:func:`bnn2hw.outdir.write_dir_atomically`)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ...errors import Bnn2hwError
from .. import build
from . import residual, synth
from . import sim as rtlsim
from .emit import design_hash, emit_design
from .plan import MvauPlan, plan_layers

TARGETS = tuple(build.FPGA_TARGETS) + tuple(synth.ECP5_TARGETS)


def check_target(target: str) -> str:
    t = target.lower()
    if t not in build.FPGA_TARGETS and t not in synth.ECP5_TARGETS:
        raise Bnn2hwError(f"unknown FPGA target {target!r} for the RTL back end; valid: {', '.join(TARGETS)}")
    return t


@dataclass
class Design:
    """A generated design: the MVAU plans (input reader first, logits last), the Verilog files, the
    FINN folding rows, and for a residual graph its simulation probes and skip FIFO depths."""

    plans: list
    files: dict
    folding: list
    probes: list | None = None  # None: a chain (every hidden layer probed by default)
    fifos: dict = field(default_factory=dict)


def generate_design(graph, clock_mhz: float = 100.0, target_fps: float = 1e6,
                    folding: list[dict] | None = None, in_beat_bytes: int | None = None,
                    rom_style: str = "auto") -> Design:
    """IR -> :class:`Design`; folding defaults to ``choose_folding``. A chain (MLP, CNN) uses
    :mod:`.emit`; a graph with residual ops or branches uses :mod:`.residual`.

    ``in_beat_bytes``: bytes per s_axis beat (e.g. 1: one u8 pixel per beat, as FINN streams);
    None: one whole frame per beat. ``rom_style``: ``auto`` | ``block`` | ``logic``
    (:func:`~bnn2hw.fpga.rtl.emit.rom_style`)."""
    layers = folding or build.choose_folding(build.matmul_layers(graph), clock_mhz, target_fps)
    if in_beat_bytes is not None and int(in_beat_bytes) < 1:
        raise Bnn2hwError(f"bytes per input beat must be at least 1, not {in_beat_bytes}")
    mh = graph.meta.get("model_hash", "?")
    if residual.needs_residual(graph):
        fin = int(np.prod(graph.input_shape)) * (8 if graph.input_kind == "u8" else 1)
        bits = None if in_beat_bytes is None else min(8 * int(in_beat_bytes), -(-fin // 8) * 8)
        d = residual.plan_residual(graph, layers, mh, rom_style, bits)
        return Design(d.plans, d.files, layers, d.probes, d.fifos)
    plans = plan_layers(graph, layers)
    if in_beat_bytes is not None:
        plans[0].in_beat_bits = min(8 * int(in_beat_bytes), -(-plans[0].frame_in_width // 8) * 8)
    return Design(plans, emit_design(plans, mh, rom_style), layers)


def generate(graph, clock_mhz: float = 100.0, target_fps: float = 1e6,
             folding: Optional[list[dict]] = None, in_beat_bytes: int | None = None,
             rom_style: str = "auto") -> tuple[list[MvauPlan], dict[str, str], list[dict]]:
    """IR -> (plans, {file: Verilog}, FINN folding rows): :func:`generate_design`'s first three."""
    d = generate_design(graph, clock_mhz, target_fps, folding, in_beat_bytes, rom_style)
    return d.plans, d.files, d.folding


def export_rtl(checkpoint: Path, target: str, out_dir: Path, clock_mhz: float = 100.0,
               target_fps: float = 1e6, dataset: Optional[str] = None,
               verify_samples: Optional[int] = None, echo=print, verify: bool = True,
               force: bool = False, simulator: str = "auto", synthesize: bool = True,
               in_beat_bytes: int | None = None, rom_style: str = "auto") -> dict:
    """Everything ``bnn2hw export --backend rtl`` does; returns the summary written to rtl_report.json."""
    from ...export.pipeline import export_ir, test_inputs
    from ...ir import execute
    from ...ir.graph import save_ir
    from ..cli import _ir_bytes

    target = check_target(target)
    exp = export_ir(checkpoint, dataset, verify=verify, need_data=verify)
    graph = exp.graph
    if (in_beat_bytes is None and residual.needs_residual(graph) and len(graph.input_shape) == 3
            and graph.input_kind == "u8"):
        in_beat_bytes = int(graph.input_shape[2])  # one u8 pixel per beat: the stem's window reads pixels
    design = generate_design(graph, clock_mhz, target_fps, in_beat_bytes=in_beat_bytes, rom_style=rom_style)
    plans, files, layers = design.plans, design.files, design.folding
    report = build.layer_report(graph, layers, clock_mhz, target_fps)
    summary: dict = {"checkpoint": str(checkpoint), "target": target, "model_hash": graph.meta["model_hash"],
                     "design_hash": design_hash(files), "clock_mhz": clock_mhz, "target_fps": target_fps,
                     "s_axis": {"beat_bits": plans[0].beat_width, "beats_per_frame": plans[0].beats_per_frame},
                     "rom_style": rom_style,
                     "layers": [{"layer": p.name, "source": p.source, "MW": p.MW, "MH": p.MH, "PE": p.PE,
                                 "SIMD": p.SIMD, "cycles": p.cycles, "in": p.in_kind, "weights": p.weight_kind}
                                for p in plans],
                     "model": {"cycles_per_frame": report["max_cycles"], "latency_cycles": report["latency_cycles"],
                               "frames_per_s": report["estimated_fps"]},
                     "synthesis": "run" if synthesize else "skipped (--no-synth)"}
    out_files: dict = {f"rtl/{k}": v for k, v in files.items()}
    if rtlsim.tools.find("verilator"):
        rtlsim.lint(files)
        summary["lint"] = "verilator --lint-only -Wall: clean"
    else:
        summary["lint"] = "not run: verilator is not installed (apt-get install verilator)"
        echo("warning: verilator is not installed, so the lint check did not run")
    with tempfile.TemporaryDirectory(prefix="bnn2hw_rtl_") as tmp:
        tmp = Path(tmp)
        if exp.data is not None:
            x, y = test_inputs(exp, verify_samples)
            ref = execute.run(graph, x)
            xi = execute.to_ir_input(graph, x).reshape(len(x), -1)
            runs = rtlsim.simulate(files, plans, xi, tmp / "sim", simulator, stall_seeds=(0, 1),
                                   probes=design.probes)
            for r in runs:
                bad = int((r.int_logits != ref.int_logits).sum())
                if bad:
                    raise Bnn2hwError(f"RTL simulation ({r.simulator}, stall seed {r.stall_seed}) disagrees with "
                                      f"the IR on {bad} integer logits of {len(x)} {exp.data.name} test frames")
            free = runs[0]
            summary["simulation"] = {
                "simulator": free.simulator, "dataset": exp.data.name, "frames": free.frames,
                "int_logits_differing": 0, "back_pressure_run": "stall seed 1: also equal",
                "cycles_per_frame": free.cycles_per_frame, "latency_cycles": free.latency_cycles,
                "accuracy": float((ref.logits.argmax(1) == y).mean()) if y is not None else None}
            out_files["sim/tb_core.v"] = (tmp / "sim" / "tb_core.v").read_text()
            out_files["sim/tb_in.hex"] = (tmp / "sim" / "tb_in.hex").read_text()
            out_files["sim/tb_out.hex"] = (tmp / "sim" / "tb_out.hex").read_text()
        if synthesize:
            d = tmp / "synth"
            d.mkdir()
            if target in synth.ECP5_TARGETS:
                r = synth.implement_ecp5(files, plans, target, clock_mhz, d)
                out_files["synth/design.bit"] = r.pop("bitstream").read_bytes()
                out_files["synth/nextpnr.log"] = (d / "nextpnr.log").read_text()
                out_files["synth/yosys_ecp5.log"] = (d / "yosys_ecp5.log").read_text()
                out_files["synth/bnn_pnr.v"] = (d / "bnn_pnr.v").read_text()
                r.pop("report")
                summary["ecp5"] = r
            else:
                r = synth.synth_xilinx(files, build.FPGA_TARGETS[target].part, d)
                out_files["synth/yosys_xilinx.log"] = r.pop("log")
                summary["xilinx_synth"] = r
    out_files["rtl_report.json"] = build.dumps(summary)
    out_files["rtl_report.md"] = report_md(summary)
    out_files["layer_report.md"] = _finn_report(report, target)
    out_files["model.bnnir.npz"] = _ir_bytes(graph, save_ir)
    out_files["model.ir.txt"] = graph.describe() + "\n"
    out_files["bnn2hw_export.json"] = build.dumps({"target": target, "backend": "rtl",
                                                   "model_hash": graph.meta["model_hash"],
                                                   "design_hash": summary["design_hash"]})
    build.write_build_dir(out_dir, out_files, force=force)
    echo(f"wrote {out_dir}/: rtl/*.v (Verilog-2005, top bnn_top), rtl_report.md, model.bnnir.npz"
         + (", synth/design.bit" if "synth/design.bit" in out_files else ""))
    for line in summary_lines(summary):
        echo(line)
    return summary


def _finn_report(report, target):
    from ..cli import _report_md

    tgt = build.FPGA_TARGETS.get(target) or build.FpgaTarget(synth.ECP5_TARGETS[target].name, target)
    return _report_md(report, tgt)


def summary_lines(s: dict) -> list[str]:
    out = []
    m = s["model"]
    if "simulation" in s:
        v = s["simulation"]
        out.append(f"verified in {v['simulator']} on {v['frames']} {v['dataset']} test frames: every integer logit "
                   "equals the IR's (also under random back-pressure)"
                   + (f"; accuracy {v['accuracy']:.4f}" if v["accuracy"] is not None else ""))
        out.append(f"simulated: {v['cycles_per_frame']:g} cycles/frame, latency {v['latency_cycles']} cycles; "
                   f"FINN cycle model: {m['cycles_per_frame']} cycles/frame, latency {m['latency_cycles']} cycles")
    else:
        out.append(f"not simulated (--no-verify); FINN cycle model: {m['cycles_per_frame']} cycles/frame")
    if s.get("synthesis", "run") != "run":
        out.append(f"not synthesized: {s['synthesis']}")
    if "xilinx_synth" in s:
        x = s["xilinx_synth"]
        out.append(f"yosys synth_xilinx -family {x['family']} ({x['part']}, after synthesis, not placed): "
                   f"{x['LUT']} LUT + {x['LUTRAM_SRL']} LUTRAM/SRL, {x['FF']} FF, {x['BRAM18']} BRAM18, {x['DSP']} DSP")
    if "ecp5" in s:
        e = s["ecp5"]
        out.append(f"nextpnr-ecp5 {e['device']} post-route: {e['LUT4']} LUT4, {e['FF']} FF, {e['DP16KD']} DP16KD, "
                   f"{e['MULT18']} MULT18; Fmax {e['fmax_mhz']:.1f} MHz (target {e['clock_mhz']:g}); bitstream "
                   "synth/design.bit")
    return out


def report_md(s: dict) -> str:
    lines = [f"# RTL report ({s['target']}, {s['clock_mhz']:g} MHz, target {s['target_fps']:g} frames/s)", "",
             f"model {s['model_hash']}, design {s['design_hash']}; {s['lint']}", "",
             f"s_axis: {s['s_axis']['beats_per_frame']} beat(s) of {s['s_axis']['beat_bits']} bits per frame; "
             f"ROMs: rom_style {s['rom_style']}", "",
             "| layer | source | in x weights | MW | MH | PE | SIMD | cycles/frame |", "|---|---|---|---|---|---|---|---|"]
    for r in s["layers"]:
        lines.append(f"| {r['layer']} | {r['source']} | {r['in']} x {r['weights']} | {r['MW']} | {r['MH']} | "
                     f"{r['PE']} | {r['SIMD']} | {r['cycles']} |")
    lines += [""] + [f"- {x}" for x in summary_lines(s)] + [""]
    return "\n".join(lines)
