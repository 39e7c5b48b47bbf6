# SPDX-License-Identifier: MIT
"""QONNX front end (issue 10): Brevitas models defined here, exported with ``export_qonnx``,
imported, and compared with qonnx's execution of the exported file: every hidden bit, every
integer logit and class, on >= 500 random inputs plus inputs hill-climbed onto thresholds; then
through the C back end (host, sanitizers; QEMU Cortex-M4 for one model) and the FINN-ready export
(qonnx's execution of bnn2hw's FINN graph). One test per refusal message."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from brevitas.core.restrict_val import RestrictValueType
from brevitas.core.scaling import ScalingImplType
from brevitas.core.stats import StatsOp
from brevitas.export import export_qonnx
from brevitas.inject.enum import FloatToIntImplType
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, TruncAvgPool2d
from brevitas.quant import (
    Int8ActPerTensorFixedPoint,
    Int8ActPerTensorFloat,
    Int8WeightPerTensorFixedPoint,
    Int8WeightPerTensorFloat,
    Int32Bias,
    RoundTo8bit,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    TruncTo8bit,
    Uint8ActPerTensorFloat,
)
from torch import nn

from bnn2hw.errors import Bnn2hwError
from bnn2hw.frontends.qonnx_import import import_qonnx
from bnn2hw.frontends.qonnx_verify import compare, random_inputs, verify_import
from bnn2hw.ir import execute, ops

warnings.filterwarnings("ignore")  # Brevitas' and torch.onnx's export chatter


class PerChannelBinaryWeight(SignedBinaryWeightPerTensorConst):
    """Binary weights with a per-output-channel scale (mean |w|), XNOR-Net style."""

    scaling_impl_type = ScalingImplType.STATS
    scaling_stats_op = StatsOp.AVE
    scaling_per_output_channel = True


class HalfBinaryWeight(SignedBinaryWeightPerTensorConst):
    scaling_const = 0.5  # a power of two: the float dot products are exact, so ties are exact


class Pow2Uint8Act(Uint8ActPerTensorFloat):
    restrict_scaling_type = RestrictValueType.POWER_OF_TWO


def sign_act():
    return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)


def randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    """Hostile BatchNorms: negative scales on about half of the channels, means far from 0."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.weight.data = torch.randn(c, generator=g)
            m.bias.data = torch.randn(c, generator=g) * 0.5
            m.running_mean.data = torch.randn(c, generator=g) * 2
            m.running_var.data = torch.rand(c, generator=g) * 3 + 0.1
    return model.eval()


def mlp(seed=0):
    torch.manual_seed(seed)
    return randomize_bn(nn.Sequential(
        QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True),
        QuantLinear(20, 33, bias=False, weight_quant=SignedBinaryWeightPerTensorConst), nn.BatchNorm1d(33), sign_act(),
        QuantLinear(33, 31, bias=True, weight_quant=PerChannelBinaryWeight), nn.BatchNorm1d(31), sign_act(),
        QuantLinear(31, 5, bias=True, weight_quant=SignedBinaryWeightPerTensorConst)), seed)


def cnn(seed=0, pad=0):
    torch.manual_seed(seed)
    return randomize_bn(nn.Sequential(
        QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True),
        QuantConv2d(2, 8, 3, padding=pad, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
        nn.BatchNorm2d(8), sign_act(),
        QuantConv2d(8, 6, 3, padding=pad, bias=False, weight_quant=PerChannelBinaryWeight),
        nn.BatchNorm2d(6), nn.MaxPool2d(2), sign_act(),  # pool before the quantizer: they commute
        QuantConv2d(6, 5, 1, bias=False, weight_quant=SignedBinaryWeightPerTensorConst), nn.BatchNorm2d(5), sign_act(),
        nn.MaxPool2d(kernel_size=2, stride=1),  # pool on the binary tensor
        nn.Flatten(),
        QuantLinear(5 * (3 if pad else 1) ** 2, 4, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)), seed)


def int8_first_last(seed=0):
    torch.manual_seed(seed)
    return randomize_bn(nn.Sequential(
        QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),  # signed: IR input offset 128
        QuantLinear(12, 31, bias=True, weight_quant=Int8WeightPerTensorFloat), nn.BatchNorm1d(31), sign_act(),
        QuantLinear(31, 33, bias=False, weight_quant=SignedBinaryWeightPerTensorConst), nn.BatchNorm1d(33), sign_act(),
        QuantLinear(33, 6, bias=True, weight_quant=Int8WeightPerTensorFloat), nn.BatchNorm1d(6)), seed)


def tie_mlp(seed=0):
    """Power-of-two scales and BatchNorm means put exactly on k * T: pre-activations of exactly 0
    (BipolarQuant: +1) on reachable accumulators, with negative scales on half the channels."""
    torch.manual_seed(seed)
    m = nn.Sequential(
        QuantIdentity(act_quant=Pow2Uint8Act, return_quant_tensor=True),
        QuantLinear(6, 8, bias=False, weight_quant=HalfBinaryWeight), nn.BatchNorm1d(8), sign_act(),
        QuantLinear(8, 9, bias=False, weight_quant=HalfBinaryWeight), nn.BatchNorm1d(9), sign_act(),
        QuantLinear(9, 3, bias=False, weight_quant=HalfBinaryWeight)).eval()
    g = torch.Generator().manual_seed(seed)
    k1 = float(m[0].act_quant.scale()) * 0.5
    for bn, k, vals, c in ((m[2], k1, torch.randint(-200, 200, (8,), generator=g), 8),
                           (m[5], 0.5, torch.tensor([-4, -2, 0, 2, 4, 0, 2, -2, 0]), 9)):
        bn.running_mean.data = vals.double().mul(k).float()
        bn.running_var.data = torch.full((c,), 1.0) - bn.eps  # 1 / sqrt(var + eps) = 1
        bn.weight.data = torch.where(torch.arange(c) % 2 == 0, 1.0, -1.0) * 0.75
        bn.bias.data = torch.zeros(c)
    return m


class StreamQuant(Int8ActPerTensorFixedPoint):
    """The residual stream's quantizer: signed 8-bit, constant power-of-two scale 4/128 = 2^-5
    (``scaling_impl_type = CONST``: Brevitas 0.13.4 takes the constant from ``max_val``)."""

    scaling_impl_type = ScalingImplType.CONST
    scaling_const = 4.0
    max_val = 4.0
    min_val = -4.0


class HalfStreamQuant(StreamQuant):
    scaling_const = 2.0  # scale 2^-6: unequal to StreamQuant's
    max_val = 2.0
    min_val = -2.0


