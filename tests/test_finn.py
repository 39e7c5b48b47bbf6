# SPDX-License-Identifier: MIT
"""bnn2hw's exported FINN graph through FINN's own steps (needs FINN importable).

A small digits MLP (hidden 64,64,64, 1+1 epochs) is exported with ``export_fpga`` and run through
FINN's estimate-only flow (step_qonnx_to_finn ... step_generate_estimate_reports) with the
exported ``dataflow_build_config.json`` and ``folding_config.json``. The tests check that

* FINN converts every layer to an MVAU inside the dataflow partition (the float logit Mul/Add
  stay on the host), and its own python verification of the initial and streamlined graphs passes;
* FINN's python execution of the streamlined and HW-converted graphs gives the IR's integer
  logits exactly (logit = 2 * popcount - K for the last XNOR layer) and the IR's classes;
* FINN's cycle estimate per MVAU equals ``layer_report.json`` and the folding is ours.

Without FINN (any interpreter where ``import finn`` fails, e.g. CI) the module skips. To run it:
FINN's Docker image, or the venv of ``hw/FINN_NOTES.md``::

    FINN_ROOT=/tmp/finn_src/v0.10.1 /tmp/finnvenv/bin/python -m pytest tests/test_finn.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.finn
SKIP_REASON = "FINN is not importable (run in FINN's Docker image or the venv of hw/FINN_NOTES.md)"
pytest.importorskip("finn", reason=SKIP_REASON)

REPO = Path(__file__).resolve().parents[1]
HIDDEN = [64, 64, 64]
N_SAMPLES = 24
SEED = 11


def _import_finn_builder():
    """FINN v0.10.x imports pyverilator/torchvision at module load; neither is needed for the
    analytical steps, so missing ones are stubbed (hw/finn_local_check.py)."""
    if "finn.builder.build_dataflow" in sys.modules:
        return
    sys.path.insert(0, str(REPO / "hw"))
    try:
        from finn_local_check import _stub_missing_modules

        _stub_missing_modules()
        import finn.builder.build_dataflow  # noqa: F401
    except Exception as e:
        pytest.skip(f"FINN's builder (finn.builder.build_dataflow) does not import: {e}")
    finally:
        sys.path.pop(0)


@pytest.fixture(scope="module")
def finn_run(tmp_path_factory):
    """Train, export, run FINN's estimate-only flow with the exported config; return paths."""
    return _train_export_finn(tmp_path_factory, "mlp")


@pytest.fixture(scope="module")
def finn_cnn_run(tmp_path_factory):
    """The default digits CNN (no padding): Conv nodes FINN lowers itself, max-pool, dense."""
    return _train_export_finn(tmp_path_factory, "cnn")


def _train_export_finn(tmp_path_factory, arch: str) -> dict:
    _import_finn_builder()
    import torch
    from finn.builder.build_dataflow import build_dataflow_cfg
    from finn.builder.build_dataflow_config import DataflowBuildConfig, estimate_only_dataflow_steps

    from bnn2hw.checkpoint import save_checkpoint
    from bnn2hw.data import load_digits
    from bnn2hw.fpga.cli import export_fpga
    from bnn2hw.nn.models import build_model, default_spec
    from bnn2hw.train import TrainConfig, seed_everything, train_two_stage

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp(f"finn_{arch}")
    data = load_digits()
    spec = default_spec(arch, data.in_shape, data.num_classes)
    if arch == "mlp":
        spec["hidden"] = HIDDEN
    seed_everything(SEED)
    model = build_model(spec)
    train_two_stage(model, data, TrainConfig(epochs1=1, epochs2=1, seed=SEED), progress=False)
    ckpt = tmp / "model.pt"
    save_checkpoint(ckpt, model, spec, {"dataset": "digits", "test_accuracy": 0.0})
    build = tmp / "build"
    export_fpga(ckpt, "pynq-z2", build, clock_mhz=100.0, target_fps=1e6, verify_samples=N_SAMPLES,
                run_finn=False, echo=lambda s: None)

    cfg = DataflowBuildConfig.from_json((build / "dataflow_build_config.json").read_text())
    cfg.steps = estimate_only_dataflow_steps
    cfg.generate_outputs = ["estimate_reports"]
    cfg.enable_build_pdb_debug = False
    old_cwd, old_env = os.getcwd(), os.environ.get("FINN_BUILD_DIR")
    os.environ["FINN_BUILD_DIR"] = str(tmp / "finn_tmp")
    os.makedirs(os.environ["FINN_BUILD_DIR"], exist_ok=True)
    os.chdir(build)  # the exported config's paths are relative to the build dir, as for build_dataflow
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
    assert ret == 0, "FINN's build failed on bnn2hw's export:\n" + (
        "\n".join(log.read_text().splitlines()[-30:]) if log.exists() else "(no log)")
    return {"build": build, "out": out, "inter": out / "intermediate_models", "ckpt": ckpt,
            "x": data.x_test[:N_SAMPLES]}


@pytest.fixture(scope="module")
def reference(finn_run):
    from bnn2hw.export.pipeline import export_ir
    from bnn2hw.ir import execute

    exp = export_ir(finn_run["ckpt"])
    return execute.run(exp.graph, finn_run["x"])


def _model(finn_run, step):
    from qonnx.core.modelwrapper import ModelWrapper

    return ModelWrapper(str(finn_run["inter"] / f"{step}.onnx"))


def test_finn_verification_passes(finn_run):
    files = sorted(p.name for p in (finn_run["out"] / "verification_output").glob("*.npy"))
    assert not [f for f in files if "FAIL" in f], files
    for step in ("initial_python", "streamlined_python"):
        assert any(f.startswith(f"verify_{step}_") and "SUCCESS" in f for f in files), files


