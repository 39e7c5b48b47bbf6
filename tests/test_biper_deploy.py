# SPDX-License-Identifier: MIT
"""Deploying checkpoints of the official BiPer code (issue 10 section 3; bnn2hw.export.fold_official).

State dicts in the official layout come from ``test_import_biper.reference`` (restated official
modules, negative alphas, ``sign(sin(w0 w))`` weights, BatchNorm statistics far from the defaults,
negative gammas: channels whose folded scale is negative), imported with ``import_biper``; the
data are a synthetic 32x32x3 set. Checked: the IR equals the quantized twin on every stream
integer, sign bit and integer logit; the generated C equals the IR on the host (ASan/UBSan) and
in QEMU (Cortex-M4); the accuracy report; the new IR ops and their refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import need_tool, run_cli, run_firmware
from test_import_biper import reference, save_official

from bnn2hw.errors import Bnn2hwError
from bnn2hw.export import fold_official as fo
from bnn2hw.frontends.biper_official import CIFAR10_NORMALIZE, import_biper
from bnn2hw.ir import execute, ops
from bnn2hw.ir.graph import Graph, Layer
from bnn2hw.ir.validate import validate

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def _data(path, n_train=24, n_test=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n_train + n_test, 3, 32, 32), dtype=np.uint8)
    x[:2] = 0  # flat images: every interior pixel equal, the borders differ only by the padding
    x[2:4] = 255
    y = np.arange(n_train + n_test) % 10
    np.savez(path, x=x[:n_train], y=y[:n_train], x_test=x[n_train:], y_test=y[n_train:])
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """arch -> (imported checkpoint, data set): built once per module."""
    root = tmp_path_factory.mktemp("biper")
    data = _data(root / "cifar_like.npz")
    cache = {}

    def get(arch):
        if arch not in cache:
            src = save_official(reference(arch, seed=11), root / f"{arch}.pth.tar")
            import_biper(src, arch, 20.0, root / f"{arch}.pt", normalize=CIFAR10_NORMALIZE)
            cache[arch] = root / f"{arch}.pt"
        return cache[arch], data

    return get


# ---------------------------------------------------------------------------------------------
# the new IR semantics


def test_requant_and_add_clip_to_explicit_bounds():
    x = np.array([[-40000, -8193, -8192, -1, 0, 8192, 8193, 40000]]).reshape(1, 1, 1, 8)
    one = np.ones(8, dtype=np.int64)
    got = ops.requant(x, one, np.zeros(8, dtype=np.int64), 0, 16, -8192, 8192)
    assert got.ravel().tolist() == [-8192, -8192, -8192, -1, 0, 8192, 8192, 8192]
    assert ops.requant(x, one, 0 * one, 0, 16).ravel().tolist()[0] == -32768  # default: the bits range
    s = ops.add(np.array([8000, -8000, 5]), np.array([300, -300, -5]), 16, -8192, 8192)
    assert s.tolist() == [8192, -8192, 0]


def test_pad_channels_and_per_channel_pad_pixels():
    x = np.arange(2 * 2 * 3).reshape(1, 2, 2, 3)
    p = ops.pad_channels(x, 2, 1)
    assert p.shape == (1, 2, 2, 6) and np.array_equal(p[..., 2:5], x)
    assert not p[..., :2].any() and not p[..., 5:].any()
    img = np.zeros((1, 1, 1, 3), dtype=np.int64)
    w = np.ones((1, 3, 3, 3), dtype=np.int8)
    acc = ops.conv2d(img, w, 1, 1, np.array([124, 116, 104]))
    assert acc.ravel().tolist() == [8 * (124 + 116 + 104)]  # 8 padded taps per channel, the centre 0


def test_maxpool_on_a_stream_keeps_negative_values():
    x = -np.arange(16).reshape(1, 4, 4, 1) - 3
    assert ops.maxpool(x, 2, 2).ravel().tolist() == [-3, -5, -11, -13]


def _graph(layers, shape=(4, 4, 3)):
    return Graph(shape, layers)


def _stem(pad_u8=True, kind="int8"):
    w = np.ones((4, 3, 3, 3), dtype=np.int8)
    arrays = {"weight": w}
    if pad_u8:
        arrays["pad_u8"] = np.array([1, 2, 3])
    return Layer("conv2d", "c", "c", {"in": "u8", "stride": 1, "pad": 1, "weight_kind": kind}, arrays)


def _rq(name="q", **attrs):
    return Layer("requant", name, "q", {"shift": 1, "bits": 16, "frac": 13, **attrs},
                 {"mult": np.ones(4, dtype=np.int64), "bias": np.ones(4, dtype=np.int64)})


def _tail():
    return [Layer("flatten", "f", "f"), Layer("dense", "d", "d", {"in": "fixed", "weight_kind": "int8"},
                                               {"weight": np.ones((2, 64), dtype=np.int8)})]


def test_validate_accepts_the_official_ops():
    g = _graph([_stem(), _rq(lo=-8192, hi=8192),
                Layer("pad_channels", "pc", "s", {"before": 2, "after": 2}, {}),
                Layer("maxpool", "mp", "p", {"kernel": 2, "stride": 2}, {}),
                Layer("flatten", "f", "f"),
                Layer("dense", "d", "d", {"in": "fixed", "weight_kind": "int8"},
                      {"weight": np.ones((2, 32), dtype=np.int8)})])
    validate(g)
    out = execute.run(g, np.full((1, 3, 4, 4), 7, dtype=np.uint8))
    assert out.tensors["pc"].shape == (1, 4, 4, 8) and out.tensors["mp"].shape == (1, 2, 2, 8)


@pytest.mark.parametrize("bad, needle", [
    ({"lo": -9, "hi": -10}, "must be an integer in 0"),
    ({"lo": 5, "hi": 10}, "must be an integer in -32768..0"),
    ({"lo": -40000, "hi": 10}, "must be an integer in -32768..0"),
    ({"lo": -10, "hi": 40000}, "must be an integer in 0..32767"),
])
def test_validate_refuses_bad_bounds(bad, needle):
    with pytest.raises(Bnn2hwError, match=needle):
        validate(_graph([_stem(), _rq(**bad)] + _tail()))


def test_validate_refuses_misplaced_int8_conv_and_pad_pixels():
    bits_in = [Layer("conv2d", "c0", "c0", {"in": "u8", "stride": 1, "pad": 1, "weight_kind": "binary"},
                     {"weight": np.ones((3, 3, 3, 3), dtype=np.int8)}),
               Layer("threshold", "t", "t", {}, {"thr": np.zeros(3, dtype=np.int64),
                                                 "direction": np.ones(3, dtype=np.int8)})]
    conv = _stem(pad_u8=False)
    conv.attrs["in"] = "bits"
    with pytest.raises(Bnn2hwError, match="int8 convolution weights need a u8 input"):
        validate(_graph(bits_in + [conv, _rq()] + _tail()))
    bad = _stem()
    bad.arrays["pad_u8"] = np.array([1, 2, 256])
    with pytest.raises(Bnn2hwError, match="pad_u8"):
        validate(_graph([bad, _rq()] + _tail()))
    with pytest.raises(Bnn2hwError, match="pad_channels"):
        validate(_graph([_stem(), Layer("pad_channels", "pc", "s", {"before": 1, "after": 1}, {})] + _tail()))


def test_threshold_of_equals_the_requant_sign_on_every_integer_with_ties():
    """Channels of both slopes and of slope 0; accumulators that land exactly on y = 0 (ties)."""
    p = {"mult": np.array([3, -3, 0, 0, 7, -5]), "bias": np.array([-9, 9, 0, -1, -14, 10]), "shift": 2}
    thr, d = fo._threshold_of(p)
    a = np.arange(-50, 51)
    q = ops.requant(a[:, None], p["mult"], p["bias"], 2, 16, -8192, 8192)
    want = np.where(q >= 0, 1, -1)
    assert np.array_equal(ops.threshold(a[:, None], thr, d), want)
    assert (a[:, None] * p["mult"] + p["bias"] == 0).any(axis=0)[[0, 1, 4, 5]].all()  # ties were hit


def test_fit_affine_is_round_half_up_of_the_real_value():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1e-2, 16) * np.sign(rng.normal(size=16))
    b = rng.normal(0, 0.5, 16)
    p = fo.fit_affine(a, b, 13, 1000, "t")
    acc = np.arange(-1000, 1001)
    got = ops.requant(acc[:, None], p["mult"], p["bias"], p["shift"], 16)
    want = np.clip(np.floor((a * acc[:, None] + b) * 2 ** 13 + 0.5), -32768, 32767)
    assert np.abs(got - want).max() <= 1  # equal but for real values within 2^-29 of a .5
    assert (got == want).mean() > 0.999 and (np.abs(want) < 32767).mean() > 0.5


def test_pad_error_of_the_cifar_statistics():
    err = fo.pad_error(CIFAR10_NORMALIZE)
    assert [round(e, 4) for e in err] == [0.0056, 0.0049, 0.0082]


# ---------------------------------------------------------------------------------------------
# import -> export -> C


def _export(ckpt, data, bits=16):
    from bnn2hw.export.pipeline import export_ir

    return export_ir(ckpt, str(data))


def test_resnet20_ir_equals_the_twin_and_reports_accuracy(imported, capsys):
    ckpt, data = imported("resnet20")
    exp = _export(ckpt, data)
    agr = exp.torch_vs_ir
    assert agr.exact and agr.stream_compared > 0 and agr.bits_compared > 0
    per = agr.details["differing_per_layer"]
    assert {"stem_q", "l2_0_short", "l3_0_qs", "l3_2_add2", "pool", "avg"} <= set(per)
    cal = exp.graph.meta["calibration"]
    for k in ("float_accuracy", "ir_accuracy", "class_agreement", "twin_vs_ir", "stream_bits", "stream_frac"):
        assert k in cal, k
    assert cal["test_samples"] == 12 and (cal["stream_bits"], cal["stream_frac"]) == (16, 13)
    assert exp.reference is cal and exp.graph.meta["pad_u8"] == [124, 116, 104]
    err = capsys.readouterr().err
    assert "official float model" in err and "IR == quantized twin" in err
    ops_used = {l.op for l in exp.graph.layers}
    assert {"pad_channels", "avgpool", "add", "requant", "conv2d", "threshold"} <= ops_used


def test_twin_is_close_to_the_float_model(imported):
    """The twin is a quantization of the float model, not a different network: its stem stream is
    within the int8 weight error of the float hardtanh(bn1(conv1(x))), and inside the image the
    padding plays no part."""
    from bnn2hw.checkpoint import load_checkpoint

    ckpt, data = imported("resnet20")
    model, ck = load_checkpoint(ckpt, require_finite=True)
    x = np.load(data)["x_test"][:4]
    _, twin, _ = fo.export_official(model, ck["spec"])
    named, _, _ = twin.trace(torch.from_numpy(x.astype(np.float32)))
    out = {}
    h = model.bn1.register_forward_hook(lambda m, i, o: out.__setitem__("stem", o))
    with torch.no_grad():
        model(torch.from_numpy(x.astype(np.float32)))
    h.remove()
    ref = torch.nn.functional.hardtanh(out["stem"]).double()
    diff = (named["stem_q"].double() / 2 ** 13 - ref).abs()
    assert float(diff.max()) < 0.1 and float(diff.mean()) < 0.01


def test_an_8bit_stream_hits_sign_ties_and_stays_exact(imported):
    """With an 8-bit stream (Q5) stream integers of exactly 0 are common: the twin's sign(0) = +1
    and the IR's threshold agree on them."""
    from bnn2hw.checkpoint import load_checkpoint
    from bnn2hw.export.verify import compare_residual

    ckpt, data = imported("resnet20")
    model, ck = load_checkpoint(ckpt, require_finite=True)
    graph, twin, _ = fo.export_official(model, ck["spec"], bits=8)
    validate(graph)
    x = np.load(data)["x_test"]
    agr = compare_residual(twin, graph, x)
    assert agr.exact
    tr = execute.run(graph, x)
    zeros = sum(int((tr.tensors[l.inputs[0]] == 0).sum()) for l in graph.layers
                if l.op == "threshold" and l.inputs and l.inputs[0] in tr.tensors)
    assert zeros > 0


