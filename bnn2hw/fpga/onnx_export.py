# SPDX-License-Identifier: MIT
"""IR -> ONNX, in two flavours built by the same emitter:

* ``finn``: the FINN-ready QONNX graph (``hw/FINN_NOTES.md`` has the source references): a
  float-container input annotated ``UINT8``; ``MatMul``/``Conv`` with ±1 float weights annotated
  ``BIPOLAR``; qonnx ``MultiThreshold`` with integer thresholds (annotated ``INT32``),
  ``out_dtype="BIPOLAR"``, ``out_scale=2``, ``out_bias=-1`` (x >= T gives +1, bnn2hw's tie rule).
  **Its output ``global_out`` is the IR's integer logits**: the graph ends at the last ``MatMul``.
  The float logit affine (``logit = int_logit * scale + bias`` per class) is not in the graph; its
  ``scale``/``bias`` are stored in the model's ``metadata_props`` (``bnn2hw.logit_scale``,
  ``bnn2hw.logit_bias``, JSON lists; :func:`logit_affine`) and the build dir's
  ``logit_affine.json``, and run on the host. So FINN v0.10.1 and FINN dev put nothing of ours
  outside or after the accelerator, every FINN resource estimate covers all of the FPGA side, and
  no FINN rewrite can move a negative class scale into the weights (issue 8 defect 9).
  No Quant nodes: the graph is already folded, so FINN's ``step_qonnx_to_finn`` has nothing to do.
* ``plain``: standard ONNX ops only, for onnxruntime: uint8 input ``Cast`` to float, the same
  MatMul/Conv, thresholds as ``GreaterOrEqual`` + ``Where``, the float ``Mul``/``Add`` to
  ``global_out``, and the integer logits as a second output ``int_logits``. All values are
  integers below 2^24, so float32 arithmetic is exact.

Both use PyTorch's NCHW layout for images (FINN lowers ``Conv`` to Im2Col/MatMul itself);
dense columns after a flatten are put back in (c, y, x) order. Negative-direction channels
(``acc <= T``) are written as ``-acc >= -T``: the weight row is negated (it stays ±1).

Two choices that make one graph serve FINN v0.10.1 and FINN dev (``hw/FINN_NOTES.md`` section 1):

* **Threshold parity.** For a layer with ±1 inputs and ±1 weights over K terms (no padding),
  ``acc`` has the parity of K, so ``acc >= T`` equals ``acc >= T'`` with T' the smallest value
  >= T of K's parity. bnn2hw writes T'. FINN rewrites that layer as a popcount p = (acc + K) / 2
  and the threshold as (T' + K) / 2, which is then an integer: the ``INT32`` annotation stays
  true after streamlining. (FINN dev rounds thresholds only later, in
  ``step_minimize_bit_width``, and its python execution rejects a half-integer in an INT32 tensor.)
* **The last layer is not XNOR.** Its ±1 weights are annotated ``INT2`` instead of ``BIPOLAR``
  when its input is binary, so FINN's ``ConvertBipolarMatMulToXnorPopcount`` leaves it alone and
  makes it an MVAU (``BIPOLAR`` x ``INT2``, no activation) whose output is the signed ±1 dot
  product, i.e. the integer logit. As an XNOR layer it would output the popcount p, and FINN
  would add ``Mul(2)``/``Add(-K)`` after it, which v0.10.1 leaves on the host and FINN dev
  turns into elementwise HW layers: the accelerator output would differ between versions.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import __version__
from ..errors import Bnn2hwError
from ..ir import ops
from ..ir.graph import Graph
from .residual_onnx import needs_residual_form, residual_nodes

OPSET = 13
INPUT_NAME = "global_in"
OUTPUT_NAME = "global_out"
INT_LOGITS_NAME = "int_logits"
SCALE_KEY, BIAS_KEY = "bnn2hw.logit_scale", "bnn2hw.logit_bias"


def _xnor_fan_in(layer) -> int | None:
    """K if ``layer`` is a ±1-input, ±1-weight, unpadded dense/conv (FINN makes it an XNOR
    popcount layer and its accumulator has the parity of K), else None."""
    if layer.op not in ("dense", "conv2d") or layer.attrs.get("in") != "bits":
        return None
    if layer.op == "dense" and layer.attrs.get("weight_kind") != "binary":
        return None
    if layer.op == "conv2d" and layer.attrs.get("pad", 0):
        return None
    return int(np.prod(layer.arrays["weight"].shape[1:]))


def _flip_negative(graph: Graph) -> list[dict]:
    """Per layer: weights (O, ...) float32 with negative-direction rows negated, and the
    threshold per channel on the (possibly negated) accumulator, all as >= comparisons, raised
    to the accumulator's parity after an XNOR layer (module doc)."""
    out = []
    layers = graph.layers
    for i, layer in enumerate(layers):
        entry = {"layer": layer}
        if layer.op in ("dense", "conv2d"):
            w = layer.arrays["weight"].astype(np.float32)
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if nxt is not None and nxt.op == "threshold":
                d = nxt.arrays["direction"].astype(np.float32)
                w = w * d.reshape((-1,) + (1,) * (w.ndim - 1))
            entry["weight"] = w
        if layer.op == "threshold":
            d = layer.arrays["direction"].astype(np.int64)
            thr = np.where(d > 0, layer.arrays["thr"], -layer.arrays["thr"]).astype(np.int64)
            k = _xnor_fan_in(layers[i - 1]) if i > 0 else None
            if k is not None:  # acc = K mod 2, so acc >= T <=> acc >= T + ((T - K) mod 2)
                thr = thr + np.mod(thr - k, 2)
            entry["thr"] = thr.astype(np.float32)
        out.append(entry)
    return out


