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
    """PyTorch-layout uint8 data -> the C input layout (channels-last, row-major bytes)."""
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


def emit_c(checkpoint: Path, target: str, out_dir: Path, popcount: Optional[str] = None,
           verify: bool = False, dataset: Optional[str] = None, verify_samples: Optional[int] = None,
           echo=print) -> dict:
    from ..export.pipeline import export_ir, test_inputs

    tgt = get_target(target)
    exp = export_ir(checkpoint, dataset)
    graph = exp.graph
    em = write_firmware_dir(graph, out_dir, tgt.name)
    report = {"target": tgt.name, "model_hash": graph.meta["model_hash"],
              "scratch_bytes": em.scratch_bytes, "flash_lower_bound_bytes": em.flash_lower_bound_bytes,
              "accumulators": codegen.check_accumulators(graph)}
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
):
    """Generate self-contained C99 XNOR-popcount firmware for a Cortex-M core (or the host)."""
    get_target(target)  # fail fast on a bad target
    emit_c(checkpoint, target, output, popcount, verify, dataset, verify_samples, echo=typer.echo)
