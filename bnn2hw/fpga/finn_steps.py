# SPDX-License-Identifier: MIT
"""Three FINN build steps that take bnn2hw's residual graphs (:mod:`bnn2hw.fpga.residual_onnx`)
through FINN v0.10.1 and FINN dev; they replace ``step_streamline``, ``step_convert_to_hw`` and
``step_target_fps_parallelization`` in FINN's step list (:func:`residual_steps`). Imports FINN only when called.

* :func:`step_bnn2hw_streamline`: FINN's ``step_streamline``, then every ``Im2Col`` whose input
  became ``BINARY`` (the XNOR rewrite) and that pads with the bipolar -1 pads with the bit 0
  instead (the same value: bit 0 = -1). Invariant: the streamlined graph computes what the
  exported one does, and FINN's ``InferConvInpGen`` (which asserts ``pad_value == 0``) accepts it.
  FINN's streamlined_python verification runs after the fix.
* :func:`step_bnn2hw_convert_to_hw`: FINN's ``step_convert_to_hw`` plus the layers its v0.10.1
  version does not infer: ``AddStreams`` (dev: ``ElementwiseAdd``, FINN dev's replacement),
  ``GlobalAccPool`` (converted first: dev's add inference takes every ``Mul`` too) (its ``Mul(1/(H*W))`` cancels our ``Mul(H*W)``
  and both are removed), ``ChannelwiseOp`` (dev: ``ElementwiseMul``; the ±1 channel sign in front of a padded conv's
  threshold), ``Thresholding`` and ``DuplicateStreams``. Invariant: every node between the
  input ``Transpose`` and the output is a FINN HW layer.
* :func:`step_bnn2hw_set_folding`: FINN's SetFolding for ``target_fps``, then bnn2hw's MVAU
  folding by MVAU shape (FINN renames nodes, so names cannot key it).
"""

from __future__ import annotations

import dataclasses

import numpy as np


def fix_binary_padding(model):
    """Im2Col on a BINARY stream with pad_value -1 -> pad_value 0 (the bit of -1)."""
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.registry import getCustomOp

    for n in model.get_nodes_by_op_type("Im2Col"):
        inst = getCustomOp(n)
        if model.get_tensor_datatype(n.input[0]) == DataType["BINARY"] and inst.get_nodeattr("pad_value") == -1:
            inst.set_nodeattr("pad_value", 0)
    return model


def step_bnn2hw_streamline(model, cfg):
    """FINN's step_streamline + :func:`fix_binary_padding`, then FINN's verification."""
    from finn.builder import build_dataflow_steps as steps
    from finn.builder.build_dataflow_config import VerificationStepType

    streamlined = VerificationStepType.STREAMLINED_PYTHON
    want = streamlined in cfg._resolve_verification_steps()
    inner = dataclasses.replace(cfg, verify_steps=[s for s in (cfg.verify_steps or []) if s != streamlined
                                                   and s != streamlined.value])
    model = steps.step_streamline(model, inner)
    model = fix_binary_padding(model)
    if want:
        steps.verify_step(model, cfg, "streamlined_python", need_parent=False)
    return model


def _remove_unit_muls(model):
    """Collapse Mul -> Mul chains and drop multiplications by exactly 1 (GlobalAccPool's
    1/(H*W) against our H*W)."""
    from finn.transformation.streamline.collapse_repeated import CollapseRepeatedMul
    from finn.transformation.streamline.reorder import MoveScalarLinearPastInvariants, MoveScalarMulPastMatMul
    from qonnx.transformation.general import RemoveUnusedTensors
    from qonnx.transformation.remove import RemoveIdentityOps

    for t in (MoveScalarLinearPastInvariants(), MoveScalarMulPastMatMul(), CollapseRepeatedMul()):
        model = model.transform(t)
    for n in model.get_nodes_by_op_type("Mul"):  # float32 1/64 * 64 is exactly 1 for powers of two
        c = model.get_initializer(n.input[1])
        if c is not None and np.all(np.abs(c - 1.0) < 1e-6):
            model.set_initializer(n.input[1], np.ones_like(c))
    model = model.transform(RemoveIdentityOps())
    return model.transform(RemoveUnusedTensors())


