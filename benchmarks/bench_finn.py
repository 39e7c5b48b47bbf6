# SPDX-License-Identifier: MIT
"""FINN benchmark: bnn2hw's exported graph vs Brevitas' BNN-PYNQ path, through FINN's own steps.

Issue 3 asks whether "a 64-64-64-10 binary MLP folded for 1M frames/s at 100 MHz [uses] fewer LUTs
than the same network exported through Brevitas' standard BNN-PYNQ path with an 8-bit input
quantizer, at the same cycles per frame". This script builds both and runs FINN's estimate-only
flow (``estimate_only_dataflow_steps``: step_qonnx_to_finn ... step_generate_estimate_reports) on
each, with FINN's python-execution verification (``verify_steps``) against each model's own
PyTorch/IR output:

* **bnn2hw**: ``bnn2hw`` MLP (8-bit 64-pixel digits input, hidden 64,64,64, binary weights
  everywhere), ``bnn2hw.fpga.cli.export_fpga`` -> ``model_finn.onnx``; FINN run twice, with our
  ``folding_config.json`` and with FINN's own ``target_fps`` folding (SetFolding).
* **Brevitas**: ``brevitas_examples.bnn_pynq.models.FC.FC`` itself (TFC topology: 8-bit input
  ``QuantIdentity`` after ``2x-1``, 1-bit ``QuantLinear`` + ``BatchNorm1d`` + 1-bit
  ``QuantIdentity``, ``TensorNorm``) on the same 64 inputs, behind a ``x/255`` step as FINN's
  end-to-end tests add; trained briefly with the bnn_pynq recipe (Adam, lr 0.02, weight
  clipping) and exported with ``brevitas.export.export_qonnx(..., dynamo=False)``. The graph
  input is annotated UINT8, as FINN's end-to-end tests do. FINN folds it with ``target_fps``.
* ``--cnn``: also the default bnn2hw CNN (no conv padding) through the same steps, with our
  folding (which names every HW layer FINN creates) and with FINN's ``target_fps`` folding.

Works with FINN v0.10.1 and FINN dev: the bnn2hw export is folded for the FINN version that is
importable (``--finn-version``). Both paths use the same build config: Pynq-Z2, 10 ns clock,
target 1e6 frames/s, ``minimize_bit_width=False`` (v0.10.1 clips XNOR popcount thresholds with
it on, dev derives wrong XNOR accumulator widths; see ``hw/FINN_NOTES.md``). Everything FINN writes goes under ``--out``; the summary is
``--out/finn_bench.json`` and a markdown table on stdout (``results/finn.md`` is written by hand
from them). This file contains no FINN code; it calls FINN's public builder API.

Needs an interpreter where ``import finn`` works: FINN's Docker image, or the venvs described in
``hw/FINN_NOTES.md`` ("Local check")::

    FINN_ROOT=/tmp/finn_src/v0.10.1 /tmp/finnvenv/bin/python benchmarks/bench_finn.py --cnn
    FINN_ROOT=/tmp/finn_src/dev /tmp/finnvenv_dev/bin/python benchmarks/bench_finn.py --cnn
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import io
import json
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BOARD, CLK_NS, TARGET_FPS = "Pynq-Z2", 10.0, 1_000_000
RESNET8_FPS = 1_000  # issue 9: resnet8 folded for >= 1,000 frames/s at 100 MHz
ATTRS = ["PE", "SIMD", "MW", "MH", "inputDataType", "weightDataType", "outputDataType",
         "binaryXnorMode", "noActivation", "numSteps", "NumChannels", "parallel_window",
         "mem_mode", "ram_style"]


def import_finn() -> str | None:
    """Import FINN's builder (stubbing pyverilator/torchvision, which only rtlsim and FINN's test
    helpers need); return None, or why FINN is not usable here."""
    sys.path.insert(0, str(REPO / "hw"))
    try:
        from finn_local_check import _stub_missing_modules

        _stub_missing_modules()
        import finn.builder.build_dataflow  # noqa: F401
        import finn.builder.build_dataflow_config  # noqa: F401
    except Exception as e:  # ImportError, or FINN/qonnx/onnx version clashes
        return f"{type(e).__name__}: {e}"
    finally:
        sys.path.pop(0)
    return None


def finn_version() -> str:
    import finn

    from bnn2hw.fpga.build import importable_finn_version

    try:
        from importlib.metadata import version

        where = version("finn")
    except Exception:
        where = f"source tree {list(finn.__path__)}"
    return f"{importable_finn_version()} ({where})"


# ---------------------------------------------------------------- the two models

def bnn2hw_build(out: Path, arch: str, hidden: list[int] | None, epochs1: int, epochs2: int,
                 seed: int, verify_n: int, finn_version: str) -> dict:
    """Train a bnn2hw model on digits and export it for Pynq-Z2 (no FINN run)."""
    from bnn2hw.checkpoint import save_checkpoint
    from bnn2hw.data import load_digits
    from bnn2hw.fpga.cli import export_fpga
    from bnn2hw.nn.models import build_model, default_spec
    from bnn2hw.train import TrainConfig, accuracy, seed_everything, train_two_stage

    data = load_digits()
    spec = default_spec(arch, data.in_shape, data.num_classes)
    if hidden:
        spec["hidden"] = hidden
    seed_everything(seed)
    net = build_model(spec)
    t0 = time.perf_counter()
    train_two_stage(net, data, TrainConfig(epochs1=epochs1, epochs2=epochs2, seed=seed), progress=False)
    acc = accuracy(net, data.x_test, data.y_test)
    ckpt = out / f"bnn2hw_{arch}.pt"
    save_checkpoint(ckpt, net, spec, {"dataset": "digits", "test_accuracy": acc})
    build = out / f"bnn2hw_{arch}_build"
    export_fpga(ckpt, "pynq-z2", build, clock_mhz=1000.0 / CLK_NS, target_fps=TARGET_FPS,
                verify_samples=None, run_finn=False, echo=lambda s: print("  " + s),
                finn_version=finn_version)
    # FINN's verify_step loops over the first axis: give it verify_n test samples, not just one
    from bnn2hw.export.pipeline import export_ir, test_inputs
    from bnn2hw.ir import execute

    exp = export_ir(ckpt)
    x, _ = test_inputs(exp, verify_n)
    ref = execute.run(exp.graph, x)
    shape = np.load(build / "verify_input.npy").shape[1:]
    np.save(build / "verify_input_n.npy", x.reshape((len(x),) + shape).astype(np.float32))
    # the FINN graph's output is the integer logits (bnn2hw/fpga/onnx_export.py)
    np.save(build / "verify_expected_output_n.npy", ref.int_logits.astype(np.float32))
    return {"model": str(build / "model_finn.onnx"), "folding": str(build / "folding_config.json"),
            "verify_in": str(build / "verify_input_n.npy"),
            "verify_out": str(build / "verify_expected_output_n.npy"),
            "layer_report": json.loads((build / "layer_report.json").read_text()),
            "test_accuracy": acc, "train_seconds": time.perf_counter() - t0}


def brevitas_build(out: Path, hidden: list[int], epochs: int, seed: int, verify_n: int) -> dict:
    """Brevitas BNN-PYNQ FC (TFC topology) with an 8-bit input quantizer, on digits, as QONNX."""
    import torch
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models.FC import FC

    from bnn2hw.data import load_digits

    class WithPreproc(torch.nn.Module):
        """uint8 pixels -> [0, 1] (FINN's end-to-end tests prepend the same ToTensor step)."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x / 255.0)

    torch.manual_seed(seed)
    data = load_digits()
    n_in = int(np.prod(data.in_shape))
    net = FC(num_classes=10, weight_bit_width=1, act_bit_width=1, in_bit_width=8, in_channels=1,
             out_features=hidden, in_features=(n_in,))
    model = WithPreproc(net)
    xtr = torch.tensor(data.x_train.reshape(len(data.x_train), -1), dtype=torch.float32)
    ytr = torch.tensor(data.y_train)
    xte = torch.tensor(data.x_test.reshape(len(data.x_test), -1), dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)  # bnn_pynq trainer defaults
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(perm) - 1, 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
            net.clip_weights(-1.0, 1.0)
    model.eval()
    with torch.no_grad():
        logits = model(xte).numpy()
    acc = float((logits.argmax(1) == data.y_test).mean())
    path = out / "brevitas_tfc8.onnx"
    # dynamo=False: the dynamo exporter writes a Gemm that FINN v0.10.1 cannot convert
    export_qonnx(model, torch.zeros(1, n_in), str(path), dynamo=False)
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper

    m = ModelWrapper(str(path))
    m.set_tensor_datatype(m.graph.input[0].name, DataType["UINT8"])
    m.save(str(path))
    np.save(out / "brevitas_verify_in.npy", xte[:verify_n].numpy())
    np.save(out / "brevitas_verify_out.npy", logits[:verify_n].astype(np.float32))
    return {"model": str(path), "verify_in": str(out / "brevitas_verify_in.npy"),
            "verify_out": str(out / "brevitas_verify_out.npy"), "test_accuracy": acc,
            "train_seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------- running FINN

class _Tee(io.StringIO):
    """A StringIO that also writes through to ``stream``."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream

    def write(self, text):
        self.stream.write(text)
        return super().write(text)


def run_finn(model: str, out_dir: Path, verify_in: str, verify_out: str,
             folding_config: str | None = None, steps: list | None = None,
             target_fps: int | None = None) -> dict:
    """FINN's estimate-only steps (or ``steps``) with python verification; returns the parsed
    reports. ``target_fps`` (with a folding file: SetFolding first, the file then overrides)."""
    import finn.builder.build_dataflow_config as bc
    from finn.builder.build_dataflow import build_dataflow_cfg
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    shutil.rmtree(out_dir, ignore_errors=True)
    os.environ["FINN_BUILD_DIR"] = str(out_dir) + "_tmp"
    os.makedirs(os.environ["FINN_BUILD_DIR"], exist_ok=True)
    V = bc.VerificationStepType
    cfg = bc.DataflowBuildConfig(
        output_dir=str(out_dir), synth_clk_period_ns=CLK_NS, board=BOARD,
        shell_flow_type=bc.ShellFlowType.VIVADO_ZYNQ,
        target_fps=target_fps or (None if folding_config else TARGET_FPS), folding_config_file=folding_config,
        minimize_bit_width=False, generate_outputs=[bc.DataflowOutputType.ESTIMATE_REPORTS],
        steps=steps or bc.estimate_only_dataflow_steps, save_intermediate_models=True,
        enable_build_pdb_debug=False,
        verify_steps=[V.QONNX_TO_FINN_PYTHON, V.TIDY_UP_PYTHON, V.STREAMLINED_PYTHON],
        verify_input_npy=verify_in, verify_expected_output_npy=verify_out)
    t0 = time.perf_counter()
    # FINN prints a failing step's traceback to stderr (its build_dataflow.log is configured once
    # per process by logging.basicConfig, so later builds in this process log to the first one)
    err = _Tee(sys.stderr)
    with contextlib.redirect_stderr(err):
        ret = build_dataflow_cfg(model, cfg)
    res: dict = {"ok": ret == 0, "seconds": round(time.perf_counter() - t0, 1),
                 "folding": Path(folding_config).name if folding_config else f"FINN target_fps={TARGET_FPS}"}
    vdir = out_dir / "verification_output"
    names = [p.stem for p in vdir.glob("*.npy")] if vdir.exists() else []
    res["verification"] = {step: {"SUCCESS": sum(n.startswith(f"verify_{step}_") and n.endswith("SUCCESS") for n in names),
                                  "FAIL": sum(n.startswith(f"verify_{step}_") and n.endswith("FAIL") for n in names)}
                           for step in ("qonnx_to_finn_python", "initial_python", "streamlined_python")}
    if ret != 0:
        lines = err.getvalue().splitlines()
        at = [ln.strip() for ln in lines if ln.lstrip().startswith("File ")]
        exc = next((ln for ln in reversed(lines) if re.match(r"^[\w.]*(Error|Exception)\b", ln)),
                   "see the traceback above")
        res["error"] = f"{exc} ({at[-1]})" if at else exc
        res["traceback"] = lines[-25:]
        return res
    rep = out_dir / "report"
    cycles = json.loads((rep / "estimate_layer_cycles.json").read_text())
    resources = json.loads((rep / "estimate_layer_resources.json").read_text())
    res["network"] = json.loads((rep / "estimate_network_performance.json").read_text())
    inter = out_dir / "intermediate_models"
    hw = ModelWrapper(str(inter / "step_generate_estimate_reports.onnx"))
    res["exec_python"] = _python_exec_check(inter, verify_in, verify_out)
    layers = []
    for n in hw.graph.node:
        inst = getCustomOp(n)
        types = inst.get_nodeattr_types()
        layers.append({"name": n.name, "op": n.op_type, "cycles": cycles.get(n.name),
                       "LUT": resources[n.name]["LUT"], "BRAM_18K": resources[n.name]["BRAM_18K"],
                       **{a: inst.get_nodeattr(a) for a in ATTRS if a in types}})
    res["layers"] = layers
    res["total"] = resources["total"]
    res["parent_ops"] = [n.op_type for n in ModelWrapper(str(inter / "dataflow_parent.onnx")).graph.node]
    res["streamlined_ops"] = [n.op_type for n in ModelWrapper(str(next(inter.glob("step_*streamline.onnx")))).graph.node]
    return res


def _python_exec_check(inter: Path, verify_in: str, verify_out: str) -> dict:
    """FINN's python execution of the HW graph (before partitioning) on the verification
    inputs: how many outputs differ from the expected ones (the IR's integer logits)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    names = [p.stem for p in inter.glob("step_*convert_to_hw*.onnx")]
    if not names:
        return {}
    m = ModelWrapper(str(inter / f"{names[0]}.onnx"))
    x, ref = np.load(verify_in), np.load(verify_out)
    i, o = m.graph.input[0].name, m.graph.output[0].name
    try:
        got = np.array([execute_onnx(m, {i: r[None]})[o].reshape(-1) for r in x])
    except Exception as e:  # noqa: BLE001 (an HW layer without python execution: report it)
        return {"step": names[0], "error": f"{type(e).__name__}: {e}"}
    return {"step": names[0], "samples": len(x), "outputs_differing": int((got != ref.reshape(got.shape)).sum())}


def resnet8_ir(seed: int = 0):
    """bnn2hw's ``resnet8`` (MLPerf Tiny topology, 8-bit residual stream, pad value -1) with
    seeded random weights and BatchNorm statistics, folded to the IR. FINN's estimates depend on
    the shapes and integer types, not on trained values (accuracy is not measured here)."""
    import torch

    from bnn2hw.export.fold import fold_model
    from bnn2hw.nn.models import build_model, default_spec

    torch.manual_seed(seed)
    spec = default_spec("resnet8", (3, 32, 32), 10)
    model = build_model(spec).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.normal_(0, 2)
                m.running_var.uniform_(0.5, 4)
                m.weight.normal_(0, 1)
                m.bias.normal_(0, 1)
    return fold_model(model, spec)


def resnet8_build(out: Path, verify_n: int, finn_version: str) -> dict:
    """bnn2hw's resnet8 (:func:`resnet8_ir`) exported for Pynq-Z2 folded for RESNET8_FPS at
    100 MHz."""
    sys.path.insert(0, str(REPO / "tests"))
    from residual_graphs import saturating_inputs

    from bnn2hw.fpga.cli import write_fpga_build
    from bnn2hw.ir import execute

    graph = resnet8_ir()
    x = saturating_inputs(np.random.default_rng(7), verify_n, 32, 3)
    build = out / "resnet8_build"
    write_fpga_build(graph, "pynq-z2", build, x=x, clock_mhz=1000.0 / CLK_NS, target_fps=RESNET8_FPS,
                     force=True, finn_version=finn_version, echo=lambda s: print("  " + s))
    np.save(build / "verify_input_n.npy", x.astype(np.float32))
    np.save(build / "verify_expected_output_n.npy", execute.run(graph, x).int_logits.astype(np.float32))
    return {"model": str(build / "model_finn.onnx"), "folding": str(build / "folding_config.json"),
            "verify_in": str(build / "verify_input_n.npy"), "verify_out": str(build / "verify_expected_output_n.npy"),
            "layer_report": json.loads((build / "layer_report.json").read_text()),
            "mvau_folding": json.loads((build / "mvau_folding.json").read_text())}


def table(runs: dict) -> str:
    lines = []
    for label, r in runs.items():
        lines += [f"### {label}", ""]
        if not r.get("ok"):
            lines += [f"FINN failed: `{r.get('error')}`", ""]
            continue
        lines += ["| layer | PE | SIMD | in x w -> out | LUT | BRAM18 | cycles |", "|---|---|---|---|---|---|---|"]
        for L in r["layers"]:
            dt = f"{L.get('inputDataType', '')} x {L.get('weightDataType', '')} -> {L.get('outputDataType', '')}"
            lines.append(f"| {L['name']} | {L.get('PE', '')} | {L.get('SIMD', '')} | {dt} | {L['LUT']:g} | "
                         f"{L['BRAM_18K']:g} | {L['cycles']} |")
        n = r["network"]
        lines += [f"| **total** | | | | **{r['total']['LUT']:g}** | **{r['total']['BRAM_18K']:g}** | "
                  f"max {n['max_cycles']}, sum {n['critical_path_cycles']} |", "",
                  f"{r['folding']}; est. {n['estimated_throughput_fps']:.0f} frames/s; "
                  "FINN python verification: " + ", ".join(f"{k} {v['SUCCESS']} SUCCESS/{v['FAIL']} FAIL"
                                                   for k, v in r["verification"].items() if sum(v.values())) +
                  f"; host side: {r['parent_ops']}" +
                  (f"; FINN python execution of the HW graph: {r['exec_python']}" if r.get("exec_python") else ""), ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="default /tmp/bnn2hw_bench_finn_<0.10|dev>")
    ap.add_argument("--hidden", default="64,64,64")
    ap.add_argument("--epochs1", type=int, default=10)
    ap.add_argument("--epochs2", type=int, default=10)
    ap.add_argument("--brevitas-epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verify-samples", type=int, default=16)
    ap.add_argument("--cnn", action="store_true", help="also the default bnn2hw CNN")
    ap.add_argument("--resnet8", action="store_true",
                    help="only bnn2hw's resnet8 (random weights, folded for 1,000 frames/s), nothing else")
    args = ap.parse_args()

    why = import_finn()
    if why is not None:
        print("bench_finn.py needs FINN (the `finn` package, v0.10.1 or dev) importable in this Python; "
              f"it is not ({why}). Run it in FINN's Docker image or the venv of hw/FINN_NOTES.md.",
              file=sys.stderr)
        return 2
    import torch

    from bnn2hw.fpga.build import importable_finn_version

    version = importable_finn_version()
    if args.out is None:
        args.out = Path(f"/tmp/bnn2hw_bench_finn_{version}")
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    hidden = [int(h) for h in args.hidden.split(",")]
    summary: dict = {"finn": finn_version(), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                     "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
                     "python": platform.python_version(), "torch": torch.__version__,
                     "board": BOARD, "clk_ns": CLK_NS, "target_fps": TARGET_FPS, "runs": {}}
    try:
        import brevitas

        summary["brevitas"] = brevitas.__version__
    except ImportError:
        summary["brevitas"] = None
    runs = summary["runs"]
    if args.resnet8:
        from bnn2hw.fpga.finn_steps import residual_steps

        print(f"[bnn2hw] exporting resnet8 (random weights), folded for {RESNET8_FPS} frames/s")
        r = resnet8_build(args.out, min(args.verify_samples, 4), version)
        summary["resnet8"] = {k: r[k] for k in ("layer_report", "mvau_folding")}
        runs["bnn2hw resnet8, bnn2hw folding"] = run_finn(
            r["model"], args.out / "finn_resnet8", r["verify_in"], r["verify_out"], r["folding"],
            steps=residual_steps(), target_fps=RESNET8_FPS)
        (args.out / "finn_bench_resnet8.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        print(f"\nFINN {summary['finn']}, {summary['date']}\n")
        print(table(runs))
        print(f"raw results: {args.out / 'finn_bench_resnet8.json'}")
        return 0 if all(r.get("ok") for r in runs.values()) else 1

    print(f"[bnn2hw] training + exporting mlp {hidden}")
    b = bnn2hw_build(args.out, "mlp", hidden, args.epochs1, args.epochs2, args.seed, args.verify_samples,
                     version)
    summary["bnn2hw_mlp"] = {k: b[k] for k in ("test_accuracy", "layer_report")}
    runs["bnn2hw MLP, bnn2hw folding"] = run_finn(b["model"], args.out / "finn_bnn2hw_mlp_ours",
                                                 b["verify_in"], b["verify_out"], b["folding"])
    runs["bnn2hw MLP, FINN target_fps folding"] = run_finn(b["model"], args.out / "finn_bnn2hw_mlp_auto",
                                                          b["verify_in"], b["verify_out"])
    if summary["brevitas"] is not None:
        print(f"[brevitas] training + exporting BNN-PYNQ FC {hidden}, 8-bit input")
        v = brevitas_build(args.out, hidden, args.brevitas_epochs, args.seed, args.verify_samples)
        summary["brevitas_mlp"] = {"test_accuracy": v["test_accuracy"]}
        runs["Brevitas BNN-PYNQ FC, FINN target_fps folding"] = run_finn(
            v["model"], args.out / "finn_brevitas_mlp", v["verify_in"], v["verify_out"])
    else:
        print("brevitas is not importable: skipping the Brevitas baseline", file=sys.stderr)
    if args.cnn:
        print("[bnn2hw] training + exporting the default cnn")
        c = bnn2hw_build(args.out, "cnn", None, args.epochs1, args.epochs2, args.seed, args.verify_samples,
                         version)
        summary["bnn2hw_cnn"] = {k: c[k] for k in ("test_accuracy", "layer_report")}
        runs["bnn2hw CNN, bnn2hw folding"] = run_finn(
            c["model"], args.out / "finn_bnn2hw_cnn_ours", c["verify_in"], c["verify_out"], c["folding"])
        runs["bnn2hw CNN, FINN target_fps folding"] = run_finn(
            c["model"], args.out / "finn_bnn2hw_cnn_auto", c["verify_in"], c["verify_out"])
    (args.out / "finn_bench.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"\nFINN {summary['finn']}, Brevitas {summary['brevitas']}, {summary['date']}\n")
    print(table(runs))
    print(f"raw results: {args.out / 'finn_bench.json'}")
    return 0 if all(r.get("ok") for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
