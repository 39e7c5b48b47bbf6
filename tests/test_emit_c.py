# SPDX-License-Identifier: MIT
"""Generated C == IR executor, every integer logit: host (sanitizers) and QEMU Cortex-M."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from cli_helpers import need_tool, run_firmware

from bnn2hw.export.fold import fold_model
from bnn2hw.ir import execute
from bnn2hw.mcu import codegen


def test_host_c_matches_ir_with_sanitizers(trained, digits, tmp_path):
    need_tool("gcc", "gcc")
    _, model, spec = trained
    graph = fold_model(model, spec)
    got = run_firmware(graph, tmp_path, "host", digits.x_test)
    assert np.array_equal(got, execute.run(graph, digits.x_test).int_logits)


@pytest.mark.qemu
@pytest.mark.parametrize("target", ["cortex-m0", "cortex-m4", "cortex-m7"])
@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_qemu_c_matches_ir(target, which, mlp_ckpt, cnn_ckpt, digits, tmp_path):
    need_tool("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi")
    need_tool("qemu-system-arm", "qemu-system-arm")
    _, model, spec = mlp_ckpt if which == "mlp" else cnn_ckpt
    graph = fold_model(model, spec)
    x = digits.x_test[:120]
    got = run_firmware(graph, tmp_path, target, x)
    assert np.array_equal(got, execute.run(graph, x).int_logits)


def test_generated_code_header_and_static_data(mlp_ckpt):
    _, model, spec = mlp_ckpt
    graph = fold_model(model, spec)
    em = codegen.emit(graph)
    assert "malloc" not in em.source
    assert graph.meta["model_hash"] in em.header
    assert "static const bnn_word_t fc0_w" in em.source
    assert "/* fc1 <- features.4" in em.source  # each layer names its source module
    assert em.scratch_bytes > 0


def test_pack_bits_padding_is_zero():
    for k in (1, 31, 32, 33, 63, 64, 65):
        v = np.ones((2, k), dtype=np.int64)
        w = codegen.pack_bits(v)
        assert w.shape == (2, (k + 31) // 32)
        total = int(sum(bin(int(x)).count("1") for x in w.ravel()))
        assert total == 2 * k, f"k={k}: padding bits set"


def test_emit_c_bad_target(mlp_ckpt, tmp_path):
    r = subprocess.run([sys.executable, "-m", "bnn2hw", "emit-c", str(mlp_ckpt[0]), "--target", "cortex-a53",
                        "-o", str(tmp_path / "fw")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "cortex-a53" in r.stderr and "cortex-m4" in r.stderr
    assert not (tmp_path / "fw").exists()


def test_emit_c_cli_verify_on_m4(mlp_ckpt, tmp_path):
    need_tool("qemu-system-arm", "qemu-system-arm")
    out = tmp_path / "fw"
    r = subprocess.run([sys.executable, "-m", "bnn2hw", "emit-c", str(mlp_ckpt[0]), "--target", "cortex-m4",
                        "-o", str(out), "--verify", "--verify-samples", "50"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "cortex-m4: 50 inputs, integer logits differing from the IR: 0" in r.stdout
    assert (out / "model.c").exists() and (out / "report.json").exists()


def test_unsupported_ir_op_is_named():
    from bnn2hw.errors import Bnn2hwError
    from bnn2hw.ir.graph import Graph, Layer

    g = Graph((4,), [Layer("dense", "fc0", "features.1", {"in": "u8", "weight_kind": "binary"},
                           {"weight": np.ones((2, 4), dtype=np.int8)}),
                     Layer("softmax", "sm0", "features.2")])
    with pytest.raises(Bnn2hwError, match="sm0.*features.2.*softmax"):
        codegen.emit(g)


def _random_binary_graph(seed: int, sizes=(65, 33, 7), head: bool = True):
    from bnn2hw.ir.graph import Graph, Layer

    rng = np.random.default_rng(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Layer("dense", f"fc{i}", f"r.fc{i}", {"in": "bits", "weight_kind": "binary"},
                            {"weight": rng.choice(np.array([-1, 1], dtype=np.int8), size=(b, a))}))
        if i < len(sizes) - 2:
            layers.append(Layer("threshold", f"thr{i}", f"r.thr{i}", {},
                                {"thr": rng.integers(-a - 1, a + 2, size=b),
                                 "direction": rng.choice(np.array([-1, 1], dtype=np.int8), size=b)}))
    if head:  # integral scale and bias: the C literals must still be valid floats ("1f" is not)
        layers.append(Layer("affine", "logits", "r.head", {}, {"scale": np.ones(sizes[-1]),
                                                               "bias": np.arange(sizes[-1], dtype=float)}))
    return Graph((sizes[0],), layers, 1.0, {"model_hash": f"random{seed}"}, "bits")


@pytest.mark.parametrize("head", [True, False])
def test_binary_input_graph_on_host(tmp_path, head):
    """An already-binary input (packed words as bytes), awkward widths 65 -> 33 -> 7."""
    need_tool("gcc", "gcc")
    seed = 21
    g = _random_binary_graph(seed, head=head)
    x = np.random.default_rng(seed).choice(np.array([-1, 1], dtype=np.int8), size=(40, 65))
    got = run_firmware(g, tmp_path, "host", x)
    assert np.array_equal(got, execute.run(g, x).int_logits), f"seed={seed}"


@pytest.mark.qemu
def test_binary_input_graph_in_qemu(tmp_path):
    need_tool("qemu-system-arm", "qemu-system-arm")
    seed = 22
    g = _random_binary_graph(seed, sizes=(256, 256, 256, 10))
    x = np.random.default_rng(seed).choice(np.array([-1, 1], dtype=np.int8), size=(20, 256))
    got = run_firmware(g, tmp_path, "cortex-m4", x)
    assert np.array_equal(got, execute.run(g, x).int_logits), f"seed={seed}"


@pytest.mark.qemu
def test_qemu_m4_several_surrogates(trained, digits, tmp_path):
    """Every trained fixture model (MLP: biper, ste, sawtooth; CNN: biper, fda) on Cortex-M4."""
    need_tool("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi")
    need_tool("qemu-system-arm", "qemu-system-arm")
    _, model, spec = trained
    graph = fold_model(model, spec)
    x = digits.x_test[:60]
    got = run_firmware(graph, tmp_path, "cortex-m4", x)
    assert np.array_equal(got, execute.run(graph, x).int_logits)
