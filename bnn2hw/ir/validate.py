# SPDX-License-Identifier: MIT
"""``validate(graph)``: the one consistency check every IR passes before any back end sees it.

Invariant established: each op's inputs exist and have the kind (``u8``, ``bits``, ``acc``,
``fixed``) and shape it consumes; its arrays have the documented dtype, shape and value set
(binary weights exactly ±1, int8 weights in [-127, 127], threshold and direction vectors one per
channel, directions ±1, finite float affines); attributes have the documented types and ranges.
Every ``fixed`` tensor carries its Q format ``frac`` and its width ``bits`` (:class:`TensorInfo`):
``fixed_affine`` and ``periodic`` make 32-bit values, ``requant`` and ``add`` the ``bits`` they
saturate to, ``avgpool`` grows the width by ceil(log2 k^2) (at most 32), and ``add`` requires
both inputs and its ``frac`` attribute to agree.
The ops and fields are those of :mod:`bnn2hw.ir.graph`. A violation raises :class:`Bnn2hwError`
naming the layer, the field and what was expected, so a hand-edited or corrupted ``.bnnir.npz``
never reaches the C generator or the ONNX writers.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..errors import Bnn2hwError
from .graph import INPUT, OPS, Graph, Layer

PERIODIC_FUNCS = ("sine", "cosine", "triangle", "arctan-sine")
PERIODIC_APPROX = ("lut", "taylor", "fixed")


class TensorInfo(NamedTuple):
    """What validate() knows of a tensor: its kind, shape and, for ``fixed``, Q format and width."""

    kind: str  # "u8", "bits", "acc", "fixed", "float"
    shape: tuple
    frac: int | None = None  # fixed only: the integer q stands for q * 2^-frac
    bits: int | None = None  # fixed only: q fits a signed ``bits``-bit integer


def _int(layer: Layer, key: str, lo: int, hi: int | None = None) -> int:
    v = layer.attrs.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise _err(layer, f"attribute {key!r} must be an integer {rng}, got {v!r}")
    return int(v)


def _err(layer: Layer, msg: str) -> Bnn2hwError:
    return Bnn2hwError(f"IR layer {layer.name!r} ({layer.op}, from {layer.source}): {msg}")


def _array(layer: Layer, key: str, ndim: int, integer: bool = True) -> np.ndarray:
    a = layer.arrays.get(key)
    if not isinstance(a, np.ndarray):
        raise _err(layer, f"missing array {key!r}")
    if a.ndim != ndim:
        raise _err(layer, f"array {key!r} must have {ndim} dimensions, has shape {list(a.shape)}")
    if integer and not np.issubdtype(a.dtype, np.integer):
        raise _err(layer, f"array {key!r} must be integer, is {a.dtype}")
    if not integer:
        if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
            raise _err(layer, f"array {key!r} must be numeric, is {a.dtype}")
        if not np.all(np.isfinite(a)):
            raise _err(layer, f"array {key!r} holds NaN or Inf")
    return a


def _weights(layer: Layer, ndim: int) -> np.ndarray:
    w = _array(layer, "weight", ndim)
    if w.dtype != np.int8:
        raise _err(layer, f"weights must be int8, are {w.dtype}")
    kind = layer.attrs.get("weight_kind", "binary")
    if kind == "binary":
        if not np.all((w == 1) | (w == -1)):
            raise _err(layer, "binary weights must all be -1 or +1")
    elif kind == "int8":
        if w.size and int(np.abs(w.astype(np.int16)).max()) > 127:
            raise _err(layer, "int8 weights must lie in [-127, 127]")
    else:
        raise _err(layer, f"weight_kind must be 'binary' or 'int8', got {kind!r}")
    if 0 in w.shape:
        raise _err(layer, f"empty weight tensor {list(w.shape)}")
    return w


def _expect(layer: Layer, kind: str, allowed: tuple[str, ...]) -> None:
    if kind not in allowed:
        raise _err(layer, f"consumes {' or '.join(allowed)}, but its input is {kind}")


def _bounds(layer: Layer, bits: int) -> None:
    """Optional saturation bounds ``lo <= 0 <= hi`` of a requant / add, inside the ``bits`` range."""
    if "lo" not in layer.attrs and "hi" not in layer.attrs:
        return
    lo = _int(layer, "lo", -(1 << (bits - 1)), 0)
    hi = _int(layer, "hi", 0, (1 << (bits - 1)) - 1)
    if lo > hi:
        raise _err(layer, f"lo {lo} > hi {hi}")


def validate(graph: Graph) -> Graph:
    """Check ``graph`` (see the module docstring); returns it unchanged."""
    tensor_infos(graph)
    return graph


def _window(k: int) -> int:
    """Extra bits of a sum of k values: ceil(log2 k)."""
    return max(k - 1, 0).bit_length()


def tensor_infos(graph: Graph) -> dict[str, TensorInfo]:
    """Validate ``graph`` and return the :class:`TensorInfo` of every tensor (the graph input
    under :data:`bnn2hw.ir.graph.INPUT`, then each op's output by name)."""
    shape = tuple(graph.input_shape)
    if len(shape) not in (1, 3) or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
        raise Bnn2hwError(f"IR input shape must be (F,) or (H, W, C) of positive integers, got {list(shape)}")
    if graph.input_kind not in ("u8", "bits"):
        raise Bnn2hwError(f"IR input kind must be 'u8' or 'bits', got {graph.input_kind!r}")
    if graph.input_kind == "bits" and len(shape) != 1:
        raise Bnn2hwError("a binary-input IR must take a flat vector")
    scale = graph.input_raw_scale
    if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise Bnn2hwError(f"IR input_raw_scale must be a positive number, got {scale!r}")
    if not graph.layers:
        raise Bnn2hwError("IR has no layers")
    kind = graph.input_kind
    seen: dict[str, TensorInfo] = {INPUT: TensorInfo(kind, shape)}
    last_dense = None
    for i, layer in enumerate(graph.layers):
        if layer.op not in OPS:
            raise _err(layer, f"unknown op {layer.op!r} (layer {i}); valid: {', '.join(OPS)}")
        if not isinstance(layer.attrs, dict):
            raise _err(layer, f"attrs must be a mapping, got {type(layer.attrs).__name__}")
        if not isinstance(layer.arrays, dict):
            raise _err(layer, f"arrays must be a mapping, got {type(layer.arrays).__name__}")
        if not isinstance(layer.name, str) or not layer.name or layer.name in seen:
            raise _err(layer, "layer names must be unique, non-empty strings")
        if kind == "float":
            raise _err(layer, "nothing may follow the float affine")
        names = graph.inputs_of(i)
        for n in names:
            if n not in seen:
                raise _err(layer, f"reads {n!r}, which is not the graph input or an earlier op's tensor")
        if len(names) != (2 if layer.op == "add" else 1):
            raise _err(layer, f"reads {len(names)} tensors ({names}); {layer.op} takes "
                              f"{2 if layer.op == 'add' else 1}")
        kind, shape, frac, bits = seen[names[0]]
        op = layer.op
        if op == "dense":
            _expect(layer, kind, ("u8", "bits", "fixed"))
            w = _weights(layer, 2)
            fan_in = int(np.prod(shape))
            if w.shape[1] != fan_in:
                raise _err(layer, f"weight has {w.shape[1]} inputs, the incoming tensor {list(shape)} has {fan_in}")
            if layer.attrs.get("in") != kind:
                raise _err(layer, f"attribute 'in' is {layer.attrs.get('in')!r}, the input is {kind}")
            shape, kind, frac, bits, last_dense = (w.shape[0],), "acc", None, None, layer
        elif op == "conv2d":
            _expect(layer, kind, ("u8", "bits"))
            if len(shape) != 3:
                raise _err(layer, f"needs an (H, W, C) input, gets {list(shape)}")
            w = _weights(layer, 4)
            if layer.attrs.get("weight_kind", "binary") != "binary" and kind != "u8":
                raise _err(layer, "int8 convolution weights need a u8 input (the first layer); binary "
                                  f"weights otherwise, the input is {kind}")
            if "pad_u8" in layer.arrays:
                pu = _array(layer, "pad_u8", 1)
                if kind != "u8" or len(pu) != shape[2] or pu.min() < 0 or pu.max() > 255:
                    raise _err(layer, f"pad_u8 needs a u8 input and one value in 0..255 per input channel "
                                      f"({shape[2]}), has {list(pu)[:4]} on a {kind} input")
            o, kh, kw, c = w.shape
            if c != shape[2]:
                raise _err(layer, f"weight has {c} input channels, the input has {shape[2]}")
            s, p = _int(layer, "stride", 1), _int(layer, "pad", 0)
            pv = layer.attrs.get("pad_value", 0)
            if isinstance(pv, bool) or pv not in (0, -1):
                raise _err(layer, f"attribute 'pad_value' must be 0 or -1, got {pv!r}")
            if pv == -1 and kind != "bits":
                raise _err(layer, f"pad_value -1 (a padded tap is the activation -1) needs a bits input, "
                                  f"the input is {kind}")
            if layer.attrs.get("in") != kind:
                raise _err(layer, f"attribute 'in' is {layer.attrs.get('in')!r}, the input is {kind}")
            oh, ow = (shape[0] + 2 * p - kh) // s + 1, (shape[1] + 2 * p - kw) // s + 1
            if oh < 1 or ow < 1 or p >= max(kh, kw):
                raise _err(layer, f"a {kh}x{kw} kernel (pad {p}) does not fit the {shape[0]}x{shape[1]} input")
            shape, kind = (oh, ow, o), "acc"
        elif op == "threshold":
            _expect(layer, kind, ("acc", "fixed"))
            thr = _array(layer, "thr", 1)
            d = _array(layer, "direction", 1)
            if len(thr) != shape[-1] or len(d) != shape[-1]:
                raise _err(layer, f"needs {shape[-1]} thresholds and directions (one per channel), "
                                  f"has {len(thr)} and {len(d)}")
            if not np.all((d == 1) | (d == -1)):
                raise _err(layer, "directions must be +1 or -1")
            kind, frac, bits = "bits", None, None
        elif op == "maxpool":
            _expect(layer, kind, ("bits", "fixed"))
            if len(shape) != 3:
                raise _err(layer, f"needs an (H, W, C) input, gets {list(shape)}")
            k, s = _int(layer, "kernel", 1), _int(layer, "stride", 1)
            if k > shape[0] or k > shape[1]:
                raise _err(layer, f"kernel {k} is larger than the {shape[0]}x{shape[1]} input")
            shape = ((shape[0] - k) // s + 1, (shape[1] - k) // s + 1, shape[2])
        elif op == "avgpool":
            _expect(layer, kind, ("fixed",))
            if len(shape) != 3:
                raise _err(layer, f"needs an (H, W, C) input, gets {list(shape)}")
            k, s = _int(layer, "kernel", 1), _int(layer, "stride", 1)
            if k > shape[0] or k > shape[1]:
                raise _err(layer, f"kernel {k} is larger than the {shape[0]}x{shape[1]} input")
            bits = bits + _window(k * k)
            if bits > 32:
                raise _err(layer, f"the sum of {k}x{k} values of {bits - _window(k * k)} bits needs {bits} bits "
                                  "(more than 32): requantize the stream before pooling")
            shape = ((shape[0] - k) // s + 1, (shape[1] - k) // s + 1, shape[2])
        elif op == "flatten":
            shape = (int(np.prod(shape)),)
        elif op == "affine":
            _expect(layer, kind, ("acc",))
            for key in ("scale", "bias"):
                a = _array(layer, key, 1, integer=False)
                if len(a) != shape[-1]:
                    raise _err(layer, f"{key} has {len(a)} entries, the logits {shape[-1]}")
            kind = "float"
        elif op == "fixed_affine":
            _expect(layer, kind, ("acc",))
            for key in ("mult", "bias"):
                if len(_array(layer, key, 1)) != shape[-1]:
                    raise _err(layer, f"{key} must have one entry per channel ({shape[-1]})")
            _int(layer, "shift", 0, 62)
            kind, frac, bits = "fixed", _int(layer, "frac", 0, 31), 32
        elif op == "requant":
            _expect(layer, kind, ("acc", "fixed"))
            mult, bias = _array(layer, "mult", 1), _array(layer, "bias", 1)
            for key, a in (("mult", mult), ("bias", bias)):
                if len(a) != shape[-1]:
                    raise _err(layer, f"{key} must have one entry per channel ({shape[-1]}), has {len(a)}")
            if mult.size and int(np.abs(mult.astype(np.int64)).max()) >= 2 ** 31:
                raise _err(layer, "mult must lie in (-2^31, 2^31) (x * mult must fit int64)")
            if bias.size and int(np.abs(bias.astype(np.int64)).max()) > 2 ** 62:
                raise _err(layer, "bias must lie in [-2^62, 2^62] (x * mult + bias must fit int64)")
            _int(layer, "shift", 0, 62)
            kind, frac, bits = "fixed", _int(layer, "frac", 0, 31), _int(layer, "bits", 2, 16)
            _bounds(layer, bits)
        elif op == "periodic":
            _expect(layer, kind, ("fixed",))
            at = layer.attrs
            if at.get("func") not in PERIODIC_FUNCS:
                raise _err(layer, f"func must be one of {', '.join(PERIODIC_FUNCS)}, got {at.get('func')!r}")
            if at.get("approx") not in PERIODIC_APPROX:
                raise _err(layer, f"approx must be one of {', '.join(PERIODIC_APPROX)}, got {at.get('approx')!r}")
            w0 = at.get("w0")
            if not isinstance(w0, (int, float)) or not math.isfinite(w0) or w0 <= 0:
                raise _err(layer, f"w0 must be a positive number, got {w0!r}")
            _int(layer, "in_frac", 0, 31)
            frac, bits = _int(layer, "out_frac", 0, 31), 32
        elif op == "add":
            for n in names:
                if seen[n].kind != "fixed" or seen[n].shape != shape:
                    raise _err(layer, f"input {n!r} is {seen[n].kind} {list(seen[n].shape)}, "
                                      f"expected fixed {list(shape)}")
            fa = _int(layer, "frac", 0, 31)
            fracs = [seen[n].frac for n in names]
            if fracs != [fa, fa]:
                raise _err(layer, f"inputs {names} are Q{fracs[0]} and Q{fracs[1]}, the add is Q{fa}: "
                                  "both inputs must have the add's frac")
            bits = 32 if "bits" not in layer.attrs else _int(layer, "bits", 2, 32)
            _bounds(layer, bits)
            kind, frac = "fixed", fa
        elif op == "pad_channels":
            _expect(layer, kind, ("fixed",))
            if len(shape) != 3:
                raise _err(layer, f"needs an (H, W, C) input, gets {list(shape)}")
            shape = shape[:2] + (shape[2] + _int(layer, "before", 0) + _int(layer, "after", 0),)
        seen[layer.name] = TensorInfo(kind, shape, frac, bits)
    if last_dense is None or kind not in ("acc", "float"):
        raise Bnn2hwError("IR must end with a dense layer (the integer logits), optionally followed by an affine")
    return seen
