# SPDX-License-Identifier: MIT
"""Generation-time weight prep of the Helium (Cortex-M55) column-image conv (issue 11).

``bnn_conv_bits_mve_prep`` (bnn_conv.h / bnn_conv.c) runs the same arithmetic as the per-call
``conv_bits_mve`` path, but takes from flash what that path rebuilds on every call:

* the weight rows in the row-dense layout (:func:`row_dense_weights`): per kernel row the kw taps
  back to back, first the kw (cw - 1) full words, then the kw tail words (cin - 32 (cw - 1) bits
  each) as one bit stream, rwd = ceil(kw cin / 32) words; cin % 32 == 0: the padded layout;
* the popcount bounds M per window class (:func:`m_tables`):
  ``M = clamp(floor((K_v - thr) / 2) + sum_{t padded} c_t, -1, 32 nw)`` with K_v = (valid taps) cin,
  c_t = the +1 weights of tap t, thr clamped to [-2^29, 2^29] (the C path's formula, bnn_conv.c
  mve_thresholds); a position's bit is ``popcount(patch ^ row) <= M``.

Invariant: for every output position the table selected by (ycls[oy], xcls[ox]) equals the M the
per-call path computes for that position's window, so both paths give the same bits.
"""

from __future__ import annotations

import numpy as np

from .codegen import pack_bits

# bnn_conv.c defaults: the column image buffer and the clipped-segment scratch
MVE_COL_WORDS = 512


def fits(h: int, cin: int, kh: int, kw: int, stride_h: int, out_h: int) -> bool:
    """The prepared entry applies (cin >= 32 and the column image fits the default buffer)."""
    rwd = -(-kw * cin // 32)
    rows = (out_h - 1) * stride_h + kh
    return cin >= 32 and out_h > 0 and rows * rwd <= MVE_COL_WORDS


def row_dense_weights(w: np.ndarray) -> np.ndarray:
    """±1 weights (cout, kh, kw, cin) -> uint32 words (cout, kh rwd) in the row-dense layout."""
    o, kh, kw, c = w.shape
    if c % 32 == 0:
        return pack_bits(w).reshape(o, -1)
    cw = -(-c // 32)
    full = 32 * (cw - 1)
    rwd = -(-kw * c // 32)
    seg = np.concatenate([w[..., :full].reshape(o, kh, kw * full), w[..., full:].reshape(o, kh, kw * (c - full))],
                         axis=-1)
    bits = np.full((o, kh, rwd * 32), -1, dtype=np.int8)  # -1 -> bit 0 (the C path's zero fill)
    bits[..., :kw * c] = seg
    return pack_bits(bits).reshape(o, kh * rwd)


def _windows(n_in: int, n_out: int, k: int, stride: int, pad: int) -> list[tuple[int, int]]:
    """Valid taps [k0, k1) of each output index (bnn_conv.c's clipping)."""
    res = []
    for i in range(n_out):
        x0 = i * stride - pad
        k0 = min(-x0, k) if x0 < 0 else 0
        k1 = max(0, min(n_in - x0, k))
        res.append((k0, max(k1, k0)))
    return res


def window_classes(in_hw: tuple[int, int], out_hw: tuple[int, int], kh: int, kw: int, stride: int, pad: int,
                   pad_minus1: bool) -> tuple[list, list, list, list]:
    """(row window per output row, column window per output column, the distinct row windows, the distinct
    column windows), sorted: the window classes of the M tables.  Zero padding clips the windows at the
    border; -1 padding or no padding leaves every window full (one class)."""
    if pad_minus1 or pad == 0:
        ywin, xwin = [(0, kh)] * out_hw[0], [(0, kw)] * out_hw[1]
    else:
        ywin = _windows(in_hw[0], out_hw[0], kh, stride, pad)
        xwin = _windows(in_hw[1], out_hw[1], kw, stride, pad)
    ys, xs = sorted(set(ywin)), sorted(set(xwin))
    if len(ys) > 255 or len(xs) > 255:
        raise ValueError("more than 255 window classes")  # unreachable for kernels <= 255
    return ywin, xwin, ys, xs


def class_masks(ys: list, xs: list, kh: int, kw: int):
    """Each window class of :func:`window_classes` as (table row yi * len(xs) + xi, its (kh, kw) mask of
    valid taps): the loop every prepared-conv module (M55, M4 rows, position-sliced) runs over its
    classes to compute per-class bounds."""
    for yi, (ky0, ky1) in enumerate(ys):
        for xi, (kx0, kx1) in enumerate(xs):
            valid = np.zeros((kh, kw), dtype=bool)
            valid[ky0:ky1, kx0:kx1] = True
            yield yi * len(xs) + xi, valid


def m_tables(w: np.ndarray, thr: np.ndarray, in_hw: tuple[int, int], out_hw: tuple[int, int], stride: int,
             pad: int, pad_minus1: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(M tables (ny nx, cpad) int32, xcls (out_w,) uint8, ycls (out_h,) uint8, cpad).

    Zero padding: one table per distinct (row window, column window) pair; -1 padding or no
    padding: one table (K_v = kh kw cin everywhere, no correction)."""
    o, kh, kw, c = w.shape
    nw = kh * -(-kw * c // 32)
    cpad = -(-o // 4) * 4
    t = np.clip(np.asarray(thr, dtype=np.int64), -(1 << 29), 1 << 29)
    ones = (np.asarray(w) > 0).sum(-1).reshape(o, kh * kw).astype(np.int64)  # c_t per channel
    ywin, xwin, ys, xs = window_classes(in_hw, out_hw, kh, kw, stride, pad, pad_minus1)
    tables = np.full((len(ys) * len(xs), cpad), -1, dtype=np.int64)
    for row, valid in class_masks(ys, xs, kh, kw):
        kv = int(valid.sum()) * c
        corr = ones[:, ~valid.ravel()].sum(-1)
        m = ((kv - t) >> 1) + corr
        tables[row, :o] = np.clip(m, -1, 32 * nw)
    ycls = np.array([ys.index(v) for v in ywin], dtype=np.uint8)
    xcls = np.array([xs.index(v) for v in xwin], dtype=np.uint8)
    return tables.astype(np.int32), xcls, ycls, cpad