@pytest.mark.parametrize("target,n", [("host", 6), pytest.param("cortex-m4", 3, marks=pytest.mark.qemu)])
def test_resnet20_c_equals_ir(imported, tmp_path, target, n):
    """The deployed official resnet20 in C (host with sanitizers; Cortex-M4 in QEMU) equals the IR."""
    if target == "host":
        need_tool("gcc", "gcc")
    else:
        need_tool("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi")
        need_tool("qemu-system-arm", "qemu-system-arm")
    ckpt, data = imported("resnet20")
    exp = _export(ckpt, data)
    x = np.load(data)["x_test"][:n]
    got = run_firmware(exp.graph, tmp_path, target, x)
    assert np.array_equal(got, execute.run(exp.graph, x).int_logits)


@pytest.mark.slow
def test_vgg_small_ir_twin_and_host_c(imported, tmp_path):
    """Full-width vgg-small (the official widths are fixed): flipped channels (max-pool of a
    negative-slope channel) are present, and IR == twin, host C == IR."""
    need_tool("gcc", "gcc")
    ckpt, data = imported("vgg-small")
    exp = _export(ckpt, data)
    assert exp.torch_vs_ir.exact
    plan = exp.model.plan
    assert any((plan.p[f"bn{i}"]["flip"] < 0).any() for i in (1, 3, 5))
    x = np.load(data)["x_test"][:3]
    got = run_firmware(exp.graph, tmp_path, "host", x)
    assert np.array_equal(got, execute.run(exp.graph, x).int_logits)


