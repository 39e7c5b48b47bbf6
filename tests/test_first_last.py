# SPDX-License-Identifier: MIT
"""Every first/last layer kind (binary, int8) x (mlp, cnn) through the C generator: the host
build (gcc -Wall -Wextra -Werror -fsanitize=address,undefined) and Cortex-M4 in QEMU give
the IR executor's integer logits exactly (issue 8, defect 1: an int8 last layer after binary
layers emitted C that did not compile). Tiny models (1 + 1 epochs) with awkward widths
(1, 5, 31, 33) so the tests stay fast; the inputs are the digits test split plus the extremes
(all 0, all 255, alternating) that push the 8-bit first/last accumulators to their ends."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from bnn2hw.errors import Bnn2hwError
from bnn2hw.export.fold import fold_model
from bnn2hw.ir import execute
from bnn2hw.mcu import codegen, qemu, toolchain
from bnn2hw.nn.models import build_model, default_spec
from bnn2hw.train import TrainConfig, seed_everything, train_two_stage

# id -> (arch, first, last, spec overrides, seed). In an MLP with no hidden layer the one
# layer is the last layer (spec["last"]); the CNN's first layer is always a binary conv.
CASES = {
    "mlp-bin-bin-16": ("mlp", "binary", "binary", {"hidden": [16]}, 101),
    "mlp-bin-int8-16": ("mlp", "binary", "int8", {"hidden": [16]}, 102),
    "mlp-int8-bin-16": ("mlp", "int8", "binary", {"hidden": [16]}, 103),
    "mlp-int8-int8-16": ("mlp", "int8", "int8", {"hidden": [16]}, 104),
    "mlp-bin-int8-1": ("mlp", "binary", "int8", {"hidden": [1]}, 105),
    "mlp-int8-int8-31": ("mlp", "int8", "int8", {"hidden": [31]}, 106),
    "mlp-int8-bin-33-1": ("mlp", "int8", "binary", {"hidden": [33, 1]}, 107),
    "mlp-bin-int8-33-31": ("mlp", "binary", "int8", {"hidden": [33, 31]}, 108),
    "mlp-int8-int8-1": ("mlp", "int8", "int8", {"hidden": [1]}, 109),
    "mlp-none-int8": ("mlp", "binary", "int8", {"hidden": []}, 110),
    "mlp-none-bin": ("mlp", "binary", "binary", {"hidden": []}, 111),
    "cnn-bin-bin": ("cnn", "binary", "binary", {"convs": [[5, 3, 0, True]], "hidden": [33]}, 201),
    "cnn-bin-int8": ("cnn", "binary", "int8", {"convs": [[5, 3, 0, True]], "hidden": [33]}, 202),
    # conv straight into the last layer: flatten repacks 33-channel pixels, then int8 / binary
    "cnn-bin-int8-flat": ("cnn", "binary", "int8", {"convs": [[33, 3, 1, False], [3, 3, 0, True]],
                                                    "hidden": []}, 203),
    "cnn-bin-bin-flat": ("cnn", "binary", "binary", {"convs": [[33, 3, 1, False], [3, 3, 0, True]],
                                                     "hidden": []}, 204),
    "cnn-bin-int8-1": ("cnn", "binary", "int8", {"convs": [[1, 3, 0, False]], "hidden": [1]}, 205),
}

_GRAPHS: dict[str, object] = {}


def _graph(case: str, digits):
    """Train the case's model for 1 + 1 epochs (seeded) and fold it; cached per session."""
    if case not in _GRAPHS:
        arch, first, last, over, seed = CASES[case]
        torch.set_num_threads(1)
        spec = default_spec(arch, digits.in_shape, digits.num_classes)
        spec.update(first=first, last=last, **over)
        seed_everything(seed)
        model = build_model(spec)
        train_two_stage(model, digits, TrainConfig(epochs1=1, epochs2=1, seed=seed), progress=False)
        _GRAPHS[case] = fold_model(model, spec)
    return _GRAPHS[case]


def _inputs(digits) -> np.ndarray:
    x = digits.x_test
    extremes = np.stack([np.zeros_like(x[0]), np.full_like(x[0], 255),
                         (np.indices(x[0].shape).sum(0) % 2 * 255).astype(np.uint8)])
    return np.concatenate([x, extremes])


def _need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install {toolchain.PACKAGES.get(tool, tool)})")


def _build_and_run(graph, out, target: str, x: np.ndarray) -> np.ndarray:
    from bnn2hw.mcu.cli import to_c_inputs

    out.mkdir()
    em = codegen.emit(graph)
    (out / "model.h").write_text(em.header)
    (out / "model.c").write_text(em.source)
    toolchain.write_harness(out, target)
    elf = toolchain.build(out, target)
    return qemu.run(elf, target, to_c_inputs(graph, x), graph.num_classes)


