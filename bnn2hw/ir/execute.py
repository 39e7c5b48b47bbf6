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


def run(graph: Graph, x_u8: np.ndarray) -> Trace:
    """Execute on uint8 input in PyTorch layout; returns the full trace. Each op reads the
    tensors named by :meth:`Graph.inputs_of` (any DAG in topological order)."""
    tensors = {INPUT: to_ir_input(graph, x_u8)}
    int_logits = None
    logits = None
    for i, layer in enumerate(graph.layers):
        a, at = layer.arrays, layer.attrs
        args = [tensors[n] for n in graph.inputs_of(i)]
        h = args[0]
        if layer.op == "dense":
            h = ops.dense(h.reshape(h.shape[0], -1), a["weight"])
            int_logits = h
        elif layer.op == "conv2d":
            h = ops.conv2d(h, a["weight"], at["stride"], at["pad"])
        elif layer.op == "threshold":
            h = ops.threshold(h, a["thr"], a["direction"])
        elif layer.op == "maxpool":
            h = ops.maxpool(h, at["kernel"], at["stride"])
        elif layer.op == "flatten":
            h = ops.flatten(h)
        elif layer.op == "fixed_affine":
            h = ops.fixed_affine(h, a["mult"], a["bias"], at["shift"])
        elif layer.op == "periodic":
            h = ops.periodic(h, at)
        elif layer.op == "add":
            h = ops.add(args[0], args[1])
        elif layer.op == "affine":
            logits = ops.affine(h, a["scale"], a["bias"])
            h = logits
        else:
            raise Bnn2hwError(f"IR layer {layer.name}: unknown op {layer.op!r}")
        tensors[layer.name] = h
    if logits is None:
        logits = int_logits.astype(np.float64)
    del tensors[INPUT]
    return Trace(tensors, int_logits, logits)
