# SPDX-License-Identifier: MIT
"""The bnn2hw integer IR: a graph of integer ops, the single source of truth for the FPGA
(ONNX/FINN) and MCU (C) back ends.

Graph structure. Ops are stored in a topological order; each op produces one tensor named after
the op and reads the tensors named in ``Layer.inputs`` (``"input"`` is the graph input). An op
with no explicit inputs reads the previous op's tensor (the first op reads ``"input"``), so a
chain (MLP, CNN) needs no names at all; ``add`` reads two. A tensor may feed several ops. The
executor, :func:`bnn2hw.ir.validate.validate` and the C generator (its arena is planned by
tensor liveness) handle any such DAG; the ONNX back end says by name which ops it cannot place
(:meth:`Graph.branches`).

Ops and their fields (arrays are numpy; ``in`` says what the op consumes):

``dense``      ``weight`` (O, I) int8, ±1 if ``weight_kind == "binary"`` else int8 in
               [-127, 127]; ``in`` is ``u8`` or ``bits``; produces ``acc``
``conv2d``     ``weight`` (O, kh, kw, C) ±1 int8 (channels-last), ``stride``, ``pad`` (zero
               padding: a padded tap contributes 0); ``in`` ``u8`` or ``bits``; produces ``acc``
``threshold``  ``thr`` (C,) int64, ``direction`` (C,) int8 ±1: bit = acc >= thr (dir +1) or
               acc <= thr (dir -1), i.e. ``sign`` after scale, BatchNorm and bias, with the tie
               rule 0 -> +1; produces ``bits``
``maxpool``    ``kernel``, ``stride`` on ``bits`` (max of ±1 = OR)
``flatten``    (H, W, C) -> H*W*C in (y, x, c) order
``affine``     ``scale`` (O,), ``bias`` (O,) float64: float logits = acc * scale + bias

Fixed-point value path (M-BiPer residual models, eq. 7; C back end only):

``fixed_affine`` ``mult``, ``bias`` (C,) int64, ``shift``, ``frac``: a Q(frac) int32 value
               ``(acc * mult + bias + 2^(shift-1)) >> shift`` (BatchNorm of the accumulator)
``periodic``   ``func`` (sine | cosine | triangle | arctan-sine), ``w0``, ``in_frac``,
               ``out_frac``, ``approx`` (lut for every func; taylor | fixed for sine),
               ``table_bits``, ``calib_range``: y = func(w0 x) in fixed point, exactly the
               integer arithmetic of ``firmware/src/bnn_periodic.c``
``add``        ``inputs`` [name, name], ``frac``, optional ``bits`` (2..32, default 32): the sum of
               two ``fixed`` tensors of the same shape and Q format (both inputs' ``frac`` equal
               the add's), saturated to a signed
               ``bits``-bit integer: ``clip(a + b, -2^(bits-1), 2^(bits-1) - 1)`` (a residual
               connection)

Residual-network ops (issue 9; the quantized residual stream is a ``fixed`` tensor of ``bits``
bits whose integer q stands for q * 2^-frac):

``conv2d``     also: ``pad_value`` 0 (default) or -1 for a ``bits`` input. 0: a padded tap
               contributes 0 to the accumulator (zero padding of the real activation, as the
               official BiPer code and Larq do); -1: a padded position holds the activation -1
               (FINN's FMPadding of a BINARY stream). 1x1 kernels and any stride are allowed.
``requant``    ``mult``, ``bias`` (C,) int64, ``shift`` (0..62), ``bits`` (2..16), ``frac``
               (0..31): reads ``acc`` or ``fixed``; ``|mult| < 2^31``, ``|bias| <= 2^62`` (so the
               int64 arithmetic below is exact); produces the ``fixed`` stream value
               ``clip((x * mult + bias) >> shift, -2^(bits-1), 2^(bits-1) - 1)`` where ``>>`` is
               an arithmetic shift (floor). Rounding rule: floor after adding ``bias``; the
               folder puts round-half-up into ``bias`` (+2^(shift-1)) and proves the result
               equal to PyTorch's quantizer on every reachable input value.
``avgpool``    ``kernel``, ``stride`` on a ``fixed`` (H, W, C) tensor: the *sum* of each
               kernel x kernel window, exact, no division (global average pooling: kernel = H
               = W, output (1, 1, C)). The 1/kernel^2 is folded into the consumer (threshold,
               requant or the dense layer's affine), so pooling never rounds. The sum of a
               ``bits``-bit stream is ``bits + ceil(log2 kernel^2)`` bits wide, at most 32.
``dense``      also reads a ``fixed`` tensor (``in == "fixed"``, int8 or binary weights): the
               accumulator is sum(w * q) over the stream integers.

Official BiPer networks (issue 10 section 3, :mod:`bnn2hw.export.fold_official`):

``requant``, ``add``  optional ``lo``, ``hi`` (ints, ``-2^(bits-1) <= lo <= 0 <= hi <=
               2^(bits-1) - 1``): the saturation bounds instead of the ``bits`` range;
               ``lo = -2^frac``, ``hi = 2^frac`` is ``hardtanh`` on the Q(frac) stream.
``pad_channels`` ``before``, ``after`` (ints >= 0) on a ``fixed`` (H, W, C) tensor: (H, W,
               before + C + after) with zero channels around the input (option-A shortcut).
``conv2d``     also ``weight_kind == "int8"`` on a ``u8`` input (the full-precision first conv
               quantized per output channel), with the optional array ``pad_u8`` (C,) int64 in
               0..255: each padded tap holds its channel's value (the rounded mean pixel, i.e.
               zero padding after the input Normalize) instead of contributing 0.
``maxpool``    also on a ``fixed`` tensor: the largest integer of each window.

A ``threshold`` with thr 0 and direction +1 on a fixed-point tensor is ``sign`` (0 -> +1).

The graph's input is uint8 (``input_kind == "u8"``), channels-last ``(H, W, C)`` for images or ``(F,)`` for vectors, with
``input_raw_scale``: raw data ``r`` becomes ``clip(round(r * input_raw_scale), 0, 255)``
(``255/16`` for digits' 0..16 pixels; 1 when the data is already 8-bit).
A graph may instead take an already-binary vector (``input_kind == "bits"``, shape ``(F,)``):
the executor takes ±1 values, the C entry point takes the packed words as little-endian bytes.
The integer logits are the output of the last ``dense`` op; ``affine`` follows it.

Stored as one ``.bnnir.npz``: ``graph.json`` (everything but the arrays, readable with any zip
tool) plus one array per ``<layer index>.<field>``. Loading never unpickles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import Bnn2hwError

IR_VERSION = 1
INPUT = "input"
"""Name of the graph's input tensor."""
OPS = ("dense", "conv2d", "threshold", "maxpool", "flatten", "affine", "fixed_affine", "periodic", "add",
       "requant", "avgpool", "pad_channels")


