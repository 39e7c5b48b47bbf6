# SPDX-License-Identifier: MIT
"""Checkpoint -> verified IR: the step every back end starts from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checkpoint import load_checkpoint
from ..data import Dataset, load_dataset
from ..errors import Bnn2hwError
from ..ir.graph import Graph
from .fold import fold_model
from .verify import Agreement, compare_torch_ir

FLOAT32_EXACT = 2 ** 24


@dataclass
class Exported:
    graph: Graph
    model: object
    checkpoint: dict
    data: Dataset | None
    torch_vs_ir: Agreement | None
    torch_logits: np.ndarray | None = None


def export_ir(checkpoint: str | Path, dataset: str | None = None, verify: bool = True,
              act_approx: str = "lut", lut_bits: int = 8) -> Exported:
    """Load, fold, and (by default) check PyTorch == IR bit for bit on the test split.

    ``dataset`` defaults to the one the checkpoint was trained on. Models with a fixed-point
    value path (M-BiPer residual) are calibrated on the training split and their agreement
    with PyTorch is measured and reported rather than required to be exact."""
    model, ckpt = load_checkpoint(checkpoint)
    meta = ckpt["meta"]
    name = dataset or meta.get("dataset")
    data = load_dataset(name) if name else None
    graph = fold_model(model, ckpt["spec"], {"source": str(checkpoint),
                                             "test_accuracy": meta.get("test_accuracy")},
                       calib=data.x_train if data is not None else None, approx=act_approx,
                       table_bits=lut_bits)
    if meta.get("dataset") == "digits":
        graph.input_raw_scale = 255.0 / 16.0
    for layer in graph.layers:
        lo_hi = layer.attrs.get("acc_range")
        if lo_hi and max(abs(lo_hi[0]), abs(lo_hi[1])) >= FLOAT32_EXACT:
            raise Bnn2hwError(f"layer {layer.source}: accumulators reach {lo_hi[1]}, beyond float32's "
                              "exact integers (2^24), so PyTorch's own float result is not exact")
    agreement = None
    if verify and data is not None:
        agreement = compare_torch_ir(model, graph, data.x_test)
        if not graph.meta.get("fixed_point") and not agreement.exact:
            raise Bnn2hwError(f"{checkpoint}: IR disagrees with PyTorch on {name}: {agreement.to_dict()}")
    torch_logits = None
    if agreement is not None:
        from ..train import predict

        torch_logits = predict(model, data.x_test)
    return Exported(graph, model, ckpt, data, agreement, torch_logits)


def test_inputs(exp: Exported, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    if exp.data is None:
        raise Bnn2hwError("no data set to verify on (pass --dataset)")
    x, y = exp.data.x_test, exp.data.y_test
    return (x[:limit], y[:limit]) if limit else (x, y)
