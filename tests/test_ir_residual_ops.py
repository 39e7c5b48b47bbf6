# SPDX-License-Identifier: MIT
"""Issue 9, residual-stream IR ops: the numpy references (requant, avgpool, add with a ``bits``
saturation, conv2d with pad_value 0 / -1, dense on a fixed stream) on hand-computed cases, the
executor and the .bnnir.npz round trip on a residual DAG, the summary rows, and one validate
failure per new check."""

from __future__ import annotations

import numpy as np
import pytest
from residual_graphs import residual_graph, saturating_inputs

from bnn2hw.errors import Bnn2hwError
from bnn2hw.ir import execute, ops
from bnn2hw.ir.graph import Graph, Layer, load_ir, save_ir
from bnn2hw.ir.summary import layer_costs, summary_table
from bnn2hw.ir.validate import tensor_infos, validate

SEED = 9


# ---- references on hand-computed cases -------------------------------------------------------

def test_requant_floors_negatives_and_saturates_both_ends():
    x = np.array([-5, -4, -3, -1, 0, 1, 3, 100, -100])
    one = np.array([1])
    # shift 1, no bias: floor division by 2 (-5 -> -3, -1 -> -1), then clip to 4 bits [-8, 7]
    got = ops.requant(x[:, None], one, np.array([0]), 1, 4)[:, 0]
    np.testing.assert_array_equal(got, [-3, -2, -2, -1, 0, 0, 1, 7, -8])
    # round-half-up through the bias (+2^(shift-1)): ties -0.5 -> 0, -1.5 -> -1, 0.5 -> 1
    got = ops.requant(x[:, None], one, np.array([1]), 1, 8)[:, 0]
    np.testing.assert_array_equal(got, [-2, -2, -1, 0, 0, 1, 2, 50, -50])
    # negative multiplier, per channel (last axis), shift 0
    got = ops.requant(np.array([[3, 3], [-2, 70]]), np.array([-1, 2]), np.array([0, 0]), 0, 8)
    np.testing.assert_array_equal(got, [[-3, 6], [2, 127]])
    # the int64 bound of validate(): |x| < 2^31, |mult| < 2^31, |bias| <= 2^62 stays exact
    big = ops.requant(np.array([[-(2 ** 31) + 1]]), np.array([2 ** 31 - 1]), np.array([2 ** 62]), 62, 16)
    assert int(big[0, 0]) == ((-(2 ** 31) + 1) * (2 ** 31 - 1) + 2 ** 62) >> 62  # == 0, exact


def test_avgpool_is_an_exact_window_sum():
    x = np.arange(16).reshape(1, 4, 4, 1) - 8  # negatives included
    got = ops.avgpool(x, 2, 2)[0, :, :, 0]
    np.testing.assert_array_equal(got, [[-8 - 7 - 4 - 3, -6 - 5 - 2 - 1], [0 + 1 + 4 + 5, 2 + 3 + 6 + 7]])
    assert ops.avgpool(x, 4, 4).shape == (1, 1, 1, 1) and int(ops.avgpool(x, 4, 4).sum()) == int(x.sum())
    # overlapping windows (kernel 3, stride 1) and floor of the output size (5x5, kernel 2, stride 2)
    assert ops.avgpool(x, 3, 1)[0, 1, 1, 0] == x[0, 1:4, 1:4, 0].sum()
    assert ops.avgpool(np.ones((1, 5, 5, 2), np.int64), 2, 2).shape == (1, 2, 2, 2)
    # the width of the sum: 64 values of 8 bits need 14 bits, and reach both ends exactly
    lo, hi = np.full((1, 8, 8, 1), -128), np.full((1, 8, 8, 1), 127)
    assert int(ops.avgpool(lo, 8, 8).item()) == -(2 ** 13) and int(ops.avgpool(hi, 8, 8).item()) == 127 * 64


def test_add_saturates_to_bits():
    a = np.array([100, -100, 127, -128, 3, -3])
    b = np.array([100, -100, 0, -1, -3, 1])
    np.testing.assert_array_equal(ops.add(a, b, 8), [127, -128, 127, -128, 0, -2])
    np.testing.assert_array_equal(ops.add(a, b, 2), [1, -2, 1, -2, 0, -2])
    np.testing.assert_array_equal(ops.add(np.array([2 ** 31 - 1]), np.array([1])), [2 ** 31 - 1])  # default 32


def test_conv_pad_value_on_the_border():
    x = np.ones((1, 3, 3, 1), np.int64)
    w = np.ones((1, 3, 3, 1), np.int8)
    zero = ops.conv2d(x, w, 1, 1, 0)[0, :, :, 0]
    minus = ops.conv2d(x, w, 1, 1, -1)[0, :, :, 0]
    # a corner sees 4 image taps and 5 padded ones, an edge 6 and 3, the centre 9 and 0
    np.testing.assert_array_equal(zero, [[4, 6, 4], [6, 9, 6], [4, 6, 4]])
    np.testing.assert_array_equal(minus, [[-1, 3, -1], [3, 9, 3], [-1, 3, -1]])
    # stride 2 keeps the four corners
    np.testing.assert_array_equal(ops.conv2d(x, w, 2, 1, -1)[0, :, :, 0], [[-1, -1], [-1, -1]])
    # a -1 weight on a padded -1 tap contributes +1
    np.testing.assert_array_equal(ops.conv2d(x, -w, 1, 1, -1)[0, 0, 0, 0], 1)


