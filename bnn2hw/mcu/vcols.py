# SPDX-License-Identifier: MIT
"""Stored format and choice rule of the column-sliced dense kernel (``bnn_dense_vbits``,
firmware/include/bnn_dense.h, which derives it, and bnn_vcols.h).

Per group of 32 outputs: the K weight columns (bit r of column i = weight of output 32 g + r at
input i, 1 = +1; rows past n_out are 0), one zero column (the index list's padding target) and the
two NP columns.  Then the start values V of the two threshold sets, all groups of the first set and
then all of the second (T1 = C - M and U0 = C + M + 1 - K, C = +1 weights of the row, M = max
mismatch clamped to [-1, K]): T = 2 h + par, V = off - h, NP = 1 - par.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import Bnn2hwError


@dataclass(frozen=True)
class VColsLayer:
    wc: np.ndarray  # uint32 [groups * (K + 3)]: columns, zero column, NP of T1, NP of U0, per group
    tv: np.ndarray  # uint32 [2 * groups * nv]: V planes of T1 of every group, then of U0 of every group
    nq: int  # count planes: every V + K // 2 + 1 < 2^nq
    nv: int  # start-value planes per set (>= 4)
    off: int  # offset: V = off - floor(T / 2) >= 0


def planes_of(values: np.ndarray, n: int) -> np.ndarray:
    """[32] non-negative ints -> [n] uint32 planes: bit r of plane j = bit j of values[r]."""
    u = np.asarray(values, dtype=np.int64)
    bits = (u[None, :] >> np.arange(n, dtype=np.int64)[:, None]) & 1  # [n, 32]
    return (bits << np.arange(32, dtype=np.int64)[None, :]).sum(axis=1).astype(np.uint32)


def lanes_word(bits01: np.ndarray) -> int:
    """[32] of 0/1 -> one uint32 word, lane r in bit r."""
    return int((np.asarray(bits01, dtype=np.int64) << np.arange(32, dtype=np.int64)).sum())


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
    rows = groups * 32
    bits = np.zeros((rows, k), dtype=np.int64)
    bits[:n_out] = w > 0
    c = bits.sum(axis=1)
    real = np.arange(rows) < n_out
    sets = []
    for t in (c - np.pad(mm, (0, rows - n_out)), c + np.pad(mm, (0, rows - n_out)) + 1 - k):  # T1, U0
        h, par = np.floor_divide(t, 2), t & 1
        sets.append((np.where(real, h, 0), np.where(real, 1 - par, 0)))
    off = max(0, max(int(h.max()) for h, _ in sets))
    vs = [off - h for h, _ in sets]  # padding rows: V = off (masked out of the result anyway)
    vmax = max(int(v.max()) for v in vs)
    nv = max(4, vmax.bit_length())  # >= 4: bnn_vc_group loads planes 0 .. 3 with one LDM
    nq = max(nv, (vmax + k // 2 + 1).bit_length())
    if nq > 24:
        raise Bnn2hwError(f"column-sliced dense layer: K = {k} needs {nq} count planes (at most 24)")
    cols = (bits.reshape(groups, 32, k) << np.arange(32, dtype=np.int64)[None, :, None]).sum(axis=1)
    extra = np.array([[0, lanes_word(sets[0][1][32 * g:32 * g + 32]), lanes_word(sets[1][1][32 * g:32 * g + 32])]
                      for g in range(groups)], dtype=np.int64)
    wc = np.concatenate([cols, extra], axis=1).astype(np.uint32).ravel()
    tv = np.concatenate([planes_of(v[32 * g:32 * g + 32], nv) for v in vs for g in range(groups)])  # by set
    return VColsLayer(wc, tv.astype(np.uint32), nq, nv, off)


def rows_estimate(k: int, n_out: int) -> float:
    """Instructions of the Thumb-2 row kernels (bnn_dense_bits) for one call: ~7 per weight word
    and row plus ~6 per row (benchmarks/results/mcu_kernels.md, floor paragraph)."""
    return n_out * (7.0 * ((k + 31) // 32) + 6.0)


def vcols_estimate(k: int, n_out: int) -> float:
    """Instructions of bnn_dense_vbits for one call, worst input (K // 2 + 1 listed columns): ~7.2
    per listed column (rounded up to 16) and group, ~10 per count plane and group (start values,
    compare, calls), ~6 per listed index for the index list.  Checked against QEMU counts on the
    Cortex-M4 (tests/test_vcols.py::test_choice_rule has the measured pairs).  Since bnn_vc_groups
    and the two-per-round select (2026-12-01) the kernel takes ~5 per index and ~6.6 per column and
    group: the model is now a few percent high, kept so the code generator's choices did not move."""
    m = (k // 2 + 16) // 16 * 16
    planes = (k + 1).bit_length() + 1
    return 6.0 * (k // 2) + ((n_out + 31) // 32) * (7.2 * m + 10.0 * planes)


def use_vcols(k: int, n_out: int) -> bool:
    """The code generator's choice for a hidden binary dense layer on bits (on the cores where
    BNN_DENSE_VCOLS is on): the column-sliced kernel when its estimate is below the row kernels'."""
    return vcols_estimate(k, n_out) < rows_estimate(k, n_out)
