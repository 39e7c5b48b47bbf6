# SPDX-License-Identifier: MIT
"""The IR executor's fast paths (issue 11, compiler speed) give exactly the integer results of
the plain int64 formulas: float BLAS matmul only below the exactness bound, chunked conv2d,
threshold ties (an accumulator equal to its threshold gives +1 upwards and downwards)."""

from __future__ import annotations

import numpy as np
import pytest

from bnn2hw.ir import ops

WIDTHS = [1, 31, 32, 33, 63, 65, 255, 257, 1000]


@pytest.mark.parametrize("k", WIDTHS)
def test_int_matmul_exact_at_awkward_widths(k):
    seed = 100 + k
    rng = np.random.default_rng(seed)
    for lo_a, hi_a, lo_b, hi_b in ((-1, 2, -1, 2), (0, 256, -1, 2), (0, 256, -128, 128), (-2 ** 20, 2 ** 20, -7, 8)):
        a = rng.integers(lo_a, hi_a, (5, k))
        b = rng.integers(lo_b, hi_b, (k, 3))
        assert np.array_equal(ops.int_matmul(a, b), a @ b), f"seed {seed}"


def test_float_type_follows_the_exactness_bound():
    assert ops.exact_float_dtype(288, 1, 1) is np.float32
    assert ops.exact_float_dtype(65_793, 255, 1) is np.float32  # 255 * 65793 = 2^24 - 1
    assert ops.exact_float_dtype(65_794, 255, 1) is np.float64
    assert ops.exact_float_dtype(2 ** 20, 2 ** 20, 2 ** 13) is None  # 2^53: int64
    # sums just past float32's exact range stay exact (float64 is chosen)
    a = np.full((2, 65_794), 255, dtype=np.int64)
    b = np.ones((65_794, 2), dtype=np.int64)
    b[::2] = -1
    b[-1] = 1
    assert np.array_equal(ops.int_matmul(a, b), a @ b)
    big = np.full((2, 4), 2 ** 30, dtype=np.int64)
    assert np.array_equal(ops.int_matmul(big, big.T), big @ big.T)


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (1, 1), (2, 0)])
def test_chunked_conv2d_equals_one_im2col(monkeypatch, stride, pad):
    seed = 7 * stride + pad
    rng = np.random.default_rng(seed)
    x = rng.integers(-1, 2, (9, 11, 11, 33))
    w = rng.choice([-1, 1], (5, 3, 3, 33))
    want = ops.im2col(x, 3, 3, stride, pad) @ w.reshape(5, -1).T
    for chunk in (1, 5000, 1 << 30):
        monkeypatch.setattr(ops, "CONV_CHUNK_BYTES", chunk)
        assert np.array_equal(ops.conv2d(x, w, stride, pad), want), f"seed {seed}, chunk {chunk}"


def test_threshold_ties_and_directions():
    seed = 5
    rng = np.random.default_rng(seed)
    thr = rng.integers(-4, 5, 65)
    direction = rng.choice([1, -1, 0], 65)
    acc = rng.integers(-6, 7, (40, 3, 65))
    acc[:, 0, :] = thr  # every channel lands exactly on its threshold once
    want = np.where(np.where(direction > 0, acc >= thr, acc <= thr), 1, -1)
    got = ops.threshold(acc, thr, direction)
    assert got.dtype == np.int64 and np.array_equal(got, want), f"seed {seed}"
    assert (got[:, 0, :] == 1).all()  # tie rule: sign(0) = +1 in both directions
