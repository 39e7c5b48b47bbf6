# SPDX-License-Identifier: MIT
"""Stage-against-stage checks: PyTorch eval model vs IR executor, bit for bit."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from brevitas.nn import QuantConv2d, QuantLinear
from torch import nn

from ..ir import execute
from ..ir.graph import Graph
from ..nn.layers import BinaryActivation, BinaryConv2d, BinaryLinear, Int8Linear
from ..train import as_float


@dataclass
class Agreement:
    """How two stages agree on a data set."""

    samples: int
    bits_compared: int = 0
    bits_differing: int = 0
    int_logits_differing: int = 0
    class_agreement: float = 0.0
    max_logit_abs_diff: float = 0.0
    details: dict = field(default_factory=dict)
    stream_compared: int = 0  # residual-stream integers (quantized-stream models)
    stream_differing: int = 0
    torch_logits: object = field(default=None, repr=False, compare=False)  # PyTorch's float logits, if kept
    # the IR executor's integer and float logits on the same samples, if kept (a later stage on the same
    # inputs reuses them instead of running the IR again)
    ir_int_logits: object = field(default=None, repr=False, compare=False)
    ir_logits: object = field(default=None, repr=False, compare=False)

    @property
    def exact(self) -> bool:
        return (self.bits_differing == 0 and self.stream_differing == 0 and self.int_logits_differing == 0
                and self.class_agreement == 1.0)

    def to_dict(self) -> dict:
        stream = ({"stream_compared": self.stream_compared, "stream_differing": self.stream_differing}
                  if self.stream_compared else {})
        return {"samples": self.samples, "bits_compared": self.bits_compared,
                "bits_differing": self.bits_differing, **stream,
                "int_logits_differing": self.int_logits_differing,
                "class_agreement": self.class_agreement, "max_logit_abs_diff": self.max_logit_abs_diff,
                "exact": self.exact, **self.details}


TRACE_BATCH = 256
"""torch_trace runs the model on this many images at a time (eval mode: every output row depends on
its own image only), so PyTorch's temporaries stay small; the recorded tensors are concatenated."""


@torch.no_grad()
def torch_trace(model: nn.Module, x_u8: np.ndarray, batch: int = TRACE_BATCH) -> dict:
    """PyTorch eval-mode tensors by module name: sign outputs, pool outputs, head accumulator."""
    model.eval()
    names = {m: n for n, m in model.named_modules()}
    parts: dict = {}
    hooks = []

    def keep(mod, _inp, res):
        parts.setdefault(names[mod], []).append(res.detach().numpy())

    for m in model.modules():
        if isinstance(m, (BinaryActivation, nn.MaxPool2d)):
            hooks.append(m.register_forward_hook(keep))
    head = model.head.layer

    def head_acc(mod, inp):
        x = inp[0]
        if isinstance(mod, BinaryLinear):
            acc = QuantLinear.forward(mod, x)
        elif isinstance(mod, BinaryConv2d):
            acc = QuantConv2d.forward(mod, x)
        elif isinstance(mod, Int8Linear):
            acc = F.linear(x, mod.int_weight()[0])
        else:
            return
        parts.setdefault("__acc__", []).append(acc.numpy())

    hooks.append(head.register_forward_pre_hook(head_acc))
    try:
        for i in range(0, max(len(x_u8), 1), batch):
            parts.setdefault("__logits__", []).append(model(as_float(x_u8[i:i + batch])).numpy())
    finally:
        for h in hooks:
            h.remove()
    return {k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in parts.items()}