class ResidualCNN(nn.Module):
    """A residual CNN as stock Brevitas writes it: 8-bit input -> binary stem conv -> BatchNorm ->
    the stream quantizer; one block (sign of the stream -> binary conv -> BatchNorm -> the stream
    quantizer) added to the identity shortcut, the sum re-quantized by the same stream quantizer
    (one QuantIdentity instance shared by every use, so both Add inputs carry its scale); sign ->
    flatten -> binary head. Power-of-two scales everywhere: the float32 dot products are exact, so
    the requant derivation's one float assumption holds (``float_exact``)."""

    def __init__(self, c=4, hw=8, block_quant=None, block_kernel=3, pool=None, head=None, out_quant=None):
        super().__init__()
        self.q = QuantIdentity(act_quant=Pow2Uint8Act, return_quant_tensor=True)
        self.stem = QuantConv2d(2, c, 3, padding=1, bias=False, weight_quant=HalfBinaryWeight)
        self.bn0 = nn.BatchNorm2d(c)
        self.stream = QuantIdentity(act_quant=StreamQuant, return_quant_tensor=True)
        self.block_stream = block_quant or self.stream
        self.sign = QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
        self.conv = QuantConv2d(c, c, block_kernel, padding=block_kernel // 2, bias=False, weight_quant=HalfBinaryWeight)
        self.bn1 = nn.BatchNorm2d(c)
        self.flat = nn.Flatten()
        self.pool = pool  # None: the sign of the stream -> flatten -> binary head; else the pool reads the stream
        self.head = head or QuantLinear(c * hw * hw, 3, bias=False, weight_quant=HalfBinaryWeight)
        self.out_quant = out_quant

    def forward(self, x):
        x = self.stream(self.bn0(self.stem(self.q(x))))
        y = self.block_stream(self.bn1(self.conv(self.sign(x))))
        x = self.stream(x + y)
        if self.pool is None:
            return self.head(self.flat(self.sign(x)))
        y = self.head(torch.flatten(self.pool(x), 1))
        return self.out_quant(y) if self.out_quant is not None else y


def residual_cnn(seed=0):
    torch.manual_seed(seed)
    m = randomize_bn(ResidualCNN(), seed)
    m.bn1.weight.data *= 3  # stream values over the whole 8-bit range: the requants and the add
    # saturate on some inputs (seed 0), not on most
    return m


class FloorStreamQuant(StreamQuant):
    float_to_int_impl_type = FloatToIntImplType.FLOOR


class GlobalAvg(nn.Module):
    """``F.adaptive_avg_pool2d(x, 1)`` (torch's dynamo exporter writes ReduceMean)."""

    def forward(self, x):
        return nn.functional.adaptive_avg_pool2d(x, 1)


def stream_head(kind: str, seed=0):
    """The usual end of a Brevitas residual CNN: the stream -> average pool -> flatten -> head.

    * ``avg-int8``: ``nn.AvgPool2d(8)`` + int8 head with a learned (non-power-of-two) scale and a
      float bias: qonnx's float32 logits are not exact, compared within their error bound;
    * ``gap-binary``: ``F.adaptive_avg_pool2d`` + binary head (power-of-two scales: exact);
    * ``trunc-outq``: ``TruncAvgPool2d(trunc_quant=TruncTo8bit)`` (AveragePool + Trunc, floor) +
      int8 head with a power-of-two scale + an output ``QuantIdentity`` (FLOOR): the IR's logits
      must be qonnx's quantized output exactly;
    * ``finn``: as ``avg-int8`` with a 1x1 block conv, so no binary tensor is padded (FINN-ready).
    """
    torch.manual_seed(seed)
    c = 4
    if kind in ("avg-int8", "finn"):
        m = ResidualCNN(pool=nn.AvgPool2d(8), head=QuantLinear(c, 3, bias=True, weight_quant=Int8WeightPerTensorFloat),
                        block_kernel=1 if kind == "finn" else 3)
    elif kind == "gap-binary":
        m = ResidualCNN(pool=GlobalAvg(), head=QuantLinear(c, 5, bias=False, weight_quant=HalfBinaryWeight))
    else:
        m = ResidualCNN(pool=TruncAvgPool2d(8, trunc_quant=TruncTo8bit, return_quant_tensor=True),
                        head=QuantLinear(c, 3, bias=False, weight_quant=Int8WeightPerTensorFixedPoint),
                        out_quant=QuantIdentity(act_quant=FloorStreamQuant))
    m = randomize_bn(m, seed)
    m.bn1.weight.data *= 3
    return m


def binary_input_mlp(seed=0):
    """A binary input quantizer (``SignedBinaryActPerTensorConst``: BipolarQuant) on a flat input."""
    torch.manual_seed(seed)
    return randomize_bn(nn.Sequential(
        QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True),
        QuantLinear(33, 31, bias=False, weight_quant=SignedBinaryWeightPerTensorConst), nn.BatchNorm1d(31), sign_act(),
        QuantLinear(31, 5, bias=True, weight_quant=PerChannelBinaryWeight)), seed)


def two_bit_mlp(seed=0):
    """A 2-bit signed activation between dense layers: a requant to a 2-bit stream, read by a dense
    layer (the IR's dense on a ``fixed`` tensor)."""
    torch.manual_seed(seed)
    return randomize_bn(nn.Sequential(
        QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True),
        QuantLinear(8, 8, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
        nn.BatchNorm1d(8), QuantIdentity(bit_width=2, return_quant_tensor=True),
        QuantLinear(8, 3, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)), seed)


class CnnVariant(nn.Module):
    """A CNN as Brevitas users write it: 8-bit input -> binary conv -> BN -> sign -> ``pad`` (e.g.
    ``nn.ConstantPad2d(1, -1.0)``: FINN/Larq-style padding of the binary activation) -> binary conv ->
    (MaxPool -> BN or BN -> MaxPool) -> sign -> ``flatten`` (``view``, ``reshape``, ``flatten`` or
    ``nn``: nn.Flatten) -> int8 or binary last layer."""

    def __init__(self, pad=None, pool_before_bn=False, last="int8", flatten="nn"):
        super().__init__()
        self.q = QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True)
        self.c0 = QuantConv2d(2, 6, 3, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)
        self.b0 = nn.BatchNorm2d(6)
        self.s0 = QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
        self.pad = pad
        self.c1 = QuantConv2d(6, 5, 3, bias=False, weight_quant=PerChannelBinaryWeight)
        self.b1 = nn.BatchNorm2d(5)
        self.s1 = QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
        self.mp = nn.MaxPool2d(2)
        self.pool_before_bn, self.how = pool_before_bn, flatten
        n = 5 * (4 if pad is not None else 3) ** 2
        self.fc = QuantLinear(n, 4, bias=True, weight_quant=Int8WeightPerTensorFloat if last == "int8"
                              else SignedBinaryWeightPerTensorConst)

    def forward(self, x):
        x = self.s0(self.b0(self.c0(self.q(x))))
        x = self.c1(self.pad(x) if self.pad is not None else x)
        x = self.s1(self.b1(self.mp(x)) if self.pool_before_bn else self.mp(self.b1(x)))
        if self.how == "view":
            x = x.view(x.size(0), -1)
        elif self.how == "reshape":
            x = x.reshape(x.shape[0], -1)
        elif self.how == "flatten":
            x = torch.flatten(x, 1)
        else:
            x = nn.Flatten()(x)
        return self.fc(x)