def _nchw_shape(shape: tuple[int, ...]) -> list[int]:
    return [1, shape[2], shape[0], shape[1]] if len(shape) == 3 else [1, shape[0]]


def build_onnx(graph: Graph, flavour: str) -> onnx.ModelProto:
    """Build the ``finn`` or ``plain`` ONNX model for ``graph`` (see module doc)."""
    if flavour not in ("finn", "plain"):
        raise ValueError(flavour)
    from ..ir.validate import validate

    validate(graph)
    for layer in graph.layers:
        if layer.op in ("fixed_affine", "periodic"):
            raise Bnn2hwError(
                f"IR layer {layer.name} ({layer.op}, from {layer.source}) belongs to a fixed-point "
                "value path (M-BiPer eq. 7): a periodic activation is not a monotone threshold, so "
                "FINN's MultiThreshold/MVAU dataflow cannot express it. Deploy this model with "
                "`bnn2hw emit-c`, or train an mlp/cnn for the FPGA")
    if graph.input_kind == "bits":  # both writers take (and annotate) a UINT8 input
        raise Bnn2hwError("this IR takes a binary (±1) input vector; the FPGA export takes uint8 inputs only "
                          "(deploy binary-input models with `bnn2hw emit-c`)")
    finn = flavour == "finn"
    if needs_residual_form(graph):
        return _residual_model(graph, flavour)
    nodes, inits, annotations = [], [], {}
    counter = [0]

    def name(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def init(arr: np.ndarray, prefix: str, dtype: str | None = None) -> str:
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), n))
        if dtype:
            annotations[n] = dtype
        return n

    in_shape = _nchw_shape(graph.input_shape)
    flat_input = bool(graph.layers) and graph.layers[0].op == "flatten"
    if flat_input:  # an MLP on images: take the row-major (c, y, x) vector, as PyTorch flattens
        in_shape = [1, int(np.prod(graph.input_shape))]
    if finn:
        annotations[INPUT_NAME] = "UINT8"
        cur = INPUT_NAME
    else:
        cur = name("x_float")
        nodes.append(helper.make_node("Cast", [INPUT_NAME], [cur], to=TensorProto.FLOAT))
    shape = tuple(graph.input_shape)  # channels-last bookkeeping (H, W, C) or (F,)
    spatial_before_flatten = None
    entries = _flip_negative(graph)
    last_dense = next((l for l in reversed(graph.layers) if l.op == "dense"), None)
    affine = None
    for e in entries:
        layer = e["layer"]
        _pending_doc = f"bnn2hw IR op {layer.name} ({layer.op}) from PyTorch module {layer.source}"
        _mark = len(nodes)
        if layer.op == "flatten":
            spatial_before_flatten = shape
            shape = (int(np.prod(shape)),)
            if layer is graph.layers[0] and flat_input:
                continue
            out = name("flat")
            nodes.append(helper.make_node("Flatten", [cur], [out], axis=1))
            cur = out
        elif layer.op == "dense":
            w = e["weight"]
            if spatial_before_flatten is not None and len(spatial_before_flatten) == 3:
                h, wd, c = spatial_before_flatten  # IR columns (y, x, c) -> NCHW flatten (c, y, x)
                w = w.reshape(w.shape[0], h, wd, c).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)
                spatial_before_flatten = None
            binary = layer.attrs.get("weight_kind") == "binary"
            wdt = "BIPOLAR" if binary else "INT8"
            if binary and layer is last_dense and _xnor_fan_in(layer) is not None:
                wdt = "INT2"  # ±1 in INT2: not an XNOR layer, so FINN outputs the dot product
            wn = init(w.T.astype(np.float32), f"{layer.name}_W", wdt)
            out = name(layer.name)
            nodes.append(helper.make_node("MatMul", [cur, wn], [out], name=layer.name))
            shape = (w.shape[0],)
            cur = out
        elif layer.op == "conv2d":
            w = e["weight"]  # (O, kh, kw, C) -> ONNX (O, C, kh, kw)
            o, kh, kw, c = w.shape
            stride, pad = layer.attrs["stride"], layer.attrs["pad"]
            if finn and pad:
                raise Bnn2hwError(
                    f"IR layer {layer.name} (from {layer.source}): a zero-padded binary conv cannot go to "
                    "FINN, which pads the bipolar stream with the bit 0, i.e. -1; retrain without padding "
                    "(the default cnn has none) or use the MCU back end, which corrects for padding")
            wn = init(w.transpose(0, 3, 1, 2).astype(np.float32), f"{layer.name}_W", "BIPOLAR")
            out = name(layer.name)
            nodes.append(helper.make_node("Conv", [cur, wn], [out], name=layer.name,
                                          kernel_shape=[kh, kw], strides=[stride, stride],
                                          pads=[pad, pad, pad, pad], group=1, dilations=[1, 1]))
            shape = ((shape[0] + 2 * pad - kh) // stride + 1, (shape[1] + 2 * pad - kw) // stride + 1, o)
            cur = out
        elif layer.op == "threshold":
            thr = e["thr"]
            out = name(layer.name)
            if finn:
                tn = init(thr.reshape(-1, 1), f"{layer.name}_T", "INT32")
                nodes.append(helper.make_node("MultiThreshold", [cur, tn], [out], name=layer.name,
                                              domain="qonnx.custom_op.general", out_dtype="BIPOLAR",
                                              out_scale=2.0, out_bias=-1.0))
                annotations[out] = "BIPOLAR"
            else:
                bshape = (1, -1, 1, 1) if len(shape) == 3 else (1, -1)
                tn = init(thr.reshape(bshape), f"{layer.name}_T")
                ge = name("ge")
                nodes.append(helper.make_node("GreaterOrEqual", [cur, tn], [ge]))
                one = init(np.array(1.0, dtype=np.float32), "one")
                neg = init(np.array(-1.0, dtype=np.float32), "minus_one")
                nodes.append(helper.make_node("Where", [ge, one, neg], [out], name=layer.name))
            cur = out
        elif layer.op == "maxpool":
            k, s = layer.attrs["kernel"], layer.attrs["stride"]
            out = name(layer.name)
            nodes.append(helper.make_node("MaxPool", [cur], [out], name=layer.name,
                                          kernel_shape=[k, k], strides=[s, s], pads=[0, 0, 0, 0]))
            if finn:
                annotations[out] = "BIPOLAR"
            shape = ((shape[0] - k) // s + 1, (shape[1] - k) // s + 1, shape[2])
            cur = out
        elif layer.op == "affine":
            if layer is not graph.layers[-1] or graph.layers[-2] is not last_dense:
                raise Bnn2hwError(f"IR layer {layer.name}: the affine must follow the last dense layer")
            affine = layer
            nodes[-1].output[0] = OUTPUT_NAME if finn else INT_LOGITS_NAME
            if finn:  # the FINN graph ends at the integer logits; the affine runs on the host
                cur = OUTPUT_NAME
                continue
            cur = INT_LOGITS_NAME
            sc = init(layer.arrays["scale"].astype(np.float32).reshape(1, -1), "logit_scale")
            bi = init(layer.arrays["bias"].astype(np.float32).reshape(1, -1), "logit_bias")
            mid = name("scaled")
            nodes.append(helper.make_node("Mul", [cur, sc], [mid], name="logit_mul"))
            nodes.append(helper.make_node("Add", [mid, bi], [OUTPUT_NAME], name="logit_add"))
            cur = OUTPUT_NAME
        else:
            raise Bnn2hwError(f"IR layer {layer.name}: op {layer.op!r} has no ONNX form")
        for node in nodes[_mark:]:
            node.doc_string = _pending_doc
    for i, node in enumerate(nodes):  # every node named (the layer's nodes share its name as prefix)
        if not node.name:
            node.name = f"{node.op_type.lower()}_{i}"
        node.doc_string = node.doc_string or "uint8 input to float (onnxruntime graph)"
    if cur != OUTPUT_NAME or affine is None:
        raise Bnn2hwError("IR graph does not end with an affine output layer")
    return _assemble(graph, flavour, nodes, inits, annotations, in_shape, affine)


def _residual_model(graph: Graph, flavour: str) -> onnx.ModelProto:
    """The NHWC residual-stream form (:mod:`bnn2hw.fpga.residual_onnx`), with the same output
    conventions as the chain form: ``global_out`` = integer logits (finn), float logits plus
    ``int_logits`` (plain)."""
    finn = flavour == "finn"
    nodes, inits, annotations, in_shape, logits, affine, shapes = residual_nodes(graph, finn)
    if affine is None or graph.layers[-1] is not affine:
        raise Bnn2hwError("IR graph does not end with an affine output layer")
    for nd in nodes:
        for k, v in enumerate(nd.output):
            if v == logits:
                nd.output[k] = OUTPUT_NAME if finn else INT_LOGITS_NAME
    if not finn:
        sc = numpy_helper.from_array(affine.arrays["scale"].astype(np.float32).reshape(1, -1), "logit_scale")
        bi = numpy_helper.from_array(affine.arrays["bias"].astype(np.float32).reshape(1, -1), "logit_bias")
        inits += [sc, bi]
        doc = f"bnn2hw IR op {affine.name} (affine) from PyTorch module {affine.source}"
        nodes.append(helper.make_node("Mul", [INT_LOGITS_NAME, "logit_scale"], ["logits_scaled"], name="logit_mul",
                                      doc_string=doc))
        nodes.append(helper.make_node("Add", ["logits_scaled", "logit_bias"], [OUTPUT_NAME], name="logit_add",
                                      doc_string=doc))
    model = _assemble(graph, flavour, nodes, inits, annotations, in_shape, affine)
    model.graph.value_info.extend(helper.make_tensor_value_info(t, TensorProto.FLOAT, s) for t, s in shapes.items())
    return model


def _assemble(graph: Graph, flavour: str, nodes, inits, annotations, in_shape, affine) -> onnx.ModelProto:
    """The ModelProto around the nodes: inputs/outputs, opsets, metadata, dtype annotations."""
    finn = flavour == "finn"
    batch = 1 if finn else "batch"  # the plain graph takes any batch size; FINN's streams one frame
    outputs = [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [batch, graph.num_classes])]
    graph_in = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, in_shape)
    if not finn:
        outputs.append(helper.make_tensor_value_info(INT_LOGITS_NAME, TensorProto.FLOAT, [batch, graph.num_classes]))
        graph_in = helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, [batch] + list(in_shape[1:]))
    g = helper.make_graph(nodes, f"bnn2hw_{flavour}", [graph_in], outputs, inits)
    opsets = [helper.make_opsetid("", OPSET)]
    if finn:
        opsets.append(helper.make_opsetid("qonnx.custom_op.general", 1))
    model = helper.make_model(g, opset_imports=opsets, producer_name="bnn2hw", producer_version=__version__,
                              doc_string=f"bnn2hw {flavour} graph of model {graph.meta.get('model_hash')} "
                                         f"({graph.meta.get('arch')}, from {graph.meta.get('source')})")
    model.ir_version = 8  # onnxruntime and FINN's onnx both read IR v8
    onnx.helper.set_model_props(model, {
        SCALE_KEY: json.dumps([float(v) for v in affine.arrays["scale"]]),
        BIAS_KEY: json.dumps([float(v) for v in affine.arrays["bias"]]),
        "bnn2hw.model_hash": str(graph.meta.get("model_hash")),
        "bnn2hw.arch": str(graph.meta.get("arch")),
        "bnn2hw.surrogate": str(graph.meta.get("surrogate")),
        "bnn2hw.w0": str(graph.meta.get("w0")),
        "bnn2hw.output": ("global_out = integer logits (IR); logit = global_out * scale + bias on the host"
                          if finn else "global_out = float logits; int_logits = integer logits (IR)"),
    })
    for tensor, dt in annotations.items():
        qa = onnx.TensorAnnotation(tensor_name=tensor)
        qa.quant_parameter_tensor_names.append(onnx.StringStringEntryProto(key="finn_datatype", value=dt))
        model.graph.quantization_annotation.append(qa)
    if not finn:
        onnx.checker.check_model(model)
    return model


