# SPDX-License-Identifier: MIT
"""Stored format and choice rule of the column-sliced dense kernel (``bnn_dense_vbits``,
firmware/include/bnn_dense.h and bnn_vcols.h).

Per group of 32 outputs: the K weight columns (bit r of column i = weight of output 32 g + r at
input i, 1 = +1; rows past n_out are 0) and one zero column (the index list's padding target),
then two sets of nt two's-complement threshold planes, T1 = C - M and U0 = C + M + 1 - K
(C = +1 weights of the row, M = max mismatch clamped to [-1, K]); both lie in [-K, K + 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import Bnn2hwError


@dataclass(frozen=True)
class VColsLayer:
    wc: np.ndarray  # uint32 [groups * (K + 1)]: columns, then the zero column, per group
    tp: np.ndarray  # uint32 [groups * 2 * nt]: T1 planes, then U0 planes, per group
    nq: int  # count planes: bit length of K // 2, at least 1
    nt: int  # threshold planes per set


def count_planes(k: int) -> int:
    """Planes of a count over at most K // 2 listed columns (bnn_vc_select's smaller set)."""
    return max(1, (k // 2).bit_length())


def signed_planes(values: np.ndarray) -> int:
    """Fewest two's-complement planes holding every value (at least 1)."""
    v = np.asarray(values, dtype=np.int64)
    hi = int(np.max(np.where(v < 0, ~v, v))) if v.size else 0
    return hi.bit_length() + 1


def planes_of(values: np.ndarray, nt: int) -> np.ndarray:
    """[32] int values -> [nt] uint32 planes: bit r of plane j = bit j of values[r] (two's complement)."""
    u = np.asarray(values, dtype=np.int64) & ((1 << nt) - 1)
    bits = (u[None, :] >> np.arange(nt, dtype=np.int64)[:, None]) & 1  # [nt, 32]
    return (bits << np.arange(32, dtype=np.int64)[None, :]).sum(axis=1).astype(np.uint32)


def vcols_layer(w_pm1: np.ndarray, max_mismatch: np.ndarray) -> VColsLayer:
    """Weights [n_out, K] in {-1, +1} and popcount thresholds M [n_out] (bit = popcount(x ^ w) <= M)
    in the stored format of bnn_dense_vbits."""
    w = np.asarray(w_pm1)
    if w.ndim != 2 or w.shape[0] == 0 or w.shape[1] == 0:
        raise Bnn2hwError(f"column-sliced dense layer: weights of shape {w.shape}, need [n_out >= 1, K >= 1]")
    n_out, k = w.shape
    mm = np.clip(np.asarray(max_mismatch, dtype=np.int64), -1, k)
    if mm.shape != (n_out,):
        raise Bnn2hwError(f"column-sliced dense layer: {mm.shape} thresholds for {n_out} outputs")
    groups = (n_out + 31) // 32
    bits = np.zeros((groups * 32, k + 1), dtype=np.int64)  # + the zero column
    bits[:n_out, :k] = w > 0
    c = bits[:, :k].sum(axis=1)
    m_all = np.full(groups * 32, -1, dtype=np.int64)  # padding rows: output 0 either way (masked)
    m_all[:n_out] = mm
    t1 = c - m_all
    u0 = c + m_all + 1 - k
    nt = signed_planes(np.concatenate([t1, u0]))
    if nt > 24:
        raise Bnn2hwError(f"column-sliced dense layer: K = {k} needs {nt} threshold planes (at most 24)")
    # columns: word of group g, column i = sum_r bits[32 g + r, i] << r
    cols = (bits.reshape(groups, 32, k + 1) << np.arange(32, dtype=np.int64)[None, :, None]).sum(axis=1)
    tp = np.concatenate([np.concatenate([planes_of(t1[32 * g:32 * g + 32], nt), planes_of(u0[32 * g:32 * g + 32], nt)])
                         for g in range(groups)])
    return VColsLayer(cols.astype(np.uint32).ravel(), tp.astype(np.uint32), count_planes(k), nt)


def rows_estimate(k: int, n_out: int) -> float:
    """Instructions of the Thumb-2 row kernels (bnn_dense_bits) for one call: ~7 per weight word
    and row plus ~6 per row (benchmarks/results/mcu_kernels.md, floor paragraph)."""
    return n_out * (7.0 * ((k + 31) // 32) + 6.0)


def vcols_estimate(k: int, n_out: int) -> float:
    """Instructions of bnn_dense_vbits for one call, worst input (K // 2 listed columns): ~7.2 per
    listed column (rounded up to 16) and group, ~12 per compare plane and ~40 per group, ~6 per
    index and ~40 per call for the index list."""
    m = (k // 2 + 15) // 16 * 16
    planes = max(count_planes(k) + 2, (k + 1).bit_length() + 3)
    return 6.0 * (k // 2) + 40.0 + ((n_out + 31) // 32) * (7.2 * m + 12.0 * planes + 40.0)


def use_vcols(k: int, n_out: int) -> bool:
    """The code generator's choice for a hidden binary dense layer on bits (on the cores where
    BNN_DENSE_VCOLS is on): the column-sliced kernel when its estimate is below the row kernels'."""
    return vcols_estimate(k, n_out) < rows_estimate(k, n_out)