def cnn_variant(seed=0, positive_pool_bn=True, **kw):
    torch.manual_seed(seed)
    m = randomize_bn(CnnVariant(**kw), seed)
    if positive_pool_bn and kw.get("pool_before_bn"):
        m.b1.weight.data = m.b1.weight.data.abs() + 0.1  # max then an increasing map = the map then max
    return m


MODELS = {"mlp": (mlp, (20,)), "cnn": (cnn, (2, 9, 9)), "cnn-padded": (lambda: cnn(pad=1), (2, 8, 8)),
          "int8-first-last": (int8_first_last, (12,)), "ties": (tie_mlp, (6,)),
          "mlp-torchscript": (mlp, (20,)), "residual": (residual_cnn, (2, 8, 8)),
          "resid-avg-int8": (lambda: stream_head("avg-int8"), (2, 8, 8)),
          "resid-gap-binary": (lambda: stream_head("gap-binary"), (2, 8, 8)),
          "resid-trunc-outq": (lambda: stream_head("trunc-outq"), (2, 8, 8)),
          "resid-finn": (lambda: stream_head("finn"), (2, 8, 8)),
          "binary-input": (binary_input_mlp, (33,)), "two-bit": (two_bit_mlp, (8,)),
          "cnn-pad-1": (lambda: cnn_variant(pad=nn.ConstantPad2d(1, -1.0), pool_before_bn=True, last="int8",
                                            flatten="view"), (2, 11, 11))}
DYNAMO = {"mlp", "cnn", "cnn-padded", "resid-gap-binary"}
"""Exported with export_qonnx's default (torch's dynamo exporter: Gemm); the others with
``dynamo=False`` (TorchScript: Transpose + MatMul, 20x faster): both graph forms are imported."""


def export(model: nn.Module, shape, path: Path, dynamo: bool = True) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kw = {} if dynamo else {"dynamo": False}
        export_qonnx(model, torch.rand((1,) + tuple(shape)), str(path), **kw)
    return path


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("qonnx")
    return {name: export(build(), shape, d / f"{name}.onnx", dynamo=name in DYNAMO)
            for name, (build, shape) in MODELS.items()}


@pytest.mark.parametrize("name", list(MODELS))
def test_import_equals_qonnx_execution(files, name):
    """>= 500 random inputs over the input quantizer's range plus threshold-landing inputs:
    every hidden bit, integer logit and class equal to qonnx's execution of the file."""
    imp = import_qonnx(files[name])
    report, u8, _ = verify_import(imp, seed=3)
    a = report["agreement"]
    has_thr = any(l.op == "threshold" for l in imp.graph.layers)
    assert report["random_inputs"] >= 500 and (report["threshold_inputs"] > 0) == has_thr, report
    assert report["threshold_inputs_landed"] > 0 or not has_thr, f"{name}: no input landed on a threshold (seed 4)"
    assert a["exact"] and a["bits_differing"] == 0 and a["int_logits_differing"] == 0, (name, a)
    assert a["bits_compared"] >= len(u8) * sum(1 for l in imp.graph.layers if l.op == "threshold"), a
    assert a["class_agreement"] == 1.0 and a["samples"] == len(u8)


def test_float_order_sensitivity_is_reported(files):
    """Non-power-of-two scales (Brevitas' 0.1 and a learned 8-bit input scale): the dot products are
    not exact in float32, and the channels whose boundary lies within the worst-case summation error
    are listed (seed 0 of randomize_bn gives some in the first layer)."""
    imp = import_qonnx(files["mlp"])
    assert not any(l.attrs["float_exact"] for l in imp.graph.layers if l.op == "dense")
    fragile = [c for l in imp.graph.layers if l.op == "threshold" for c in l.attrs["float_order_sensitive"]]
    assert 0 < len(fragile) < 33, fragile


def int8_int32_bias(seed=0):
    torch.manual_seed(seed)
    return randomize_bn(nn.Sequential(
        QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True),
        QuantLinear(10, 12, bias=True, weight_quant=Int8WeightPerTensorFloat, bias_quant=Int32Bias),
        nn.BatchNorm1d(12), QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True),
        QuantLinear(12, 4, bias=True, weight_quant=SignedBinaryWeightPerTensorConst, bias_quant=Int32Bias)), seed)


def test_float_order_ties_are_classified(tmp_path):
    """An int8 first layer on 8-bit input: accumulators up to 3e5, so one accumulator step is below
    float32's rounding of the sum and qonnx's decision at A = T depends on onnxruntime's summation
    order. Such inputs (seed 1 landing inputs hit them) are the only differences, each on a flagged
    channel exactly at its threshold; anything else would fail the import."""
    p = export(int8_int32_bias(), (10,), tmp_path / "b.onnx", dynamo=False)
    imp = import_qonnx(p)
    report, u8, _ = verify_import(imp, seed=0)
    a = report["agreement"]
    assert a["inputs_differing_unexplained"] == 0, a
    assert a["inputs_differing"] == a["inputs_differing_at_float_order_ties"]
    assert report["float_order_sensitive_channels"]["thr0"] > 0


def test_a_wrong_threshold_is_caught(files):
    """The comparison can fail: one threshold moved by 3 is an unexplained difference."""
    imp = import_qonnx(files["cnn"])
    thr = [l for l in imp.graph.layers if l.op == "threshold"][0]
    thr.arrays["thr"] = thr.arrays["thr"].copy()
    lo, hi = thr.attrs["acc_range"]
    c = int(np.flatnonzero((thr.arrays["thr"] > lo + 10) & (thr.arrays["thr"] < hi - 10))[0])
    thr.arrays["thr"][c] += 3
    with pytest.raises(Bnn2hwError, match="disagrees with qonnx"):
        verify_import(imp, seed=3)


def test_negative_scales_give_direction_minus_one(files):
    imp = import_qonnx(files["mlp"])
    d = np.concatenate([l.arrays["direction"] for l in imp.graph.layers if l.op == "threshold"])
    assert (d == -1).any() and (d == 1).any(), "randomize_bn(seed 0) gives both signs"