def _check_kinds(case: str, graph) -> None:
    """The folded graph really has the case's first/last kinds (the test covers what it says)."""
    arch, first, last, over, _ = CASES[case]
    dense = [l for l in graph.layers if l.op in ("dense", "conv2d")]
    assert dense[-1].attrs.get("weight_kind", "binary") == last, case
    if arch == "mlp" and over["hidden"]:
        assert dense[0].attrs.get("weight_kind", "binary") == first, case
    assert dense[0].attrs["in"] == "u8", case


@pytest.mark.parametrize("case", list(CASES))
def test_host_c_matches_ir(case, digits, tmp_path):
    _need("gcc", "make")
    graph = _graph(case, digits)
    _check_kinds(case, graph)
    x = _inputs(digits)
    got = _build_and_run(graph, tmp_path / "fw", "host", x)
    want = execute.run(graph, x).int_logits
    bad = int((got != want).sum())
    assert bad == 0, f"{case} (seed {CASES[case][4]}): {bad} integer logits differ on the host"


@pytest.mark.qemu
@pytest.mark.parametrize("case", list(CASES))
def test_qemu_m4_c_matches_ir(case, digits, tmp_path):
    _need("arm-none-eabi-gcc", "qemu-system-arm", "make")
    graph = _graph(case, digits)
    x = _inputs(digits)
    got = _build_and_run(graph, tmp_path / "fw", "cortex-m4", x)
    want = execute.run(graph, x).int_logits
    bad = int((got != want).sum())
    assert bad == 0, f"{case} (seed {CASES[case][4]}): {bad} integer logits differ on cortex-m4"


def test_cnn_int8_first_layer_is_refused(digits):
    """The CNN's first layer is a binary conv (there is no int8 conv kernel): refused by name."""
    spec = default_spec("cnn", digits.in_shape, digits.num_classes)
    spec.update(first="int8", last="int8")
    with pytest.raises(Bnn2hwError, match="first='binary' only"):
        build_model(spec)


def test_int8_hidden_layer_after_bits_is_refused():
    """No kernel takes int8 weights on binary input to binary output: a clear error, not bad C."""
    from bnn2hw.ir.graph import Graph, Layer

    rng = np.random.default_rng(31)
    g = Graph((8,), [Layer("dense", "fc0", "f.0", {"in": "u8", "weight_kind": "binary"},
                           {"weight": rng.choice(np.array([-1, 1], np.int8), size=(4, 8))}),
                     Layer("threshold", "t0", "f.1", {}, {"thr": np.zeros(4, np.int64),
                                                          "direction": np.ones(4, np.int8)}),
                     Layer("dense", "fc1", "f.2", {"in": "bits", "weight_kind": "int8"},
                           {"weight": rng.integers(-127, 128, size=(3, 4)).astype(np.int8)}),
                     Layer("threshold", "t1", "f.3", {}, {"thr": np.zeros(3, np.int64),
                                                          "direction": np.ones(3, np.int8)}),
                     Layer("dense", "fc2", "f.4", {"in": "bits", "weight_kind": "binary"},
                           {"weight": rng.choice(np.array([-1, 1], np.int8), size=(2, 3))})],
              1.0, {"model_hash": "t"})
    with pytest.raises(Bnn2hwError, match="fc1.*f.2.*int8 weights on bits input"):
        codegen.emit(g)


def test_cli_train_last_int8_then_emit_c_verify(tmp_path):
    """The issue's repro, through the CLI: train --last int8, then emit-c --verify on Cortex-M4."""
    _need("arm-none-eabi-gcc", "qemu-system-arm", "gcc", "make")
    ckpt, out = tmp_path / "m.pt", tmp_path / "fw"
    r = subprocess.run([sys.executable, "-m", "bnn2hw", "train", "--model", "mlp", "--hidden", "16",
                        "--last", "int8", "--epochs1", "1", "--epochs2", "1", "--seed", "8", "-o", str(ckpt)],
                       capture_output=True, text=True, cwd=tmp_path, check=False)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "bnn2hw", "emit-c", str(ckpt), "--target", "cortex-m4",
                        "--verify", "--verify-samples", "60", "-o", str(out)],
                       capture_output=True, text=True, cwd=tmp_path, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "host: 60 inputs, integer logits differing from the IR: 0" in r.stdout, r.stdout
    assert "cortex-m4: 60 inputs, integer logits differing from the IR: 0" in r.stdout, r.stdout
    assert "bnn_last_bin_s8_acc(&" in (out / "model.c").read_text()
