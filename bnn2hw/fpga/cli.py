# SPDX-License-Identifier: MIT
"""``bnn2hw export``: checkpoint -> verified IR -> FINN-ready ONNX + plain ONNX + FINN build dir.

The build directory is complete and verified, or not written at all
(:func:`bnn2hw.outdir.write_dir_atomically`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import Bnn2hwError
from . import build
from .onnx_export import build_onnx, run_plain, run_qonnx
from .residual_onnx import needs_residual_form


def export_fpga(checkpoint: Path, target: str, out_dir: Path, clock_mhz: float = 100.0,
                target_fps: float = 1e6, dataset: Optional[str] = None,
                verify_samples: Optional[int] = None, run_finn: Optional[bool] = None,
                echo=print, verify: bool = True, force: bool = False,
                finn_version: str = build.DEFAULT_FINN_VERSION) -> dict:
    """Everything `bnn2hw export` does; returns the verification summary."""
    from ..export.pipeline import export_ir, test_inputs

    build.fpga_target(target)
    build.check_finn_version(finn_version)
    exp = export_ir(checkpoint, dataset, verify=verify, need_data=verify)
    x = y = None
    if exp.data is not None:
        x, y = test_inputs(exp, verify_samples)
    agr = exp.torch_vs_ir
    ir_logits = None  # the PyTorch == IR check already ran the IR on x (test_inputs: a prefix of x_test)
    if x is not None and agr is not None and agr.ir_logits is not None and len(agr.ir_logits) >= len(x):
        ir_logits = (agr.ir_int_logits[:len(x)], agr.ir_logits[:len(x)])
    summary = write_fpga_build(
        exp.graph, target, Path(out_dir), x=x, y=y, clock_mhz=clock_mhz, target_fps=target_fps, force=force,
        finn_version=finn_version, echo=echo, ir_logits=ir_logits,
        extra={"checkpoint": str(checkpoint),
               "dataset": exp.data.name if exp.data is not None else None,
               "pytorch_vs_ir": exp.torch_vs_ir.to_dict() if exp.torch_vs_ir is not None else None,
               "pytorch_accuracy": _accuracy_or_none(exp.checkpoint["meta"].get("test_accuracy", float("nan"))),
               "reference": exp.reference})
    if run_finn is None:
        run_finn = build.finn_available()
    if run_finn:
        here = build.importable_finn_version()
        if here != finn_version:
            raise Bnn2hwError(f"the FINN importable here is {here}, but the build dir was folded for FINN "
                              f"{finn_version}; re-export with --finn-version {here}")
        where = build.run_finn(Path(out_dir))
        echo(f"FINN build done: bitfile {where['bitfile']}, driver {where['driver']}, reports {where['reports']}")
        summary["finn"] = where
    elif summary.get("graph_form") == "residual":
        echo("FINN is not importable here. A residual graph needs bnn2hw's FINN steps (FINN's `build_dataflow` "
             "CLI cannot load them): where FINN and bnn2hw import, run "
             f"`python -c \"from bnn2hw.fpga.build import run_finn; run_finn('{out_dir}')\"` "
             "(hw/FINN_NOTES.md section 7)")
    else:
        echo("FINN is not importable here; run the build in FINN's Docker image: "
             + build.docker_command(Path(out_dir), finn_version))
    return summary


def _accuracy_or_none(v):
    """The checkpoint's test accuracy as a float; None where there is none (a QONNX file)."""
    return float(v) if v is not None else None