def test_ties_follow_qonnx(files):
    """Accumulators landing exactly on k*T (BatchNorm output exactly 0) are +1, as BipolarQuant
    decides, for positive scales (A >= T) and negative ones (A <= T)."""
    imp = import_qonnx(files["ties"])
    thr = [l for l in imp.graph.layers if l.op == "threshold"]
    second = thr[1]
    means = np.array([-4, -2, 0, 2, 4, 0, 2, -2, 0])
    assert list(second.arrays["thr"]) == list(means), "the tie value is the threshold itself"
    assert list(second.arrays["direction"]) == [1, -1] * 4 + [1]
    assert all(l.attrs["float_exact"] for l in imp.graph.layers if l.op == "dense"), "power-of-two scales"
    assert all(l.attrs["float_order_sensitive"] == [] for l in thr)
    u8 = random_inputs(imp, 600, seed=5)
    tr = execute.run(imp.graph, u8)
    acc = tr.tensors["fc1"]
    ties = int((acc == means[None, :]).sum())
    assert ties > 100, f"random inputs should often tie on an 8-input layer (seed 5): {ties}"
    a = compare(imp, u8)
    assert a["exact"], a


def test_first_layer_ties_are_exact(files):
    """Landing inputs put first-layer accumulators exactly on thresholds (power-of-two scales)."""
    from bnn2hw.frontends.qonnx_verify import threshold_inputs

    imp = import_qonnx(files["ties"])
    x, landed = threshold_inputs(imp, targets=16, seed=7)
    tr = execute.run(imp.graph, x)
    thr = imp.graph.layers[1].arrays["thr"]
    assert (tr.tensors["fc0"] == thr[None, :]).any(), "seed 7: no first-layer accumulator on its threshold"
    assert compare(imp, x)["exact"]


@pytest.mark.parametrize("name", list(MODELS))
def test_host_c_equals_qonnx(files, tmp_path, name):
    """The generated C (host, -Wall -Wextra -Werror, through ctypes) on the verification inputs
    of every model equals the IR, hence qonnx's execution."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is required (apt-get install gcc)")
    imp = import_qonnx(files[name])
    _, u8, _ = verify_import(imp, n_random=500, n_threshold=8, seed=11)
    fw = imp.graph.emit_c(target="host", out_dir=tmp_path / name)
    got = fw.predict(u8)
    assert (got == execute.run(imp.graph, u8).int_logits).all(), name


@pytest.mark.parametrize("name", [pytest.param("int8-first-last", marks=pytest.mark.slow), "resid-trunc-outq"])
def test_emit_c_verify_cli_qemu(files, tmp_path, name):
    """`bnn2hw emit-c model.onnx --target cortex-m4 --verify`: host with sanitizers and QEMU, and
    report.json names qonnx as the reference with its input counts. ``resid-trunc-outq`` carries every
    new stream op: average pool, Trunc requant, dense on the stream, output quantizer."""
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is required (scripts/setup.sh installs it)")
    out = tmp_path / "fw"
    r = subprocess.run([sys.executable, "-m", "bnn2hw", "emit-c", str(files[name]), "--target", "cortex-m4",
                        "--verify", "--verify-samples", "60", "-o", str(out)], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((out / "report.json").read_text())
    assert rep["reference"]["reference"] == "qonnx execution of the original file"
    assert rep["reference"]["random_inputs"] == 500 and rep["reference"]["agreement"]["exact"]
    assert rep["verification"]["host"]["int_logits_differing"] == 0
    assert rep["verification"]["cortex-m4"]["int_logits_differing"] == 0
    assert rep["verification"]["samples"] == 60  # the first 48 are the threshold-landing inputs
    assert "threshold_hits" in rep["reference"]


def test_emit_c_verify_cli_binary_input(files, tmp_path):
    """A binary-input import through `emit-c --verify` on the host: the ±1 verification vectors are
    packed into the C input words."""
    out = tmp_path / "fw"
    r = subprocess.run([sys.executable, "-m", "bnn2hw", "emit-c", str(files["binary-input"]), "--target", "host",
                        "--verify", "-o", str(out)], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((out / "report.json").read_text())
    assert rep["verification"]["host"]["int_logits_differing"] == 0 and rep["verification"]["samples"] == 548


@pytest.mark.parametrize("name", ["mlp", "cnn", "int8-first-last", "ties", "resid-finn", "cnn-pad-1"])
def test_finn_export_equals(files, tmp_path, name):
    """The FINN-ready export: onnxruntime and qonnx's execution of bnn2hw's FINN graph equal the IR
    on the verification inputs, and verification.json says which reference was used."""
    from bnn2hw.fpga.cli import export_fpga

    out = tmp_path / "build"
    summary = export_fpga(files[name], "pynq-z2", out, echo=lambda *_: None, verify_samples=100)
    assert summary["ir_vs_qonnx"]["int_logits_differing"] == 0 and summary["ir_vs_qonnx"]["class_agreement"] == 1.0
    assert summary["ir_vs_onnxruntime"]["int_logits_differing"] == 0
    v = json.loads((out / "verification.json").read_text())
    assert v["reference"]["inputs"] == "random+threshold" and v["reference"]["random_inputs"] >= 500
    assert v["samples"] == 100  # FINN graph on the 48 landing inputs and 52 random ones


def test_binary_input_is_refused_by_finn_export(files, tmp_path):
    """The FPGA writers take uint8 inputs: a binary-input import is refused by name (C only), and no
    build folder is left."""
    from bnn2hw.fpga.cli import export_fpga

    with pytest.raises(Bnn2hwError, match="binary .* input vector.*emit-c"):
        export_fpga(files["binary-input"], "pynq-z2", tmp_path / "b", echo=lambda *_: None, verify=False)
    assert not (tmp_path / "b").exists()


def test_padded_binary_conv_is_refused_by_finn_export(files, tmp_path):
    from bnn2hw.fpga.cli import export_fpga

    with pytest.raises(Bnn2hwError, match="pad"):
        export_fpga(files["cnn-padded"], "pynq-z2", tmp_path / "b", echo=lambda *_: None, verify=False)


def test_user_dataset(files, tmp_path):
    """--dataset x.npz: float inputs as the file takes them (out of range too) and labels."""
    from bnn2hw.export.pipeline import export_ir

    rng = np.random.default_rng(13)
    x = rng.uniform(-0.2, 1.3, size=(64, 20)).astype(np.float32)
    y = rng.integers(0, 5, size=64)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    exp = export_ir(files["mlp"], str(tmp_path / "d.npz"))
    ref = exp.reference
    assert ref["inputs"] == "dataset" and ref["dataset_inputs"] == 64 and ref["agreement"]["exact"]
    assert ref["accuracy"]["qonnx"] == ref["accuracy"]["ir"]
    assert exp.data.x_test.dtype == np.uint8 and len(exp.data.y_test) == 64


def test_inspect_cli(files):
    r = subprocess.run([sys.executable, "-m", "bnn2hw", "inspect", str(files["cnn"])], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    assert "conv2d" in r.stdout and "threshold" in r.stdout and "input quantizer: 8-bit unsigned" in r.stdout


# ------------------------------------------------------------------------------------------------
# refusals: one test per message, each naming the node and its op type


def _refused(tmp_path, model, shape, needles):
    p = export(model.eval(), shape, tmp_path / "bad.onnx", dynamo=False)  # the fast exporter
    with pytest.raises(Bnn2hwError) as e:
        import_qonnx(p)
    msg = str(e.value)
    for n in needles:
        assert n in msg, msg
    assert "bad.onnx" in msg
    return msg


def test_refuses_2bit_activation_before_a_conv(tmp_path):
    """A 2-bit activation is a requant to a 2-bit stream; a dense layer reads it (``two-bit`` model),
    a convolution cannot (the IR's conv2d reads bits or the 8-bit input)."""
    m = nn.Sequential(QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True),
                      _bconv(1, 4), nn.BatchNorm2d(4), QuantIdentity(bit_width=2, return_quant_tensor=True),
                      _bconv(4, 4), nn.BatchNorm2d(4), sign_act(), nn.Flatten(), _bin(4 * 2 * 2, 3))
    _refused(tmp_path, m, (1, 6, 6), ["(Conv)", "2-bit activation of node 'Quant_", "(Quant)",
                                      "convolutions read 1-bit activations"])


