# SPDX-License-Identifier: MIT
"""IR -> a straightforward float C implementation of the same network (the comparison point for
the binary firmware): the same ``model.h`` interface as :mod:`bnn2hw.mcu.codegen`, so the same
harness builds and runs it.

Every value is a ``float``: the uint8 input as 0..255, binary weights as +-1.0f, int8 weights
as their value, hidden activations as +-1.0f.  Layers are plain loop nests (float multiply and
accumulate, thresholds compared in float, max-pool as a float max, zero padding skipped); the
int32 logits are the last layer's float accumulators cast to int.

Exactness: every product and partial sum is an integer of magnitude <= ``max_abs_acc`` of
:func:`bnn2hw.mcu.codegen.check_accumulators`; :func:`emit_float` refuses a graph where that
bound reaches 2^24 (float's exact-integer range), so the logits equal the IR executor's.
Thresholds beyond +-2^24 are clamped to +-2^24, which changes no comparison with such an acc.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .. import __version__
from ..errors import Bnn2hwError
from ..ir.graph import Graph
from .codegen import Emitted, c_array, check_accumulators, entry_points, ident

FLOAT_EXACT = 2 ** 24
FLOAT_OPS = ("dense", "conv2d", "threshold", "maxpool", "flatten", "affine")


def _farray(name: str, values: np.ndarray) -> str:
    vals = np.asarray(values, dtype=np.float64)

    def fmt(v) -> str:
        v = float(v)
        return f"{v:.1f}f" if v.is_integer() else f"{v:.9e}f"

    return c_array("float", name, vals, per_line=8, fmt=fmt)


def _check_exact(graph: Graph) -> None:
    for row in check_accumulators(graph):
        if row["max_abs_acc"] >= FLOAT_EXACT:
            raise Bnn2hwError(f"layer {row['layer']}: |acc| can reach {row['max_abs_acc']}, beyond float's "
                              f"exact integers (2^24); the float version would not be exact")


def _threshold_line(acc: str, tname: str, o: str, dst: str) -> str:
    return (f"        {dst} = ({tname}_dir[{o}] > 0 ? {acc} >= {tname}_thr[{o}] : {acc} <= {tname}_thr[{o}]) "
            "? 1.0f : -1.0f;")


def emit_float(graph: Graph, model_name: str = "bnn") -> Emitted:
    """Generate float C sources for ``graph`` (``flash_lower_bound_bytes``: 4 B per weight and
    per threshold)."""
    for layer in graph.layers:
        if layer.op not in FLOAT_OPS:
            raise Bnn2hwError(f"IR layer {layer.name} ({layer.source}): op {layer.op!r} "
                              "has no float C emitter")
    _check_exact(graph)
    ir_hash = hashlib.sha256(repr([(l.op, l.attrs, {k: v.tobytes() for k, v in l.arrays.items()})
                                   for l in graph.layers]).encode()).hexdigest()[:16]
    input_len = int(np.prod(graph.input_shape))
    num_logits = graph.num_classes
    data: list[str] = []
    body: list[str] = []
    sizes: list[int] = [input_len]  # floats of each buffer, in order: input copy, then each layer
    flash_floats = 0
    shape = tuple(graph.input_shape)
    cur = "arena_a"
    layers = graph.layers
    have_affine = False

    def out_buf() -> str:
        return "arena_b" if cur == "arena_a" else "arena_a"

    if graph.input_kind == "bits":  # packed ±1 words as little-endian bytes (as model.c takes them)
        body.append("    /* input: packed +-1 bits (bit 1 = +1, LSB first) unpacked to +-1.0f */")
        body.append(f"    for (i = 0; i < {input_len}u; ++i) {{\n"
                    "        arena_a[i] = ((input[i / 8u] >> (i % 8u)) & 1u) ? 1.0f : -1.0f;\n    }")
        input_len = 4 * ((input_len + 31) // 32)
    else:
        body.append("    /* input: uint8 values as float */")
        body.append(f"    for (i = 0; i < {input_len}u; ++i) {{\n        arena_a[i] = (float)input[i];\n    }}")
    i = 0
    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        lid = ident(layer.name)
        cmt = f"    /* {layer.name} <- {layer.source}"
        if layer.op == "flatten":
            shape = (int(np.prod(shape)),)  # (y, x, c) row-major: the buffer is already in order
            i += 1
            continue
        if layer.op == "threshold":
            raise Bnn2hwError(f"IR layer {layer.name}: a threshold must follow a dense or conv layer")
        if layer.op == "affine":
            data.append("/* logits <- head: float logits = int_logits * scale + bias (bnn_predict) */\n")
            data.append(_farray("logit_scale", layer.arrays["scale"]))
            data.append(_farray("logit_bias", layer.arrays["bias"]))
            have_affine = True
            i += 1
            continue
        if layer.op == "maxpool":
            h, w, c = shape
            k, s = layer.attrs["kernel"], layer.attrs["stride"]
            oh, ow = (h - k) // s + 1, (w - k) // s + 1
            dst = out_buf()
            body.append(f"{cmt}: {k}x{k}/{s} max-pool */")
            body.append(f"""    for (y = 0; y < {oh}u; ++y) {{
        for (x = 0; x < {ow}u; ++x) {{
            for (o = 0; o < {c}u; ++o) {{
                float m = {cur}[((y * {s}u) * {w}u + x * {s}u) * {c}u + o];
                for (ky = 0; ky < {k}u; ++ky) {{
                    for (kx = 0; kx < {k}u; ++kx) {{
                        const float v = {cur}[((y * {s}u + ky) * {w}u + x * {s}u + kx) * {c}u + o];
                        m = v > m ? v : m;
                    }}
                }}
                {dst}[(y * {ow}u + x) * {c}u + o] = m;
            }}
        }}
    }}""")
            cur, shape = dst, (oh, ow, c)
            sizes.append(oh * ow * c)
            i += 1
            continue
        w = layer.arrays["weight"]
        o_n = int(w.shape[0])
        fan_in = int(np.prod(w.shape[1:]))
        data.append(f"/* {layer.name} <- {layer.source}: {o_n} x {fan_in} weights as float */\n")
        data.append(_farray(f"{lid}_w", w.reshape(o_n, fan_in)))
        flash_floats += w.size
        thresholded = nxt is not None and nxt.op == "threshold"
        if thresholded:
            tname = ident(nxt.name)
            thr = np.clip(nxt.arrays["thr"].astype(np.float64), -FLOAT_EXACT, FLOAT_EXACT)
            data.append(f"/* {nxt.name} <- {nxt.source}: thresholds and directions (+1: acc >= thr) */\n")
            data.append(_farray(f"{tname}_thr", thr))
            data.append(c_array("int8_t", f"{tname}_dir", nxt.arrays["direction"].astype(np.int8),
                                per_line=16))
            flash_floats += thr.size
        elif nxt is not None and nxt.op != "affine":
            raise Bnn2hwError(f"IR layer {layer.name}: a hidden {layer.op} must be followed by a threshold")
        if layer.op == "dense":
            if int(np.prod(shape)) != fan_in:
                raise Bnn2hwError(f"IR layer {layer.name}: {fan_in} inputs expected, "
                                  f"got {int(np.prod(shape))}")
            dst = out_buf() if thresholded else "logits"
            store = (_threshold_line("s", tname, "o", f"{dst}[o]") if thresholded
                     else "        logits[o] = (int32_t)s;")
            what = f" + {nxt.name}" if thresholded else ", integer logits"
            body.append(f"{cmt}: dense {fan_in} -> {o_n}{what} */")
            body.append(f"""    for (o = 0; o < {o_n}u; ++o) {{
        float s = 0.0f;
        for (i = 0; i < {fan_in}u; ++i) {{
            s += {cur}[i] * {lid}_w[o * {fan_in}u + i];
        }}
{store}
    }}""")
            shape = (o_n,)
        else:  # conv2d
            if not thresholded:
                raise Bnn2hwError(f"IR layer {layer.name}: a conv must be followed by a threshold")
            _, kh, kw, c = w.shape
            h, wd, _ = shape
            s, p = layer.attrs["stride"], layer.attrs["pad"]
            oh, ow = (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1
            dst = out_buf()
            body.append(f"{cmt} + {nxt.name}: conv {kh}x{kw}/{s} pad {p}, {c} -> {o_n} channels "
                        "(padded taps skipped: they contribute 0) */")
            body.append(f"""    for (y = 0; y < {oh}u; ++y) {{
        for (x = 0; x < {ow}u; ++x) {{
            for (o = 0; o < {o_n}u; ++o) {{
                float s = 0.0f;
                for (ky = 0; ky < {kh}u; ++ky) {{
                    for (kx = 0; kx < {kw}u; ++kx) {{
                        const int32_t iy = (int32_t)(y * {s}u + ky) - {p};
                        const int32_t ix = (int32_t)(x * {s}u + kx) - {p};
                        if (iy < 0 || iy >= {h} || ix < 0 || ix >= {wd}) {{
                            continue;
                        }}
                        for (i = 0; i < {c}u; ++i) {{
                            s += {cur}[((uint32_t)iy * {wd}u + (uint32_t)ix) * {c}u + i] *
                                 {lid}_w[((o * {kh}u + ky) * {kw}u + kx) * {c}u + i];
                        }}
                    }}
                }}
{_threshold_line("s", tname, "o", f"{dst}[(y * {ow}u + x) * {o_n}u + o]")}
            }}
        }}
    }}""")
            shape = (oh, ow, o_n)
        if thresholded:
            cur = dst
            sizes.append(int(np.prod(shape)))
            i += 2
        else:
            i += 1
    if not have_affine:  # bnn_predict needs them: identity head
        data.append("/* no affine head in the IR: float logits = int logits */\n")
        data.append(_farray("logit_scale", np.ones(num_logits)))
        data.append(_farray("logit_bias", np.zeros(num_logits)))
    arena_a = max(n for j, n in enumerate(sizes) if j % 2 == 0)
    arena_b = max([n for j, n in enumerate(sizes) if j % 2 == 1] or [1])
    scratch = 4 * (arena_a + arena_b)
    guard = f"BNN_MODEL_{model_name.upper()}_FLOAT_H"
    header = f"""/* SPDX-License-Identifier: MIT */
