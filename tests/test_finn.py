# SPDX-License-Identifier: MIT
"""bnn2hw's exported FINN graph through FINN's own steps (needs FINN importable: v0.10.1 or dev).

Four digits models (seed 11, 1+1 epochs) are exported with ``export_fpga`` for the FINN version
that is importable (``--finn-version``: ``0.10`` or ``dev``) and run through FINN's estimate-only
flow (step_qonnx_to_finn ... step_generate_estimate_reports) with the exported
``dataflow_build_config.json`` and ``folding_config.json``:

* ``mlp``: hidden 64,64,64; ``mlp_neg``: the same network with negative output scales for
  classes 0,2,4,6,8 (``finn_helpers.negate_classes``, deterministic); ``cnn_neg``: the default
  CNN (conv-conv-pool-fc-fc) with the same negated classes; ``cnn_pools``: conv-pool-conv-pool.

The tests check that

* FINN's own python verification of the initial and streamlined graphs passes (16 samples);
* the host side is empty (MLP) or only the input's NCHW->NHWC ``Transpose`` (CNN): the dataflow
  partition's output is the graph output, i.e. the accelerator returns the integer logits;
* FINN's python execution of the streamlined and the HW graph gives the IR's integer logits
  exactly on the **whole test split (450 images)**, for every class, negative scales included;
* FINN's cycle estimate of every HW layer equals ``layer_report.json``, and our folding is applied.

Without FINN the module skips with a reason naming FINN. To run it (hw/FINN_NOTES.md, "Local check")::

    FINN_ROOT=/tmp/finn_src/v0.10.1 /tmp/finnvenv/bin/python -m pytest tests/test_finn.py
    FINN_ROOT=/tmp/finn_src/dev /tmp/finnvenv_dev/bin/python -m pytest tests/test_finn.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.finn
SKIP_REASON = "FINN is not importable (run in FINN's Docker image or a venv of hw/FINN_NOTES.md)"
pytest.importorskip("finn", reason=SKIP_REASON)

REPO = Path(__file__).resolve().parents[1]
SEED = 11
MODELS = {
    "mlp": ("mlp", {"hidden": [64, 64, 64]}, False),
    "mlp_neg": ("mlp", {"hidden": [64, 64, 64]}, True),
    "cnn_neg": ("cnn", {}, True),
    "cnn_pools": ("cnn", {"convs": [[16, 3, 0, True], [32, 2, 0, True]], "hidden": [32]}, False),
}


def _import_finn_builder() -> str:
    """FINN v0.10.x/dev import pyverilator/torchvision at module load; neither is needed for the
    analytical steps, so missing ones are stubbed (hw/finn_local_check.py). Returns the version."""
    from bnn2hw.fpga.build import importable_finn_version

    if "finn.builder.build_dataflow" in sys.modules:
        return importable_finn_version()
    sys.path.insert(0, str(REPO / "hw"))
    try:
        from finn_local_check import _stub_missing_modules

        _stub_missing_modules()
        import finn.builder.build_dataflow  # noqa: F401
    except Exception as e:
        pytest.skip(f"FINN's builder (finn.builder.build_dataflow) does not import: {e}")
    finally:
        sys.path.pop(0)
    return importable_finn_version()


@pytest.fixture(scope="module", params=list(MODELS))
def run(request, tmp_path_factory, digits):
    """Train (or reuse), export for the importable FINN, run FINN's estimate-only flow."""
    return _train_export_finn(tmp_path_factory, digits, request.param)


_TRAINED: dict = {}


def _run_finn_build(build, cfg, tmp, failure: str):
    """FINN's ``build_dataflow_cfg`` on ``build/model_finn.onnx`` from inside ``build`` (the exported
    config's paths are relative to it, as for build_dataflow), with FINN_BUILD_DIR under ``tmp``;
    asserts success (with the log's tail after ``failure``) and returns the output folder."""
    from finn.builder.build_dataflow import build_dataflow_cfg

    old_cwd, old_env = os.getcwd(), os.environ.get("FINN_BUILD_DIR")
    os.environ["FINN_BUILD_DIR"] = str(tmp / "finn_tmp")
    os.makedirs(os.environ["FINN_BUILD_DIR"], exist_ok=True)
    os.chdir(build)
    try:
        ret = build_dataflow_cfg("model_finn.onnx", cfg)
    finally:
        os.chdir(old_cwd)
        if old_env is None:
            os.environ.pop("FINN_BUILD_DIR", None)
        else:
            os.environ["FINN_BUILD_DIR"] = old_env
    out = build / cfg.output_dir
    log = out / "build_dataflow.log"
    assert ret == 0, f"{failure}:\n" + (
        "\n".join(log.read_text().splitlines()[-30:]) if log.exists() else "(no log)")
    return out