def test_refuses_float_layer_between_binary_ones(tmp_path):
    m = nn.Sequential(QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True),
                      QuantLinear(8, 8, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
                      nn.BatchNorm1d(8), sign_act(), nn.Linear(8, 8), sign_act(),
                      QuantLinear(8, 3, bias=False, weight_quant=SignedBinaryWeightPerTensorConst))
    _refused(tmp_path, m, (8,), ["(MatMul)", "float weights", "float layer"])


def test_refuses_float_input_to_a_layer(tmp_path):
    m = nn.Sequential(QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True),
                      QuantLinear(8, 8, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
                      nn.BatchNorm1d(8),  # no activation quantizer
                      QuantLinear(8, 3, bias=False, weight_quant=SignedBinaryWeightPerTensorConst))
    _refused(tmp_path, m, (8,), ["(MatMul)", "reads a float tensor"])


def test_refuses_op_without_ir_op(tmp_path):
    m = nn.Sequential(QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True),
                      QuantLinear(8, 8, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
                      nn.Sigmoid(), sign_act(),
                      QuantLinear(8, 3, bias=False, weight_quant=SignedBinaryWeightPerTensorConst))
    _refused(tmp_path, m, (8,), ["(Sigmoid)", "has no bnn2hw IR op"])


def test_refuses_int8_conv(tmp_path):
    m = nn.Sequential(QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True),
                      QuantConv2d(1, 4, 3, bias=False, weight_quant=Int8WeightPerTensorFloat), nn.BatchNorm2d(4),
                      sign_act(), nn.Flatten(),
                      QuantLinear(4 * 4 * 4, 3, bias=False, weight_quant=SignedBinaryWeightPerTensorConst))
    _refused(tmp_path, m, (1, 6, 6), ["(Conv)", "8-bit weights", "convolutions take binary weights"])


