# SPDX-License-Identifier: MIT
"""IR -> ``model.h`` / ``model.c``: static const packed weights, one static arena planned by
tensor liveness (:class:`bnn2hw.mcu.emitters.Arena`; a residual skip stays live until its add)
and one entry point, calling the hand-written runtime in ``firmware/`` (bit convention in
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
from ..ir.graph import INPUT, Graph, Layer

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
    conv_choices: list = field(default_factory=list)  # emitters._conv_choice per binary conv on bits


def check_accumulators(graph: Graph) -> list[dict]:
    """Static proof that no int32 accumulator overflows: max |acc| from fan-in and input range
    (uint8 pixels 255, bits 1, a fixed-point stream of b bits 2^(b-1))."""
    from ..ir.validate import tensor_infos

    infos = tensor_infos(graph)
    rows = []
    for i, layer in enumerate(graph.layers):
        if layer.op not in ("dense", "conv2d"):
            continue
        w = layer.arrays["weight"]
        fan_in = int(np.prod(w.shape[1:]))
        src = infos[graph.inputs_of(i)[0]]
        in_max = {"u8": 255, "bits": 1}.get(src.kind) or 2 ** ((src.bits or 32) - 1)
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


SHARED_ROWS_DEFINE = ("/* the dense layers share one row kernel for bits and popcounts (bnn_dense.h; less\n"
                      " * flash, a few instructions more per call: -DBNN_DENSE_SHARED_ROWS=0 to trade back) */\n"
                      "#ifndef BNN_DENSE_SHARED_ROWS\n#define BNN_DENSE_SHARED_ROWS 1\n#endif\n")


SHARED_ROWS_IF_ROWS_DEFINE = (
    "/* the dense layers share one row kernel for bits and popcounts where the hidden layers run the\n"
    " * row kernels (bnn_dense.h; with BNN_DENSE_VCOLS they run bnn_dense_vbits, the logits' kernel is\n"
    " * the only row kernel and sharing would only cost instructions) */\n"
    "#ifndef BNN_DENSE_SHARED_ROWS\n#define BNN_DENSE_SHARED_ROWS (!BNN_DENSE_VCOLS)\n#endif\n")


def shared_rows_define(data: str, body: str) -> str:
    """The BNN_DENSE_SHARED_ROWS define for model.c ("" if :func:`shared_dense_rows` is false):
    always 1 when a hidden layer on the row kernels only (``bnn_dense_bits`` outside an
    ``#if BNN_DENSE_VCOLS`` / ``#else``) has the logits' row class, else ``(!BNN_DENSE_VCOLS)``: the
    matching hidden layers are column-sliced where BNN_DENSE_VCOLS, so there the logits' kernel is
    the only row kernel linked."""
    if not shared_dense_rows(data, body):
        return ""
    n_in = {name: int(k) for name, k in re.findall(r"bnn_dense_params_t (\w+) = \{(\d+)u, \d+u\}", data)}
    lines = body.split("\n")
    logits = {row_class(n_in[p]) for p in re.findall(r"\bbnn_dense_acc\(&(\w+)", body) if p in n_in}
    for j, line in enumerate(lines):
        m = re.search(r"\bbnn_dense_bits\(&(\w+)", line)
        if m and m.group(1) in n_in and row_class(n_in[m.group(1)]) in logits and \
                not (j > 0 and lines[j - 1].strip() == "#else"):
            return SHARED_ROWS_DEFINE
    return SHARED_ROWS_IF_ROWS_DEFINE


def row_class(n_in: int) -> tuple[int, int]:
    """The Thumb-2 row kernel variant of rows of ``n_in`` inputs (bnn_bits.h, bnn__dbt2_pick):
    (tail words nw % 3, group-count class 0: none, 1: one, 2: even, 3: odd >= 3)."""
    nw = (n_in + 31) // 32
    g = nw // 3
    return nw % 3, 0 if g == 0 else 1 if g == 1 else 3 if g % 2 else 2


def shared_dense_rows(data: str, body: str) -> bool:
    """Whether the generated model links one row kernel less with BNN_DENSE_SHARED_ROWS: a
    binary dense logits layer (``bnn_dense_acc``) whose row class equals a hidden binary dense
    layer's (``bnn_dense_bits``), and no conv layer (the conv kernels link the plain bits and
    popcount variants themselves, so the shared ones would come on top).  Reads the generated
    C: the params structs in ``data`` and the calls in ``body``."""
    if "bnn_conv" in body:
        return False
    n_in = {name: int(k) for name, k in re.findall(r"bnn_dense_params_t (\w+) = \{(\d+)u, \d+u\}", data)}
    calls = re.findall(r"\b(bnn_dense_bits|bnn_dense_acc)\(&(\w+)", body)
    bits = {row_class(n_in[p]) for f, p in calls if f == "bnn_dense_bits" and p in n_in}
    return any(f == "bnn_dense_acc" and p in n_in and row_class(n_in[p]) in bits for f, p in calls)


def emit(graph: Graph, model_name: str = "bnn", optimize: str = "speed") -> Emitted:
    """Generate the C sources for ``graph`` (validated first: :func:`bnn2hw.ir.validate.tensor_infos`).
    ``optimize`` (emit-c --optimize, conv_vcols.OPTIMIZE): "speed" lets the count model put binary
    convs on the column-sliced kernel, "size" keeps them on the row kernel.

    Any DAG the emitters can place: each op reads its tensors by name; a dense/conv absorbs the
    next op (threshold, requant) when that op is its tensor's only reader."""
    from ..ir.validate import tensor_infos

    infos = tensor_infos(graph)  # validates
    check_accumulators(graph)  # raises if an int32 accumulator could overflow
    ir_hash = hashlib.sha256(repr([(l.op, l.attrs, l.inputs, {k: v.tobytes() for k, v in l.arrays.items()})
                                   for l in graph.layers]).encode()).hexdigest()[:16]
    input_len = int(np.prod(graph.input_shape))
    if graph.input_kind == "bits":
        input_len = 4 * ((input_len + 31) // 32)  # packed words, little-endian bytes
    num_logits = graph.num_classes
    from .emitters import EMITTERS, CTensor, EmitState  # here: emitters imports this module's helpers

    shape = tuple(graph.input_shape)  # (H, W, C) or (F,)
    from .conv_vcols import check_optimize

    st = EmitState(graph, infos, shape, "u8", "input", optimize=check_optimize(optimize))
    if graph.input_kind == "bits":
        if len(shape) != 1:
            raise Bnn2hwError("a binary-input graph must take a flat vector")
        st.statics.append(f"static bnn_word_t input_bits[{(shape[0] + 31) // 32}];")
        st.static_bytes += 4 * ((shape[0] + 31) // 32)
        st.body.append("    /* the input is already binary: copy its packed words (little-endian bytes) */")
        st.body.append(f"    bnn_load_words(input, {(shape[0] + 31) // 32}u, input_bits);")
        st.helpers.add("load_words")
        st.kind, st.cur = "bits", "input_bits"
    st.tensors[INPUT] = CTensor(st.cur, st.kind, shape)
    layers = graph.layers
    readers: dict[str, list[int]] = {}
    for j in range(len(layers)):
        for n in graph.inputs_of(j):
            readers.setdefault(n, []).append(j)
    st.last_use = {n: max(js) for n, js in readers.items()}
    i = 0
    while i < len(layers):  # one emitter per op kind (bnn2hw/mcu/emitters.py)
        layer = layers[i]
        if layer.op not in EMITTERS:
            raise Bnn2hwError(f"IR layer {layer.name} ({layer.source}): no C emitter for op {layer.op!r}")
        src = st.tensors[graph.inputs_of(i)[0]]
        st.cur, st.kind, st.shape, st.bits = src.expr, src.kind, src.shape, src.bits
        # the next op is fused into this one's kernel only when it is the sole reader of this op's tensor
        nxt = layers[i + 1] if i + 1 < len(layers) and readers.get(layer.name) == [i + 1] else None
        st.out_block, st.temps = None, []
        st.op_end = i  # in-place reuse only over an input whose last reader is this op (not a fused one)
        n = EMITTERS[layer.op](st, i, layer, nxt, ident(layer.name), f"    /* {layer.name} <- {layer.source}")
        out = layers[i + n - 1].name
        block = st.out_block if st.out_block is not None else (src.block if st.cur == src.expr else None)
        st.tensors[out] = CTensor(st.cur, st.kind, st.shape, st.bits, block)
        for bid in st.temps:
            st.arena.free(bid)
        i += n
        for name in [t for t in st.tensors if st.last_use.get(t, -1) < i]:  # dead: every reader has run
            dead = st.tensors.pop(name)
            if dead.block is not None and all(t.block != dead.block for t in st.tensors.values()):
                st.arena.free(dead.block)
    data, body, statics, helpers, steps = st.data, st.body, st.statics, st.helpers, st.steps
    flash_bits, thr_count = st.flash_bits, st.thr_count
    if not any(l.op == "affine" for l in layers):
        data.append("/* no float head: bnn_predict takes the argmax of the integer logits */\n")
        data.append(c_array("float", "logit_scale", np.ones(num_logits, dtype=np.float32), 4, fmt=c_float))
        data.append(c_array("float", "logit_bias", np.zeros(num_logits, dtype=np.float32), 4, fmt=c_float))
    arena_bytes = st.arena.peak
    arenas = (f"static bnn_word_t arena[{(arena_bytes + 3) // 4}];\n"
              "#define BNN_BUF(offset) ((void *)((uint8_t *)arena + (offset)))") if arena_bytes else ""
    if st.vidx_words:  # the column-sliced layers' index scratch, only where BNN_DENSE_VCOLS (bnn_dense.h)
        statics.append(f"#if BNN_DENSE_VCOLS /* bnn_dense_vbits index scratch; cores on the row kernels (Helium) "
                       f"have none */\nstatic uint32_t bnn_vidx[{st.vidx_words}];\n#endif")
    if st.cvwork_words:  # the column-sliced convs' work memory, only where BNN_CONV_VCOLS (bnn_conv_vc.h)
        statics.append(f"#if BNN_CONV_VCOLS /* bnn_conv_vc_bits work memory; cores on the row kernels have none */\n"
                       f"static uint32_t bnn_cvwork[{st.cvwork_words}];\n#endif")
    if st.pswork_words:  # the position-sliced convs' work memory, only where BNN_CONV_PS (bnn_conv_ps.h)
        statics.append(f"#if BNN_CONV_PS /* bnn_conv_ps_bits work memory; other cores have none */\n"
                       f"static uint32_t bnn_pswork[{st.pswork_words}];\n#endif")
    vidx_bytes, cvwork_bytes = 4 * st.vidx_words, 4 * (st.cvwork_words + st.pswork_words)
    scratch = arena_bytes + st.static_bytes + vidx_bytes + cvwork_bytes  # the most any core takes
    vidx_note = (f"\n * ({vidx_bytes} B of it index scratch of the column-sliced dense layers, reserved only\n"
                 " * where BNN_DENSE_VCOLS, i.e. not on Helium cores)") if vidx_bytes else ""
    if cvwork_bytes:
        vidx_note += (f"\n * ({cvwork_bytes} B of it work memory of the column- and position-sliced convs, reserved\n"
                      " * only where BNN_CONV_VCOLS / BNN_CONV_PS: Cortex-M3/M4/M7/M33 with the multi popcount)")
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
 * {scratch}-byte arena (tensors placed by liveness: a buffer is reused once every op reading
 * it has run){vidx_note}; no malloc, no recursion.
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
    shared = shared_rows_define("".join(data), "\n".join(body))
    source = f"""/* SPDX-License-Identifier: MIT */
/* Generated by bnn2hw {__version__} from model {graph.meta.get('model_hash', '?')} (IR {ir_hash}). */
{shared}#include "model.h"

#include "bnn_bits.h"
#include "bnn_conv.h"
#include "bnn_conv_ps.h"
#include "bnn_dense.h"
#include "bnn_first.h"
#include "bnn_periodic.h"
#include "bnn_pool.h"
#include "bnn_stream.h"
#include "bnn_threshold.h"

/* ---- constant data (flash) ---------------------------------------------------------- */
{''.join(data)}
/* ---- scratch: one arena; each tensor sits at an offset fixed at generation time, live from
 * the op that writes it to the last op that reads it (a residual skip spans its block) ---- */
{arenas}
{chr(10).join(statics)}
{repack}
{entry_points(chr(10).join(body))}"""
    flash_lb = flash_bits // 8 + 4 * thr_count
    return Emitted(header, source, scratch, flash_lb, steps, st.conv_choices)