def _train_export_finn(tmp_path_factory, data, key: str) -> dict:
    version = _import_finn_builder()
    import torch
    from finn.builder.build_dataflow_config import DataflowBuildConfig, estimate_only_dataflow_steps
    from finn_helpers import negate_classes

    from bnn2hw.checkpoint import save_checkpoint
    from bnn2hw.export.pipeline import export_ir
    from bnn2hw.fpga.cli import export_fpga
    from bnn2hw.ir import execute
    from bnn2hw.nn.models import build_model, default_spec
    from bnn2hw.train import TrainConfig, seed_everything, train_two_stage

    arch, over, negate = MODELS[key]
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp(f"finn_{key}")
    spec = default_spec(arch, data.in_shape, data.num_classes)
    spec.update(over)
    tkey = json.dumps(spec, sort_keys=True)
    if tkey not in _TRAINED:
        seed_everything(SEED)
        model = build_model(spec)
        train_two_stage(model, data, TrainConfig(epochs1=1, epochs2=1, seed=SEED), progress=False)
        _TRAINED[tkey] = model
    model = _TRAINED[tkey]
    if negate:
        model = negate_classes(model)
    ckpt = tmp / "model.pt"
    save_checkpoint(ckpt, model, spec, {"dataset": "digits", "test_accuracy": 0.0})
    build = tmp / "build"
    summary = export_fpga(ckpt, "pynq-z2", build, clock_mhz=100.0, target_fps=1e6, run_finn=False,
                          echo=lambda s: None, finn_version=version)
    assert summary["samples"] == len(data.x_test) == 450

    cfg = DataflowBuildConfig.from_json((build / "dataflow_build_config.json").read_text())
    cfg.steps = estimate_only_dataflow_steps
    cfg.generate_outputs = ["estimate_reports"]
    cfg.enable_build_pdb_debug = False
    out = _run_finn_build(build, cfg, tmp, f"FINN {version}'s build failed on bnn2hw's {key} export")
    graph = export_ir(ckpt).graph
    return {"key": key, "arch": arch, "negate": negate, "version": version, "build": build, "out": out,
            "inter": out / "intermediate_models", "graph": graph,
            "ref": execute.run(graph, data.x_test), "x": data.x_test}


def _model(run, step):
    from qonnx.core.modelwrapper import ModelWrapper

    return ModelWrapper(str(run["inter"] / f"{step}.onnx"))


def test_negated_classes_have_negative_scales(run):
    from finn_helpers import NEGATED_CLASSES

    scale = run["graph"].layers[-1].arrays["scale"]
    neg = [c for c in range(len(scale)) if scale[c] < 0]
    assert neg == (list(NEGATED_CLASSES) if run["negate"] else neg)
    if run["negate"]:
        assert json.loads((run["build"] / "logit_affine.json").read_text())["scale"] == list(scale)


def test_finn_verification_passes(run):
    files = sorted(p.name for p in (run["out"] / "verification_output").glob("*.npy"))
    assert not [f for f in files if "FAIL" in f], files
    for step in ("initial_python", "streamlined_python"):
        ok = [f for f in files if f.startswith(f"verify_{step}_") and "SUCCESS" in f]
        assert len(ok) == 16, (step, files)


def test_accelerator_output_is_the_graph_output(run):
    """Nothing of ours runs after the dataflow partition: its output is ``global_out``."""
    from qonnx.custom_op.registry import getCustomOp

    parent = _model(run, "dataflow_parent")
    ops = [n.op_type for n in parent.graph.node]
    assert ops == (["StreamingDataflowPartition"] if run["arch"] == "mlp"
                   else ["Transpose", "StreamingDataflowPartition"]), ops
    assert parent.graph.node[-1].output[0] == parent.graph.output[0].name
    child = _model(run, "step_generate_estimate_reports")  # the partition's content
    kinds = {n.op_type for n in child.graph.node}
    allowed = {"MVAU_hls", "ConvolutionInputGenerator_rtl", "StreamingMaxPool_hls", "Pool_hls"}
    assert kinds <= allowed, kinds
    mvaus = [getCustomOp(n) for n in child.graph.node if n.op_type == "MVAU_hls"]
    last = mvaus[-1]
    assert (last.get_nodeattr("inputDataType"), last.get_nodeattr("weightDataType"),
            last.get_nodeattr("binaryXnorMode"), last.get_nodeattr("noActivation")) == ("BIPOLAR", "INT2", 0, 1)
    assert last.get_nodeattr("outputDataType").startswith("INT")
    for m in mvaus[1:-1]:
        assert m.get_nodeattr("binaryXnorMode") == 1 and m.get_nodeattr("noActivation") == 0