def test_refuses_padding_of_signed_input(tmp_path):
    m = nn.Sequential(QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
                      QuantConv2d(1, 4, 3, padding=1, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
                      nn.BatchNorm2d(4), sign_act(), nn.Flatten(),
                      QuantLinear(4 * 6 * 6, 3, bias=False, weight_quant=SignedBinaryWeightPerTensorConst))
    _refused(tmp_path, m, (1, 6, 6), ["(Conv)", "zero-pads", "offset 128"])


def test_refuses_missing_input_quantizer(tmp_path):
    m = nn.Sequential(QuantLinear(8, 8, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
                      nn.BatchNorm1d(8), sign_act(),
                      QuantLinear(8, 3, bias=False, weight_quant=SignedBinaryWeightPerTensorConst))
    _refused(tmp_path, m, (8,), ["(MatMul)", "reads a float tensor"])


class _FloatResidual(nn.Module):
    """A residual Add of two float (not stream-quantized) tensors."""

    def __init__(self):
        super().__init__()
        self.q = QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True)
        self.fc = QuantLinear(8, 8, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)
        self.bn = nn.BatchNorm1d(8)
        self.act = sign_act()
        self.fc2 = QuantLinear(8, 8, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)
        self.head = QuantLinear(8, 3, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)

    def forward(self, x):
        h = self.act(self.bn(self.fc(self.q(x))))
        return self.head(self.act(self.fc2(h) + self.bn(self.fc(self.q(x)))))


def test_refuses_float_residual_add(tmp_path):
    _refused(tmp_path, _FloatResidual(), (8,), ["(Add)", "residual Add whose inputs are not both quantized",
                                                "Int8ActPerTensorFixedPoint"])


def test_residual_import_maps_to_stream_ops(files):
    """conv -> BN -> stream Quant is a requant (negative BatchNorm scales: negative mults), Add +
    Quant a saturating 8-bit add reading both branches, the sign of the stream a threshold on it;
    the random inputs exercise the add's saturation and its interior, and every stream value is
    compared with qonnx's (not only the bits)."""
    imp = import_qonnx(files["residual"])
    ops_ = [l.op for l in imp.graph.layers]
    assert ops_ == ["conv2d", "requant", "threshold", "conv2d", "requant", "add", "threshold", "flatten",
                    "dense", "affine"], ops_
    rq = [l for l in imp.graph.layers if l.op == "requant"]
    assert all(l.attrs["bits"] == 8 and l.attrs["frac"] == 5 and l.attrs["float_exact"] for l in rq)
    assert all(l.attrs["float_order_sensitive"] == [] for l in rq)
    mults = np.concatenate([l.arrays["mult"] for l in rq])
    assert (mults < 0).any() and (mults > 0).any(), mults
    add = imp.graph.layers[5]
    assert imp.graph.inputs_of(5) == ["rq0", "rq1"] and add.attrs["bits"] == 8
    u8 = random_inputs(imp, 500, seed=2)
    tr = execute.run(imp.graph, u8)
    raw = tr.tensors["rq0"] + tr.tensors["rq1"]
    assert (raw > 127).any() or (raw < -128).any(), "seed 2: no saturating sum"
    assert ((raw > -128) & (raw < 127)).mean() > 0.2
    a = compare(imp, u8)
    assert a["exact"] and a["stream_values_compared"] == 3 * u8.shape[0] * 4 * 64 and a["stream_values_differing"] == 0, a


def test_a_wrong_requant_is_caught(files):
    """The stream comparison can fail: one channel's requant bias moved by one step."""
    imp = import_qonnx(files["residual"])
    rq = imp.graph.layers[4]
    rq.arrays["bias"] = rq.arrays["bias"].copy()
    rq.arrays["bias"][1] += 1 << rq.attrs["shift"]
    a = compare(imp, random_inputs(imp, 200, seed=4))
    assert not a["exact"] and a["stream_values_differing"] > 0, a


def test_refuses_residual_add_of_unequal_scales(tmp_path):
    """Stream scales 2^-5 and 2^-6 on the Add's inputs (Brevitas itself refuses to add two
    QuantTensors of different scales, so the block's quantizer returns a plain tensor here)."""
    torch.manual_seed(0)
    m = randomize_bn(ResidualCNN(block_quant=QuantIdentity(act_quant=HalfStreamQuant)), 0)
    _refused(tmp_path, m, (2, 8, 8), ["(Add)", "scales 0.03125 and 0.015625", "same QuantIdentity"])


def tie_block(stream=None):
    """A block whose stream value is exactly A/4 in stream units (weight scale 2^-1, BatchNorm gain
    2^-6, stream scale 2^-5): reachable accumulators A = 2 mod 4 land on .5."""
    torch.manual_seed(0)
    m = randomize_bn(ResidualCNN(), 0)
    if stream is not None:
        m.stream = m.block_stream = QuantIdentity(act_quant=stream, return_quant_tensor=True)
    m.bn1.weight.data = torch.full((4,), 2.0 ** -6)
    m.bn1.bias.data = torch.zeros(4)
    m.bn1.running_mean.data = torch.zeros(4)
    m.bn1.running_var.data = torch.full((4,), 1.0) - m.bn1.eps
    return m


def test_refuses_requant_with_half_even_ties(tmp_path):
    """Brevitas' ROUND is round-half-even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, which no
    floor((A * mult + bias) >> shift) reproduces: refused naming the stream quantizer."""
    _refused(tmp_path, tie_block(), (2, 8, 8), ["(Quant)", "channel 0: no integer form", "round-half-even"])


def test_floor_stream_quantizer_with_ties_imports(tmp_path):
    """The same ties under a FLOOR stream quantizer (the configuration the refusal suggests): exact."""
    p = export(tie_block(FloorStreamQuant), (2, 8, 8), tmp_path / "floor.onnx", dynamo=False)
    imp = import_qonnx(p)
    rq = imp.graph.layers[4]
    assert rq.op == "requant" and rq.attrs["acc_range"] == [-36, 36]
    u8 = random_inputs(imp, 300, seed=6)
    acc = execute.run(imp.graph, u8).tensors["conv1"]
    assert (acc % 4 == 2).any(), "seed 6: no accumulator on a tie"
    a = compare(imp, u8)
    assert a["exact"] and a["stream_values_differing"] == 0, a


def test_refuses_two_level_quant_rewritten_to_unsupported_and_cli_error(tmp_path, files):
    """A hand-edited file (a weight quantizer with scale 0) through the CLI: one error line, exit 2."""
    m = onnx.load(str(files["mlp"]))
    for init in m.graph.initializer:
        if "weight_quant" in init.name:
            arr = onnx.numpy_helper.to_array(init) * 0
            init.CopyFrom(onnx.numpy_helper.from_array(arr.astype(np.float32), init.name))
    p = tmp_path / "zero.onnx"
    onnx.save(m, str(p))
    out = tmp_path / "b"
    r = subprocess.run([sys.executable, "-m", "bnn2hw", "export", str(p), "-o", str(out)], capture_output=True, text=True, env=ENV)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "zero.onnx" in lines[0] and "zero or non-finite scale" in lines[0], r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_refuses_non_onnx_file(tmp_path):
    p = tmp_path / "junk.onnx"
    p.write_bytes(b"\x00\x01garbage")
    with pytest.raises(Bnn2hwError, match="junk.onnx.*not a readable ONNX file"):
        import_qonnx(p)


def _u8():
    return QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True)


def _bin(i, o):
    return QuantLinear(i, o, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)


def _bconv(i, o, **kw):
    return QuantConv2d(i, o, 3, bias=False, weight_quant=SignedBinaryWeightPerTensorConst, **kw)


REFUSALS = {
    # name: (model builder, input shape, needles)
    "4-bit-weights": (lambda: nn.Sequential(_u8(), QuantLinear(8, 8, bias=False, weight_bit_width=4),
                                            nn.BatchNorm1d(8), sign_act(), _bin(8, 3)),
                      (8,), ["(MatMul)", "4-bit weights"]),
    "16-bit-input": (lambda: nn.Sequential(QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=16,
                                                         return_quant_tensor=True), _bin(8, 3)),
                     (8,), ["(Quant)", "16 bits"]),
    "binary-image-input": (lambda: nn.Sequential(QuantIdentity(act_quant=SignedBinaryActPerTensorConst,
                                                               return_quant_tensor=True),
                                                 _bconv(1, 4), nn.BatchNorm2d(4), sign_act(), nn.Flatten(),
                                                 _bin(4 * 4 * 4, 3)),
                           (1, 6, 6), ["(BipolarQuant)", "binarizes an input of shape [1, 6, 6]", "flat vectors"]),
    "avgpool-of-bits": (lambda: nn.Sequential(_u8(), _bconv(1, 4), nn.BatchNorm2d(4), sign_act(), nn.AvgPool2d(4),
                                              nn.Flatten(), _bin(4, 3)),
                        (1, 6, 6), ["(AveragePool)", "average-pools a binary tensor",
                                    "average-pools the multi-bit residual stream only"]),
    "ends-with-activation": (lambda: nn.Sequential(_u8(), _bin(8, 3), nn.BatchNorm1d(3), sign_act()),
                             (8,), ["must come from a MatMul/Gemm layer"]),
    "pool-on-input": (lambda: nn.Sequential(_u8(), nn.MaxPool2d(2), _bconv(1, 4), nn.BatchNorm2d(4), sign_act(),
                                            nn.Flatten(), _bin(4, 3)),
                      (1, 6, 6), ["(MaxPool)", "pools the 8-bit input"]),
    "relu-after-last": (lambda: nn.Sequential(_u8(), _bin(8, 3), nn.ReLU()), (8,), ["(Relu)", "is not affine"]),
    "grouped-conv": (lambda: nn.Sequential(_u8(), _bconv(2, 4), nn.BatchNorm2d(4), sign_act(),
                                           _bconv(4, 4, groups=2), nn.BatchNorm2d(4), sign_act(),
                                           nn.Flatten(), _bin(4 * 2 * 2, 3)),
                     (2, 6, 6), ["(Conv)", "grouped or dilated"]),
    "flatten-before-activation": (lambda: nn.Sequential(_u8(), _bconv(1, 4), nn.BatchNorm2d(4), nn.Flatten(),
                                                        sign_act(), _bin(4 * 4 * 4, 3)),
                                  (1, 6, 6), ["flattens a float tensor"]),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusal_messages(tmp_path, case):
    build, shape, needles = REFUSALS[case]
    torch.manual_seed(0)
    _refused(tmp_path, build(), shape, needles)


