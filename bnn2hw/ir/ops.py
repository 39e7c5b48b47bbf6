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


def exact_float_dtype(fan_in: int, amax: int, bmax: int):
    """The narrowest float type in which every partial sum of a dot product of ``fan_in``
    integer terms (|a| <= amax, |b| <= bmax) is an exact integer, in any summation order:
    float32 below 2^24, float64 below 2^53; None beyond."""
    bound = int(fan_in) * int(amax) * int(bmax)
    return np.float32 if bound < 2 ** 24 else np.float64 if bound < 2 ** 53 else None


def _absmax(a: np.ndarray) -> int:
    return max(-int(a.min()), int(a.max())) if a.size else 0


def int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact int64 ``a @ b`` of integer-valued matrices (integer or float arrays). numpy's integer
    matmul does not use BLAS (a 28x28 CNN's verification spent most of its time there), so the
    product is taken in the float type of :func:`exact_float_dtype` when there is one and
    converted back; otherwise in int64."""
    if a.size == 0 or b.size == 0:
        return a.astype(np.int64) @ b.astype(np.int64)
    ft = exact_float_dtype(a.shape[-1], _absmax(a), _absmax(b))
    if ft is None:
        return a.astype(np.int64) @ b.astype(np.int64)
    return (a.astype(ft, copy=False) @ b.astype(ft, copy=False)).astype(np.int64)


def dense(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """acc[n, o] = sum_i x[n, i] * w[o, i]; for ±1 x and w this is K - 2 popcount(x xor w).

    The same sum serves every input kind: uint8 pixels, ±1 bits, or the integers q of a ``fixed``
    stream (then acc is in units of 2^-frac; the 1/window of a preceding avgpool and the stream's
    scale live in the affine head). Exact: :func:`int_matmul`."""
    return int_matmul(x, w.T)


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, pad: int, pad_value: int = 0) -> np.ndarray:
    """(N, H, W, C) -> (N, OH, OW, kh*kw*C) patches in (ky, kx, c) order; padded positions hold
    ``pad_value``.

    ``pad_value`` 0 on ±1 data means a padded tap contributes 0 to the accumulator (zero padding
    of the real activation, as the official BiPer code and Larq do); the C kernels reproduce it
    with a per-position fan-in. ``pad_value`` -1 means a padded position holds the activation -1
    (the bit 0: FINN's FMPadding of a binary stream). An array ``pad_value`` (C,) pads each
    channel with its own value (a uint8 input padded with the mean pixel: zero padding in the
    normalized space of an input Normalize, :mod:`bnn2hw.export.fold_official`)."""
    n, h, w, c = x.shape
    if np.ndim(pad_value):  # one value per input channel (the uint8 first layer's mean pixel)
        xp = np.empty((n, h + 2 * pad, w + 2 * pad, c), dtype=np.int64)
        xp[...] = np.asarray(pad_value, dtype=np.int64)
        xp[:, pad:pad + h, pad:pad + w, :] = x
    else:
        xp = np.pad(x.astype(np.int64), ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=pad_value)
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (w + 2 * pad - kw) // stride + 1
    cols = np.empty((n, oh, ow, kh, kw, c), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            cols[:, :, :, ky, kx, :] = xp[:, ky:ky + stride * oh:stride, kx:kx + stride * ow:stride, :]
    return cols.reshape(n, oh, ow, kh * kw * c)


CONV_CHUNK_BYTES = 4 << 20
"""conv2d works on this many bytes of patches at a time, cache-sized (a 1000-image batch would otherwise
build a multi-GB im2col matrix)."""


def conv2d(x: np.ndarray, w: np.ndarray, stride: int, pad: int, pad_value: int = 0) -> np.ndarray:
    """x (N, H, W, C), w (O, kh, kw, C) -> acc (N, OH, OW, O), OH = (H + 2 pad - kh) // stride + 1.

    Invariant: acc[n, y, x, o] = sum over taps (ky, kx, c) of w[o, ky, kx, c] * v, where v is the
    input at (y*stride + ky - pad, x*stride + kx - pad, c) inside the image and ``pad_value``
    (0 or -1) outside it. Any kernel size (1x1 included) and any stride. Computed in chunks of
    images with :func:`int_matmul` (exact)."""
    o, kh, kw, c = w.shape
    n, h, wd, _ = x.shape
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    wmat = w.reshape(o, -1).T
    per = max(1, CONV_CHUNK_BYTES // max(1, oh * ow * kh * kw * c * 8))
    out = np.empty((n, oh, ow, o), dtype=np.int64)
    for lo in range(0, n, per):
        out[lo:lo + per] = int_matmul(im2col(x[lo:lo + per], kh, kw, stride, pad, pad_value), wmat)
    return out


def threshold(acc: np.ndarray, thr: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """±1 per channel (last axis): +1 where acc >= thr (direction +1) or acc <= thr (-1).

    The tie rule of :func:`bnn2hw.nn.surrogates.binary_sign` (0 -> +1) is what makes the
    comparison non-strict."""
    thr, direction = np.asarray(thr), np.asarray(direction)
    if thr.ndim != 1 or direction.shape != thr.shape or acc.shape[-1:] != thr.shape:
        return np.where(np.where(direction > 0, acc >= thr, acc <= thr), 1, -1).astype(np.int64)
    # acc <= thr  <=>  not (acc >= thr) or acc == thr: whole-array compares (no gather of the
    # down channels, no np.where, both slow on large tensors)
    up = direction > 0
    res = (acc >= thr) == up
    if not up.all():
        res |= (acc == thr) & ~up
    out = res.astype(np.int64)
    out *= 2
    out -= 1
    return out


def maxpool(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """Max-pool (N, H, W, C) with no padding (floor); on ±1 data max is a logical OR of +1, on a
    fixed-point stream the largest integer of the window (exact)."""
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


def saturation(bits: int, lo: int | None = None, hi: int | None = None) -> tuple[int, int]:
    """The clip bounds of a ``requant`` / ``add``: ``lo``/``hi`` when given (a hardtanh of the
    stream: ``[-2^frac, 2^frac]``), else the signed ``bits``-bit range."""
    return (-(1 << (bits - 1)) if lo is None else int(lo), (1 << (bits - 1)) - 1 if hi is None else int(hi))


def add(a: np.ndarray, b: np.ndarray, bits: int = 32, lo: int | None = None, hi: int | None = None) -> np.ndarray:
    """Residual connection: the sum of two tensors in the same Q format, saturated to
    ``[lo, hi]`` (default the signed ``bits``-bit range): ``clip(a + b, lo, hi)`` (exact in int64
    for ``bits`` <= 32 and inputs of at most 32 bits). With ``lo = -2^frac``, ``hi = 2^frac`` it
    is ``hardtanh(a + b)`` on the Q(frac) stream (the official BiPer blocks)."""
    lo, hi = saturation(bits, lo, hi)
    return np.clip(a.astype(np.int64) + b.astype(np.int64), lo, hi)


def pad_channels(x: np.ndarray, before: int, after: int) -> np.ndarray:
    """Zero channels around a (N, H, W, C) tensor: (N, H, W, before + C + after), the input in
    channels ``before .. before + C - 1`` (the option-A shortcut's ``F.pad`` on channels).
    Invariant: exact (a copy), so a saturated stream stays saturated."""
    return np.pad(x.astype(np.int64), ((0, 0), (0, 0), (0, 0), (int(before), int(after))))


def requant(x: np.ndarray, mult: np.ndarray, bias: np.ndarray, shift: int, bits: int, lo: int | None = None,
            hi: int | None = None) -> np.ndarray:
    """Requantize an accumulator or a fixed-point tensor to the residual stream (per channel, last
    axis): ``clip((x * mult + bias) >> shift, -2^(bits-1), 2^(bits-1) - 1)``.

    ``>>`` is an arithmetic shift, i.e. floor division by 2^shift (so -1 >> 1 == -1); rounding is
    whatever ``bias`` holds (the folder adds 2^(shift-1) for round-half-up). Invariant: exact in
    int64 because |x| < 2^31 (a fixed input has at most 32 bits; an accumulator is int32, which
    :func:`bnn2hw.mcu.codegen.check_accumulators` proves), and validate() bounds |mult| < 2^31 and
    |bias| <= 2^62, so |x * mult + bias| < 2^63. Explicit ``lo``/``hi`` (inside the ``bits`` range)
    replace the saturation bounds: ``lo = -2^frac, hi = 2^frac`` is a hardtanh on the Q(frac) stream."""
    v = x.astype(np.int64) * mult.astype(np.int64) + bias.astype(np.int64)
    v = v >> np.int64(shift)
    return np.clip(v, *saturation(bits, lo, hi))


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