def _flatten_mvau_inputs(model):
    """After ``RemoveCNVtoFCFlatten`` the first dense MVAU of a CNN reads the 4-D NHWC tensor; on
    the hardware that is one flat stream in (y, x, c) order, and FINN dev's python MVAU flattens it
    itself, but v0.10.1's asserts on the shape (``xnorpopcount.py``). Insert the row-major
    ``Reshape`` to [1, MW] that the stream implies (a no-op where the input is already flat)."""
    from onnx import helper
    from qonnx.custom_op.registry import getCustomOp

    for n in [n for n in model.graph.node if n.op_type.startswith("MVAU")]:
        shape = model.get_tensor_shape(n.input[0])
        mw = getCustomOp(n).get_nodeattr("MW")
        if len(shape) > 2 and shape[-1] != mw and int(np.prod(shape[1:])) == mw:
            flat, target = n.input[0] + "_flat", n.input[0] + "_flat_shape"
            model.set_initializer(target, np.array([1, mw], dtype=np.int64))
            model.graph.node.insert(list(model.graph.node).index(n),
                                    helper.make_node("Reshape", [n.input[0], target], [flat]))
            model.set_tensor_shape(flat, [1, mw])
            model.set_tensor_datatype(flat, model.get_tensor_datatype(n.input[0]))
            n.input[0] = flat
    return model


@pytest.mark.parametrize("step", ["step_streamline", "step_convert_to_hw"])
def test_python_execution_equals_ir_on_test_split(run, step):
    """FINN's python execution gives the IR's integer logits for all 450 test images."""
    from qonnx.core.onnx_exec import execute_onnx

    model = _flatten_mvau_inputs(_model(run, step))
    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    shape = model.get_tensor_shape(iname)
    got = np.array([execute_onnx(model, {iname: row.reshape(shape).astype(np.float32)})[oname].reshape(-1)
                    for row in run["x"]])
    ints = np.rint(got).astype(np.int64)
    assert np.array_equal(got, ints), f"{step}: non-integer accelerator output"
    ref = run["ref"]
    bad = np.argwhere(ints != ref.int_logits)
    assert len(bad) == 0, (f"FINN {run['version']} {run['key']} {step}: {len(bad)} integer logits differ "
                           f"from the IR (seed {SEED}), first (image, class): {bad[:5].tolist()}")


def test_cycle_estimate_equals_layer_report(run):
    from qonnx.custom_op.registry import getCustomOp

    report = json.loads((run["build"] / "layer_report.json").read_text())
    folding = json.loads((run["build"] / "folding_config.json").read_text())
    cycles = json.loads((run["out"] / "report" / "estimate_layer_cycles.json").read_text())
    perf = json.loads((run["out"] / "report" / "estimate_network_performance.json").read_text())
    assert report["finn_version"] == run["version"]
    assert cycles == {r["finn_node"]: r["cycles"] for r in report["layers"] + report["other_layers"]}
    assert perf["max_cycles"] == report["max_cycles"]
    assert perf["critical_path_cycles"] == report["latency_cycles"]
    nodes = _model(run, "step_generate_estimate_reports").graph.node
    assert set(folding) - {"Defaults"} <= {n.name for n in nodes}, "folding entries for absent nodes"
    for n in nodes:
        inst = getCustomOp(n)
        for attr, value in folding.get(n.name, {}).items():
            assert inst.get_nodeattr(attr) == value, (n.name, attr)
    res = json.loads((run["out"] / "report" / "estimate_layer_resources.json").read_text())
    assert set(res) == set(cycles) | {"total"} and res["total"]["LUT"] > 0


# ---------------------------------------------------------------- residual graphs (issue 9)
# Hand-built residual IR graphs (tests/residual_graphs.py, as in test_finn_residual.py) exported
# with write_fpga_build and run through FINN's estimate-only flow with bnn2hw's residual steps
# (bnn2hw/fpga/finn_steps.py): conv_shortcut = padded (-1) 3x3 stride-2 conv + 1x1 stride-2
# shortcut conv, direction -1 stream thresholds, negative multipliers; bits4 = 4-bit streams whose
# residual add saturates (a Thresholding after AddStreams).
RESIDUAL = {"conv_shortcut": (1, {}), "bits4": (3, {"bits": 4, "frac": 2})}