def input_shape(model: onnx.ModelProto) -> list[int]:
    """The declared input shape (batch 1, or -1 for the plain graph's dynamic batch); data in
    PyTorch layout is reshaped row-major to it."""
    return [d.dim_value if d.HasField("dim_value") else -1 for d in model.graph.input[0].type.tensor_type.shape.dim]


def run_plain(model: onnx.ModelProto, x_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """onnxruntime, one sample at a time (the graphs have batch 1): (logits, int_logits)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    shape = input_shape(model)
    x = np.ascontiguousarray(x_u8, dtype=np.uint8).reshape([len(x_u8)] + shape[1:])
    lo, il = sess.run([OUTPUT_NAME, INT_LOGITS_NAME], {INPUT_NAME: x})  # the whole batch at once
    return np.asarray(lo, dtype=np.float64), np.rint(np.asarray(il)).astype(np.int64)


def logit_affine(model: onnx.ModelProto) -> tuple[np.ndarray, np.ndarray]:
    """The per-class (scale, bias) stored in the model: logit = int_logit * scale + bias."""
    props = {p.key: p.value for p in model.metadata_props}
    try:
        return (np.array(json.loads(props[SCALE_KEY]), dtype=np.float64),
                np.array(json.loads(props[BIAS_KEY]), dtype=np.float64))
    except KeyError as e:
        raise Bnn2hwError(f"ONNX model has no {e.args[0]} metadata: not written by this bnn2hw") from None


def run_qonnx(model: onnx.ModelProto, x_u8: np.ndarray, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """qonnx's own executor on the FINN-ready graph: (logits, int_logits). The graph's output is
    the integer logits; the logits apply the stored host-side affine (:func:`logit_affine`).

    Every sample is executed. Graphs whose ops are all batch-agnostic (no Reshape, no Im2Col) run ``batch``
    samples per call with the input's batch dimension set to the batch size; others one by one.
    qonnx's ``SANITIZE_QUANT_TENSORS`` rounding is switched off for the call: it only rounds
    values that are not already integers of their annotated type (which would hide, not reveal,
    a disagreement) and it walks every tensor element in Python (most of the export's time)."""
    import os

    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    shape = input_shape(model)
    x_u8 = np.asarray(x_u8)
    # Reshape targets and qonnx's Im2Col ``input_shape`` attribute carry the batch size 1.
    batched = all(n.op_type not in ("Reshape", "Im2Col") for n in model.graph.node)
    step = max(1, int(batch)) if batched else 1
    wrappers: dict[int, object] = {}

    def wrapper(n: int):
        if not batched:  # the graph as written (batch 1, its own value_info)
            n = 0
            if 0 not in wrappers:
                wrappers[0] = ModelWrapper(model).transform(InferShapes())
        if n not in wrappers:
            m = onnx.ModelProto()
            m.CopyFrom(model)
            m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = n
            m.graph.output[0].type.tensor_type.shape.dim[0].dim_value = n
            del m.graph.value_info[:]
            wrappers[n] = ModelWrapper(m).transform(InferShapes())
        return wrappers[n]

    ints = []
    saved = os.environ.get("SANITIZE_QUANT_TENSORS")
    os.environ["SANITIZE_QUANT_TENSORS"] = "0"
    try:
        for lo in range(0, len(x_u8), step):
            rows = x_u8[lo:lo + step]
            feed = rows.reshape([len(rows)] + list(shape[1:])).astype(np.float32)
            ctx = execute_onnx(wrapper(len(rows)), {INPUT_NAME: feed})
            ints.append(np.asarray(ctx[OUTPUT_NAME]).reshape(len(rows), -1))
    finally:
        if saved is None:
            del os.environ["SANITIZE_QUANT_TENSORS"]
        else:
            os.environ["SANITIZE_QUANT_TENSORS"] = saved
    ints = np.rint(np.concatenate(ints) if ints else np.zeros((0, 1))).astype(np.int64).reshape(len(x_u8), -1)
    scale, bias = logit_affine(model)
    return ops.affine(ints, scale, bias), ints