def test_only_mvaus_in_dataflow_partition(finn_run):
    from qonnx.custom_op.registry import getCustomOp

    parent = _model(finn_run, "dataflow_parent")
    assert [n.op_type for n in parent.graph.node] == ["StreamingDataflowPartition", "Mul", "Add"]
    hw = _model(finn_run, "step_convert_to_hw")
    assert [n.op_type for n in hw.graph.node] == ["MVAU"] * (len(HIDDEN) + 1) + ["Mul", "Add"]
    child = _model(finn_run, "step_generate_estimate_reports")  # the partition's content
    ops = [n.op_type for n in child.graph.node]
    assert ops == ["MVAU_hls"] * (len(HIDDEN) + 1), ops
    attrs = [{k: getCustomOp(n).get_nodeattr(k) for k in
              ("inputDataType", "weightDataType", "binaryXnorMode", "noActivation")} for n in child.graph.node]
    assert attrs[0] == {"inputDataType": "UINT8", "weightDataType": "BIPOLAR", "binaryXnorMode": 0,
                        "noActivation": 0}
    for a in attrs[1:-1]:
        assert a == {"inputDataType": "BINARY", "weightDataType": "BINARY", "binaryXnorMode": 1,
                     "noActivation": 0}
    assert attrs[-1]["binaryXnorMode"] == 1 and attrs[-1]["noActivation"] == 1


@pytest.mark.parametrize("step,last_op", [("step_streamline", "XnorPopcountMatMul"),
                                          ("step_convert_to_hw", "MVAU")])
def test_python_execution_equals_ir(finn_run, reference, step, last_op):
    """FINN's python execution: popcount p of the last XNOR layer gives 2p - K == IR integer logits."""
    from qonnx.core.onnx_exec import execute_onnx

    model = _model(finn_run, step)
    last = [n for n in model.graph.node if n.op_type == last_op][-1]
    k = model.get_initializer(last.input[1]).shape[0]
    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    shape = model.get_tensor_shape(iname)
    ints, logits = [], []
    for row in finn_run["x"]:
        ctx = execute_onnx(model, {iname: row.reshape(shape).astype(np.float32)}, return_full_exec_context=True)
        ints.append(2 * ctx[last.output[0]][0] - k)
        logits.append(ctx[oname][0])
    ints, logits = np.rint(np.array(ints)).astype(np.int64), np.array(logits)
    assert np.array_equal(ints, reference.int_logits), f"{step}: integer logits differ from the IR (seed {SEED})"
    assert np.array_equal(logits.argmax(1), reference.logits.argmax(1)), f"{step}: classes differ (seed {SEED})"
    np.testing.assert_allclose(logits, reference.logits, rtol=1e-5, atol=1e-4)


def test_cycle_estimate_equals_layer_report(finn_run):
    from qonnx.custom_op.registry import getCustomOp

    report = json.loads((finn_run["build"] / "layer_report.json").read_text())
    folding = json.loads((finn_run["build"] / "folding_config.json").read_text())
    cycles = json.loads((finn_run["out"] / "report" / "estimate_layer_cycles.json").read_text())
    perf = json.loads((finn_run["out"] / "report" / "estimate_network_performance.json").read_text())
    assert cycles == {f"MVAU_hls_{k}": r["cycles"] for k, r in enumerate(report["layers"])}
    assert perf["max_cycles"] == report["max_cycles"]
    assert perf["critical_path_cycles"] == report["latency_cycles"]
    for n in _model(finn_run, "step_generate_estimate_reports").graph.node:
        inst = getCustomOp(n)
        assert (inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD")) == \
            (folding[n.name]["PE"], folding[n.name]["SIMD"]), n.name
    res = json.loads((finn_run["out"] / "report" / "estimate_layer_resources.json").read_text())
    assert set(res) == set(cycles) | {"total"} and res["total"]["LUT"] > 0


def test_cnn_through_finn(finn_cnn_run):
    """The CNN export: FINN accepts it unmodified, verifies it, executes the streamlined graph to
    the IR's integer logits, and its cycle estimates (MVAUs, sliding windows, pooling) equal our report."""
    from bnn2hw.export.pipeline import export_ir
    from bnn2hw.ir import execute
    from qonnx.core.onnx_exec import execute_onnx

    files = sorted(p.name for p in (finn_cnn_run["out"] / "verification_output").glob("*.npy"))
    assert files and not [f for f in files if "FAIL" in f], files
    ref = execute.run(export_ir(finn_cnn_run["ckpt"]).graph, finn_cnn_run["x"])
    model = _model(finn_cnn_run, "step_streamline")
    last = [n for n in model.graph.node if n.op_type == "XnorPopcountMatMul"][-1]
    k = model.get_initializer(last.input[1]).shape[0]
    iname = model.graph.input[0].name
    shape = model.get_tensor_shape(iname)
    ints = [2 * execute_onnx(model, {iname: row.reshape(shape).astype(np.float32)},
                             return_full_exec_context=True)[last.output[0]][0] - k for row in finn_cnn_run["x"]]
    assert np.array_equal(np.rint(np.array(ints)).astype(np.int64), ref.int_logits), f"seed {SEED}"
    report = json.loads((finn_cnn_run["build"] / "layer_report.json").read_text())
    perf = json.loads((finn_cnn_run["out"] / "report" / "estimate_network_performance.json").read_text())
    assert perf["max_cycles"] == report["max_cycles"]
    assert perf["critical_path_cycles"] == report["latency_cycles"]
