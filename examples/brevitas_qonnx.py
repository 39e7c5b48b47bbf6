# SPDX-License-Identifier: MIT
"""Bring your own model: a binary MLP built from stock Brevitas layers, trained here on the
bundled 8x8 digits, exported with ``brevitas.export.export_qonnx``, then deployed by bnn2hw
from the QONNX file alone (no bnn2hw checkpoint):

    bnn2hw inspect digits_bnn.onnx
    bnn2hw export  digits_bnn.onnx --target pynq-z2 --dataset digits_test.npz -o build
    bnn2hw emit-c  digits_bnn.onnx --target cortex-m4 --verify --dataset digits_test.npz -o fw

Every stage is compared with qonnx's execution of the exported file on the test split.

    python examples/brevitas_qonnx.py            # 30 epochs, C verified in QEMU (Cortex-M4)
    python examples/brevitas_qonnx.py --quick    # 4 epochs, C verified on the host (the test)
    python examples/brevitas_qonnx.py --residual [--quick]

``--residual`` trains the usual shape of a Brevitas residual CNN instead (:func:`brevitas_resnet`):
a quantized residual stream (one constant-scale ``QuantIdentity`` shared by every use), binary
convolutions reading its sign with FINN-style -1 padding (``nn.ConstantPad2d(1, -1.0)``), a global
average pool of the stream and an int8 head.
"""

import argparse
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from brevitas.core.restrict_val import RestrictValueType
from brevitas.core.scaling import ScalingImplType
from brevitas.export import export_qonnx
from brevitas.inject.enum import FloatToIntImplType
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.quant import (
    Int8ActPerTensorFixedPoint,
    Int8WeightPerTensorFixedPoint,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    Uint8ActPerTensorFloat,
)
from torch import nn

import bnn2hw
from bnn2hw.data import load_dataset
from bnn2hw.frontends.qonnx_import import import_qonnx
from bnn2hw.frontends.qonnx_verify import verify_import