def test_conv_1x1_stride2_and_any_pad_value_match_a_loop():
    rng = np.random.default_rng(SEED)
    for (k, s, p, pv, h, c, o) in [(1, 2, 0, 0, 5, 3, 2), (1, 2, 0, -1, 4, 33, 1), (3, 2, 1, -1, 7, 31, 3),
                                   (3, 1, 1, 0, 4, 1, 2), (3, 2, 1, 0, 6, 2, 1)]:
        x = rng.choice([-1, 1], (2, h, h, c))
        w = rng.choice([-1, 1], (o, k, k, c)).astype(np.int8)
        got = ops.conv2d(x, w, s, p, pv)
        oh = (h + 2 * p - k) // s + 1
        ref = np.zeros((2, oh, oh, o), np.int64)
        for n, y, xx, oc, ky, kx in np.ndindex(2, oh, oh, o, k, k):
            iy, ix = y * s + ky - p, xx * s + kx - p
            v = x[n, iy, ix] if 0 <= iy < h and 0 <= ix < h else np.full(c, pv)
            ref[n, y, xx, oc] += int((v * w[oc, ky, kx]).sum())
        np.testing.assert_array_equal(got, ref, err_msg=f"seed {SEED} k{k} s{s} p{p} pv{pv} c{c}")


def test_dense_on_a_fixed_stream():
    q = np.array([[-128, 127, 5], [0, -1, 2047]])
    w = np.array([[1, -1, 2], [-127, 127, 0]], np.int8)
    np.testing.assert_array_equal(ops.dense(q, w), [[-128 - 127 + 10, 128 * 127 + 127 * 127], [1 + 4094, -127]])


def test_threshold_on_a_3d_fixed_tensor_ties_go_to_plus_one():
    q = np.array([[[[-1, 0], [3, 2]]]])  # (1, 1, 2, 2)
    got = ops.threshold(q, np.array([0, 2]), np.array([1, -1]))
    np.testing.assert_array_equal(got, [[[[-1, 1], [1, 1]]]])


# ---- the residual DAG through the executor, the file and the summary --------------------------

@pytest.mark.parametrize("shortcut,stride,pad_value", [("conv", 2, -1), ("identity", 1, 0)])
def test_executor_runs_the_residual_dag(shortcut, stride, pad_value):
    rng = np.random.default_rng(SEED)
    widths = (4, 6) if shortcut == "conv" else (4, 4)
    g = validate(residual_graph(rng, widths=widths, stride=stride, pad_value=pad_value, shortcut=shortcut))
    x = saturating_inputs(rng, 6, 8, 3)
    t = execute.run(g, x).tensors
    xin = x.transpose(0, 2, 3, 1).astype(np.int64)
    L = {l.name: l for l in g.layers}

    def rq(h, name):
        return ops.requant(h, L[name].arrays["mult"], L[name].arrays["bias"], L[name].attrs["shift"], 8)

    x0 = rq(ops.conv2d(xin, L["stem"].arrays["weight"], 1, 1), "x0")
    s0 = ops.threshold(x0, L["s0"].arrays["thr"], L["s0"].arrays["direction"])
    z0 = rq(ops.conv2d(s0, L["c0"].arrays["weight"], stride, 1, pad_value), "z0")
    skip = rq(ops.conv2d(s0, L["d0"].arrays["weight"], stride, 0), "y0") if shortcut == "conv" else x0
    x1 = ops.add(z0, skip, 8)
    np.testing.assert_array_equal(t["x1"], x1, err_msg=f"seed {SEED}")
    assert t["x0"].max() == 127 and t["x0"].min() == -128, "the stem must saturate at both ends"
    pooled = ops.avgpool(x1, x1.shape[1], x1.shape[1])
    np.testing.assert_array_equal(execute.run(g, x).int_logits,
                                  ops.dense(pooled.reshape(len(x), -1), L["fc"].arrays["weight"]))


def test_new_attrs_round_trip_through_the_ir_file(tmp_path):
    rng = np.random.default_rng(SEED)
    g = residual_graph(rng, pool="2x2")
    save_ir(g, tmp_path / "r.bnnir.npz")
    back = load_ir(tmp_path / "r.bnnir.npz")
    for a, b in zip(g.layers, back.layers):
        assert (a.op, a.attrs, a.inputs) == (b.op, b.attrs, b.inputs)
        assert sorted(a.arrays) == sorted(b.arrays)
        for k in a.arrays:
            np.testing.assert_array_equal(a.arrays[k], b.arrays[k])
    assert {l.name: l for l in back.layers}["c0"].attrs["pad_value"] == -1
    x = saturating_inputs(rng, 4, 8, 3)
    np.testing.assert_array_equal(execute.run(back, x).int_logits, execute.run(g, x).int_logits)


