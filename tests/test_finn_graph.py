# SPDX-License-Identifier: MIT
"""The FINN-ready graph without FINN (normal CI): what the accelerator returns, for models with
negative class scales, and the per-FINN-version folding/report (issue 8 defect 9, issue 14).

``tests/test_finn.py`` runs the same graphs through FINN itself where FINN is importable.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from finn_helpers import NEGATED_CLASSES, negate_classes

from bnn2hw.export.fold import fold_model
from bnn2hw.fpga import build
from bnn2hw.fpga.onnx_export import OUTPUT_NAME, build_onnx, logit_affine, run_qonnx
from bnn2hw.ir import execute
from bnn2hw.nn.models import build_model, default_spec


def _neg_graph(ckpt):
    _, model, spec = ckpt
    graph = fold_model(negate_classes(model).eval(), spec)
    scale = graph.layers[-1].arrays["scale"]
    assert [c for c in range(len(scale)) if scale[c] < 0] == list(NEGATED_CLASSES), scale
    return graph


@pytest.mark.parametrize("arch,n", [("mlp", None), ("cnn", 120)])
def test_negative_scale_finn_graph_outputs_the_integer_logits(arch, n, mlp_ckpt, cnn_ckpt, digits):
    """qonnx executes model_finn.onnx; its only output equals the IR's integer logits for every
    class, including the negative-scale ones, and the stored host affine gives the IR's logits
    (MLP: the whole 450-image test split; CNN: the first 120, qonnx runs convs slowly)."""
    graph = _neg_graph(mlp_ckpt if arch == "mlp" else cnn_ckpt)
    x = digits.x_test[:n]
    ref = execute.run(graph, x)
    model = build_onnx(graph, "finn")
    assert [o.name for o in model.graph.output] == [OUTPUT_NAME]
    assert not [nd for nd in model.graph.node if nd.op_type in ("Mul", "Add")], "the affine must stay on the host"
    logits, ints = run_qonnx(model, x)
    assert len(ints) == len(digits.x_test if n is None else x)
    assert np.array_equal(ints, ref.int_logits), "FINN graph output != IR integer logits (seeds 3/5, conftest)"
    scale, bias = logit_affine(model)
    assert np.array_equal(scale, graph.layers[-1].arrays["scale"]) and (scale[list(NEGATED_CLASSES)] < 0).all()
    np.testing.assert_allclose(logits, ref.logits, rtol=0, atol=1e-9)
    assert np.array_equal(logits.argmax(1), ref.logits.argmax(1))


def test_xnor_rewrite_keeps_last_layer_and_integer_thresholds(mlp_ckpt, digits):
    """qonnx's ConvertBipolarMatMulToXnorPopcount (the rewrite FINN's step_streamline runs):
    hidden binary layers become XnorPopcountMatMul, the last layer stays a MatMul (INT2 weights),
    every threshold after an XNOR layer maps to an integer popcount threshold (T + K even), and
    the rewritten graph still outputs the IR's integer logits."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.bipolar_to_xnor import ConvertBipolarMatMulToXnorPopcount
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    graph = _neg_graph(mlp_ckpt)
    before = ModelWrapper(build_onnx(graph, "finn")).transform(InferShapes())
    for nd in before.graph.node:
        if nd.op_type == "MultiThreshold":
            prod = before.find_producer(nd.input[0])
            if before.get_tensor_datatype(prod.input[0]).name == "BIPOLAR":
                k = before.get_initializer(prod.input[1]).shape[0]
                t = before.get_initializer(nd.input[1])
                assert ((t + k) % 2 == 0).all(), f"{nd.name}: (T + K) odd: FINN would get half-integer thresholds"
    after = before.transform(ConvertBipolarMatMulToXnorPopcount()).transform(InferDataTypes())
    ops = [nd.op_type for nd in after.graph.node if "MatMul" in nd.op_type]
    assert ops == ["MatMul"] + ["XnorPopcountMatMul"] * (len(ops) - 2) + ["MatMul"], ops
    assert after.graph.node[-1].op_type == "MatMul"
    ref = execute.run(graph, digits.x_test[:60])
    shape = after.get_tensor_shape(after.graph.input[0].name)
    got = [execute_onnx(after, {"global_in": r.reshape(shape).astype(np.float32)})[OUTPUT_NAME][0]
           for r in digits.x_test[:60]]
    assert np.array_equal(np.rint(got).astype(np.int64), ref.int_logits)