/*
 * Generated by bnn2hw {__version__} (float reference version) from model
 * {graph.meta.get('model_hash', '?')} (IR {ir_hash}). Do not edit.
 *
 * The same network as the binary firmware, computed in plain float C (weights +-1.0f or
 * int8 values, float accumulate and compare). Same interface as the binary model.h.
 * Input: {input_len} bytes ({graph.input_kind} input, shape {list(graph.input_shape)}, as model.h documents).
 * Output: {num_logits} int32 integer logits (float accumulators, exact integers).
 * Memory: float weights static const; a static {scratch}-byte float arena.
 */
#ifndef {guard}
#define {guard}

#include <stddef.h>
#include <stdint.h>

#define BNN_INPUT_LEN {input_len}u
#define BNN_NUM_LOGITS {num_logits}u
#define BNN_SCRATCH_BYTES {scratch}u

#define BNN_OK 0
#define BNN_ERR_INPUT_LEN (-1)
#define BNN_ERR_LOGITS_LEN (-2)
#define BNN_ERR_NULL (-3)

int bnn_infer(const uint8_t *input, size_t input_len, int32_t *logits, size_t logits_len);
int bnn_predict(const uint8_t *input, size_t input_len);

#endif /* {guard} */
"""
    src = "\n".join(body)
    used = [v for v in ("y", "x", "o", "i", "ky", "kx") if f" {v} = 0" in src or f"({v} = 0" in src]
    decl = f"    uint32_t {', '.join(used)};\n" if used else ""
    source = f"""/* SPDX-License-Identifier: MIT */
/* Generated by bnn2hw {__version__} (float reference version) from model {graph.meta.get('model_hash', '?')}
 * (IR {ir_hash}). */
#include "model.h"

/* ---- constant data (flash) ---------------------------------------------------------- */
{''.join(data)}
/* ---- scratch: two ping-pong float buffers -------------------------------------------- */
static float arena_a[{arena_a}];
static float arena_b[{arena_b}];

{entry_points(decl + src)}"""
    return Emitted(header, source, scratch, 4 * flash_floats, [l.name for l in layers])


def write_float_firmware_dir(graph: Graph, out_dir, target: str) -> Emitted:
    """model.c/model.h (float version) + the harness, in the layout of
    :func:`bnn2hw.mcu.cli.write_firmware_dir` (the bnn_* runtime is copied too, unused)."""
    from pathlib import Path

    from ..outdir import write_dir_atomically
    from .toolchain import write_harness

    em = emit_float(graph)

    def fill(tmp: Path) -> None:
        (tmp / "model.h").write_text(em.header)
        (tmp / "model.c").write_text(em.source)
        write_harness(tmp, target)

    write_dir_atomically(Path(out_dir), fill, marker="model.h")
    return em