@dataclass
class Layer:
    op: str
    name: str  # IR name, e.g. "fc0"
    source: str  # the PyTorch module it came from, e.g. "features.1"
    attrs: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)  # tensor names read; empty: the previous op's

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.attrs.items()]
        parts += [f"{k}{list(v.shape)}:{v.dtype}" for k, v in sorted(self.arrays.items())]
        reads = f"({', '.join(self.inputs)}) " if self.inputs else ""
        return f"{self.name:<10} {self.op:<10} {reads}<- {self.source:<14} " + " ".join(parts)


@dataclass
class Graph:
    input_shape: tuple[int, ...]  # (H, W, C) or (F,)
    layers: list[Layer]
    input_raw_scale: float = 1.0
    meta: dict = field(default_factory=dict)
    input_kind: str = "u8"  # "u8" pixels, or "bits": an already-binary ±1 input vector

    def inputs_of(self, index: int) -> list[str]:
        """The tensor names op ``index`` reads (explicit, an ``add``'s two, or the previous op's)."""
        layer = self.layers[index]
        if layer.inputs:
            return list(layer.inputs)
        if layer.op == "add" and isinstance(layer.attrs, dict) and "inputs" in layer.attrs:
            return list(layer.attrs["inputs"])
        return [self.layers[index - 1].name if index else INPUT]

    def branches(self) -> list[str]:
        """Names of the ops that do not simply read the previous op's tensor (a residual ``add``,
        or an op reading an earlier tensor): what a chain-only back end cannot place."""
        out = []
        for i, layer in enumerate(self.layers):
            prev = self.layers[i - 1].name if i else INPUT
            if self.inputs_of(i) != [prev]:
                out.append(layer.name)
        return out

    @property
    def num_classes(self) -> int:
        last = [l for l in self.layers if l.op == "dense"][-1]
        return int(last.arrays["weight"].shape[0])

    # The Python API (bnn2hw.api); imported lazily so the IR stays free of back-end imports.
    def predict(self, x) -> np.ndarray:
        """Integer logits ``(N, classes)`` of uint8 inputs (PyTorch layout), numpy reference."""
        from ..api import graph_predict

        return graph_predict(self, x)

    def scores(self, x) -> np.ndarray:
        """Float logits: the integer logits through the last layer's affine."""
        from ..api import graph_scores

        return graph_scores(self, x)

    def summary(self, core: str = "cortex-m4", clock_mhz: float = 100.0, target_fps: float = 1e6) -> str:
        """Per-layer cost table (:mod:`bnn2hw.ir.summary`)."""
        from ..api import graph_summary

        return graph_summary(self, core, clock_mhz, target_fps)

    def emit_c(self, target: str = "cortex-m4", out_dir="fw", force: bool = False, name: str = "model"):
        """Write the C firmware folder (files and symbols prefixed by ``name``, see
        :mod:`bnn2hw.mcu.packaging`); returns a :class:`bnn2hw.api.Firmware`."""
        from ..api import graph_emit_c

        return graph_emit_c(self, target, out_dir, force, name)

    def export_fpga(self, target: str = "pynq-z2", out_dir="build", x=None, clock_mhz: float = 100.0,
                    target_fps: float = 1e6, force: bool = False) -> dict:
        """Write the FINN build folder (verified on ``x`` when given); returns its summary."""
        from ..api import graph_export_fpga

        return graph_export_fpga(self, target, out_dir, x, clock_mhz, target_fps, force)

    def describe(self) -> str:
        lines = [f"bnn2hw IR v{IR_VERSION}: input {self.input_kind} {list(self.input_shape)} "
                 f"(raw * {self.input_raw_scale:g}), {len(self.layers)} ops"]
        lines += ["  " + l.describe() for l in self.layers]
        for k in ("model_hash", "surrogate", "w0", "source"):
            if k in self.meta:
                lines.append(f"  {k}: {self.meta[k]}")
        return "\n".join(lines)


