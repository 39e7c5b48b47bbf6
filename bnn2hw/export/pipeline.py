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
from ..ir.validate import validate
from .fold import fold_model
from .verify import Agreement, compare

FLOAT32_EXACT = 2 ** 24


@dataclass
class Exported:
    graph: Graph
    model: object
    checkpoint: dict
    data: Dataset | None
    torch_vs_ir: Agreement | None
    torch_logits: np.ndarray | None = None
    reference: dict | None = None  # a front end's own reference check (QONNX: qonnx's execution)


def verification_data(checkpoint: str | Path, meta: dict, dataset: str | None) -> Dataset:
    """The data set to verify on: ``dataset`` if given, else the one recorded at training time,
    loaded with the recorded options (image size, channels). Its rows must fit the model."""
    name = dataset or meta.get("dataset")
    if not name:
        raise Bnn2hwError(f"{checkpoint}: the checkpoint records no data set; pass --dataset "
                          "(or --no-verify)")
    opts = dict(meta.get("data") or {})
    if dataset is None and name != "digits" and not Path(name).exists():
        raise Bnn2hwError(f"{checkpoint} was trained on {name!r}, which does not exist here; pass "
                          "--dataset PATH to verify on it (or --no-verify)")
    data = load_dataset(name, image_size=opts.get("image_size"), channels=opts.get("channels", 1))
    want = tuple(meta.get("input", {}).get("shape") or ())
    if want and tuple(data.in_shape) != want:
        raise Bnn2hwError(f"data set {name!r} has rows of shape {list(data.in_shape)}, but {checkpoint} "
                          f"takes {list(want)}")
    return data


def export_ir(checkpoint: str | Path, dataset: str | None = None, verify: bool = True,
              act_approx: str = "lut", lut_bits: int = 8, need_data: bool = True) -> Exported:
    """Load, fold, validate, and (by default) check PyTorch == IR bit for bit on the test split.

    ``dataset`` defaults to the one the checkpoint was trained on. Models with a fixed-point
    value path (M-BiPer residual) are calibrated on the training split and their agreement
    with PyTorch is measured and reported rather than required to be exact. ``need_data=False``
    folds without data (only models without a fixed-point path can). A ``.onnx`` file goes
    through the QONNX front end (:func:`bnn2hw.frontends.qonnx_verify.export_qonnx_ir`)."""
    from ..frontends import is_qonnx_path

    if is_qonnx_path(checkpoint):
        from ..frontends.qonnx_verify import export_qonnx_ir

        return export_qonnx_ir(checkpoint, dataset, verify=verify, need_data=need_data)
    model, ckpt = load_checkpoint(checkpoint, require_finite=True)
    meta = ckpt["meta"]
    want = tuple(meta.get("input", {}).get("shape") or ())
    spec_shape = tuple(int(d) for d in ckpt["spec"].get("in_shape", ()))
    if want and spec_shape and want != spec_shape:
        raise Bnn2hwError(f"{checkpoint}: metadata input shape {list(want)} differs from the model's "
                          f"{list(spec_shape)}")
    data = verification_data(checkpoint, meta, dataset) if (need_data or dataset) else None
    name = data.name if data is not None else None
    from .fold_official import is_official

    if is_official(ckpt["spec"]):
        return _export_official(checkpoint, model, ckpt, data, verify)
    float_model, calibration = None, None
    if _float_stream(model):
        if data is None:
            raise Bnn2hwError(f"{checkpoint}: a float-stream {ckpt['spec'].get('arch')} is exported through "
                              "calibration of a fixed-point stream and needs data (drop --no-verify, or "
                              "pass a dataset)")
        from .fold_residual import calibrate_stream

        float_model = model
        model, spec_q, calibration = calibrate_stream(model, ckpt["spec"], data.x_train)
    graph = fold_model(model, ckpt["spec"] if float_model is None else spec_q,
                       {"source": str(checkpoint), "test_accuracy": meta.get("test_accuracy")},
                       calib=data.x_train if data is not None else None, approx=act_approx,
                       table_bits=lut_bits)
    if meta.get("dataset") == "digits":
        graph.input_raw_scale = 255.0 / 16.0
    validate(graph)
    for layer in graph.layers:
        lo_hi = layer.attrs.get("acc_range")
        if lo_hi and max(abs(lo_hi[0]), abs(lo_hi[1])) >= FLOAT32_EXACT:
            raise Bnn2hwError(f"layer {layer.source}: accumulators reach {lo_hi[1]}, beyond float32's "
                              "exact integers (2^24), so PyTorch's own float result is not exact")
    agreement = None
    if verify and data is not None:
        agreement = compare(model, graph, data.x_test)
        if not graph.meta.get("fixed_point") and not agreement.exact:
            raise Bnn2hwError(f"{checkpoint}: IR disagrees with PyTorch on {name}: {agreement.to_dict()}")
    if float_model is not None:
        _report_calibration(float_model, graph, data, calibration)
    torch_logits = None
    if agreement is not None:  # the comparison's own forward pass (one pass, not two)
        torch_logits = agreement.torch_logits
    return Exported(graph, model, ckpt, data, agreement, torch_logits)


