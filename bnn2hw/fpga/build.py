# SPDX-License-Identifier: MIT
"""FPGA targets, folding (PE/SIMD) under FINN's MVAU cycle model, FINN build configuration,
and the export driver that writes a complete build directory.

Board names and parts are FINN's (``finn.util.basic.pynq_part_map``, case-sensitive); see
``hw/FINN_NOTES.md`` for the source references and the reasons for each config choice.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Bnn2hwError
from ..ir.graph import Graph
from ..outdir import write_dir_atomically


@dataclass(frozen=True)
class FpgaTarget:
    board: str  # FINN's board name
    part: str


FPGA_TARGETS = {
    "pynq-z1": FpgaTarget("Pynq-Z1", "xc7z020clg400-1"),
    "pynq-z2": FpgaTarget("Pynq-Z2", "xc7z020clg400-1"),
    "ultra96": FpgaTarget("Ultra96", "xczu3eg-sbva484-1-e"),
    "ultra96-v2": FpgaTarget("Ultra96-V2", "xczu3eg-sbva484-1-i"),
    "zcu104": FpgaTarget("ZCU104", "xczu7ev-ffvc1156-2-e"),
    "kv260": FpgaTarget("KV260_SOM", "xck26-sfvc784-2LV-c"),
}


def fpga_target(name: str) -> FpgaTarget:
    try:
        return FPGA_TARGETS[name.lower()]
    except KeyError:
        raise Bnn2hwError(f"unknown FPGA target {name!r}; valid: {', '.join(FPGA_TARGETS)}") from None


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def matmul_layers(graph: Graph) -> list[dict]:
    """One entry per MVAU FINN will create: MW (fan-in), MH (outputs), input vectors per frame."""
    out = []
    shape = tuple(graph.input_shape)
    for layer in graph.layers:
        if layer.op == "dense":
            o, k = layer.arrays["weight"].shape
            out.append({"name": layer.name, "source": layer.source, "MW": k, "MH": o, "vectors": 1,
                        "binary": layer.attrs.get("weight_kind") == "binary", "in": layer.attrs["in"]})
            shape = (o,)
        elif layer.op == "conv2d":
            o, kh, kw, c = layer.arrays["weight"].shape
            s, p = layer.attrs["stride"], layer.attrs["pad"]
            oh, ow = (shape[0] + 2 * p - kh) // s + 1, (shape[1] + 2 * p - kw) // s + 1
            out.append({"name": layer.name, "source": layer.source, "MW": kh * kw * c, "MH": o,
                        "vectors": oh * ow, "binary": True, "in": layer.attrs["in"],
                        "swg": {"channels": c, "in_h": shape[0], "in_w": shape[1]}})
            shape = (oh, ow, o)
        elif layer.op == "maxpool":
            k, s = layer.attrs["kernel"], layer.attrs["stride"]
            if out:
                out[-1]["pool_after"] = {"in_h": shape[0], "in_w": shape[1], "name": layer.name}
            shape = ((shape[0] - k) // s + 1, (shape[1] - k) // s + 1, shape[2])
    return out


def choose_folding(layers: list[dict], clock_mhz: float, target_fps: float) -> list[dict]:
    """Per MVAU the smallest PE*SIMD (ties: larger SIMD) with cycles <= the frame budget.

    FINN's MVAU cycle model: cycles = (MH/PE) * (MW/SIMD) * vectors, with MH % PE == 0 and
    MW % SIMD == 0 (``MVAU.get_exp_cycles``, ``calc_wmem``). If no folding meets the budget the
    fully parallel one is used and the report says the target is missed."""
    budget = int(clock_mhz * 1e6 / target_fps)
    for L in layers:
        best = None
        for simd in _divisors(L["MW"]):
            for pe in _divisors(L["MH"]):
                cycles = (L["MH"] // pe) * (L["MW"] // simd) * L["vectors"]
                if cycles <= budget:
                    key = (pe * simd, -simd)
                    if best is None or key < best[0]:
                        best = (key, pe, simd, cycles)
        if best is None:
            pe, simd = L["MH"], L["MW"]
            best = (None, pe, simd, L["vectors"])
        _, L["PE"], L["SIMD"], L["cycles"] = best
        L["meets_target"] = L["cycles"] <= budget
    return layers


def swg_cycles(swg: dict) -> int:
    """FINN's RTL sliding-window generator (ConvolutionInputGenerator_rtl) with SIMD = input
    channels and parallel_window 1: about one input pixel per cycle, H*W + 2 (the estimate
    FINN v0.10.1 reports; benchmarks/results/finn.md)."""
    return swg["in_h"] * swg["in_w"] + 2


def pool_cycles(pool: dict) -> int:
    """FINN's StreamingMaxPool estimate for a square kernel: W * (H + 1) cycles."""
    return pool["in_w"] * (pool["in_h"] + 1)


def folding_config(layers: list[dict]) -> dict:
    """FINN folding JSON: node names are FINN's after specialisation (MVAU_hls_<k>,
    ConvolutionInputGenerator_rtl_<k> in graph order); the "Defaults" key is mandatory in FINN
    v0.10.1. Each conv's sliding-window generator gets SIMD = input channels, otherwise FINN's
    default (SIMD 1) makes it the bottleneck."""
    cfg: dict = {"Defaults": {}}
    swg = 0
    for k, L in enumerate(layers):
        cfg[f"MVAU_hls_{k}"] = {"PE": L["PE"], "SIMD": L["SIMD"], "ram_style": "auto",
                               "mem_mode": "internal_decoupled", "resType": "lut"}
        if "swg" in L:
            cfg[f"ConvolutionInputGenerator_rtl_{swg}"] = {"SIMD": L["swg"]["channels"], "parallel_window": 1,
                                                          "ram_style": "distributed"}
            swg += 1
    return cfg


