# SPDX-License-Identifier: MIT
"""QONNX front end: a binary network exported by Brevitas' ``export_qonnx`` -> the integer IR.

Pipeline (:func:`import_qonnx`): read the file, tag every node with its original output tensor
(for the layer-by-layer comparison with qonnx's execution of the *original* file), then qonnx's
own passes (:data:`QONNX_PASSES`: ``cleanup_model``, ``GemmToMatMul``, ``FoldTransposeIntoQuantInit``,
``InferShapes``, ``InferDataTypes``, ``SortGraph``), then one walk over the nodes in topological
order that maps each onto IR ops (:class:`_Walker`).

What is accepted (each refusal names the node, after qonnx's cleanup naming, and its op type):

* the graph input feeds a ``Quant`` of at most 8 bits with a scalar scale and zero point: the
  IR input is the unsigned integer ``u = q - qmin`` (0..255) and the real input value is
  ``(u - off) * s`` with ``off = zp - qmin`` (0 for Brevitas' ``Uint8ActPerTensorFloat``, 128
  for a signed 8-bit quantizer);
* ``MatMul``/``Gemm``/``Conv`` whose weight is a ``BipolarQuant``/1-bit ``Quant`` of a constant
  (per-tensor or per-output-channel scale), or an 8-bit narrow-range ``Quant`` (dense only: the
  IR has no int8 convolution);
* between a layer and its 1-bit activation quantizer (``BipolarQuant``, or a 1-bit ``Quant``:
  any two-level quantizer), any chain of per-channel ``Add``/``Sub``/``Mul``/``Div`` by
  constants, ``BatchNormalization`` and ``Relu``; optionally one ``MaxPool`` right before the
  quantizer (max and a non-decreasing quantizer commute);
* ``MaxPool`` on binary tensors, ``Flatten``/``Reshape`` to (N, F), ``Identity``/``Dropout``;
* the graph ends with a ``MatMul``/``Gemm`` (binary or 8-bit weights) and an affine per-class
  chain: the integer logits plus a float affine;
* a residual stream (issue 9's IR ops), as stock Brevitas writes a residual CNN: a *stream
  quantizer*, a ``Quant`` with a per-tensor constant scale, zero point 0, 2..16 bits, signed, not
  narrow (e.g. ``Int8ActPerTensorFixedPoint`` with ``scaling_impl_type = CONST``; one
  ``QuantIdentity`` instance shared by every use, so both inputs of an ``Add`` carry its scale):

  - layer -> affine chain (BatchNorm, per-channel Add/Sub/Mul/Div) -> stream quantizer is a
    ``requant`` of the accumulator (:func:`derive_requant`: mult/bias/shift fitted to, and proved
    equal to, qonnx's execution on every reachable accumulator value of every channel; refused,
    naming the quantizer, when no integer form exists, e.g. reachable exact .5 values under
    Brevitas' round-half-even ``ROUND``);
  - ``Add`` of two stream tensors -> the stream quantizer is the IR's saturating ``add`` with
    ``bits`` (proved on all pairs of stream values; refused when the two scales differ or the
    quantizer after the Add has another scale);
  - a two-level quantizer (``BipolarQuant``) of the stream is a ``threshold`` on the fixed tensor
    (binary convolutions read the stream's sign); ``MaxPool`` never reads the stream itself;
  - the end of a residual CNN: ``AveragePool`` / ``GlobalAveragePool`` / ``ReduceMean`` over H, W
    (``nn.AvgPool2d``, ``F.adaptive_avg_pool2d`` under either exporter) of the stream is the IR's
    exact window sum ``avgpool`` (the 1/k^2 goes into the tensor's scale); a ``Trunc``
    (``TruncAvgPool2d``) or another multi-bit ``Quant`` of a stream or pooled tensor is a
    ``requant`` proved on every reachable value; ``MatMul`` (a dense head, int8 or binary, or a
    hidden dense layer after a multi-bit activation) reads the stream directly (``dense`` on
    ``fixed``);

* an output quantizer (a signed multi-bit ``Quant`` after the last layer: ``QuantIdentity`` on the
  logits) is a ``requant`` of the last accumulator (:func:`derive_requant`, by breakpoint bisection
  when the range is too large to enumerate) followed by an identity int8 ``dense``, so the IR still
  ends with integer logits and its float logits are exactly the file's quantized output;
* a binary input quantizer (``BipolarQuant`` / 1-bit ``Quant`` of a flat input): the IR takes ±1
  vectors (``input_kind bits``);
* ``Pad`` (``nn.ConstantPad2d``) of a binary activation with the level of -1 before a ``Conv``:
  the IR's ``pad_value -1`` (FINN's FMPadding); with 0 (``BipolarQuant``): ``pad_value 0``;
* ``MaxPool`` between a layer and a non-decreasing chain (conv -> MaxPool -> BatchNorm -> sign with
  positive scales): the threshold, then the pool (a negative scale would make it a min: refused).

  The IR's ``frac`` is ``-log2 scale`` for a power-of-two scale; for another constant scale it is
  0 and the real scale is in the layer's ``stream_scale`` attribute (frac only labels the stream:
  every consumer here is derived by this importer). Verification compares every stream value
  (:attr:`QonnxImport.fixed`) with qonnx's, not only the bits.

Binary tensors. A two-level quantizer with levels ``lo < hi`` is stored as bits ``x = ±1`` with
``real = (x - off) * s'``, ``s' = (hi - lo) / 2``, ``off = -(hi + lo) / (hi - lo)`` (0 for
``BipolarQuant``, 1 for a signed 1-bit ``Quant`` {-s, 0}). A layer on such input computes
``real_acc_c = s' * s_w,c * (A_c - off * R_c)`` where ``A_c`` is the IR's accumulator
``sum_i w_ic x_i`` and ``R_c = sum_i w_ic`` the row sum: the offset is a per-channel constant
absorbed by the threshold (a padded convolution needs ``off = 0`` and is refused otherwise,
because the padded taps would make the constant position-dependent).

Threshold derivation (the invariant of :func:`derive_thresholds`): for every integer
accumulator value ``A`` in the channel's reachable range ``[lo_c, hi_c]``, the IR's bit equals
the quantizer's decision in qonnx's execution of the cleaned chain on the float32 value
``fl32(k_c * (A - off R_c))`` (``k_c = s' s_w,c``): the range is enumerated (in chunks; bisection
over the monotone chain for ranges above :data:`ENUMERATE_LIMIT` values), every decision comes
from qonnx's own executor (``BatchNormalization`` and the arithmetic by onnxruntime, the
quantizers by qonnx's numpy functions), so ties (a pre-activation of exactly 0 -> +1 in
``BipolarQuant``) and negative folded scales are whatever qonnx does. The one assumption is that
the layer's float32 dot product equals the exactly rounded ``fl32(k_c * (A - off R_c))``: true
whenever the partial sums are exact (power-of-two scales, or small integers), otherwise
onnxruntime's summation order can move a pre-activation that lies within a few ulp of a
decision boundary (each layer records ``float_exact`` in its attributes, and each threshold the
channels whose boundary lies within the worst-case float32 summation error,
``float_order_sensitive``: :func:`order_sensitive_channels`).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import Bnn2hwError
from ..ir.graph import INPUT, Graph, Layer
from ..ir.validate import validate

ORIG_TAG = "bnn2hw-orig-output:"
"""Prefix of the ``doc_string`` each node gets before cleanup: its original output tensor."""
ENUMERATE_LIMIT = 1 << 22
"""Enumerate at most this many (accumulator value x channel) decisions per layer; bisect above."""
REQUANT_ENUMERATE_LIMIT = ENUMERATE_LIMIT
"""A requant of a wider (accumulator value x channel) range is derived by breakpoint bisection."""
CHUNK = 1 << 18
CHAIN_OPS = ("Add", "Sub", "Mul", "Div", "BatchNormalization", "Relu")
PASSTHROUGH_OPS = ("Identity", "Dropout")
QUANT_OPS = ("Quant", "BipolarQuant")


@dataclass
class InputQuant:
    """The input quantizer: float x -> q = clip(round(x / scale + zp), qmin, qmax); IR input u = q - qmin.

    A binary input quantizer (``BipolarQuant`` or a 1-bit ``Quant``, ``binary``) has two real
    levels ``lo < hi``: the IR input is the ±1 vector (-1 for ``lo``, +1 for ``hi``) of a graph
    with ``input_kind == "bits"``; ``to_float`` gives the two levels, ``to_ir`` qonnx's decision."""

    scale: float
    zero_point: float
    bits: int
    signed: bool
    narrow: bool
    rounding: str
    qmin: int
    qmax: int
    binary: bool = False
    levels: tuple = (0.0, 0.0)  # binary: the real values (lo, hi) of -1 and +1
    node: object = None  # the quantizer node (binary: qonnx executes it in ``to_ir``)

    @property
    def offset(self) -> float:
        return self.zero_point - self.qmin

    def to_float(self, u: np.ndarray) -> np.ndarray:
        """IR inputs u -> float32 inputs that the file's quantizer maps back to exactly u."""
        if self.binary:
            return np.where(np.asarray(u) > 0, self.levels[1], self.levels[0]).astype(np.float32)
        return ((np.asarray(u, dtype=np.float64) + self.qmin - self.zero_point) * self.scale).astype(np.float32)

    def to_ir(self, x: np.ndarray) -> np.ndarray:
        """Float inputs -> IR inputs (uint8, or ±1 int8 for a binary input), with qonnx's own
        quantizer function."""
        if self.binary:
            from qonnx.custom_op.general.bipolar_quant import binary_quant
            from qonnx.custom_op.general.quant import quant

            x = np.asarray(x, dtype=np.float32)
            if self.node.op_type == "BipolarQuant":
                y = binary_quant(x, np.float32(self.scale))
            else:
                y = quant(x, np.float32(self.scale), np.float32(self.zero_point), np.float32(1),
                          int(self.signed), int(self.narrow), self.rounding)
            return np.where(y > (self.levels[0] + self.levels[1]) / 2.0, 1, -1).astype(np.int8)
        from qonnx.custom_op.general.quant import quant

        y = quant(np.asarray(x, dtype=np.float32), np.float32(self.scale), np.float32(self.zero_point),
                  np.float32(self.bits), int(self.signed), int(self.narrow), self.rounding)
        q = np.round(np.asarray(y, dtype=np.float64) / self.scale + self.zero_point)
        return (q - self.qmin).astype(np.uint8)

    def random(self, rng, shape) -> np.ndarray:
        """IR inputs drawn uniformly over the quantizer's whole range (±1 for a binary input)."""
        if self.binary:
            return (2 * rng.integers(0, 2, size=shape) - 1).astype(np.int8)
        return rng.integers(0, self.qmax - self.qmin + 1, size=shape).astype(np.uint8)

    def to_dict(self) -> dict:
        d = {"scale": self.scale, "zero_point": self.zero_point, "bits": self.bits, "signed": self.signed,
             "narrow": self.narrow, "rounding": self.rounding, "qmin": self.qmin, "qmax": self.qmax}
        if self.binary:
            d.update(binary=True, levels=[float(v) for v in self.levels])
        return d


