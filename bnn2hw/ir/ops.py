# SPDX-License-Identifier: MIT
"""Reference numpy semantics of every IR op: the oracle for the IR executor, the ONNX graphs
and the C code alike.

Value conventions (the bit convention is defined once, in :mod:`bnn2hw.ir.bits`):

* ``u8``: uint8 pixels, held as int64 here;
* ``bits``: ±1 values, held as int64 ``-1`` / ``+1`` (packed only at the C edge);
* ``acc``: signed integer accumulators (int64 here; the C generator proves int32 suffices).

Image tensors are channels-last, ``(N, H, W, C)``; vectors are ``(N, F)``.
"""

from __future__ import annotations

import numpy as np


def dense(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """acc[n, o] = sum_i x[n, i] * w[o, i]; for ±1 x and w this is K - 2 popcount(x xor w).

    The same sum serves every input kind: uint8 pixels, ±1 bits, or the integers q of a ``fixed``
    stream (then acc is in units of 2^-frac; the 1/window of a preceding avgpool and the stream's
    scale live in the affine head)."""
    return x.astype(np.int64) @ w.astype(np.int64).T


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, pad: int, pad_value: int = 0) -> np.ndarray:
    """(N, H, W, C) -> (N, OH, OW, kh*kw*C) patches in (ky, kx, c) order; padded positions hold
    ``pad_value``.

    ``pad_value`` 0 on ±1 data means a padded tap contributes 0 to the accumulator (zero padding
    of the real activation, as the official BiPer code and Larq do); the C kernels reproduce it
    with a per-position fan-in. ``pad_value`` -1 means a padded position holds the activation -1
    (the bit 0: FINN's FMPadding of a binary stream)."""
    n, h, w, c = x.shape
    xp = np.pad(x.astype(np.int64), ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=pad_value)
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (w + 2 * pad - kw) // stride + 1
    cols = np.empty((n, oh, ow, kh, kw, c), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            cols[:, :, :, ky, kx, :] = xp[:, ky:ky + stride * oh:stride, kx:kx + stride * ow:stride, :]
    return cols.reshape(n, oh, ow, kh * kw * c)


def conv2d(x: np.ndarray, w: np.ndarray, stride: int, pad: int, pad_value: int = 0) -> np.ndarray:
    """x (N, H, W, C), w (O, kh, kw, C) -> acc (N, OH, OW, O), OH = (H + 2 pad - kh) // stride + 1.

    Invariant: acc[n, y, x, o] = sum over taps (ky, kx, c) of w[o, ky, kx, c] * v, where v is the
    input at (y*stride + ky - pad, x*stride + kx - pad, c) inside the image and ``pad_value``
    (0 or -1) outside it. Any kernel size (1x1 included) and any stride."""
    o, kh, kw, c = w.shape
    cols = im2col(x, kh, kw, stride, pad, pad_value)
    return cols @ w.reshape(o, -1).astype(np.int64).T


def threshold(acc: np.ndarray, thr: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """±1 per channel (last axis): +1 where acc >= thr (direction +1) or acc <= thr (-1).

    The tie rule of :func:`bnn2hw.nn.surrogates.binary_sign` (0 -> +1) is what makes the
    comparison non-strict."""
    up = acc >= thr
    down = acc <= thr
    return np.where(np.where(direction > 0, up, down), 1, -1).astype(np.int64)


def maxpool(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """Max-pool (N, H, W, C) with no padding (floor); on ±1 data max is a logical OR of +1."""
    n, h, w, c = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.full((n, oh, ow, c), np.iinfo(np.int64).min, dtype=np.int64)
    for ky in range(k):
        for kx in range(k):
            out = np.maximum(out, x[:, ky:ky + stride * oh:stride, kx:kx + stride * ow:stride, :])
    return out


def flatten(x: np.ndarray) -> np.ndarray:
    """(N, H, W, C) -> (N, H*W*C) in (y, x, c) order; vectors pass through."""
    return x.reshape(x.shape[0], -1)


def affine(acc: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Float logits from integer logits: ``acc * scale + bias`` per class (float64)."""
    return acc.astype(np.float64) * scale + bias


INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


def fixed_affine(acc: np.ndarray, mult: np.ndarray, bias: np.ndarray, shift: int) -> np.ndarray:
    """Q-format value from an integer accumulator: ``(acc * mult + bias + 2^(shift-1)) >> shift``
    (arithmetic shift = floor; rounding by the added half), saturated to int32."""
    v = acc.astype(np.int64) * mult.astype(np.int64) + bias.astype(np.int64)
    if shift:
        v = (v + (1 << (shift - 1))) >> shift
    return np.clip(v, INT32_MIN, INT32_MAX)


def periodic(x: np.ndarray, attrs: dict) -> np.ndarray:
    """``f(w0 x)`` (``attrs['func']``) in fixed point with the approximation named in
    ``attrs['approx']``: the integer arithmetic of ``firmware/src/bnn_periodic.c`` (M-BiPer
    eq. 10-11; a one-period lookup table for every function)."""
    from ..mcu import periodic_tables as pt

    p = pt.make_params(attrs["w0"], attrs["in_frac"], attrs["out_frac"], attrs.get("table_bits", 8))
    method = {"fixed": "linear"}.get(attrs["approx"], attrs["approx"])
    return pt.evaluate(method, p, x, attrs["func"]).astype(np.int64)


def add(a: np.ndarray, b: np.ndarray, bits: int = 32) -> np.ndarray:
    """Residual connection: the sum of two tensors in the same Q format, saturated to a signed
    ``bits``-bit integer: ``clip(a + b, -2^(bits-1), 2^(bits-1) - 1)`` (exact in int64 for
    ``bits`` <= 32 and inputs of at most 32 bits)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(a.astype(np.int64) + b.astype(np.int64), lo, hi)


def requant(x: np.ndarray, mult: np.ndarray, bias: np.ndarray, shift: int, bits: int) -> np.ndarray:
    """Requantize an accumulator or a fixed-point tensor to the residual stream (per channel, last
    axis): ``clip((x * mult + bias) >> shift, -2^(bits-1), 2^(bits-1) - 1)``.

    ``>>`` is an arithmetic shift, i.e. floor division by 2^shift (so -1 >> 1 == -1); rounding is
    whatever ``bias`` holds (the folder adds 2^(shift-1) for round-half-up). Invariant: exact in
    int64 because |x| < 2^31 (a fixed input has at most 32 bits; an accumulator is int32, which
    :func:`bnn2hw.mcu.codegen.check_accumulators` proves), and validate() bounds |mult| < 2^31 and
    |bias| <= 2^62, so |x * mult + bias| < 2^63."""
    v = x.astype(np.int64) * mult.astype(np.int64) + bias.astype(np.int64)
    v = v >> np.int64(shift)
    return np.clip(v, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def avgpool(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """Window SUM of (N, H, W, C) over k x k windows, no padding (floor): out[n, y, x, c] =
    sum_{ky, kx < k} x[n, y*stride + ky, x*stride + kx, c].

    Exact, no division: the 1/k^2 of average pooling is folded into the consumer (threshold,
    requant or the dense head's affine), so pooling never rounds. Global average pooling is
    k = H = W, output (N, 1, 1, C). The sum of k^2 values of b bits fits b + ceil(log2 k^2) bits."""
    n, h, w, c = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.zeros((n, oh, ow, c), dtype=np.int64)
    for ky in range(k):
        for kx in range(k):
            out += x[:, ky:ky + stride * oh:stride, kx:kx + stride * ow:stride, :].astype(np.int64)
    return out
