# SPDX-License-Identifier: MIT
"""IR graphs with a residual stream -> the FINN-ready QONNX graph and the plain (onnxruntime)
graph, in channels-last (NHWC) layout. Used by :func:`bnn2hw.fpga.onnx_export.build_onnx` for
every graph that has a ``requant``, ``add`` or ``avgpool`` op, a branch, or a padded conv.

Invariant: every tensor of the written graph holds integers, and the graph's output is the IR's
integer logits; qonnx's executor (``finn``) and onnxruntime (``plain``) reproduce them exactly.

FINN's residual pattern (``hw/FINN_NOTES.md`` section 7), op by op:

* ``conv2d``: ``Im2Col`` (qonnx, NHWC, patches in (ky, kx, c) order, the IR's weight order) +
  ``MatMul`` with ±1 weights (``BIPOLAR``). FINN turns a padded ``Im2Col`` into ``FMPadding`` +
  ``ConvolutionInputGenerator``; FMPadding writes the bit 0, which is -1 on a binary stream, so
  ``pad_value -1`` is exact (the ONNX ``Im2Col`` has ``pad_value -1`` on the bipolar values;
  bnn2hw's FINN streamlining step sets it to 0 once the stream is BINARY,
  :mod:`bnn2hw.fpga.finn_steps`). ``pad_value 0`` on a binary input (a padded tap contributes 0)
  is refused: FINN's padding cannot write a 0 into a binary stream. Padding of the uint8 input is
  a real 0 and exact.
* ``requant``: one ``MultiThreshold`` per layer, ``out_dtype INT<bits>``, ``out_bias
  -2^(bits-1)``, ``2^bits - 1`` thresholds per channel: threshold j is the smallest reachable
  input value whose requantized value is >= -2^(bits-1) + j, found by evaluating
  :func:`bnn2hw.ir.ops.requant` on **every** reachable input value (so the thresholds equal the
  integer requant by construction, saturation included). A channel with a negative multiplier is
  decreasing in its input; its accumulator is negated by negating the producing conv's weight row
  (±1 stays ±1). After an XNOR layer the accumulator has the parity of the fan-in K, and only
  values of that parity are enumerated, so FINN's popcount thresholds (T + K) / 2 are integers.
  FINN absorbs the MultiThreshold into the conv's MVAU.
* ``add``: ONNX ``Add`` of the two ``INT<bits>`` streams (FINN: ``AddStreams``), followed, when
  the sum can leave the IR's ``bits``, by a ``MultiThreshold`` that saturates it (thresholds
  -2^(bits-1)+1 .. 2^(bits-1)-1, FINN: ``Thresholding``).
* ``threshold`` on a stream: ``MultiThreshold`` -> ``BIPOLAR`` (x >= thr). A ``direction -1``
  channel (x <= thr, i.e. not x >= thr + 1) is written as x >= thr + 1, whose bit is the
  negation, and every consumer's weight column for that channel is negated. The thresholding is
  emitted once **per consumer**: qonnx's ``ConvertBipolarMatMulToXnorPopcount`` converts one
  BIPOLAR MultiThreshold per MatMul and fails on a shared one.
* a tensor read by several ops is simply read by several nodes: FINN's
  ``InferDuplicateStreamsLayer`` inserts ``DuplicateStreams``.
* ``avgpool`` (global only, kernel = H = W): ``GlobalAveragePool`` (NCHW) + ``Mul(H*W)``, i.e.
  the window sum; FINN's ``InferGlobalAccPoolLayer`` makes it ``GlobalAccPool`` (a sum) +
  ``Mul(1/(H*W))``, and bnn2hw's step collapses the two Muls to 1. The float32 round trip
  ``(s / n) * n`` is checked exact on every reachable sum when the graph is built.
* ``dense`` on a stream: ``MatMul`` with ``INT8`` weights (FINN: an MVAU, no activation).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from ..errors import Bnn2hwError
from ..ir import ops
from ..ir.graph import INPUT, Graph

INT_BITS_MAX = 32


def int_type(lo: int, hi: int) -> str:
    """The smallest qonnx ``INT<n>`` holding every value in [lo, hi]."""
    n = 2
    while lo < -(1 << (n - 1)) or hi > (1 << (n - 1)) - 1:
        n += 1
    return f"INT{n}"


def monotone_thresholds(f, lo: np.ndarray, hi: np.ndarray, out_lo: int, levels: int,
                        parity: int | None = None, name: str = "") -> np.ndarray:
    """Per channel c, the ``levels`` thresholds t_1 <= ... of a non-decreasing integer function
    ``f(v)[c]`` on the reachable inputs v in [lo[c], hi[c]] (of parity ``parity`` if given):
    t_j = the smallest reachable v with f(v) >= out_lo + j, or the first value above the range
    when none. Then ``out_lo + #{j : v >= t_j} == f(v)`` for every reachable v (MultiThreshold
    semantics). ``f`` maps an int64 vector (N,) to (N, C)."""
    lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
    step = 2 if parity is not None else 1
    gl, gh = int(lo.min()), int(hi.max())
    if parity is not None:
        gl += (gl - parity) % 2
    v = np.arange(gl, gh + 1, step, dtype=np.int64)
    q = f(v)
    C = len(lo)
    thr = np.empty((C, levels), dtype=np.int64)
    want = out_lo + np.arange(1, levels + 1)
    for c in range(C):
        m = (v >= lo[c]) & (v <= hi[c])
        vc, qc = v[m], q[m, c]
        if len(vc) and np.any(np.diff(qc) < 0):
            raise Bnn2hwError(f"IR layer {name}: channel {c} is not monotone in its input, so it has no "
                              "MultiThreshold form")
        idx = np.searchsorted(qc, want, side="left")
        above = (vc[-1] if len(vc) else hi[c]) + step
        thr[c] = np.where(idx < len(vc), vc[np.minimum(idx, max(len(vc) - 1, 0))], above)
    return thr


class _Emitter:
    """One pass over the IR in topological order, writing ONNX nodes; keeps per tensor the
    ONNX name, the value range per channel, the parity of an XNOR accumulator and the sign with
    which each channel is stored (``neg``: the ONNX value is ``neg * IR value``)."""

    def __init__(self, graph: Graph, finn: bool):
        self.g, self.finn = graph, finn
        self.nodes, self.inits, self.ann = [], [], {}
        self.shapes: dict[str, list[int]] = {}  # value_info for custom-op inputs qonnx cannot infer
        self.counter = 0
        self.t: dict[str, dict] = {}
        self.consumers: dict[str, list[int]] = {}
        for i in range(len(graph.layers)):
            for n in graph.inputs_of(i):
                self.consumers.setdefault(n, []).append(i)

    # ---------------------------------------------------------------- helpers
    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.counter}"

    def init(self, arr: np.ndarray, prefix: str, dtype: str | None = None) -> str:
        from onnx import numpy_helper

        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), n))
        if dtype:
            self.ann[n] = dtype
        return n

    def node(self, op: str, inputs: list, prefix: str, doc: str, domain: str | None = None, **attrs) -> str:
        out = self.name(prefix)
        kw = {"domain": domain} if domain else {}
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, doc_string=doc, **kw, **attrs))
        return out

    def layer_err(self, layer, msg: str) -> Bnn2hwError:
        return Bnn2hwError(f"IR layer {layer.name} ({layer.op}, from {layer.source}): {msg}")

    def multithreshold(self, x: str, thr: np.ndarray, out_dtype: str, out_scale: float, out_bias: float,
                       rank: int, prefix: str, doc: str) -> str:
        """qonnx MultiThreshold (finn) or its standard-op equivalent (plain): out_scale *
        #{j : x >= thr[c, j]} + out_bias per channel c (the last axis)."""
        tdt = int_type(int(thr.min()), int(thr.max()))
        if self.finn:
            tn = self.init(thr.astype(np.float32), f"{prefix}_T", tdt)
            attrs = {"out_dtype": out_dtype, "out_scale": float(out_scale), "out_bias": float(out_bias)}
            if rank == 4:
                attrs["data_layout"] = "NHWC"
            out = self.node("MultiThreshold", [x, tn], prefix, doc, domain="qonnx.custom_op.general", **attrs)
            self.ann[out] = out_dtype
            return out
        tn = self.init(thr.astype(np.float32), f"{prefix}_T")
        ax = self.init(np.array([-1], dtype=np.int64), "axis_last")
        u = self.node("Unsqueeze", [x, ax], f"{prefix}_u", doc)
        ge = self.node("GreaterOrEqual", [u, tn], f"{prefix}_ge", doc)
        f = self.node("Cast", [ge], f"{prefix}_f", doc, to=TensorProto.FLOAT)
        s = self.node("ReduceSum", [f, ax], f"{prefix}_n", doc, keepdims=0)
        sc = self.init(np.array(out_scale, dtype=np.float32), "scale")
        bi = self.init(np.array(out_bias, dtype=np.float32), "bias")
        m = self.node("Mul", [s, sc], f"{prefix}_m", doc)
        return self.node("Add", [m, bi], prefix, doc)

    def nchw(self, x: str, doc: str) -> str:
        return self.node("Transpose", [x], "to_nchw", doc, perm=[0, 3, 1, 2])

    def nhwc(self, x: str, doc: str) -> str:
        return self.node("Transpose", [x], "to_nhwc", doc, perm=[0, 2, 3, 1])

    # ---------------------------------------------------------------- flips
    def out_flip(self, i: int) -> np.ndarray:
        """Per output channel ±1 for the conv/dense op i: -1 where its single consumer needs the
        negated accumulator (a threshold with direction -1, a requant with a negative multiplier)."""
        layer = self.g.layers[i]
        o = layer.arrays["weight"].shape[0]
        cons = self.consumers.get(layer.name, [])
        if len(cons) != 1:
            if any(self.g.layers[j].op in ("threshold", "requant") for j in cons):
                raise self.layer_err(layer, "its accumulator feeds several ops; the FINN export needs one "
                                            "consumer (the MultiThreshold is absorbed into the MVAU)")
            return np.ones(o, dtype=np.int64)
        nxt = self.g.layers[cons[0]]
        if nxt.op == "threshold":
            return nxt.arrays["direction"].astype(np.int64)
        if nxt.op == "requant":
            return np.where(nxt.arrays["mult"] < 0, -1, 1).astype(np.int64)
        return np.ones(o, dtype=np.int64)

    # ---------------------------------------------------------------- ops
    def run(self):
        g = self.g
        shape = tuple(g.input_shape)
        image = len(shape) == 3
        in_shape = [1, shape[2], shape[0], shape[1]] if image else [1, shape[0]]
        if self.finn:
            cur = "global_in"
            self.ann[cur] = "UINT8"
        else:
            cur = self.node("Cast", ["global_in"], "x_float", "uint8 input to float", to=TensorProto.FLOAT)
        if image:
            cur = self.nhwc(cur, "NCHW input to the channels-last stream")
            if self.finn:
                self.ann[cur] = "UINT8" if g.input_kind == "u8" else "BIPOLAR"
        if g.input_kind == "bits":
            rng = (-1, 1)
        else:
            rng = (0, 255)
        C = shape[-1]
        self.t[INPUT] = {"onnx": cur, "kind": g.input_kind, "shape": shape,
                         "lo": np.full(C, rng[0]), "hi": np.full(C, rng[1]), "parity": None,
                         "neg": np.ones(C, dtype=np.int64)}
        last_dense = max(i for i, l in enumerate(g.layers) if l.op == "dense")
        for i, layer in enumerate(g.layers):  # a FINN stream nobody reads would hang the dataflow
            if i != last_dense and layer.op != "affine" and not self.consumers.get(layer.name):
                raise self.layer_err(layer, f"its tensor is never read; the graph's integer logits come from "
                                            f"{g.layers[last_dense].name}. The FPGA export needs every op to feed "
                                            "the output (remove the dead op)")
        affine = None
        for i, layer in enumerate(g.layers):
            doc = f"bnn2hw IR op {layer.name} ({layer.op}) from PyTorch module {layer.source}"
            srcs = [self.t[n] for n in g.inputs_of(i)]
            fn = getattr(self, f"op_{layer.op}", None)
            if fn is None:
                raise self.layer_err(layer, "has no form in the FINN residual graph")
            if layer.op == "affine":
                affine = layer
                continue
            self.t[layer.name] = fn(i, layer, srcs, doc, last=(i == last_dense))
        return in_shape, self.t[g.layers[last_dense].name]["onnx"], affine

    def _bits_source(self, src: dict, consumer: str) -> tuple[str, np.ndarray]:
        """ONNX tensor of a bits input for one consumer (a deferred stream threshold is emitted
        here, once per consumer) and its per-channel storage sign."""
        if "deferred" in src:
            d = src["deferred"]
            layer = next(l for l in self.g.layers if l.name == consumer)
            padded = layer.op == "conv2d" and layer.attrs.get("pad", 0)
            if padded and np.any(src["neg"] < 0):
                # a padded position must hold -1 in every channel, so the bit cannot be stored
                # negated: negate the stream per channel instead (x <= thr <=> -x >= -thr)
                sign = src["neg"]
                m = self.node("Mul", [d["x"], self.init(sign.astype(np.float32), "channel_sign")],
                              f"{d['name']}_neg_for_{consumer}", d["doc"] + " (-x for the direction -1 channels)")
                lo, hi = d["lo"], d["hi"]
                self.ann[m] = int_type(int(min(lo.min(), -hi.max())), int(max(hi.max(), -lo.min())))
                t = np.where(sign > 0, d["t_pos"], np.clip(-d["t_raw"], -hi, -lo + 1))
                x = self.multithreshold(m, t.reshape(-1, 1), "BIPOLAR", 2.0, -1.0, d["rank"],
                                        f"{d['name']}_for_{consumer}", d["doc"] + f" (copy for {consumer})")
                return x, np.ones_like(sign)
            x = self.multithreshold(d["x"], d["thr"], "BIPOLAR", 2.0, -1.0, d["rank"], f"{d['name']}_for_{consumer}",
                                    d["doc"] + f" (copy for {consumer})")
            return x, src["neg"]
        return src["onnx"], src["neg"]

    def op_conv2d(self, i, layer, srcs, doc, last):
        src = srcs[0]
        w = layer.arrays["weight"].astype(np.int64)  # (O, kh, kw, C)
        o, kh, kw, c = w.shape
        s, p = layer.attrs["stride"], layer.attrs["pad"]
        pv = int(layer.attrs.get("pad_value", 0))
        kind = layer.attrs["in"]
        if layer.attrs.get("weight_kind", "binary") != "binary" or "pad_u8" in layer.arrays:
            raise self.layer_err(layer, "an int8 convolution on the uint8 input padded with the mean pixel (the "
                                        "quantized full-precision first layer of an official BiPer model) has no "
                                        "FINN form here; deploy the model with `bnn2hw emit-c`")
        if kind == "bits" and p and pv == 0:
            raise self.layer_err(layer, "zero padding of a binary input (a padded tap contributes 0) has no exact "
                                        "FINN form: FINN's FMPadding writes the bit 0, i.e. -1. Train the model "
                                        "with `--pad-value -1` (then FINN's padding is exact), or deploy it with "
                                        "`bnn2hw emit-c`")
        if kind != "bits":
            pv = 0
        x, neg = (self._bits_source(src, layer.name) if kind == "bits" else (src["onnx"], src["neg"]))
        flip = self.out_flip(i)
        w = w * flip[:, None, None, None] * neg[None, None, None, :]
        h, wd = src["shape"][0], src["shape"][1]
        oh, ow = (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1
        if self.finn:
            col = self.node("Im2Col", [x], f"{layer.name}_im2col", doc, domain="qonnx.custom_op.general",
                            stride=[s, s], kernel_size=[kh, kw], input_shape=f"(1, {h}, {wd}, {c})",
                            pad_amount=[p, p, p, p], pad_value=pv, dilations=[1, 1], depthwise=0)
            self.ann[col] = "BIPOLAR" if kind == "bits" else self.ann.get(x, "UINT8")
            wm = w.reshape(o, -1).T.astype(np.float32)
            wn = self.init(wm, f"{layer.name}_W", "BIPOLAR")
            out = self.node("MatMul", [col, wn], layer.name, doc)
        else:
            y = self.nchw(x, doc)
            if p:
                pads = self.init(np.array([0, 0, p, p, 0, 0, p, p], dtype=np.int64), "pads")
                val = self.init(np.array(float(pv), dtype=np.float32), "pad_value")
                y = self.node("Pad", [y, pads, val], f"{layer.name}_pad", doc, mode="constant")
            wn = self.init(w.transpose(0, 3, 1, 2).astype(np.float32), f"{layer.name}_W")
            y = self.node("Conv", [y, wn], layer.name, doc, kernel_shape=[kh, kw], strides=[s, s],
                          pads=[0, 0, 0, 0], group=1, dilations=[1, 1])
            out = self.nhwc(y, doc)
        lo_in, hi_in = src["lo"] * neg, src["hi"] * neg
        lo_in, hi_in = np.minimum(lo_in, hi_in), np.maximum(lo_in, hi_in)
        if p:
            lo_in, hi_in = np.minimum(lo_in, pv), np.maximum(hi_in, pv)
        wl = w.reshape(o, kh * kw, c)
        lo = np.minimum(wl * lo_in, wl * hi_in).reshape(o, -1).sum(1)
        hi = np.maximum(wl * lo_in, wl * hi_in).reshape(o, -1).sum(1)
        parity = kh * kw * c if kind == "bits" else None
        return {"onnx": out, "kind": "acc", "shape": (oh, ow, o), "lo": lo, "hi": hi, "parity": parity,
                "neg": flip}

    def op_dense(self, i, layer, srcs, doc, last):
        src = srcs[0]
        if len(src["shape"]) == 3:  # the IR's dense reads any tensor flattened in (y, x, c) order
            if "deferred" in src:
                raise self.layer_err(layer, "a dense layer on a stream threshold needs a flatten in between")
            src = self.op_flatten(i, layer, [src], doc, last)
        w = layer.arrays["weight"].astype(np.int64)  # (O, F)
        o, f = w.shape
        kind = layer.attrs["in"]
        binary = layer.attrs.get("weight_kind") == "binary"
        x, neg = (self._bits_source(src, layer.name) if kind == "bits" else (src["onnx"], src["neg"]))
        negf = np.resize(neg, f)  # a flattened (H, W, C) tensor repeats its channel signs
        lo_in = np.resize(src["lo"], f) * negf
        hi_in = np.resize(src["hi"], f) * negf
        lo_in, hi_in = np.minimum(lo_in, hi_in), np.maximum(lo_in, hi_in)
        flip = np.ones(o, dtype=np.int64) if last else self.out_flip(i)
        w = w * flip[:, None] * negf[None, :]
        wdt = ("INT2" if last and kind == "bits" else "BIPOLAR") if binary else "INT8"
        wn = self.init(w.T.astype(np.float32), f"{layer.name}_W", wdt if self.finn else None)
        out = self.node("MatMul", [x, wn], layer.name, doc)
        lo = np.minimum(w * lo_in, w * hi_in).sum(1)
        hi = np.maximum(w * lo_in, w * hi_in).sum(1)
        parity = f if (kind == "bits" and binary) else None
        return {"onnx": out, "kind": "acc", "shape": (o,), "lo": lo, "hi": hi, "parity": parity, "neg": flip}

    def op_requant(self, i, layer, srcs, doc, last):
        src = srcs[0]
        a, at = layer.arrays, layer.attrs
        mult, bias = a["mult"].astype(np.int64), a["bias"].astype(np.int64)
        shift, bits = int(at["shift"]), int(at["bits"])
        neg = src["neg"]
        if np.any((mult < 0) & (neg > 0)):
            c = int(np.argmax((mult < 0) & (neg > 0)))
            raise self.layer_err(layer, f"channel {c} has a negative multiplier on a {src['kind']} input whose sign "
                                        "cannot be folded into a weight; FINN's MultiThreshold needs a non-decreasing "
                                        "requantization")
        out_lo = -(1 << (bits - 1))
        lo, hi = src["lo"], src["hi"]
        if hi.max() - lo.min() > 1 << 24:
            raise self.layer_err(layer, f"input range [{lo.min()}, {hi.max()}] is too wide to enumerate")
        thr = monotone_thresholds(lambda v: ops.requant((v[:, None] * neg[None, :]), mult, bias, shift, bits),
                                  lo, hi, out_lo, (1 << bits) - 1, src["parity"], layer.name)
        rank = 1 + len(src["shape"])
        out = self.multithreshold(src["onnx"], thr, f"INT{bits}", 1.0, out_lo, rank, layer.name, doc)
        q_lo = ops.requant(lo[None, :] * neg, mult, bias, shift, bits)[0]
        q_hi = ops.requant(hi[None, :] * neg, mult, bias, shift, bits)[0]
        return {"onnx": out, "kind": "fixed", "shape": src["shape"], "lo": np.minimum(q_lo, q_hi),
                "hi": np.maximum(q_lo, q_hi), "parity": None, "neg": np.ones(len(mult), dtype=np.int64),
                "dtype": f"INT{bits}"}

    def op_threshold(self, i, layer, srcs, doc, last):
        src = srcs[0]
        thr = layer.arrays["thr"].astype(np.int64)
        d = layer.arrays["direction"].astype(np.int64)
        rank = 1 + len(src["shape"])
        if src["kind"] == "acc":  # the producer's weights were negated for direction -1 (out_flip)
            t = np.where(d > 0, thr, -thr)
            if src["parity"] is not None:
                t = t + np.mod(t - src["parity"], 2)
            t = np.clip(t, src["lo"], src["hi"] + 2)
            out = self.multithreshold(src["onnx"], t.reshape(-1, 1), "BIPOLAR", 2.0, -1.0, rank, layer.name, doc)
            if len(self.consumers.get(layer.name, [])) > 1:
                raise self.layer_err(layer, "binary activations read by several ops must come from a threshold on "
                                            "the residual stream (FINN converts one BIPOLAR MultiThreshold per XNOR layer)")
            return {"onnx": out, "kind": "bits", "shape": src["shape"], "lo": -np.ones_like(t), "hi": np.ones_like(t),
                    "parity": None, "neg": np.ones(len(t), dtype=np.int64)}
        if np.any(src["neg"] < 0):
            raise self.layer_err(layer, "reads a tensor stored negated")
        # x <= thr  <=>  not (x >= thr + 1): write x >= thr + 1 and negate the bit (consumers' weights)
        t = np.where(d > 0, thr, thr + 1)
        t = np.clip(t, src["lo"], src["hi"] + 1)
        for j in self.consumers.get(layer.name, []):
            if self.g.layers[j].op not in ("conv2d", "dense") and np.any(d < 0):
                raise self.layer_err(layer, f"a direction -1 channel feeds {self.g.layers[j].name} "
                                            f"({self.g.layers[j].op}), which cannot absorb the negated bit")
        return {"deferred": {"x": src["onnx"], "thr": t.reshape(-1, 1), "rank": rank, "name": layer.name,
                             "doc": doc, "t_pos": t, "t_raw": thr, "lo": src["lo"], "hi": src["hi"]},
                "onnx": None, "kind": "bits", "shape": src["shape"], "lo": -np.ones_like(t), "hi": np.ones_like(t),
                "parity": None, "neg": d}

    def op_add(self, i, layer, srcs, doc, last):
        a, b = srcs
        if a.get("dtype") != b.get("dtype") or a.get("dtype") is None:
            raise self.layer_err(layer, f"adds streams of types {a.get('dtype')} and {b.get('dtype')}; FINN's "
                                        "AddStreams needs both inputs of one INT type (requantize both to the same bits)")
        bits = int(layer.attrs.get("bits", 32))
        out = self.node("Add", [a["onnx"], b["onnx"]], layer.name, doc)
        lo, hi = a["lo"] + b["lo"], a["hi"] + b["hi"]
        in_bits = int(a["dtype"][3:])
        self.ann[out] = f"INT{in_bits + 1}"
        qlo, qhi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        dtype = f"INT{in_bits + 1}"
        if lo.min() < qlo or hi.max() > qhi:
            thr = monotone_thresholds(lambda v: np.clip(np.repeat(v[:, None], len(lo), 1), qlo, qhi),
                                      lo, hi, qlo, (1 << bits) - 1, None, layer.name)
            out = self.multithreshold(out, thr, f"INT{bits}", 1.0, qlo, 1 + len(a["shape"]),
                                      f"{layer.name}_sat", doc + f" (saturation to {bits} bits)")
            lo, hi, dtype = np.clip(lo, qlo, qhi), np.clip(hi, qlo, qhi), f"INT{bits}"
        return {"onnx": out, "kind": "fixed", "shape": a["shape"], "lo": lo, "hi": hi, "parity": None,
                "neg": np.ones(len(lo), dtype=np.int64), "dtype": dtype}

    def op_avgpool(self, i, layer, srcs, doc, last):
        src = srcs[0]
        h, w, c = src["shape"]
        k = layer.attrs["kernel"]
        if not (k == h == w):
            raise self.layer_err(layer, f"a {k}x{k} average pool on a {h}x{w} map: the FINN export supports global "
                                        "average pooling only (kernel = H = W: FINN's GlobalAccPool)")
        n = h * w
        lo, hi = src["lo"] * n, src["hi"] * n
        if self.finn:
            sums = np.arange(int(lo.min()), int(hi.max()) + 1, dtype=np.float32)
            back = (sums / np.float32(n)).astype(np.float32) * np.float32(n)
            if not np.array_equal(back, sums) or abs(sums).max() >= 1 << 24:
                raise self.layer_err(layer, f"the float32 round trip (sum / {n}) * {n} of GlobalAveragePool is not "
                                            "exact on the reachable sums")
            y = self.node("GlobalAveragePool", [self.nchw(src["onnx"], doc)], f"{layer.name}_mean", doc)
            out = self.node("Mul", [y, self.init(np.array(float(n), dtype=np.float32), "pool_size")],
                            layer.name, doc + " (mean * H*W = the window sum)")
            shape_kind = "nchw11"
        else:
            axes = self.init(np.array([1, 2], dtype=np.int64), "axes_hw")
            out = self.node("ReduceSum", [src["onnx"], axes], layer.name, doc, keepdims=1)
            shape_kind = "nhwc"
        self.ann[out] = int_type(int(lo.min()), int(hi.max()))
        return {"onnx": out, "kind": "fixed", "shape": (1, 1, c), "lo": lo, "hi": hi, "parity": None,
                "neg": src["neg"], "layout": shape_kind, "dtype": self.ann[out]}

    def op_maxpool(self, i, layer, srcs, doc, last):
        src = srcs[0]
        k, s = layer.attrs["kernel"], layer.attrs["stride"]
        x, neg = self._bits_source(src, layer.name)
        if self.finn:
            self.shapes[x] = [1, *src["shape"]]  # MaxPoolNHWC's shape inference reads its input's
            out = self.node("MaxPoolNHWC", [x], layer.name, doc, domain="qonnx.custom_op.general",
                            kernel_shape=[k, k], strides=[s, s], pads=[0, 0, 0, 0])
            self.ann[out] = "BIPOLAR"
        else:
            y = self.node("MaxPool", [self.nchw(x, doc)], layer.name, doc, kernel_shape=[k, k], strides=[s, s],
                          pads=[0, 0, 0, 0])
            out = self.nhwc(y, doc)
        h, w, c = src["shape"]
        return {"onnx": out, "kind": "bits", "shape": ((h - k) // s + 1, (w - k) // s + 1, c), "lo": src["lo"],
                "hi": src["hi"], "parity": None, "neg": neg}

    def op_flatten(self, i, layer, srcs, doc, last):
        src = dict(srcs[0])
        if src["kind"] == "bits" and "deferred" in src:
            raise self.layer_err(layer, "flattening a stream threshold is not supported by the FINN export")
        if len(src["shape"]) == 1:
            return src
        out = self.node("Flatten", [src["onnx"]], f"{layer.name}_flat" if layer.op != "flatten" else layer.name,
                        doc, axis=1)
        if src["onnx"] in self.ann:
            self.ann[out] = self.ann[src["onnx"]]
        f = int(np.prod(src["shape"]))
        src.update(onnx=out, shape=(f,), lo=np.resize(src["lo"], f), hi=np.resize(src["hi"], f),
                   neg=np.resize(src["neg"], f))
        return src

    def op_affine(self, *a, **k):  # handled in run()
        return None


def residual_nodes(graph: Graph, finn: bool):
    """(nodes, initializers, dtype annotations, input shape, integer-logit tensor, affine layer,
    {tensor: shape} value infos the graph must carry)."""
    em = _Emitter(graph, finn)
    in_shape, logits, affine = em.run()
    return em.nodes, em.inits, em.ann, in_shape, logits, affine, em.shapes


def stream_tensor_names(graph: Graph, finn: bool) -> dict[str, str]:
    """IR tensor name -> ONNX tensor name in the graph :func:`residual_nodes` writes (names are
    deterministic), for every IR tensor that is stored as is (not negated, not deferred): the
    requantized streams, the (saturated) sums, the pool sums. Lets tests read the stream
    integers out of qonnx/onnxruntime."""
    em = _Emitter(graph, finn)
    em.run()
    return {k: v["onnx"] for k, v in em.t.items()
            if k != INPUT and v.get("onnx") and v["kind"] == "fixed" and np.all(v["neg"] > 0)}


def needs_residual_form(graph: Graph) -> bool:
    """True for graphs the chain emitter cannot write: residual ops, branches, padded convs."""
    if graph.branches():
        return True
    for layer in graph.layers:
        if layer.op in ("requant", "add", "avgpool"):
            return True
        if layer.op == "conv2d" and layer.attrs.get("pad", 0):
            return True
        if layer.op == "dense" and layer.attrs.get("in") == "fixed":
            return True
    return False