def _to_channels_last(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


def _count_differing(ref: np.ndarray, got: np.ndarray, rows: int = 64) -> int:
    """Elements where PyTorch's float tensor and the IR's int64 tensor differ, compared as values
    (no rounding: a non-integral PyTorch value differs from every integer), ``rows`` images at a
    time so no whole-tensor temporaries are made."""
    return sum(int(np.count_nonzero(ref[i:i + rows] != got[i:i + rows])) for i in range(0, len(ref), rows))


def compare_torch_ir(model: nn.Module, graph: Graph, x_u8: np.ndarray, batch: int = TRACE_BATCH) -> Agreement:
    """Every hidden bit, every integer logit, every predicted class: PyTorch vs IR.

    ``batch`` images at a time through both (each output depends on its own image only, so the
    batching changes no value); the tensors compared stay a few hundred MB smaller than the whole
    split's trace (issue 11, compiler speed). The IR's logits are kept in the Agreement for later
    stages on the same inputs."""
    agr = Agreement(samples=len(x_u8))
    per_layer: dict[str, int] = {}
    torch_logits, ir_int, ir_logits = [], [], []
    for i in range(0, max(len(x_u8), 1), batch):
        xb = x_u8[i:i + batch]
        tt = torch_trace(model, xb, batch)
        tr = execute.run(graph, xb)
        for layer in graph.layers:
            if layer.op in ("threshold", "maxpool") and layer.source in tt:
                ref = _to_channels_last(tt[layer.source])
                got = tr.tensors[layer.name]
                if ref.shape != got.shape:
                    raise AssertionError(f"{layer.name}: shape {got.shape} vs PyTorch {ref.shape}")
                diff = _count_differing(ref, got)
                per_layer[layer.name] = per_layer.get(layer.name, 0) + diff
                agr.bits_compared += ref.size
                agr.bits_differing += diff
        acc = tt.get("__acc__")
        if acc is not None:
            if not np.all(acc == np.round(acc)):
                raise AssertionError("PyTorch head accumulator is not integral")
            agr.int_logits_differing += int((acc.astype(np.int64) != tr.int_logits).sum())
        torch_logits.append(tt["__logits__"])
        ir_int.append(tr.int_logits)
        ir_logits.append(tr.logits)
    tl, il = np.concatenate(torch_logits), np.concatenate(ir_logits)
    agr.class_agreement = float((tl.argmax(1) == il.argmax(1)).mean())
    agr.max_logit_abs_diff = float(np.abs(tl - il).max())
    agr.details["bits_differing_per_layer"] = per_layer
    agr.torch_logits = tl
    agr.ir_int_logits, agr.ir_logits = np.concatenate(ir_int), il
    return agr


def compare_residual(model: nn.Module, graph: Graph, x_u8: np.ndarray, batch: int = 128) -> Agreement:
    """Quantized-stream ResNets (:class:`bnn2hw.nn.residual.ResidualBNN`): every hidden bit, every
    residual-stream integer (PyTorch's value / 2^-frac), every integer logit and every class,
    PyTorch eval vs IR, in batches of ``batch`` images. Tensors are matched by name (the IR
    names are the ones ``model.trace`` records)."""
    model.eval()
    agr = Agreement(samples=len(x_u8))
    per_layer: dict[str, int] = {}
    kinds = {l.name: l.op for l in graph.layers}
    agree = 0
    max_diff = 0.0
    all_logits = []
    for i in range(0, len(x_u8), batch):
        xb = x_u8[i:i + batch]
        named, acc, logits = model.trace(as_float(xb))
        tr = execute.run(graph, xb)
        for name, t in named.items():
            if name not in tr.tensors:
                raise AssertionError(f"PyTorch tensor {name} has no IR counterpart")
            ref = _to_channels_last(t.numpy())
            if kinds[name] == "threshold":
                ref = ref.astype(np.int64)
            else:
                units = ref / model.stream_scale
                if not np.all(units == np.round(units)):
                    raise AssertionError(f"{name}: PyTorch's stream is off its 2^-frac grid")
                ref = units.astype(np.int64)
            got = tr.tensors[name]
            if ref.shape != got.shape:
                raise AssertionError(f"{name}: shape {got.shape} vs PyTorch {ref.shape}")
            diff = int((ref != got).sum())
            per_layer[name] = per_layer.get(name, 0) + diff
            if kinds[name] == "threshold":
                agr.bits_compared += ref.size
                agr.bits_differing += diff
            else:
                agr.stream_compared += ref.size
                agr.stream_differing += diff
        a = acc.numpy()
        if not np.all(a == np.round(a)):
            raise AssertionError("PyTorch head accumulator is not integral")
        agr.int_logits_differing += int((a.astype(np.int64) != tr.int_logits).sum())
        lg = logits.numpy()
        all_logits.append(lg)
        agree += int((lg.argmax(1) == tr.logits.argmax(1)).sum())
        max_diff = max(max_diff, float(np.abs(lg - tr.logits).max()))
    agr.class_agreement = agree / max(1, len(x_u8))
    agr.max_logit_abs_diff = max_diff
    agr.details["differing_per_layer"] = per_layer
    agr.torch_logits = np.concatenate(all_logits) if all_logits else None
    return agr


def compare(model: nn.Module, graph: Graph, x_u8: np.ndarray) -> Agreement:
    """PyTorch eval vs IR for any exportable model (the residual or the chain comparison)."""
    from ..nn.residual import ResidualBNN

    if isinstance(model, ResidualBNN):
        return compare_residual(model, graph, x_u8)
    return compare_torch_ir(model, graph, x_u8)
