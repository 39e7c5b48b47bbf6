# SPDX-License-Identifier: MIT
"""``bnn2hw emit-c``: checkpoint -> verified IR -> C99 firmware (+ optional QEMU verification)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from ..cli import app
from ..errors import Bnn2hwError
from ..fpga.build import dumps
from ..outdir import write_dir_atomically
from . import codegen
from .targets import get_target

C_README = """# Generated bnn2hw firmware

`model.c`/`model.h` hold the network (static const weights, a static scratch arena, no malloc);
`bnn_*.c`/`bnn_*.h` are the runtime kernels. The other files are the QEMU test harness.

Build and run in QEMU:      make TARGET={target}   (then see report.md for the QEMU command)
Host build with sanitizers: make TARGET=host

Into your own firmware (STM32Cube, Zephyr, Arduino, ...): add `model.c` and `bnn_*.c` to the
sources and this folder to the include path, compile with `-std=c99 -O2` and the core's
`-mcpu` flags, and call

    int32_t logits[BNN_NUM_LOGITS];
    int rc = bnn_infer(pixels, BNN_INPUT_LEN, logits, BNN_NUM_LOGITS);   /* or bnn_predict() */

Leave out main.c, startup.c, semihost.c, *.ld and the Makefile (they are the bare-metal harness).
"""


def to_c_inputs(graph, x_u8: np.ndarray) -> np.ndarray:
    """PyTorch-layout uint8 data -> the C input layout (channels-last, row-major bytes); for a
    binary-input graph, ±1 vectors -> packed 32-bit words as little-endian bytes."""
    if graph.input_kind == "bits":
        words = codegen.pack_bits(np.asarray(x_u8).reshape(len(x_u8), -1))
        return np.ascontiguousarray(words.astype("<u4")).view(np.uint8).reshape(len(x_u8), -1)
    if x_u8.ndim == 4:
        x_u8 = x_u8.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x_u8.reshape(len(x_u8), -1)).astype(np.uint8)


def write_firmware_dir(graph, out_dir: Path, target: str) -> codegen.Emitted:
    """model.c/model.h + runtime + harness, written to a temp dir then moved into place."""
    from .toolchain import runtime_files

    em = codegen.emit(graph)

    def fill(tmp: Path) -> None:
        (tmp / "model.h").write_text(em.header)
        (tmp / "model.c").write_text(em.source)
        for f in runtime_files():
            shutil.copy(f, tmp / f.name)
        (tmp / "README.md").write_text(C_README.format(target=target))

    write_dir_atomically(Path(out_dir), fill, marker="model.h")
    return em


def verify_firmware(graph, out_dir: Path, target: str, x_u8: np.ndarray, popcount: Optional[str] = None,
                    host: bool = True, echo=print) -> dict:
    """Build and run on the host (sanitizers on) and in QEMU for ``target``; compare every
    integer logit with the IR executor."""
    from ..ir import execute
    from . import qemu, toolchain

    ref = execute.run(graph, x_u8)
    inputs = to_c_inputs(graph, x_u8)
    result: dict = {"samples": int(len(x_u8))}
    runs = (["host"] if host else []) + ([target] if target != "host" else [])
    for t in runs:
        with tempfile.TemporaryDirectory() as tmpd:
            work = Path(tmpd) / "fw"
            shutil.copytree(out_dir, work)
            elf = toolchain.build(work, t, popcount=popcount)
            got = qemu.run(elf, t, inputs, graph.num_classes)
            diff = int((got != ref.int_logits).sum())
            entry = {"int_logits_differing": diff,
                     "class_agreement": float(((got * graph.layers[-1].arrays["scale"] +
                                                graph.layers[-1].arrays["bias"]).argmax(1)
                                               == ref.logits.argmax(1)).mean())}
            if t != "host":
                sz = toolchain.size(elf)
                entry.update({"flash_bytes": sz.flash, "ram_bytes": sz.ram,
                              "instructions_per_inference": qemu.count_instructions(elf, t, inputs[0])})
            result[t] = entry
            echo(f"{t}: {len(x_u8)} inputs, integer logits differing from the IR: {diff}"
                 + (f"; flash {entry['flash_bytes']} B, RAM {entry['ram_bytes']} B, "
                    f"{entry['instructions_per_inference']} instructions/inference" if t != "host" else
                    " (gcc -Wall -Wextra -Werror -fsanitize=address,undefined)"))
            if diff:
                raise Bnn2hwError(f"firmware on {t} disagrees with the IR on {diff} integer logits")
    return result


def periodic_report(graph, exp) -> list[dict]:
    """Per periodic op: max |approx - f| over the calibrated input range (M-BiPer eq. 10-11)."""
    from . import periodic_tables as pt

    rows = []
    for layer in graph.layers:
        if layer.op != "periodic":
            continue
        at = layer.attrs
        lo, hi = at["calib_range"]
        method = {"fixed": "linear"}.get(at["approx"], at["approx"])
        err = pt.max_abs_error(method, at["w0"], at["in_frac"], at["out_frac"], lo, hi,
                               table_bits=at.get("table_bits", 8), func=at["func"])
        rows.append({"layer": layer.name, "func": at["func"], "approx": at["approx"], "w0": at["w0"],
                     "input_range": [lo, hi], "in_frac": at["in_frac"], "out_frac": at["out_frac"],
                     "table_bits": at.get("table_bits"), "max_abs_error": err})
    return rows


def emit_c(checkpoint: Path, target: str, out_dir: Path, popcount: Optional[str] = None,
           verify: bool = False, dataset: Optional[str] = None, verify_samples: Optional[int] = None,
           act_approx: str = "lut", lut_bits: int = 8, echo=print) -> dict:
    from ..export.pipeline import export_ir, test_inputs

    tgt = get_target(target)
    exp = export_ir(checkpoint, dataset, act_approx=act_approx, lut_bits=lut_bits)
    graph = exp.graph
    em = write_firmware_dir(graph, out_dir, tgt.name)
    report = {"target": tgt.name, "model_hash": graph.meta["model_hash"],
              "scratch_bytes": em.scratch_bytes, "flash_lower_bound_bytes": em.flash_lower_bound_bytes,
              "accumulators": codegen.check_accumulators(graph)}
    if graph.meta.get("fixed_point"):
        report["periodic"] = periodic_report(graph, exp)
        for r in report["periodic"]:
            echo(f"{r['layer']}: {r['func']}({r['w0']:g} x) by '{r['approx']}' on [{r['input_range'][0]:.3g}, "
                 f"{r['input_range'][1]:.3g}]: max abs error {r['max_abs_error']:.3g}")
        if exp.torch_vs_ir is not None:
            from ..ir import execute

            agr = exp.torch_vs_ir
            x, y = exp.data.x_test, exp.data.y_test
            ir_acc = float((execute.run(graph, x).logits.argmax(1) == y).mean())
            pt_acc = float((exp.torch_logits.argmax(1) == y).mean()) if exp.torch_logits is not None else None
            report["fixed_point_vs_pytorch"] = {**agr.to_dict(), "ir_accuracy": ir_acc, "pytorch_accuracy": pt_acc}
            echo(f"fixed point vs PyTorch float: {agr.bits_differing} of {agr.bits_compared} sign bits differ, "
                 f"class agreement {agr.class_agreement:.4f}, accuracy {pt_acc:.4f} -> {ir_acc:.4f}")
    echo(f"wrote {out_dir}/model.c, model.h and the runtime; scratch arena {em.scratch_bytes} B, "
         f"flash lower bound {em.flash_lower_bound_bytes} B (weight bits / 8 + 4 B per threshold)")
    if verify:
        x, y = test_inputs(exp, verify_samples)
        res = verify_firmware(graph, Path(out_dir), tgt.name, x, popcount, echo=echo)
        report["verification"] = res
        from ..ir import execute

        ir_acc = float((execute.run(graph, x).logits.argmax(1) == y).mean())
        report["accuracy"] = {"pytorch": exp.checkpoint["meta"].get("test_accuracy"), "device": ir_acc}
        echo(f"accuracy on {tgt.name} (QEMU): {ir_acc:.4f} on {len(x)} test samples; "
             f"PyTorch: {exp.checkpoint['meta'].get('test_accuracy'):.4f}")
    (Path(out_dir) / "report.json").write_text(dumps(report))
    return report


@app.command("emit-c")
def emit_c_cmd(
    checkpoint: Path = typer.Argument(..., help="bnn2hw checkpoint (.pt)"),
    target: str = typer.Option("cortex-m4", help="host | cortex-m | cortex-m0/m3/m4/m7/m33/m55"),
    output: Path = typer.Option(Path("fw"), "-o", "--output", help="firmware directory to write"),
    popcount: Optional[str] = typer.Option(None, help="builtin | swar | table | multi (default per core)"),
    verify: bool = typer.Option(False, "--verify", help="build, run the test data on the host and in "
                                                        "QEMU, compare every integer logit with the IR"),
    dataset: Optional[str] = typer.Option(None, help="verification data (default: the training data)"),
    verify_samples: Optional[int] = typer.Option(None, help="limit verification to N test samples"),
    act_approx: str = typer.Option("lut", help="periodic activations (M-BiPer models): lut | taylor | "
                                               "fixed (eq. 11, a x / 2^n)"),
    lut_bits: int = typer.Option(8, help="lookup table size 2^lut_bits for --act-approx lut"),
):
    """Generate self-contained C99 XNOR-popcount firmware for a Cortex-M core (or the host)."""
    get_target(target)  # fail fast on a bad target
    from ..export.fold import PERIODIC_APPROX

    if act_approx not in PERIODIC_APPROX:
        raise Bnn2hwError(f"unknown --act-approx {act_approx!r}; valid: {', '.join(PERIODIC_APPROX)}")
    emit_c(checkpoint, target, output, popcount, verify, dataset, verify_samples, act_approx, lut_bits,
           echo=typer.echo)
