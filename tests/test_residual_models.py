# SPDX-License-Identifier: MIT
"""Deployable residual BNNs (issue 9): resnet8, resnet20 and vgg-small with a quantized residual
stream, folded to the graph IR and compared with PyTorch eval mode on every hidden bit, every
stream integer and every integer logit; with hostile BatchNorms (negative and zero gammas, tiny
variances, means that put an accumulator exactly on a threshold or a rounding tie), 8- and
16-bit streams, both pad values, two surrogates, awkward widths; and the refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bnn2hw.errors import Bnn2hwError
from bnn2hw.export.fold import fold_model
from bnn2hw.export.fold_residual import fit_requant, fold_table_threshold, requant_int
from bnn2hw.export.verify import compare, compare_residual
from bnn2hw.ir import ops
from bnn2hw.ir.validate import validate
from bnn2hw.nn.layers import set_stage
from bnn2hw.nn.models import build_model, default_spec
from bnn2hw.nn.residual import (ResidualBNN, RoundHalfUpSte, StreamSign, stream_frac,
                                stream_quantizer)


def _spec(arch, bits, pad, surrogate, widths, side=16, classes=5, last="int8"):
    spec = default_spec(arch, (3, side, side), classes)
    spec.update(residual_bits=bits, pad_value=pad, widths=widths, last=last)
    spec["surrogate"]["name"] = surrogate
    if surrogate == "ste":
        spec["activation"] = "ste"
    return spec


def _train_two_steps(model, seed, side=16, classes=5):
    """One SGD step in each stage on random pixels (weights and BN statistics move)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (8, 3, side, side), generator=g).float()
    y = torch.randint(0, classes, (8,), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for stage in (1, 2):
        set_stage(model, stage)
        model.train()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def _hostile(model, seed):
    """Negative/zero gammas, variances down to 1e-6, and for a third of the channels a mean that
    puts an accumulator exactly on the decision: BN output 0 (a threshold tie) or
    ``(k + 1/2) 2^-frac`` (a requant rounding tie); stream-sign biases on grid values."""
    rng = np.random.default_rng(seed)
    unit = getattr(model, "stream_scale", 1.0)
    convs = {}
    for name, m in model.named_modules():
        if hasattr(m, "channel_scale"):
            convs[name] = m
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                gam = rng.choice([-1.0, 1.0], c) * rng.uniform(0.2, 3.0, c)
                gam[rng.random(c) < 0.1] = 0.0
                var = 10.0 ** rng.uniform(-6, 1, c)
                m.weight.copy_(torch.tensor(gam, dtype=torch.float32))
                m.running_var.copy_(torch.tensor(var, dtype=torch.float32))
                m.running_mean.copy_(torch.tensor(rng.normal(0, 2, c), dtype=torch.float32))
                m.bias.copy_(torch.tensor(rng.normal(0, 1, c), dtype=torch.float32))
                # the conv feeding this BN: same prefix, "bn" -> "conv"/"short"/"stem"
                conv = _conv_of(name, convs)
                if conv is None:
                    continue
                g = (conv.channel_scale() * conv.input_scale).detach()
                tie = rng.random(c) < 0.35
                a0 = torch.tensor(rng.choice([0, 1, -1, 2, -4], c), dtype=torch.float32)
                mean = torch.where(torch.tensor(tie), a0 * g, m.running_mean)
                m.running_mean.copy_(mean)
                k = torch.tensor(rng.integers(-20, 20, c), dtype=torch.float32)
                bias = torch.where(torch.tensor(tie), (k + 0.5) * unit, m.bias)
                bias = torch.where(torch.tensor(tie & (rng.random(c) < 0.5)), torch.zeros(c), bias)
                m.bias.copy_(bias)
            elif isinstance(m, StreamSign):
                c = m.beta.numel()
                q0 = rng.integers(-8, 8, c)
                beta = np.where(rng.random(c) < 0.5, -q0 * unit, rng.normal(0, 0.3, c))
                m.beta.copy_(torch.tensor(beta, dtype=torch.float32))


def _conv_of(bn_name, convs):
    for a, b in (("stem_bn", "stem"), ("bn_short", "short"), ("bn1", "conv1"), ("bn2", "conv2")):
        if bn_name.endswith(a):
            return convs.get(bn_name[: -len(a)] + b)
    return None


def _pixels(seed, n=12, side=16):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 3, side, side), dtype=np.uint8)
    x[0] = 0
    x[1] = 255
    return x