def brevitas_mlp(width: int = 64) -> nn.Module:
    """8-bit input quantizer, binary weights (per-tensor constant scale), BatchNorm, sign."""
    def sign():
        return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)

    return nn.Sequential(
        QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True),
        QuantLinear(64, width, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
        nn.BatchNorm1d(width), sign(),
        QuantLinear(width, width, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
        nn.BatchNorm1d(width), sign(),
        QuantLinear(width, 10, bias=True, weight_quant=SignedBinaryWeightPerTensorConst))


class Pow2Uint8Act(Uint8ActPerTensorFloat):
    restrict_scaling_type = RestrictValueType.POWER_OF_TWO  # power-of-two scales: exact float32 sums


class StreamQuant(Int8ActPerTensorFixedPoint):
    """The residual stream: signed 8-bit, constant scale 2^-4 (range ±8), floor rounding (Brevitas'
    default round-half-even has no integer requant form when a value lands on .5)."""

    scaling_impl_type = ScalingImplType.CONST
    scaling_const = 8.0
    max_val = 8.0
    min_val = -8.0
    float_to_int_impl_type = FloatToIntImplType.FLOOR


class BrevitasResNet(nn.Module):
    """stem: 8-bit pixels -> binary 3x3 conv -> BN -> stream; two blocks: sign -> pad(-1) -> binary
    3x3 conv -> BN -> stream, added to the stream and re-quantized by the same quantizer; head:
    global average pool of the stream -> int8 dense (power-of-two weight scale)."""

    def __init__(self, c: int = 16):
        super().__init__()
        self.q = QuantIdentity(act_quant=Pow2Uint8Act, return_quant_tensor=True)
        self.stem = QuantConv2d(1, c, 3, padding=1, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)
        self.bn0 = nn.BatchNorm2d(c)
        self.stream = QuantIdentity(act_quant=StreamQuant, return_quant_tensor=True)
        self.sign = QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
        self.pad = nn.ConstantPad2d(1, -1.0)  # the binary activation -1 around the map (FINN's FMPadding)
        self.convs = nn.ModuleList(QuantConv2d(c, c, 3, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)
                                   for _ in range(2))
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(2))
        self.pool = nn.AvgPool2d(8)
        self.head = QuantLinear(c, 10, bias=False, weight_quant=Int8WeightPerTensorFixedPoint)

    def forward(self, x):
        x = self.stream(self.bn0(self.stem(self.q(x))))
        for conv, bn in zip(self.convs, self.bns):
            x = self.stream(x + self.stream(bn(conv(self.pad(self.sign(x))))))
        return self.head(torch.flatten(self.pool(x), 1))


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int) -> None:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt)).split(64):
            if len(idx) < 2:
                continue
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--residual", action="store_true", help="a residual CNN with an average-pool head")
    ap.add_argument("--out", default="brevitas_qonnx_out")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. data: digits as float pixels in [0, 1], the input the Brevitas model takes
    d = load_dataset("digits")
    x_train = (d.x_train.reshape(len(d.x_train), -1) / 255.0).astype(np.float32)
    x_test = (d.x_test.reshape(len(d.x_test), -1) / 255.0).astype(np.float32)
    if a.residual:  # images (N, 1, 8, 8)
        x_train, x_test = x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)
    np.savez(out / "digits_test.npz", x=x_test, y=d.y_test)

    # 2. a Brevitas model, trained and exported to QONNX
    torch.manual_seed(0)
    model = BrevitasResNet() if a.residual else brevitas_mlp()
    epochs = (12, 40) if a.residual else (4, 30)  # the residual CNN learns more slowly (12 epochs: 56%)
    train(model, x_train, d.y_train, epochs[0] if a.quick else epochs[1])
    with torch.no_grad():
        torch_acc = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == d.y_test).mean())
    onnx_path = out / ("digits_resnet.onnx" if a.residual else "digits_bnn.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.from_numpy(x_test[:1]), str(onnx_path))
    print(f"Brevitas model: test accuracy {torch_acc:.4f}; wrote {onnx_path}")

    # 3. the Python API: QONNX -> integer IR, checked against qonnx's execution of the file
    imp = import_qonnx(onnx_path)
    report, _, _ = verify_import(imp, dataset=str(out / "digits_test.npz"))
    acc = report["accuracy"]
    print(f"IR == qonnx on {report['dataset_inputs']} test images (every hidden bit and integer logit); "
          f"accuracy qonnx {acc['qonnx']:.4f}, IR {acc['ir']:.4f}")
    # differences are only allowed at float-order ties (see bnn2hw.frontends.qonnx_verify)
    assert report["agreement"]["inputs_differing_unexplained"] == 0
    graph = bnn2hw.load(onnx_path)
    print(graph.summary())

    # 4. the CLI, from the QONNX file alone
    py = [sys.executable, "-m", "bnn2hw"]
    run(py + ["inspect", str(onnx_path)])
    run(py + ["export", str(onnx_path), "--target", "pynq-z2", "--dataset", str(out / "digits_test.npz"),
              "-o", str(out / "build"), "--no-finn", "--force"])
    target = "host" if a.quick else "cortex-m4"
    run(py + ["emit-c", str(onnx_path), "--target", target, "--verify", "--dataset", str(out / "digits_test.npz"),
              "-o", str(out / "fw"), "--force"])
    v = json.loads((out / "build" / "verification.json").read_text())
    r = json.loads((out / "fw" / "report.json").read_text())
    assert v["ir_vs_qonnx"]["int_logits_differing"] == 0  # bnn2hw's FINN graph, executed by qonnx
    assert v["reference"]["agreement"]["inputs_differing_unexplained"] == 0
    assert r["verification"]["host"]["int_logits_differing"] == 0
    if target != "host":
        assert r["verification"][target]["int_logits_differing"] == 0
        print(f"{target}: {r['verification'][target]['instructions_per_inference']} instructions/inference, "
              f"flash {r['verification'][target]['flash_bytes']} B")
    print("done: the FINN build folder is", out / "build", "and the firmware folder", out / "fw")


if __name__ == "__main__":
    main()