# ------------------------------------------------------------------------------------------------
# the end of a residual CNN: average pool and dense head on the stream, output quantizers


def test_stream_head_maps_to_avgpool_and_dense(files):
    """stream -> AvgPool2d(8) -> Flatten -> int8 QuantLinear (learned scale, float bias): the IR's
    exact window sum, a dense layer on the fixed sums and the affine. Every pooled value equals
    qonnx's average (sum * scale / 64 is exact in float32); the head's float32 arithmetic is not
    exact, so the integer logits are recovered within the worst-case float32 error bound, reported
    with the number of logits it does not pin to one integer (sums near 2^22: float32's ulp there is
    0.25, so the bound can exceed 1/2 on some inputs)."""
    imp = import_qonnx(files["resid-avg-int8"])
    ops_ = [l.op for l in imp.graph.layers]
    assert ops_[-4:] == ["avgpool", "flatten", "dense", "affine"], ops_
    pool, fc = imp.graph.layers[-4], imp.graph.layers[-2]
    assert pool.attrs["kernel"] == 8 and fc.attrs["in"] == "fixed" and fc.attrs["weight_kind"] == "int8"
    assert not fc.attrs["float_exact"]
    u8 = random_inputs(imp, 500, seed=8)
    a = compare(imp, u8)
    assert a["exact"] and a["int_logits_differing"] == 0, a
    assert a["stream_values_compared"] == 500 * (3 * 64 * 4 + 4), a  # two requants, the add, the pool
    assert a["int_logit_tolerance_max"] > 1e-3 and a["int_logit_max_residual"] < a["int_logit_tolerance_max"], a
    assert 0 < a["int_logits_not_pinned"] < a["samples"] * 3, a  # reported, not hidden
    assert a["int_logits_round_differing"] == 0 and a["int_logit_max_residual"] < 0.25, a  # measured: 0.07


def test_a_wrong_head_weight_is_caught(files):
    """With the float32 tolerance in place the comparison still fails on one int8 weight off by one."""
    imp = import_qonnx(files["resid-avg-int8"])
    fc = imp.graph.layers[-2]
    fc.arrays["weight"] = fc.arrays["weight"].copy()
    fc.arrays["weight"][1, 2] += 1 if fc.arrays["weight"][1, 2] < 127 else -1
    a = compare(imp, random_inputs(imp, 100, seed=9))
    assert not a["exact"] and a["int_logits_differing"] > 0, a


def test_global_pool_dynamo_and_binary_head(files):
    """F.adaptive_avg_pool2d through torch's dynamo exporter (ReduceMean + Reshape) and a binary head
    on the pooled sums: power-of-two scales, so the logits are recovered exactly (tolerance 1e-3)."""
    imp = import_qonnx(files["resid-gap-binary"])
    ops_ = [l.op for l in imp.graph.layers]
    assert "avgpool" in ops_ and ops_[-2:] == ["dense", "affine"], ops_
    fc = imp.graph.layers[-2]
    assert fc.attrs["in"] == "fixed" and fc.attrs["weight_kind"] == "binary" and fc.attrs["float_exact"]
    a = compare(imp, random_inputs(imp, 300, seed=10))
    assert a["exact"] and a["int_logit_tolerance_max"] == 1e-3 and a["int_logit_max_residual"] == 0.0, a


def test_trunc_pool_and_output_quantizer_are_exact(files):
    """TruncAvgPool2d(TruncTo8bit) is a requant of the window sum (a floor shift by 6 = log2 64);
    the output QuantIdentity is a requant of the head's accumulator followed by an identity dense, so
    the IR's float logits are qonnx's quantized outputs bit for bit, saturation included."""
    from bnn2hw.frontends.qonnx_verify import QonnxReference

    imp = import_qonnx(files["resid-trunc-outq"])
    g = imp.graph
    ops_ = [l.op for l in g.layers]
    assert ops_[-7:] == ["avgpool", "requant", "flatten", "dense", "requant", "dense", "affine"], ops_
    trunc = g.layers[-6]
    sums = np.arange(-128 * 64, 128 * 64)[:, None]
    assert np.array_equal(ops.requant(sums, trunc.arrays["mult"], trunc.arrays["bias"], trunc.attrs["shift"], 8),
                          np.repeat(sums >> 6, 4, 1)), "floor(sum / 64)"
    assert g.layers[-2].attrs["output_quant"] and (g.layers[-2].arrays["weight"] == np.eye(3)).all()
    u8 = random_inputs(imp, 500, seed=12)
    out, _ = QonnxReference(imp).run(imp.input_quant.to_float(u8), [])
    tr = execute.run(g, u8)
    assert np.array_equal(tr.logits.astype(np.float32), out), "the IR's logits are qonnx's quantized output"
    assert len(np.unique(out)) > 10
    assert compare(imp, u8)["exact"]


def test_refuses_round_half_even_trunc(tmp_path):
    """Brevitas' default TruncAvgPool2d quantizer (RoundTo8bit) rounds half to even: sums landing on
    .5 (reachable) have no floor form; refused naming the Trunc node and the fix."""
    torch.manual_seed(0)
    m = randomize_bn(ResidualCNN(pool=TruncAvgPool2d(8, trunc_quant=RoundTo8bit, return_quant_tensor=True),
                                 head=QuantLinear(4, 3, bias=False, weight_quant=Int8WeightPerTensorFixedPoint)), 0)
    _refused(tmp_path, m, (2, 8, 8), ["(Trunc)", "half to even", "TruncTo8bit"])


def test_refuses_output_quantizer_on_inexact_head(tmp_path):
    """An output QuantIdentity (Int8ActPerTensorFloat) after an int8 head with learned float scales:
    qonnx's level breakpoints follow float32 rounding; refused naming the quantizer and the fix."""
    torch.manual_seed(0)
    m = randomize_bn(ResidualCNN(pool=nn.AvgPool2d(8), head=QuantLinear(4, 3, bias=True,
                                                                        weight_quant=Int8WeightPerTensorFloat),
                                 out_quant=QuantIdentity(act_quant=Int8ActPerTensorFloat)), 0)
    _refused(tmp_path, m, (2, 8, 8), ["(Quant)", "float32 arithmetic is not exact", "power-of-two scales"])


