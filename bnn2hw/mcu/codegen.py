# SPDX-License-Identifier: MIT
"""IR -> ``model.h`` / ``model.c``: static const packed weights, a static ping-pong arena and
one entry point, calling the hand-written runtime in ``firmware/`` (bit convention in
``firmware/include/bnn_bits.h``: bit 1 = +1, LSB first, padding bits 0).

One emitter per layer pattern; each emitted call carries a comment naming its IR layer and the
PyTorch module it came from. Lowering done here (the IR stays direction-explicit):

* negative-direction channels (``acc <= T``) become ``-acc >= -T`` by negating the weight row
  (flipping its bits, padding bits stay 0), so every kernel compares with ``>=``;
* a binary dense layer on bits compares the popcount instead of the accumulator:
  ``acc = K - 2p >= T  <=>  p <= floor((K - T) / 2)`` (``max_mismatch``, clamped to [-1, K]);
* conv layers keep thresholds on ``acc`` because zero padding makes the fan-in position-dependent.

Accumulator widths: every accumulator is int32; :func:`check_accumulators` proves from each
layer's fan-in that none can overflow (|acc| <= 255 * 127 * K < 2^31).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np

from .. import __version__
from ..errors import Bnn2hwError
from ..ir.graph import Graph, Layer

C_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def ident(name: str) -> str:
    if not C_IDENT.match(name):
        raise Bnn2hwError(f"IR layer name {name!r} is not a valid C identifier")
    return name


def pack_bits(pm1: np.ndarray) -> np.ndarray:
    """±1 vectors (..., K) -> uint32 words (..., ceil(K/32)); bit i%32 of word i/32 is 1 for +1."""
    pm1 = np.asarray(pm1)
    k = pm1.shape[-1]
    nw = (k + 31) // 32
    bits = np.zeros(pm1.shape[:-1] + (nw * 32,), dtype=np.uint64)
    bits[..., :k] = pm1 > 0
    bits = bits.reshape(pm1.shape[:-1] + (nw, 32))
    return (bits << np.arange(32, dtype=np.uint64)).sum(-1).astype(np.uint32)


def c_array(ctype: str, name: str, values: np.ndarray, per_line: int = 8, fmt=None) -> str:
    vals = np.asarray(values).ravel()
    if fmt is None:
        fmt = (lambda v: f"0x{int(v):08x}u") if ctype == "bnn_word_t" else (lambda v: str(int(v)))
    body = []
    for i in range(0, len(vals), per_line):
        body.append("    " + ", ".join(fmt(v) for v in vals[i:i + per_line]) + ",")
    if not body:
        body = ["    0"]
    return f"static const {ctype} {ident(name)}[{max(len(vals), 1)}] = {{\n" + "\n".join(body) + "\n};\n"


def c_float(v) -> str:
    """A C float literal that round-trips float32 (``1.000000000e+00f``, never ``1f``)."""
    return f"{float(v):.9e}f"


def entry_points(body: str) -> str:
    """C source of ``bnn_infer`` (argument checks around the generated ``body``) and
    ``bnn_predict`` (float head + argmax), shared by the binary and the float generators."""
    return f"""int bnn_infer(const uint8_t *input, size_t input_len, int32_t *logits, size_t logits_len)
{{
    if (input == NULL || logits == NULL) {{
        return BNN_ERR_NULL;
    }}
    if (input_len != BNN_INPUT_LEN) {{
        return BNN_ERR_INPUT_LEN;
    }}
    if (logits_len != BNN_NUM_LOGITS) {{
        return BNN_ERR_LOGITS_LEN;
    }}
{body}
    return BNN_OK;
}}

