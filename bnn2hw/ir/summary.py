# SPDX-License-Identifier: MIT
"""Per-layer cost of an IR graph: the table of ``bnn2hw summary`` and ``Graph.summary()``
(in the spirit of Larq's ``summary``).

Per op: output shape, binary MACs (±1 x ±1), 8-bit MACs (uint8 pixels or int8 weights), weight
bits, thresholds, flash bytes (the C generator's lower bound: weight bits / 8 + 4 B per threshold
and per fixed-point constant), activation RAM (bytes of the op's input + output buffers in the C
layout: uint8 pixels, packed 32-bit words for bits, int32 for accumulators, int8/int16/int32 for a
fixed-point stream of <= 8 / <= 16 / <= 32 bits; an op reading two tensors counts both), the
estimated instructions per inference on a Cortex-M core (:mod:`bnn2hw.mcu.cost_model`) and FINN's
cycles for the op's MVAU under the export's folding (:func:`bnn2hw.fpga.build.choose_folding`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .graph import Graph


@dataclass
class LayerCost:
    name: str
    op: str
    source: str
    out_shape: tuple
    binary_macs: int = 0
    int8_macs: int = 0
    weight_bits: int = 0
    thresholds: int = 0
    flash_bytes: int = 0
    ram_bytes: int = 0
    instructions: int = 0
    finn_cycles: int | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out_shape"] = list(self.out_shape)
        return d


def stream_bytes(bits: int | None) -> int:
    """Bytes per element of a fixed-point tensor in C: int8_t up to 8 bits, int16_t up to 16,
    else int32_t (the C generator's storage rule)."""
    return 4 if bits is None or bits > 16 else (2 if bits > 8 else 1)


def _buffer_bytes(shape: tuple, kind: str, bits: int | None = None) -> int:
    """Bytes of a tensor in the C layout (see the module docstring)."""
    n = int(np.prod(shape))
    if kind == "u8":
        return n
    if kind == "bits":
        positions = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        return positions * ((shape[-1] + 31) // 32) * 4
    if kind == "fixed":
        return stream_bytes(bits) * n
    return 4 * n  # acc: int32; float logits: float32


def layer_costs(graph: Graph, core: str = "cortex-m4", clock_mhz: float = 100.0,
                target_fps: float = 1e6) -> list[LayerCost]:
    """One :class:`LayerCost` per IR op, in graph order (shapes and kinds from
    :func:`bnn2hw.ir.validate.tensor_infos`, so a residual DAG is costed by what each op reads)."""
    from ..mcu.cost_model import estimate_layer_instructions
    from .validate import tensor_infos

    finn = _finn_cycles(graph, clock_mhz, target_fps)
    infos = tensor_infos(graph)
    rows = []
    for i, layer in enumerate(graph.layers):
        a, at = layer.arrays, layer.attrs
        reads = [infos[n] for n in graph.inputs_of(i)]
        in_shape = reads[0].shape
        out = infos[layer.name]
        row = LayerCost(layer.name, layer.op, layer.source, out.shape)
        if layer.op in ("dense", "conv2d"):
            w = a["weight"]
            fan_in = int(np.prod(w.shape[1:]))
            positions = 1 if layer.op == "dense" else out.shape[0] * out.shape[1]
            macs = positions * w.shape[0] * fan_in
            binary = at.get("weight_kind") == "binary" and at["in"] == "bits"
            if binary:
                row.binary_macs = macs
            else:
                row.int8_macs = macs
            row.weight_bits = int(w.size) * (1 if at.get("weight_kind") == "binary" else 8)
            row.finn_cycles = finn.get(layer.name)
        elif layer.op == "threshold":
            row.thresholds = int(len(a["thr"]))
        elif layer.op == "maxpool":
            row.finn_cycles = finn.get(layer.name)
        elif layer.op == "fixed_affine":
            row.weight_bits = 64 * len(a["mult"])
        elif layer.op == "requant":
            row.weight_bits = 96 * len(a["mult"])  # int32 multiplier + int64 bias per channel
        row.flash_bytes = row.weight_bits // 8 + 4 * row.thresholds
        row.ram_bytes = sum(_buffer_bytes(r.shape, r.kind, r.bits) for r in reads) + \
            _buffer_bytes(out.shape, out.kind, out.bits)
        row.instructions = estimate_layer_instructions(layer, in_shape, out.shape, core)
        rows.append(row)
    return rows


def _finn_cycles(graph: Graph, clock_mhz: float, target_fps: float) -> dict:
    """FINN MVAU (and max-pool) cycles per layer name under the export's folding; empty for
    graphs FINN cannot take (fixed-point models)."""
    if graph.meta.get("fixed_point") or any(l.op in ("fixed_affine", "periodic", "add", "requant", "avgpool")
                                             for l in graph.layers):
        return {}
    from ..fpga.build import choose_folding, matmul_layers, pool_cycles

    out = {}
    for L in choose_folding(matmul_layers(graph), clock_mhz, target_fps):
        out[L["name"]] = int(L["cycles"])
        if "pool_after" in L:
            out[L["pool_after"]["name"]] = pool_cycles(L["pool_after"])
    return out


def summary_table(graph: Graph, core: str = "cortex-m4", clock_mhz: float = 100.0,
                  target_fps: float = 1e6, scratch_bytes: int | None = None) -> str:
    """The text table: one row per op, totals at the bottom. ``scratch_bytes`` (the C arena,
    from the generator) is shown as the peak RAM when given."""
    rows = layer_costs(graph, core, clock_mhz, target_fps)
    head = ["layer", "op", "source", "output", "bin MACs", "8-bit MACs", "weight bits", "thresholds",
            "flash B", "act RAM B", f"instr ({core})", "FINN cycles"]
    body = [[r.name, r.op, r.source, "x".join(map(str, r.out_shape)), f"{r.binary_macs:,}", f"{r.int8_macs:,}",
             f"{r.weight_bits:,}", f"{r.thresholds:,}", f"{r.flash_bytes:,}", f"{r.ram_bytes:,}",
             f"{r.instructions:,}", "" if r.finn_cycles is None else f"{r.finn_cycles:,}"] for r in rows]
    finn = [r.finn_cycles for r in rows if r.finn_cycles is not None]
    peak = scratch_bytes if scratch_bytes is not None else max(r.ram_bytes for r in rows)
    total = ["total", "", "", "", f"{sum(r.binary_macs for r in rows):,}", f"{sum(r.int8_macs for r in rows):,}",
             f"{sum(r.weight_bits for r in rows):,}", f"{sum(r.thresholds for r in rows):,}",
             f"{sum(r.flash_bytes for r in rows):,}", f"peak {peak:,}",
             f"{sum(r.instructions for r in rows):,}",
             f"max {max(finn):,}" if finn else ""]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, total)]

    def line(cells):
        return "  ".join(str(c).rjust(w) if i >= 4 else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    sep = "  ".join("-" * w for w in widths)
    kind = f"input {graph.input_kind} {list(graph.input_shape)}"
    fps = f"; FINN folding for {target_fps:g} frames/s at {clock_mhz:g} MHz" if finn else ""
    return "\n".join([f"bnn2hw model summary ({kind}{fps})", line(head), sep, *map(line, body), sep,
                      line(total),
                      f"flash = weight bits / 8 + 4 B per threshold (lower bound); instructions: "
                      f"estimate for {core} (bnn2hw.mcu.cost_model)"])
