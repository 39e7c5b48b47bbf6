# SPDX-License-Identifier: MIT
"""The float C version (bnn2hw.mcu.float_codegen) == IR executor, every integer logit, built
on the host with -Wall -Wextra -Werror and the sanitizers."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from bnn2hw.errors import Bnn2hwError
from bnn2hw.export.fold import fold_model
from bnn2hw.ir import execute
from bnn2hw.ir.graph import Graph, Layer
from bnn2hw.mcu import qemu, toolchain
from bnn2hw.mcu.cli import to_c_inputs
from bnn2hw.mcu.float_codegen import emit_float, write_float_firmware_dir


def _need_gcc():
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed (apt-get install gcc)")


def _run_host(graph: Graph, x: np.ndarray, tmp_path) -> np.ndarray:
    out = tmp_path / "fw_float"
    write_float_firmware_dir(graph, out, "host")
    elf = toolchain.build(out, "host")
    return qemu.run(elf, "host", to_c_inputs(graph, x), graph.num_classes)


def _pm1(rng, shape):
    return rng.choice(np.array([-1, 1], dtype=np.int8), size=shape)


def awkward_graph(seed: int) -> Graph:
    """Padded conv with mixed threshold directions, 3x3/2 max-pool, a binary hidden dense and an
    int8 last layer: every op and lowering the float emitter has."""
    rng = np.random.default_rng(seed)
    h, w, c, oc, hid, ncls = 7, 6, 2, 5, 9, 4
    conv_w = _pm1(rng, (oc, 3, 3, c))
    oh, ow = h, w  # pad 1, stride 1
    ph, pw = (oh - 3) // 2 + 1, (ow - 3) // 2 + 1
    fc_in = ph * pw * oc
    layers = [
        Layer("conv2d", "conv0", "features.0", {"in": "u8", "stride": 1, "pad": 1, "weight_kind": "binary"},
              {"weight": conv_w}),
        Layer("threshold", "thr0", "features.2", {},
              {"thr": rng.integers(-300, 300, size=oc).astype(np.int64), "direction": _pm1(rng, oc)}),
        Layer("maxpool", "pool0", "features.3", {"kernel": 3, "stride": 2}, {}),
        Layer("flatten", "flatten0", "features.4", {}, {}),
        Layer("dense", "fc0", "features.5", {"in": "bits", "weight_kind": "binary"}, {"weight": _pm1(rng, (hid, fc_in))}),
        Layer("threshold", "thr1", "features.7", {},
              {"thr": rng.integers(-4, 5, size=hid).astype(np.int64), "direction": _pm1(rng, hid)}),
        Layer("dense", "fc1", "head.layer", {"in": "bits", "weight_kind": "int8"},
              {"weight": rng.integers(-127, 128, size=(ncls, hid)).astype(np.int8)}),
        Layer("affine", "logits", "head", {}, {"scale": rng.random(ncls) + 0.5, "bias": rng.standard_normal(ncls)}),
    ]
    return Graph((h, w, c), layers, 1.0, {"model_hash": f"awkward{seed}"})


def test_float_c_matches_ir_on_awkward_graph(tmp_path):
    _need_gcc()
    seed = 11
    graph = awkward_graph(seed)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(40, 2, 7, 6), dtype=np.uint8)  # PyTorch layout (N, C, H, W)
    x[0] = 255
    x[1] = 0
    ref = execute.run(graph, x).int_logits
    assert np.array_equal(_run_host(graph, x, tmp_path), ref), f"float C vs IR (seed {seed})"


def test_float_c_matches_ir_on_trained_mlp(mlp_ckpt, digits, tmp_path):
    _need_gcc()
    _, model, spec = mlp_ckpt
    graph = fold_model(model, spec)
    x = digits.x_test[:100]
    assert np.array_equal(_run_host(graph, x, tmp_path), execute.run(graph, x).int_logits)


def test_float_source_is_plain_float():
    em = emit_float(awkward_graph(3))
    assert "bnn_word_t" not in em.source and "malloc" not in em.source
    assert "static const float conv0_w" in em.source
    assert "/* fc0 <- features.5" in em.source  # each layer names its source module
    assert "#define BNN_INPUT_LEN 84u" in em.header and "#define BNN_NUM_LOGITS 4u" in em.header


def test_float_refuses_inexact_accumulators():
    g = Graph((70000,), [Layer("dense", "fc0", "head", {"in": "u8", "weight_kind": "binary"},
                               {"weight": np.ones((2, 70000), dtype=np.int8)})], 1.0, {})
    with pytest.raises(Bnn2hwError, match="2\\^24"):
        emit_float(g)
