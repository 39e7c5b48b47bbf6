# SPDX-License-Identifier: MIT
"""Differential fuzzing of the whole chain on random models (issue 8).

Each seed builds a random deployable model (MLP or CNN; input widths, hidden widths 1-257,
binary/int8 first and last layers, conv kernels, strides of pooling, padding) with *hostile*
parameters: BatchNorm scales that are negative, zero or tiny, variances from 1e-6 to 1e3, class
scales that are negative, and -- the hardest case -- BatchNorm means set to the exact pre-BN value
of one input, so that input lands *on* the threshold (sign(0) = +1, the tie rule every stage
must share). Then, on random uint8 inputs that include all-0 and all-255 rows:

    PyTorch (eval) == IR executor    every hidden bit and integer logit (compare_torch_ir)
    IR == onnxruntime (plain graph) == qonnx (FINN graph)   every integer logit (unpadded models)
    IR == generated C on the host    every integer logit (gcc -Wall -Wextra -Werror, ASan/UBSan)

The default run checks ``N_DEFAULT`` seeds; ``pytest -m slow tests/test_fuzz.py`` checks
``N_SLOW`` more (README "Reliability" has its last result).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch import nn

from bnn2hw.export.fold import fold_model
from bnn2hw.export.verify import compare_torch_ir
from bnn2hw.ir import execute
from bnn2hw.ir.validate import validate
from bnn2hw.nn.layers import BinaryConv2d, BinaryLinear, Int8Linear, set_stage
from bnn2hw.nn.models import ClassifierHead, build_model, default_spec

N_DEFAULT = 30
N_SLOW = 200
SLOW_SEED0 = 10_000


def random_spec(rng: np.random.Generator) -> dict:
    num_classes = int(rng.integers(2, 12))
    if rng.random() < 0.55:
        in_shape = (int(rng.integers(1, 80)),) if rng.random() < 0.5 else (1, int(rng.integers(2, 9)), int(rng.integers(2, 9)))
        spec = default_spec("mlp", in_shape, num_classes)
        spec["hidden"] = [int(w) for w in rng.integers(1, 258, size=int(rng.integers(0, 4)))]
        spec["first"] = str(rng.choice(["binary", "int8"]))
    else:
        c, h, w = int(rng.integers(1, 4)), int(rng.integers(4, 11)), int(rng.integers(4, 11))
        spec = default_spec("cnn", (c, h, w), num_classes)
        convs = []
        for _ in range(int(rng.integers(1, 3))):
            k = int(rng.choice([1, 2, 3]))
            pad = int(rng.random() < 0.25) if k > 1 else 0
            nh, nw = h + 2 * pad - k + 1, w + 2 * pad - k + 1
            pool = bool(rng.random() < 0.4 and nh >= 2 and nw >= 2)
            if nh < 1 or nw < 1:
                break
            convs.append([int(rng.integers(1, 41)), k, pad, pool])
            h, w = (nh // 2, nw // 2) if pool else (nh, nw)
        if not convs:
            convs = [[int(rng.integers(1, 9)), 1, 0, False]]
        spec["convs"] = convs
        spec["hidden"] = [int(w) for w in rng.integers(1, 258, size=int(rng.integers(0, 2)))]
        spec["first"] = "binary"
    spec["last"] = str(rng.choice(["binary", "int8"]))
    spec["surrogate"]["name"] = str(rng.choice(["biper", "ste", "sine", "triangle"]))
    return spec


def hostile_parameters(model: nn.Module, rng: np.random.Generator, x: torch.Tensor) -> None:
    """Random weights, hostile BatchNorm and class scales, and ties placed on real inputs."""
    g = torch.Generator().manual_seed(int(rng.integers(2 ** 31)))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (BinaryLinear, BinaryConv2d)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.3)
            elif isinstance(m, Int8Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * float(10 ** rng.uniform(-2, 1)))
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                w = torch.randn(n, generator=g)
                w[torch.rand(n, generator=g) < 0.1] = 0.0  # constant channels
                m.weight.copy_(w)
                m.bias.copy_(torch.randn(n, generator=g) * 2)
                m.running_var.copy_(torch.from_numpy(10 ** rng.uniform(-6, 3, n)).float())
                m.running_mean.copy_(torch.randn(n, generator=g) * 5)
            elif isinstance(m, ClassifierHead) and m.learn_affine:
                m.scale.copy_(torch.randn(m.scale.shape, generator=g))  # about half negative
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 3)
    set_stage(model, 2)
    model.eval()
    # ties: per BatchNorm (in order), put half of the channels' mean on one input's exact value
    bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    for bn in bns:
        seen = {}
        hook = bn.register_forward_hook(lambda mod, inp, out: seen.setdefault("x", inp[0].detach().clone()))
        with torch.no_grad():
            model(x)
        hook.remove()
        pre = seen["x"]
        flat = pre.transpose(0, 1).reshape(pre.shape[1], -1)  # (C, N * positions)
        with torch.no_grad():
            for c in range(bn.num_features):
                if rng.random() < 0.5:
                    bn.running_mean[c] = flat[c, int(rng.integers(flat.shape[1]))]
                    bn.bias[c] = 0.0


def random_inputs(rng: np.random.Generator, shape: tuple, n: int = 16) -> np.ndarray:
    x = rng.integers(0, 256, size=(n, *shape)).astype(np.uint8)
    x[0] = 0
    x[1] = 255
    x[2] = rng.choice([0, 255], size=shape).astype(np.uint8)
    return x


def check_seed(seed: int, tmp_path) -> dict:
    """Run one random model through every stage; returns what was compared."""
    from bnn2hw.fpga.onnx_export import build_onnx, run_plain, run_qonnx
    from bnn2hw.mcu import qemu, toolchain
    from bnn2hw.mcu.cli import to_c_inputs, write_firmware_dir

    rng = np.random.default_rng(seed)
    spec = random_spec(rng)
    torch.manual_seed(seed)
    model = build_model(spec)
    x = random_inputs(rng, tuple(spec["in_shape"]))
    hostile_parameters(model, rng, torch.from_numpy(x.astype(np.float32)))
    graph = validate(fold_model(model, spec))
    agr = compare_torch_ir(model, graph, x)
    where = f"seed {seed}, spec {spec}"
    assert agr.exact, f"PyTorch vs IR: {agr.to_dict()} ({where})"
    ref = execute.run(graph, x).int_logits
    padded = any(l.op == "conv2d" and l.attrs["pad"] for l in graph.layers)
    if not padded:
        _, ip = run_plain(build_onnx(graph, "plain"), x)
        assert np.array_equal(ip, ref), f"IR vs onnxruntime ({where})"
        _, iq = run_qonnx(build_onnx(graph, "finn"), x)
        assert np.array_equal(iq, ref), f"IR vs qonnx ({where})"
    out = tmp_path / f"fw{seed}"
    write_firmware_dir(graph, out, "host")
    got = qemu.run(toolchain.build(out, "host"), "host", to_c_inputs(graph, x), graph.num_classes)
    assert np.array_equal(got, ref), f"IR vs host C: {int((got != ref).sum())} logits differ ({where})"
    shutil.rmtree(out)
    trace = execute.run(graph, x)
    ties = 0
    for prev, layer in zip(graph.layers, graph.layers[1:]):
        if layer.op == "threshold":
            ties += int((trace.tensors[prev.name] == layer.arrays["thr"]).sum())
    return {"arch": spec["arch"], "first": spec["first"], "last": spec["last"], "padded": padded,
            "inputs_on_a_threshold": ties}


def _need_gcc():
    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.skip("gcc and make are needed for the host C stage (apt-get install gcc make)")


@pytest.mark.parametrize("seed", range(N_DEFAULT))
def test_fuzz_chain(seed, tmp_path):
    _need_gcc()
    torch.set_num_threads(1)
    check_seed(seed, tmp_path)


def test_fuzz_covers_every_kind():
    """The default seeds cover MLP and CNN, every first/last kind, padding and all-tie channels."""
    kinds = set()
    for seed in range(N_DEFAULT):
        s = random_spec(np.random.default_rng(seed))
        kinds.add((s["arch"], s["first"], s["last"]))
        if s["arch"] == "cnn":
            kinds.add(("pad", any(c[2] for c in s["convs"])))
    for need in [("mlp", "binary", "binary"), ("mlp", "int8", "int8"), ("mlp", "binary", "int8"),
                 ("mlp", "int8", "binary"), ("cnn", "binary", "binary"), ("cnn", "binary", "int8"),
                 ("pad", True), ("pad", False)]:
        assert need in kinds, f"seeds 0..{N_DEFAULT - 1} never produce {need}"


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(SLOW_SEED0, SLOW_SEED0 + N_SLOW))
def test_fuzz_chain_slow(seed, tmp_path):
    _need_gcc()
    torch.set_num_threads(1)
    check_seed(seed, tmp_path)