def test_tensor_formats_and_summary_rows():
    g = residual_graph(np.random.default_rng(SEED))
    info = tensor_infos(g)
    assert (info["x0"].kind, info["x0"].frac, info["x0"].bits) == ("fixed", 4, 8)
    assert info["x1"].bits == 8 and info["x1"].shape == (4, 4, 6)
    assert info["pool"].bits == 8 + 4 and info["pool"].shape == (1, 1, 6)  # 16 values: +4 bits
    rows = {r.name: r for r in layer_costs(g)}
    assert rows["x0"].ram_bytes == 8 * 8 * 4 * 4 + 8 * 8 * 4  # int32 acc in, int8 stream out
    assert rows["x1"].ram_bytes == 3 * 4 * 4 * 6  # two int8 inputs, one int8 output
    assert rows["pool"].ram_bytes == 4 * 4 * 6 + 2 * 6  # int8 in, int16 out (12 bits)
    assert rows["x0"].weight_bits == 96 * 4 and rows["pool"].out_shape == (1, 1, 6)
    assert rows["fc"].int8_macs == 5 * 6 and rows["c0"].binary_macs == 4 * 4 * 6 * 9 * 4
    assert all(r.instructions > 0 for r in rows.values() if r.op in ("requant", "avgpool", "add"))
    table = summary_table(g)
    assert "avgpool" in table and "requant" in table


# ---- validate: one failure per new check --------------------------------------------------------

def _edit(fn):
    g = residual_graph(np.random.default_rng(SEED))
    fn({l.name: l for l in g.layers}, g)
    return g


@pytest.mark.parametrize("edit,needle", [
    (lambda L, g: L["c0"].attrs.update(pad_value=1), "'pad_value' must be 0 or -1"),
    (lambda L, g: L["stem"].attrs.update(pad_value=-1), "needs a bits input"),
    (lambda L, g: L["x0"].arrays.update(mult=np.ones(3, np.int64)), "mult must have one entry per channel"),
    (lambda L, g: L["x0"].arrays.update(bias=np.ones(5, np.int64)), "bias must have one entry per channel"),
    (lambda L, g: L["x0"].arrays.update(mult=np.full(4, 2 ** 31)), "mult must lie"),
    (lambda L, g: L["x0"].arrays.update(bias=np.full(4, 2 ** 62 + 1)), "bias must lie"),
    (lambda L, g: L["x0"].arrays.update(mult=np.ones(4)), "'mult' must be integer"),
    (lambda L, g: L["x0"].attrs.update(shift=63), "'shift'"),
    (lambda L, g: L["x0"].attrs.update(bits=17), "'bits'"),
    (lambda L, g: L["x0"].attrs.update(bits=1), "'bits'"),
    (lambda L, g: L["x0"].attrs.update(frac=32), "'frac'"),
    (lambda L, g: L["z0"].inputs.append("s0"), "consumes acc or fixed"),
    (lambda L, g: L["pool"].inputs.append("c0"), "consumes fixed"),
    (lambda L, g: L["pool"].attrs.update(kernel=5, stride=1), "larger than the 4x4"),
    (lambda L, g: L["pool"].attrs.update(stride=0), "'stride'"),
    (lambda L, g: L["x1"].attrs.update(frac=3), "both inputs must have the add's frac"),
    (lambda L, g: L["y0"].attrs.update(frac=5), "are Q4 and Q5"),
    (lambda L, g: L["x1"].attrs.update(bits=33), "'bits'"),
    (lambda L, g: L["fc"].attrs.update({"in": "bits"}), "attribute 'in' is 'bits', the input is fixed"),
])
def test_validate_names_each_new_violation(edit, needle):
    g = _edit(edit)
    with pytest.raises(Bnn2hwError, match=needle):
        validate(g)


def test_validate_refuses_a_pool_wider_than_32_bits():
    rng = np.random.default_rng(SEED)
    g = Graph((4, 4, 2), [
        Layer("conv2d", "c", "c", {"in": "u8", "weight_kind": "binary", "stride": 1, "pad": 0},
              {"weight": rng.choice([-1, 1], (2, 1, 1, 2)).astype(np.int8)}),
        Layer("fixed_affine", "f", "bn", {"shift": 0, "frac": 0}, {"mult": np.ones(2, np.int64),
                                                                   "bias": np.zeros(2, np.int64)}),
        Layer("avgpool", "p", "pool", {"kernel": 2, "stride": 2}),
        Layer("dense", "fc", "fc", {"in": "fixed", "weight_kind": "int8"}, {"weight": np.ones((2, 8), np.int8)}),
    ])
    with pytest.raises(Bnn2hwError, match="needs 34 bits"):
        validate(g)
    g.layers[1] = Layer("requant", "f", "bn", {"shift": 0, "frac": 0, "bits": 16},
                        {"mult": np.ones(2, np.int64), "bias": np.zeros(2, np.int64)})
    assert tensor_infos(g)["p"].bits == 18  # and dense reads the (2, 2, 2) sums without a flatten