int bnn_predict(const uint8_t *input, size_t input_len)
{{
    int32_t logits[BNN_NUM_LOGITS];
    int best = 0;
    float best_val = 0.0f;
    uint32_t c;
    const int rc = bnn_infer(input, input_len, logits, BNN_NUM_LOGITS);
    if (rc != BNN_OK) {{
        return rc;
    }}
    for (c = 0; c < BNN_NUM_LOGITS; ++c) {{
        const float v = (float)logits[c] * logit_scale[c] + logit_bias[c];
        if (c == 0 || v > best_val) {{
            best_val = v;
            best = (int)c;
        }}
    }}
    return best;
}}
"""


@dataclass
class Emitted:
    header: str
    source: str
    scratch_bytes: int
    flash_lower_bound_bytes: int
    steps: list = field(default_factory=list)


def check_accumulators(graph: Graph) -> list[dict]:
    """Static proof that no int32 accumulator overflows: max |acc| from fan-in and input range."""
    rows = []
    for layer in graph.layers:
        if layer.op not in ("dense", "conv2d"):
            continue
        w = layer.arrays["weight"]
        fan_in = int(np.prod(w.shape[1:]))
        in_max = 255 if layer.attrs["in"] == "u8" else 1
        w_max = 127 if layer.attrs.get("weight_kind") == "int8" else 1
        bound = in_max * w_max * fan_in
        if bound >= 2 ** 31:
            raise Bnn2hwError(f"layer {layer.name} ({layer.source}): |acc| can reach {bound}, "
                              "beyond int32")
        rows.append({"layer": layer.name, "fan_in": fan_in, "max_abs_acc": bound,
                     "bits_needed": int(np.ceil(np.log2(bound + 1))) + 1})
    return rows


def _flip(layer: Layer, nxt: Layer | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Weights with negative-direction rows negated, thresholds as >= on the flipped acc."""
    w = layer.arrays["weight"].astype(np.int64)
    if nxt is None or nxt.op != "threshold":
        return w, None
    d = nxt.arrays["direction"].astype(np.int64)
    w = w * d.reshape((-1,) + (1,) * (w.ndim - 1))
    thr = np.where(d > 0, nxt.arrays["thr"], -nxt.arrays["thr"]).astype(np.int64)
    return w, thr


def _clamp_i32(t: np.ndarray) -> np.ndarray:
    return np.clip(t, -(2 ** 31) + 1, 2 ** 31 - 1)


# (input kind, weight kind, output) -> (runtime kernel, its params struct). The struct type
# follows the kernel family: bnn_dense_* take bnn_dense_params_t, the 8-bit first/last kernels
# (bnn_first_*, bnn_last_*) take bnn_first_params_t.
DENSE_KERNELS = {
    ("bits", "binary", "acc"): ("bnn_dense_acc", "bnn_dense_params_t"),
    ("bits", "binary", "bits"): ("bnn_dense_bits", "bnn_dense_params_t"),
    ("bits", "int8", "acc"): ("bnn_last_bin_s8_acc", "bnn_first_params_t"),
    ("u8", "binary", "acc"): ("bnn_first_u8_bin_acc", "bnn_first_params_t"),
    ("u8", "binary", "bits"): ("bnn_first_u8_bin_bits", "bnn_first_params_t"),
    ("u8", "int8", "acc"): ("bnn_first_u8_s8_acc", "bnn_first_params_t"),
    ("u8", "int8", "bits"): ("bnn_first_u8_s8_bits", "bnn_first_params_t"),
}


def dense_kernel(layer: Layer, in_kind: str, weight_kind: str, out: str) -> tuple[str, str]:
    """The runtime function and params struct type for a dense layer; Bnn2hwError if none."""
    key = (in_kind, weight_kind, out)
    if key not in DENSE_KERNELS:
        raise Bnn2hwError(f"IR layer {layer.name} ({layer.source}): no C kernel for a dense layer with "
                          f"{weight_kind} weights on {in_kind} input producing {out}")
    return DENSE_KERNELS[key]