@dataclass
class QonnxImport:
    """The result of :func:`import_qonnx`: the validated IR and what verification needs."""

    path: Path
    graph: Graph
    input_quant: InputQuant
    input_shape: tuple  # the file's input shape without the batch dimension (NCHW or (F,))
    input_name: str
    output_name: str
    hidden: dict = field(default_factory=dict)  # IR layer name -> (original ONNX tensor, mid level)
    fixed: dict = field(default_factory=dict)  # IR stream tensor -> (original ONNX tensor, stream scale)


def refuse(path, node, why: str) -> Bnn2hwError:
    """The one refusal format: file, node name, op type, reason."""
    return Bnn2hwError(f"{path}: cannot import this QONNX file: node {node.name!r} ({node.op_type}) {why}")


# ------------------------------------------------------------------------------------------------
# reading and qonnx's passes


def read_qonnx(path: str | Path):
    """The file as a qonnx ModelWrapper (an unreadable or non-ONNX file is refused by name)."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper

    path = Path(path)
    if not path.is_file():
        raise Bnn2hwError(f"{path}: no such QONNX file")
    try:
        proto = onnx.load(str(path))
    except Exception as e:
        raise Bnn2hwError(f"{path}: not a readable ONNX file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if len(proto.graph.node) == 0:
        raise Bnn2hwError(f"{path}: this ONNX file has no nodes")
    return ModelWrapper(proto)


class TagOriginalOutputs:
    """Each node's ``doc_string`` records its original first output tensor (survives renaming)."""

    def apply(self, model):
        for n in model.graph.node:
            if n.output:
                n.doc_string = ORIG_TAG + n.output[0]
        return model


class AddZeroBiasToGemm:
    """Every ``Gemm`` has a third input (a zero bias where absent): qonnx 1.0.0's ``GemmToMatMul``
    indexes ``input[2]`` unconditionally. Adding +0.0 changes no float32 result."""

    def apply(self, model):
        for n in model.graph.node:
            if n.op_type == "Gemm" and len(n.input) == 2:
                w = model.get_initializer(n.input[1])
                shape = model.get_tensor_shape(n.output[0])
                name = model.make_new_valueinfo_name()
                model.set_initializer(name, np.zeros((shape[-1],), dtype=np.float32))
                n.input.append(name)
                del w
        return model


def qonnx_passes():
    """The visible list of qonnx transformations applied after cleanup."""
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames, SortGraph
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    return [GemmToMatMul(), InferShapes(), FoldConstants(exclude_op_types=list(QUANT_OPS)),
            FoldTransposeIntoQuantInit(), InferShapes(), InferDataTypes(), SortGraph(),
            GiveUniqueNodeNames(), GiveReadableTensorNames()]