def save_ir(graph: Graph, path: str | Path) -> None:
    header = {"ir_version": IR_VERSION, "input_shape": list(graph.input_shape),
              "input_kind": graph.input_kind,
              "input_raw_scale": graph.input_raw_scale, "meta": graph.meta,
              "layers": [{"op": l.op, "name": l.name, "source": l.source, "attrs": l.attrs,
                          "arrays": sorted(l.arrays), **({"inputs": list(l.inputs)} if l.inputs else {})}
                         for l in graph.layers]}
    arrays = {f"{i}.{k}": v for i, l in enumerate(graph.layers) for k, v in l.arrays.items()}
    arrays["graph.json"] = np.frombuffer(json.dumps(header, default=str).encode(), dtype=np.uint8)
    if hasattr(path, "write"):
        np.savez(path, **arrays)
        return
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_ir(path: str | Path) -> Graph:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            header = json.loads(bytes(f["graph.json"]).decode())
            layers = []
            for i, spec in enumerate(header["layers"]):
                if spec["op"] not in OPS:
                    raise Bnn2hwError(f"{path}: layer {spec['name']} has unknown op {spec['op']!r}")
                arrays = {k: f[f"{i}.{k}"] for k in spec["arrays"]}
                layers.append(Layer(spec["op"], spec["name"], spec["source"], spec["attrs"], arrays,
                                    list(spec.get("inputs", []))))
    except Bnn2hwError:
        raise
    except Exception as e:
        raise Bnn2hwError(f"{path}: not a bnn2hw IR file ({e})") from None
    if header.get("ir_version") != IR_VERSION:
        raise Bnn2hwError(f"{path}: IR version {header.get('ir_version')} unsupported")
    from .validate import validate

    graph = Graph(tuple(header["input_shape"]), layers, header["input_raw_scale"], header["meta"],
                  header.get("input_kind", "u8"))
    try:
        return validate(graph)
    except Bnn2hwError as e:
        raise Bnn2hwError(f"{path}: {e}") from None