def emit(graph: Graph, model_name: str = "bnn") -> Emitted:
    """Generate the C sources for ``graph`` (validated first: :func:`bnn2hw.ir.validate.validate`)."""
    from ..ir.validate import validate

    validate(graph)
    placed = [n for n in graph.branches() if graph.layers[[l.name for l in graph.layers].index(n)].op != "add"]
    if placed:
        raise Bnn2hwError(f"IR op(s) {', '.join(placed)} read a tensor other than the previous op's: the C "
                          "back end places chains of ops (and the fixed-point residual add) only")
    for layer in graph.layers:
        if layer.op not in ("dense", "conv2d", "threshold", "maxpool", "flatten", "affine",
                            "fixed_affine", "periodic", "add"):
            raise Bnn2hwError(f"IR layer {layer.name} ({layer.source}): op {layer.op!r} has no C emitter")
    check_accumulators(graph)  # raises if an int32 accumulator could overflow
    ir_hash = hashlib.sha256(repr([(l.op, l.attrs, {k: v.tobytes() for k, v in l.arrays.items()})
                                   for l in graph.layers]).encode()).hexdigest()[:16]
    input_len = int(np.prod(graph.input_shape))
    if graph.input_kind == "bits":
        input_len = 4 * ((input_len + 31) // 32)  # packed words, little-endian bytes
    num_logits = graph.num_classes
    data: list[str] = []
    body: list[str] = []
    sizes: list[int] = []  # bytes of each intermediate buffer
    statics: list[str] = []  # fixed-point tensors: one static buffer each (they outlive a layer)
    fixed_bytes: list[int] = []
    helpers: set[str] = set()
    named: dict[str, str] = {}
    flash_bits = 0
    thr_count = 0
    # state: what the current tensor is and where
    shape = tuple(graph.input_shape)  # (H, W, C) or (F,)
    kind = "u8"
    cur = "input"
    if graph.input_kind == "bits":
        if len(shape) != 1:
            raise Bnn2hwError("a binary-input graph must take a flat vector")
        statics.append(f"static bnn_word_t input_bits[{(shape[0] + 31) // 32}];")
        body.append("    /* the input is already binary: copy its packed words (little-endian bytes) */")
        body.append(f"    bnn_load_words(input, {(shape[0] + 31) // 32}u, input_bits);")
        helpers.add("load_words")
        kind, cur = "bits", "input_bits"
    buf_index = 0
    layers = graph.layers
    i = 0
    steps = []

    def out_buf(nbytes: int) -> str:
        nonlocal buf_index
        sizes.append(nbytes)
        name = f"arena_{'ab'[buf_index % 2]}"
        buf_index += 1
        return name

    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        lid = ident(layer.name)
        cmt = f"    /* {layer.name} <- {layer.source}"
        if layer.op == "flatten":
            if len(shape) == 3 and kind == "bits" and shape[2] % 32 != 0:
                h, w, c = shape
                n = h * w * c
                dst = out_buf(4 * ((n + 31) // 32))
                body.append(f"{cmt}: repack per-pixel channel words into one bit vector */")
                body.append(f"    bnn_repack_hwc(({'const bnn_word_t *'}){cur}, {h * w}u, {c}u, (bnn_word_t *){dst});")
                cur = dst
            shape = (int(np.prod(shape)),)
            i += 1
            continue
        if layer.op == "maxpool":
            h, w, c = shape
            k, s = layer.attrs["kernel"], layer.attrs["stride"]
            oh, ow = (h - k) // s + 1, (w - k) // s + 1
            dst = out_buf(4 * oh * ow * ((c + 31) // 32))
            data.append(f"static const bnn_pool_params_t {lid}_p = {{{h}u, {w}u, {c}u, {oh}u, {ow}u, "
                        f"{k}u, {k}u, {s}u, {s}u}};\n")
            body.append(f"{cmt}: {k}x{k} max-pool on bits = OR */")
            body.append(f"    bnn_maxpool(&{lid}_p, (const bnn_word_t *){cur}, (bnn_word_t *){dst});")
            cur = dst
            shape = (oh, ow, c)
            steps.append(layer.name)
            i += 1
            continue
        if layer.op == "dense":
            w, thr = _flip(layer, nxt)
            o, k = w.shape
            last = nxt is None or nxt.op == "affine"
            wk = layer.attrs.get("weight_kind", "binary")
            if wk == "binary":
                packed = pack_bits(w)
                data.append(f"/* {layer.name} <- {layer.source}: {o} x {k} binary weights, bit 1 = +1 */\n")
                data.append(c_array("bnn_word_t", f"{lid}_w", packed))
                flash_bits += o * k
            else:
                data.append(f"/* {layer.name} <- {layer.source}: {o} x {k} int8 weights */\n")
                data.append(c_array("int8_t", f"{lid}_w", w.astype(np.int8), per_line=16))
                flash_bits += 8 * o * k
            src = f"(const bnn_word_t *){cur}" if kind == "bits" else cur
            if last or nxt.op == "fixed_affine":
                fn, ptype = dense_kernel(layer, kind, wk, "acc")
                data.append(f"static const {ptype} {lid}_p = {{{k}u, {o}u}};\n")
                if last:  # integer logits
                    body.append(f"{cmt}: integer logits */")
                    body.append(f"    {fn}(&{lid}_p, {src}, {lid}_w, logits);")
                    steps.append(layer.name)
                    i += 1
                    continue
                # fixed-point value path: keep the accumulator
                statics.append(f"static int32_t {lid}_acc[{o}];")
                fixed_bytes.append(4 * o)
                body.append(f"{cmt}: {k} -> {o} integer accumulators */")
                body.append(f"    {fn}(&{lid}_p, {src}, {lid}_w, {lid}_acc);")
                cur, kind, shape = f"{lid}_acc", "acc", (o,)
                steps.append(layer.name)
                i += 1
                continue
            if nxt.op != "threshold":
                raise Bnn2hwError(f"IR layer {layer.name}: a hidden dense layer must be followed by a threshold")
            fn, ptype = dense_kernel(layer, kind, wk, "bits")
            data.append(f"static const {ptype} {lid}_p = {{{k}u, {o}u}};\n")
            dst = out_buf(4 * ((o + 31) // 32))
            tname = ident(nxt.name)
            if kind == "bits":
                mm = np.clip((k - thr) // 2, -1, k)  # acc >= T <=> popcount(x^w) <= floor((K-T)/2)
                data.append(f"/* {nxt.name} <- {nxt.source}: max mismatches per output (popcount form) */\n")
                data.append(c_array("int32_t", f"{tname}_mm", mm))
                call = f"{fn}(&{lid}_p, {src}, {lid}_w, {tname}_mm, (bnn_word_t *){dst});"
            else:
                data.append(f"/* {nxt.name} <- {nxt.source}: thresholds on the integer accumulator */\n")
                data.append(c_array("int32_t", f"{tname}_thr", _clamp_i32(thr)))
                call = f"{fn}(&{lid}_p, {src}, {lid}_w, {tname}_thr, (bnn_word_t *){dst});"
            thr_count += o
            body.append(f"{cmt} + {nxt.name}: {k} -> {o}, thresholded to bits */")
            body.append("    " + call)
            cur, kind, shape = dst, "bits", (o,)
            steps.append(layer.name)
            i += 2
            continue
        if layer.op == "conv2d":
            w, thr = _flip(layer, nxt)
            if thr is None:
                raise Bnn2hwError(f"IR layer {layer.name}: a conv must be followed by a threshold")
            o, kh, kw, c = w.shape
            h, wd, _ = shape
            s, p = layer.attrs["stride"], layer.attrs["pad"]
            oh, ow = (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1
            data.append(f"static const bnn_conv_params_t {lid}_p = {{{h}u, {wd}u, {c}u, {oh}u, {ow}u, {o}u, "
                        f"{kh}u, {kw}u, {s}u, {s}u, {p}u, {p}u}};\n")
            data.append(f"/* {layer.name} <- {layer.source}: {o} x {kh}x{kw}x{c} binary weights, "
                        "channels packed per tap */\n")
            data.append(c_array("bnn_word_t", f"{lid}_w", pack_bits(w)))
            tname = ident(nxt.name)
            data.append(f"/* {nxt.name} <- {nxt.source}: thresholds on the accumulator */\n")
            data.append(c_array("int32_t", f"{tname}_thr", _clamp_i32(thr)))
            flash_bits += o * kh * kw * c
            thr_count += o
            dst = out_buf(4 * oh * ow * ((o + 31) // 32))
            fn = "bnn_conv_u8_bits" if kind == "u8" else "bnn_conv_bits"
            src = cur if kind == "u8" else f"(const bnn_word_t *){cur}"
            body.append(f"{cmt} + {nxt.name}: conv {kh}x{kw}/{s} pad {p}, {c} -> {o} channels */")
            body.append(f"    {fn}(&{lid}_p, {src}, {lid}_w, {tname}_thr, (bnn_word_t *){dst});")
            cur, kind, shape = dst, "bits", (oh, ow, o)
            steps.append(layer.name)
            i += 2
            continue
        if layer.op == "fixed_affine":
            n = layer.arrays["mult"].size
            sh = int(layer.attrs["shift"])
            data.append(f"/* {layer.name} <- {layer.source}: Q{layer.attrs['frac']} value = "
                        f"(acc * mult + bias + 2^{sh}/2) >> {sh} */\n")
            data.append(c_array("int32_t", f"{lid}_mult", layer.arrays["mult"]))
            data.append(c_array("int64_t", f"{lid}_bias", layer.arrays["bias"], 4,
                                fmt=lambda v: f"INT64_C({int(v)})"))
            statics.append(f"static int32_t t_{lid}[{n}];")
            fixed_bytes.append(4 * n)
            rnd = f"(INT64_C(1) << {sh - 1})" if sh else "0"
            body.append(f"{cmt}: BatchNorm of the accumulator to fixed point Q{layer.attrs['frac']} */")
            body.append(f"    bnn_fixed_affine({cur}, {lid}_mult, {lid}_bias, {rnd}, {sh}u, {n}u, t_{lid});")
            helpers.add("fixed_affine")
            cur, kind = f"t_{lid}", "fixed"
            named[layer.name] = cur
            i += 1
            continue
        if layer.op == "threshold":  # sign of a fixed-point tensor (thr 0, direction +1)
            if kind != "fixed":
                raise Bnn2hwError(f"IR layer {layer.name}: a standalone threshold needs a fixed-point input")
            n = layer.arrays["thr"].size
            data.append(f"static const bnn_threshold_params_t {lid}_p = {{1u, {n}u}};\n")
            data.append(c_array("int32_t", f"{lid}_thr", _clamp_i32(layer.arrays["thr"])))
            data.append(c_array("int8_t", f"{lid}_dir", layer.arrays["direction"], 16))
            dst = out_buf(4 * ((n + 31) // 32))
            body.append(f"{cmt}: sign of the fixed-point stream (0 -> +1), packed to bits */")
            body.append(f"    bnn_threshold(&{lid}_p, {cur}, {lid}_thr, {lid}_dir, (bnn_word_t *){dst});")
            cur, kind = dst, "bits"
            i += 1
            continue
        if layer.op == "periodic":
            at = layer.attrs
            from . import periodic_tables as pt

            prm = pt.make_params(at["w0"], at["in_frac"], at["out_frac"], at.get("table_bits", 8))
            method = {"fixed": "linear"}.get(at["approx"], at["approx"])
            pt.check_method(at["func"], method)
            table = "NULL"
            if method == "lut":
                data.append(c_array("int32_t", f"{lid}_table",
                                    pt.table(at["func"], prm.table_bits, prm.out_frac)))
                table = f"{lid}_table"
            data.append(f"/* {layer.name}: {at['func']}({at['w0']:g} x), Q{at['in_frac']} -> Q{at['out_frac']}, "
                        f"approximation '{at['approx']}' (M-BiPer eq. 10-11) */\n")
            data.append(f"static const bnn_periodic_params_t {lid}_p = {{{prm.phase_mul}, {prm.phase_shift}u, "
                        f"{prm.out_frac}u, {table}, {prm.table_bits}u, {prm.lin_a}, {prm.lin_n}u}};\n")
            n = shape[0]
            statics.append(f"static int32_t t_{lid}[{n}];")
            fixed_bytes.append(4 * n)
            body.append(f"{cmt}: periodic activation */")
            body.append(f"    bnn_periodic_{method}(&{lid}_p, {cur}, t_{lid}, {n}u);")
            cur = f"t_{lid}"
            named[layer.name] = cur
            i += 1
            continue
        if layer.op == "add":
            a_name, b_name = graph.inputs_of(i)
            n = shape[0]
            statics.append(f"static int32_t t_{lid}[{n}];")
            fixed_bytes.append(4 * n)
            body.append(f"{cmt}: residual sum {a_name} + {b_name} (saturating) */")
            body.append(f"    bnn_add_sat({named[ident(a_name)]}, {named[ident(b_name)]}, {n}u, t_{lid});")
            helpers.add("add")
            cur = f"t_{lid}"
            named[layer.name] = cur
            i += 1
            continue
        if layer.op == "affine":
            data.append("/* logits <- head: float logits = int_logits * scale + bias (bnn_predict) */\n")
            data.append(c_array("float", "logit_scale", layer.arrays["scale"].astype(np.float32), 4,
                                fmt=c_float))
            data.append(c_array("float", "logit_bias", layer.arrays["bias"].astype(np.float32), 4,
                                fmt=c_float))
            i += 1
            continue
        raise Bnn2hwError(f"IR layer {layer.name} ({layer.source}): no C emitter for op {layer.op!r}")
    if not any(l.op == "affine" for l in layers):
        data.append("/* no float head: bnn_predict takes the argmax of the integer logits */\n")
        data.append(c_array("float", "logit_scale", np.ones(num_logits, dtype=np.float32), 4, fmt=c_float))
        data.append(c_array("float", "logit_bias", np.zeros(num_logits, dtype=np.float32), 4, fmt=c_float))
    arena_a = max([s for j, s in enumerate(sizes) if j % 2 == 0] or [0])
    arena_b = max([s for j, s in enumerate(sizes) if j % 2 == 1] or [0])
    arenas = "\n".join(f"static bnn_word_t arena_{n}[{(size + 3) // 4}];"
                        for n, size in (("a", arena_a), ("b", arena_b)) if size)
    scratch = arena_a + arena_b + sum(fixed_bytes)
    guard = f"BNN_MODEL_{model_name.upper()}_H"
    header = f"""/* SPDX-License-Identifier: MIT */
/*
 * Generated by bnn2hw {__version__} from model {graph.meta.get('model_hash', '?')} (IR {ir_hash}).
 * Surrogate {graph.meta.get('surrogate')}, w0 {graph.meta.get('w0')}. Do not edit: regenerate with
 * `bnn2hw emit-c`.
 *
 * Input: {input_len} bytes: {"packed +-1 words (bit 1 = +1), little-endian" if graph.input_kind == "bits"
                              else f"uint8 values, channels-last {list(graph.input_shape)} (H, W, C) order"}.
 * Output: {num_logits} int32 integer logits; float logits = int_logits * scale + bias.
 * Memory: weights and thresholds are static const (flash); scratch is a static
 * {scratch}-byte arena (two ping-pong buffers); no malloc, no recursion.
 */
#ifndef {guard}
#define {guard}

#include <stddef.h>
#include <stdint.h>

#define BNN_INPUT_LEN {input_len}u
#define BNN_NUM_LOGITS {num_logits}u
#define BNN_SCRATCH_BYTES {scratch}u

#ifndef BNN_OK /* shared by every generated model */
#define BNN_OK 0
#define BNN_ERR_INPUT_LEN (-1)
#define BNN_ERR_LOGITS_LEN (-2)
#define BNN_ERR_NULL (-3)
#endif

#ifdef __cplusplus
extern "C" {{
#endif

/* Run one inference. Returns BNN_OK, or a negative error code on a wrong length or NULL. */
int bnn_infer(const uint8_t *input, size_t input_len, int32_t *logits, size_t logits_len);

/* Predicted class (argmax of the float logits; first index wins ties), or a negative error. */
int bnn_predict(const uint8_t *input, size_t input_len);

#ifdef __cplusplus
}}
#endif

#endif /* {guard} */
"""
    repack = """
/* Concatenate per-pixel channel words (each padded to 32 bits) into one dense bit vector in
 * (y, x, c) order, as the IR's flatten defines it. Output padding bits stay 0. */
static void bnn_repack_hwc(const bnn_word_t *in, uint32_t pixels, uint32_t c, bnn_word_t *out)
{
    const uint32_t words_per_pixel = BNN_WORDS(c);
    const uint32_t n = pixels * c;
    uint32_t i;
    for (i = 0; i < BNN_WORDS(n); ++i) {
        out[i] = 0u;
    }
    for (i = 0; i < n; ++i) {
        const uint32_t px = i / c, ch = i % c;
        const bnn_word_t bit = (in[px * words_per_pixel + ch / 32u] >> (ch % 32u)) & 1u;
        out[i / 32u] |= bit << (i % 32u);
    }
}
""" if "bnn_repack_hwc" in "\n".join(body) else ""
    if "load_words" in helpers:
        repack += """
/* Packed input words from bytes (little-endian), alignment-safe. */
static void bnn_load_words(const uint8_t *in, uint32_t words, bnn_word_t *out)
{
    uint32_t i;
    for (i = 0; i < words; ++i) {
        out[i] = (bnn_word_t)in[4u * i] | ((bnn_word_t)in[4u * i + 1u] << 8) |
                 ((bnn_word_t)in[4u * i + 2u] << 16) | ((bnn_word_t)in[4u * i + 3u] << 24);
    }
}
"""
    if "fixed_affine" in helpers:
        repack += """
/* q[c] = (acc[c] * mult[c] + bias[c] + round) >> shift, saturated to int32 (floor shift). */
static void bnn_fixed_affine(const int32_t *acc, const int32_t *mult, const int64_t *bias,
                             int64_t round, uint32_t shift, uint32_t n, int32_t *q)
{
    uint32_t c;
    for (c = 0; c < n; ++c) {
        int64_t v = (int64_t)acc[c] * mult[c] + bias[c] + round;
        /* arithmetic right shift of a negative value, written portably as floor division */
        v = (v >= 0) ? (v >> shift) : -((-v + ((INT64_C(1) << shift) - 1)) >> shift);
        q[c] = (int32_t)(v > INT32_MAX ? INT32_MAX : (v < INT32_MIN ? INT32_MIN : v));
    }
}
"""
    if "add" in helpers:
        repack += """
/* Residual connection: saturating int32 sum of two tensors in the same Q format. */
static void bnn_add_sat(const int32_t *a, const int32_t *b, uint32_t n, int32_t *out)
{
    uint32_t c;
    for (c = 0; c < n; ++c) {
        const int64_t v = (int64_t)a[c] + b[c];
        out[c] = (int32_t)(v > INT32_MAX ? INT32_MAX : (v < INT32_MIN ? INT32_MIN : v));
    }
}
"""
    source = f"""/* SPDX-License-Identifier: MIT */
/* Generated by bnn2hw {__version__} from model {graph.meta.get('model_hash', '?')} (IR {ir_hash}). */
#include "model.h"

#include "bnn_bits.h"
#include "bnn_conv.h"
#include "bnn_dense.h"
#include "bnn_first.h"
#include "bnn_periodic.h"
#include "bnn_pool.h"
#include "bnn_threshold.h"

/* ---- constant data (flash) ---------------------------------------------------------- */
{''.join(data)}
/* ---- scratch: two ping-pong buffers, sized at generation time ------------------------ */
{arenas}
{chr(10).join(statics)}
{repack}
{entry_points(chr(10).join(body))}"""
    flash_lb = flash_bits // 8 + 4 * thr_count
    return Emitted(header, source, scratch, flash_lb, steps)
