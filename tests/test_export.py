# SPDX-License-Identifier: MIT
"""PyTorch -> IR -> ONNX (onnxruntime and qonnx), bit for bit, and the export command."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from bnn2hw.checkpoint import save_checkpoint
from bnn2hw.export.fold import fold_model, fold_threshold
from bnn2hw.export.verify import compare_torch_ir
from bnn2hw.fpga.onnx_export import build_onnx, run_plain, run_qonnx
from bnn2hw.ir import execute, ops
from bnn2hw.ir.graph import load_ir, save_ir
from bnn2hw.nn.layers import BinaryActivation, BinaryLinear
from bnn2hw.nn.models import build_model, default_spec
from bnn2hw.nn.surrogates import SurrogateConfig


def test_torch_ir_every_bit_on_whole_test_set(trained, digits):
    _, model, spec = trained
    graph = fold_model(model, spec)
    for x in (digits.x_test, digits.x_train):
        agr = compare_torch_ir(model, graph, x)
        assert agr.bits_compared > 0
        assert agr.exact, agr.to_dict()


def test_onnx_graphs_match_ir(trained, digits):
    _, model, spec = trained
    graph = fold_model(model, spec)
    ref = execute.run(graph, digits.x_test)
    lp, ip = run_plain(build_onnx(graph, "plain"), digits.x_test)
    assert np.array_equal(ip, ref.int_logits)
    assert (lp.argmax(1) == ref.logits.argmax(1)).all()
    sub = digits.x_test[:60]  # qonnx's executor runs node by node in Python: a subset suffices here
    lq, iq = run_qonnx(build_onnx(graph, "finn"), sub)
    assert np.array_equal(iq, ref.int_logits[:60])
    assert (lq.argmax(1) == ref.logits[:60].argmax(1)).all()


def test_finn_graph_form(mlp_ckpt):
    """The annotations FINN needs (hw/FINN_NOTES.md): UINT8 input, BIPOLAR weights, INT32
    thresholds, MultiThreshold with BIPOLAR out, scale 2, bias -1."""
    _, model, spec = mlp_ckpt
    m = build_onnx(fold_model(model, spec), "finn")
    ann = {a.tensor_name: a.quant_parameter_tensor_names[0].value for a in m.graph.quantization_annotation}
    assert ann["global_in"] == "UINT8"
    mts = [n for n in m.graph.node if n.op_type == "MultiThreshold"]
    assert len(mts) == 2
    for n in mts:
        attrs = {a.name: a for a in n.attribute}
        assert attrs["out_dtype"].s == b"BIPOLAR" and attrs["out_scale"].f == 2.0 and attrs["out_bias"].f == -1.0
        assert ann[n.input[1]] == "INT32"
    mms = [n for n in m.graph.node if n.op_type == "MatMul"]
    for n in mms[:-1]:
        assert ann[n.input[1]] == "BIPOLAR"
    # the last layer: ±1 weights tagged INT2 (not XNOR), output = integer logits, affine on the host
    assert ann[mms[-1].input[1]] == "INT2" and m.graph.node[-1] is mms[-1]
    assert [o.name for o in m.graph.output] == [mms[-1].output[0]] == ["global_out"]
    assert not [n for n in m.graph.node if "Quant" in n.op_type]


def test_ir_save_load_roundtrip(tmp_path, mlp_ckpt, digits):
    _, model, spec = mlp_ckpt
    g = fold_model(model, spec)
    save_ir(g, tmp_path / "m.bnnir.npz")
    g2 = load_ir(tmp_path / "m.bnnir.npz")
    assert g2.describe() == g.describe()
    assert np.array_equal(execute.run(g2, digits.x_test).int_logits, execute.run(g, digits.x_test).int_logits)


# ---- threshold folding properties ---------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), k=st.sampled_from([1, 3, 7, 31, 64]),
       channels=st.sampled_from([1, 3, 5, 9]),
       scale_kind=st.sampled_from(["neg", "zero", "tiny", "big", "mixed"]))
def test_fold_threshold_matches_torch_on_every_accumulator(seed, k, channels, scale_kind):
    """For every reachable accumulator a in [-K, K]: act(bn(post(a))) == (a >= T) or (a <= T)."""
    g = torch.Generator().manual_seed(seed)
    layer = BinaryLinear(k, channels, SurrogateConfig(name="biper", w0=20.0))
    bn = nn.BatchNorm1d(channels).eval()
    with torch.no_grad():
        layer.weight.uniform_(-0.2, 0.2, generator=g)
        bn.running_mean.copy_(torch.randn(channels, generator=g) * k * 0.3)
        bn.running_var.copy_(torch.rand(channels, generator=g) * 2 + 1e-3)
        w = torch.randn(channels, generator=g)
        if scale_kind == "neg":
            w = -w.abs()
        elif scale_kind == "zero":
            w[0] = 0.0
        elif scale_kind == "tiny":
            w = w * 1e-30
        elif scale_kind == "big":
            w = w * 1e6
        bn.weight.copy_(w)
        bn.bias.copy_(torch.randn(channels, generator=g) * 3)
    layer.eval()
    act = BinaryActivation("bireal", channels)
    thr, d = fold_threshold(layer, bn, act, -k, k)
    a = torch.arange(-k, k + 1, dtype=torch.float32)
    with torch.no_grad():
        ref = (act(bn(layer._post(a[:, None].repeat(1, channels)))) > 0).numpy()
    got = ops.threshold(np.arange(-k, k + 1)[:, None], thr, d) > 0
    assert np.array_equal(ref, got), f"seed={seed}"


def test_tie_rule_accumulator_on_threshold_gives_plus_one():
    """BN output exactly 0 at an integer accumulator -> +1 (sign(0) = +1), both directions."""
    layer = BinaryLinear(4, 2, SurrogateConfig()).eval()
    bn = nn.BatchNorm1d(2).eval()
    with torch.no_grad():
        layer.weight.fill_(0.05)  # sin(1) > 0: all +1, gamma = sin(1)
        gamma = float(layer.channel_scale()[0])
        bn.running_mean.copy_(torch.tensor([2 * gamma, 2 * gamma]))
        bn.running_var.fill_(1.0 - bn.eps)
        bn.weight.copy_(torch.tensor([1.0, -1.0]))
        bn.bias.zero_()
    thr, d = fold_threshold(layer, bn, BinaryActivation("bireal", 2), -4, 4)
    with torch.no_grad():
        y = bn(layer._post(torch.tensor([[2.0, 2.0]])))
    assert float(y.abs().max()) == 0.0  # the accumulator 2 lands exactly on the threshold
    assert list(thr) == [2, 2] and list(d) == [1, -1]
    assert list(ops.threshold(np.array([[2, 2]]), thr, d)[0]) == [1, 1]


# ---- export command --------------------------------------------------------------------

def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bnn2hw", *args], capture_output=True, text=True, cwd=cwd)


def test_export_cli_writes_verified_build_dir(tmp_path, mlp_ckpt):
    path, _, _ = mlp_ckpt
    out = tmp_path / "build"
    r = _cli("export", str(path), "--target", "pynq-z2", "-o", str(out), "--verify-samples", "40", "--no-finn")
    assert r.returncode == 0, r.stderr
    for f in ("model_finn.onnx", "model_plain.onnx", "model.bnnir.npz", "dataflow_build_config.json",
              "folding_config.json", "layer_report.md", "verification.json"):
        assert (out / f).exists(), f
    import json
    cfg = json.loads((out / "dataflow_build_config.json").read_text())
    assert cfg["board"] == "Pynq-Z2" and cfg["fpga_part"] == "xc7z020clg400-1"
    assert cfg["minimize_bit_width"] is False
    assert "Defaults" in json.loads((out / "folding_config.json").read_text())
    ver = json.loads((out / "verification.json").read_text())
    assert ver["ir_vs_qonnx"]["int_logits_differing"] == 0 and ver["pytorch_vs_ir"]["exact"]


@pytest.mark.parametrize("args,needle", [
    (["export", "{ckpt}", "--target", "zedboard"], "unknown FPGA target 'zedboard'"),
    (["export", "/nonexistent/model.pt"], "no such checkpoint file"),
    (["export", "{junk}"], "not a bnn2hw checkpoint"),
    (["export", "{resnet}"], "not exportable"),
])
def test_export_bad_input(tmp_path, mlp_ckpt, args, needle):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage")
    spec = default_spec("resnet20", (1, 8, 8), 10)
    spec["residual_bits"] = 0  # the papers' float ResNet-20 (the deployable form exports)
    resnet = tmp_path / "resnet.pt"
    save_checkpoint(resnet, build_model(spec), spec, {"dataset": "digits"})
    out = tmp_path / "out"
    args = [a.format(ckpt=mlp_ckpt[0], junk=junk, resnet=resnet) for a in args] + ["-o", str(out)]
    r = _cli(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert needle in r.stderr
    assert not out.exists(), "a failed export left a build directory behind"


def test_non_binary_weight_is_refused(mlp_ckpt, monkeypatch):
    """If a binarizer ever produced a value other than ±1, export must stop and name the layer."""
    from bnn2hw.errors import Bnn2hwError
    from bnn2hw.export.fold import binarize_weights

    _, model, _ = mlp_ckpt
    layer = model.features[1]
    monkeypatch.setattr(type(layer), "hard_weight", lambda self: torch.full_like(self.weight, 0.5))
    monkeypatch.setattr(type(layer), "quant_weight", lambda self: torch.full_like(self.weight, 0.5))
    with pytest.raises(Bnn2hwError, match="features.1: weights are not all ±1"):
        binarize_weights(layer, "features.1")


def test_unsupported_module_is_named(mlp_ckpt):
    from bnn2hw.errors import Bnn2hwError

    _, model, spec = mlp_ckpt
    import copy
    bad = copy.deepcopy(model)
    bad.features.insert(2, nn.Dropout(0.1))
    with pytest.raises(Bnn2hwError, match=r"features\.2 \(Dropout\)|Dropout"):
        fold_model(bad, spec)