@pytest.mark.slow
def test_cli_emit_c_verify_reports_the_accuracy_change(imported, tmp_path, monkeypatch, capsys):
    need_tool("gcc", "gcc")
    ckpt, data = imported("resnet20")
    out = tmp_path / "fw"
    code, _, err = run_cli(monkeypatch, capsys, "emit-c", ckpt, "--target", "host", "--verify",
                                "--dataset", data, "-o", out)
    assert code == 0, err
    rep = json.loads((out / "report.json").read_text())
    assert rep["reference"]["twin_vs_ir"]["exact"] is True
    assert {"float_accuracy", "ir_accuracy", "class_agreement"} <= set(rep["reference"])
    assert "official float model" in err


def test_fpga_export_is_refused_naming_the_layer(imported, tmp_path, monkeypatch, capsys):
    ckpt, data = imported("resnet20")
    out = tmp_path / "fpga"
    code, _, err = run_cli(monkeypatch, capsys, "export", ckpt, "--target", "pynq-z2", "--dataset", data,
                           "-o", out)
    assert code == 2 and "stem" in err and "no FINN form" in err, err
    assert not out.exists()


def test_no_data_is_a_clear_error(imported, monkeypatch, capsys, tmp_path):
    ckpt, _ = imported("resnet20")
    code, _, err = run_cli(monkeypatch, capsys, "emit-c", ckpt, "--target", "host", "-o", tmp_path / "x")
    assert code == 2 and "--dataset" in err, err


def test_the_official_ir_survives_save_and_load(imported, tmp_path):
    from bnn2hw.ir.graph import load_ir, save_ir

    ckpt, data = imported("resnet20")
    exp = _export(ckpt, data)
    save_ir(exp.graph, tmp_path / "m.bnnir.npz")
    back = load_ir(tmp_path / "m.bnnir.npz")
    x = np.load(data)["x_test"][:3]
    assert np.array_equal(execute.run(back, x).int_logits, execute.run(exp.graph, x).int_logits)
    stem = next(l for l in back.layers if l.name == "stem")
    assert stem.arrays["pad_u8"].tolist() == [124, 116, 104]
    assert next(l for l in back.layers if l.name == "l1_0_add1").attrs["lo"] == -8192
