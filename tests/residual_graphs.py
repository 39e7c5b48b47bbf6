# SPDX-License-Identifier: MIT
"""Hand-built residual IR graphs (issue 9) shared by the IR and C tests: a uint8 conv stem, a
requantized fixed-point stream, residual blocks (threshold -> binary 3x3 conv -> requant, plus an
identity or a 1x1 strided binary conv shortcut -> requant, then a saturating add), a global
average pool (window sum) and an int8 dense head on the stream. Random weights, negative
multipliers, thresholds drawn from the stream's own range so that ties happen."""

from __future__ import annotations

import numpy as np

from bnn2hw.ir.graph import Graph, Layer


def _requant(rng, name: str, src: str, c: int, bits: int, frac: int, shift: int, mult_max: int,
             inputs: list | None = None) -> Layer:
    mult = rng.integers(-mult_max, mult_max + 1, c)
    mult[mult == 0] = 1
    mult[0] = -abs(mult[0])  # at least one negative multiplier
    bias = rng.integers(-(1 << shift), 1 << shift, c) + (1 << (shift - 1))  # round-half-up in the bias
    return Layer("requant", name, src, {"shift": shift, "bits": bits, "frac": frac},
                 {"mult": mult.astype(np.int64), "bias": bias.astype(np.int64)}, list(inputs or []))


def _sign(rng, name: str, c: int, bits: int, inputs: list | None = None) -> Layer:
    thr = rng.integers(-(1 << (bits - 2)), 1 << (bits - 2), c).astype(np.int64)
    thr[0] = 0  # the plain sign, 0 -> +1
    d = rng.choice([-1, 1], c).astype(np.int8)
    return Layer("threshold", name, f"{name}.sign", {}, {"thr": thr, "direction": d}, list(inputs or []))


def _conv(rng, name: str, c_in: int, c_out: int, k: int, stride: int, pad: int, pad_value: int, kind: str,
          inputs: list | None = None) -> Layer:
    attrs = {"in": kind, "weight_kind": "binary", "stride": stride, "pad": pad}
    if kind == "bits":
        attrs["pad_value"] = pad_value
    return Layer("conv2d", name, f"{name}.conv", attrs,
                 {"weight": rng.choice([-1, 1], (c_out, k, k, c_in)).astype(np.int8)}, list(inputs or []))


def residual_graph(rng, hw: int = 8, c_in: int = 3, widths=(4, 6), stride: int = 2, pad_value: int = -1,
                   shortcut: str = "conv", bits: int = 8, frac: int = 4, classes: int = 5,
                   pool: str = "global") -> Graph:
    """u8 conv stem -> requant -> one residual block per entry of ``widths`` after the first
    (the first block's stride is ``stride``, later ones 1 with identity shortcuts) -> avgpool ->
    dense int8 on the fixed stream -> affine. ``shortcut`` "identity" needs ``stride`` 1 and equal
    widths. ``pool`` "global" (kernel = H) or "2x2" (kernel 2, stride 2, then a dense over the
    flattened window sums)."""
    c0 = widths[0]
    layers = [_conv(rng, "stem", c_in, c0, 3, 1, 1, 0, "u8"),
              _requant(rng, "x0", "stem.bn", c0, bits, frac, 6, 8)]
    x, c, h = "x0", c0, hw
    for b, c2 in enumerate(widths[1:] or widths[:1]):
        s = stride if b == 0 else 1
        sc = shortcut if b == 0 else "identity"
        if sc == "identity" and (s != 1 or c2 != c):
            raise ValueError("an identity shortcut needs stride 1 and equal widths")
        layers.append(_sign(rng, f"s{b}", c, bits, [x]))
        layers.append(_conv(rng, f"c{b}", c, c2, 3, s, 1, pad_value, "bits"))
        layers.append(_requant(rng, f"z{b}", f"block{b}.bn", c2, bits, frac, 3, 3))
        add_inputs = [f"z{b}", x]
        if sc == "conv":
            layers.append(_conv(rng, f"d{b}", c, c2, 1, s, 0, 0, "bits", [f"s{b}"]))
            layers.append(_requant(rng, f"y{b}", f"block{b}.down.bn", c2, bits, frac, 2, 5))
            add_inputs = [f"z{b}", f"y{b}"]
        layers.append(Layer("add", f"x{b + 1}", f"block{b} residual", {"frac": frac, "bits": bits}, {},
                            add_inputs))
        x, c, h = f"x{b + 1}", c2, (h - 1) // s + 1
    if pool == "global":
        layers.append(Layer("avgpool", "pool", "avgpool", {"kernel": h, "stride": h}))
        fan_in = c
    else:
        layers.append(Layer("avgpool", "pool", "avgpool", {"kernel": 2, "stride": 2}))
        fan_in = ((h - 2) // 2 + 1) ** 2 * c
    layers.append(Layer("flatten", "flat", "flatten", {}))
    layers.append(Layer("dense", "fc", "fc", {"in": "fixed", "weight_kind": "int8"},
                        {"weight": rng.integers(-127, 128, (classes, fan_in)).astype(np.int8)}))
    layers.append(Layer("affine", "logits", "fc", {}, {"scale": np.full(classes, 2.0 ** -frac),
                                                       "bias": np.zeros(classes)}))
    return Graph((hw, hw, c_in), layers, 1.0, {"source": "tests/residual_graphs.py"})


def saturating_inputs(rng, n: int, hw: int, c_in: int) -> np.ndarray:
    """uint8 images (N, C, H, W): random, plus all-255 and all-0 and a checkerboard (extremes that
    push the stream into saturation at both ends and make many accumulators tie)."""
    x = rng.integers(0, 256, (n, c_in, hw, hw)).astype(np.uint8)
    if n >= 3:
        x[0] = 255
        x[1] = 0
        x[2] = (np.indices((hw, hw)).sum(0) % 2 * 255).astype(np.uint8)
    return x
