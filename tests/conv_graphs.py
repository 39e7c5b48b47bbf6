# SPDX-License-Identifier: MIT
"""Layer builders for hand-built CNN IR graphs shared by the C tests (column-sliced convs,
Helium prepared convs): random +-1 3x3 conv weights and thresholds with random directions."""

from __future__ import annotations

import numpy as np

from bnn2hw.ir.graph import Layer


def binary_conv3x3(rng: np.random.Generator, name: str, cin: int, cout: int, stride: int, pad: int, kind: str,
                   pad_value: int = 0) -> Layer:
    """A 3x3 binary-weight conv on ``kind`` input ("u8" or "bits"; bits convs pad with ``pad_value``)."""
    attrs = {"in": kind, "weight_kind": "binary", "stride": stride, "pad": pad}
    if kind == "bits":
        attrs["pad_value"] = pad_value
    return Layer("conv2d", name, f"{name}.conv", attrs,
                 {"weight": rng.choice([-1, 1], (cout, 3, 3, cin)).astype(np.int8)})


def threshold(rng: np.random.Generator, name: str, c: int, k: int, extremes: bool = False) -> Layer:
    """Thresholds near 0 for a fan-in of ``k``, channel 0 on 0 (a tie on even counts); with
    ``extremes`` channels 1 and 2 never / always fire (thresholds beyond [-K, K])."""
    t = rng.integers(-k // 6, k // 6 + 1, c).astype(np.int64)
    t[0] = 0
    if extremes:
        t[1], t[2] = 10 * k, -10 * k
    return Layer("threshold", name, f"{name}.bn", {}, {"thr": t, "direction": rng.choice([-1, 1], c).astype(np.int8)})