def _export_official(checkpoint, model, ckpt: dict, data: Dataset | None, verify: bool) -> Exported:
    """An imported official BiPer checkpoint (:mod:`bnn2hw.export.fold_official`): the IR must
    equal the quantized twin on every stream integer, bit and integer logit of the test split;
    the float model's accuracy and class agreement against the IR are reported."""
    from .fold_official import export_official
    from .verify import compare_residual

    graph, twin, info = export_official(model, ckpt["spec"], {"source": str(checkpoint)},
                                        x_calib=data.x_train if data is not None else None)
    validate(graph)
    agreement = None
    if verify and data is not None:
        agreement = compare_residual(twin, graph, data.x_test)
        if not agreement.exact:
            raise Bnn2hwError(f"{checkpoint}: the IR disagrees with the quantized twin on {data.name}: "
                              f"{agreement.to_dict()}")
        info["twin_vs_ir"] = {k: v for k, v in agreement.to_dict().items() if k != "differing_per_layer"}
        # the twin's float logits are the IR's (integer logits equal, same affine: checked above)
        info = _calibration_metrics(model, graph, data, info, ir_logits=agreement.torch_logits)
        import sys

        m = graph.meta
        print(f"official BiPer {m['arch']} -> fixed point: {info['stream_bits']}-bit stream Q{info['stream_frac']} "
              f"({info['format']}), int8 first/last layers, input padded with pixels {m['pad_u8']} (max error "
              f"{max(m['pad_error_normalized'] or [0.0]):.3g} per padded tap, normalized); IR == quantized twin on "
              f"every stream integer, bit and integer logit of {agreement.samples} test samples; test accuracy "
              f"{info['float_accuracy']:.4f} (official float model) -> {info['ir_accuracy']:.4f} (IR), class "
              f"agreement {info['class_agreement']:.4f}", file=sys.stderr)
    return Exported(graph, twin, ckpt, data, agreement, agreement.torch_logits if agreement else None,
                    reference=graph.meta.get("calibration"))


def _float_stream(model) -> bool:
    from ..nn.residual import ResidualBNN

    return isinstance(model, ResidualBNN) and not model.bits


def _report_calibration(float_model, graph: Graph, data: Dataset, info: dict) -> None:
    """Into ``graph.meta["calibration"]``: the stream format chosen and the float model's test
    accuracy and class agreement against the calibrated IR (which equals the quantized model
    exactly, checked by the caller)."""
    info = _calibration_metrics(float_model, graph, data, info)
    import sys

    print(f"calibrated the float residual stream to {info['stream_bits']} bits (Q{info['stream_frac']}, "
          f"max |stream| {info['max_abs_stream']:.3g} on {info['calibration_samples']} training samples): "
          f"test accuracy {info['float_accuracy']:.4f} (float) -> {info['ir_accuracy']:.4f} (IR), class "
          f"agreement {info['class_agreement']:.4f}", file=sys.stderr)


def _calibration_metrics(float_model, graph: Graph, data: Dataset, info: dict, ir_logits=None) -> dict:
    """``info`` plus the float model's and the IR's test accuracy and their class agreement, also
    stored as ``graph.meta["calibration"]``. ``ir_logits``: the IR's float logits on the test
    split when the caller has them (a reference proven equal to the IR), else computed."""
    from ..ir import execute
    from ..train import predict

    x, y = data.x_test, data.y_test
    float_logits = predict(float_model, x)
    if ir_logits is None:
        ir_logits = np.concatenate([execute.run(graph, x[i:i + 256]).logits for i in range(0, len(x), 256)])
    info = {**info, "float_accuracy": float((float_logits.argmax(1) == y).mean()),
            "ir_accuracy": float((ir_logits.argmax(1) == y).mean()),
            "class_agreement": float((float_logits.argmax(1) == ir_logits.argmax(1)).mean()),
            "test_samples": int(len(x))}
    graph.meta["calibration"] = info
    return info


def test_inputs(exp: Exported, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    if exp.data is None:
        raise Bnn2hwError("no data set to verify on (pass --dataset, or drop --no-verify)")
    x, y = exp.data.x_test, exp.data.y_test
    if limit:
        x, y = x[:limit], (y[:limit] if y is not None else None)
    return x, y