def prepare(model, path):
    """Tag, ``qonnx.util.cleanup.cleanup_model`` (quantizers kept), then :func:`qonnx_passes`."""
    from qonnx.util.cleanup import cleanup_model

    model = copy.deepcopy(model)
    model = TagOriginalOutputs().apply(model)
    try:
        model = cleanup_model(model)
        model = AddZeroBiasToGemm().apply(model)
        for t in qonnx_passes():
            model = model.transform(t)
    except Bnn2hwError:
        raise
    except Exception as e:
        raise Bnn2hwError(f"{path}: qonnx could not clean up this QONNX file "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    return model


# ------------------------------------------------------------------------------------------------
# the walk


@dataclass
class _Tensor:
    """An IR tensor: ``kind`` u8 or bits; real value ``(x - off) * scale``; ``shape`` without batch (NCHW)."""

    ir_name: str
    kind: str
    shape: tuple
    off: float
    scale: float
    chw: tuple | None = None  # after a flatten: the (C, H, W) the columns came from
    pad: tuple | None = None  # kind "bits" after an ONNX Pad: (p, IR pad_value) for the Conv that reads it
    bits: int = 0  # kind "fixed" (the residual stream): q is a signed ``bits``-bit integer
    frac: int = 0  # kind "fixed": the IR's Q format (-log2 scale for a power-of-two scale, else 0)
    quant_node: str = ""  # kind "fixed": the stream quantizer that made it (for refusals)
    vrange: tuple | None = None  # kind "fixed": (lo, hi) reachable integers (default: all of ``bits``)

    def int_range(self) -> tuple[int, int]:
        """The reachable integers of a fixed tensor (a window sum spans k^2 times its input's)."""
        if self.vrange is not None:
            return int(self.vrange[0]), int(self.vrange[1])
        return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1


@dataclass
class _Sum:
    """A residual ``Add`` of two stream tensors waiting for its stream quantizer."""

    node: object
    a: _Tensor
    b: _Tensor


@dataclass
class _Pending:
    """A layer's accumulator waiting for its activation quantizer: float value
    ``k_c * (A - offR_c)`` followed by ``nodes`` (the chain, executed by qonnx)."""

    layer: Layer
    in_tensor: str  # ONNX name of the layer's float output
    shape: tuple  # (C,) or (C, H, W)
    k: np.ndarray
    off_r: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    float_exact: bool
    fan_in: int = 1
    nodes: list = field(default_factory=list)
    pool: object = None  # a MaxPool node seen before the quantizer
    pool_first: bool = False  # chain nodes follow the MaxPool (evaluated on the accumulator before it)


class _Walker:
    def __init__(self, model, path):
        self.m = model
        self.path = path
        self.state: dict = {}
        self.layers: list[Layer] = []
        self.hidden: dict = {}
        self.counters: dict = {}
        self.consts: dict = {}
        self.input_quant: InputQuant | None = None
        self.quant_nodes: dict = {}  # tensor -> producing constant Quant node (weights)
        self.fixed: dict = {}  # IR stream tensor -> (original ONNX tensor, stream scale)
        self.requant_sensitive: list = []  # set by derive_requant: channels near a float32 rounding edge

    # -- helpers ---------------------------------------------------------------------------------
    def name(self, prefix: str) -> str:
        self.counters[prefix] = self.counters.get(prefix, 0) + 1
        return f"{prefix}{self.counters[prefix] - 1}"

    def append(self, layer: Layer, reads: str) -> Layer:
        """Append ``layer`` reading IR tensor ``reads`` (explicit ``inputs`` unless it is the
        previous op's tensor, so a chain keeps the IR's implicit form)."""
        prev = self.layers[-1].name if self.layers else INPUT
        if reads != prev:
            layer.inputs = [reads]
        self.layers.append(layer)
        return layer

    def const(self, tensor: str):
        """The constant value of ``tensor`` (an initializer, or a node with constant inputs,
        executed by qonnx); None if it depends on the graph input."""
        if tensor in self.consts:
            return self.consts[tensor]
        init = self.m.get_initializer(tensor)
        if init is not None:
            self.consts[tensor] = np.asarray(init)
            return self.consts[tensor]
        prod = self.m.find_producer(tensor)
        if prod is None:
            return None
        vals = [self.const(i) for i in prod.input if i]
        if any(v is None for v in vals):
            return None
        from qonnx.core.onnx_exec import execute_node

        ctx = {i: v for i, v in zip([i for i in prod.input if i], vals)}
        for o in prod.output:
            ctx[o] = np.zeros(self.m.get_tensor_shape(o) or (), dtype=np.float32)
        opset = {o.domain: o.version for o in self.m.model.opset_import}
        execute_node(prod, ctx, self.m.graph, opset.get(prod.domain, opset.get("", 11)))
        for o in prod.output:
            self.consts[o] = np.asarray(ctx[o])
        return self.consts[tensor]

    def attr(self, node, key, default=None):
        from onnx import helper

        for a in node.attribute:
            if a.name == key:
                v = helper.get_attribute_value(a)
                return v.decode() if isinstance(v, bytes) else v
        return default

    def orig(self, node) -> str:
        return node.doc_string[len(ORIG_TAG):] if node.doc_string.startswith(ORIG_TAG) else ""

    def shape(self, tensor: str) -> tuple:
        s = self.m.get_tensor_shape(tensor)
        return tuple(int(d) for d in s[1:])

    # -- the walk --------------------------------------------------------------------------------
    def run(self) -> Graph:
        g = self.m.graph
        if len(g.input) != 1 or len(g.output) != 1:
            raise Bnn2hwError(f"{self.path}: cannot import this QONNX file: it has {len(g.input)} inputs and "
                              f"{len(g.output)} outputs (bnn2hw takes one input and one output)")
        self.state[g.input[0].name] = "float-input"
        for node in g.node:
            ins = [i for i in node.input if i]
            if node.op_type == "Constant" or (ins and all(self.const(i) is not None for i in ins)):
                continue  # a constant (weights, their quantizers): read on use
            handler = getattr(self, "op_" + node.op_type, None)
            if handler is None:
                raise refuse(self.path, node, "has no bnn2hw IR op (supported: Quant, BipolarQuant, Trunc, MatMul, "
                                              "Gemm, Conv, BatchNormalization, Add/Sub/Mul/Div by constants, "
                                              "Relu, MaxPool, AveragePool, GlobalAveragePool, ReduceMean, Pad, "
                                              "Flatten, Reshape)")
            handler(node)
        out = self.state.get(g.output[0].name)
        if isinstance(out, _Tensor) and out.kind == "fixed" and len(out.shape) == 1 and \
                self.layers[-1].op == "requant" and self.layers[-1].name == out.ir_name:
            return self.finish_output_quant(out)
        if not isinstance(out, _Pending) or out.layer.op != "dense":
            raise Bnn2hwError(f"{self.path}: cannot import this QONNX file: the output {g.output[0].name!r} must "
                              "come from a MatMul/Gemm layer (the integer logits) followed only by per-class "
                              "affine operations")
        self.finish(out)
        return self.layers

    def data_input(self, node) -> tuple[str, object]:
        """The node's one non-constant input and its state."""
        dyn = [i for i in node.input if i and self.const(i) is None]
        if len(dyn) != 1:
            raise refuse(self.path, node, f"reads {len(dyn)} computed tensors (only a residual Add of two "
                                          "stream tensors may read two)")
        st = self.state.get(dyn[0])
        if st is None:
            raise refuse(self.path, node, f"reads {dyn[0]!r}, which no supported node produced")
        return dyn[0], st

    # quantizers -------------------------------------------------------------------------------
    def op_Quant(self, node):
        self.quantizer(node)

    def op_BipolarQuant(self, node):
        self.quantizer(node)

    def quant_levels(self, node):
        """(lo, hi) real output levels of a two-level activation quantizer, else refuse."""
        scale = self.const(node.input[1])
        if scale is None or scale.size != 1 or not np.isfinite(scale).all() or float(scale.ravel()[0]) <= 0:
            raise refuse(self.path, node, "needs a positive per-tensor constant scale")
        s = float(scale.ravel()[0])
        if node.op_type == "BipolarQuant":
            return -s, s
        zp = float(self.const(node.input[2]).ravel()[0])
        bits = float(self.const(node.input[3]).ravel()[0])
        if bits != 1:
            raise refuse(self.path, node, f"is a {bits:g}-bit activation; bnn2hw deploys 1-bit activations "
                                          "(BipolarQuant or a 1-bit Quant) between layers")
        from qonnx.custom_op.general.quant import max_int, min_int

        signed, narrow = int(self.attr(node, "signed", 1)), int(self.attr(node, "narrow", 0))
        qmin, qmax = min_int(signed, narrow, 1), max_int(signed, narrow, 1)
        if qmin == qmax:
            raise refuse(self.path, node, "is a 1-bit quantizer with a single level (signed narrow range)")
        return (qmin - zp) * s, (qmax - zp) * s

    def quant_bits(self, node) -> float:
        """The bit width of a ``Quant`` (1 for ``BipolarQuant``)."""
        if node.op_type == "BipolarQuant":
            return 1.0
        bits = self.const(node.input[3])
        if bits is None or bits.size != 1:
            raise refuse(self.path, node, "needs a constant per-tensor bit width")
        return float(bits.ravel()[0])

    def quantizer(self, node):
        src, st = self.data_input(node)
        if st == "float-input":
            return self.input_quantizer(node)
        if isinstance(st, _Sum):
            return self.residual_add(node, st)
        if isinstance(st, _Pending):
            if self.quant_bits(node) > 1:
                return self.requantize(node, st)
            lo_v, hi_v = self.quant_levels(node)
            return self.activation(node, st, lo_v, hi_v)
        if isinstance(st, _Tensor) and st.kind == "fixed":
            return self.stream_quantizer(node, src, st)
        if isinstance(st, _Tensor) and st.kind == "bits":
            # a quantizer of a binary tensor: evaluate it on the two real values
            lo_v, hi_v = self.quant_levels(node)
            reals = np.array([(-1 - st.off) * st.scale, (1 - st.off) * st.scale], dtype=np.float32)
            out = self.eval_nodes([node], src, reals.reshape(2, 1)).ravel()
            if out[0] == lo_v and out[1] == hi_v:
                self.state[node.output[0]] = _Tensor(st.ir_name, "bits", st.shape, *_encoding(lo_v, hi_v), st.chw)
                return
            raise refuse(self.path, node, "re-quantizes a binary tensor to a constant or reversed value")
        raise refuse(self.path, node, "quantizes a tensor bnn2hw cannot represent (an 8-bit input "
                                      "quantizer may only read the graph input)")

    def stream_params(self, node):
        """(scale, bits, frac, qmin, qmax) of a multi-bit stream quantizer, else refuse."""
        if node.op_type != "Quant":
            raise refuse(self.path, node, "is not a Quant")
        scale, zp = self.const(node.input[1]), self.const(node.input[2])
        bits = self.quant_bits(node)
        why = ("bnn2hw deploys 1-bit activations between layers, and a multi-bit Quant only as a residual "
               "stream quantizer, which needs a per-tensor constant positive scale, zero point 0, "
               "2 to 16 bits, signed and not narrow (e.g. Brevitas' Int8ActPerTensorFixedPoint with a "
               "constant scale)")
        if scale is None or zp is None or scale.size != 1 or zp.size != 1:
            raise refuse(self.path, node, f"has a non-constant or per-channel scale or zero point: {why}")
        sc, z = float(scale.ravel()[0]), float(zp.ravel()[0])
        signed, narrow = int(self.attr(node, "signed", 1)), int(self.attr(node, "narrow", 0))
        if not (np.isfinite(sc) and sc > 0) or z != 0 or bits != int(bits) or not 2 <= bits <= 16 \
                or not signed or narrow:
            raise refuse(self.path, node, f"has scale {sc:g}, zero point {z:g}, {bits:g} bits, signed={signed}, "
                                          f"narrow={narrow}: {why}")
        b = int(bits)
        m, e = np.frexp(sc)
        frac = 1 - int(e) if m == 0.5 and 0 <= 1 - int(e) <= 31 else 0
        return sc, b, frac, -(1 << (b - 1)), (1 << (b - 1)) - 1

    def requantize(self, node, p: _Pending):
        """layer accumulator -> chain -> stream ``Quant``: a ``requant`` op whose mult/bias/shift
        are fitted to, and proved equal to, qonnx's execution on every reachable accumulator value."""
        sc, bits, frac, _, _ = self.stream_params(node)
        if p.pool is not None:
            raise refuse(self.path, node, "quantizes a max-pooled accumulator to the residual stream "
                                          "(pool the stream's sign instead)")
        for n in p.nodes:
            if n.op_type == "Relu":
                raise refuse(self.path, n, "sits between a layer and its stream quantizer; only affine "
                                           "operations (BatchNorm, per-channel Add/Sub/Mul/Div) may")
        mult, bias, shift = derive_requant(self, p, node, sc, bits)
        name = self.name("rq")
        layer = Layer("requant", name, node.name,
                      {"shift": int(shift), "bits": bits, "frac": frac, "stream_scale": sc, "float_exact": p.float_exact,
                       "float_order_sensitive": self.requant_sensitive, "acc_range": [int(p.lo.min()), int(p.hi.max())], "onnx_tensor": self.orig(node)},
                      {"mult": mult, "bias": bias})
        self.append(layer, p.layer.name)
        self.fixed[name] = (self.orig(node), sc)
        self.state[node.output[0]] = _Tensor(name, "fixed", p.shape, 0.0, sc, bits=bits, frac=frac,
                                             quant_node=node.name)

    def stream_quantizer(self, node, src: str, st: _Tensor):
        """A quantizer reading the stream: its sign (a two-level quantizer) is a ``threshold`` on the
        fixed tensor; a multi-bit Quant must map every stream value to itself (then it is dropped)."""
        qlo, qhi = st.int_range()
        if qhi - qlo + 1 > ENUMERATE_LIMIT:
            raise refuse(self.path, node, f"quantizes a stream of {qhi - qlo + 1} integer values: too many to "
                                          f"prove exhaustively (limit {ENUMERATE_LIMIT})")
        q = np.arange(qlo, qhi + 1, dtype=np.int64)
        reals = (q.astype(np.float64) * st.scale).astype(np.float32)
        if self.quant_bits(node) > 1:
            out = self.eval_nodes([node], src, reals.reshape(-1, 1)).ravel()
            if np.array_equal(out, reals):  # the stream's own quantizer again: nothing to do
                self.state[node.output[0]] = st
                return
            sc, bits, frac, _, _ = self.stream_params(node)
            return self.requant_fixed(node, st, q, out, sc, bits, frac)
        lo_v, hi_v = self.quant_levels(node)
        out = self.eval_nodes([node], src, reals.reshape(-1, 1)).ravel()
        fires = out > (lo_v + hi_v) / 2.0
        if not fires.any() or fires.all():
            thr, direction = (int(q[0]) if fires.all() else int(q[-1]) + 1), 1
        elif fires[-1] and fires[int(np.argmax(fires)):].all():
            thr, direction = int(q[int(np.argmax(fires))]), 1
        elif fires[0] and fires[:len(q) - int(np.argmax(fires[::-1]))].all():
            thr, direction = int(q[len(q) - 1 - int(np.argmax(fires[::-1]))]), -1
        else:
            raise refuse(self.path, node, "is not monotone in the stream value")
        c = st.shape[0]
        name = self.name("thr")
        self.append(Layer("threshold", name, node.name,
                          {"acc_range": [int(q[0]), int(q[-1])], "onnx_tensor": self.orig(node),
                           "float_order_sensitive": []},
                          {"thr": np.full(c, thr, np.int64), "direction": np.full(c, direction, np.int8)}),
                    st.ir_name)
        self.hidden[name] = (self.orig(node), (lo_v + hi_v) / 2.0)
        self.state[node.output[0]] = _Tensor(name, "bits", st.shape, *_encoding(lo_v, hi_v))

    def requant_fixed(self, node, st: _Tensor, q: np.ndarray, out: np.ndarray, sc: float, bits: int, frac: int):
        """A quantizer (``Quant``, ``Trunc``) mapping the fixed tensor's integers ``q`` to qonnx's
        float32 values ``out`` = integers times ``sc``: a ``requant`` with one (mult, bias, shift) for
        every channel (the quantizer is per tensor), fitted to and proved on every reachable ``q``."""
        from ..ir import ops

        qi = np.round(out.astype(np.float64) / sc).astype(np.int64)
        if not np.array_equal((qi * sc).astype(np.float32), out):
            raise refuse(self.path, node, f"gives values that are not integers times its scale {sc:g}")
        # the float affine in output units, from the unclipped interior: the fit's starting point
        inner = (qi > qi.min()) & (qi < qi.max())
        sel = inner if inner.sum() >= 2 else np.ones(len(q), bool)
        slope, offset = np.polyfit(q[sel].astype(np.float64), qi[sel].astype(np.float64), 1) if sel.sum() >= 2 \
            else (0.0, float(qi[0]))
        fit = fit_requant(q, qi, float(slope), float(offset) - 0.5, bits)
        if fit is None or not np.array_equal(ops.requant(q[:, None], np.array([fit[0]]), np.array([fit[1]]),
                                                          fit[2], bits)[:, 0], qi):
            raise refuse(self.path, node, f"maps the {st.bits}-bit stream to values no integer form "
                                          "clip((q * mult + bias) >> shift) reproduces on every stream value: "
                                          "reachable values land exactly on .5 and it rounds them half to even "
                                          "(Brevitas' default RoundTo8bit / ROUND); use floor rounding "
                                          "(TruncAvgPool2d(trunc_quant=TruncTo8bit), float_to_int_impl_type FLOOR)")
        mult, bias, shift = fit
        c = st.shape[0]
        name = self.name("rq")
        self.append(Layer("requant", name, node.name,
                          {"shift": int(shift), "bits": bits, "frac": frac, "stream_scale": sc, "float_exact": True,
                           "float_order_sensitive": [], "acc_range": [int(q[0]), int(q[-1])],
                           "onnx_tensor": self.orig(node)},
                          {"mult": np.full(c, mult, np.int64), "bias": np.full(c, bias, np.int64)}), st.ir_name)
        self.fixed[name] = (self.orig(node), sc)
        self.state[node.output[0]] = replace(st, ir_name=name, scale=sc, bits=bits, frac=frac, quant_node=node.name,
                                             vrange=(int(qi.min()), int(qi.max())))

    def op_Trunc(self, node):
        """Brevitas' ``TruncAvgPool2d`` writes ``AveragePool`` + ``Trunc`` (qonnx's Trunc, v1 or v2): on
        the stream's window average it is a ``requant`` (a floor shift), proved on every reachable sum."""
        src, st = self.data_input(node)
        if not (isinstance(st, _Tensor) and st.kind == "fixed"):
            raise refuse(self.path, node, "truncates a tensor that is not a quantized stream (or its average)")
        out_bits = self.const(node.input[-1] if len(node.input) == 5 else node.input[5])
        if len(node.input) not in (5, 6) or out_bits is None or out_bits.size != 1:
            raise refuse(self.path, node, "needs constant scale, zero point and bit widths")
        ob, signed = int(out_bits.ravel()[0]), int(self.attr(node, "signed", 1))
        out_scale = self.const(node.input[1] if len(node.input) == 5 else node.input[4])
        if out_scale is None or out_scale.size != 1 or not float(out_scale.ravel()[0]) > 0:
            raise refuse(self.path, node, "needs a positive per-tensor constant scale")
        sc = float(out_scale.ravel()[0])
        bits = ob if signed else ob + 1  # an unsigned output needs one more bit in the IR's signed requant
        if not 2 <= bits <= 16:
            raise refuse(self.path, node, f"truncates to {ob} bits; bnn2hw's requant makes 2 to 16 (signed) bits")
        qlo, qhi = st.int_range()
        if qhi - qlo + 1 > ENUMERATE_LIMIT:
            raise refuse(self.path, node, f"truncates {qhi - qlo + 1} integer values: too many to prove exhaustively")
        q = np.arange(qlo, qhi + 1, dtype=np.int64)
        out = self.eval_nodes([node], src, (q.astype(np.float64) * st.scale).astype(np.float32).reshape(-1, 1)).ravel()
        m, e = np.frexp(sc)
        frac = 1 - int(e) if m == 0.5 and 0 <= 1 - int(e) <= 31 else 0
        self.requant_fixed(node, st, q, out, sc, bits, frac)

    def residual_add(self, node, sm: _Sum):
        """``Add`` of two equal-scale stream tensors -> stream ``Quant``: the IR's saturating ``add``.
        Proved on every pair of stream values: qonnx's float32 Add and Quant give clip(qa + qb)."""
        sc, bits, frac, qmin, qmax = self.stream_params(node)
        a, b = sm.a, sm.b
        if sc != a.scale or bits != a.bits:
            raise refuse(self.path, node, f"re-quantizes the residual sum to scale {sc:g} ({bits} bits); the "
                                          f"branches carry scale {a.scale:g} ({a.bits} bits): bnn2hw's add is "
                                          "exact only with one stream quantizer on both branches and after the Add")
        q = np.arange(qmin, qmax + 1, dtype=np.int64)
        qa, qb = np.meshgrid(q, q, indexing="ij")
        fa = (qa * sc).astype(np.float32)
        fb = (qb * sc).astype(np.float32)
        s32 = (fa + fb).astype(np.float32)  # onnxruntime's float32 Add
        out = self.eval_nodes([node], sm.node.output[0], s32.reshape(-1, 1)).reshape(qa.shape)
        want = (np.clip(qa + qb, qmin, qmax) * sc).astype(np.float32)
        if not np.array_equal(out, want):
            raise refuse(self.path, node, "does not give the saturated integer sum of the stream values in "
                                          "qonnx's execution (rounding of a non-power-of-two scale?)")
        name = self.name("add")
        self.layers.append(Layer("add", name, sm.node.name + " + " + node.name,
                                 {"frac": frac, "bits": bits, "stream_scale": sc, "onnx_tensor": self.orig(node)},
                                 inputs=[a.ir_name, b.ir_name]))
        self.fixed[name] = (self.orig(node), sc)
        self.state[node.output[0]] = _Tensor(name, "fixed", a.shape, 0.0, sc, bits=bits, frac=frac,
                                             quant_node=node.name)

    def input_quantizer(self, node):
        if self.quant_bits(node) == 1:
            return self.binary_input(node)
        scale, zp, bits = (self.const(node.input[i]) for i in (1, 2, 3))
        if any(v is None or v.size != 1 for v in (scale, zp, bits)):
            raise refuse(self.path, node, "(the input quantizer) needs a per-tensor constant scale, zero point "
                                          "and bit width")
        s, z, b = float(scale.ravel()[0]), float(zp.ravel()[0]), float(bits.ravel()[0])
        if not (b == int(b) and 2 <= b <= 8):
            raise refuse(self.path, node, f"(the input quantizer) has {b:g} bits; bnn2hw's input is 8-bit "
                                          "(2 to 8 bits)")
        if not (s > 0 and np.isfinite(s)) or z != int(z):
            raise refuse(self.path, node, f"(the input quantizer) has scale {s:g} and zero point {z:g}; "
                                          "a positive scale and an integer zero point are needed")
        from qonnx.custom_op.general.quant import max_int, min_int

        signed, narrow = int(self.attr(node, "signed", 1)), int(self.attr(node, "narrow", 0))
        rounding = self.attr(node, "rounding_mode", "ROUND")
        self.input_quant = InputQuant(s, z, int(b), bool(signed), bool(narrow), rounding,
                                      int(min_int(signed, narrow, int(b))), int(max_int(signed, narrow, int(b))))
        shape = self.shape(node.input[0])
        self.state[node.output[0]] = _Tensor(INPUT, "u8", shape, self.input_quant.offset, s)

    def binary_input(self, node):
        """A two-level quantizer of the graph input: the IR takes the ±1 vector (``input_kind bits``)."""
        shape = self.shape(node.input[0])
        if len(shape) != 1:
            raise refuse(self.path, node, f"binarizes an input of shape {list(shape)}; bnn2hw takes binary inputs "
                                          "as flat vectors (N, F) only (an image input needs an 8-bit quantizer)")
        lo_v, hi_v = self.quant_levels(node)
        s = float(self.const(node.input[1]).ravel()[0])
        if node.op_type == "BipolarQuant":
            zp, signed, narrow, rounding = 0.0, True, False, "ROUND"
        else:
            zp = float(self.const(node.input[2]).ravel()[0])
            signed, narrow = bool(self.attr(node, "signed", 1)), bool(self.attr(node, "narrow", 0))
            rounding = self.attr(node, "rounding_mode", "ROUND")
        self.input_quant = InputQuant(s, zp, 1, signed, narrow, rounding, -1, 1, True, (lo_v, hi_v), node)
        self.state[node.output[0]] = _Tensor(INPUT, "bits", shape, *_encoding(lo_v, hi_v))

    def activation(self, node, p: _Pending, lo_v: float, hi_v: float):
        thr, direction = derive_thresholds(self, p, node, lo_v, hi_v)
        if p.pool is not None and p.pool_first and (direction < 0).any():
            c = int(np.flatnonzero(direction < 0)[0])
            raise refuse(self.path, p.pool, f"comes before a decreasing per-channel map (channel {c}: a negative "
                                            "BatchNorm or scale factor), so max-then-sign is a min of the bits, "
                                            "which bnn2hw's maxpool (an OR of bits) cannot express: put the "
                                            "MaxPool after the BatchNorm (or after the activation)")
        fragile = order_sensitive_channels(self, p, node, lo_v, hi_v, thr, direction)
        name = self.name("thr")
        layer = Layer("threshold", name, node.name,
                      {"acc_range": [int(p.lo.min()), int(p.hi.max())], "onnx_tensor": self.orig(node),
                       "float_order_sensitive": fragile},
                      {"thr": thr, "direction": direction})
        self.append(layer, p.layer.name)
        self.hidden[name] = (self.orig(node), (lo_v + hi_v) / 2.0)
        off, scale = _encoding(lo_v, hi_v)
        out_name = name
        shape = p.shape
        if p.pool is not None:
            pname, shape = self.maxpool_layer(p.pool, shape, name)
            # the quantizer reads the pooled tensor: its output is the IR pool's, not the threshold's
            self.hidden[pname] = self.hidden.pop(name)
            out_name = pname
        self.state[node.output[0]] = _Tensor(out_name, "bits", shape, off, scale)

    # layers -----------------------------------------------------------------------------------
    def weights(self, node, w_tensor: str):
        """(int weights, per-output-channel scale, kind) of a quantized constant weight."""
        prod = self.m.find_producer(w_tensor)
        if prod is None or prod.op_type not in QUANT_OPS:
            raise refuse(self.path, node, "has float weights (not quantized); bnn2hw deploys 1-bit weights "
                                          "(and 8-bit weights in dense first/last layers): a float layer "
                                          "cannot sit between binary ones")
        wf = self.const(w_tensor).astype(np.float64)
        scale = np.broadcast_to(self.const(prod.input[1]).astype(np.float64), wf.shape)
        if not np.all(np.isfinite(scale)) or np.any(scale == 0):
            raise refuse(self.path, node, f"has a weight quantizer {prod.name!r} with a zero or non-finite scale")
        if prod.op_type == "BipolarQuant":
            kind = "binary"
        else:
            bits = float(self.const(prod.input[3]).ravel()[0])
            zp = self.const(prod.input[2])
            if np.any(zp != 0):
                raise refuse(self.path, node, f"has weights with a non-zero zero point ({prod.name})")
            if bits == 1 or (bits == 2 and int(self.attr(prod, "narrow", 0)) and int(self.attr(prod, "signed", 1))):
                kind = "binary"  # a narrow 2-bit signed quantizer with no zero is not binary: checked below
            elif bits == 8 and int(self.attr(prod, "narrow", 0)) and int(self.attr(prod, "signed", 1)):
                kind = "int8"
            else:
                raise refuse(self.path, node, f"has {bits:g}-bit weights ({prod.name}); bnn2hw takes 1-bit "
                                              "weights, or 8-bit narrow-range signed weights in dense layers")
        wi = np.round(wf / scale)
        if not np.all((wi * scale).astype(np.float32) == wf.astype(np.float32)):  # qonnx: fl32(q * s)
            raise refuse(self.path, node, "has weights that are not integers times their scale")
        if kind == "binary" and not np.all(np.abs(wi) == 1):
            raise refuse(self.path, node, f"has weights ({prod.name}) that are not all ±scale (a zero weight)")
        return wi.astype(np.int64), scale, kind, prod

    def layer_input(self, node):
        """(name, tensor) a MatMul/Conv reads, refused unless it is quantized to 1 bit (or 8-bit input);
        a MatMul may also read a multi-bit stream (or its average pool): the IR's ``dense`` on ``fixed``."""
        src, st = self.data_input(node)
        if not isinstance(st, _Tensor):
            raise refuse(self.path, node, "reads a float tensor (no 1-bit activation quantizer before it): "
                                          "bnn2hw cannot place a float layer between binary ones")
        if st.kind == "fixed" and node.op_type != "MatMul":
            raise refuse(self.path, node, f"reads the {st.bits}-bit activation of node {st.quant_node!r} (Quant): "
                                          "bnn2hw's convolutions read 1-bit activations (or the 8-bit input); a "
                                          "multi-bit stream is read by convolutions through its sign (a "
                                          "BipolarQuant / 1-bit quantizer of the stream), by dense layers directly")
        return src, st

    def op_MatMul(self, node):
        src, st = self.layer_input(node)
        if node.input[1] == src:
            raise refuse(self.path, node, "multiplies by a computed left operand")
        wi, scale, kind, prod = self.weights(node, node.input[1])  # (I, O)
        if len(st.shape) != 1:
            raise refuse(self.path, node, f"reads a tensor of shape {list(st.shape)}; flatten it first")
        s_c = scale[0, :]
        if not np.all(scale == s_c[None, :]):
            raise refuse(self.path, node, "has a weight scale that varies along the input axis")
        w = wi.T  # (O, I)
        if st.chw is not None:  # columns in (c, y, x) order -> the IR's (y, x, c)
            c, h, wd = st.chw
            w = w.reshape(len(w), c, h, wd).transpose(0, 2, 3, 1).reshape(len(w), -1)
        name = self.name("fc")
        layer = Layer("dense", name, node.name, {"in": st.kind, "weight_kind": kind},
                      {"weight": np.ascontiguousarray(w.astype(np.int8))})
        self.append(layer, st.ir_name)
        self.pending(node, layer, st, wi.T, s_c, (w.shape[0],))

    def op_Gemm(self, node):
        raise refuse(self.path, node, "survived qonnx's GemmToMatMul (transA, alpha or beta not 1?)")

    def op_Conv(self, node):
        src, st = self.layer_input(node)
        wi, scale, kind, prod = self.weights(node, node.input[1])  # (O, C, kh, kw)
        if kind != "binary":
            raise refuse(self.path, node, "has 8-bit weights; bnn2hw's convolutions take binary weights "
                                          "(8-bit first/last layers must be dense)")
        if len(node.input) > 2 and node.input[2]:
            raise refuse(self.path, node, "has a bias input (extract it with qonnx's ExtractBiasFromConv)")
        if len(st.shape) != 3:
            raise refuse(self.path, node, f"reads a tensor of shape {list(st.shape)}, not (C, H, W)")
        pads = list(self.attr(node, "pads", [0, 0, 0, 0]))
        strides = list(self.attr(node, "strides", [1, 1]))
        if int(self.attr(node, "group", 1)) != 1 or any(d != 1 for d in self.attr(node, "dilations", [1, 1])):
            raise refuse(self.path, node, "is grouped or dilated")
        if len(set(pads)) != 1 or len(set(strides)) != 1 or self.attr(node, "auto_pad", "NOTSET") not in ("NOTSET", ""):
            raise refuse(self.path, node, f"has asymmetric padding {pads} or strides {strides}")
        pad, stride = int(pads[0]), int(strides[0])
        pad_value = 0
        if st.pad is not None:  # an ONNX Pad before the conv (op_Pad)
            if pad:
                raise refuse(self.path, node, "pads again a tensor that an ONNX Pad has already padded")
            pad, pad_value = st.pad
            st = replace(st, shape=(st.shape[0], st.shape[1] - 2 * pad, st.shape[2] - 2 * pad), pad=None)
        elif pad and st.off != 0:
            raise refuse(self.path, node, f"zero-pads an input whose zero is not an IR value (offset {st.off:g}: "
                                          "a signed input quantizer or a {-s, 0} activation); bnn2hw pads "
                                          "with 0 contributions only")
        o = wi.shape[0]
        s_c = scale.reshape(o, -1)[:, 0]
        if not np.all(scale.reshape(o, -1) == s_c[:, None]):
            raise refuse(self.path, node, "has a weight scale that is not per output channel")
        w = np.ascontiguousarray(wi.transpose(0, 2, 3, 1).astype(np.int8))
        name = self.name("conv")
        attrs = {"in": st.kind, "stride": stride, "pad": pad, "weight_kind": "binary"}
        if pad_value:
            attrs["pad_value"] = pad_value
        layer = Layer("conv2d", name, node.name, attrs, {"weight": w})
        self.append(layer, st.ir_name)
        self.pending(node, layer, st, wi.reshape(o, -1), s_c, self.shape(node.output[0]))

    def pending(self, node, layer, st: _Tensor, w_oi: np.ndarray, s_c: np.ndarray, out_shape):
        if st.kind == "fixed":  # the stream's integers span [vlo, vhi]
            vlo, vhi = st.int_range()
            lo = np.minimum(w_oi * vlo, w_oi * vhi).sum(1)
            hi = np.maximum(w_oi * vlo, w_oi * vhi).sum(1)
        elif st.kind == "u8":
            lo = np.where(w_oi < 0, w_oi, 0).sum(1) * 255
            hi = np.where(w_oi > 0, w_oi, 0).sum(1) * 255
        else:
            lo, hi = -np.abs(w_oi).sum(1), np.abs(w_oi).sum(1)
        k = st.scale * s_c
        r = w_oi.sum(1).astype(np.float64)
        exact = bool(_exact_products(k, int(max(np.abs(lo).max(), np.abs(hi).max()) + abs(st.off) * np.abs(r).max())))
        layer.attrs["float_exact"] = exact
        self.state[node.output[0]] = _Pending(layer, node.output[0], tuple(out_shape), k, st.off * r,
                                              lo.astype(np.int64), hi.astype(np.int64), exact, int(w_oi.shape[1]))

    # the chain ----------------------------------------------------------------------------------
    def chain(self, node):
        src, st = self.data_input(node)
        if not isinstance(st, _Pending):
            raise refuse(self.path, node, "operates on a binary or integer tensor (bnn2hw has no IR op for it)")
        if st.pool is not None:
            # conv -> MaxPool -> BatchNorm -> sign: max commutes with a non-decreasing per-channel map,
            # so the chain is evaluated on the accumulator before the pool (direction checked in
            # activation()); the copy reads the previous chain tensor instead of the pool's output
            node = copy.deepcopy(node)
            prev = st.nodes[-1].output[0] if st.nodes else st.in_tensor
            node.input[:] = [prev if i == src else i for i in node.input]
            st.pool_first = True
            src = prev
        c = st.shape[0]
        full = (1,) + st.shape
        for i in node.input:
            if i and i != src:
                v = self.const(i)
                if node.op_type == "BatchNormalization":
                    continue
                try:
                    b = np.broadcast_to(v, full) if v.ndim <= len(full) else None
                except ValueError:
                    b = None
                if b is None or np.broadcast_shapes(v.shape, full) != full or not _per_channel(b, c):
                    raise refuse(self.path, node, f"combines the layer output with a constant of shape "
                                                  f"{list(v.shape)} that is not per channel")
        if node.op_type in ("Sub", "Div") and node.input[0] != src:
            raise refuse(self.path, node, "has the layer output as its second operand")
        st.nodes.append(node)
        self.state[node.output[0]] = st

    op_Sub = op_Mul = op_Div = op_BatchNormalization = op_Relu = chain

    def op_Add(self, node):
        dyn = [i for i in node.input if i and self.const(i) is None]
        if len(dyn) != 2:
            return self.chain(node)
        sts = [self.state.get(i) for i in dyn]
        if not all(isinstance(t, _Tensor) and t.kind == "fixed" for t in sts):
            raise refuse(self.path, node, "is a residual Add whose inputs are not both quantized by a multi-bit "
                                          "stream quantizer (a signed Quant, e.g. Brevitas' "
                                          "Int8ActPerTensorFixedPoint shared by both branches)")
        a, b = sts
        if a.scale != b.scale or a.bits != b.bits:
            raise refuse(self.path, node, f"adds stream tensors of scales {a.scale:g} and {b.scale:g} "
                                          f"({a.bits} and {b.bits} bits); bnn2hw adds integers exactly only "
                                          "when both scales are equal: quantize both branches with the same "
                                          "QuantIdentity")
        if a.shape != b.shape:
            raise refuse(self.path, node, f"adds tensors of shapes {list(a.shape)} and {list(b.shape)}")
        self.state[node.output[0]] = _Sum(node, a, b)

    # shape ops ---------------------------------------------------------------------------------
    def maxpool_layer(self, node, shape, reads: str):
        k = list(self.attr(node, "kernel_shape"))
        s = list(self.attr(node, "strides", k))
        if len(set(k)) != 1 or len(set(s)) != 1 or any(self.attr(node, "pads", [0, 0, 0, 0])) \
                or int(self.attr(node, "ceil_mode", 0)) or any(d != 1 for d in self.attr(node, "dilations", [1, 1])):
            raise refuse(self.path, node, f"has a non-square kernel {k}, strides {s}, padding or ceil mode")
        k, s = int(k[0]), int(s[0])
        name = self.name("pool")
        self.append(Layer("maxpool", name, node.name, {"kernel": k, "stride": s}), reads)
        c, h, w = shape
        return name, (c, (h - k) // s + 1, (w - k) // s + 1)

    def op_MaxPool(self, node):
        src, st = self.data_input(node)
        if isinstance(st, _Pending):
            if len(st.shape) != 3:
                raise refuse(self.path, node, "pools a flat tensor")
            st.pool = node
            self.state[node.output[0]] = st
            return
        if isinstance(st, _Tensor) and st.kind == "fixed":
            raise refuse(self.path, node, "max-pools the multi-bit residual stream; bnn2hw max-pools binary "
                                          "tensors only (pool the stream's sign)")
        if not isinstance(st, _Tensor) or st.kind != "bits":
            raise refuse(self.path, node, "pools the 8-bit input; bnn2hw pools binary tensors only")
        name, shape = self.maxpool_layer(node, st.shape, st.ir_name)
        self.hidden[name] = (self.orig(node), -st.off * st.scale)
        self.state[node.output[0]] = _Tensor(name, "bits", shape, st.off, st.scale)

    def avgpool(self, node, st: _Tensor, k: int, stride: int):
        """Average pooling of the stream: the IR's exact window sum (``avgpool``); the 1/k^2 goes
        into the tensor's scale, so its consumers (a dense head's affine, a ``Trunc``/``Quant``'s
        requant, a sign's threshold) are derived on the sums. qonnx's float32 average is compared
        with ``sum * scale / k^2`` on every verification input (exact for power-of-two scales and
        windows)."""
        c, h, w = st.shape
        if k > h or k > w:
            raise refuse(self.path, node, f"pools a {k}x{k} window on a {h}x{w} map")
        qlo, qhi = st.int_range()
        lo, hi = qlo * k * k, qhi * k * k
        bits = max(lo.bit_length() if lo >= 0 else (-lo - 1).bit_length(), hi.bit_length()) + 1
        if bits > 32:
            raise refuse(self.path, node, f"sums {k}x{k} stream values of {st.bits} bits: {bits} bits, more than 32")
        name = self.name("avg")
        self.append(Layer("avgpool", name, node.name, {"kernel": int(k), "stride": int(stride),
                                                       "onnx_tensor": self.orig(node)}), st.ir_name)
        scale = st.scale / (k * k)
        self.fixed[name] = (self.orig(node), scale)
        shape = (c, (h - k) // stride + 1, (w - k) // stride + 1)
        self.state[node.output[0]] = replace(st, ir_name=name, shape=shape, scale=scale, bits=max(bits, st.bits),
                                             quant_node=node.name, vrange=(lo, hi), chw=None)
        return name

    def pool_input(self, node) -> _Tensor:
        src, st = self.data_input(node)
        if not (isinstance(st, _Tensor) and st.kind == "fixed" and len(st.shape) == 3):
            what = "a binary tensor" if isinstance(st, _Tensor) and st.kind == "bits" else "a tensor that is not " \
                "a quantized (C, H, W) stream"
            raise refuse(self.path, node, f"average-pools {what}; bnn2hw average-pools the multi-bit residual "
                                          "stream only (a stream quantizer such as Int8ActPerTensorFixedPoint "
                                          "before the pool)")
        return st

    def op_AveragePool(self, node):
        st = self.pool_input(node)
        k = list(self.attr(node, "kernel_shape"))
        s = list(self.attr(node, "strides", k))
        if len(set(k)) != 1 or len(set(s)) != 1 or any(self.attr(node, "pads", [0, 0, 0, 0])) \
                or int(self.attr(node, "ceil_mode", 0)) or self.attr(node, "auto_pad", "NOTSET") not in ("NOTSET", ""):
            raise refuse(self.path, node, f"has a non-square kernel {k}, strides {s}, padding or ceil mode")
        self.avgpool(node, st, int(k[0]), int(s[0]))

    def op_GlobalAveragePool(self, node):
        st = self.pool_input(node)
        if st.shape[1] != st.shape[2]:
            raise refuse(self.path, node, f"pools a non-square {st.shape[1]}x{st.shape[2]} map (the IR's "
                                          "window is square)")
        self.avgpool(node, st, st.shape[1], st.shape[1])

    def op_ReduceMean(self, node):
        """``F.adaptive_avg_pool2d(x, 1)`` / ``x.mean((2, 3))`` as torch's dynamo exporter writes it."""
        st = self.pool_input(node)
        axes = self.attr(node, "axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.const(node.input[1])
        if axes is None or sorted(int(a) % 4 for a in np.ravel(axes)) != [2, 3]:
            raise refuse(self.path, node, f"averages over axes {None if axes is None else list(np.ravel(axes))}; "
                                          "only the spatial mean (axes 2, 3) is average pooling")
        if st.shape[1] != st.shape[2]:
            raise refuse(self.path, node, f"averages a non-square {st.shape[1]}x{st.shape[2]} map")
        self.avgpool(node, st, st.shape[1], st.shape[1])
        if not int(self.attr(node, "keepdims", 1)):  # (N, C): the IR's flatten of the (1, 1, C) sums
            pooled = self.state[node.output[0]]
            name = self.name("flatten")
            self.append(Layer("flatten", name, node.name), pooled.ir_name)
            self.state[node.output[0]] = replace(pooled, ir_name=name, shape=(pooled.shape[0],), chw=pooled.shape)

    def op_Pad(self, node):
        """``nn.ConstantPad2d`` / ``F.pad`` of a binary tensor before a convolution (Larq/FINN style):
        padding with the level of the bit -1 is the IR's ``pad_value -1`` (FINN's FMPadding), with
        the real 0 (``BipolarQuant``: no level) ``pad_value 0``; the Conv that reads it takes the pad."""
        src, st = self.data_input(node)
        if not (isinstance(st, _Tensor) and st.kind == "bits" and len(st.shape) == 3 and st.pad is None):
            raise refuse(self.path, node, "pads a tensor that is not a binary (C, H, W) activation; bnn2hw pads "
                                          "binary activations before a convolution only")
        pads = self.attr(node, "pads")
        if pads is None and len(node.input) > 1:
            pads = self.const(node.input[1])
        value = self.attr(node, "value", 0.0)
        if len(node.input) > 2 and node.input[2]:
            value = self.const(node.input[2])
        if pads is None or value is None or np.asarray(value).size != 1 or len(node.input) > 3:
            raise refuse(self.path, node, "needs constant pads and a constant value (no axes input)")
        pads, value = [int(v) for v in np.ravel(pads)], float(np.ravel(value)[0])
        mode = self.attr(node, "mode", "constant")
        p = pads[2] if len(pads) == 8 else -1
        if mode != "constant" or len(pads) != 8 or pads != [0, 0, p, p, 0, 0, p, p] or p <= 0:
            raise refuse(self.path, node, f"pads {pads} in mode {mode!r}; bnn2hw pads H and W equally with a constant")
        lo_real = (-1 - st.off) * st.scale
        if np.float32(value) == np.float32(lo_real):
            pv = -1
        elif value == 0.0 and st.off == 0:
            pv = 0
        else:
            raise refuse(self.path, node, f"pads with {value:g}; a binary tensor with levels {lo_real:g} and "
                                          f"{(1 - st.off) * st.scale:g} can be padded with the level of -1 "
                                          "(pad_value -1) or with 0 when 0 is the midpoint (pad_value 0)")
        c, h, w = st.shape
        self.state[node.output[0]] = replace(st, shape=(c, h + 2 * p, w + 2 * p), pad=(p, pv))

    def flatten(self, node):
        src, st = self.data_input(node)
        if not isinstance(st, _Tensor):
            raise refuse(self.path, node, "flattens a float tensor (before its activation quantizer)")
        out = self.shape(node.output[0])
        if len(out) != 1 or out[0] != int(np.prod(st.shape)):
            raise refuse(self.path, node, f"reshapes {list(st.shape)} to {list(out)}; only flattening to (N, F) "
                                          "is supported")
        if len(st.shape) == 1:
            self.state[node.output[0]] = st
            return
        name = self.name("flatten")
        self.append(Layer("flatten", name, node.name), st.ir_name)
        self.state[node.output[0]] = replace(st, ir_name=name, shape=out, chw=st.shape)

    op_Flatten = op_Reshape = flatten

    def passthrough(self, node):
        src, st = self.data_input(node)
        self.state[node.output[0]] = st

    op_Identity = op_Dropout = passthrough

    # the end -----------------------------------------------------------------------------------
    def finish(self, p: _Pending):
        a = p.k.astype(np.float64)
        b = -p.k * p.off_r
        for node in p.nodes:
            a, b = _affine_step(self, node, a, b)
        self.append(Layer("affine", "logits", p.layer.source + " .. output", {},
                                 {"scale": np.asarray(a, np.float64), "bias": np.asarray(b, np.float64)}),
                    p.layer.name)

    def finish_output_quant(self, out: _Tensor):
        """An output quantizer (``QuantIdentity`` on the logits, a signed multi-bit ``Quant``) was
        derived as a ``requant`` of the last layer's accumulator; the IR ends with integer logits,
        so an identity ``dense`` (int8 weights, the unit matrix) reads the quantized values and the
        affine is their scale: the float logits are exactly qonnx's quantized output."""
        c = out.shape[0]
        fc = self.name("fc")
        self.append(Layer("dense", fc, out.quant_node + " (output quantizer: identity)",
                          {"in": "fixed", "weight_kind": "int8", "output_quant": True},
                          {"weight": np.eye(c, dtype=np.int8)}), out.ir_name)
        self.append(Layer("affine", "logits", out.quant_node + " .. output", {},
                          {"scale": np.full(c, out.scale, np.float64), "bias": np.zeros(c, np.float64)}), fc)
        return self.layers

    # evaluation with qonnx ---------------------------------------------------------------------
    def eval_nodes(self, nodes, in_name: str, values: np.ndarray) -> np.ndarray:
        """qonnx's execution of ``nodes`` (a chain ending in a quantizer) on float32 ``values``."""
        return _exec_chain(self.m, nodes, in_name, values, self.const)


def _encoding(lo_v: float, hi_v: float) -> tuple[float, float]:
    """(off, scale) with real = (x - off) * scale for x = -1 -> lo_v, x = +1 -> hi_v."""
    s = (hi_v - lo_v) / 2.0
    return -(hi_v + lo_v) / (hi_v - lo_v), s


def _per_channel(b: np.ndarray, c: int) -> bool:
    """A broadcast constant (1, C, ...) that varies only along the channel axis."""
    flat = b.reshape(1, c, -1)
    return bool(np.all(flat == flat[:, :, :1]))


def _exact_products(k: np.ndarray, max_int: int) -> bool:
    """True when every |n| * k_c (n <= max_int) is an exact float32: the float dot product is then
    independent of summation order."""
    k = np.asarray(k, dtype=np.float32)
    m, e = np.frexp(k.astype(np.float64))
    # significant bits of each k: smallest b with m * 2^b integral
    bits = np.zeros(len(k), dtype=np.int64)
    mm = np.abs(m)
    while np.any((mm != np.floor(mm)) & (bits < 30)):
        sel = mm != np.floor(mm)
        mm = np.where(sel, mm * 2, mm)
        bits += sel
    return bool(bits.max() + max(1, int(max_int)).bit_length() <= 24)


def _affine_step(w: _Walker, node, a, b):
    """(a, b) of x -> a x + b through one node of the output chain, float64."""
    src = [i for i in node.input if i and w.const(i) is None][0]
    consts = [w.const(i) for i in node.input if i and i != src]
    C = len(a)

    def vec(v):
        return np.broadcast_to(np.asarray(v, np.float64).reshape(-1) if np.asarray(v).size in (1, C)
                               else np.asarray(v, np.float64).reshape(C), (C,))
    op = node.op_type
    if op == "Add":
        return a, b + vec(consts[0])
    if op == "Sub":
        return a, b - vec(consts[0])
    if op == "Mul":
        return a * vec(consts[0]), b * vec(consts[0])
    if op == "Div":
        return a / vec(consts[0]), b / vec(consts[0])
    if op == "BatchNormalization":
        g, beta, mean, var = (vec(w.const(i)) for i in node.input[1:5])
        eps = float(w.attr(node, "epsilon", 1e-5))
        inv = g / np.sqrt(var + eps)
        return a * inv, (b - mean) * inv + beta
    raise refuse(w.path, node, "is not affine, so it cannot follow the last layer (the float logits "
                               "must be an affine function of the integer logits)")


def _exec_chain(model, nodes, in_name: str, values: np.ndarray, const) -> np.ndarray:
    """Build a graph of ``nodes`` reading ``in_name`` (shape of ``values``) and run it with qonnx."""
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.basic import qonnx_make_model

    inits, seen = [], set()
    for n in nodes:
        for i in n.input:
            if i and i != in_name and i not in seen and i not in [x.output[0] for x in nodes]:
                v = const(i)
                if v is None:
                    raise Bnn2hwError(f"internal: chain input {i!r} is not constant")
                inits.append(helper.make_tensor(i, TensorProto.FLOAT if v.dtype.kind == "f" else TensorProto.INT64,
                                                v.shape, v.astype(np.float32 if v.dtype.kind == "f" else np.int64).ravel()))
                seen.add(i)
    out = nodes[-1].output[0]
    g = helper.make_graph([copy.deepcopy(n) for n in nodes], "chain",
                          [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, list(values.shape))],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, list(values.shape))], inits)
    opsets = list(model.model.opset_import)
    mw = ModelWrapper(qonnx_make_model(g, opset_imports=opsets))
    mw = mw.transform(InferShapes())
    return execute_onnx(mw, {in_name: values.astype(np.float32)})[out]


def _decider(w: _Walker, p: _Pending, quant, lo_v: float, hi_v: float):
    """``fires(a, delta)``: (M, C) integer accumulators -> the quantizer's (M, C) decisions in
    qonnx's execution of the chain on fl32(k_c (A - offR_c) + delta_c)."""
    q = copy.deepcopy(quant)
    q.input[0] = p.nodes[-1].output[0] if p.nodes else p.in_tensor  # skips a pending MaxPool
    nodes = list(p.nodes) + [q]
    mid = (lo_v + hi_v) / 2.0
    spatial = (1, 1) if len(p.shape) == 3 else ()

    def fires(a: np.ndarray, delta=0.0) -> np.ndarray:
        v = (p.k[None, :] * (a.astype(np.float64) - p.off_r[None, :]) + delta).astype(np.float32)
        out = w.eval_nodes(nodes, p.in_tensor, v.reshape(v.shape + spatial))
        return out.reshape(a.shape) > mid
    return fires


def order_sensitive_channels(w: _Walker, p: _Pending, quant, lo_v: float, hi_v: float,
                             thr: np.ndarray, direction: np.ndarray) -> list[int]:
    """Channels whose decision at the boundary pair (T and its neighbour across it) changes when the
    layer's float output moves by the worst-case float32 summation error ``fan_in * 2^-24 * max|acc|``
    (zero when ``float_exact``): there, onnxruntime's summation order could decide differently."""
    if p.float_exact:
        return []
    # |fl(sum) - sum| <= (n - 1) u sum|x_i| (u = 2^-24), plus u sum|x_i| for the rounded inputs
    delta = p.fan_in * 2.0 ** -24 * np.abs(p.k) * (p.hi - p.lo).astype(np.float64)
    fires = _decider(w, p, quant, lo_v, hi_v)
    a = np.stack([thr, thr - direction]).astype(np.int64)
    a = np.clip(a, p.lo[None, :], p.hi[None, :])
    base = fires(a)
    bad = (fires(a, -delta[None, :]) != base) | (fires(a, delta[None, :]) != base)
    return [int(c) for c in np.flatnonzero(bad.any(0))]


def _stream_eval(w: _Walker, p: _Pending, quant):
    """``values(a)``: (M, C) integer accumulators -> qonnx's (M, C) float32 output of the chain and
    ``quant`` on fl32(k_c (A - offR_c))."""
    q = copy.deepcopy(quant)
    q.input[0] = p.nodes[-1].output[0] if p.nodes else p.in_tensor
    nodes = list(p.nodes) + [q]
    spatial = (1, 1) if len(p.shape) == 3 else ()

    def values(a: np.ndarray, delta=0.0) -> np.ndarray:
        v = (p.k[None, :] * (a.astype(np.float64) - p.off_r[None, :]) + delta).astype(np.float32)
        return w.eval_nodes(nodes, p.in_tensor, v.reshape(v.shape + spatial)).reshape(a.shape)
    return values


def fit_requant(acc: np.ndarray, q: np.ndarray, slope: float, offset: float, bits: int):
    """(mult, bias, shift) with ``clip((acc * mult + bias) >> shift, qmin, qmax) == q`` for every
    given accumulator value, or None. For each shift (smallest first) and mult near
    ``slope * 2^shift``, the feasible biases form an interval: ``acc*mult + bias >= q * 2^shift``
    where q > qmin (not clipped low) and ``<= (q + 1) * 2^shift - 1`` where q < qmax; the bias
    nearest ``(offset + 1/2) * 2^shift`` (round half up of the float affine) inside it is taken."""
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    acc, q = acc.astype(np.int64), q.astype(np.int64)
    lo_ok, hi_ok = q > qmin, q < qmax
    for shift in range(62 - bits):
        m0 = slope * 2.0 ** shift
        if abs(m0) >= (1 << 31) - 4:
            break
        for dm in (0, -1, 1, -2, 2):
            m = int(np.round(m0)) + dm
            if abs(m) >= 1 << 31:
                continue
            t = acc * m
            low = int(((q[lo_ok] << shift) - t[lo_ok]).max()) if lo_ok.any() else -(1 << 62)
            high = int((((q[hi_ok] + 1) << shift) - 1 - t[hi_ok]).min()) if hi_ok.any() else 1 << 62
            if low > high:
                continue
            want = (offset + 0.5) * 2.0 ** shift
            b = int(min(max(int(np.floor(want)) if np.isfinite(want) and abs(want) < 2.0 ** 62 else 0, low), high))
            if abs(b) > 1 << 62:
                continue
            return m, b, shift
    return None


def derive_requant(w: _Walker, p: _Pending, quant, scale: float, bits: int):
    """Invariant: for every channel c and integer A in [lo_c, hi_c], ``requant(A) * scale`` is
    qonnx's output of the chain and the stream quantizer on fl32(k_c (A - offR_c)) (same float
    assumption as :func:`derive_thresholds`); the whole range is enumerated and the fitted form
    checked against it. For a layer that is not ``float_exact``, the channels where some stream
    value changes when the layer's float output moves by the worst-case float32 summation error are
    left in ``w.requant_sensitive`` (the layer's ``float_order_sensitive``): there onnxruntime's
    summation order could give another stream value. Refuses (naming the quantizer) when the range is too large to enumerate or
    no integer mult/bias/shift reproduces it."""
    from ..ir import ops

    C = p.shape[0]
    lo, hi = int(p.lo.min()), int(p.hi.max())
    n = hi - lo + 1
    if n * C > REQUANT_ENUMERATE_LIMIT:
        return derive_requant_monotone(w, p, quant, scale, bits)
    values = _stream_eval(w, p, quant)
    out = np.zeros((n, C), dtype=np.float32)
    moved = np.zeros(C, dtype=bool)  # a value changes within the worst-case float32 summation error
    # |fl(sum) - sum| <= fan_in * 2^-24 * sum|x_i| (as order_sensitive_channels); 0 when float_exact
    delta = 0.0 if p.float_exact else p.fan_in * 2.0 ** -24 * np.abs(p.k) * (p.hi - p.lo).astype(np.float64)
    rows = max(1, CHUNK // C)
    for start in range(0, n, rows):
        a = np.repeat(np.arange(lo + start, lo + min(n, start + rows), dtype=np.int64)[:, None], C, 1)
        out[start:start + len(a)] = values(a)
        if not p.float_exact:
            inside = (a >= p.lo[None, :]) & (a <= p.hi[None, :])
            for d in (-delta, delta):
                moved |= ((values(a, d[None, :]) != out[start:start + len(a)]) & inside).any(0)
    w.requant_sensitive = [int(c) for c in np.flatnonzero(moved)]
    qf = out.astype(np.float64) / scale
    qi = np.round(qf).astype(np.int64)
    if not np.array_equal((qi * scale).astype(np.float32), out):
        raise refuse(w.path, quant, "gives values that are not integers times its scale")
    # the float affine (slope, offset) of the chain, in stream units: the fit's starting point
    a_c, b_c = p.k.astype(np.float64), -p.k * p.off_r
    for node in p.nodes:
        a_c, b_c = _affine_step(w, node, a_c, b_c)
    mult, bias = np.zeros(C, np.int64), np.zeros(C, np.int64)
    allv = np.arange(lo, hi + 1, dtype=np.int64)
    fits = []
    for c in range(C):
        sel = (allv >= p.lo[c]) & (allv <= p.hi[c])
        fit = fit_requant(allv[sel], qi[sel, c], float(a_c[c]) / scale, float(b_c[c]) / scale, bits)
        if fit is None:
            raise refuse(w.path, quant, f"channel {c}: no integer form clip((A * mult + bias) >> shift) equals "
                                        "qonnx's stream values on every reachable accumulator: reachable values "
                                        "land exactly on .5 and the quantizer rounds them round-half-even "
                                        "(Brevitas' ROUND); use float_to_int_impl_type FLOOR in the stream quantizer or "
                                        "BatchNorm parameters without exact ties")
        fits.append(fit)
    shift = max(f[2] for f in fits)  # one shift for the layer: scale the others up (exact)
    for c, (m, b, s) in enumerate(fits):
        m, b = m << (shift - s), b << (shift - s)
        if abs(m) >= 1 << 31 or abs(b) > 1 << 62:
            raise refuse(w.path, quant, f"channel {c}: the requant multiplier or bias does not fit "
                                        "(|mult| < 2^31, |bias| <= 2^62) at the layer's shift")
        mult[c], bias[c] = m, b
    for c in range(C):  # the proof: every reachable accumulator value
        sel = (allv >= p.lo[c]) & (allv <= p.hi[c])
        got = ops.requant(allv[sel][:, None], mult[c:c + 1], bias[c:c + 1], shift, bits)[:, 0]
        if not np.array_equal(got, qi[sel, c]):
            raise Bnn2hwError(f"internal: requant of {quant.name} channel {c} differs from qonnx")
    return mult, bias, shift


BREAKPOINT_LIMIT = 1 << 18
"""Bisect at most this many (output level x channel) breakpoints of a requant at once."""


def derive_requant_monotone(w: _Walker, p: _Pending, quant, scale: float, bits: int):
    """:func:`derive_requant` for accumulator ranges too large to enumerate (an int8 head under an
    output quantizer). Invariant: ``requant(A) * scale`` is qonnx's output on every integer A in
    [lo_c, hi_c], *given* that qonnx's chain is monotone per channel in A (an affine map followed
    by round and clip is; float32 rounding is monotone too). Proof: per channel, every output level's
    breakpoint t_j (the smallest A whose level reaches j, found by bisection on qonnx's execution)
    and t_j - 1 and both range ends are evaluated; the fitted requant is monotone and agrees there,
    so it agrees on every A in between. Refuses (naming the quantizer) when the levels x channels
    exceed :data:`BREAKPOINT_LIMIT` or no integer form fits."""
    from ..ir import ops

    C = p.shape[0]
    values = _stream_eval(w, p, quant)

    def level(a):  # (M, C) -> qonnx's integer output level
        out = values(a)
        q = np.round(out.astype(np.float64) / scale).astype(np.int64)
        if not np.array_equal((q * scale).astype(np.float32), out):
            raise refuse(w.path, quant, "gives values that are not integers times its scale")
        return q

    lo, hi = p.lo.astype(np.int64), p.hi.astype(np.int64)
    ends = level(np.stack([lo, hi]))
    sgn = np.where(ends[1] >= ends[0], 1, -1)  # per channel: non-decreasing (+1) or non-increasing
    h_lo, h_hi = ends[0] * sgn, ends[1] * sgn
    span = int((h_hi - h_lo).max())
    if span * C > BREAKPOINT_LIMIT:
        raise refuse(w.path, quant, f"quantizes an accumulator range of {int(hi.max() - lo.min() + 1)} values to "
                                    f"{span} levels x {C} channels: too many breakpoints to prove "
                                    f"(limit {BREAKPOINT_LIMIT})")
    j = h_lo[None, :] + 1 + np.arange(max(span, 1))[:, None]  # (L, C) the level each row looks for
    active = j <= h_hi[None, :]
    left, right = np.broadcast_to(lo, j.shape).copy(), np.broadcast_to(hi, j.shape).copy()
    while True:  # smallest A with sgn * level(A) >= j
        go = active & (left < right)
        if not go.any():
            break
        mid = (left + right) // 2
        f = level(mid) * sgn[None, :] >= j
        right = np.where(go & f, mid, right)
        left = np.where(go & ~f, mid + 1, left)
    mult, bias, fits = np.zeros(C, np.int64), np.zeros(C, np.int64), []
    a_c, b_c = p.k.astype(np.float64), -p.k * p.off_r
    for node in p.nodes:
        a_c, b_c = _affine_step(w, node, a_c, b_c)
    points = []
    for c in range(C):
        t = left[active[:, c], c]
        pts = np.unique(np.concatenate([[lo[c], hi[c]], t, t - 1]).clip(lo[c], hi[c]))
        points.append(pts)
    longest = max(len(x) for x in points)
    grid = np.stack([np.pad(x, (0, longest - len(x)), mode="edge") for x in points], 1)  # (P, C)
    want = level(grid)
    for c in range(C):
        fit = fit_requant(grid[:, c], want[:, c], float(a_c[c]) / scale, float(b_c[c]) / scale, bits)
        if fit is None:
            why = ("the layer's float32 arithmetic is not exact (non-power-of-two scales or bias), so qonnx's "
                   "breakpoints follow float32 rounding that no integer requant reproduces: use power-of-two "
                   "scales (e.g. Int8WeightPerTensorFixedPoint) and no float bias before the quantizer"
                   if not p.float_exact else "round-half-even ties: use float_to_int_impl_type FLOOR")
            raise refuse(w.path, quant, f"channel {c}: no integer form clip((A * mult + bias) >> shift) equals "
                                        f"qonnx's values at every level's breakpoint ({why})")
        fits.append(fit)
    shift = max(f[2] for f in fits)
    for c, (m, b, s) in enumerate(fits):
        m, b = m << (shift - s), b << (shift - s)
        if abs(m) >= 1 << 31 or abs(b) > 1 << 62:
            raise refuse(w.path, quant, f"channel {c}: the requant multiplier or bias does not fit at the layer's shift")
        mult[c], bias[c] = m, b
    got = ops.requant(grid, mult, bias, shift, bits)
    if not np.array_equal(got, want):
        raise Bnn2hwError(f"internal: requant of {quant.name} differs from qonnx at a breakpoint")
    # where a value changes (the breakpoints), does it move within the worst-case float32 error?
    w.requant_sensitive = []
    if not p.float_exact:
        delta = p.fan_in * 2.0 ** -24 * np.abs(p.k) * (p.hi - p.lo).astype(np.float64)
        base = values(grid)
        moved = (values(grid, -delta[None, :]) != base) | (values(grid, delta[None, :]) != base)
        w.requant_sensitive = [int(c) for c in np.flatnonzero(moved.any(0))]
    return mult, bias, shift


def derive_thresholds(w: _Walker, p: _Pending, quant, lo_v: float, hi_v: float) -> tuple[np.ndarray, np.ndarray]:
    """Invariant (module doc): for every channel c and integer A in [lo_c, hi_c], the IR bit
    (A >= thr_c if direction_c = +1, A <= thr_c if -1) is the quantizer's decision (output above the
    mid level) in qonnx's execution of the chain on fl32(k_c (A - offR_c))."""
    C = p.shape[0]
    lo, hi = int(p.lo.min()), int(p.hi.max())
    fires = _decider(w, p, quant, lo_v, hi_v)

    n = hi - lo + 1
    if n * C <= ENUMERATE_LIMIT:
        dec = np.zeros((n, C), dtype=bool)
        rows = max(1, CHUNK // C)
        for start in range(0, n, rows):
            a = np.arange(lo + start, lo + min(n, start + rows), dtype=np.int64)
            dec[start:start + len(a)] = fires(np.repeat(a[:, None], C, 1))
        values = np.arange(lo, hi + 1)
        thr = np.zeros(C, dtype=np.int64)
        direction = np.ones(C, dtype=np.int8)
        for c in range(C):
            sel = (values >= p.lo[c]) & (values <= p.hi[c])
            d, v = dec[sel, c], values[sel]
            if d.all():
                thr[c] = p.lo[c]
            elif not d.any():
                thr[c] = p.hi[c] + 1
            elif not d[0] and d[-1]:
                first = int(np.argmax(d))
                if not d[first:].all():
                    raise refuse(w.path, quant, f"channel {c}: the decision is not monotone in the accumulator")
                thr[c] = v[first]
            else:
                last = len(d) - 1 - int(np.argmax(d[::-1]))
                if not d[:last + 1].all():
                    raise refuse(w.path, quant, f"channel {c}: the decision is not monotone in the accumulator")
                thr[c], direction[c] = v[last], -1
        return thr, direction
    # bisection (every chain op is monotone per channel), as bnn2hw.export.fold.fold_threshold
    lo_f = fires(p.lo[None, :].copy())[0]
    hi_f = fires(p.hi[None, :].copy())[0]
    inc, dec_ = ~lo_f & hi_f, lo_f & ~hi_f
    thr = np.where(lo_f & hi_f, p.lo, p.hi + 1).astype(np.int64)
    left, right = p.lo.copy(), p.hi.copy()
    while True:
        act = (inc | dec_) & (left < right)
        if not act.any():
            break
        mid_i, mid_d = (left + right) // 2, (left + right + 1) // 2
        f = fires(np.where(dec_, mid_d, mid_i)[None, :])[0]
        right = np.where(inc & act & f, mid_i, right)
        left = np.where(inc & act & ~f, mid_i + 1, left)
        left = np.where(dec_ & act & f, mid_d, left)
        right = np.where(dec_ & act & ~f, mid_d - 1, right)
    thr = np.where(inc | dec_, left, thr)
    return thr, np.where(dec_, -1, 1).astype(np.int8)


def import_qonnx(path: str | Path) -> QonnxImport:
    """QONNX file -> validated IR graph (module doc)."""
    path = Path(path)
    original = read_qonnx(path)
    model = prepare(original, path)
    walker = _Walker(model, path)
    layers = walker.run()
    if walker.input_quant is None:
        raise Bnn2hwError(f"{path}: cannot import this QONNX file: the graph input is not quantized by an "
                          "8-bit Quant node or a binary quantizer")
    in_shape = walker.shape(model.graph.input[0].name)
    ir_shape = (in_shape[1], in_shape[2], in_shape[0]) if len(in_shape) == 3 else (int(np.prod(in_shape)),)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    iq = walker.input_quant
    meta = {"model_hash": digest, "source": str(path), "frontend": "qonnx",
            "input_quant": iq.to_dict(), "onnx_input_shape": list(in_shape)}
    graph = Graph(ir_shape, layers, 1.0 / iq.scale if iq.offset == 0 and not iq.binary else 1.0, meta,
                  "bits" if iq.binary else "u8")
    try:
        validate(graph)
    except Bnn2hwError as e:
        raise Bnn2hwError(f"{path}: the imported graph is not a valid bnn2hw IR: {e}") from None
    return QonnxImport(path, graph, iq, tuple(in_shape), original.graph.input[0].name,
                       original.graph.output[0].name, dict(walker.hidden),
                       dict(walker.fixed))