CASES = [
    # arch, stream bits, pad value, surrogate, widths, last, seed
    ("resnet8", 8, -1, "biper", [5, 8, 12], "int8", 0),
    ("resnet8", 16, 0, "ste", [3, 33, 17], "binary", 1),
    ("resnet8", 8, 0, "sine", [1, 2, 31], "int8", 2),
    ("resnet20", 8, 0, "biper", [4, 6, 9], "binary", 3),
    ("resnet20", 16, -1, "ste", [3, 5, 7], "int8", 4),
]


@pytest.mark.parametrize("arch,bits,pad,sur,widths,last,seed", CASES)
def test_residual_model_ir_equals_pytorch_on_every_integer(arch, bits, pad, sur, widths, last, seed):
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    spec = _spec(arch, bits, pad, sur, widths, last=last)
    model = build_model(spec)
    _train_two_steps(model, seed)
    _hostile(model, seed)
    graph = validate(fold_model(model, spec))
    x = _pixels(seed)
    agr = compare_residual(model, graph, x, batch=5)
    assert agr.exact, f"seed {seed} {arch}: {agr.to_dict()}"
    assert agr.stream_compared > 0 and agr.bits_compared > 0
    ops_ = [l.op for l in graph.layers]
    assert ops_.count("add") == (3 if arch == "resnet8" else 18), ops_
    assert "avgpool" in ops_ and graph.layers[-2].attrs["in"] == "fixed"
    convs = [l for l in graph.layers if l.op == "conv2d" and l.attrs["in"] == "bits" and l.attrs["pad"]]
    assert convs and all(l.attrs["pad_value"] == pad for l in convs)
    # hostile BN reached the IR: negative multipliers (decreasing channels)
    mults = np.concatenate([l.arrays["mult"] for l in graph.layers if l.op == "requant"])
    assert (mults < 0).any() and (mults > 0).any(), f"seed {seed}"


def test_requant_ties_round_half_up_like_pytorch():
    """A channel whose BN output is exactly (k + 1/2) 2^-frac at accumulator 0: PyTorch's
    quantizer and the folded requant both give k + 1 (round half up), for k of either sign."""
    torch.manual_seed(0)
    spec = _spec("resnet8", 8, -1, "biper", [4, 4, 4])
    model = build_model(spec)
    model.eval()
    unit = model.stream_scale
    bn = model.blocks[0].bn2
    ks = torch.tensor([-3.0, -1.0, 0.0, 2.0])
    with torch.no_grad():
        bn.running_mean.zero_()
        bn.bias.copy_((ks + 0.5) * unit)
    graph = fold_model(model, spec)
    rq = next(l for l in graph.layers if l.name == "b0_q2")
    got = ops.requant(np.zeros((1, 4), dtype=np.int64), rq.arrays["mult"], rq.arrays["bias"],
                      rq.attrs["shift"], rq.attrs["bits"])
    assert got.tolist() == [[-2, 0, 1, 3]]
    from bnn2hw.nn.residual import conv_accumulator, stream_requant  # noqa: F401

    with torch.no_grad():
        ref = stream_requant(model.blocks[0].conv2, bn, model.quant, torch.zeros(1, 4, 1, 1))
    assert (ref.reshape(-1) / unit).tolist() == [-2.0, 0.0, 1.0, 3.0]


def test_stream_quantizer_rounds_half_up_and_saturates():
    q = stream_quantizer(8)
    q.eval()
    unit = 2.0 ** -stream_frac(8)
    v = torch.tensor([-2.5, -0.5, 0.5, 1.5, 2.5, 127.4, 300.0, -129.0, -128.5]) * unit
    assert (q(v) / unit).tolist() == [-2.0, 0.0, 1.0, 2.0, 3.0, 127.0, 127.0, -128.0, -128.0]
    x = torch.tensor([0.5, 1.5, -0.5], requires_grad=True)
    RoundHalfUpSte()(x).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]  # straight-through


