# SPDX-License-Identifier: MIT
"""Estimated instructions per inference of the generated C on a Cortex-M core.

A linear model over the work each op does in the C kernels (``firmware/src``), with one
coefficient per kind of work, fitted by ``benchmarks/calibrate_cost_model.py`` to QEMU's exact
instruction counts of random models on Cortex-M4 (the fit, its data and its error are in
``benchmarks/results/cost_model.md``). Other cores scale the M4 estimate by the ratio measured on
the digits MLP in ``benchmarks/results/mcu_models.md`` (``multi`` popcount). It is an estimate for
sizing (``bnn2hw summary``); ``emit-c --verify`` reports the exact count.

Work features (per inference):

* ``bin_words_dense`` / ``bin_words_conv``: 32-bit XNOR-popcount words of binary layers on packed
  bits (outputs x ceil(fan-in / 32); conv patches are packed contiguously),
* ``bin_words_dense_k8``: the same for dense layers of 225..256 inputs on Thumb-2 cores, fitted
  separately (8-word rows; they measure cheaper per word in ``bnn_bits.c``'s row kernel),
* ``u8_dense_macs`` / ``u8_conv_macs``: uint8-pixel x binary-weight MACs of a first layer,
* ``int8_macs``: MACs with int8 weights (first or last layer),
* ``outputs``: values a dense/conv op produces (threshold compare, bit packing, loop overhead),
* ``patch_bits``: bits a binary conv gathers into its per-position patch (positions x kh kw C),
* ``pool_words``: packed words a max-pool reads (outputs x ceil(C / 32) x k^2),
* ``fixed``: elements through a fixed-point op (fixed_affine, periodic, add, requant, sign; the
  input elements of an avgpool).
"""

from __future__ import annotations

import numpy as np

from ..ir.graph import Layer

# Fitted on Cortex-M4 by `python benchmarks/calibrate_cost_model.py --models 40 --seed 0` (40 random
# MLPs/CNNs incl. the default digits MLP and CNN) after the column-sliced dense and conv kernels, the
# border-class tables and the 16-channel paired rows landed (issue 11): median error 10.9%, max 71.9%
# (benchmarks/results/cost_model.md). The column-sliced kernels count about half the words of the
# row kernels, so the word coefficients fell by about 3x. ``bin_words_dense_k8`` is kept as a feature.
# ``fixed`` is not calibrated (no fixed-point model in the set): the fit's 0 would make residual
# streams free, so the previous guess is kept.
COEFFS_M4 = {"bin_words_dense_k8": 2.460, "bin_words_dense": 3.547, "bin_words_conv": 3.244, "u8_dense_macs": 1.620,
             "u8_conv_macs": 0.777, "int8_macs": 5.758, "outputs": 7.557, "patch_bits": 6.442, "pool_words": 344.657,
             "fixed": 30.0}

# M4-relative factors (digits MLP, multi popcount; benchmarks/results/mcu_models.md).
CORE_FACTOR = {"host": 1.0, "cortex-m0": 2.17, "cortex-m3": 1.026, "cortex-m4": 1.0, "cortex-m7": 0.999,
               "cortex-m33": 0.998, "cortex-m55": 0.994}


def work_features(layer: Layer, in_shape: tuple, out_shape: tuple, thumb2: bool = True) -> dict:
    """The work of one op (see the module docstring) from its IR shapes."""
    f = dict.fromkeys(COEFFS_M4, 0.0)
    at = layer.attrs
    if layer.op in ("dense", "conv2d"):
        w = layer.arrays["weight"]
        fan_in = int(np.prod(w.shape[1:]))
        positions = 1 if layer.op == "dense" else out_shape[0] * out_shape[1]
        outputs = positions * w.shape[0]
        f["outputs"] = outputs
        if at.get("weight_kind") == "int8":
            f["int8_macs"] = outputs * fan_in
        elif at["in"] == "bits":
            key = "bin_words_dense" if layer.op == "dense" else "bin_words_conv"
            if layer.op == "dense" and (fan_in + 31) // 32 == 8 and thumb2:
                key = "bin_words_dense_k8"
            f[key] = outputs * ((fan_in + 31) // 32)
            if layer.op == "conv2d":
                f["patch_bits"] = positions * fan_in
        else:
            f["u8_dense_macs" if layer.op == "dense" else "u8_conv_macs"] = outputs * fan_in
    elif layer.op == "maxpool":
        k = at["kernel"]
        f["pool_words"] = int(np.prod(out_shape[:-1])) * ((out_shape[-1] + 31) // 32) * k * k
    elif layer.op == "avgpool":
        f["fixed"] = int(np.prod(in_shape))
    elif layer.op in ("fixed_affine", "periodic", "add", "requant") or (layer.op == "threshold" and at.get("sign_of")):
        f["fixed"] = int(np.prod(out_shape))
    return f


def estimate_layer_instructions(layer: Layer, in_shape: tuple, out_shape: tuple, core: str = "cortex-m4") -> int:
    """Estimated instructions of one op on ``core``."""
    from .targets import get_target

    name = get_target(core).name
    feats = work_features(layer, in_shape, out_shape, thumb2=name not in ("cortex-m0", "host"))
    m4 = sum(COEFFS_M4[k] * v for k, v in feats.items())
    return int(round(m4 * CORE_FACTOR[name]))
