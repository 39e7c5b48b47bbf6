# SPDX-License-Identifier: MIT
"""Helpers shared by the FINN-graph tests (``test_finn_graph.py``, ``test_finn.py``)."""

from __future__ import annotations

import copy

import torch

NEGATED_CLASSES = (0, 2, 4, 6, 8)


def negate_classes(model: torch.nn.Module, classes=NEGATED_CLASSES) -> torch.nn.Module:
    """A copy of ``model`` whose output scale is negative exactly for ``classes``, built
    deterministically (no seed luck): every class whose learnt head scale has the wrong sign gets
    that scale and the latent weights of the head's row negated. The binarizers are odd functions
    and the channel scale (mean |f(w)|) is even, so the ±1 row flips and the float logits stay the
    same, while the IR's integer logit of that class changes sign."""
    m = copy.deepcopy(model)
    head = m.head
    assert head.learn_affine, "negate_classes needs a binary head with a learnt scale"
    want_neg = torch.zeros(head.scale.shape[0], dtype=torch.bool)
    want_neg[list(classes)] = True
    with torch.no_grad():
        flip = (head.scale < 0) != want_neg
        head.scale[flip] = -head.scale[flip]
        head.layer.weight[flip] = -head.layer.weight[flip]
    return m


def resnet8_graph(seed: int = 0, hw: int = 32, widths=(16, 32, 64), classes: int = 10, bits: int = 8,
                  pad_value: int = -1):
    """A hand-built IR graph of MLPerf Tiny's ResNet-8 shape (issue 9): a uint8 3x3 conv stem (16)
    -> requant to the ``bits``-bit stream; three residual stacks of ``widths`` (stride 1 with an
    identity shortcut, then stride 2 with a 1x1 stride-2 binary shortcut conv + requant), each
    block sign(stream) -> 3x3 binary conv -> sign(acc) -> 3x3 binary conv -> requant -> saturating
    add; global average pool (window sum) -> int8 dense head on the stream -> affine. Random
    weights (seeded), negative multipliers, direction -1 stream thresholds, ``pad_value`` -1."""
    import numpy as np

    from bnn2hw.ir.graph import Graph, Layer

    rng = np.random.default_rng(seed)
    frac = 4

    def conv(name, c_in, c_out, k, stride, pad, kind, inputs=None):
        attrs = {"in": kind, "weight_kind": "binary", "stride": stride, "pad": pad}
        if kind == "bits":
            attrs["pad_value"] = pad_value
        w = rng.choice([-1, 1], (c_out, k, k, c_in)).astype(np.int8)
        return Layer("conv2d", name, f"{name}.conv", attrs, {"weight": w}, list(inputs or []))

    def requant(name, c, fan_in, inputs=None):
        shift = 6
        mult = rng.integers(1, 1 << shift, c) * rng.choice([-1, 1], c)  # a stream of ~±fan_in/2 spread
        mult = np.maximum(1, (mult * 4 // max(1, int(np.sqrt(fan_in))))) * np.sign(mult)
        mult[0] = -abs(mult[0])
        bias = rng.integers(-(1 << shift), 1 << shift, c) + (1 << (shift - 1))
        return Layer("requant", name, f"{name}.bn", {"shift": shift, "bits": bits, "frac": frac},
                     {"mult": mult.astype(np.int64), "bias": bias.astype(np.int64)}, list(inputs or []))

    def sign(name, c, lo, hi, inputs=None):
        thr = rng.integers(lo, hi, c).astype(np.int64)
        d = rng.choice([-1, 1], c).astype(np.int8)
        d[0] = -1
        return Layer("threshold", name, f"{name}.sign", {}, {"thr": thr, "direction": d}, list(inputs or []))

    c = widths[0]
    layers = [conv("stem", 3, c, 3, 1, 1, "u8"), requant("x0", c, 27 * 255)]
    x, h = "x0", hw
    q = 1 << (bits - 2)
    for b, c2 in enumerate(widths):
        s = 1 if b == 0 else 2
        layers += [sign(f"b{b}_s", c, -q, q, [x]), conv(f"b{b}_c1", c, c2, 3, s, 1, "bits"),
                   sign(f"b{b}_t", c2, -8, 8), conv(f"b{b}_c2", c2, c2, 3, 1, 1, "bits"),
                   requant(f"b{b}_z", c2, 9 * c2)]
        short = x
        if s != 1 or c2 != c:
            layers += [conv(f"b{b}_d", c, c2, 1, s, 0, "bits", [f"b{b}_s"]), requant(f"b{b}_y", c2, c)]
            short = f"b{b}_y"
        layers.append(Layer("add", f"b{b}_x", f"stack{b + 1} residual", {"frac": frac, "bits": bits}, {},
                            [f"b{b}_z", short]))
        x, c, h = f"b{b}_x", c2, (h - 1) // s + 1
    layers += [Layer("avgpool", "pool", "avgpool", {"kernel": h, "stride": h}),
               Layer("flatten", "flat", "flatten", {}),
               Layer("dense", "fc", "fc", {"in": "fixed", "weight_kind": "int8"},
                     {"weight": rng.integers(-127, 128, (classes, c)).astype(np.int8)}),
               Layer("affine", "logits", "fc", {}, {"scale": np.full(classes, 2.0 ** -frac) / (h * h),
                                                    "bias": np.zeros(classes)})]
    return Graph((hw, hw, 3), layers, 1.0, {"source": "tests/finn_helpers.py:resnet8_graph", "arch": "resnet8"})