def test_vgg_small_padded_deploys_exactly():
    torch.manual_seed(5)
    spec = default_spec("vgg-small", (3, 16, 16), 5)
    spec.update(widths=[3, 5, 7], pad_value=-1)
    model = build_model(spec)
    _train_two_steps(model, 5)
    _hostile(model, 5)
    graph = validate(fold_model(model, spec))
    agr = compare(model, graph, _pixels(5))
    assert agr.exact, agr.to_dict()
    assert agr.bits_compared > 0
    padded = [l for l in graph.layers if l.op == "conv2d" and l.attrs["in"] == "bits"]
    assert len(padded) == 5 and all(l.attrs["pad_value"] == -1 for l in padded)


def test_fit_requant_refuses_a_step_function_that_is_not_a_linear_floor():
    accs = np.arange(-6, 7)
    good = np.floor(accs * 0.75 + 0.5).astype(np.int64)[None, :]
    mult, bias, shift = fit_requant(good, accs, 8, np.array([0.75]), "test")
    assert (requant_int(accs, mult, bias, shift, 8) == good).all()
    bad = good.copy()
    bad[0, 6] += 1  # one step moved: still monotone, but no floor((a m + c) / 2^k) has it
    bad[0, 7] += 1
    bad[0, 3] -= 1
    with pytest.raises(Bnn2hwError, match="layer test, channel 0"):
        fit_requant(bad, accs, 8, np.array([0.75]), "test")


def test_fit_requant_saturates_and_handles_negative_and_constant_channels():
    accs = np.arange(-300, 301)
    q = np.stack([np.clip(np.floor(accs * -0.6 + 0.5), -128, 127),
                  np.full(len(accs), -128.0),
                  np.clip(np.floor(accs * (1 / 3) + 0.5), -128, 127)]).astype(np.int64)
    mult, bias, shift = fit_requant(q, accs, 8, np.array([-0.6, 0.0, 1 / 3]), "sat")
    assert (requant_int(accs, mult, bias, shift, 8) == q).all()
    assert mult[0] < 0


def test_threshold_table_refuses_non_monotone_and_keeps_ties():
    values = np.arange(-4, 5)
    fires = np.stack([values >= 0, values <= -2, np.ones(9, bool), np.zeros(9, bool)])
    thr, d = fold_table_threshold(fires, values, "t")
    assert thr.tolist() == [0, -2, -4, 5] and d.tolist() == [1, -1, 1, 1]
    with pytest.raises(Bnn2hwError, match="layer t, channel 0"):
        fold_table_threshold(np.array([[True, False, True, True, True, True, True, True, True]]), values, "t")


@pytest.mark.parametrize("what", ["first", "last"])
def test_float_first_or_last_layer_is_refused_by_name(what):
    spec = _spec("resnet8", 8, -1, "biper", [2, 3, 4])
    spec[what] = "float"
    model = build_model(spec)
    model.eval()
    with pytest.raises(Bnn2hwError, match="stem" if what == "first" else "head.layer"):
        fold_model(model, spec)


def test_int8_first_layer_is_refused_at_build():
    spec = _spec("resnet8", 8, -1, "biper", [2, 3, 4])
    spec["first"] = "int8"
    with pytest.raises(Bnn2hwError, match="no int8 convolution"):
        build_model(spec)


def test_paper_float_models_are_still_built_with_residual_bits_0():
    from bnn2hw.nn.models import BiRealResNet, VGGSmall

    for arch, cls in (("resnet20", BiRealResNet), ("vgg-small", VGGSmall)):
        spec = default_spec(arch, (3, 32, 32), 10)
        assert isinstance(build_model(spec), ResidualBNN if arch == "resnet20" else torch.nn.Module)
        spec["residual_bits"] = 0
        assert isinstance(build_model(spec), cls)
        old = {k: v for k, v in spec.items() if k not in ("residual_bits", "pad_value", "widths")}
        assert isinstance(build_model(old), cls), "checkpoints from before residual_bits"