def dataflow_build_config(target: FpgaTarget, clock_mhz: float, target_fps: float) -> dict:
    """FINN ``DataflowBuildConfig`` as JSON (``build_dataflow`` reads it)."""
    return {
        "output_dir": "finn_output",
        "synth_clk_period_ns": round(1000.0 / clock_mhz, 6),
        "board": target.board,
        "fpga_part": target.part,
        "shell_flow_type": "vivado_zynq",
        "target_fps": int(target_fps),
        "folding_config_file": "folding_config.json",
        # FINN v0.10.1's minimize_accumulator_width clips XNOR popcount thresholds to the wrong
        # range (hw/FINN_NOTES.md, verified): keep it off.
        "minimize_bit_width": False,
        "auto_fifo_depths": True,
        "save_intermediate_models": True,
        "verify_steps": ["initial_python", "streamlined_python"],
        "verify_input_npy": "verify_input.npy",
        "verify_expected_output_npy": "verify_expected_output.npy",
        "generate_outputs": ["estimate_reports", "stitched_ip", "bitfile", "pynq_driver",
                             "deployment_package"],
    }


def layer_report(graph: Graph, layers: list[dict], clock_mhz: float, target_fps: float) -> dict:
    thr = {l.name: l for l in graph.layers if l.op == "threshold"}
    rows = []
    for i, L in enumerate(layers):
        idx = [l.name for l in graph.layers].index(L["name"])
        nxt = graph.layers[idx + 1] if idx + 1 < len(graph.layers) else None
        rows.append({
            "layer": L["name"], "source": L["source"], "input": L["in"],
            "MW": L["MW"], "MH": L["MH"], "vectors": L["vectors"],
            "MACs": L["MW"] * L["MH"] * L["vectors"],
            "weight_bits": L["MW"] * L["MH"] * (1 if L["binary"] else 8),
            "thresholds": int(thr[nxt.name].arrays["thr"].size) if nxt is not None and nxt.name in thr else 0,
            "PE": L["PE"], "SIMD": L["SIMD"], "cycles": L["cycles"],
            "fps_at_clock": clock_mhz * 1e6 / L["cycles"], "meets_target": L["meets_target"],
        })
    extra = []
    for L in layers:
        if "swg" in L:
            extra.append({"layer": f"{L['name']}_window", "kind": "ConvolutionInputGenerator",
                          "cycles": swg_cycles(L["swg"])})
        if "pool_after" in L:
            extra.append({"layer": L["pool_after"]["name"], "kind": "StreamingMaxPool",
                          "cycles": pool_cycles(L["pool_after"])})
    worst = max([r["cycles"] for r in rows] + [e["cycles"] for e in extra])
    return {"other_layers": extra,"clock_mhz": clock_mhz, "target_fps": target_fps,
            "cycle_budget": int(clock_mhz * 1e6 / target_fps), "layers": rows,
            "max_cycles": worst, "estimated_fps": clock_mhz * 1e6 / worst,
            "latency_cycles": sum(r["cycles"] for r in rows) + sum(e["cycles"] for e in extra)}


def finn_available() -> bool:
    try:
        import finn.builder.build_dataflow  # noqa: F401
    except Exception:
        return False
    return True


def docker_command(out_dir: Path) -> str:
    return (f"FINN_XILINX_PATH=/opt/Xilinx FINN_XILINX_VERSION=2022.2 "
            f"hw/run_finn_build.sh --docker bnn2hw-finn {out_dir}")


def run_finn(out_dir: Path, estimate_only: bool = False) -> dict:
    """Run FINN's build on the exported directory (only where ``finn`` imports)."""
    code = (
        "import json, sys\n"
        "from finn.builder.build_dataflow import build_dataflow_cfg\n"
        "from finn.builder.build_dataflow_config import DataflowBuildConfig, estimate_only_dataflow_steps\n"
        "cfg = DataflowBuildConfig.from_json(open('dataflow_build_config.json').read())\n"
        f"if {estimate_only!r}:\n"
        "    cfg.steps = estimate_only_dataflow_steps\n"
        "    cfg.generate_outputs = ['estimate_reports']\n"
        "sys.exit(build_dataflow_cfg('model_finn.onnx', cfg))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=out_dir)
    if res.returncode != 0:
        raise Bnn2hwError(f"FINN build failed (exit {res.returncode}); see {out_dir}/finn_output/build_dataflow.log")
    fo = out_dir / "finn_output"
    return {"output_dir": str(fo), "bitfile": str(fo / "bitfile"), "driver": str(fo / "driver"),
            "reports": str(fo / "report")}


def write_build_dir(out_dir: Path, files: dict, force: bool = False) -> None:
    """Write ``{relative path: bytes | str | ndarray}`` as the build dir, atomically."""

    def fill(tmp: Path) -> None:
        for rel, content in files.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, (bytes, bytearray)):
                p.write_bytes(content)
            elif isinstance(content, np.ndarray):
                np.save(p, content)
            else:
                p.write_text(content)

    write_dir_atomically(Path(out_dir), fill, marker="bnn2hw_export.json", force=force,
                         owned_dirs=("finn_output",))


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)) + "\n"