# FINN's own estimates (estimate_layer_cycles.json) for a conv(16,3)-pool-conv(32,2)-pool-fc32-fc10
# digits CNN folded for 1 M frames/s at 100 MHz, measured with FINN v0.10.1 (9d29968, qonnx fd61cfe)
# and FINN dev (73ba5ed6, qonnx f5c9819); hw/FINN_NOTES.md "Local check" has the commands.
FINN_CYCLES = {
    "0.10": {"ConvolutionInputGenerator_rtl_0": 66, "MVAU_hls_0": 72, "StreamingMaxPool_hls_0": 45,
             "ConvolutionInputGenerator_rtl_1": 11, "MVAU_hls_1": 64, "StreamingMaxPool_hls_1": 5,
             "MVAU_hls_2": 64, "MVAU_hls_3": 80},
    "dev": {"ConvolutionInputGenerator_rtl_0": 66, "MVAU_hls_0": 72, "ConvolutionInputGenerator_rtl_1": 50,
            "Pool_hls_0": 36, "ConvolutionInputGenerator_rtl_2": 11, "MVAU_hls_1": 64,
            "ConvolutionInputGenerator_rtl_3": 10, "Pool_hls_1": 4, "MVAU_hls_2": 64, "MVAU_hls_3": 80},
}
FINN_LATENCY = {"0.10": 407, "dev": 457}


@pytest.mark.parametrize("version", build.FINN_VERSIONS)
def test_folding_and_report_name_every_finn_layer(version, digits):
    """Node names in graph order (dev numbers the pools' window generators among the convs'),
    and the report's cycles are FINN's estimates for each version."""
    torch.manual_seed(0)
    spec = default_spec("cnn", digits.in_shape, digits.num_classes)
    spec["convs"], spec["hidden"] = [[16, 3, 0, True], [32, 2, 0, True]], [32]
    graph = fold_model(build_model(spec).eval(), spec)
    layers = build.choose_folding(build.matmul_layers(graph), 100.0, 1e6)
    report = build.layer_report(graph, layers, 100.0, 1e6, version)
    got = {r["finn_node"]: r["cycles"] for r in report["layers"] + report["other_layers"]}
    assert [n["name"] for n in build.finn_nodes(layers, version)] == list(FINN_CYCLES[version])
    assert got == FINN_CYCLES[version]
    assert report["max_cycles"] == 80 and report["latency_cycles"] == FINN_LATENCY[version]
    cfg = build.folding_config(layers, version)
    assert set(cfg) == {"Defaults"} | (set(FINN_CYCLES[version]) - {"StreamingMaxPool_hls_0", "StreamingMaxPool_hls_1"})
    if version == "dev":
        assert cfg["Pool_hls_0"] == {"PE": 16} and cfg["ConvolutionInputGenerator_rtl_1"]["SIMD"] == 16


def test_unknown_finn_version_is_refused():
    from bnn2hw.errors import Bnn2hwError

    with pytest.raises(Bnn2hwError, match="unknown FINN version '0.9'"):
        build.check_finn_version("0.9")


def test_docker_command_quotes_the_path():
    odd = Path("/tmp/my builds/it's $HOME; rm -rf x")
    cmd = build.docker_command(odd)
    assert shlex.split(cmd)[-1] == str(odd)
    assert shlex.split(cmd)[:2] == ["FINN_XILINX_PATH=/opt/Xilinx", "FINN_XILINX_VERSION=2022.2"]
    assert shlex.split(cmd)[-2] == "bnn2hw-finn"  # the dev image (Dockerfile default)
    assert shlex.split(build.docker_command(odd, "0.10"))[-2:] == ["bnn2hw-finn:0.10", str(odd)]