def test_refuses_conv_on_the_stream(tmp_path):
    class ConvOnStream(ResidualCNN):
        def forward(self, x):
            x = self.stream(self.bn0(self.stem(self.q(x))))
            return self.head(self.flat(self.sign(self.bn1(self.conv(x)))))

    torch.manual_seed(0)
    _refused(tmp_path, randomize_bn(ConvOnStream(), 0), (2, 8, 8),
             ["(Conv)", "8-bit activation of node", "convolutions read 1-bit activations"])


def test_binary_input(files):
    """A BipolarQuant input quantizer: the IR takes ±1 vectors (input_kind bits); random ±1 inputs
    and the user's float data (quantized by qonnx's own binary_quant) both agree with qonnx."""
    imp = import_qonnx(files["binary-input"])
    assert imp.graph.input_kind == "bits" and imp.input_quant.binary
    x = random_inputs(imp, 20, seed=13)
    assert set(np.unique(x)) == {-1, 1}
    xf = np.random.default_rng(14).normal(size=(64, 33)).astype(np.float32)
    xf[:4, :5] = 0.0  # BipolarQuant: 0 -> +1, the tie
    u = imp.input_quant.to_ir(xf)
    assert (u[:4, :5] == 1).all()
    assert compare(imp, u, xf)["exact"]


def test_two_bit_activation_in_an_mlp(files):
    imp = import_qonnx(files["two-bit"])
    ops_ = [l.op for l in imp.graph.layers]
    assert ops_ == ["dense", "requant", "dense", "affine"], ops_
    assert imp.graph.layers[1].attrs["bits"] == 2 and imp.graph.layers[2].attrs["in"] == "fixed"


def test_threshold_hits_are_measured(files):
    """verification reports, per threshold layer, the targets the landing search aimed at and
    landed, and how many accumulators of all verification inputs sit on a boundary pair; every
    reachable first-layer boundary of the MLP is hit (the first layer is solved exactly)."""
    imp = import_qonnx(files["mlp"])
    report, _, _ = verify_import(imp, seed=3)
    hits = report["threshold_hits"]
    assert set(hits) == {"thr0", "thr1"}
    assert hits["thr0"]["channels_hit"] == hits["thr0"]["channels_reachable"] > 0, hits
    assert hits["thr1"]["boundary_hits"] > 0 and hits["thr1"]["channels_hit"] > 0, hits
    per = report["threshold_targets_per_layer"]
    assert per["thr0"]["landed"] == per["thr0"]["targets"] and sum(v["targets"] for v in per.values()) == 48


def test_requant_by_bisection_equals_enumeration(files, monkeypatch):
    """derive_requant_monotone (breakpoints found by bisection on qonnx's execution, used when a range
    is too large to enumerate, e.g. an output quantizer after an int8 head) gives, on every reachable
    accumulator of every channel, the same stream values as the exhaustive derivation."""
    from bnn2hw.frontends import qonnx_import

    exhaustive = import_qonnx(files["residual"]).graph
    monkeypatch.setattr(qonnx_import, "REQUANT_ENUMERATE_LIMIT", 64)
    bisected = import_qonnx(files["residual"]).graph
    n = 0
    for a, b in zip(exhaustive.layers, bisected.layers):
        if a.op != "requant":
            continue
        lo, hi = a.attrs["acc_range"]
        assert (hi - lo + 1) * len(a.arrays["mult"]) > 64
        acc = np.arange(lo, hi + 1)[:, None]
        want = ops.requant(acc, a.arrays["mult"], a.arrays["bias"], a.attrs["shift"], a.attrs["bits"])
        got = ops.requant(acc, b.arrays["mult"], b.arrays["bias"], b.attrs["shift"], b.attrs["bits"])
        assert np.array_equal(want, got), a.name
        n += 1
    assert n == 2


# ------------------------------------------------------------------------------------------------
# CNN constructs: -1 padding as an ONNX Pad, MaxPool before BatchNorm, Flatten variants, int8 last


def test_minus_one_padding_and_pool_before_bn(files):
    """``nn.ConstantPad2d(1, -1.0)`` on the sign activation (TorchScript computes the pads through
    Reshape/Slice/Concat nodes) is the next conv's ``pad_value -1`` (FINN's FMPadding); MaxPool before a
    BatchNorm with positive scales is the threshold then the pool; int8 last layer after ``x.view``."""
    imp = import_qonnx(files["cnn-pad-1"])
    ops_ = [l.op for l in imp.graph.layers]
    assert ops_ == ["conv2d", "threshold", "conv2d", "threshold", "maxpool", "flatten", "dense", "affine"], ops_
    conv = imp.graph.layers[2]
    assert conv.attrs["pad"] == 1 and conv.attrs["pad_value"] == -1
    assert imp.graph.layers[-2].attrs["weight_kind"] == "int8"
    u8 = random_inputs(imp, 200, seed=15)
    tr = execute.run(imp.graph, u8)
    border = tr.tensors["thr0"]
    assert (border == -1).any() and (border == 1).any()
    a = compare(imp, u8)
    assert a["exact"] and a["bits_differing_per_layer"]["pool0"] == 0, a


@pytest.mark.parametrize("how", ["view", "reshape", "flatten", "nn"])
def test_flatten_variants(tmp_path, how):
    """x.view(N, -1), x.reshape(N, -1), torch.flatten(x, 1), nn.Flatten(): TorchScript writes Flatten
    or Reshape, dynamo Reshape; all are the IR's flatten (channel-major columns reordered)."""
    for dynamo in (False, True):
        p = export(cnn_variant(flatten=how, last="binary"), (2, 11, 11), tmp_path / f"f{int(dynamo)}.onnx", dynamo)
        imp = import_qonnx(p)
        assert [l.op for l in imp.graph.layers][-4:] == ["maxpool", "flatten", "dense", "affine"]
        a = compare(imp, random_inputs(imp, 100, seed=16))
        assert a["exact"], (how, dynamo, a)


def test_refuses_pool_before_negative_bn(tmp_path):
    _refused(tmp_path, cnn_variant(pool_before_bn=True, positive_pool_bn=False), (2, 11, 11),
             ["(MaxPool)", "decreasing per-channel map", "a min of the bits"])


def test_refuses_pad_with_another_value(tmp_path):
    _refused(tmp_path, cnn_variant(pad=nn.ConstantPad2d(1, 0.5)), (2, 11, 11),
             ["(Pad)", "pads with 0.5", "pad_value -1"])
