# SPDX-License-Identifier: MIT
"""One C emitter per IR op kind (the onnx2c / TFLM shape: adding an op touches one place).

Each ``_emit_<op>(st, i, layer, nxt, lid, cmt)`` reads the op's attributes and arrays, appends
its constant data (``st.data``), its call into the runtime (``st.body``) and its buffers, updates
the current tensor (``st.cur``, ``st.kind``, ``st.shape``), and returns how many IR ops it consumed
(2 when a dense/conv layer absorbs the threshold that follows it into one kernel call).
:func:`bnn2hw.mcu.codegen.emit` drives them through :data:`EMITTERS` and writes the files.
The numpy reference of each op is the function of the same name in :mod:`bnn2hw.ir.ops`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import Bnn2hwError
from ..ir.graph import Graph
from .codegen import _clamp_i32, _flip, c_array, c_float, dense_kernel, ident, pack_bits


@dataclass
class EmitState:
    """What the generator knows while it walks the graph."""

    graph: Graph
    shape: tuple
    kind: str  # "u8", "bits", "acc", "fixed": what the current tensor holds
    cur: str  # the C expression of the current tensor
    data: list = field(default_factory=list)  # static const data (flash)
    body: list = field(default_factory=list)  # statements of bnn_infer
    sizes: list = field(default_factory=list)  # bytes of each ping-pong arena buffer, in order
    statics: list = field(default_factory=list)  # fixed-point tensors: one static buffer each
    fixed_bytes: list = field(default_factory=list)
    helpers: set = field(default_factory=set)  # static helper functions model.c needs
    named: dict = field(default_factory=dict)  # IR tensor name -> C buffer (fixed-point path)
    steps: list = field(default_factory=list)  # IR ops that run a kernel (report)
    flash_bits: int = 0
    thr_count: int = 0
    buf_index: int = 0

    def out_buf(self, nbytes: int) -> str:
        """The next ping-pong arena buffer, sized for ``nbytes``."""
        self.sizes.append(nbytes)
        name = f"arena_{'ab'[self.buf_index % 2]}"
        self.buf_index += 1
        return name


def _emit_flatten(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """(H, W, C) -> H*W*C; bits whose channel count is not a multiple of 32 are repacked densely."""
    if len(st.shape) == 3 and st.kind == "bits" and st.shape[2] % 32 != 0:
        h, w, c = st.shape
        n = h * w * c
        dst = st.out_buf(4 * ((n + 31) // 32))
        st.body.append(f"{cmt}: repack per-pixel channel words into one bit vector */")
        st.body.append(f"    bnn_repack_hwc(({'const bnn_word_t *'}){st.cur}, {h * w}u, {c}u, (bnn_word_t *){dst});")
        st.cur = dst
    st.shape = (int(np.prod(st.shape)),)
    return 1


def _emit_maxpool(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """k x k max-pool on packed bits (max of ±1 = OR)."""
    h, w, c = st.shape
    k, s = layer.attrs["kernel"], layer.attrs["stride"]
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    dst = st.out_buf(4 * oh * ow * ((c + 31) // 32))
    st.data.append(f"static const bnn_pool_params_t {lid}_p = {{{h}u, {w}u, {c}u, {oh}u, {ow}u, "
                f"{k}u, {k}u, {s}u, {s}u}};\n")
    st.body.append(f"{cmt}: {k}x{k} max-pool on bits = OR */")
    st.body.append(f"    bnn_maxpool(&{lid}_p, (const bnn_word_t *){st.cur}, (bnn_word_t *){dst});")
    st.cur = dst
    st.shape = (oh, ow, c)
    st.steps.append(layer.name)
    return 1


def _emit_dense(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """Dense layer; with the following threshold one kernel call producing bits (popcount form on bits input), else integer logits or the fixed-point path's accumulator."""
    w, thr = _flip(layer, nxt)
    o, k = w.shape
    last = nxt is None or nxt.op == "affine"
    wk = layer.attrs.get("weight_kind", "binary")
    if wk == "binary":
        packed = pack_bits(w)
        st.data.append(f"/* {layer.name} <- {layer.source}: {o} x {k} binary weights, bit 1 = +1 */\n")
        st.data.append(c_array("bnn_word_t", f"{lid}_w", packed))
        st.flash_bits += o * k
    else:
        st.data.append(f"/* {layer.name} <- {layer.source}: {o} x {k} int8 weights */\n")
        st.data.append(c_array("int8_t", f"{lid}_w", w.astype(np.int8), per_line=16))
        st.flash_bits += 8 * o * k
    src = f"(const bnn_word_t *){st.cur}" if st.kind == "bits" else st.cur
    if last or nxt.op == "fixed_affine":
        fn, ptype = dense_kernel(layer, st.kind, wk, "acc")
        st.data.append(f"static const {ptype} {lid}_p = {{{k}u, {o}u}};\n")
        if last:  # integer logits
            st.body.append(f"{cmt}: integer logits */")
            st.body.append(f"    {fn}(&{lid}_p, {src}, {lid}_w, logits);")
            st.steps.append(layer.name)
            return 1
        # fixed-point value path: keep the accumulator
        st.statics.append(f"static int32_t {lid}_acc[{o}];")
        st.fixed_bytes.append(4 * o)
        st.body.append(f"{cmt}: {k} -> {o} integer accumulators */")
        st.body.append(f"    {fn}(&{lid}_p, {src}, {lid}_w, {lid}_acc);")
        st.cur, st.kind, st.shape = f"{lid}_acc", "acc", (o,)
        st.steps.append(layer.name)
        return 1
    if nxt.op != "threshold":
        raise Bnn2hwError(f"IR layer {layer.name}: a hidden dense layer must be followed by a threshold")
    fn, ptype = dense_kernel(layer, st.kind, wk, "bits")
    st.data.append(f"static const {ptype} {lid}_p = {{{k}u, {o}u}};\n")
    dst = st.out_buf(4 * ((o + 31) // 32))
    tname = ident(nxt.name)
    if st.kind == "bits":
        mm = np.clip((k - thr) // 2, -1, k)  # acc >= T <=> popcount(x^w) <= floor((K-T)/2)
        st.data.append(f"/* {nxt.name} <- {nxt.source}: max mismatches per output (popcount form) */\n")
        st.data.append(c_array("int32_t", f"{tname}_mm", mm))
        call = f"{fn}(&{lid}_p, {src}, {lid}_w, {tname}_mm, (bnn_word_t *){dst});"
    else:
        st.data.append(f"/* {nxt.name} <- {nxt.source}: thresholds on the integer accumulator */\n")
        st.data.append(c_array("int32_t", f"{tname}_thr", _clamp_i32(thr)))
        call = f"{fn}(&{lid}_p, {src}, {lid}_w, {tname}_thr, (bnn_word_t *){dst});"
    st.thr_count += o
    st.body.append(f"{cmt} + {nxt.name}: {k} -> {o}, thresholded to bits */")
    st.body.append("    " + call)
    st.cur, st.kind, st.shape = dst, "bits", (o,)
    st.steps.append(layer.name)
    return 2


def _emit_conv2d(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """Binary conv (zero padding: a padded tap contributes 0) with its threshold, to packed bits."""
    w, thr = _flip(layer, nxt)
    if thr is None:
        raise Bnn2hwError(f"IR layer {layer.name}: a conv must be followed by a threshold")
    o, kh, kw, c = w.shape
    h, wd, _ = st.shape
    s, p = layer.attrs["stride"], layer.attrs["pad"]
    oh, ow = (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1
    st.data.append(f"static const bnn_conv_params_t {lid}_p = {{{h}u, {wd}u, {c}u, {oh}u, {ow}u, {o}u, "
                f"{kh}u, {kw}u, {s}u, {s}u, {p}u, {p}u}};\n")
    st.data.append(f"/* {layer.name} <- {layer.source}: {o} x {kh}x{kw}x{c} binary weights, "
                "channels packed per tap */\n")
    st.data.append(c_array("bnn_word_t", f"{lid}_w", pack_bits(w)))
    tname = ident(nxt.name)
    st.data.append(f"/* {nxt.name} <- {nxt.source}: thresholds on the accumulator */\n")
    st.data.append(c_array("int32_t", f"{tname}_thr", _clamp_i32(thr)))
    st.flash_bits += o * kh * kw * c
    st.thr_count += o
    dst = st.out_buf(4 * oh * ow * ((o + 31) // 32))
    fn = "bnn_conv_u8_bits" if st.kind == "u8" else "bnn_conv_bits"
    src = st.cur if st.kind == "u8" else f"(const bnn_word_t *){st.cur}"
    st.body.append(f"{cmt} + {nxt.name}: conv {kh}x{kw}/{s} pad {p}, {c} -> {o} channels */")
    st.body.append(f"    {fn}(&{lid}_p, {src}, {lid}_w, {tname}_thr, (bnn_word_t *){dst});")
    st.cur, st.kind, st.shape = dst, "bits", (oh, ow, o)
    st.steps.append(layer.name)
    return 2


def _emit_fixed_affine(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """BatchNorm of an accumulator to a Q-format int32 value (fixed_affine in ir.ops)."""
    n = layer.arrays["mult"].size
    sh = int(layer.attrs["shift"])
    st.data.append(f"/* {layer.name} <- {layer.source}: Q{layer.attrs['frac']} value = "
                f"(acc * mult + bias + 2^{sh}/2) >> {sh} */\n")
    st.data.append(c_array("int32_t", f"{lid}_mult", layer.arrays["mult"]))
    st.data.append(c_array("int64_t", f"{lid}_bias", layer.arrays["bias"], 4,
                        fmt=lambda v: f"INT64_C({int(v)})"))
    st.statics.append(f"static int32_t t_{lid}[{n}];")
    st.fixed_bytes.append(4 * n)
    rnd = f"(INT64_C(1) << {sh - 1})" if sh else "0"
    st.body.append(f"{cmt}: BatchNorm of the accumulator to fixed point Q{layer.attrs['frac']} */")
    st.body.append(f"    bnn_fixed_affine({st.cur}, {lid}_mult, {lid}_bias, {rnd}, {sh}u, {n}u, t_{lid});")
    st.helpers.add("fixed_affine")
    st.cur, st.kind = f"t_{lid}", "fixed"
    st.named[layer.name] = st.cur
    return 1


def _emit_threshold(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """Standalone sign of a fixed-point tensor (0 -> +1), packed to bits."""
    if st.kind != "fixed":
        raise Bnn2hwError(f"IR layer {layer.name}: a standalone threshold needs a fixed-point input")
    n = layer.arrays["thr"].size
    st.data.append(f"static const bnn_threshold_params_t {lid}_p = {{1u, {n}u}};\n")
    st.data.append(c_array("int32_t", f"{lid}_thr", _clamp_i32(layer.arrays["thr"])))
    st.data.append(c_array("int8_t", f"{lid}_dir", layer.arrays["direction"], 16))
    dst = st.out_buf(4 * ((n + 31) // 32))
    st.body.append(f"{cmt}: sign of the fixed-point stream (0 -> +1), packed to bits */")
    st.body.append(f"    bnn_threshold(&{lid}_p, {st.cur}, {lid}_thr, {lid}_dir, (bnn_word_t *){dst});")
    st.cur, st.kind = dst, "bits"
    return 1


def _emit_periodic(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """Periodic activation f(w0 x) in fixed point (lut | taylor | linear), M-BiPer eq. 10-11."""
    at = layer.attrs
    from . import periodic_tables as pt

    prm = pt.make_params(at["w0"], at["in_frac"], at["out_frac"], at.get("table_bits", 8))
    method = {"fixed": "linear"}.get(at["approx"], at["approx"])
    pt.check_method(at["func"], method)
    table = "NULL"
    if method == "lut":
        st.data.append(c_array("int32_t", f"{lid}_table",
                            pt.table(at["func"], prm.table_bits, prm.out_frac)))
        table = f"{lid}_table"
    st.data.append(f"/* {layer.name}: {at['func']}({at['w0']:g} x), Q{at['in_frac']} -> Q{at['out_frac']}, "
                f"approximation '{at['approx']}' (M-BiPer eq. 10-11) */\n")
    st.data.append(f"static const bnn_periodic_params_t {lid}_p = {{{prm.phase_mul}, {prm.phase_shift}u, "
                f"{prm.out_frac}u, {table}, {prm.table_bits}u, {prm.lin_a}, {prm.lin_n}u}};\n")
    n = st.shape[0]
    st.statics.append(f"static int32_t t_{lid}[{n}];")
    st.fixed_bytes.append(4 * n)
    st.body.append(f"{cmt}: periodic activation */")
    st.body.append(f"    bnn_periodic_{method}(&{lid}_p, {st.cur}, t_{lid}, {n}u);")
    st.cur = f"t_{lid}"
    st.named[layer.name] = st.cur
    return 1


def _emit_add(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """Saturating residual sum of two fixed-point tensors named by the op's inputs."""
    a_name, b_name = st.graph.inputs_of(i)
    n = st.shape[0]
    st.statics.append(f"static int32_t t_{lid}[{n}];")
    st.fixed_bytes.append(4 * n)
    st.body.append(f"{cmt}: residual sum {a_name} + {b_name} (saturating) */")
    st.body.append(f"    bnn_add_sat({st.named[ident(a_name)]}, {st.named[ident(b_name)]}, {n}u, t_{lid});")
    st.helpers.add("add")
    st.cur = f"t_{lid}"
    st.named[layer.name] = st.cur
    return 1


def _emit_affine(st: EmitState, i: int, layer, nxt, lid: str, cmt: str) -> int:
    """The float head: per-class scale and bias for bnn_predict (not used by bnn_infer)."""
    st.data.append("/* logits <- head: float logits = int_logits * scale + bias (bnn_predict) */\n")
    st.data.append(c_array("float", "logit_scale", layer.arrays["scale"].astype(np.float32), 4,
                        fmt=c_float))
    st.data.append(c_array("float", "logit_bias", layer.arrays["bias"].astype(np.float32), 4,
                        fmt=c_float))
    return 1


EMITTERS = {"flatten": _emit_flatten, "maxpool": _emit_maxpool, "dense": _emit_dense, "conv2d": _emit_conv2d,
            "fixed_affine": _emit_fixed_affine, "threshold": _emit_threshold, "periodic": _emit_periodic,
            "add": _emit_add, "affine": _emit_affine}
"""IR op -> its C emitter."""