def test_resnet8_has_mlperf_tiny_shape():
    spec = default_spec("resnet8", (3, 32, 32), 10)
    model = build_model(spec)
    n = sum(p.numel() for p in model.parameters())
    assert 77_000 < n < 79_000, n  # MLPerf Tiny's Keras ResNet-8: 78,666 (with conv biases)
    graph_convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(graph_convs) == 9  # stem, 3 x 2 convs, 2 shortcuts


def test_train_cli_resnet8_exports_exactly(tmp_path, monkeypatch, capsys):
    from cli_helpers import run_cli

    from bnn2hw.export.pipeline import export_ir

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 3, 16, 16), dtype=np.uint8)
    y = np.arange(40) % 3
    np.savez(tmp_path / "syn.npz", x=x[:24], y=y[:24], x_test=x[24:], y_test=y[24:])
    ck = tmp_path / "r8.pt"
    code, out, err = run_cli(monkeypatch, capsys, "train", "--model", "resnet8", "--dataset", tmp_path / "syn.npz",
                             "--epochs1", "1", "--epochs2", "1", "--batch-size", "8", "--widths", "4,5,6",
                             "--residual-bits", "16", "--quiet", "--no-plots", "-o", ck)
    assert code == 0, err
    exp = export_ir(ck)
    assert exp.torch_vs_ir.exact and exp.torch_vs_ir.stream_compared > 0, exp.torch_vs_ir.to_dict()
    assert exp.graph.meta["residual_bits"] == 16
    code, out, err = run_cli(monkeypatch, capsys, "inspect", ck)
    assert code == 0 and '"residual_bits": 16' in out


def test_train_cli_warns_and_refuses(tmp_path, monkeypatch, capsys):
    from cli_helpers import run_cli

    out = tmp_path / "m.pt"
    code, _, err = run_cli(monkeypatch, capsys, "train", "--model", "mlp", "--pad-value", "0", "-o", out)
    assert code == 2 and "--pad-value applies to resnet8" in err
    code, _, err = run_cli(monkeypatch, capsys, "train", "--model", "resnet8", "--residual-bits", "12", "-o", out)
    assert code == 2 and "--residual-bits must be 8 or 16" in err
    from bnn2hw.nn.residual import deployability_warnings

    spec = _spec("resnet8", 8, 0, "biper", None)
    assert any("FINN" in w and "pad" in w for w in deployability_warnings(spec))
    spec = default_spec("resnet20", (3, 32, 32), 10)
    spec["residual_bits"] = 0
    assert any("does not export" in w for w in deployability_warnings(spec))
    assert deployability_warnings(default_spec("resnet8", (3, 32, 32), 10)) == []


def test_float_stream_resnet8_exports_through_calibration(tmp_path, monkeypatch, capsys):
    """--residual-bits 0: the export calibrates a 16-bit stream on the training split, the IR
    equals the calibrated PyTorch model exactly, and the float model's accuracy change is
    reported (on random data the classes mostly agree)."""
    from cli_helpers import run_cli

    from bnn2hw.export.pipeline import export_ir

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (40, 3, 16, 16), dtype=np.uint8)
    y = np.arange(40) % 3
    np.savez(tmp_path / "syn.npz", x=x[:24], y=y[:24], x_test=x[24:], y_test=y[24:])
    ck = tmp_path / "r8f.pt"
    code, _, err = run_cli(monkeypatch, capsys, "train", "--model", "resnet8", "--residual-bits", "0",
                           "--dataset", tmp_path / "syn.npz", "--epochs1", "1", "--epochs2", "1",
                           "--batch-size", "8", "--widths", "3,4,5", "--quiet", "--no-plots", "-o", ck)
    assert code == 0, err
    assert "float residual stream" in err  # the train-time warning
    exp = export_ir(ck)
    cal = exp.graph.meta["calibration"]
    assert exp.torch_vs_ir.exact and exp.model.bits == 16
    assert cal["stream_bits"] == 16 and cal["max_abs_stream"] > 0
    assert 0 <= cal["float_accuracy"] <= 1 and cal["class_agreement"] >= 0.75, cal
    with pytest.raises(Bnn2hwError, match="needs data"):
        export_ir(ck, verify=False, need_data=False)
