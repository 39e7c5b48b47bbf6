# SPDX-License-Identifier: MIT
"""The IR as a graph of named tensors (issue 9, first step): ops read tensors by name, a tensor
may feed several ops, the executor and validate() follow the names, the names survive a save/load
round trip, and the chain-only back ends name the op they cannot place."""

from __future__ import annotations

import numpy as np
import pytest

from bnn2hw.errors import Bnn2hwError
from bnn2hw.ir import execute, ops
from bnn2hw.ir.graph import INPUT, Graph, Layer, load_ir, save_ir
from bnn2hw.ir.validate import validate

SEED = 41


def diamond(rng) -> Graph:
    """input -> fc0 -> x0 (fixed) -> sign -> fc1 -> z -> add(z, x0): x0 feeds two ops."""
    f, w = 12, 8
    return Graph((f,), [
        Layer("dense", "fc0", "stem", {"in": "u8", "weight_kind": "int8"},
              {"weight": rng.integers(-127, 128, (w, f)).astype(np.int8)}),
        Layer("fixed_affine", "x0", "stem_bn", {"shift": 4, "frac": 8},
              {"mult": rng.integers(1, 50, w), "bias": rng.integers(-500, 500, w)}),
        Layer("threshold", "s0", "sign", {"sign_of": "fixed"},
              {"thr": np.zeros(w, np.int64), "direction": np.ones(w, np.int8)}),
        Layer("dense", "fc1", "block.lin", {"in": "bits", "weight_kind": "binary"},
              {"weight": rng.choice([-1, 1], (w, w)).astype(np.int8)}),
        Layer("fixed_affine", "z", "block.bn", {"shift": 2, "frac": 8},
              {"mult": rng.integers(1, 50, w), "bias": rng.integers(-500, 500, w)}),
        Layer("add", "x1", "block residual", {"frac": 8}, {}, ["z", "x0"]),
        Layer("threshold", "s1", "sign", {"sign_of": "fixed"},
              {"thr": np.zeros(w, np.int64), "direction": np.ones(w, np.int8)}),
        Layer("dense", "fc2", "head", {"in": "bits", "weight_kind": "binary"},
              {"weight": rng.choice([-1, 1], (3, w)).astype(np.int8)}),
        Layer("affine", "logits", "head", {}, {"scale": np.ones(3), "bias": np.zeros(3)}),
    ])


def test_executor_follows_tensor_names():
    rng = np.random.default_rng(SEED)
    g = validate(diamond(rng))
    x = rng.integers(0, 256, (5, 12)).astype(np.uint8)
    t = execute.run(g, x).tensors
    x0 = ops.fixed_affine(ops.dense(x.astype(np.int64), g.layers[0].arrays["weight"]), g.layers[1].arrays["mult"],
                          g.layers[1].arrays["bias"], 4)
    np.testing.assert_array_equal(t["x0"], x0, err_msg=f"seed {SEED}")
    np.testing.assert_array_equal(t["x1"], ops.add(t["z"], x0), err_msg=f"seed {SEED}")
    assert g.inputs_of(0) == [INPUT] and g.inputs_of(5) == ["z", "x0"] and g.branches() == ["x1"]


def test_inputs_round_trip_through_the_ir_file(tmp_path):
    g = diamond(np.random.default_rng(SEED))
    save_ir(g, tmp_path / "g.bnnir.npz")
    back = load_ir(tmp_path / "g.bnnir.npz")
    assert [l.inputs for l in back.layers] == [l.inputs for l in g.layers]
    x = np.random.default_rng(SEED + 1).integers(0, 256, (4, 12)).astype(np.uint8)
    np.testing.assert_array_equal(execute.run(back, x).int_logits, execute.run(g, x).int_logits)


@pytest.mark.parametrize("inputs,needle", [
    (["later"], "not the graph input or an earlier op"),
    (["z", "x0", "fc0"], "reads 3 tensors"),
    (["z", "fc0"], "expected fixed"),
])
def test_validate_checks_the_names(inputs, needle):
    g = diamond(np.random.default_rng(SEED))
    g.layers[5].inputs = inputs
    with pytest.raises(Bnn2hwError, match=needle):
        validate(g)


def test_chain_only_back_ends_name_the_op():
    """The ONNX writer places chains only and names the op it cannot place (the C generator
    places any DAG since issue 9: tests/test_residual_c.py)."""
    from bnn2hw.fpga.onnx_export import build_onnx

    rng = np.random.default_rng(SEED)
    plain = Graph((6,), [Layer("dense", "fc0", "l0", {"in": "u8", "weight_kind": "binary"},
                               {"weight": rng.choice([-1, 1], (4, 6)).astype(np.int8)}),
                         Layer("threshold", "t0", "a0", {}, {"thr": np.zeros(4, np.int64),
                                                             "direction": np.ones(4, np.int8)}),
                         Layer("dense", "fc1", "l1", {"in": "u8", "weight_kind": "binary"},
                               {"weight": rng.choice([-1, 1], (3, 6)).astype(np.int8)}, [INPUT]),
                         Layer("affine", "logits", "l1", {}, {"scale": np.ones(3), "bias": np.zeros(3)})])
    validate(plain)  # fc1 reads the input again: a valid DAG (t0 is dead)
    with pytest.raises(Bnn2hwError, match="fc1"):
        build_onnx(plain, "plain")


def test_c_back_end_runs_the_residual_diamond(tmp_path):
    import shutil

    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed (apt-get install gcc)")
    from bnn2hw.mcu import qemu, toolchain
    from bnn2hw.mcu.cli import to_c_inputs, write_firmware_dir

    rng = np.random.default_rng(SEED)
    g = validate(diamond(rng))
    x = rng.integers(0, 256, (32, 12)).astype(np.uint8)
    write_firmware_dir(g, tmp_path / "fw", "host")
    got = qemu.run(toolchain.build(tmp_path / "fw", "host"), "host", to_c_inputs(g, x), g.num_classes)
    np.testing.assert_array_equal(got, execute.run(g, x).int_logits, err_msg=f"seed {SEED}")
