# SPDX-License-Identifier: MIT
"""IR -> ONNX, in two flavours built by the same emitter:

* ``finn``: the FINN-ready QONNX graph (``hw/FINN_NOTES.md`` has the source references): a
  float-container input annotated ``UINT8``; ``MatMul``/``Conv`` with ±1 float weights annotated
  ``BIPOLAR``; qonnx ``MultiThreshold`` with integer thresholds (annotated ``INT32``),
  ``out_dtype="BIPOLAR"``, ``out_scale=2``, ``out_bias=-1`` (x >= T gives +1, bnn2hw's tie rule);
  the last ``MatMul`` produces the integer logits, then a float ``Mul``/``Add`` (FINN leaves them
  outside the dataflow partition, on the host). No Quant nodes: the graph is already folded,
  so FINN's ``step_qonnx_to_finn`` has nothing to do and nothing to get wrong.
* ``plain``: standard ONNX ops only, for onnxruntime: uint8 input ``Cast`` to float, the same
  MatMul/Conv, thresholds as ``GreaterOrEqual`` + ``Where``. All values are integers below 2^24,
  so float32 arithmetic is exact.

Both use PyTorch's NCHW layout for images (FINN lowers ``Conv`` to Im2Col/MatMul itself);
dense columns after a flatten are put back in (c, y, x) order. Negative-direction channels
(``acc <= T``) are written as ``-acc >= -T``: the weight row is negated (it stays ±1).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import Bnn2hwError
from ..ir.graph import Graph

OPSET = 13
INPUT_NAME = "global_in"
OUTPUT_NAME = "global_out"
INT_LOGITS_NAME = "int_logits"


def _flip_negative(graph: Graph) -> list[dict]:
    """Per layer: weights (O, ...) float32 with negative-direction rows negated, and the
    threshold per channel on the (possibly negated) accumulator, all as >= comparisons."""
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
            entry["thr"] = np.where(d > 0, layer.arrays["thr"], -layer.arrays["thr"]).astype(np.float32)
        out.append(entry)
    return out


def _nchw_shape(shape: tuple[int, ...]) -> list[int]:
    return [1, shape[2], shape[0], shape[1]] if len(shape) == 3 else [1, shape[0]]


def build_onnx(graph: Graph, flavour: str) -> onnx.ModelProto:
    """Build the ``finn`` or ``plain`` ONNX model for ``graph`` (see module doc)."""
    if flavour not in ("finn", "plain"):
        raise ValueError(flavour)
    for layer in graph.layers:
        if layer.op in ("fixed_affine", "periodic", "add"):
            raise Bnn2hwError(
                f"IR layer {layer.name} ({layer.op}, from {layer.source}) belongs to a fixed-point "
                "value path (M-BiPer eq. 7): a periodic activation is not a monotone threshold, so "
                "FINN's MultiThreshold/MVAU dataflow cannot express it. Deploy this model with "
                "`bnn2hw emit-c`, or train an mlp/cnn for the FPGA")
    finn = flavour == "finn"
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
        graph_in = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, in_shape)
        annotations[INPUT_NAME] = "UINT8"
        cur = INPUT_NAME
    else:
        graph_in = helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, in_shape)
        cur = name("x_float")
        nodes.append(helper.make_node("Cast", [INPUT_NAME], [cur], to=TensorProto.FLOAT))
    shape = tuple(graph.input_shape)  # channels-last bookkeeping (H, W, C) or (F,)
    spatial_before_flatten = None
    entries = _flip_negative(graph)
    for e in entries:
        layer = e["layer"]
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
            wn = init(w.T.astype(np.float32), f"{layer.name}_W", "BIPOLAR" if binary else "INT8")
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
            nodes[-1].output[0] = INT_LOGITS_NAME
            cur = INT_LOGITS_NAME
            sc = init(layer.arrays["scale"].astype(np.float32).reshape(1, -1), "logit_scale")
            bi = init(layer.arrays["bias"].astype(np.float32).reshape(1, -1), "logit_bias")
            mid = name("scaled")
            nodes.append(helper.make_node("Mul", [cur, sc], [mid], name="logit_mul"))
            nodes.append(helper.make_node("Add", [mid, bi], [OUTPUT_NAME], name="logit_add"))
            cur = OUTPUT_NAME
        else:
            raise Bnn2hwError(f"IR layer {layer.name}: op {layer.op!r} has no ONNX form")
    if cur != OUTPUT_NAME:
        raise Bnn2hwError("IR graph does not end with an affine output layer")
    outputs = [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, graph.num_classes])]
    if not finn:
        outputs.append(helper.make_tensor_value_info(INT_LOGITS_NAME, TensorProto.FLOAT, [1, graph.num_classes]))
    g = helper.make_graph(nodes, f"bnn2hw_{flavour}", [graph_in], outputs, inits)
    opsets = [helper.make_opsetid("", OPSET)]
    if finn:
        opsets.append(helper.make_opsetid("qonnx.custom_op.general", 1))
    model = helper.make_model(g, opset_imports=opsets, producer_name="bnn2hw")
    model.ir_version = 8  # onnxruntime and FINN's onnx both read IR v8
    for tensor, dt in annotations.items():
        qa = onnx.TensorAnnotation(tensor_name=tensor)
        qa.quant_parameter_tensor_names.append(onnx.StringStringEntryProto(key="finn_datatype", value=dt))
        model.graph.quantization_annotation.append(qa)
    if not finn:
        onnx.checker.check_model(model)
    return model


def input_shape(model: onnx.ModelProto) -> list[int]:
    """The declared (batch-1) input shape; data in PyTorch layout is reshaped row-major to it."""
    return [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]


def run_plain(model: onnx.ModelProto, x_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """onnxruntime, one sample at a time (the graphs have batch 1): (logits, int_logits)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    shape = input_shape(model)
    logits, ints = [], []
    for row in x_u8:
        lo, il = sess.run([OUTPUT_NAME, INT_LOGITS_NAME], {INPUT_NAME: row.reshape(shape)})
        logits.append(lo[0])
        ints.append(il[0])
    return np.array(logits, dtype=np.float64), np.rint(np.array(ints)).astype(np.int64)


def run_qonnx(model: onnx.ModelProto, x_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """qonnx's own executor on the FINN-ready graph: (logits, int_logits)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    mw = ModelWrapper(model)
    mw = mw.transform(InferShapes())
    shape = input_shape(model)
    logits, ints = [], []
    for row in x_u8:
        ctx = execute_onnx(mw, {INPUT_NAME: row.reshape(shape).astype(np.float32)},
                           return_full_exec_context=True)
        logits.append(ctx[OUTPUT_NAME][0])
        ints.append(ctx[INT_LOGITS_NAME][0])
    return np.array(logits, dtype=np.float64), np.rint(np.array(ints)).astype(np.int64)
