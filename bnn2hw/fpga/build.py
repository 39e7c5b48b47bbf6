# SPDX-License-Identifier: MIT
"""FPGA targets, folding (PE/SIMD) under FINN's MVAU cycle model, FINN build configuration,
and the export driver that writes a complete build directory.

Board names and parts are FINN's (``finn.util.basic.pynq_part_map``, case-sensitive); see
``hw/FINN_NOTES.md`` for the source references and the reasons for each config choice.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Bnn2hwError
from ..ir.graph import Graph
from ..outdir import write_dir_atomically

# test samples written to verify_input.npy for FINN's own verify_steps (FINN runs each one through
# every verified intermediate model; rtlsim verification makes many samples slow)
FINN_VERIFY_SAMPLES = 16


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


def tensor_shapes(graph: Graph) -> dict:
    """The shape of every IR tensor, channels-last (the graph input is ``"input"``)."""
    from ..ir.graph import INPUT

    shapes = {INPUT: tuple(graph.input_shape)}
    for i, layer in enumerate(graph.layers):
        shape = shapes[graph.inputs_of(i)[0]]
        if layer.op == "dense":
            shape = (layer.arrays["weight"].shape[0],)
        elif layer.op == "conv2d":
            o, kh, kw, _ = layer.arrays["weight"].shape
            s, p = layer.attrs["stride"], layer.attrs["pad"]
            shape = ((shape[0] + 2 * p - kh) // s + 1, (shape[1] + 2 * p - kw) // s + 1, o)
        elif layer.op in ("maxpool", "avgpool"):
            k, s = layer.attrs["kernel"], layer.attrs["stride"]
            shape = ((shape[0] - k) // s + 1, (shape[1] - k) // s + 1, shape[2])
        elif layer.op == "flatten":
            shape = (int(np.prod(shape)),)
        shapes[layer.name] = shape
    return shapes


def matmul_layers(graph: Graph) -> list[dict]:
    """One entry per MVAU FINN will create: MW (fan-in), MH (outputs), input vectors per frame
    (in IR order; any DAG)."""
    out = []
    shapes = tensor_shapes(graph)
    for i, layer in enumerate(graph.layers):
        shape = shapes[graph.inputs_of(i)[0]]
        if layer.op == "dense":
            o, k = layer.arrays["weight"].shape
            out.append({"name": layer.name, "source": layer.source, "MW": k, "MH": o, "vectors": 1,
                        "binary": layer.attrs.get("weight_kind") == "binary", "in": layer.attrs["in"]})
        elif layer.op == "conv2d":
            o, kh, kw, c = layer.arrays["weight"].shape
            oh, ow, _ = shapes[layer.name]
            out.append({"name": layer.name, "source": layer.source, "MW": kh * kw * c, "MH": o,
                        "vectors": oh * ow, "binary": True, "in": layer.attrs["in"],
                        "swg": {"channels": c, "in_h": shape[0], "in_w": shape[1]}})
        elif layer.op == "maxpool":
            k, s = layer.attrs["kernel"], layer.attrs["stride"]
            if out:
                out[-1]["pool_after"] = {"in_h": shape[0], "in_w": shape[1], "channels": shape[2],
                                         "kernel": k, "stride": s, "name": layer.name}
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


FINN_VERSIONS = ("0.10", "dev")
DEFAULT_FINN_VERSION = "dev"


def check_finn_version(v: str) -> str:
    if v not in FINN_VERSIONS:
        raise Bnn2hwError(f"unknown FINN version {v!r}; valid: {', '.join(FINN_VERSIONS)} "
                          "(0.10 = the v0.10.1 release, dev = FINN's dev branch)")
    return v


def importable_finn_version() -> str | None:
    """"0.10" or "dev" for the FINN this interpreter imports (v0.10.x has
    ``InferStreamingMaxPool``, dev lowers max-pools with ``InferPool``), or None without FINN."""
    try:
        from finn.transformation.fpgadataflow import convert_to_hw_layers as c
    except Exception:
        return None
    return "0.10" if hasattr(c, "InferStreamingMaxPool") else "dev"


def swg_cycles(swg: dict) -> int:
    """FINN's RTL sliding-window generator (ConvolutionInputGenerator_rtl) with SIMD = input
    channels and parallel_window 1 ("parallel" style): H*W input pixels + 2
    (``get_exp_cycles``, same in v0.10.1 and dev)."""
    return swg["in_h"] * swg["in_w"] + 2


def pool_cycles(pool: dict) -> int:
    """FINN v0.10.1's StreamingMaxPool_hls estimate for a 2-D square kernel k on a W-wide map:
    int(W*W*(1 + 1/k^2)) (``streamingmaxpool.py:get_exp_cycles``; FINN's formula uses W twice)."""
    w, k = pool["in_w"], pool["kernel"]
    return int(w * w * (1 + 1 / (k * k)))


def pool_window_cycles(pool: dict) -> int:
    """FINN dev's depthwise ConvolutionInputGenerator_rtl in front of Pool_hls, SIMD = channels,
    parallel_window 0 ("default" style, 2-D case of ``get_exp_cycles``, channel factor 1)."""
    h, w, k, s = pool["in_h"], pool["in_w"], pool["kernel"], pool["stride"]
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    buffer_min = (k - 1) * w + (k - 1) + 1
    per_row = max(ow * k * k, s * w)
    return buffer_min + oh * per_row + (s - 1) * w


def pool_hls_cycles(pool: dict) -> int:
    """FINN dev's Pool_hls with PE = channels: (C*k*k/PE) * OH*OW (``pool.py:get_exp_cycles``)."""
    h, w, k, s = pool["in_h"], pool["in_w"], pool["kernel"], pool["stride"]
    return k * k * ((h - k) // s + 1) * ((w - k) // s + 1)


def finn_nodes(layers: list[dict], finn_version: str) -> list[dict]:
    """FINN's HW layers for the exported graph, in graph order, with FINN's node names after
    specialisation (``<op_type>_<k>`` numbered per op type by ``GiveUniqueNodeNames``), the
    folding we set and the cycles FINN estimates for it. v0.10.1 builds a max-pool as one
    ``StreamingMaxPool_hls``; dev as a depthwise ``ConvolutionInputGenerator_rtl`` plus
    ``Pool_hls``, and numbers that generator among the convolutions' ones. Each conv's
    generator gets SIMD = input channels and parallel_window 1, otherwise FINN's default
    (SIMD 1) makes it the bottleneck."""
    check_finn_version(finn_version)
    count: dict = {}

    def node(op: str, layer: str, cycles: int, config: dict | None) -> dict:
        k = count.get(op, 0)
        count[op] = k + 1
        return {"name": f"{op}_{k}", "kind": op, "layer": layer, "cycles": cycles, "config": config}

    out = []
    for L in layers:
        if "swg" in L:
            out.append(node("ConvolutionInputGenerator_rtl", f"{L['name']}_window", swg_cycles(L["swg"]),
                            {"SIMD": L["swg"]["channels"], "parallel_window": 1, "ram_style": "distributed"}))
        out.append(node("MVAU_hls", L["name"], L["cycles"],
                        {"PE": L["PE"], "SIMD": L["SIMD"], "ram_style": "auto",
                         "mem_mode": "internal_decoupled", "resType": "lut"}))
        if "pool_after" in L:
            P = L["pool_after"]
            if finn_version == "0.10":
                out.append(node("StreamingMaxPool_hls", P["name"], pool_cycles(P), None))
            else:
                out.append(node("ConvolutionInputGenerator_rtl", f"{P['name']}_window", pool_window_cycles(P),
                                {"SIMD": P["channels"], "parallel_window": 0, "ram_style": "distributed"}))
                out.append(node("Pool_hls", P["name"], pool_hls_cycles(P), {"PE": P["channels"]}))
    return out


def folding_config(layers: list[dict], finn_version: str = DEFAULT_FINN_VERSION) -> dict:
    """FINN folding JSON for every HW layer of :func:`finn_nodes` that has folding attributes;
    the "Defaults" key is mandatory in FINN v0.10.1's ``ApplyConfig``."""
    cfg: dict = {"Defaults": {}}
    for n in finn_nodes(layers, finn_version):
        if n["config"] is not None:
            cfg[n["name"]] = n["config"]
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
        # off for both FINN versions (hw/FINN_NOTES.md, verified): v0.10.1's MVAU
        # minimize_accumulator_width clips XNOR popcount thresholds to a wrong range, which changes
        # the network; dev no longer clips them but still derives wrong accumulator/output widths
        # for XNOR layers (the range of ±1 x {0,1}, not the popcount's [0, MW]).
        "minimize_bit_width": False,
        "auto_fifo_depths": True,
        "save_intermediate_models": True,
        "verify_steps": ["initial_python", "streamlined_python"],
        "verify_input_npy": "verify_input.npy",
        "verify_expected_output_npy": "verify_expected_output.npy",
        "generate_outputs": ["estimate_reports", "stitched_ip", "bitfile", "pynq_driver",
                             "deployment_package"],
    }


def layer_report(graph: Graph, layers: list[dict], clock_mhz: float, target_fps: float,
                 finn_version: str = DEFAULT_FINN_VERSION) -> dict:
    thr = {l.name: l for l in graph.layers if l.op == "threshold"}
    rows = []
    nodes = finn_nodes(layers, finn_version)
    mvau_names = [n["name"] for n in nodes if n["kind"] == "MVAU_hls"]
    for i, L in enumerate(layers):
        idx = [l.name for l in graph.layers].index(L["name"])
        nxt = graph.layers[idx + 1] if idx + 1 < len(graph.layers) else None
        rows.append({
            "layer": L["name"], "finn_node": mvau_names[i], "source": L["source"], "input": L["in"],
            "MW": L["MW"], "MH": L["MH"], "vectors": L["vectors"],
            "MACs": L["MW"] * L["MH"] * L["vectors"],
            "weight_bits": L["MW"] * L["MH"] * (1 if L["binary"] else 8),
            "thresholds": int(thr[nxt.name].arrays["thr"].size) if nxt is not None and nxt.name in thr else 0,
            "PE": L["PE"], "SIMD": L["SIMD"], "cycles": L["cycles"],
            "fps_at_clock": clock_mhz * 1e6 / L["cycles"], "meets_target": L["meets_target"],
        })
    extra = [{"layer": n["layer"], "finn_node": n["name"], "kind": n["kind"], "cycles": n["cycles"]}
             for n in nodes if n["kind"] != "MVAU_hls"]
    worst = max(n["cycles"] for n in nodes)
    return {"finn_version": finn_version, "other_layers": extra, "clock_mhz": clock_mhz,
            "target_fps": target_fps, "cycle_budget": int(clock_mhz * 1e6 / target_fps), "layers": rows,
            "max_cycles": worst, "estimated_fps": clock_mhz * 1e6 / worst,
            "latency_cycles": sum(n["cycles"] for n in nodes)}


MVAU_FOLDING_FILE = "mvau_folding.json"


def mvau_folding(layers: list[dict]) -> dict:
    """``mvau_folding.json`` for a residual graph: PE/SIMD per MVAU, keyed by its shape (MW, MH,
    input vectors), which FINN keeps. FINN renames nodes and tensors and sorts the graph its own
    way (the 1x1 shortcut conv of a block can come before the 3x3 one), so node names of the IR's
    layers cannot be predicted; MVAUs of equal shape get the same folding (they have the same
    cycle budget). Applied by :func:`bnn2hw.fpga.finn_steps.step_bnn2hw_set_folding`."""
    return {"about": "bnn2hw folding per MVAU shape; FINN's SetFolding (target_fps) folds every other layer",
            "mvau": [{"layer": L["name"], "MW": L["MW"], "MH": L["MH"], "vectors": L["vectors"],
                      "PE": L["PE"], "SIMD": L["SIMD"], "cycles": L["cycles"]} for L in layers]}


def residual_layer_report(graph: Graph, layers: list[dict], clock_mhz: float, target_fps: float,
                          finn_version: str = DEFAULT_FINN_VERSION) -> dict:
    """Per MVAU the folding and FINN's MVAU cycle model; the other HW layers (padding, window
    generators, thresholds, duplicate/add streams, pool) are folded by FINN's SetFolding for the
    same target, so ``max_cycles`` is the MVAUs' bound (FINN's report has the rest)."""
    rows = [{"layer": L["name"], "finn_node": f"MVAU (MW {L['MW']}, MH {L['MH']}, {L['vectors']} vectors)",
             "source": L["source"], "input": L["in"], "MW": L["MW"], "MH": L["MH"], "vectors": L["vectors"],
             "MACs": L["MW"] * L["MH"] * L["vectors"], "weight_bits": L["MW"] * L["MH"] * (1 if L["binary"] else 8),
             "thresholds": 0, "PE": L["PE"], "SIMD": L["SIMD"], "cycles": L["cycles"],
             "fps_at_clock": clock_mhz * 1e6 / L["cycles"], "meets_target": L["meets_target"]} for L in layers]
    worst = max(L["cycles"] for L in layers)
    return {"finn_version": finn_version, "graph_form": "residual", "other_layers": [], "clock_mhz": clock_mhz,
            "target_fps": target_fps, "cycle_budget": int(clock_mhz * 1e6 / target_fps), "layers": rows,
            "max_cycles": worst, "estimated_fps": clock_mhz * 1e6 / worst,
            "latency_cycles": sum(L["cycles"] for L in layers),
            "note": "MVAU cycles only; FINN's SetFolding folds the other layers for target_fps"}


def finn_available() -> bool:
    try:
        import finn.builder.build_dataflow  # noqa: F401
    except Exception:
        return False
    return True


def docker_command(out_dir: Path, finn_version: str = DEFAULT_FINN_VERSION) -> str:
    """The shell command that runs FINN's build on ``out_dir`` in the bnn2hw-finn image built for
    ``finn_version`` (tags as in hw/README.md), with the path quoted for the shell."""
    image = "bnn2hw-finn" if finn_version == "dev" else f"bnn2hw-finn:{finn_version}"
    return (f"FINN_XILINX_PATH=/opt/Xilinx FINN_XILINX_VERSION=2022.2 "
            f"hw/run_finn_build.sh --docker {image} {shlex.quote(str(out_dir))}")


def logit_affine_doc(graph: Graph) -> dict:
    """``logit_affine.json``: what the FINN accelerator returns and how the host gets logits."""
    aff = graph.layers[-1]
    return {
        "accelerator_output": "global_out of model_finn.onnx (FINN's dataflow partition output): the IR's "
                              "integer logits, one signed integer per class (int32 stream with "
                              "minimize_bit_width off)",
        "logit": "logit[c] = int_logit[c] * scale[c] + bias[c] (float, on the host); "
                 "a negative scale[c] reverses the order of class c's logits",
        "scale": [float(v) for v in aff.arrays["scale"]],
        "bias": [float(v) for v in aff.arrays["bias"]],
    }


def run_finn(out_dir: Path, estimate_only: bool = False) -> dict:
    """Run FINN's build on the exported directory (only where ``finn`` imports); a residual
    graph (``bnn2hw_export.json`` ``graph_form``) runs with bnn2hw's FINN steps."""
    meta = Path(out_dir) / "bnn2hw_export.json"
    residual = meta.exists() and json.loads(meta.read_text()).get("graph_form") == "residual"
    code = (
        "import json, sys\n"
        "from finn.builder.build_dataflow import build_dataflow_cfg\n"
        "from finn.builder.build_dataflow_config import DataflowBuildConfig, estimate_only_dataflow_steps\n"
        "cfg = DataflowBuildConfig.from_json(open('dataflow_build_config.json').read())\n"
        f"if {estimate_only!r}:\n"
        "    cfg.steps = estimate_only_dataflow_steps\n"
        "    cfg.generate_outputs = ['estimate_reports']\n"
        f"if {residual!r}:  # bnn2hw's steps for residual graphs (bnn2hw/fpga/finn_steps.py)\n"
        "    from bnn2hw.fpga.finn_steps import residual_steps\n"
        f"    cfg.steps = residual_steps({estimate_only!r})\n"
        "sys.exit(build_dataflow_cfg('model_finn.onnx', cfg))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=out_dir)
    if res.returncode != 0:
        raise Bnn2hwError(f"FINN build failed (exit {res.returncode}); see {out_dir}/finn_output/build_dataflow.log")
    fo = out_dir / "finn_output"
    return {"output_dir": str(fo), "bitfile": str(fo / "bitfile"), "driver": str(fo / "driver"),
            "reports": str(fo / "report")}


def write_build_dir(out_dir: Path, files: dict, force: bool = False, extra=None) -> None:
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
        if extra is not None:
            extra(tmp)

    write_dir_atomically(Path(out_dir), fill, marker="bnn2hw_export.json", force=force,
                         owned_dirs=("finn_output",))


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)) + "\n"
