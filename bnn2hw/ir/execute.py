# SPDX-License-Identifier: MIT
"""Integer reference executor of the IR (numpy, int64): every op is a call into
:mod:`bnn2hw.ir.ops`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import Bnn2hwError
from . import ops
from .graph import INPUT, Graph


@dataclass
class Trace:
    """Every intermediate tensor by layer name, the integer logits and the float logits."""

    tensors: dict
    int_logits: np.ndarray
    logits: np.ndarray


def to_ir_input(graph: Graph, x: np.ndarray) -> np.ndarray:
    """uint8 data in the PyTorch layout (N, C, H, W) or (N, F) -> the IR's channels-last input."""
    x = np.asarray(x)
    if graph.input_kind == "bits":
        if not np.all((x == 1) | (x == -1)):
            raise Bnn2hwError("this IR takes a binary input: values must be -1 or +1")
        return x.reshape((x.shape[0],) + tuple(graph.input_shape)).astype(np.int64)
    if x.dtype != np.uint8:
        raise Bnn2hwError(f"IR input must be uint8, got {x.dtype}")
    if len(graph.input_shape) == 3 and x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)
    x = x.reshape((x.shape[0],) + tuple(graph.input_shape))
    return x.astype(np.int64)


def _dense(h, layer):
    return ops.dense(h.reshape(h.shape[0], -1), layer.arrays["weight"])


def _threshold(h, layer):
    return ops.threshold(h, layer.arrays["thr"], layer.arrays["direction"])


def _requant(h, layer):
    a, at = layer.arrays, layer.attrs
    return ops.requant(h, a["mult"], a["bias"], at["shift"], at["bits"], at.get("lo"), at.get("hi"))


# IR op -> reference call (args: the op's input tensors in order, then the layer). The executor
# only looks ops up here, like the C side's bnn2hw.mcu.emitters.EMITTERS.
REFERENCES = {
    "dense": lambda args, l: _dense(args[0], l),
    "conv2d": lambda args, l: ops.conv2d(args[0], l.arrays["weight"], l.attrs["stride"], l.attrs["pad"],
                                         l.arrays.get("pad_u8", l.attrs.get("pad_value", 0))),
    "threshold": lambda args, l: _threshold(args[0], l),
    "maxpool": lambda args, l: ops.maxpool(args[0], l.attrs["kernel"], l.attrs["stride"]),
    "avgpool": lambda args, l: ops.avgpool(args[0], l.attrs["kernel"], l.attrs["stride"]),
    "flatten": lambda args, l: ops.flatten(args[0]),
    "fixed_affine": lambda args, l: ops.fixed_affine(args[0], l.arrays["mult"], l.arrays["bias"], l.attrs["shift"]),
    "requant": lambda args, l: _requant(args[0], l),
    "periodic": lambda args, l: ops.periodic(args[0], l.attrs),
    "add": lambda args, l: ops.add(args[0], args[1], l.attrs.get("bits", 32), l.attrs.get("lo"), l.attrs.get("hi")),
    "pad_channels": lambda args, l: ops.pad_channels(args[0], l.attrs["before"], l.attrs["after"]),
    "affine": lambda args, l: ops.affine(args[0], l.arrays["scale"], l.arrays["bias"]),
}


def run(graph: Graph, x_u8: np.ndarray) -> Trace:
    """Execute on uint8 input in PyTorch layout; returns the full trace. Each op reads the
    tensors named by :meth:`Graph.inputs_of` (any DAG in topological order); the integer logits
    are the last dense op's output, the float logits the affine's (or the integer logits)."""
    tensors = {INPUT: to_ir_input(graph, x_u8)}
    int_logits = None
    logits = None
    for i, layer in enumerate(graph.layers):
        if layer.op not in REFERENCES:
            raise Bnn2hwError(f"IR layer {layer.name}: unknown op {layer.op!r}")
        h = REFERENCES[layer.op]([tensors[n] for n in graph.inputs_of(i)], layer)
        if layer.op == "dense":
            int_logits = h
        elif layer.op == "affine":
            logits = h
        tensors[layer.name] = h
    if logits is None:
        logits = int_logits.astype(np.float64)
    del tensors[INPUT]
    return Trace(tensors, int_logits, logits)
