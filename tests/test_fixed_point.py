# SPDX-License-Identifier: MIT
"""M-BiPer residual models (eq. 7): the fixed-point value path, IR == C bit for bit, and the
FPGA export refusing what FINN cannot express."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from bnn2hw.checkpoint import save_checkpoint
from bnn2hw.errors import Bnn2hwError
from bnn2hw.export.fold import fixed_affine_params, fold_model
from bnn2hw.export.verify import compare_torch_ir
from bnn2hw.ir import execute, ops
from bnn2hw.mcu import qemu, toolchain
from bnn2hw.mcu.cli import to_c_inputs, write_firmware_dir
from bnn2hw.nn.models import build_model, default_spec
from bnn2hw.train import TrainConfig, seed_everything, train_two_stage


@pytest.fixture(scope="module")
def resmlp(tmp_path_factory, digits):
    torch.set_num_threads(1)
    spec = default_spec("mbiper-mlp", digits.in_shape, digits.num_classes)
    spec.update(width=48, blocks=2)
    seed_everything(11)
    model = build_model(spec)
    train_two_stage(model, digits, TrainConfig(epochs1=3, epochs2=3, seed=11), progress=False)
    path = tmp_path_factory.mktemp("resmlp") / "model.pt"
    save_checkpoint(path, model, spec, {"dataset": "digits", "test_accuracy": 0.0})
    return path, model, spec


def test_fixed_affine_rounds_to_nearest():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0, 0.05, 16), rng.normal(0, 1, 16)
    m, bias, s = fixed_affine_params(a, b, frac=16)
    acc = rng.integers(-5000, 5000, size=(200, 16))
    q = ops.fixed_affine(acc, m, bias, s)
    ref = (a * acc + b) * 2 ** 16
    assert np.max(np.abs(q - ref)) <= 1.0, "seed=5"


@pytest.mark.parametrize("approx", ["lut", "taylor", "fixed"])
def test_host_c_matches_fixed_point_ir(resmlp, digits, tmp_path, approx):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed (apt-get install gcc)")
    _, model, spec = resmlp
    graph = fold_model(model, spec, calib=digits.x_train, approx=approx)
    assert any(l.op == "periodic" and l.attrs["approx"] == approx for l in graph.layers)
    out = tmp_path / "fw"
    write_firmware_dir(graph, out, "host")
    got = qemu.run(toolchain.build(out, "host"), "host", to_c_inputs(graph, digits.x_test), 10)
    assert np.array_equal(got, execute.run(graph, digits.x_test).int_logits)


@pytest.mark.qemu
def test_qemu_m4_matches_fixed_point_ir(resmlp, digits, tmp_path):
    for tool, pkg in (("arm-none-eabi-gcc", "gcc-arm-none-eabi"), ("qemu-system-arm", "qemu-system-arm")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install {pkg})")
    _, model, spec = resmlp
    graph = fold_model(model, spec, calib=digits.x_train, approx="taylor")
    out = tmp_path / "fw"
    write_firmware_dir(graph, out, "cortex-m4")
    x = digits.x_test[:80]
    got = qemu.run(toolchain.build(out, "cortex-m4"), "cortex-m4", to_c_inputs(graph, x), 10)
    assert np.array_equal(got, execute.run(graph, x).int_logits)


def test_fixed_point_tracks_pytorch(resmlp, digits):
    """Not exact by design (fixed point + sin approximation), but close: Taylor's error is
    ~5e-3, so nearly every sign bit and predicted class agrees."""
    _, model, spec = resmlp
    graph = fold_model(model, spec, calib=digits.x_train, approx="taylor")
    agr = compare_torch_ir(model, graph, digits.x_test)
    assert agr.bits_differing / agr.bits_compared < 0.01, agr.to_dict()
    assert agr.class_agreement >= 0.97, agr.to_dict()


def test_fpga_export_refuses_periodic_layers(resmlp, tmp_path):
    out = tmp_path / "build"
    r = subprocess.run([sys.executable, "-m", "bnn2hw", "export", str(resmlp[0]), "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "not a monotone threshold" in r.stderr and "emit-c" in r.stderr
    assert not out.exists()


def test_emit_c_reports_approximation_error(resmlp, tmp_path):
    r = subprocess.run([sys.executable, "-m", "bnn2hw", "emit-c", str(resmlp[0]), "--target", "host",
                        "-o", str(tmp_path / "fw"), "--act-approx", "taylor"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "by 'taylor'" in r.stdout and "max abs error" in r.stdout
    assert "accuracy" in r.stdout
    bad = subprocess.run([sys.executable, "-m", "bnn2hw", "emit-c", str(resmlp[0]), "--act-approx", "cordic",
                          "-o", str(tmp_path / "fw2")], capture_output=True, text=True)
    assert bad.returncode == 2 and "cordic" in bad.stderr and "taylor" in bad.stderr


@pytest.fixture(scope="module", params=["cosine", "triangle", "arctan-sine"])
def resmlp_func(request, digits):
    """M-BiPer residual MLPs with the other smooth periodic functions (M-BiPer sec. 4.1)."""
    torch.set_num_threads(1)
    spec = default_spec("mbiper-mlp", digits.in_shape, digits.num_classes)
    spec.update(width=32, blocks=2, periodic=request.param)
    seed_everything(12)
    model = build_model(spec)
    train_two_stage(model, digits, TrainConfig(epochs1=2, epochs2=2, seed=12), progress=False)
    return request.param, model, spec


def test_other_periodic_functions_export_through_the_lookup_table(resmlp_func, digits, tmp_path):
    """cosine / triangle / arctan-sine: a one-period table of f, C on the host == IR bit for
    bit, and the IR tracks PyTorch's float model."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed (apt-get install gcc)")
    func, model, spec = resmlp_func
    graph = fold_model(model, spec, calib=digits.x_train, approx="lut", table_bits=10)
    periodic = [l for l in graph.layers if l.op == "periodic"]
    assert periodic and all(l.attrs["func"] == func for l in periodic)
    out = tmp_path / "fw"
    write_firmware_dir(graph, out, "host")
    assert f"{func}(" in (out / "model.c").read_text()
    got = qemu.run(toolchain.build(out, "host"), "host", to_c_inputs(graph, digits.x_test), 10)
    assert np.array_equal(got, execute.run(graph, digits.x_test).int_logits)
    agr = compare_torch_ir(model, graph, digits.x_test)
    assert agr.bits_differing / agr.bits_compared < 0.01, (func, agr.to_dict())
    assert agr.class_agreement >= 0.97, (func, agr.to_dict())


@pytest.mark.parametrize("approx", ["taylor", "fixed"])
def test_sine_only_approximations_are_refused_for_other_functions(resmlp_func, digits, approx):
    func, model, spec = resmlp_func
    with pytest.raises(Bnn2hwError, match=rf"{func}.*{approx}.*sine only"):
        fold_model(model, spec, calib=digits.x_train, approx=approx)


def test_lut_error_bound_for_each_function():
    """A 2^b-entry table with round-to-nearest phase: |error| <= max|f'| * pi / 2^b + 2^-out_frac
    (half a table step in phase, plus the entry's rounding)."""
    from bnn2hw.mcu import periodic_tables as pt

    slopes = {"sine": 1.0, "cosine": 1.0, "triangle": 2 / np.pi, "arctan-sine": 1.0}
    for func, slope in slopes.items():
        for bits in (6, 8, 10):
            err = pt.max_abs_error("lut", 1.0, 12, 16, -8.0, 8.0, table_bits=bits, func=func)
            bound = slope * np.pi / 2 ** bits + 2.0 ** -16 + 2.0 ** -12
            assert 0 < err <= bound, (func, bits, err, bound)
