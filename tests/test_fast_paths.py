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


def _conv_int64(x, w, stride, pad, pad_value):
    """The plain formula: int64 patches (im2col's default type) times int64 weights."""
    o = w.shape[0]
    return ops.im2col(x, w.shape[1], w.shape[2], stride, pad, pad_value) @ w.reshape(o, -1).T.astype(np.int64)


@pytest.mark.parametrize("c", [1, 31, 32, 33, 65])
@pytest.mark.parametrize("stride,pad,pad_value", [(1, 1, 0), (2, 1, -1), (1, 2, -1), (2, 0, 0)])
def test_conv2d_float_patches_equal_int64(c, stride, pad, pad_value):
    """conv2d builds its patches straight in the exact float type: same integers as int64 for
    +-1 and uint8 inputs, padding 0 or -1, any channel count and stride."""
    seed = 1000 + c * 10 + stride + 3 * pad
    rng = np.random.default_rng(seed)
    w = rng.choice([-1, 1], (7, 3, 3, c))
    for x in (rng.choice([-1, 1], (3, 6, 5, c)), rng.integers(0, 256, (3, 6, 5, c))):
        got = ops.conv2d(x, w, stride, pad, pad_value)
        assert got.dtype == np.int64
        assert np.array_equal(got, _conv_int64(x, w, stride, pad, pad_value)), f"seed {seed}"


def test_conv2d_beyond_float_bounds_stays_exact():
    """Values past float32's (and float64's) exact range take float64 (int64) patches."""
    rng = np.random.default_rng(11)
    w = rng.integers(-128, 128, (3, 3, 3, 257))
    for big in (2 ** 20, 2 ** 40):
        x = rng.integers(-big, big, (2, 4, 4, 257))
        x[0, 0, 0, 0] = big  # the bound itself
        assert np.array_equal(ops.conv2d(x, w, 1, 1), _conv_int64(x, w, 1, 1, 0)), f"|x| <= {big}"


def test_threshold_int32_extremes_and_float_fallback():
    """The single-compare integer path (acc <= t  <=>  not acc >= t + 1) at int32's extremes and on
    ties; non-integer thresholds keep the two-compare path."""
    rng = np.random.default_rng(12)
    thr = rng.integers(-3, 4, 33).astype(np.int32)
    thr[:4] = [np.iinfo(np.int32).min, np.iinfo(np.int32).max, np.iinfo(np.int32).min, np.iinfo(np.int32).max]
    direction = np.tile([1, 1, -1, -1, 0, 1, -1], 5)[:33]
    acc = rng.integers(-5, 6, (20, 33))
    acc[0] = thr  # ties everywhere
    acc[1, :4] = [np.iinfo(np.int32).min, np.iinfo(np.int32).max, np.iinfo(np.int32).min, np.iinfo(np.int32).max]
    want = np.where(np.where(direction > 0, acc >= thr, acc <= thr), 1, -1)
    assert np.array_equal(ops.threshold(acc, thr, direction), want)
    big = np.array([np.iinfo(np.int64).max, 0], dtype=np.int64)  # thr + 1 would overflow: two compares
    a = np.array([[np.iinfo(np.int64).max, 0], [0, 1]], dtype=np.int64)
    assert np.array_equal(ops.threshold(a, big, np.array([-1, -1])), [[1, 1], [1, -1]])
    tf = thr.astype(np.float64) + 0.5
    want_f = np.where(np.where(direction > 0, acc >= tf, acc <= tf), 1, -1)
    assert np.array_equal(ops.threshold(acc, tf, direction), want_f)


@pytest.mark.parametrize("k,stride", [(2, 2), (3, 2), (2, 1), (1, 1)])
def test_maxpool_equals_window_max(k, stride):
    rng = np.random.default_rng(13 + k + stride)
    x = rng.integers(-9, 9, (2, 7, 9, 33))
    oh, ow = (7 - k) // stride + 1, (9 - k) // stride + 1
    want = np.array([[[x[n, i * stride:i * stride + k, j * stride:j * stride + k].max(axis=(0, 1))
                       for j in range(ow)] for i in range(oh)] for n in range(2)])
    got = ops.maxpool(x, k, stride)
    assert got.dtype == np.int64 and np.array_equal(got, want)


def test_torch_ir_check_in_batches_is_exact_and_catches_a_wrong_bit(cnn_ckpt, digits):
    """compare_torch_ir in batches (1, 7, 32 images) gives the whole-split answer, keeps the IR's
    logits, and still finds a single wrong threshold (every bit of every batch is compared)."""
    import copy

    from bnn2hw.export.fold import fold_model
    from bnn2hw.export.verify import compare_torch_ir
    from bnn2hw.ir import execute

    _, model, spec = cnn_ckpt
    graph = fold_model(model, spec)
    x = digits.x_test[:97]
    whole = compare_torch_ir(model, graph, x, batch=1000)
    assert whole.exact and whole.bits_compared > 0, whole.to_dict()
    ref = execute.run(graph, x)
    assert np.array_equal(whole.ir_int_logits, ref.int_logits) and np.array_equal(whole.ir_logits, ref.logits)
    for b in (1, 7, 32):
        part = compare_torch_ir(model, graph, x, batch=b)
        assert part.to_dict() == whole.to_dict(), b
        assert np.array_equal(part.torch_logits, whole.torch_logits) and np.array_equal(part.ir_int_logits,
                                                                                        whole.ir_int_logits)
    bad = copy.deepcopy(graph)
    thr = next(l for l in bad.layers if l.op == "threshold")
    thr.arrays["thr"] = thr.arrays["thr"].copy()
    thr.arrays["thr"][0] = np.iinfo(np.int32).max if thr.arrays["direction"][0] > 0 else np.iinfo(np.int32).min
    worse = compare_torch_ir(model, bad, x, batch=7)
    assert worse.bits_differing > 0 and not worse.exact


def test_fpga_build_with_reused_ir_logits_equals_a_fresh_run(tmp_path, mlp_ckpt, digits):
    """write_fpga_build given the IR logits of the PyTorch == IR check writes the same files as
    when it runs the IR itself."""
    from bnn2hw.export.fold import fold_model
    from bnn2hw.export.verify import compare_torch_ir
    from bnn2hw.fpga.cli import write_fpga_build

    _, model, spec = mlp_ckpt
    graph = fold_model(model, spec)
    x, y = digits.x_test[:40], digits.y_test[:40]
    agr = compare_torch_ir(model, graph, x, batch=16)
    a = write_fpga_build(graph, "pynq-z2", tmp_path / "a", x=x, y=y)
    b = write_fpga_build(graph, "pynq-z2", tmp_path / "b", x=x, y=y, ir_logits=(agr.ir_int_logits, agr.ir_logits))
    assert a == b
    for f in sorted((tmp_path / "a").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name