def write_fpga_build(graph, target: str, out_dir: Path, x=None, y=None, clock_mhz: float = 100.0,
                     target_fps: float = 1e6, force: bool = False,
                     finn_version: str = build.DEFAULT_FINN_VERSION, echo=None, extra: dict | None = None,
                     ir_logits: tuple | None = None) -> dict:
    """Write the FINN build folder for an IR ``graph`` (all or nothing). With inputs ``x``
    (uint8, PyTorch layout; labels ``y`` optional) the ONNX graphs are first checked against the
    IR on every integer logit (onnxruntime and qonnx) and FINN's verification vectors written."""
    from ..ir import execute
    from ..ir.graph import save_ir

    echo = echo or (lambda *_: None)
    tgt = build.fpga_target(target)
    build.check_finn_version(finn_version)
    finn_model = build_onnx(graph, "finn")
    plain_model = build_onnx(graph, "plain")
    extra = dict(extra or {})
    summary: dict = {"checkpoint": extra.pop("checkpoint", graph.meta.get("source")), "target": target,
                     "model_hash": graph.meta.get("model_hash"),
                     "graph_form": "residual" if needs_residual_form(graph) else "chain"}
    pt_acc = extra.pop("pytorch_accuracy", None)
    if extra.get("reference"):  # a front end's reference check (QONNX: qonnx's execution of the file)
        summary["reference"] = extra.pop("reference")
    if x is not None:
        if ir_logits is None:  # (integer logits, float logits) of the IR on x, unless already computed
            tr = execute.run(graph, x)
            ir_logits = (tr.int_logits, tr.logits)
        ref_int, ref_logits = ir_logits
        lp, ip = run_plain(plain_model, x)
        lq, iq = run_qonnx(finn_model, x)
        summary.update({
            "dataset": extra.pop("dataset", None), "samples": int(len(x)),
            "pytorch_vs_ir": extra.pop("pytorch_vs_ir", None),
            "ir_vs_onnxruntime": {"int_logits_differing": int((ip != ref_int).sum()),
                                  "class_agreement": float((lp.argmax(1) == ref_logits.argmax(1)).mean())},
            "ir_vs_qonnx": {"int_logits_differing": int((iq != ref_int).sum()),
                            "class_agreement": float((lq.argmax(1) == ref_logits.argmax(1)).mean())},
        })
        if y is not None:
            summary["accuracy"] = {"pytorch": pt_acc, "ir": float((ref_logits.argmax(1) == y).mean()),
                                   "onnxruntime": float((lp.argmax(1) == y).mean()),
                                   "qonnx": float((lq.argmax(1) == y).mean())}
        bad = [k for k in ("ir_vs_onnxruntime", "ir_vs_qonnx")
               if summary[k]["int_logits_differing"] or summary[k]["class_agreement"] != 1.0]
        if bad:
            raise Bnn2hwError(f"ONNX graphs disagree with the IR ({', '.join(bad)}): {summary}")
        # FINN's verify_steps run each of these through its intermediate models; the FINN graph's
        # output is the integer logits (onnx_export module doc)
        n_fv = min(len(x), build.FINN_VERIFY_SAMPLES)
        verify_in = x[:n_fv].reshape([n_fv] + [d.dim_value for d in finn_model.graph.input[0].type.tensor_type.shape.dim][1:])
        verify_out = ref_int[:n_fv].astype(np.float32)
    else:
        verify_in = verify_out = None
    layers = build.choose_folding(build.matmul_layers(graph), clock_mhz, target_fps)
    residual = needs_residual_form(graph)
    if residual:  # FINN names/sorts a residual graph's layers its own way (build.mvau_folding)
        report = build.residual_layer_report(graph, layers, clock_mhz, target_fps, finn_version)
        folding = {"Defaults": {}}
    else:
        report = build.layer_report(graph, layers, clock_mhz, target_fps, finn_version)
        folding = build.folding_config(layers, finn_version)
    files = {
        "model_finn.onnx": finn_model.SerializeToString(),
        "model_plain.onnx": plain_model.SerializeToString(),
        "model.bnnir.npz": _ir_bytes(graph, save_ir),
        "model.ir.txt": graph.describe() + "\n",
        "dataflow_build_config.json": build.dumps(build.dataflow_build_config(tgt, clock_mhz, target_fps)),
        "folding_config.json": build.dumps(folding),
        "layer_report.json": build.dumps(report),
        "logit_affine.json": build.dumps(build.logit_affine_doc(graph)),
        "layer_report.md": _report_md(report, tgt),
        "verification.json": build.dumps(summary),
        "bnn2hw_export.json": build.dumps({"target": target, "board": tgt.board, "part": tgt.part,
                                           "finn_version": finn_version,
                                           "graph_form": "residual" if residual else "chain",
                                           "model_hash": graph.meta.get("model_hash")}),
    }
    if residual:
        files[build.MVAU_FOLDING_FILE] = build.dumps(build.mvau_folding(layers))
    if verify_in is not None:
        files["verify_input.npy"] = verify_in.astype(np.float32)
        files["verify_expected_output.npy"] = verify_out
    build.write_build_dir(out_dir, files, force=force, extra=_layer_cost_png(graph))
    echo(f"wrote {out_dir}/: model_finn.onnx (FINN-ready QONNX), model_plain.onnx (onnxruntime), "
         "model.bnnir.npz (IR), dataflow_build_config.json, folding_config.json, layer_report.md, "
         "logit_affine.json, verification.json, layer_costs.png")
    if "accuracy" in summary:
        a = summary["accuracy"]
        pt = f" (PyTorch checkpoint {a['pytorch']:.4f})" if isinstance(a.get("pytorch"), float) else ""
        first = "qonnx(file)" if summary.get("reference") else "PyTorch"
        echo(f"verified on {summary['samples']} {summary.get('dataset')} test samples: {first} == IR == "
             f"onnxruntime == qonnx bit for bit; accuracy {a['ir']:.4f}{pt}")
    echo(f"FINN {finn_version} cycle model at {clock_mhz:g} MHz: {report['max_cycles']} cycles/frame, "
         f"{report['estimated_fps']:.0f} frames/s (target {target_fps:g})")
    return summary


def _layer_cost_png(graph):
    """A ``fill`` step that draws the per-layer cost bars into the build folder."""
    def draw(tmp: Path) -> None:
        from ..plots import plot_layer_costs

        plot_layer_costs(graph, tmp / "layer_costs.png")
    return draw


def _ir_bytes(graph, save_ir) -> bytes:
    import io

    buf = io.BytesIO()
    save_ir(graph, buf)
    return buf.getvalue()


def _report_md(report: dict, tgt) -> str:
    lines = [f"# Layer report ({tgt.board}, {tgt.part}, {report['clock_mhz']:g} MHz, "
             f"target {report['target_fps']:g} frames/s, budget {report['cycle_budget']} cycles)", "",
             "| layer | source | input | MW | MH | vectors | MACs | weight bits | thresholds | PE | SIMD | cycles | fps |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["layers"]:
        lines.append(f"| {r['layer']} | {r['source']} | {r['input']} | {r['MW']} | {r['MH']} | {r['vectors']} | "
                     f"{r['MACs']} | {r['weight_bits']} | {r['thresholds']} | {r['PE']} | {r['SIMD']} | "
                     f"{r['cycles']} | {r['fps_at_clock']:.0f} |")
    for e in report.get("other_layers", []):
        lines.append(f"| {e['layer']} | ({e['kind']}) | | | | | | | | | | {e['cycles']} | "
                     f"{report['clock_mhz'] * 1e6 / e['cycles']:.0f} |")
    lines += ["", f"FINN {report['finn_version']}: bottleneck {report['max_cycles']} cycles/frame -> {report['estimated_fps']:.0f} frames/s; "
              f"latency {report['latency_cycles']} cycles (FINN MVAU model: (MH/PE)*(MW/SIMD)*vectors)."]
    return "\n".join(lines) + "\n"