@pytest.fixture(scope="module", params=list(RESIDUAL))
def residual_run(request, tmp_path_factory):
    version = _import_finn_builder()
    from finn.builder.build_dataflow_config import DataflowBuildConfig
    from residual_graphs import residual_graph, saturating_inputs

    from bnn2hw.fpga.cli import write_fpga_build
    from bnn2hw.fpga.finn_steps import residual_steps
    from bnn2hw.ir import execute

    key = request.param
    seed, kw = RESIDUAL[key]
    rng = np.random.default_rng(seed)
    graph = residual_graph(rng, **kw)
    x = saturating_inputs(rng, 10, 8, 3)
    tmp = tmp_path_factory.mktemp(f"finn_res_{key}")
    build = tmp / "build"
    write_fpga_build(graph, "pynq-z2", build, x=x, clock_mhz=100.0, target_fps=20000.0, finn_version=version)
    cfg = DataflowBuildConfig.from_json((build / "dataflow_build_config.json").read_text())
    cfg.steps = residual_steps(estimate_only=True)
    cfg.generate_outputs = ["estimate_reports"]
    cfg.enable_build_pdb_debug = False
    out = _run_finn_build(build, cfg, tmp, f"FINN {version} failed on the residual graph {key}")
    return {"key": key, "version": version, "build": build, "out": out, "inter": out / "intermediate_models",
            "graph": graph, "x": x, "ref": execute.run(graph, x)}


def test_residual_finn_verification_passes(residual_run):
    files = sorted(p.name for p in (residual_run["out"] / "verification_output").glob("*.npy"))
    assert not [f for f in files if "FAIL" in f], files
    for step in ("initial_python", "streamlined_python"):
        assert len([f for f in files if f.startswith(f"verify_{step}_") and "SUCCESS" in f]) == 10, (step, files)


def test_residual_graph_is_one_dataflow_partition_of_finn_residual_layers(residual_run):
    """Host side = the NCHW->NHWC input Transpose only; the partition holds FINN's residual
    pattern: DuplicateStreams for the fan-out, AddStreams (dev: ElementwiseAdd), Thresholding,
    FMPadding for the -1-padded convs, GlobalAccPool, MVAUs."""
    parent = _model(residual_run, "dataflow_parent")
    assert [n.op_type for n in parent.graph.node] == ["Transpose", "StreamingDataflowPartition"]
    kinds = [n.op_type for n in _model(residual_run, "step_generate_estimate_reports").graph.node]
    add = "AddStreams_hls" if residual_run["version"] == "0.10" else "ElementwiseAdd_hls"
    for k in ("DuplicateStreams_hls", add, "Thresholding_rtl", "FMPadding_rtl", "GlobalAccPool_hls", "MVAU_hls"):
        assert k in kinds, (k, kinds)
    # the INT x INT8 head may be specialised to MVAU_rtl (RTL MVU: >= 4-bit signed operands, no thresholds)
    allowed = {"DuplicateStreams_hls", add, "Thresholding_rtl", "FMPadding_rtl", "GlobalAccPool_hls", "MVAU_hls",
               "MVAU_rtl", "ConvolutionInputGenerator_rtl", "DownSampler_hls", "ChannelwiseOp_hls",
               "ElementwiseMul_hls"}
    assert set(kinds) <= allowed, set(kinds) - allowed
    if residual_run["key"] == "bits4":
        assert kinds.count("Thresholding_rtl") >= 2  # the stream thresholds and the add's saturation


@pytest.mark.parametrize("step", ["step_bnn2hw_streamline", "step_bnn2hw_convert_to_hw"])
def test_residual_python_execution_equals_ir(residual_run, step):
    """FINN's python execution of the streamlined and the HW graph gives the IR's integer logits
    on random, all-255, all-0 and checkerboard inputs."""
    from qonnx.core.onnx_exec import execute_onnx

    model = _model(residual_run, step)
    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    got = np.array([execute_onnx(model, {iname: r[None].astype(np.float32)})[oname].reshape(-1)
                    for r in residual_run["x"]])
    assert np.array_equal(got, residual_run["ref"].int_logits), (residual_run["key"], step)


def test_residual_mvau_folding_applied_and_cycles_match(residual_run):
    """Every MVAU got bnn2hw's PE/SIMD (matched by shape) and FINN's cycle estimate equals
    mvau_folding.json's."""
    from qonnx.custom_op.registry import getCustomOp

    fold = json.loads((residual_run["build"] / "mvau_folding.json").read_text())["mvau"]
    table = {(e["MW"], e["MH"], e["vectors"]): e for e in fold}
    cycles = json.loads((residual_run["out"] / "report" / "estimate_layer_cycles.json").read_text())
    mvaus = [n for n in _model(residual_run, "step_generate_estimate_reports").graph.node
             if n.op_type in ("MVAU_hls", "MVAU_rtl")]
    assert len(mvaus) == len(fold)
    for n in mvaus:
        inst = getCustomOp(n)
        e = table[(inst.get_nodeattr("MW"), inst.get_nodeattr("MH"), int(np.prod(inst.get_nodeattr("numInputVectors"))))]
        assert (inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD")) == (e["PE"], e["SIMD"]), n.name
        assert cycles[n.name] == e["cycles"], n.name