def step_bnn2hw_convert_to_hw(model, cfg):
    """FINN's step_convert_to_hw plus AddStreams, GlobalAccPool, ChannelwiseOp, Thresholding,
    DuplicateStreams (module doc)."""
    from finn.builder import build_dataflow_steps as steps
    from finn.transformation.fpgadataflow import convert_to_hw_layers as to_hw
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.general import GiveUniqueNodeNames
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.infer_datatypes import InferDataTypes

    model = model.transform(to_hw.InferGlobalAccPoolLayer())
    model = _remove_unit_muls(model).transform(InferDataTypes())
    # v0.10.1: AddStreams; dev: InferAddStreamsLayer delegates to ElementwiseAdd (and would take
    # the pool's Muls too, hence the pool first)
    model = model.transform(to_hw.InferAddStreamsLayer())
    model = model.transform(to_hw.InferChannelwiseLinearLayer())
    for n in model.graph.node:  # dev: type the elementwise outputs from their inputs (INT32 otherwise),
        if n.op_type.startswith("Elementwise"):  # so the thresholds behind them are not 33 bits wide
            getCustomOp(n).minimize_accumulator_width(model)
    model = model.transform(InferDataTypes())
    model = steps.step_convert_to_hw(model, cfg)
    model = model.transform(to_hw.InferThresholdingLayer())
    model = model.transform(to_hw.InferDuplicateStreamsLayer())
    for n in model.get_nodes_by_op_type("GlobalAccPool"):  # created before the sum's type was known
        getCustomOp(n).set_nodeattr("inputDataType", model.get_tensor_datatype(n.input[0]).name)
    model = model.transform(InferDataTypes())
    model = model.transform(GiveUniqueNodeNames())
    return model.transform(InferDataLayouts())


def step_bnn2hw_set_folding(model, cfg):
    """FINN's step_target_fps_parallelization (SetFolding for ``target_fps``), then bnn2hw's
    PE/SIMD on every MVAU whose shape (MW, MH, input vectors) is in ``mvau_folding.json`` next
    to ``cfg.folding_config_file`` (:func:`bnn2hw.fpga.build.mvau_folding`)."""
    import json
    from pathlib import Path

    from finn.builder import build_dataflow_steps as steps
    from qonnx.custom_op.registry import getCustomOp

    model = steps.step_target_fps_parallelization(model, cfg)
    if not cfg.folding_config_file:
        return model
    path = Path(cfg.folding_config_file).with_name("mvau_folding.json")
    if not path.exists():
        return model
    table = {(e["MW"], e["MH"], e["vectors"]): e for e in json.loads(path.read_text())["mvau"]}
    for n in model.graph.node:
        if not n.op_type.startswith("MVAU"):
            continue
        inst = getCustomOp(n)
        key = (inst.get_nodeattr("MW"), inst.get_nodeattr("MH"), int(np.prod(inst.get_nodeattr("numInputVectors"))))
        if key in table:
            inst.set_nodeattr("PE", table[key]["PE"])
            inst.set_nodeattr("SIMD", table[key]["SIMD"])
    return model


def residual_steps(estimate_only: bool = True) -> list:
    """FINN's step list with the two bnn2hw steps in place of step_streamline and
    step_convert_to_hw."""
    from finn.builder.build_dataflow_config import default_build_dataflow_steps, estimate_only_dataflow_steps

    base = estimate_only_dataflow_steps if estimate_only else default_build_dataflow_steps
    swap = {"step_streamline": step_bnn2hw_streamline, "step_convert_to_hw": step_bnn2hw_convert_to_hw,
            "step_target_fps_parallelization": step_bnn2hw_set_folding}
    return [swap.get(s, s) if isinstance(s, str) else s for s in base]
